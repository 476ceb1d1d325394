//! Stage 5: the echo. Sends a nonce, expects it back verbatim or as `Echo: <nonce>` (the
//! article's protocol), notes a greeting, times the round trip, then closes cleanly.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wscheck_server::{ECHO_PREFIX, GREETING};

/// How long an unknown peer (neither the bundled server nor the article's) gets to echo
/// before the probe settles for "opened, echo not verified": many apps never echo.
pub const UNKNOWN_PEER_ECHO_WAIT: Duration = Duration::from_secs(2);

/// What sort of WebSocket peer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// This project's server (`X-Wscheck-Server` on the 101).
    WscheckServer,
    /// A server speaking the article's protocol (its greeting, no `X-Wscheck-Server`).
    ArticleEchoServer,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct EchoInfo {
    pub sent: String,
    pub greeting: Option<String>,
    /// The reply that matched the nonce.
    pub reply: Option<String>,
    /// The first message that was neither greeting nor echo.
    pub unexpected: Option<String>,
    pub verified: bool,
    pub rtt_ms: Option<f64>,
    /// Close code when the peer closed during the echo.
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoOutcome {
    Verified,
    /// Nothing came back from a peer that need not echo.
    Unverified,
    TimedOut,
    Mismatch,
    Closed,
}

fn clip(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Runs the echo exchange over an open WebSocket until `deadline`.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    nonce: &str,
    mut peer: PeerKind,
    deadline: Instant,
) -> (EchoOutcome, EchoInfo, PeerKind) {
    let mut info = EchoInfo {
        sent: nonce.to_owned(),
        greeting: None,
        reply: None,
        unexpected: None,
        verified: false,
        rtt_ms: None,
        close_code: None,
        close_reason: None,
    };
    let sent_at = Instant::now();
    if let Err(error) = tokio::time::timeout_at(deadline.into(), ws.send(Message::text(nonce)))
        .await
        .unwrap_or(Err(tokio_tungstenite::tungstenite::Error::Io(
            std::io::ErrorKind::TimedOut.into(),
        )))
    {
        info.close_reason = Some(format!("send failed: {error}"));
        return (EchoOutcome::Closed, info, peer);
    }
    let expect_echo = |peer: PeerKind| peer != PeerKind::Unknown;
    let unknown_until = (sent_at + UNKNOWN_PEER_ECHO_WAIT).min(deadline);
    let echoed = format!("{ECHO_PREFIX}{nonce}");
    let outcome = loop {
        let wait_until = if expect_echo(peer) {
            deadline
        } else {
            unknown_until
        };
        let next = match tokio::time::timeout_at(wait_until.into(), ws.next()).await {
            Err(_) => {
                break if expect_echo(peer) {
                    EchoOutcome::TimedOut
                } else if info.unexpected.is_some() {
                    EchoOutcome::Mismatch
                } else {
                    EchoOutcome::Unverified
                };
            }
            Ok(next) => next,
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                if text.as_str() == nonce || text.as_str() == echoed {
                    info.rtt_ms = Some(sent_at.elapsed().as_secs_f64() * 1000.0);
                    info.reply = Some(clip(&text));
                    info.verified = true;
                    break EchoOutcome::Verified;
                } else if text.as_str() == GREETING && info.greeting.is_none() {
                    info.greeting = Some(text.to_string());
                    if peer == PeerKind::Unknown {
                        peer = PeerKind::ArticleEchoServer;
                    }
                } else if info.unexpected.is_none() {
                    info.unexpected = Some(clip(&text));
                }
            }
            Some(Ok(Message::Binary(data))) => {
                if data.as_ref() == nonce.as_bytes() {
                    info.rtt_ms = Some(sent_at.elapsed().as_secs_f64() * 1000.0);
                    info.reply = Some(clip(nonce));
                    info.verified = true;
                    break EchoOutcome::Verified;
                }
                if info.unexpected.is_none() {
                    info.unexpected = Some(format!("<{} binary bytes>", data.len()));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                if let Some(frame) = frame {
                    info.close_code = Some(frame.code.into());
                    info.close_reason = Some(frame.reason.to_string());
                }
                break EchoOutcome::Closed;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                info.close_reason = Some(error.to_string());
                break EchoOutcome::Closed;
            }
            None => {
                info.close_reason = Some("connection closed".to_owned());
                break EchoOutcome::Closed;
            }
        }
    };
    if outcome != EchoOutcome::Closed {
        // A clean close so the app's log shows a normal end, not a reset.
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    (outcome, info, peer)
}
