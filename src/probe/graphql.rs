//! The application stage for GraphQL over WebSocket: `connection_init`, then the server's
//! `connection_ack`, or its refusal: a close with one of the protocol's codes
//! (graphql-transport-ws: 4400, 4401, 4403, 4406, 4429, ...) or the legacy
//! `connection_error` message (subscriptions-transport-ws, subprotocol `graphql-ws`).

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

use super::failure::{Failure, FailureKind};
use super::opening::{self, Next};
use super::protocol::ProtocolInfo;

/// Runs the opening over a WebSocket whose server picked `subprotocol`.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    subprotocol: Option<String>,
    deadline: Instant,
) -> (ProtocolInfo, Option<Failure>) {
    let mut info = ProtocolInfo {
        name: "graphql",
        version: subprotocol,
        said: Map::new(),
    };
    let failure = handshake(ws, deadline, &mut info).await.err();
    if failure.is_none() {
        let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
    }
    (info, failure)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    deadline: Instant,
    info: &mut ProtocolInfo,
) -> Result<(), Failure> {
    let init = r#"{"type":"connection_init","payload":{}}"#;
    opening::send(ws, init, deadline, "GraphQL").await?;
    loop {
        match opening::next(ws, deadline, "GraphQL").await? {
            Next::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match message["type"].as_str() {
                    Some("connection_ack") => {
                        info.said.insert("ack".to_owned(), Value::from(true));
                        return Ok(());
                    }
                    Some("connection_error") => {
                        let why = message["payload"].to_string();
                        info.said
                            .insert("error".to_owned(), message["payload"].clone());
                        return Err(refused(format!("connection_error {why}")));
                    }
                    // Keep-alives (`ka`) and pings may come first.
                    _ => {}
                }
            }
            Next::Closed(code, reason) => {
                info.said.insert("close_code".to_owned(), Value::from(code));
                info.said
                    .insert("close_reason".to_owned(), Value::from(reason.clone()));
                return Err(refused(format!(
                    "closed {code} {reason:?}: {}",
                    meaning(code)
                )));
            }
        }
    }
}

/// What graphql-transport-ws's close codes mean.
fn meaning(code: u16) -> &'static str {
    match code {
        4400 => "bad request: the server could not use our connection_init",
        4401 => {
            "unauthorized: the server wants connection_init (or a subscription) authorised first"
        }
        4403 => {
            "forbidden: the server's onConnect refused the connection (credentials, token in the payload)"
        }
        4406 => {
            "subprotocol not acceptable: offer graphql-transport-ws (or the legacy graphql-ws) with --subprotocol"
        }
        4408 => "connection initialisation timeout: connection_init came too late",
        4409 => "a subscriber with this id already exists",
        4429 => "too many initialisation requests",
        4500 => "an internal error in the server",
        _ => "see the reason",
    }
}

fn refused(message: String) -> Failure {
    Failure::new(FailureKind::ProtocolRefused, message)
}
