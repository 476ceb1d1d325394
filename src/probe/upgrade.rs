//! Stage 4: the HTTP upgrade (`client_async`), sent as a browser would send it: Host with
//! the port only when not the scheme's default, Origin, User-Agent, user headers;
//! credentials held back on plaintext unless allowed.

use std::time::Duration;

use base64::Engine;
use tokio::io::AsyncRead;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response, generate_key};

use super::answer::Head;
use super::failure::{Failure, FailureKind};
use super::wire::{WireLog, looks_like_http, looks_like_tls};
use crate::plan::{CREDENTIAL_HEADERS, Candidate, Plan};

pub use super::answer::{BODY_LIMIT, HttpResponse};

/// Builds the upgrade request for `candidate` at `path`. Returns the request and whether
/// credentials were held back.
pub fn build_request(
    plan: &Plan,
    candidate: &Candidate,
    path: &str,
) -> Result<(Request, bool), String> {
    let uri = format!(
        "{}://{}{path}",
        candidate.scheme.as_str(),
        candidate.host_header
    );
    let mut builder = Request::builder()
        .method("GET")
        .uri(&uri)
        .header("Host", host_header(plan, candidate))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key());
    let offered = super::protocol::subprotocols_to_offer(plan.protocol, path, &plan.subprotocols);
    let offered = (!offered.is_empty()).then(|| offered.join(", "));
    let (headers, hold_back) = browser_headers(plan, candidate, offered);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(())
        .map_err(|e| format!("cannot build the request for {uri}: {e}"))?;
    Ok((request, hold_back))
}

/// The Host header: the user's (`-H Host:`), else the candidate's.
pub fn host_header<'a>(plan: &'a Plan, candidate: &'a Candidate) -> &'a str {
    plan.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or(candidate.host_header.as_str(), |(_, v)| v.as_str())
}

/// The headers a browser's request carries after Host and the upgrade's own: User-Agent,
/// Origin, the subprotocols `offered`, Basic credentials from the URL, the user's headers.
/// Credentials are held back on plaintext unless allowed; the flag says whether they were.
pub fn browser_headers(
    plan: &Plan,
    candidate: &Candidate,
    offered: Option<String>,
) -> (Vec<(String, String)>, bool) {
    let hold_back =
        !candidate.scheme.is_tls() && !plan.allow_plaintext_credentials && plan.has_credentials();
    let user_sets = |name: &str| {
        plan.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut headers = Vec::new();
    if !user_sets("user-agent") {
        let agent = concat!("wscheck/", env!("CARGO_PKG_VERSION"));
        headers.push(("User-Agent".to_owned(), agent.to_owned()));
    }
    if let Some(origin) = plan.origin_for(candidate)
        && !user_sets("origin")
    {
        headers.push(("Origin".to_owned(), origin));
    }
    if let Some(offered) = offered {
        headers.push(("Sec-WebSocket-Protocol".to_owned(), offered));
    }
    if let Some((user, pass)) = &plan.target.userinfo
        && !hold_back
        && !user_sets("authorization")
    {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        headers.push(("Authorization".to_owned(), format!("Basic {token}")));
    }
    for (name, value) in &plan.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || (hold_back && CREDENTIAL_HEADERS.contains(&lower.as_str())) {
            continue;
        }
        headers.push((name.clone(), value.clone()));
    }
    (headers, hold_back)
}

/// Splits the raw request head into lines for the report.
pub fn head_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").map(str::to_owned).collect()
}

/// What a 101 told: the response, the subprotocol picked, and whether the bundled server
/// sent it.
pub struct Accepted {
    pub response: HttpResponse,
    pub subprotocol: Option<String>,
    pub from_bundled_server: bool,
}

impl Accepted {
    pub fn new(response: &Response) -> Self {
        Self {
            response: HttpResponse::from_tungstenite(response, &[]),
            subprotocol: response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            from_bundled_server: response
                .headers()
                .contains_key(wscheck_server::SERVER_HEADER),
        }
    }
}

/// A handshake that failed: why, the answer if it was HTTP, and whether the bundled
/// server gave it.
pub struct Refusal {
    pub failure: Failure,
    pub response: Option<HttpResponse>,
    pub from_bundled_server: bool,
}

/// The first bytes each way of a probe's connection: TCP (under TLS) and HTTP.
pub struct Logs<'a> {
    pub tcp: &'a WireLog,
    pub http: &'a WireLog,
}

fn first_read(log: &WireLog) -> Vec<u8> {
    log.lock().map(|w| w.read.clone()).unwrap_or_default()
}

/// Classifies a failed handshake. Any HTTP/1.x answer but a 101 is a refusal, whether
/// tungstenite took it (`WsError::Http`) or not (an `HTTP/1.0` status line, a header it
/// rejects): its body is read from `stream`, briefly (the report needs the text, not the
/// stream). A 101 that failed the checks is kept as the response.
pub async fn refusal<S: AsyncRead + Unpin>(
    error: WsError,
    stream: &mut S,
    candidate: &Candidate,
    logs: Logs<'_>,
    wait: Duration,
) -> Refusal {
    let got = first_read(logs.http);
    let answer = match &error {
        WsError::Http(response) => {
            let tail = response.body().clone().unwrap_or_default();
            Some((Head::from_tungstenite(response), tail))
        }
        _ => Head::parse(&got).map(|head| {
            let tail = got[head.len..].to_vec();
            (head, tail)
        }),
    };
    let switched = match answer {
        Some((head, mut body)) if head.status != 101 => {
            head.complete_body(stream, &mut body, wait).await;
            let http = head.into_response(&body);
            return Refusal {
                failure: Failure::new(
                    FailureKind::HttpRefused,
                    format!("HTTP {} {}", http.status, http.reason),
                ),
                from_bundled_server: http.header(wscheck_server::SERVER_HEADER).is_some(),
                response: Some(http),
            };
        }
        // A 101 that failed tungstenite's checks (no subprotocol picked, a bad accept key).
        switched => switched.map(|(head, _)| head.into_response(&[])),
    };
    let tls_peer = !candidate.scheme.is_tls() && looks_like_tls(&first_read(logs.tcp));
    Refusal {
        failure: not_refused(&error, &got, tls_peer),
        from_bundled_server: switched
            .as_ref()
            .is_some_and(|r| r.header(wscheck_server::SERVER_HEADER).is_some()),
        response: switched,
    }
}

/// Why a handshake failed that no HTTP refusal explains: `got` is what the peer sent.
fn not_refused(error: &WsError, got: &[u8], tls_peer: bool) -> Failure {
    let kind = match error {
        _ if tls_peer => FailureKind::PlainToTlsPeer,
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        )) => FailureKind::SubprotocolNotAccepted,
        WsError::Protocol(ProtocolError::HandshakeIncomplete)
        | WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => FailureKind::HandshakeClosed,
        WsError::HttpFormat(_) => FailureKind::NotHttp,
        WsError::Protocol(_) if !got.is_empty() && !looks_like_http(got) => FailureKind::NotHttp,
        WsError::Protocol(_) => FailureKind::HandshakeInvalid,
        _ => FailureKind::HandshakeClosed,
    };
    let message = match kind {
        FailureKind::PlainToTlsPeer => {
            "the peer answered the plaintext request with TLS bytes".to_owned()
        }
        FailureKind::NotHttp => format!(
            "{error}; first bytes: {:?}",
            String::from_utf8_lossy(&got[..got.len().min(40)])
        ),
        _ => error.to_string(),
    };
    Failure::new(kind, message)
}

/// No answer to the upgrade within the probe's time: a TLS peer waiting for a ClientHello
/// that a plaintext probe never sends, or nobody answering.
pub fn timed_out(candidate: &Candidate, tcp_log: &WireLog, timeout: Duration) -> Failure {
    if !candidate.scheme.is_tls() && looks_like_tls(&first_read(tcp_log)) {
        Failure::new(
            FailureKind::PlainToTlsPeer,
            "the peer answered in TLS, then waited",
        )
    } else {
        Failure::new(
            FailureKind::HandshakeTimeout,
            format!(
                "no answer to the upgrade request within the probe timeout ({})",
                humantime::format_duration(timeout)
            ),
        )
    }
}
