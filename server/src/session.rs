//! One WebSocket session: greeting, echo, server pings, limits, and the 1001 close on
//! shutdown. Every error ends only this session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::http::RequestHead;
use crate::info::Info;
use crate::{ECHO_PREFIX, GREETING, Shared};

/// Read buffer per socket. tungstenite's default (128 KiB, allocated up front) would cost
/// over a gigabyte for 10 000 idle sockets; 4 KiB keeps an idle socket at a few KiB.
const READ_BUFFER: usize = 4 * 1024;
/// A send that cannot complete in this time means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the peer's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message_size.saturating_mul(2).max(64 * 1024))
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// How a session ended, for the close log line.
enum End {
    ClosedByPeer(Option<u16>),
    ClosedByServer(u16, &'static str),
    Vanished(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClosedByPeer(Some(code)) => write!(f, "closed by peer ({code})"),
            End::ClosedByPeer(None) => write!(f, "closed by peer"),
            End::ClosedByServer(code, why) => write!(f, "closed by server ({code} {why})"),
            End::Vanished(why) => write!(f, "connection lost: {why}"),
        }
    }
}

pub(crate) async fn run(
    stream: TcpStream,
    leftover: Vec<u8>,
    head: &RequestHead,
    info: Option<Info>,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shared: &Arc<Shared>,
) {
    let config = websocket_config(shared.config.max_message_size);
    let mut ws =
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
    let opened = Instant::now();
    tracing::info!(%peer, path = %head.target, forwarded_for = head.header("x-forwarded-for").unwrap_or("-"), "websocket open");

    let mut stats = (0u64, 0u64); // messages in, messages out
    let end = echo(&mut ws, info, shared, &mut stats).await;
    if let End::ClosedByServer(..) = end {
        // Swallow what the peer still sends (the rest of an oversize message) before our
        // FIN: a proxy in between tears both sides down on it, and the reset would destroy
        // the close frame the peer has not read yet.
        let tcp = ws.get_mut();
        crate::http::linger(tcp).await;
        let _ = tcp.shutdown().await;
    }
    tracing::info!(%peer, path = %head.target, duration_ms = opened.elapsed().as_millis() as u64, messages_in = stats.0, messages_out = stats.1, "websocket close: {end}");
}

async fn send(ws: &mut WebSocketStream<TcpStream>, message: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("peer stopped reading (send timed out)".to_owned()),
    }
}

/// Sends a close frame and waits briefly for the peer's answer.
async fn close(ws: &mut WebSocketStream<TcpStream>, code: CloseCode, reason: &'static str) -> End {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(Some(frame))).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    End::ClosedByServer(code.into(), reason)
}

async fn echo(
    ws: &mut WebSocketStream<TcpStream>,
    info: Option<Info>,
    shared: &Shared,
    stats: &mut (u64, u64),
) -> End {
    if let Some(info) = info {
        let json = serde_json::to_string(&info).unwrap_or_default();
        if let Err(why) = send(ws, Message::text(json)).await {
            return End::Vanished(why);
        }
        stats.1 += 1;
    }
    if let Err(why) = send(ws, Message::text(GREETING)).await {
        return End::Vanished(why);
    }
    stats.1 += 1;

    let ping_every = shared.config.ping_interval;
    let mut pinger = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(3600)));
    pinger.reset(); // the first tick of an interval fires at once; the first ping should not
    // Whether the peer has shown life since our last ping: two silent intervals mean dead.
    let mut heard_since_ping = true;

    loop {
        let incoming = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                return close(ws, CloseCode::Away, "going away").await;
            }
            _ = pinger.tick(), if ping_every.is_some() => {
                if !heard_since_ping {
                    return End::Vanished("no answer to ping".to_owned());
                }
                heard_since_ping = false;
                if let Err(why) = send(ws, Message::Ping(Bytes::from_static(b"wscheck"))).await {
                    return End::Vanished(why);
                }
                continue;
            }
            incoming = ws.next() => incoming,
        };
        heard_since_ping = true;
        let reply = match incoming {
            None => return End::Vanished("closed without a close frame".to_owned()),
            Some(Ok(Message::Text(text))) => {
                let mut echoed = String::with_capacity(ECHO_PREFIX.len() + text.len());
                echoed.push_str(ECHO_PREFIX);
                echoed.push_str(&text);
                Message::text(echoed)
            }
            Some(Ok(Message::Binary(data))) => Message::Binary(data),
            // tungstenite answers pings and close frames by itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                // Drive the reply close frame out, then the stream ends.
                while let Ok(Some(_)) = tokio::time::timeout(CLOSE_TIMEOUT, ws.next()).await {}
                return End::ClosedByPeer(frame.map(|f| f.code.into()));
            }
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                return close(ws, CloseCode::Size, "message too big").await;
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                return End::Vanished("closed without a close frame".to_owned());
            }
            Some(Err(WsError::Protocol(error))) => {
                tracing::debug!(%error, "protocol violation");
                return close(ws, CloseCode::Protocol, "protocol error").await;
            }
            Some(Err(WsError::Utf8(_))) => {
                return close(ws, CloseCode::Invalid, "invalid utf-8").await;
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                return End::ClosedByPeer(None);
            }
            Some(Err(error)) => return End::Vanished(error.to_string()),
        };
        stats.0 += 1;
        if let Err(why) = send(ws, reply).await {
            return End::Vanished(why);
        }
        stats.1 += 1;
    }
}
