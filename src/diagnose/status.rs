//! What an answer tells: who gave it (router, approuter, bundled server, app, proxy) and
//! which code a refusal (any status but 101) stands for.

use schemars::JsonSchema;
use serde::Serialize;

use super::codes::Code;
use crate::probe::echo::PeerKind;
use crate::probe::{FailureKind, ProbeResult};

/// Who produced the answer the diagnosis rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// Nobody: the failure came before any peer spoke (DNS, TCP, a silent TLS port, an
    /// unreachable proxy).
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
            AnsweredBy::Nobody => "nobody (nothing answered)",
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

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Who answered, from the marks on the response and the peer seen.
pub(super) fn answered_by(result: &ProbeResult) -> AnsweredBy {
    let Some(response) = &result.response else {
        return match result.failure.as_ref().map(|f| f.kind) {
            Some(
                FailureKind::DnsFailed
                | FailureKind::DnsTimeout
                | FailureKind::ConnectRefused
                | FailureKind::ConnectTimeout
                | FailureKind::ConnectFailed
                | FailureKind::ProxyUnreachable
                | FailureKind::TlsTimeout,
            ) => AnsweredBy::Nobody,
            Some(
                FailureKind::TlsCertUntrusted
                | FailureKind::TlsCertNameMismatch
                | FailureKind::TlsCertExpired
                | FailureKind::TlsCertInvalid
                | FailureKind::TlsHandshakeFailed,
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
pub(super) fn classify_status(result: &ProbeResult) -> Code {
    let Some(response) = &result.response else {
        return Code::UnexpectedStatus;
    };
    let status = response.status;
    if let Some(router_error) = response.header("x-cf-routererror") {
        return router_code(status, router_error);
    }
    let body = &response.body;
    match status {
        426 => Code::UpgradeHeaderStripped,
        // engine.io's answer to a WebSocket URL without transport=websocket.
        400 if contains_ci(body, "transport unknown") => Code::SocketioTransportMissing,
        // engine.io 6 without allowEIO3, asked for EIO=3 (written after its 101).
        400 if contains_ci(body, "unsupported protocol version") => Code::SocketioVersionMismatch,
        // python-socketio (Flask-SocketIO) and its cors_allowed_origins.
        400 if contains_ci(body, "not an accepted origin") => Code::OriginRejected,
        // nginx's and Go's (gorouter's) answers to plain HTTP on a TLS port.
        400 if contains_ci(body, "plain http request was sent to https port")
            || contains_ci(body, "client sent an http request to an https server") =>
        {
            Code::PlainToTlsPort
        }
        403 if contains_ci(body, "websockets are disabled")
            || contains_ci(body, "websocket is disabled") =>
        {
            Code::ApprouterWebsocketsDisabled
        }
        400 | 403 if origin_refused(body) => Code::OriginRejected,
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

/// The code of a gorouter error (`X-Cf-Routererror`, matched case-insensitively). A 400
/// `unknown_route` is gorouter's answer to an `X-Cf-App-Instance` naming no instance.
fn router_code(status: u16, router_error: &str) -> Code {
    let error = router_error.to_ascii_lowercase();
    if error.starts_with("unknown_route") {
        if status == 400 {
            Code::InstanceNotFound
        } else {
            Code::RouteNotFound
        }
    } else if error.starts_with("no_endpoints") {
        Code::NoAppInstances
    } else if error.starts_with("endpoint_failure") {
        Code::AppUnreachable
    } else if error.contains("connection limit") {
        Code::ConnectionLimitReached
    } else if error.starts_with("route_service_unsupported") {
        Code::RouteServiceUnsupported
    } else if error.starts_with("invalid_cf_app_instance_header") {
        Code::InvalidCfAppInstanceHeader
    } else if error.starts_with("empty_host") {
        Code::EmptyHost
    } else {
        Code::UnexpectedStatus
    }
}

/// Whether a refusal's text says the Origin was not accepted, whatever the status: python
/// engineio's `"<origin>" is not an accepted origin.` (400), the approuter's `Origin '<o>'
/// is not allowed`, gorilla's `request origin not allowed by Upgrader.CheckOrigin` (403).
fn origin_refused(body: &str) -> bool {
    contains_ci(body, "origin")
        && [
            "not an accepted origin",
            "not allowed",
            "not accepted",
            "not permitted",
            "rejected",
            "invalid origin",
            "forbidden",
            "disallowed",
        ]
        .iter()
        .any(|phrase| contains_ci(body, phrase))
}
