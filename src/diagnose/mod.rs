//! Diagnosis: a pure function from one probe's result to a stable code, who answered, the
//! explanation and the fix; and the tally of failed connections by code (deep checks and
//! `load` open many). The codes and their texts live in `codes`, the reading of answers in
//! `status`, the app's stack in `stacks`, a probe's particulars in `detail`.

mod codes;
mod detail;
mod stacks;
mod status;

use schemars::JsonSchema;
use serde::Serialize;

use crate::probe::{FailureKind, ProbeResult};
pub use codes::Code;
use detail::detail;
pub use status::AnsweredBy;
use status::{answered_by, classify_status};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diagnosis {
    pub code: Code,
    /// One line: what happened.
    pub summary: &'static str,
    /// What to do about it.
    pub fix: &'static str,
    /// This probe's particulars (status, header, certificate, error text).
    pub detail: String,
    pub answered_by: AnsweredBy,
}

/// The diagnosis of one probe.
pub fn diagnose(result: &ProbeResult) -> Diagnosis {
    let code = match &result.failure {
        None if result.echo_verified() => Code::Ok,
        None if moved_to_socketio_path(result) => Code::SocketioPath,
        None if result.protocol.is_some() => Code::OkProtocol,
        None => Code::OkUnverifiedEcho,
        Some(failure) => match failure.kind {
            FailureKind::DnsFailed | FailureKind::DnsTimeout => Code::DnsFailure,
            FailureKind::ConnectRefused | FailureKind::ConnectFailed => Code::ConnectRefused,
            FailureKind::ConnectTimeout if result.candidate.is_internal() => {
                Code::InternalRouteNoPolicy
            }
            FailureKind::ConnectTimeout => Code::ConnectTimeout,
            FailureKind::TlsToPlainPeer => Code::TlsToPlainPort,
            FailureKind::ProxyAuthRequired => Code::ProxyAuthRequired,
            FailureKind::ProxyRefused => Code::ProxyRefused,
            FailureKind::ProxyUnreachable => Code::ProxyUnreachable,
            FailureKind::TlsCertUntrusted if result.route.proxy.is_some() => {
                Code::ProxyTlsIntercepted
            }
            FailureKind::TlsCertUntrusted | FailureKind::TlsCertInvalid => Code::TlsCertUntrusted,
            FailureKind::TlsCertNameMismatch => Code::TlsCertNameMismatch,
            FailureKind::TlsCertExpired => Code::TlsCertExpired,
            FailureKind::TlsHandshakeFailed => Code::TlsHandshakeFailed,
            FailureKind::TlsTimeout => Code::TlsHandshakeTimeout,
            FailureKind::PlainToTlsPeer => Code::PlainToTlsPort,
            FailureKind::HttpRefused => classify_status(result),
            FailureKind::HandshakeClosed => Code::ClosedDuringHandshake,
            FailureKind::HandshakeTimeout => Code::HandshakeTimeout,
            FailureKind::NotHttp => Code::NotHttp,
            FailureKind::HandshakeInvalid | FailureKind::RequestInvalid => Code::HandshakeInvalid,
            FailureKind::SubprotocolNotAccepted => Code::SubprotocolNotAccepted,
            FailureKind::EchoTimeout => Code::EchoTimeout,
            FailureKind::EchoMismatch => Code::EchoMismatch,
            FailureKind::EchoClosed => Code::ClosedDuringEcho,
            FailureKind::ProtocolRefused => match result.protocol.as_ref().map(|p| p.name) {
                Some("graphql") => Code::GraphqlRejected,
                Some("stomp") => Code::StompError,
                Some("sockjs") => Code::SockjsWebsocketDisabled,
                _ => Code::SocketioNamespaceRefused,
            },
            FailureKind::ProtocolFailed => Code::ProtocolHandshakeFailed,
            FailureKind::ProtocolMismatch => Code::SocketioVersionMismatch,
        },
    };
    Diagnosis {
        code,
        summary: code.summary(),
        fix: code.fix(),
        detail: detail(result, code),
        answered_by: answered_by(result),
    }
}

/// socket.io answered at its default path after the bare route refused (`auto`'s second
/// look).
fn moved_to_socketio_path(result: &ProbeResult) -> bool {
    result
        .protocol
        .as_ref()
        .is_some_and(|p| p.name == "socket.io" && p.said.contains_key("path"))
}

/// Connections that could not open, counted by diagnosis code.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailureCount {
    pub code: Code,
    pub connections: u32,
    pub detail: String,
}

impl FailureCount {
    /// Counts a connection that could not open under its diagnosis code (the first
    /// detail of each code is kept).
    pub fn tally(counts: &mut Vec<FailureCount>, result: &ProbeResult) {
        let d = diagnose(result);
        match counts.iter_mut().find(|f| f.code == d.code) {
            Some(f) => f.connections += 1,
            None => counts.push(FailureCount {
                code: d.code,
                connections: 1,
                detail: d.detail,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Candidate, Scheme, Target};
    use crate::probe::echo::PeerKind;
    use crate::probe::upgrade::HttpResponse;
    use crate::probe::{Failure, RouteInfo, Stage, Timings};

    fn result(kind: Option<FailureKind>, response: Option<HttpResponse>) -> ProbeResult {
        let target = Target {
            input: "app.example.com".into(),
            host: "app.example.com".into(),
            path: "/".into(),
            given: None,
            userinfo: None,
        };
        ProbeResult {
            candidate: Candidate::new(&target, Scheme::Wss, None),
            ok: kind.is_none(),
            stage: Stage::Upgrade,
            failure: kind.map(|kind| Failure {
                kind,
                message: "m".into(),
            }),
            timings: Timings::default(),
            route: RouteInfo::default(),
            tls: None,
            request: vec![],
            response,
            subprotocol: None,
            credentials_held_back: false,
            peer: PeerKind::Unknown,
            echo: None,
            protocol: None,
        }
    }

    #[test]
    fn internal_routes_tell_a_missing_network_policy() {
        let target = Target {
            input: "chat.apps.internal".into(),
            host: "chat.apps.internal".into(),
            path: "/".into(),
            given: None,
            userinfo: None,
        };
        let internal = |kind| ProbeResult {
            candidate: Candidate::new(&target, Scheme::Ws, Some(8080)),
            ..result(Some(kind), None)
        };
        let timeout = diagnose(&internal(FailureKind::ConnectTimeout));
        assert_eq!(timeout.code, Code::InternalRouteNoPolicy);
        assert!(
            timeout.detail.contains("--port 8080 --protocol tcp"),
            "{timeout:?}"
        );
        let dns = diagnose(&internal(FailureKind::DnsFailed));
        assert_eq!(dns.code, Code::DnsFailure);
        assert!(
            dns.detail.contains("app/wscheck chat.apps.internal"),
            "{dns:?}"
        );
        // Outside the internal domain a time-out stays a time-out.
        let outside = diagnose(&result(Some(FailureKind::ConnectTimeout), None));
        assert_eq!(outside.code, Code::ConnectTimeout);
        assert!(!outside.detail.contains("network policy"), "{outside:?}");
    }

    fn refused(status: u16, headers: &[(&str, &str)], body: &str) -> ProbeResult {
        result(
            Some(FailureKind::HttpRefused),
            Some(HttpResponse {
                status,
                reason: String::new(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: body.into(),
            }),
        )
    }

    #[test]
    fn router_errors_map_to_their_codes_and_name_gorouter() {
        for (status, header, code) in [
            (404, "unknown_route", Code::RouteNotFound),
            (503, "no_endpoints", Code::NoAppInstances),
            (
                502,
                "endpoint_failure (dial tcp 10.0.0.1:8080: connect: connection refused)",
                Code::AppUnreachable,
            ),
            (
                503,
                "Connection Limit Reached",
                Code::ConnectionLimitReached,
            ),
            (
                503,
                "route_service_unsupported",
                Code::RouteServiceUnsupported,
            ),
            (400, "empty_host", Code::EmptyHost),
            (400, "unknown_route", Code::InstanceNotFound),
            (
                400,
                "invalid_cf_app_instance_header",
                Code::InvalidCfAppInstanceHeader,
            ),
        ] {
            let d = diagnose(&refused(status, &[("x-cf-routererror", header)], ""));
            assert_eq!(d.code, code, "{header}");
            assert_eq!(d.answered_by, AnsweredBy::Gorouter);
            assert!(d.detail.contains(header), "{}", d.detail);
        }
    }

    #[test]
    fn statuses_without_router_mark_come_from_app_or_proxy() {
        let cases = [
            (426, "", Code::UpgradeHeaderStripped),
            (
                403,
                "WebSockets are disabled",
                Code::ApprouterWebsocketsDisabled,
            ),
            (403, "Origin not allowed", Code::OriginRejected),
            (403, "nope", Code::Forbidden),
            (401, "", Code::AuthRequired),
            (404, "Cannot GET /x", Code::PathNotFound),
            (200, "<html>", Code::NotAWebsocketEndpoint),
            (
                400,
                "The plain HTTP request was sent to HTTPS port",
                Code::PlainToTlsPort,
            ),
            (500, "boom", Code::UnexpectedStatus),
            // Told by the text, whatever the status: python-engineio, gorilla, Go.
            (
                400,
                "\"http://evil.example\" is not an accepted origin.",
                Code::OriginRejected,
            ),
            (
                403,
                "websocket: request origin not allowed by Upgrader.CheckOrigin",
                Code::OriginRejected,
            ),
            (
                400,
                "Client sent an HTTP request to an HTTPS server.",
                Code::PlainToTlsPort,
            ),
        ];
        for (status, body, code) in cases {
            assert_eq!(
                diagnose(&refused(status, &[], body)).code,
                code,
                "{status} {body}"
            );
        }
        assert_eq!(
            diagnose(&refused(
                302,
                &[("location", "https://x/oauth/authorize?c=1")],
                ""
            ))
            .code,
            Code::AuthRequired
        );
        assert_eq!(
            diagnose(&refused(
                301,
                &[("location", "https://app.example.com/")],
                ""
            ))
            .code,
            Code::Redirected
        );
    }

    #[test]
    fn a_426_from_the_bundled_server_blames_the_proxy() {
        let d = diagnose(&refused(
            426,
            &[("x-wscheck-server", "0.1.0")],
            "426 Upgrade Required",
        ));
        assert_eq!(d.code, Code::UpgradeHeaderStripped);
        assert_eq!(d.answered_by, AnsweredBy::BundledServer);
        assert!(
            d.detail
                .contains("a proxy between the client and the app removed the headers"),
            "{}",
            d.detail
        );
    }

    #[test]
    fn stage_failures_map_one_to_one() {
        for (kind, code) in [
            (FailureKind::DnsFailed, Code::DnsFailure),
            (FailureKind::ConnectRefused, Code::ConnectRefused),
            (FailureKind::ConnectTimeout, Code::ConnectTimeout),
            (FailureKind::TlsToPlainPeer, Code::TlsToPlainPort),
            (FailureKind::TlsCertUntrusted, Code::TlsCertUntrusted),
            (FailureKind::TlsCertNameMismatch, Code::TlsCertNameMismatch),
            (FailureKind::TlsCertExpired, Code::TlsCertExpired),
            (FailureKind::TlsHandshakeFailed, Code::TlsHandshakeFailed),
            (FailureKind::PlainToTlsPeer, Code::PlainToTlsPort),
            (FailureKind::HandshakeClosed, Code::ClosedDuringHandshake),
            (FailureKind::HandshakeTimeout, Code::HandshakeTimeout),
            (FailureKind::EchoTimeout, Code::EchoTimeout),
            (FailureKind::EchoMismatch, Code::EchoMismatch),
            (FailureKind::EchoClosed, Code::ClosedDuringEcho),
        ] {
            assert_eq!(diagnose(&result(Some(kind), None)).code, code, "{kind:?}");
        }
        assert_eq!(diagnose(&result(None, None)).code, Code::OkUnverifiedEcho);
        assert_eq!(
            diagnose(&result(Some(FailureKind::ConnectRefused), None)).answered_by,
            AnsweredBy::Nobody
        );
    }

    #[test]
    fn endpoint_failures_are_told_apart_by_their_parenthesis_and_time() {
        let failure = |error: &str, upgrade_ms: f64| {
            let mut r = refused(502, &[("x-cf-routererror", error)], "");
            r.timings.upgrade = Some(upgrade_ms);
            diagnose(&r).detail
        };
        let refused_dial = failure(
            "endpoint_failure (dial tcp 10.0.0.1:8080: connect: connection refused)",
            12.0,
        );
        assert!(
            refused_dial.contains("nothing listens on the app's port")
                && refused_dial.contains("came at once"),
            "{refused_dial}"
        );
        let eof = failure("endpoint_failure (EOF)", 20.0);
        assert!(
            eof.contains("it listens on $PORT, but dropped this request"),
            "{eof}"
        );
        let slow = failure(
            "endpoint_failure (net/http: timeout awaiting response headers)",
            15_000.0,
        );
        assert!(
            slow.contains("did not answer in time") && slow.contains("after 15.0 s"),
            "{slow}"
        );
        let tls = failure(
            "endpoint_failure (x509: certificate signed by unknown authority)",
            30.0,
        );
        assert!(tls.contains("TLS connection to the app"), "{tls}");
    }

    #[test]
    fn closes_during_the_echo_are_explained_by_code_and_reason() {
        let closed = |code: u16, reason: &str| {
            let mut r = result(Some(FailureKind::EchoClosed), None);
            r.echo = Some(crate::probe::echo::EchoInfo {
                sent: "n".into(),
                greeting: None,
                reply: None,
                unexpected: None,
                verified: false,
                rtt_ms: None,
                close_code: Some(code),
                close_reason: Some(reason.into()),
            });
            diagnose(&r).detail
        };
        assert!(closed(1008, "session expired").contains("policy violation"));
        assert!(closed(1009, "").contains("message too big"));
        assert!(closed(1011, "").contains("server error"));
        let graphql = closed(4406, "Subprotocol not acceptable");
        assert!(
            graphql.contains("4406 \"Subprotocol not acceptable\"")
                && graphql.contains("application-defined")
                && graphql.contains("--subprotocol"),
            "{graphql}"
        );
    }

    #[test]
    fn silent_tls_ports_and_unreachable_proxies_were_answered_by_nobody() {
        for (kind, code) in [
            (FailureKind::TlsTimeout, Code::TlsHandshakeTimeout),
            (FailureKind::ProxyUnreachable, Code::ProxyUnreachable),
        ] {
            let d = diagnose(&result(Some(kind), None));
            assert_eq!((d.code, d.answered_by), (code, AnsweredBy::Nobody));
        }
        let d = diagnose(&result(Some(FailureKind::TlsHandshakeFailed), None));
        assert_eq!(
            (d.code, d.answered_by),
            (Code::TlsHandshakeFailed, AnsweredBy::TlsEndpoint)
        );
    }

    #[test]
    fn the_app_stack_shown_by_the_answer_names_its_fix() {
        let detail = |headers: &[(&str, &str)], body: &str| {
            let d = diagnose(&refused(404, headers, body));
            (d.code, d.detail)
        };
        let (code, express) = detail(&[("X-Powered-By", "Express")], "Cannot GET /ws");
        assert_eq!(code, Code::PathNotFound);
        assert!(
            express.contains("Express") && express.contains("{ server"),
            "{express}"
        );
        let (_, flask) = detail(&[("Server", "Werkzeug/3.0.1 Python/3.11.7")], "");
        assert!(flask.contains("Flask-Sock"), "{flask}");
        let (_, sio) = detail(&[], "{\"code\":0,\"message\":\"Transport unknown\"}");
        assert!(sio.contains("/socket.io/?EIO=4"), "{sio}");
        let (_, plain) = detail(&[], "nope");
        assert!(!plain.contains("the app is"), "{plain}");
        let routed = diagnose(&refused(
            404,
            &[
                ("x-cf-routererror", "unknown_route"),
                ("X-Powered-By", "Express"),
            ],
            "",
        ));
        assert!(!routed.detail.contains("the app is"), "a router's answer");
    }

    #[test]
    fn protocol_openings_have_their_own_codes() {
        let info = crate::probe::protocol::ProtocolInfo {
            name: "socket.io",
            version: Some("EIO4".into()),
            said: serde_json::json!({"sid": "abc", "ping_interval_ms": 25000, "ping_timeout_ms": 20000})
                .as_object()
                .cloned()
                .unwrap(),
        };
        let mut opened = result(None, None);
        opened.protocol = Some(info.clone());
        let d = diagnose(&opened);
        assert_eq!(d.code, Code::OkProtocol);
        assert!(d.code.is_ok());
        assert_eq!(
            d.detail,
            "socket.io handshake completed (sid abc, namespace / connected; EIO4, pingInterval 25000 ms + pingTimeout 20000 ms); its pings every 25 s keep connections alive through a 60 s load balancer idle cut-off (measure yours with --hold)"
        );
        let mut slow = info.clone();
        slow.said.insert("ping_interval_ms".into(), 90_000.into());
        opened.protocol = Some(slow);
        assert!(
            diagnose(&opened)
                .detail
                .ends_with("its pings every 90 s come too late for a 60 s load balancer idle cut-off: set pingInterval below it (e.g. 25000)")
        );
        opened.protocol = Some(info.clone());
        let mut said_no = result(Some(FailureKind::ProtocolRefused), None);
        said_no.protocol = Some(info);
        assert_eq!(diagnose(&said_no).code, Code::SocketioNamespaceRefused);
        assert_eq!(
            diagnose(&result(Some(FailureKind::ProtocolFailed), None)).code,
            Code::ProtocolHandshakeFailed
        );
        assert_eq!(
            diagnose(&refused(400, &[], "Transport unknown")).code,
            Code::SocketioTransportMissing
        );
    }

    #[test]
    fn every_code_has_distinct_text_and_a_snake_case_name() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(!code.summary().is_empty() && !code.fix().is_empty());
        }
    }
}
