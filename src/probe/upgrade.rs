//! Stage 4: the HTTP upgrade (`client_async`), sent as a browser would send it: Host with
//! the port only when not the scheme's default, Origin, User-Agent, user headers;
//! credentials held back on plaintext unless allowed.

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response, generate_key};

use crate::plan::{CREDENTIAL_HEADERS, Candidate, Plan};

/// Most bytes of a refusal's body kept for the report.
pub const BODY_LIMIT: usize = 1024;

/// An HTTP answer other than 101 (or the 101 itself), as received.
#[derive(Debug, Clone, Serialize)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The first KiB of the body, as text.
    pub body: String,
}

impl HttpResponse {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn from_tungstenite(response: &Response, body: &[u8]) -> Self {
        Self {
            status: response.status().as_u16(),
            reason: response
                .status()
                .canonical_reason()
                .unwrap_or_default()
                .to_owned(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body[..body.len().min(BODY_LIMIT)]).into_owned(),
        }
    }
}

/// Builds the upgrade request for `candidate` at `path`. Returns the request and whether
/// credentials were held back.
pub fn build_request(
    plan: &Plan,
    candidate: &Candidate,
    path: &str,
) -> Result<(Request, bool), String> {
    let hold_back =
        !candidate.scheme.is_tls() && !plan.allow_plaintext_credentials && plan.has_credentials();
    let user_sets = |name: &str| {
        plan.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let host = plan
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or(candidate.host_header.as_str(), |(_, v)| v.as_str());
    let uri = format!(
        "{}://{}{path}",
        candidate.scheme.as_str(),
        candidate.host_header
    );
    let mut builder = Request::builder()
        .method("GET")
        .uri(&uri)
        .header("Host", host)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key());
    if !user_sets("user-agent") {
        builder = builder.header("User-Agent", concat!("wscheck/", env!("CARGO_PKG_VERSION")));
    }
    if let Some(origin) = &plan.origin
        && !user_sets("origin")
    {
        builder = builder.header("Origin", origin);
    }
    if !plan.subprotocols.is_empty() {
        builder = builder.header("Sec-WebSocket-Protocol", plan.subprotocols.join(", "));
    }
    if let Some((user, pass)) = &plan.target.userinfo
        && !hold_back
        && !user_sets("authorization")
    {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        builder = builder.header("Authorization", format!("Basic {token}"));
    }
    for (name, value) in &plan.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || (hold_back && CREDENTIAL_HEADERS.contains(&lower.as_str())) {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(())
        .map_err(|e| format!("cannot build the request for {uri}: {e}"))?;
    Ok((request, hold_back))
}

/// Reads more of a refusal's body when the first read did not bring all of it (up to
/// `BODY_LIMIT` and `Content-Length`, briefly: the report needs the text, not the stream).
pub async fn complete_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    response: &Response,
    body: &mut Vec<u8>,
    wait: Duration,
) {
    let wanted = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(BODY_LIMIT)
        .min(BODY_LIMIT);
    let _ = tokio::time::timeout(wait, async {
        let mut chunk = [0u8; 512];
        while body.len() < wanted {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
}
