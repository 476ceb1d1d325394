//! Diagnosis: a pure function from one probe's result to a stable code, who answered, the
//! explanation and the fix; and the tally of failed connections by code (deep checks and
//! `load` open many). The texts rest on `cf-websocket-facts.md`; README's
//! troubleshooting section repeats them word for word (a test keeps the two in step).

use serde::Serialize;

use crate::probe::echo::PeerKind;
use crate::probe::{FailureKind, ProbeResult};

/// Stable diagnosis codes (snake_case in every output format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Ok,
    OkUnverifiedEcho,
    DnsFailure,
    ConnectRefused,
    ConnectTimeout,
    TlsHandshakeFailed,
    TlsCertUntrusted,
    TlsCertNameMismatch,
    TlsCertExpired,
    TlsToPlainPort,
    PlainToTlsPort,
    UpgradeHeaderStripped,
    NotAWebsocketEndpoint,
    RouteNotFound,
    NoAppInstances,
    AppUnreachable,
    ConnectionLimitReached,
    RouteServiceUnsupported,
    ApprouterWebsocketsDisabled,
    OriginRejected,
    AuthRequired,
    Forbidden,
    Redirected,
    PathNotFound,
    ClosedDuringHandshake,
    HandshakeTimeout,
    HandshakeInvalid,
    SubprotocolNotAccepted,
    NotHttp,
    UnexpectedStatus,
    EchoTimeout,
    EchoMismatch,
    ClosedDuringEcho,
    ProxyAuthRequired,
    ProxyRefused,
    ProxyTlsIntercepted,
    IdleTimeout,
    MessageTooLarge,
}

/// Who produced the answer the diagnosis rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// Nobody: the failure came before any peer spoke (DNS, TCP).
    Nobody,
    /// The Cloud Foundry router (`X-Cf-Routererror`).
    Gorouter,
    /// The bundled wscheck-server (`X-Wscheck-Server`).
    BundledServer,
    /// A server speaking the article's echo protocol.
    ArticleEchoServer,
    /// The SAP Application Router.
    Approuter,
    /// The app or a proxy in front of it: the answer carries no router or server mark.
    AppOrProxy,
    /// A TLS endpoint (load balancer or router) whose certificate or handshake failed.
    TlsEndpoint,
    /// The HTTP proxy tunnelled through.
    Proxy,
}

impl AnsweredBy {
    pub fn describe(self) -> &'static str {
        match self {
            AnsweredBy::Nobody => "nobody (no connection)",
            AnsweredBy::Gorouter => "the Cloud Foundry router (gorouter)",
            AnsweredBy::BundledServer => "the bundled wscheck-server (the app)",
            AnsweredBy::ArticleEchoServer => "an echo server speaking the article's protocol",
            AnsweredBy::Approuter => "the SAP Application Router",
            AnsweredBy::AppOrProxy => "the app or a proxy in front of it",
            AnsweredBy::TlsEndpoint => "the TLS endpoint (load balancer or router)",
            AnsweredBy::Proxy => "the HTTP proxy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

impl Code {
    pub const ALL: [Code; 38] = [
        Code::Ok,
        Code::OkUnverifiedEcho,
        Code::DnsFailure,
        Code::ConnectRefused,
        Code::ConnectTimeout,
        Code::TlsHandshakeFailed,
        Code::TlsCertUntrusted,
        Code::TlsCertNameMismatch,
        Code::TlsCertExpired,
        Code::TlsToPlainPort,
        Code::PlainToTlsPort,
        Code::UpgradeHeaderStripped,
        Code::NotAWebsocketEndpoint,
        Code::RouteNotFound,
        Code::NoAppInstances,
        Code::AppUnreachable,
        Code::ConnectionLimitReached,
        Code::RouteServiceUnsupported,
        Code::ApprouterWebsocketsDisabled,
        Code::OriginRejected,
        Code::AuthRequired,
        Code::Forbidden,
        Code::Redirected,
        Code::PathNotFound,
        Code::ClosedDuringHandshake,
        Code::HandshakeTimeout,
        Code::HandshakeInvalid,
        Code::SubprotocolNotAccepted,
        Code::NotHttp,
        Code::UnexpectedStatus,
        Code::EchoTimeout,
        Code::EchoMismatch,
        Code::ClosedDuringEcho,
        Code::ProxyAuthRequired,
        Code::ProxyRefused,
        Code::ProxyTlsIntercepted,
        Code::IdleTimeout,
        Code::MessageTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::OkUnverifiedEcho => "ok_unverified_echo",
            Code::DnsFailure => "dns_failure",
            Code::ConnectRefused => "connect_refused",
            Code::ConnectTimeout => "connect_timeout",
            Code::TlsHandshakeFailed => "tls_handshake_failed",
            Code::TlsCertUntrusted => "tls_cert_untrusted",
            Code::TlsCertNameMismatch => "tls_cert_name_mismatch",
            Code::TlsCertExpired => "tls_cert_expired",
            Code::TlsToPlainPort => "tls_to_plain_port",
            Code::PlainToTlsPort => "plain_to_tls_port",
            Code::UpgradeHeaderStripped => "upgrade_header_stripped",
            Code::NotAWebsocketEndpoint => "not_a_websocket_endpoint",
            Code::RouteNotFound => "route_not_found",
            Code::NoAppInstances => "no_app_instances",
            Code::AppUnreachable => "app_unreachable",
            Code::ConnectionLimitReached => "connection_limit_reached",
            Code::RouteServiceUnsupported => "route_service_unsupported",
            Code::ApprouterWebsocketsDisabled => "approuter_websockets_disabled",
            Code::OriginRejected => "origin_rejected",
            Code::AuthRequired => "auth_required",
            Code::Forbidden => "forbidden",
            Code::Redirected => "redirected",
            Code::PathNotFound => "path_not_found",
            Code::ClosedDuringHandshake => "closed_during_handshake",
            Code::HandshakeTimeout => "handshake_timeout",
            Code::HandshakeInvalid => "handshake_invalid",
            Code::SubprotocolNotAccepted => "subprotocol_not_accepted",
            Code::NotHttp => "not_http",
            Code::UnexpectedStatus => "unexpected_status",
            Code::EchoTimeout => "echo_timeout",
            Code::EchoMismatch => "echo_mismatch",
            Code::ClosedDuringEcho => "closed_during_echo",
            Code::ProxyAuthRequired => "proxy_auth_required",
            Code::ProxyRefused => "proxy_refused",
            Code::ProxyTlsIntercepted => "proxy_tls_intercepted",
            Code::IdleTimeout => "idle_timeout",
            Code::MessageTooLarge => "message_too_large",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(self, Code::Ok | Code::OkUnverifiedEcho)
    }

    /// What happened, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Code::Ok => "The WebSocket opened and the echo came back.",
            Code::OkUnverifiedEcho => {
                "The WebSocket opened; the peer did not echo, so the message path is not verified."
            }
            Code::DnsFailure => "The host name does not resolve.",
            Code::ConnectRefused => "Nothing accepts TCP connections on this port.",
            Code::ConnectTimeout => {
                "TCP connections to this port get no answer (filtered or black-holed)."
            }
            Code::TlsHandshakeFailed => "The TLS handshake failed.",
            Code::TlsCertUntrusted => "The server's certificate is not issued by a trusted CA.",
            Code::TlsCertNameMismatch => {
                "The server's certificate is not valid for this host name."
            }
            Code::TlsCertExpired => "The server's certificate is expired (or not yet valid).",
            Code::TlsToPlainPort => "wss:// was sent to a port that speaks plain HTTP.",
            Code::PlainToTlsPort => "ws:// was sent to a port that speaks TLS.",
            Code::UpgradeHeaderStripped => {
                "The app answered 426 Upgrade Required: the request reached it without its Upgrade/Connection headers."
            }
            Code::NotAWebsocketEndpoint => {
                "The server answered with a normal HTTP response instead of 101 Switching Protocols."
            }
            Code::RouteNotFound => {
                "The Cloud Foundry router knows no app for this host (404 unknown_route)."
            }
            Code::NoAppInstances => {
                "The route is mapped, but the app has no running instance (503 no_endpoints)."
            }
            Code::AppUnreachable => {
                "The router could not reach the app on its port (502 endpoint_failure)."
            }
            Code::ConnectionLimitReached => "The connection limit was reached (503).",
            Code::RouteServiceUnsupported => {
                "The route is bound to a route service; CF does not carry WebSockets through route services."
            }
            Code::ApprouterWebsocketsDisabled => {
                "The SAP Application Router refused the upgrade: WebSockets are disabled in xs-app.json."
            }
            Code::OriginRejected => {
                "The server refused the handshake because of its Origin header."
            }
            Code::AuthRequired => {
                "The server wants authentication first (401, or a redirect to a login page)."
            }
            Code::Forbidden => "The server refused the handshake (403).",
            Code::Redirected => {
                "The server answered the handshake with a redirect; WebSocket clients do not follow redirects."
            }
            Code::PathNotFound => {
                "The server has nothing at this path (404 from the app or a proxy, not from the CF router)."
            }
            Code::ClosedDuringHandshake => {
                "The connection was closed before the server answered the upgrade."
            }
            Code::HandshakeTimeout => {
                "The server accepted the connection but never answered the upgrade request."
            }
            Code::HandshakeInvalid => {
                "The server answered 101 but broke the WebSocket handshake rules."
            }
            Code::SubprotocolNotAccepted => {
                "The server accepted the WebSocket but picked none of the offered subprotocols; browsers then fail the connection."
            }
            Code::NotHttp => "The port answered with something that is not HTTP.",
            Code::UnexpectedStatus => {
                "The server refused the handshake with an unexpected HTTP status."
            }
            Code::EchoTimeout => "The WebSocket opened, but the echo never came back.",
            Code::EchoMismatch => {
                "The WebSocket opened, but what came back was not the message sent."
            }
            Code::ClosedDuringEcho => {
                "The WebSocket opened, then was closed before the echo came back."
            }
            Code::ProxyAuthRequired => {
                "The HTTP proxy wants credentials before it opens a tunnel (407)."
            }
            Code::ProxyRefused => {
                "The HTTP proxy could not be reached or refused to open a tunnel to the route."
            }
            Code::ProxyTlsIntercepted => {
                "Through the proxy, the route shows a certificate from an unexpected issuer: the proxy intercepts TLS."
            }
            Code::IdleTimeout => {
                "An idle WebSocket was cut by something on the way (a load balancer, proxy or router idle timeout)."
            }
            Code::MessageTooLarge => {
                "Messages above a size limit do not come back: the connection is closed or reset instead."
            }
        }
    }

    /// What to do.
    pub fn fix(self) -> &'static str {
        match self {
            Code::Ok => "Nothing to fix.",
            Code::OkUnverifiedEcho => {
                "Nothing to fix if your app does not echo. Push the bundled wscheck-server to the same domain to verify the full message path."
            }
            Code::DnsFailure => {
                "Check the route's spelling and domain (`cf routes`, `cf app APP`); on SAP BTP the domain looks like cfapps.<region>.hana.ondemand.com."
            }
            Code::ConnectRefused => {
                "Use the port-less URL: CF routes take only 443 (wss://) and 80 (ws://); the app's $PORT (8080) is never reachable from outside."
            }
            Code::ConnectTimeout => {
                "Use wss://<route> without a port. If that times out too, a firewall or proxy blocks the way: try from another network or set --connect-timeout higher."
            }
            Code::TlsHandshakeFailed => {
                "Check that this port speaks TLS and that the client offers TLS 1.2 or 1.3; see the detail for the handshake error."
            }
            Code::TlsCertUntrusted => {
                "If a corporate proxy intercepts TLS, the issuer names it: trust its CA (--cacert) or go around it. Otherwise the route's certificate chain is incomplete or self-signed."
            }
            Code::TlsCertNameMismatch => {
                "Use the route's exact host name (a custom domain needs its own certificate on the router or load balancer)."
            }
            Code::TlsCertExpired => {
                "The certificate on the router or load balancer must be renewed (or the client's clock is wrong)."
            }
            Code::TlsToPlainPort => {
                "Use ws:// for this port, or better wss:// without a port: on CF, TLS ends at the router on 443."
            }
            Code::PlainToTlsPort => "Use wss:// for this port (TLS), or wss:// without a port.",
            Code::UpgradeHeaderStripped => {
                "A proxy between client and app dropped the hop-by-hop Upgrade/Connection headers (nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade/Connection), or the client does not speak WebSocket (a raw TCP device needs a TCP route, which SAP BTP does not offer)."
            }
            Code::NotAWebsocketEndpoint => {
                "Point the client at the path where the app accepts WebSockets, and make the WebSocket server share the HTTP server on $PORT."
            }
            Code::RouteNotFound => {
                "Map the route to the app (`cf map-route`), check the host and path, and start the app: a stopped app's route is pruned."
            }
            Code::NoAppInstances => {
                "Start the app or scale it up (`cf start`, `cf scale -i`); `cf app APP` shows why instances are down."
            }
            Code::AppUnreachable => {
                "The app must listen on $PORT (8080) bound to 0.0.0.0, not 127.0.0.1 or another port; `cf logs APP --recent` shows crashes."
            }
            Code::ConnectionLimitReached => {
                "Too many connections to this app: scale out (`cf scale -i`) or raise the limit (gorouter: router.backends.max_conns)."
            }
            Code::RouteServiceUnsupported => {
                "Unbind the route service from this route, or serve WebSockets on a route without one."
            }
            Code::ApprouterWebsocketsDisabled => {
                "Set \"websockets\": {\"enabled\": true} in the approuter's xs-app.json and push it again."
            }
            Code::OriginRejected => {
                "Send an Origin the server allows (--origin), or allow this origin on the server (approuter: WS_ALLOWED_ORIGINS)."
            }
            Code::AuthRequired => {
                "Log in first and pass the session or token (-H 'Cookie: JSESSIONID=...' or -H 'Authorization: Bearer ...'); the approuter needs its session cookie."
            }
            Code::Forbidden => {
                "Check the user's roles and scopes, and any IP allow-list in front of the app."
            }
            Code::Redirected => {
                "Use the URL the redirect points to (see Location); a redirect to https means use wss://."
            }
            Code::PathNotFound => {
                "Check the path: the app (or the approuter's xs-app.json routes) has nothing there."
            }
            Code::ClosedDuringHandshake => {
                "Something between client and app dropped the connection: check the app's logs and any proxy on the way."
            }
            Code::HandshakeTimeout => {
                "The app (or a proxy) accepted TCP but did not answer: it may not be an HTTP server, or it is stuck; check its logs."
            }
            Code::HandshakeInvalid => {
                "Fix the server's WebSocket implementation (see the detail); a proxy that rewrites the 101 answer can also cause this."
            }
            Code::SubprotocolNotAccepted => {
                "Make the server pick one of the offered subprotocols, or do not offer any."
            }
            Code::NotHttp => {
                "This port serves another protocol: use the route's port-less wss:// URL."
            }
            Code::UnexpectedStatus => {
                "See the status and body in the detail; an answer without X-Cf-Routererror came from the app or a proxy, not from the CF router."
            }
            Code::EchoTimeout => {
                "The app accepted the WebSocket but did not answer: check its message handler; a proxy that buffers frames can also cause this."
            }
            Code::EchoMismatch => {
                "The peer speaks another protocol than echo, or a proxy alters messages."
            }
            Code::ClosedDuringEcho => {
                "See the close code: 1009 means the message was too big, 1008 a policy (approuter session end), 1011 a server error."
            }
            Code::ProxyAuthRequired => {
                "Give the proxy's credentials: -x http://user:pass@proxy:port (or in https_proxy); ask IT which account the proxy accepts."
            }
            Code::ProxyRefused => {
                "Check the proxy address and port; many corporate proxies allow CONNECT only to port 443, so use wss:// without a port, or ask IT to allow the route."
            }
            Code::ProxyTlsIntercepted => {
                "The proxy re-signs TLS with its own CA: trust that CA (--cacert), or ask IT to exempt the route from TLS inspection, which often breaks WebSockets."
            }
            Code::IdleTimeout => {
                "Send a ping (or any message) more often than the cut-off, in the client or the app; the bundled server pings every 25 s for this reason."
            }
            Code::MessageTooLarge => {
                "Keep messages below the largest size that passed, or raise the limit where it is set (the app's WebSocket library, a proxy's buffer, the approuter)."
            }
        }
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Who answered, from the marks on the response and the peer seen.
fn answered_by(result: &ProbeResult) -> AnsweredBy {
    let Some(response) = &result.response else {
        return match result.failure.as_ref().map(|f| f.kind) {
            Some(
                FailureKind::DnsFailed
                | FailureKind::DnsTimeout
                | FailureKind::ConnectRefused
                | FailureKind::ConnectTimeout
                | FailureKind::ConnectFailed,
            ) => AnsweredBy::Nobody,
            Some(
                FailureKind::TlsCertUntrusted
                | FailureKind::TlsCertNameMismatch
                | FailureKind::TlsCertExpired
                | FailureKind::TlsCertInvalid
                | FailureKind::TlsHandshakeFailed
                | FailureKind::TlsTimeout,
            ) => AnsweredBy::TlsEndpoint,
            _ => AnsweredBy::AppOrProxy,
        };
    };
    if matches!(
        result.failure.as_ref().map(|f| f.kind),
        Some(FailureKind::ProxyAuthRequired | FailureKind::ProxyRefused)
    ) {
        AnsweredBy::Proxy
    } else if response.header("x-cf-routererror").is_some() {
        AnsweredBy::Gorouter
    } else if response.header(wscheck_server::SERVER_HEADER).is_some()
        || result.peer == PeerKind::WscheckServer
    {
        AnsweredBy::BundledServer
    } else if result.peer == PeerKind::ArticleEchoServer {
        AnsweredBy::ArticleEchoServer
    } else if looks_like_approuter(result) {
        AnsweredBy::Approuter
    } else {
        AnsweredBy::AppOrProxy
    }
}

/// The approuter's own refusals (its `lib/websockets/WsProxy.js` messages).
fn looks_like_approuter(result: &ProbeResult) -> bool {
    result.response.as_ref().is_some_and(|r| {
        [
            "websockets are disabled",
            "missing origin header",
            "not able to match the web socket request",
        ]
        .iter()
        .any(|m| contains_ci(&r.body, m))
            || (contains_ci(&r.body, "origin '") && contains_ci(&r.body, "is not allowed"))
    })
}

/// Classifies a non-101 answer.
fn classify_status(result: &ProbeResult) -> Code {
    let Some(response) = &result.response else {
        return Code::UnexpectedStatus;
    };
    let status = response.status;
    if let Some(router_error) = response.header("x-cf-routererror") {
        let error = router_error.to_ascii_lowercase();
        return if error.starts_with("unknown_route") {
            Code::RouteNotFound
        } else if error.starts_with("no_endpoints") {
            Code::NoAppInstances
        } else if error.starts_with("endpoint_failure") {
            Code::AppUnreachable
        } else if error.contains("connection limit") {
            Code::ConnectionLimitReached
        } else if error.starts_with("route_service_unsupported") {
            Code::RouteServiceUnsupported
        } else {
            Code::UnexpectedStatus
        };
    }
    let body = &response.body;
    match status {
        426 => Code::UpgradeHeaderStripped,
        400 if contains_ci(body, "plain http request was sent to https port") => {
            Code::PlainToTlsPort
        }
        403 if contains_ci(body, "websockets are disabled")
            || contains_ci(body, "websocket is disabled") =>
        {
            Code::ApprouterWebsocketsDisabled
        }
        403 if contains_ci(body, "origin") => Code::OriginRejected,
        403 => Code::Forbidden,
        401 => Code::AuthRequired,
        300..=399 => {
            let location = response
                .header("location")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if [
                "login",
                "oauth",
                "authorize",
                "saml",
                "/uaa",
                "signin",
                "sso",
            ]
            .iter()
            .any(|hint| location.contains(hint))
            {
                Code::AuthRequired
            } else {
                Code::Redirected
            }
        }
        404 => Code::PathNotFound,
        503 if contains_ci(body, "connection limit") => Code::ConnectionLimitReached,
        200..=299 => Code::NotAWebsocketEndpoint,
        _ => Code::UnexpectedStatus,
    }
}

/// The diagnosis of one probe.
pub fn diagnose(result: &ProbeResult) -> Diagnosis {
    let code = match &result.failure {
        None if result.echo_verified() => Code::Ok,
        None => Code::OkUnverifiedEcho,
        Some(failure) => match failure.kind {
            FailureKind::DnsFailed | FailureKind::DnsTimeout => Code::DnsFailure,
            FailureKind::ConnectRefused | FailureKind::ConnectFailed => Code::ConnectRefused,
            FailureKind::ConnectTimeout => Code::ConnectTimeout,
            FailureKind::TlsToPlainPeer => Code::TlsToPlainPort,
            FailureKind::ProxyAuthRequired => Code::ProxyAuthRequired,
            FailureKind::ProxyRefused => Code::ProxyRefused,
            FailureKind::TlsCertUntrusted if result.route.proxy.is_some() => {
                Code::ProxyTlsIntercepted
            }
            FailureKind::TlsCertUntrusted | FailureKind::TlsCertInvalid => Code::TlsCertUntrusted,
            FailureKind::TlsCertNameMismatch => Code::TlsCertNameMismatch,
            FailureKind::TlsCertExpired => Code::TlsCertExpired,
            FailureKind::TlsHandshakeFailed | FailureKind::TlsTimeout => Code::TlsHandshakeFailed,
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

/// This probe's particulars, in one line.
fn detail(result: &ProbeResult, code: Code) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(response) = &result.response
        && response.status != 101
    {
        parts.push(format!("HTTP {} {}", response.status, response.reason));
        if let Some(error) = response.header("x-cf-routererror") {
            parts.push(format!("X-Cf-Routererror: {error}"));
        }
        if let Some(location) = response.header("location") {
            parts.push(format!("Location: {location}"));
        }
        let body = response.body.trim();
        if !body.is_empty() {
            let first_line = body.lines().next().unwrap_or_default();
            let clipped: String = first_line.chars().take(160).collect();
            parts.push(format!("body: {clipped:?}"));
        }
    } else if let Some(failure) = &result.failure {
        parts.push(failure.message.clone());
    }
    if let Some(cert) = result.tls.as_ref().and_then(|t| t.certificate.as_ref())
        && matches!(
            code,
            Code::TlsCertUntrusted
                | Code::TlsCertNameMismatch
                | Code::TlsCertExpired
                | Code::ProxyTlsIntercepted
        )
    {
        if code == Code::ProxyTlsIntercepted {
            parts.push(format!(
                "through proxy {}, the route's certificate is issued by {}: the proxy re-signs TLS",
                result.route.proxy.as_deref().unwrap_or("?"),
                cert.issuer
            ));
        }
        parts.push(format!(
            "certificate for {} issued by {}",
            cert.sans.join(", "),
            cert.issuer
        ));
        if cert.expires_in_days < 0 {
            parts.push(format!(
                "expired {} ({} days ago)",
                cert.not_after, -cert.expires_in_days
            ));
        }
    }
    match code {
        Code::UpgradeHeaderStripped => parts.push(match answered_by(result) {
            AnsweredBy::BundledServer => "the app itself (wscheck-server) answered 426, so a proxy between the client and the app removed the headers".to_owned(),
            _ => "the 426 came from the app or a proxy (gorouter never sends 426)".to_owned(),
        }),
        Code::Ok | Code::OkUnverifiedEcho => {
            if let Some(echo) = &result.echo {
                if let Some(rtt) = echo.rtt_ms {
                    parts.push(format!("echo round trip {rtt:.1} ms"));
                }
                if echo.greeting.is_some() {
                    parts.push("greeting: the article's echo server protocol".to_owned());
                }
            }
            if let Some(protocol) = &result.subprotocol {
                parts.push(format!("subprotocol: {protocol}"));
            }
        }
        _ => {}
    }
    if result.credentials_held_back {
        parts.push(
            "credentials held back on plaintext ws:// (--allow-plaintext-credentials)".to_owned(),
        );
    }
    parts.join("; ")
}

/// Connections that could not open, counted by diagnosis code.
#[derive(Debug, Clone, Serialize)]
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
        }
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
            (400, "empty_host", Code::UnexpectedStatus),
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
    fn every_code_has_distinct_text_and_a_snake_case_name() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(!code.summary().is_empty() && !code.fix().is_empty());
        }
    }
}
