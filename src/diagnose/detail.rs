//! A probe's particulars in one line: the answer's status, router error and body excerpt,
//! the certificate, the echo, and what the code means for this probe in particular (which
//! close code, which kind of endpoint failure, which app stack answered).

use super::codes::Code;
use super::stacks::stack_hint;
use super::status::{AnsweredBy, answered_by};
use crate::probe::ProbeResult;
use crate::probe::upgrade::HttpResponse;

/// A 502 that took this long came after the router waited for the app, not at once.
const SLOW_ANSWER_MS: f64 = 3000.0;

/// This probe's particulars, in one line.
pub(super) fn detail(result: &ProbeResult, code: Code) -> String {
    let mut parts: Vec<String> = Vec::new();
    match &result.response {
        Some(response) if response.status != 101 => parts.extend(answer(response)),
        // The close is told in full by `close` below.
        _ if code == Code::ClosedDuringEcho => {}
        _ => parts.extend(result.failure.as_ref().map(|f| f.message.clone())),
    }
    parts.extend(certificate(result, code));
    parts.extend(meaning(result, code));
    if let Some(hint) = result.response.as_ref().and_then(|r| stack_hint(r, code)) {
        parts.push(hint);
    }
    if let Some(proxy) = &result.route.proxy
        && !code.is_ok()
        && matches!(code, Code::ClosedDuringHandshake | Code::HandshakeTimeout)
    {
        parts.push(format!(
            "through the proxy {proxy}, whose tunnel opened: the proxy, or what is behind it, dropped the handshake"
        ));
    }
    if result.credentials_held_back {
        parts.push(
            "credentials held back on plaintext ws:// (--allow-plaintext-credentials)".to_owned(),
        );
    }
    parts.join("; ")
}

/// An HTTP answer: status, router error, Location, and the body's text.
fn answer(response: &HttpResponse) -> Vec<String> {
    let mut parts = vec![format!("HTTP {} {}", response.status, response.reason)];
    if let Some(error) = response.header("x-cf-routererror") {
        parts.push(format!("X-Cf-Routererror: {error}"));
    }
    if let Some(location) = response.header("location") {
        parts.push(format!("Location: {location}"));
    }
    let body = response.excerpt();
    if !body.is_empty() {
        parts.push(format!("body: {body:?}"));
    }
    parts
}

/// The certificate, for the codes about it.
fn certificate(result: &ProbeResult, code: Code) -> Vec<String> {
    let mut parts = Vec::new();
    let Some(cert) = result.tls.as_ref().and_then(|t| t.certificate.as_ref()) else {
        return parts;
    };
    if !matches!(
        code,
        Code::TlsCertUntrusted
            | Code::TlsCertNameMismatch
            | Code::TlsCertExpired
            | Code::ProxyTlsIntercepted
    ) {
        return parts;
    }
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
    parts
}

/// What the code means for this probe in particular.
fn meaning(result: &ProbeResult, code: Code) -> Vec<String> {
    match code {
        Code::UpgradeHeaderStripped => vec![match answered_by(result) {
            AnsweredBy::BundledServer => "the app itself (wscheck-server) answered 426, so a proxy between the client and the app removed the headers".to_owned(),
            _ => "the 426 came from the app or a proxy (gorouter never sends 426)".to_owned(),
        }],
        Code::Ok | Code::OkUnverifiedEcho => opened(result),
        Code::OkProtocol => result.protocol.as_ref().map(protocol_opened).into_iter().collect(),
        Code::SocketioPath => {
            let mut parts: Vec<String> = result.protocol.iter().map(protocol_opened).collect();
            parts.push(
                "the route's root refused the WebSocket; /socket.io/?EIO=4&transport=websocket completed it".to_owned(),
            );
            parts
        }
        Code::AppUnreachable => endpoint_failure(result).into_iter().collect(),
        Code::ClosedDuringEcho => close(result).into_iter().collect(),
        Code::InternalRouteNoPolicy | Code::ConnectRefused | Code::DnsFailure
            if result.candidate.is_internal() =>
        {
            vec![internal_route(result, code)]
        }
        _ => Vec::new(),
    }
}

/// What a failure means on an internal route (`*.apps.internal`).
fn internal_route(result: &ProbeResult, code: Code) -> String {
    let port = result.candidate.port;
    let host = result
        .candidate
        .host_header
        .split(':')
        .next()
        .unwrap_or_default();
    match code {
        Code::DnsFailure => format!(
            "{host} resolves only inside Cloud Foundry's containers: run wscheck there (cf ssh APP -c 'app/wscheck {host}', or cf run-task)"
        ),
        Code::ConnectRefused => format!(
            "an internal route: the refusal came from the app's container, so a network policy lets port {port} through but nothing listens there (the app must listen on 0.0.0.0:{port}); without a policy (cf network-policies) add one: cf add-network-policy SOURCE_APP DEST_APP --port {port} --protocol tcp"
        ),
        _ => format!(
            "no network policy lets this app reach port {port} of the apps behind {host}: cf add-network-policy SOURCE_APP DEST_APP --port {port} --protocol tcp"
        ),
    }
}

/// A WebSocket that opened: the echo, or what the app sent instead.
fn opened(result: &ProbeResult) -> Vec<String> {
    let mut parts = Vec::new();
    match &result.echo {
        None => parts.push("echo skipped (--no-echo)".to_owned()),
        Some(echo) => {
            if let Some(rtt) = echo.rtt_ms {
                parts.push(format!("echo round trip {rtt:.1} ms"));
            } else if let Some(sent) = &echo.unexpected {
                parts.push(format!("not an echo server: the app sent: {sent}"));
            } else {
                parts.push("nothing came back: the app does not echo".to_owned());
            }
            if echo.greeting.is_some() {
                parts.push("greeting: the article's echo server protocol".to_owned());
            }
        }
    }
    if let Some(protocol) = &result.subprotocol {
        parts.push(format!("subprotocol: {protocol}"));
    }
    parts
}

/// gorouter's `endpoint_failure (<go error>)`: which failure it was, and how long the router
/// took to give up. A refused dial is an app not listening on `$PORT`; an EOF is an app that
/// accepted and closed (listening, but it dropped this request); a timeout is an app that
/// accepted and hung; a TLS error is the router's TLS to the app (route integrity).
fn endpoint_failure(result: &ProbeResult) -> Option<String> {
    let error = result.response.as_ref()?.header("x-cf-routererror")?;
    let lower = error.to_ascii_lowercase();
    let why = if lower.contains("connection refused") {
        "the router's dial was refused: nothing listens on the app's port (not $PORT, or bound to 127.0.0.1, or crashed)"
    } else if lower.contains("eof") || lower.contains("connection reset") {
        "the app accepted the connection and closed it without answering: it listens on $PORT, but dropped this request (a WebSocket server that closes upgrades on a path it does not serve, or a crash while handling it)"
    } else if lower.contains("timeout") || lower.contains("deadline exceeded") {
        "the app accepted the connection but did not answer in time: it is stuck or overloaded"
    } else if lower.contains("tls") || lower.contains("x509") || lower.contains("certificate") {
        "the router's TLS connection to the app failed (route integrity / mTLS between router and app)"
    } else {
        "see the router's error in parentheses"
    };
    let took = result.timings.upgrade.unwrap_or_default();
    let when = if took >= SLOW_ANSWER_MS {
        format!(
            "the 502 came after {:.1} s: the router waited for the app",
            took / 1000.0
        )
    } else {
        "the 502 came at once".to_owned()
    };
    Some(format!("{why}; {when}"))
}

/// A close during the echo: its code and reason, and what they mean.
fn close(result: &ProbeResult) -> Option<String> {
    let echo = result.echo.as_ref()?;
    let reason = echo.close_reason.as_deref().unwrap_or_default();
    let Some(code) = echo.close_code else {
        return Some(format!(
            "the connection ended without a close frame: {reason}"
        ));
    };
    let meaning = match code {
        1000 => "a normal close: the app ended the connection on purpose",
        1001 => "going away: the app (or a proxy) is shutting down or restarting",
        1002 => "a protocol error: the peer did not like our frames",
        1003 => "unsupported data: the app does not accept text messages",
        1007 => "invalid payload data",
        1008 => {
            "a policy violation: the app (or the approuter, when a session ends) refused the connection by its rules, e.g. an auth, origin or session check"
        }
        1009 => "message too big: the message exceeded the peer's size limit",
        1010 => "a required extension was not negotiated",
        1011 => "a server error: the app failed while handling the connection; see its logs",
        1012 | 1013 => "the server is restarting or overloaded: try again later",
        4000..=4999 => {
            "an application-defined code: the app's own protocol closed the connection (see the reason)"
        }
        _ => "see the reason",
    };
    let mut text = format!("the peer closed the WebSocket with {code} {reason:?}: {meaning}");
    if names_a_subprotocol(reason) {
        text.push_str(
            "; the app wants a subprotocol: offer the one it expects with --subprotocol NAME",
        );
    }
    Some(text)
}

/// Whether a close reason talks about subprotocols (e.g. graphql-ws's 4406 "Subprotocol
/// not acceptable").
fn names_a_subprotocol(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    lower.contains("subprotocol") || lower.contains("sec-websocket-protocol")
}

/// A protocol's opening, as it went: `socket.io handshake completed (sid ..., namespace /
/// connected; EIO4, pingInterval 25000 ms + pingTimeout 20000 ms)`.
fn protocol_opened(info: &crate::probe::protocol::ProtocolInfo) -> String {
    let said = |key: &str| {
        info.said
            .get(key)
            .map(|v| v.to_string().trim_matches('"').to_owned())
    };
    match info.name {
        "graphql" => {
            return format!(
                "GraphQL over WebSocket handshake completed ({}: connection_init answered with connection_ack)",
                info.version.as_deref().unwrap_or("no subprotocol")
            );
        }
        "stomp" => {
            return format!(
                "STOMP CONNECTED (version {}, server {}, heart-beat {})",
                info.version.as_deref().unwrap_or("?"),
                said("server").unwrap_or_else(|| "not named".to_owned()),
                said("heart_beat").unwrap_or_else(|| "0,0".to_owned())
            );
        }
        "sockjs" => {
            let echo = if said("echo").as_deref() == Some("true") {
                "the echo came back through SockJS's framing"
            } else {
                "no echo (the app need not echo)"
            };
            return format!(
                "SockJS session opened (websocket transport enabled, cookie_needed {}; o frame at {}; {echo})",
                said("cookie_needed").unwrap_or_else(|| "?".to_owned()),
                said("session_path").unwrap_or_default()
            );
        }
        _ => {}
    }
    let mut text = format!(
        "{} handshake completed (sid {}, namespace / connected",
        info.name,
        said("sid").unwrap_or_else(|| "?".to_owned())
    );
    if let (Some(interval), Some(timeout)) = (said("ping_interval_ms"), said("ping_timeout_ms")) {
        text.push_str(&format!(
            "; {}, pingInterval {interval} ms + pingTimeout {timeout} ms",
            info.version.as_deref().unwrap_or("Engine.IO")
        ));
    }
    text.push(')');
    if let Some(interval) = said("ping_interval_ms").and_then(|i| i.parse::<u64>().ok()) {
        text.push_str(&ping_against_idle_cutoff(interval));
    }
    text
}

/// The idle cut-off a WebSocket on CF usually meets first: a load balancer's in front of
/// gorouter (AWS ELB/ALB: 60 s); gorouter itself sets none.
const KNOWN_IDLE_CUTOFF_MS: u64 = 60_000;

/// Whether the server's pings come often enough to keep a connection through that cut-off.
fn ping_against_idle_cutoff(interval_ms: u64) -> String {
    if interval_ms < KNOWN_IDLE_CUTOFF_MS {
        format!(
            "; its pings every {} s keep connections alive through a 60 s load balancer idle cut-off (measure yours with --hold)",
            interval_ms / 1000
        )
    } else {
        format!(
            "; its pings every {} s come too late for a 60 s load balancer idle cut-off: set pingInterval below it (e.g. 25000)",
            interval_ms / 1000
        )
    }
}
