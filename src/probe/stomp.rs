//! The application stage for STOMP over WebSocket (1.2, 1.1, 1.0): send CONNECT
//! (`accept-version`, `heart-beat`, and the user's `--stomp-header`s such as `host`,
//! `login`, `passcode`), then read CONNECTED (version, server, heart-beat, session) or the
//! broker's ERROR (its `message` header and body).

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::failure::{Failure, FailureKind};
use super::opening::{self, Next, clip, failed};
use super::protocol::ProtocolInfo;

/// The heart-beat we offer: what stomp.js offers by default (10 s each way).
const HEART_BEAT: &str = "10000,10000";

/// The CONNECT frame: our defaults, then the user's headers (which replace a default of
/// the same name).
pub fn connect_frame(user_headers: &[(String, String)]) -> String {
    let mut headers: Vec<(&str, &str)> = vec![
        ("accept-version", "1.2,1.1,1.0"),
        ("heart-beat", HEART_BEAT),
    ];
    for (name, value) in user_headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name, value));
    }
    let mut frame = String::from("CONNECT\n");
    for (name, value) in headers {
        frame.push_str(&format!("{name}:{value}\n"));
    }
    frame.push_str("\n\0");
    frame
}

/// A received STOMP frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Frame {
    /// A frame from one WebSocket message; heart-beat EOLs before it are skipped. `None`
    /// when the text is not a STOMP frame.
    pub fn parse(text: &str) -> Option<Frame> {
        let text = text.trim_start_matches(['\r', '\n']);
        let (head, rest) = text
            .split_once("\n\n")
            .or_else(|| text.split_once("\r\n\r\n"))?;
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let command = lines.next()?.to_owned();
        if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let body = rest.split('\0').next().unwrap_or_default().to_owned();
        Some(Frame {
            command,
            headers,
            body,
        })
    }

    /// The first value of header `name` (STOMP: the first occurrence wins).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs the opening over a WebSocket whose server picked `subprotocol`.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    subprotocol: Option<String>,
    user_headers: &[(String, String)],
    deadline: Instant,
) -> (ProtocolInfo, Option<Failure>) {
    let mut info = ProtocolInfo {
        name: "stomp",
        version: None,
        said: Map::new(),
    };
    if let Some(picked) = subprotocol {
        info.said
            .insert("subprotocol".to_owned(), Value::from(picked));
    }
    let failure = handshake(ws, user_headers, deadline, &mut info).await.err();
    // A clean end: DISCONNECT, then the WebSocket's close.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        let _ = ws.send(Message::text("DISCONNECT\n\n\0")).await;
        let _ = ws.close(None).await;
    })
    .await;
    (info, failure)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    user_headers: &[(String, String)],
    deadline: Instant,
    info: &mut ProtocolInfo,
) -> Result<(), Failure> {
    opening::send(ws, &connect_frame(user_headers), deadline, "STOMP").await?;
    loop {
        let text = match opening::next(ws, deadline, "STOMP").await? {
            Next::Text(text) => text,
            Next::Closed(code, reason) => {
                return Err(failed(format!(
                    "the broker closed the WebSocket instead of answering CONNECT ({code} {reason})"
                )));
            }
        };
        // Heart-beats are bare EOLs.
        if text.trim().is_empty() {
            continue;
        }
        let Some(frame) = Frame::parse(&text) else {
            return Err(failed(format!("expected CONNECTED, got {:?}", clip(&text))));
        };
        return answered(frame, info);
    }
}

/// CONNECTED completes the opening; ERROR is the broker's refusal.
fn answered(frame: Frame, info: &mut ProtocolInfo) -> Result<(), Failure> {
    // Only the broker's own headers are kept: nothing of our CONNECT (login, passcode).
    let keep = |info: &mut ProtocolInfo, header: &str, key: &str| {
        if let Some(value) = frame.header(header) {
            info.said.insert(key.to_owned(), Value::from(value));
        }
    };
    match frame.command.as_str() {
        "CONNECTED" => {
            info.version = Some(frame.header("version").unwrap_or("1.0").to_owned());
            keep(info, "server", "server");
            keep(info, "heart-beat", "heart_beat");
            keep(info, "session", "session");
            info.said.insert("connected".to_owned(), Value::from(true));
            Ok(())
        }
        "ERROR" => {
            keep(info, "message", "message");
            keep(info, "version", "versions_supported");
            let body = frame.body.trim();
            if !body.is_empty() {
                info.said.insert("body".to_owned(), Value::from(body));
            }
            info.said.insert("connected".to_owned(), Value::from(false));
            let message = frame.header("message").unwrap_or("(no message header)");
            let sep = if body.is_empty() { "" } else { ": " };
            Err(Failure::new(
                FailureKind::ProtocolRefused,
                format!("the broker answered CONNECT with ERROR {message:?}{sep}{body}"),
            ))
        }
        other => Err(failed(format!("expected CONNECTED, got a {other} frame"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_carries_the_defaults_and_the_users_headers_in_their_place() {
        let frame = connect_frame(&[
            ("host".into(), "/".into()),
            ("heart-beat".into(), "0,0".into()),
        ]);
        assert_eq!(
            frame,
            "CONNECT\naccept-version:1.2,1.1,1.0\nhost:/\nheart-beat:0,0\n\n\0"
        );
    }

    #[test]
    fn rabbitmqs_answers_are_read() {
        let connected = "CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-x\nheart-beat:10000,10000\nversion:1.2\n\n\0\n";
        let frame = Frame::parse(connected).expect("a frame");
        assert_eq!(frame.command, "CONNECTED");
        assert_eq!(frame.header("server"), Some("RabbitMQ/3.10.8"));
        let error = "ERROR\nmessage:Bad CONNECT\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:33\n\nVirtual host 'nope' access denied\0\n";
        let mut info = ProtocolInfo {
            name: "stomp",
            version: None,
            said: Map::new(),
        };
        let failure = answered(Frame::parse(error).expect("a frame"), &mut info)
            .expect_err("ERROR is a refusal");
        assert_eq!(failure.kind, FailureKind::ProtocolRefused);
        assert!(
            failure
                .message
                .contains("Virtual host 'nope' access denied")
        );
        assert_eq!(info.said["message"], "Bad CONNECT");
        assert_eq!(Frame::parse("wscheck-1a2b"), None);
        assert_eq!(Frame::parse("Hi, this is the Echo-Server"), None);
    }
}
