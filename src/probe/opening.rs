//! What every application protocol's opening does on the WebSocket: send a message and read
//! the next one under the probe's deadline, a close told apart from the rest, and every
//! other way it can stop (time-out, an error, the end of the connection) turned into the
//! opening's failure, named after the protocol.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::failure::{Failure, FailureKind};

/// What the peer sent next: a text (a binary one read as text), or its close.
pub enum Next {
    Text(String),
    /// The close code (1005 when the frame had none) and reason.
    Closed(u16, String),
}

/// The next message of the `opening` (e.g. "socket.io"), pings and pongs skipped.
pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    deadline: Instant,
    opening: &str,
) -> Result<Next, Failure> {
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline.into(), ws.next()).await else {
            return Err(failed(format!(
                "the {opening} opening did not complete within the probe timeout"
            )));
        };
        match next {
            Some(Ok(Message::Text(text))) => return Ok(Next::Text(text.to_string())),
            Some(Ok(Message::Binary(bytes))) => {
                return Ok(Next::Text(String::from_utf8_lossy(&bytes).into_owned()));
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return Ok(Next::Closed(code, reason));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(failed(error.to_string())),
            None => {
                return Err(failed(format!(
                    "the connection ended during the {opening} opening"
                )));
            }
        }
    }
}

/// Sends `text` before the deadline.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    text: &str,
    deadline: Instant,
    opening: &str,
) -> Result<(), Failure> {
    match tokio::time::timeout_at(deadline.into(), ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(failed(format!(
            "could not send the {opening} message {:?}",
            clip(text)
        ))),
    }
}

/// An opening that did not complete.
pub fn failed(message: String) -> Failure {
    Failure::new(FailureKind::ProtocolFailed, message)
}

/// At most 80 characters of a message, for a failure's text.
pub fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}
