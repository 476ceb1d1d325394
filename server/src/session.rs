//! One WebSocket session: greeting, echo, server pings, limits, and the 1001 close on
//! shutdown. Every error ends only this session.
//!
//! Memory is what lets one small container hold ten thousand idle sockets, so an idle
//! session holds no buffer at all: it waits for readability, reads into a per-thread
//! scratch buffer, cuts the bytes into whole frames (keeping only an unfinished frame, in a
//! buffer of its own), and runs tungstenite's protocol engine (`WebSocketContext`, the sync
//! API) over those frames in memory. The context, with its buffers, exists only while a
//! burst is processed or a fragmented message is under way.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::info::Info;
use crate::linger::linger;
use crate::protocol::{ECHO_PREFIX, GREETING};
use crate::shared::{Beat, Shared};

/// Per-thread scratch for reads; 64 KiB takes a large burst in one system call.
const SCRATCH: usize = 64 * 1024;
/// A send that cannot complete in this time means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the peer's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

thread_local! {
    static SCRATCH_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // The context reads from memory (whole frames cut out of the scratch buffer), so
        // its buffer only needs to be small; it is zero-filled on every burst.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
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

/// The in-memory stream the sync context runs on: reads serve whole frames we cut out,
/// then `WouldBlock`; writes collect what is to be sent.
struct Feed<'a> {
    input: &'a [u8],
    output: &'a mut Vec<u8>,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a session keeps between bursts: no buffers unless a frame or message is unfinished.
struct Session {
    /// The only setting that differs between servers; the rest is `websocket_config`.
    max_message_size: usize,
    /// Alive only while a fragmented message is under way (or during a burst).
    context: Option<Box<WebSocketContext>>,
    /// Bytes of an unfinished frame.
    partial: Vec<u8>,
    /// The last data frame did not have FIN set: continuation frames follow.
    in_fragmented_message: bool,
    messages_in: u32,
    messages_out: u32,
    heard_since_ping: bool,
}

/// The outcome of processing a burst: bytes to send, and whether the session ends.
struct Burst {
    output: Vec<u8>,
    end: Option<End>,
}

impl Session {
    fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            context: None,
            partial: Vec::new(),
            in_fragmented_message: false,
            messages_in: 0,
            messages_out: 0,
            heard_since_ping: true,
        }
    }

    fn context(&mut self) -> &mut WebSocketContext {
        let config = websocket_config(self.max_message_size);
        self.context
            .get_or_insert_with(|| Box::new(WebSocketContext::new(Role::Server, Some(config))))
    }

    /// Length of the whole frames at the start of `data`; updates the fragmentation state.
    /// A frame header that is invalid or announces an oversize frame counts as whole, so
    /// that the context sees it and answers with the right close code.
    fn whole_frames(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while at < data.len() {
            let mut cursor = Cursor::new(&data[at..]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, length))) => {
                    let total = cursor.position() as usize as u64 + length;
                    if length > self.max_message_size as u64 {
                        return data.len();
                    }
                    if (at as u64) + total > data.len() as u64 {
                        break;
                    }
                    if let OpCode::Data(kind) = header.opcode
                        && matches!(kind, Data::Text | Data::Binary | Data::Continue)
                    {
                        self.in_fragmented_message = !header.is_final;
                    }
                    at += total as usize;
                }
                Ok(None) => break,
                Err(_) => return data.len(),
            }
        }
        at
    }

    /// Runs the protocol over whole frames: echoes, pongs, closes.
    fn process(&mut self, frames: &[u8], output: &mut Vec<u8>) -> Option<End> {
        let mut feed = Feed {
            input: frames,
            output,
        };
        loop {
            let context = self.context();
            let message = match context.read(&mut feed) {
                Ok(message) => message,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    return Some(End::ClosedByPeer(None));
                }
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                    return Some(self.close(&mut feed, CloseCode::Size, "message too big"));
                }
                Err(WsError::Utf8(_)) => {
                    return Some(self.close(&mut feed, CloseCode::Invalid, "invalid utf-8"));
                }
                Err(WsError::Protocol(error)) => {
                    tracing::debug!(%error, "protocol violation");
                    return Some(self.close(&mut feed, CloseCode::Protocol, "protocol error"));
                }
                Err(error) => return Some(End::Vanished(error.to_string())),
            };
            self.heard_since_ping = true;
            let reply = match message {
                Message::Text(text) => {
                    let mut echoed = String::with_capacity(ECHO_PREFIX.len() + text.len());
                    echoed.push_str(ECHO_PREFIX);
                    echoed.push_str(&text);
                    Message::text(echoed)
                }
                Message::Binary(data) => Message::Binary(data),
                Message::Close(frame) => {
                    // The context queued the reply; the next read flushes it and ends.
                    let _ = self.context().flush(&mut feed);
                    return Some(End::ClosedByPeer(frame.map(|f| f.code.into())));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            self.messages_in += 1;
            let context = self.context();
            if let Err(error) = context
                .write(&mut feed, reply)
                .and_then(|()| context.flush(&mut feed))
            {
                return Some(End::Vanished(error.to_string()));
            }
            self.messages_out += 1;
        }
    }

    fn close(&mut self, feed: &mut Feed<'_>, code: CloseCode, reason: &'static str) -> End {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let context = self.context();
        let _ = context
            .close(feed, Some(frame))
            .and_then(|()| context.flush(feed));
        End::ClosedByServer(code.into(), reason)
    }

    /// Sends one message of ours (greeting, info, ping) into `output`.
    fn send(&mut self, message: Message, output: &mut Vec<u8>) -> Result<(), End> {
        let mut feed = Feed { input: &[], output };
        let context = self.context();
        context
            .write(&mut feed, message)
            .and_then(|()| context.flush(&mut feed))
            .map_err(|e| End::Vanished(e.to_string()))?;
        self.messages_out += 1;
        self.release_if_idle();
        Ok(())
    }

    /// Handles newly read bytes: whole frames go through the protocol, an unfinished one
    /// waits in `partial`.
    fn receive(&mut self, bytes: &[u8]) -> Burst {
        let mut output = Vec::new();
        let end = if self.partial.is_empty() {
            let whole = self.whole_frames(bytes);
            let end = self.process(&bytes[..whole], &mut output);
            if end.is_none() && whole < bytes.len() {
                self.partial = bytes[whole..].to_vec();
            }
            end
        } else {
            let mut data = std::mem::take(&mut self.partial);
            data.extend_from_slice(bytes);
            let whole = self.whole_frames(&data);
            let end = self.process(&data[..whole], &mut output);
            if end.is_none() && whole < data.len() {
                data.drain(..whole);
                self.partial = data;
            }
            end
        };
        if end.is_none() {
            self.release_if_idle();
        }
        Burst { output, end }
    }

    /// Drops the protocol context (and its buffers) when nothing is half-way.
    fn release_if_idle(&mut self) {
        if self.partial.is_empty() && !self.in_fragmented_message {
            self.context = None;
        }
        if self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }
}

/// Writes as much of `output` as the socket takes now; returns what is left.
fn write_now(tcp: &TcpStream, mut output: Vec<u8>) -> Result<Vec<u8>, End> {
    let written = match tcp.try_write(&output) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(End::Vanished(e.to_string())),
    };
    output.drain(..written);
    Ok(output)
}

/// Writes what a peer did not take at once. Boxed by callers: rare, and its timer and state
/// should not sit in every idle session's task.
async fn write_rest(tcp: &mut TcpStream, rest: Vec<u8>) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, tcp.write_all(&rest)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(End::Vanished(error.to_string())),
        Err(_) => Err(End::Vanished(
            "peer stopped reading (send timed out)".to_owned(),
        )),
    }
}

/// Writes `output`, waiting if the socket does not take it all at once.
async fn write_out(tcp: &mut TcpStream, output: Vec<u8>) -> Result<(), End> {
    let rest = write_now(tcp, output)?;
    if rest.is_empty() {
        return Ok(());
    }
    Box::pin(write_rest(tcp, rest)).await
}

/// Reads what is there (through the per-thread scratch buffer) and processes it.
/// `Pending`: nothing yet (the socket will wake the task); `Ready(Ok(burst))`: handle it;
/// `Ready(Err)`: connection gone. Through `poll_read`, which knows that a short read
/// drained the socket: no extra `read` that only says "would block".
fn poll_burst(
    cx: &mut Context<'_>,
    tcp: &mut TcpStream,
    session: &mut Session,
) -> Poll<Result<Burst, End>> {
    SCRATCH_BUFFER.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut burst: Option<Burst> = None;
        loop {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut *tcp).poll_read(cx, &mut buf) {
                Poll::Pending => return burst.map_or(Poll::Pending, |b| Poll::Ready(Ok(b))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(End::Vanished(e.to_string()))),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    let vanished = End::Vanished("closed without a close frame".to_owned());
                    return Poll::Ready(match burst {
                        Some(mut burst) => {
                            burst.end.get_or_insert(vanished);
                            Ok(burst)
                        }
                        None => Err(vanished),
                    });
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    let mut next = session.receive(buf.filled());
                    if let Some(mut earlier) = burst.take() {
                        earlier.output.append(&mut next.output);
                        next.output = earlier.output;
                    }
                    if next.end.is_some() || n < SCRATCH {
                        return Poll::Ready(Ok(next));
                    }
                    burst = Some(next);
                }
            }
        }
    })
}

async fn close_going_away(live: &mut Live) -> End {
    let mut output = Vec::new();
    let mut feed = Feed {
        input: &[],
        output: &mut output,
    };
    let end = live.session.close(&mut feed, CloseCode::Away, "going away");
    let _ = write_out(&mut live.tcp, output).await;
    end
}

/// Everything a session starts with. One boxed argument, consumed by the (boxed) opening:
/// the handshake's leftovers must not stay in every idle session's task.
pub(crate) struct Start {
    pub(crate) tcp: TcpStream,
    /// Bytes the client sent right behind its handshake.
    pub(crate) leftover: Vec<u8>,
    pub(crate) path: String,
    pub(crate) forwarded_for: Option<String>,
    /// For `/.wscheck/ws`: sent first.
    pub(crate) info: Option<Info>,
    pub(crate) peer: SocketAddr,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// What a session keeps for its whole life.
struct Live {
    tcp: TcpStream,
    session: Session,
    peer: SocketAddr,
    /// Milliseconds since the server started, not an Instant: 8 bytes less per session.
    opened_ms: u64,
    permit: OwnedSemaphorePermit,
}

/// What woke an idle session and needs more than a synchronous answer.
enum Step {
    /// The heartbeat moved on (`false`: the server is going away).
    Beat(bool),
    /// Part of an answer the socket did not take at once.
    Rest(Vec<u8>),
    /// Boxed: ends are rare, and this value sits in the idle task's state.
    End(Box<End>),
}

/// The session's life after the handshake. Its state across the idle wait is what ten
/// thousand idle sessions hold, so everything but that wait is synchronous or boxed.
pub(crate) async fn run(start: Box<Start>, shared: std::sync::Arc<Shared>) {
    let Some(mut live) = Box::pin(open(start, &shared)).await else {
        return;
    };
    let mut beat = shared.beat.subscribe();
    beat.mark_unchanged(); // a ping beat from before this session opened is not for it
    let mut going_away = *beat.borrow() == Beat::Shutdown;
    let end = loop {
        if going_away {
            break Box::pin(close_going_away(&mut live)).await;
        }
        // One wait on the heartbeat per beat, not per message: registering with the shared
        // channel on every loop would make all sessions contend for its lock. Boxed: it
        // lives for a whole beat, and inline it would grow every session's task.
        let mut changed = Box::pin(beat.changed());
        // poll_read keeps the waker in the socket's own slot: no waiter node in this
        // future, unlike `readable()`.
        let step = std::future::poll_fn(|cx| {
            if let Poll::Ready(changed) = changed.as_mut().poll(cx) {
                return Poll::Ready(Step::Beat(changed.is_ok()));
            }
            loop {
                let burst = match poll_burst(cx, &mut live.tcp, &mut live.session) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(burst)) => burst,
                    Poll::Ready(Err(end)) => return Poll::Ready(Step::End(Box::new(end))),
                };
                live.session.heard_since_ping = true;
                match (write_now(&live.tcp, burst.output), burst.end) {
                    // Ending anyway: no waiting for a slow peer.
                    (_, Some(end)) | (Err(end), None) => {
                        return Poll::Ready(Step::End(Box::new(end)));
                    }
                    (Ok(rest), None) if rest.is_empty() => {}
                    (Ok(rest), None) => return Poll::Ready(Step::Rest(rest)),
                }
            }
        })
        .await;
        drop(changed);
        match step {
            Step::End(end) => break *end,
            Step::Rest(rest) => {
                if let Err(end) = Box::pin(write_rest(&mut live.tcp, rest)).await {
                    break end;
                }
            }
            Step::Beat(moved) => {
                going_away = !moved || *beat.borrow_and_update() == Beat::Shutdown;
                if !going_away && let Err(end) = Box::pin(ping(&mut live)).await {
                    break end;
                }
            }
        }
    };
    Box::pin(finish(live, end, &shared)).await;
}

/// The session's opening: the log line, the introspection document (for `/.wscheck/ws`),
/// the greeting, and whatever frames arrived with the handshake. Boxed by the caller: it
/// runs once, and `start` is freed when it returns. `None`: the session already ended.
async fn open(start: Box<Start>, shared: &Shared) -> Option<Live> {
    let Start {
        mut tcp,
        leftover,
        path,
        forwarded_for,
        info,
        peer,
        permit,
    } = *start;
    tracing::info!(%peer, %path, forwarded_for = forwarded_for.as_deref().unwrap_or("-"), "websocket open");
    let mut session = Session::new(shared.config.max_message_size);
    let greeted = greet(&mut tcp, &mut session, leftover, info).await;
    let live = Live {
        tcp,
        session,
        peer,
        opened_ms: shared.started.elapsed().as_millis() as u64,
        permit,
    };
    match greeted {
        Ok(()) => Some(live),
        Err(end) => {
            finish(live, end, shared).await;
            None
        }
    }
}

/// The session's end: the close handshake's lingering, then the log line.
async fn finish(mut live: Live, end: End, shared: &Shared) {
    if let End::ClosedByServer(..) = end {
        // Wait for the peer's close frame, swallowing what it still sends (the rest of an
        // oversize message) before our FIN: a proxy in between tears both sides down on
        // it, and the reset would destroy the close frame the peer has not read yet.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, linger(&mut live.tcp)).await;
        let _ = live.tcp.shutdown().await;
    }
    let Live {
        session,
        peer,
        opened_ms,
        permit,
        ..
    } = live;
    drop(permit);
    let duration_ms = (shared.started.elapsed().as_millis() as u64).saturating_sub(opened_ms);
    tracing::info!(%peer, duration_ms, messages_in = session.messages_in, messages_out = session.messages_out, "websocket close: {end}");
}

async fn greet(
    tcp: &mut TcpStream,
    session: &mut Session,
    leftover: Vec<u8>,
    info: Option<Info>,
) -> Result<(), End> {
    let mut output = Vec::new();
    if let Some(info) = info {
        let json = serde_json::to_string(&info).unwrap_or_default();
        session.send(Message::text(json), &mut output)?;
    }
    session.send(Message::text(GREETING), &mut output)?;
    if !leftover.is_empty() {
        let burst = session.receive(&leftover);
        output.extend_from_slice(&burst.output);
        if let Some(end) = burst.end {
            let _ = write_out(tcp, output).await;
            return Err(end);
        }
    }
    write_out(tcp, output).await
}

/// The heartbeat's ping, unless the peer stayed silent since the last one.
async fn ping(live: &mut Live) -> Result<(), End> {
    let session = &mut live.session;
    // Two silent intervals mean the peer is gone.
    if !session.heard_since_ping {
        return Err(End::Vanished("no answer to ping".to_owned()));
    }
    session.heard_since_ping = false;
    let mut output = Vec::new();
    let ping = session.send(Message::Ping(Bytes::from_static(b"wscheck")), &mut output);
    session.messages_out -= 1; // pings are not messages
    ping?;
    write_out(&mut live.tcp, output).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(1024)
    }

    /// A masked client frame.
    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        assert!(payload.len() < 126);
        out.push(0x80 | payload.len() as u8);
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Decodes the server's unmasked frames: (opcode, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let opcode = bytes[0] & 0x0f;
            let len = (bytes[1] & 0x7f) as usize;
            out.push((opcode, bytes[2..2 + len].to_vec()));
            bytes = &bytes[2 + len..];
        }
        out
    }

    #[test]
    fn echoes_text_and_binary_and_keeps_nothing_when_idle() {
        let mut s = session();
        let mut input = frame(0x1, true, b"hi");
        input.extend(frame(0x2, true, &[0, 1, 2]));
        let burst = s.receive(&input);
        assert!(burst.end.is_none());
        assert_eq!(
            frames(&burst.output),
            [(0x1, b"Echo: hi".to_vec()), (0x2, vec![0, 1, 2])]
        );
        assert!(
            s.context.is_none() && s.partial.capacity() == 0,
            "idle sessions hold no buffers"
        );
    }

    #[test]
    fn frames_split_across_reads_and_fragmented_messages() {
        let mut s = session();
        let whole = frame(0x1, true, b"split me");
        let burst = s.receive(&whole[..5]);
        assert!(burst.output.is_empty() && !s.partial.is_empty());
        let burst = s.receive(&whole[5..]);
        assert_eq!(frames(&burst.output), [(0x1, b"Echo: split me".to_vec())]);

        let burst = s.receive(&frame(0x1, false, b"frag"));
        assert!(burst.output.is_empty());
        assert!(
            s.context.is_some(),
            "a fragmented message keeps its context"
        );
        // A ping between fragments is answered at once.
        let burst = s.receive(&frame(0x9, true, b"p"));
        assert_eq!(frames(&burst.output), [(0xa, b"p".to_vec())]);
        let burst = s.receive(&frame(0x0, true, b"ment"));
        assert_eq!(frames(&burst.output), [(0x1, b"Echo: fragment".to_vec())]);
        assert!(s.context.is_none());
    }

    #[test]
    fn violations_close_with_the_right_code() {
        let close_code = |burst: &Burst| {
            let f = frames(&burst.output);
            assert_eq!(f[0].0, 0x8);
            u16::from_be_bytes([f[0].1[0], f[0].1[1]])
        };
        let mut s = session();
        let mut big = vec![0x82, 0xfe, 0x08, 0x00, 1, 2, 3, 4]; // 2048 bytes announced, limit 1024
        big.extend(vec![0u8; 100]);
        let burst = s.receive(&big);
        assert_eq!(close_code(&burst), 1009);

        let mut s = session();
        let burst = s.receive(&[0x81, 0x02, b'h', b'i']); // unmasked
        assert_eq!(close_code(&burst), 1002);

        let mut s = session();
        let burst = s.receive(&frame(0x1, true, &[0xff, 0xfe]));
        assert_eq!(close_code(&burst), 1007);

        let mut s = session();
        let burst = s.receive(&frame(0x8, true, &[0x03, 0xe8]));
        assert!(matches!(burst.end, Some(End::ClosedByPeer(Some(1000)))));
        assert_eq!(close_code(&burst), 1000, "the close is answered");
    }

    /// What ten thousand idle sessions cost is mostly their task: tokio stores the future
    /// in a cell 104 bytes bigger, rounded up to 128. Up to 272 bytes keeps the cell at 384.
    #[test]
    fn idle_session_task_stays_small() {
        fn future_size<A, B, F>(_: fn(A, B) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = future_size(run);
        assert!(size <= 272, "the session future grew to {size} bytes");
    }
}
