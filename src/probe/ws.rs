//! What every user of an open WebSocket shares: the client's buffer sizes, how a
//! connection ended (close kinds), reading the bundled server's `Info` message, and
//! milliseconds as reports show them.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wscheck_server::info::Info;

/// Milliseconds to one decimal, as every report shows them.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds since `since`.
pub fn ms_since(since: Instant) -> f64 {
    ms(since.elapsed())
}

pub fn client_config() -> WebSocketConfig {
    // Small buffers: a probe reads a handful of short messages. Writes wait for a flush
    // up to 16 KiB, so that `load --in-flight` sends a batch in one write (`send` flushes
    // anyway). No frame limit and a generous message limit: `--sizes` must see what the
    // server sends back, not our cap.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_frame_size(None)
        .max_message_size(Some(512 << 20))
}

/// How a connection ended without a close frame: TCP closed (`eof`) or reset (`reset`);
/// `None` for any other error, which callers show as its text.
pub fn cut_kind(error: &WsError) -> Option<&'static str> {
    match error {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | WsError::ConnectionClosed => Some("eof"),
        WsError::Io(e) => io_cut_kind(e),
        _ => None,
    }
}

/// `eof` or `reset` when an I/O error is the connection ending without a close frame.
pub fn io_cut_kind(error: &std::io::Error) -> Option<&'static str> {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => Some("eof"),
        std::io::ErrorKind::ConnectionReset => Some("reset"),
        _ => None,
    }
}

/// `closed <code>` for a close frame with a code, `closed` without one.
pub fn close_key(code: Option<u16>) -> String {
    code.map_or_else(|| "closed".to_owned(), |c| format!("closed {c}"))
}

/// Reads the bundled server's first message on `/.wscheck/ws`: the introspection of the
/// upgrade request as it arrived. `None` when the peer sends anything else.
pub async fn read_info<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    deadline: Instant,
) -> Option<Info> {
    match tokio::time::timeout_at(deadline.into(), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<Info>(&text).ok(),
        _ => None,
    }
}
