//! Stage 5: the echo. Sends a nonce, expects it back verbatim or as `Echo: <nonce>` (the
//! article's protocol), notes a greeting, times the round trip, then closes cleanly.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wscheck_server::{ECHO_PREFIX, GREETING};

use super::failure::{Failure, FailureKind};

/// How long an unknown peer (neither the bundled server nor the article's) gets to echo
/// before the probe settles for "opened, echo not verified": many apps never echo.
pub const UNKNOWN_PEER_ECHO_WAIT: Duration = Duration::from_secs(2);

/// What sort of WebSocket peer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// This project's server (`X-Wscheck-Server` on the 101).
    WscheckServer,
    /// A server speaking the article's protocol (its greeting, no `X-Wscheck-Server`).
    ArticleEchoServer,
    Unknown,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
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

impl EchoOutcome {
    /// The stage's failure, if the outcome is one; the close code and reason come from `info`.
    pub fn failure(self, info: &EchoInfo) -> Option<Failure> {
        let (kind, message) = match self {
            EchoOutcome::Verified | EchoOutcome::Unverified => return None,
            EchoOutcome::TimedOut => (
                FailureKind::EchoTimeout,
                "no echo within the probe timeout".to_owned(),
            ),
            EchoOutcome::Mismatch => (
                FailureKind::EchoMismatch,
                "messages came back, but not the one sent".to_owned(),
            ),
            EchoOutcome::Closed => (
                FailureKind::EchoClosed,
                match (info.close_code, &info.close_reason) {
                    (Some(code), reason) => format!(
                        "the peer closed the WebSocket ({code} {})",
                        reason.as_deref().unwrap_or_default()
                    ),
                    (None, Some(reason)) => format!("the connection ended: {reason}"),
                    (None, None) => "the connection ended".to_owned(),
                },
            ),
        };
        Some(Failure::new(kind, message))
    }
}

/// A nonce unique per probe (no need for cryptographic randomness).
pub fn new_nonce() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "wscheck-{:x}-{n}",
        nanos ^ u128::from(std::process::id()) << 64
    )
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
/// `first` is a frame already read (auto-detection looks at it first): a greeting there
/// counts as the greeting.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    nonce: &str,
    first: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
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
    if let Some(first) = first
        && let Some(outcome) = hear(Some(first), nonce, sent_at, &mut info, &mut peer)
    {
        return (outcome, info, peer);
    }
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
    let outcome = loop {
        let wait_until = if expect_echo(peer) {
            deadline
        } else {
            unknown_until
        };
        match tokio::time::timeout_at(wait_until.into(), ws.next()).await {
            Err(_) if expect_echo(peer) => break EchoOutcome::TimedOut,
            // A peer not known to echo (a push, chat or greeting-only app) is working:
            // what it sent instead is in `info.unexpected` for the report.
            Err(_) => break EchoOutcome::Unverified,
            Ok(next) => {
                if let Some(outcome) = hear(next, nonce, sent_at, &mut info, &mut peer) {
                    break outcome;
                }
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

/// What one received frame means: the echo (verbatim or `Echo: `-prefixed), the article's
/// greeting (which names the peer), something unexpected (noted), or the end.
fn hear(
    next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    nonce: &str,
    sent_at: Instant,
    info: &mut EchoInfo,
    peer: &mut PeerKind,
) -> Option<EchoOutcome> {
    let verified = |info: &mut EchoInfo, reply: &str| {
        info.rtt_ms = Some(sent_at.elapsed().as_secs_f64() * 1000.0);
        info.reply = Some(clip(reply));
        info.verified = true;
        Some(EchoOutcome::Verified)
    };
    match next {
        Some(Ok(Message::Text(text))) => {
            if text.as_str() == nonce || text.strip_prefix(ECHO_PREFIX) == Some(nonce) {
                return verified(info, &text);
            } else if text.as_str() == GREETING && info.greeting.is_none() {
                info.greeting = Some(text.to_string());
                if *peer == PeerKind::Unknown {
                    *peer = PeerKind::ArticleEchoServer;
                }
                return None;
            } else if info.unexpected.is_none() {
                info.unexpected = Some(clip(&text));
            }
            // Only a peer known to echo is wrong to answer anything else.
            (*peer != PeerKind::Unknown).then_some(EchoOutcome::Mismatch)
        }
        Some(Ok(Message::Binary(data))) => {
            if data.as_ref() == nonce.as_bytes() {
                return verified(info, nonce);
            }
            if info.unexpected.is_none() {
                info.unexpected = Some(format!("<{} binary bytes>", data.len()));
            }
            (*peer != PeerKind::Unknown).then_some(EchoOutcome::Mismatch)
        }
        Some(Ok(Message::Close(frame))) => {
            if let Some(frame) = frame {
                info.close_code = Some(frame.code.into());
                info.close_reason = Some(frame.reason.to_string());
            }
            Some(EchoOutcome::Closed)
        }
        Some(Ok(_)) => None,
        Some(Err(error)) => {
            info.close_reason = Some(error.to_string());
            Some(EchoOutcome::Closed)
        }
        None => {
            info.close_reason = Some("connection closed".to_owned());
            Some(EchoOutcome::Closed)
        }
    }
}
