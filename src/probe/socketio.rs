//! The application stage for socket.io (Engine.IO v4 and v3 over WebSocket): read the open
//! packet (sid, pingInterval, pingTimeout), answer the server's pings, connect the default
//! namespace (`40`) and read its acknowledgement (`40{"sid":...}`) or refusal
//! (`44{"message":...}`, e.g. an auth middleware's). A server whose Engine.IO version is not
//! the one the URL asks for (`EIO=4` against socket.io 2.x) is a mismatch even when this
//! probe, which speaks both, gets through: the app's own clients would not.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::failure::{Failure, FailureKind};
use super::opening::{self, Next, clip};
use super::protocol::ProtocolInfo;

/// Runs the opening; `first` is the open packet when it was already read. Returns what the
/// opening said, and the failure if it did not complete.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    first: Option<String>,
    path: &str,
    deadline: Instant,
) -> (ProtocolInfo, Option<Failure>) {
    let mut info = ProtocolInfo {
        name: "socket.io",
        version: None,
        said: Map::new(),
    };
    let asked = asked_eio(path);
    let failure = handshake(ws, first, deadline, &mut info).await.err();
    // A v3/v4 server (it announces maxPayload) speaks EIO3 to a client asking for it when
    // allowEIO3 is on; a 2.x server speaks EIO3 whatever the client asks.
    if asked.as_deref() == Some("EIO3") && info.version.as_deref() == Some("EIO4") {
        info.version = asked.clone();
    }
    let failure = failure.or_else(|| mismatch(asked, &info));
    // A clean end: `41` leaves the namespace, then the WebSocket closes.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        let _ = ws.send(Message::text("41")).await;
        let _ = ws.close(None).await;
    })
    .await;
    (info, failure)
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    first: Option<String>,
    deadline: Instant,
    info: &mut ProtocolInfo,
) -> Result<(), Failure> {
    let open = match first {
        Some(open) => open,
        None => next_text(ws, deadline).await?,
    };
    read_open(&open, info)?;
    send(ws, "40", deadline).await?;
    loop {
        let packet = next_text(ws, deadline).await?;
        match packet.as_str() {
            // Engine.IO v4: the server pings, the client answers.
            "2" => send(ws, "3", deadline).await?,
            p if p.starts_with("40") => return connected(p, info),
            p if p.starts_with("44") => return Err(refused(p, info)),
            // Events or a v3 pong may come first; keep reading.
            _ => {}
        }
    }
}

/// The Engine.IO version a URL asks for (`EIO=4` → `EIO4`).
pub fn asked_eio(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("EIO="))
        .map(|v| format!("EIO{v}"))
}

/// The URL asked for one Engine.IO version and the server speaks another.
fn mismatch(asked: Option<String>, info: &ProtocolInfo) -> Option<Failure> {
    let asked = asked?;
    let spoken = info.version.as_deref()?;
    (asked != spoken).then(|| {
        Failure::new(
            FailureKind::ProtocolMismatch,
            format!(
                "the URL asks for {asked} but the server speaks {spoken} (socket.io 2.x: \
                 socket.io-client 3 and 4 cannot connect to it)"
            ),
        )
    })
}

/// The open packet: `0{"sid":...,"pingInterval":...,"pingTimeout":...}`.
fn read_open(packet: &str, info: &mut ProtocolInfo) -> Result<(), Failure> {
    let json = packet
        .strip_prefix('0')
        .and_then(|j| serde_json::from_str::<Value>(j).ok());
    let Some(open) = json.filter(|o| o.get("sid").is_some()) else {
        return Err(Failure::new(
            FailureKind::ProtocolFailed,
            format!(
                "expected socket.io's open packet 0{{\"sid\":...}}, got {:?}",
                clip(packet)
            ),
        ));
    };
    // Only Engine.IO v4 announces maxPayload.
    info.version = Some(
        if open.get("maxPayload").is_some() {
            "EIO4"
        } else {
            "EIO3"
        }
        .to_owned(),
    );
    for (key, name) in [
        ("sid", "sid"),
        ("pingInterval", "ping_interval_ms"),
        ("pingTimeout", "ping_timeout_ms"),
        ("upgrades", "upgrades"),
    ] {
        if let Some(value) = open.get(key) {
            info.said.insert(name.to_owned(), value.clone());
        }
    }
    Ok(())
}

fn connected(packet: &str, info: &mut ProtocolInfo) -> Result<(), Failure> {
    info.said.insert("namespace".to_owned(), Value::from("/"));
    info.said.insert("connected".to_owned(), Value::from(true));
    if let Some(sid) = serde_json::from_str::<Value>(&packet[2..])
        .ok()
        .and_then(|v| v.get("sid").cloned())
    {
        info.said.insert("namespace_sid".to_owned(), sid);
    }
    Ok(())
}

/// `44{"message":"not authorized"}`: the namespace refused the connection.
fn refused(packet: &str, info: &mut ProtocolInfo) -> Failure {
    let message = serde_json::from_str::<Value>(&packet[2..])
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| packet[2..].to_owned());
    info.said.insert("namespace".to_owned(), Value::from("/"));
    info.said.insert("connected".to_owned(), Value::from(false));
    info.said
        .insert("message".to_owned(), Value::from(message.clone()));
    Failure::new(
        FailureKind::ProtocolRefused,
        format!("the server refused namespace /: {message:?}"),
    )
}

/// The next packet; a close ends the opening.
async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    deadline: Instant,
) -> Result<String, Failure> {
    match opening::next(ws, deadline, "socket.io").await? {
        Next::Text(text) => Ok(text),
        Next::Closed(code, reason) => Err(opening::failed(format!(
            "the server closed during the socket.io opening ({code} {reason})"
        ))),
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    packet: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    opening::send(ws, packet, deadline, "socket.io").await
}
