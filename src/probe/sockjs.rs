//! The application stage for SockJS (sockjs-node, Spring's `.withSockJS()`): `GET
//! <base>/info` (is the websocket transport enabled? are cookies needed?), then the
//! WebSocket at `<base>/<server>/<session>/websocket`, its `o` open frame, and an echo
//! through SockJS's framing (`["..."]` out, `a["..."]` back) when the app echoes.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Message;

use super::answer::HttpResponse;
use super::failure::{Failure, FailureKind};
use super::opening::{self, Next, failed};
use super::protocol::ProtocolInfo;
use super::tls::TlsSetup;
use super::{ProbeResult, Stage, Ws, echo, http, open};
use crate::plan::{Candidate, Plan};

/// What every SockJS server answers at its base URL (the protocol's greeting test).
pub const GREETING: &str = "Welcome to SockJS!";

/// How long the echo through SockJS may take: apps need not echo.
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// The SockJS base of a probe's path: no query, no trailing slash.
pub fn base(path: &str) -> &str {
    path.split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

/// Runs SockJS's opening for the base `path`, recording it in `result`.
pub async fn run(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    result: &mut ProbeResult,
    deadline: Instant,
) {
    let base = base(path);
    let info_path = format!("{base}/info");
    let started = Instant::now();
    let Some(answer) = http::get(plan, tls, candidate, &info_path, result, deadline).await else {
        return;
    };
    result.stage = Stage::Protocol;
    let mut info = ProtocolInfo {
        name: "sockjs",
        version: None,
        said: Map::new(),
    };
    if let Err(failure) = read_info(answer, &info_path, &mut info, result) {
        // A refusal of the GET itself is told like an upgrade's, by its status.
        if failure.kind != FailureKind::HttpRefused {
            result.protocol = Some(info);
            result.timings.protocol = Some(super::ws::ms_since(started));
        }
        result.failure = Some(failure);
        return;
    }
    let session = session_path(base);
    info.said
        .insert("session_path".to_owned(), Value::from(session.clone()));
    open(plan, tls, candidate, &session, result, deadline, {
        async |ws, result| {
            let started = result.enter(Stage::Protocol);
            let failure = opening(ws, &mut info, deadline).await.err();
            result.timings.protocol = Some(super::ws::ms_since(started));
            result.failure = failure;
            if result.failure.is_none() {
                result.done();
            }
        }
    })
    .await;
    result.protocol = Some(info);
}

/// What `/info` answered: its fields go into `info`; an error when it is not SockJS's or
/// says the websocket transport is off. A status other than 200 goes into `result` as the
/// response.
fn read_info(
    answer: Result<HttpResponse, Failure>,
    info_path: &str,
    info: &mut ProtocolInfo,
    result: &mut ProbeResult,
) -> Result<(), Failure> {
    let response = answer?;
    if response.status != 200 {
        let failure = Failure::new(
            FailureKind::HttpRefused,
            format!(
                "GET {info_path}: HTTP {} {}",
                response.status, response.reason
            ),
        );
        result.stage = Stage::Upgrade;
        result.response = Some(response);
        return Err(failure);
    }
    let json: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    for key in ["websocket", "cookie_needed", "origins"] {
        if let Some(value) = json.get(key) {
            info.said.insert(key.to_owned(), value.clone());
        }
    }
    match json.get("websocket").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        Some(false) => Err(Failure::new(
            FailureKind::ProtocolRefused,
            format!("GET {info_path} says websocket: false (the server turned the transport off)"),
        )),
        None => Err(failed(format!(
            "GET {info_path} did not answer SockJS's info JSON: {:?}",
            response.excerpt()
        ))),
    }
}

/// A session URL as SockJS clients make them: a three-digit server id, an eight-character
/// session id.
fn session_path(base: &str) -> String {
    let nonce = echo::new_nonce();
    let digest: u64 = nonce.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let session: String = (0..8)
        .map(|i| ALPHABET[((digest >> (i * 6)) % 36) as usize] as char)
        .collect();
    format!("{base}/{:03}/{session}/websocket", digest % 1000)
}

/// The `o` frame, then an echo through SockJS's framing if the app echoes.
async fn opening(
    ws: &mut Ws<'_>,
    info: &mut ProtocolInfo,
    deadline: Instant,
) -> Result<(), Failure> {
    match next_frame(ws, deadline).await? {
        frame if frame == "o" => {
            info.said.insert("open".to_owned(), Value::from(true));
        }
        frame if frame.starts_with('c') => {
            return Err(Failure::new(
                FailureKind::ProtocolRefused,
                format!("the SockJS server closed the session: {frame}"),
            ));
        }
        frame => {
            return Err(failed(format!(
                "expected SockJS's open frame o, got {frame:?}"
            )));
        }
    }
    let nonce = echo::new_nonce();
    let sent = Value::from(vec![nonce.clone()]).to_string();
    let echoed = async {
        ws.send(Message::text(sent)).await.ok()?;
        loop {
            let frame = next_frame(ws, deadline).await.ok()?;
            if frame.starts_with('a') && frame.contains(&nonce) {
                return Some(());
            }
        }
    };
    let echoed = tokio::time::timeout(ECHO_WAIT, echoed).await.ok().flatten();
    info.said
        .insert("echo".to_owned(), Value::from(echoed.is_some()));
    let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
    Ok(())
}

/// The next SockJS frame (heartbeats `h` skipped); a close ends the opening.
async fn next_frame(ws: &mut Ws<'_>, deadline: Instant) -> Result<String, Failure> {
    loop {
        match opening::next(ws, deadline, "SockJS").await? {
            Next::Text(text) if text == "h" => {}
            Next::Text(text) => return Ok(text),
            Next::Closed(code, reason) => {
                return Err(failed(format!(
                    "the server closed the WebSocket during SockJS's opening ({code} {reason})"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_urls_look_like_sockjs_clients_ones() {
        assert_eq!(base("/echo/?t=1"), "/echo");
        let path = session_path("/echo");
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts.len(), 5, "{path}");
        assert_eq!(parts[1], "echo");
        assert!(parts[2].len() == 3 && parts[2].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[3].len(), 8);
        assert_eq!(parts[4], "websocket");
    }
}
