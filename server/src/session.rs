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

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};

use crate::echo;
use crate::info::Info;
use crate::protocol::{ECHO_PREFIX, GREETING};
use crate::shared::{Beat, Shared};

/// Per-thread scratch for reads; 64 KiB takes a large burst in one system call.
const SCRATCH: usize = 64 * 1024;
/// How long we wait for the peer's close frame after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes discarded while waiting for the peer's close frame (the rest of an oversize
/// message, say); `CLOSE_TIMEOUT` bounds the wait anyway.
const CLOSE_DISCARD_LIMIT: usize = 64 * 1024 * 1024;

/// The most output capacity a thread keeps between bursts.
const OUTPUT_KEPT: usize = 256 * 1024;

thread_local! {
    static SCRATCH_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
    /// Answers are written here, and sent from here when the socket takes them all.
    static OUTPUT_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // The context reads from memory (whole frames cut out of the scratch buffer), so
        // its buffer only needs to be small; it is zero-filled on every burst.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// How a session ended, for the close log line.
pub enum End {
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
pub struct Session {
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
pub struct Burst {
    pub output: Vec<u8>,
    pub end: Option<End>,
    /// When we closed: where the client's further frames start, to see its close reply.
    pub after_close: Option<CloseScan>,
}

/// Follows the frames a client still sends after our close frame, discarding them, until
/// its close reply begins. Blind (waits for EOF or the timeout) when the stream can no
/// longer be cut into frames: after a protocol error, say.
#[derive(Default)]
pub struct CloseScan {
    /// Payload bytes of the current frame still to discard.
    skip: u64,
    /// An unfinished frame header.
    header: Vec<u8>,
    pub blind: bool,
    /// The client's close frame has begun.
    pub answered: bool,
    discarded: usize,
}

impl CloseScan {
    fn blind() -> Self {
        Self {
            blind: true,
            ..Self::default()
        }
    }

    /// Where a burst ended by our close leaves the client's stream: right behind the
    /// oversize frame that made us close (`(start, length)` in `data`), or unknown.
    fn after(data: &[u8], oversize: Option<(usize, u64)>) -> Self {
        let Some((at, total)) = oversize else {
            return Self::blind();
        };
        let end = (at as u64).saturating_add(total);
        let mut scan = Self::default();
        match usize::try_from(end) {
            Ok(end) if end <= data.len() => {
                scan.feed(&data[end..]);
            }
            _ => scan.skip = end - data.len() as u64,
        }
        scan
    }

    /// Follows `bytes`; true once the client's close frame has begun.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        self.discarded = self.discarded.saturating_add(bytes.len());
        while !self.blind && !self.answered && !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64) as usize;
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let parsed = if self.header.is_empty() {
                let mut cursor = Cursor::new(bytes);
                let parsed = FrameHeader::parse(&mut cursor);
                match parsed {
                    Ok(Some(_)) => bytes = &bytes[cursor.position() as usize..],
                    Ok(None) => {
                        self.header.extend_from_slice(bytes);
                        bytes = &[];
                    }
                    Err(_) => {}
                }
                parsed
            } else {
                // At most 14 header bytes: one at a time, so none of the payload is taken.
                self.header.push(bytes[0]);
                bytes = &bytes[1..];
                FrameHeader::parse(&mut Cursor::new(&self.header[..]))
            };
            match parsed {
                Ok(Some((header, length))) => {
                    self.header = Vec::new();
                    self.answered = header.opcode == OpCode::Control(Control::Close);
                    self.skip = length;
                }
                Ok(None) => {}
                Err(_) => self.blind = true,
            }
        }
        self.answered
    }
}

impl Session {
    pub fn new(max_message_size: usize) -> Self {
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
    /// that the context sees it and answers with the right close code; an oversize frame's
    /// start and length come back too.
    pub fn whole_frames(&mut self, data: &[u8]) -> (usize, Option<(usize, u64)>) {
        let mut at = 0;
        while at < data.len() {
            let mut cursor = Cursor::new(&data[at..]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, length))) => {
                    // Saturating: a 64-bit length may come close to u64::MAX.
                    let total = cursor.position().saturating_add(length);
                    if length > self.max_message_size as u64 {
                        return (data.len(), Some((at, total)));
                    }
                    if (at as u64).saturating_add(total) > data.len() as u64 {
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
                Err(_) => return (data.len(), None),
            }
        }
        (at, None)
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

    /// Sends one text message of ours (greeting, introspection document) into `output`.
    fn send_text(&mut self, text: &str, output: &mut Vec<u8>) {
        echo::write_text(output, text);
        self.messages_out += 1;
    }

    /// Answers the simple frames at the start of `data` without the protocol engine (only
    /// when no fragmented message is under way: then the engine has the stream's state).
    /// The bytes answered.
    fn answer_simple(&mut self, data: &[u8], output: &mut Vec<u8>) -> usize {
        if self.context.is_some() {
            return 0;
        }
        let answered = echo::answer_simple(data, self.max_message_size, output);
        self.messages_in += answered.messages;
        self.messages_out += answered.messages;
        answered.consumed
    }

    /// Handles newly read bytes (a burst, for tests and the fuzz targets).
    pub fn receive(&mut self, bytes: &[u8]) -> Burst {
        let mut output = Vec::new();
        let (end, after_close) = self.receive_into(bytes, &mut output);
        Burst {
            output,
            end,
            after_close,
        }
    }

    /// Handles newly read bytes, appending the answers to `output`: simple frames on the
    /// hot path, the rest of the whole frames through the protocol engine, an unfinished
    /// frame waits in `partial`. When we closed, also where the client's further frames
    /// start.
    pub(crate) fn receive_into(
        &mut self,
        bytes: &[u8],
        output: &mut Vec<u8>,
    ) -> (Option<End>, Option<CloseScan>) {
        let joined;
        let data = if self.partial.is_empty() {
            bytes
        } else {
            let mut partial = std::mem::take(&mut self.partial);
            partial.extend_from_slice(bytes);
            joined = partial;
            &joined[..]
        };
        let rest = &data[self.answer_simple(data, output)..];
        let (whole, oversize) = self.whole_frames(rest);
        // No engine (and no zero-filled buffer) for a burst without frames for it.
        let end = (whole > 0)
            .then(|| self.process(&rest[..whole], output))
            .flatten();
        let after_close =
            matches!(end, Some(End::ClosedByServer(..))).then(|| CloseScan::after(rest, oversize));
        if end.is_none() {
            if whole < rest.len() {
                self.partial = rest[whole..].to_vec();
            }
            self.release_if_idle();
        }
        (end, after_close)
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
    let written = try_send(tcp, &output)?;
    output.drain(..written);
    Ok(output)
}

/// Writes what the socket takes of `bytes` now, without waiting: how much it took.
fn try_send(tcp: &TcpStream, bytes: &[u8]) -> Result<usize, End> {
    match tcp.try_write(bytes) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(End::Vanished(e.to_string())),
    }
}

/// What a read meant besides its answers.
struct Heard {
    /// The session ends (its last answers are in the output).
    end: Option<End>,
    /// When we closed: where the client's further frames start, to see its close reply.
    after_close: Option<CloseScan>,
}

/// Reads what is there (through the per-thread scratch buffer) and answers it into
/// `output`, until the socket is drained or the answers reach `limit` bytes.
/// `Pending`: nothing yet (the socket will wake the task); `Ready(Ok(heard))`: send the
/// answers; `Ready(Err)`: connection gone. Through `poll_read`, which knows that a short
/// read drained the socket: no extra `read` that only says "would block".
fn poll_burst(
    cx: &mut Context<'_>,
    tcp: &mut TcpStream,
    session: &mut Session,
    limit: usize,
    output: &mut Vec<u8>,
) -> Poll<Result<Heard, End>> {
    SCRATCH_BUFFER.with_borrow_mut(|scratch| {
        let mut read_any = false;
        loop {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            let vanished = match Pin::new(&mut *tcp).poll_read(cx, &mut buf) {
                Poll::Pending if read_any => {
                    return Poll::Ready(Ok(Heard {
                        end: None,
                        after_close: None,
                    }));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => End::Vanished(e.to_string()),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    End::Vanished("closed without a close frame".to_owned())
                }
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    read_any = true;
                    let (end, after_close) = session.receive_into(buf.filled(), output);
                    if end.is_some() || n < SCRATCH || output.len() >= limit {
                        return Poll::Ready(Ok(Heard { end, after_close }));
                    }
                    continue;
                }
            };
            // Answers to earlier reads still go out before the session ends.
            return Poll::Ready(if read_any {
                Ok(Heard {
                    end: Some(vanished),
                    after_close: None,
                })
            } else {
                Err(vanished)
            });
        }
    })
}

/// The idle loop's common case: reads what is there and answers it at once, from the
/// per-thread output buffer (one write per read, no allocation). `Ready(None)`: all read
/// was answered and sent; `Ready(Some(step))`: output left over, or the session's end.
fn poll_answer(cx: &mut Context<'_>, live: &mut Live, limit: usize) -> Poll<Option<Step>> {
    OUTPUT_BUFFER.with_borrow_mut(|output| {
        output.clear();
        let heard = match poll_burst(cx, &mut live.tcp, &mut live.session, limit, output) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(heard)) => heard,
            Poll::Ready(Err(end)) => return Poll::Ready(Some(Step::End(Box::new(end)))),
        };
        live.session.heard_since_ping = true;
        let written = if heard.end.is_some() || output.is_empty() {
            0 // its last answers (and close reply) go out in full before it ends: drain's
        } else {
            match try_send(&live.tcp, output) {
                Ok(n) => n,
                Err(end) => return Poll::Ready(Some(Step::End(Box::new(end)))),
            }
        };
        let step = (heard.end.is_some() || written < output.len()).then(|| {
            Step::Out(Box::new(Burst {
                output: output[written..].to_vec(),
                end: heard.end,
                after_close: heard.after_close,
            }))
        });
        if output.capacity() > OUTPUT_KEPT {
            *output = Vec::new(); // a huge echo's buffer is not kept for the thread's life
        }
        Poll::Ready(step)
    })
}

/// Reads and discards what the client sends after our close frame, watching for its close
/// reply. `Ready(true)`: stop reading (reply seen, EOF, error, or too much discarded).
fn poll_discard(cx: &mut Context<'_>, tcp: &mut TcpStream, scan: &mut CloseScan) -> Poll<bool> {
    SCRATCH_BUFFER.with_borrow_mut(|scratch| {
        loop {
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut *tcp).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(true),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(true),
                Poll::Ready(Ok(())) => {
                    if scan.feed(buf.filled()) || scan.discarded >= CLOSE_DISCARD_LIMIT {
                        return Poll::Ready(true);
                    }
                }
            }
        }
    })
}

/// Output written in order; what is sent is dropped from the front.
struct Pending {
    buffer: Vec<u8>,
    sent: usize,
}

impl Pending {
    fn unsent(&self) -> &[u8] {
        &self.buffer[self.sent..]
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.sent > 0 && self.sent >= self.buffer.len() / 2 {
            self.buffer.drain(..self.sent);
            self.sent = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.buffer.len() {
            // Sent: the memory goes back at once, not when the session ends.
            self.buffer = Vec::new();
            self.sent = 0;
        }
    }
}

/// What the session still reads while output is pending.
enum Reading {
    /// Frames to answer, while the unsent output stays under the bound (back-pressure).
    Echo,
    /// After our close frame: the client's last frames, discarded, up to its close reply.
    Closing(CloseScan),
    /// Nothing more: the client closed, or vanished.
    Done,
}

/// Why `drain`'s wait ended.
enum Drained {
    /// All sent; the session goes on.
    Idle,
    /// All sent (or the connection failed); the session ends.
    Finished,
    /// Shutdown: close with 1001 behind what is pending.
    GoingAway,
    /// The client took nothing for the send timeout.
    Stalled,
    /// A write failed.
    Failed(String),
}

/// What to read once a session ends with `end` (`None`: it goes on).
fn reading_after(end: Option<&End>, after_close: Option<CloseScan>) -> Reading {
    match end {
        None => Reading::Echo,
        Some(End::ClosedByServer(..)) => match after_close {
            Some(scan) if scan.answered => Reading::Done,
            Some(scan) => Reading::Closing(scan),
            None => Reading::Closing(CloseScan::blind()),
        },
        Some(_) => Reading::Done,
    }
}

/// Writes what the socket takes now: `Ok(true)` when something went out.
fn poll_send(
    cx: &mut Context<'_>,
    tcp: &mut TcpStream,
    pending: &mut Pending,
) -> Result<bool, Drained> {
    let mut wrote = false;
    while !pending.unsent().is_empty() {
        match Pin::new(&mut *tcp).poll_write(cx, pending.unsent()) {
            Poll::Ready(Ok(0)) => return Err(Drained::Failed("write returned 0".to_owned())),
            Poll::Ready(Ok(n)) => {
                pending.advance(n);
                wrote = true;
            }
            Poll::Ready(Err(e)) => return Err(Drained::Failed(e.to_string())),
            Poll::Pending => break,
        }
    }
    Ok(wrote)
}

/// Reads on while draining: echoes while less than `bound` is unsent (back-pressure), or
/// what the client sends after our close until its reply. `true` when a burst was read.
fn poll_read_on(
    cx: &mut Context<'_>,
    live: &mut Live,
    pending: &mut Pending,
    reading: &mut Reading,
    end: &mut Option<End>,
    bound: usize,
) -> bool {
    match reading {
        Reading::Echo => {
            let unsent = pending.unsent().len();
            if unsent >= bound {
                return false;
            }
            let heard = OUTPUT_BUFFER.with_borrow_mut(|output| {
                output.clear();
                let heard =
                    poll_burst(cx, &mut live.tcp, &mut live.session, bound - unsent, output);
                pending.push(output);
                heard
            });
            match heard {
                Poll::Pending => false,
                Poll::Ready(Ok(heard)) => {
                    live.session.heard_since_ping = true;
                    if heard.end.is_some() {
                        *reading = reading_after(heard.end.as_ref(), heard.after_close);
                        *end = heard.end;
                    }
                    true
                }
                Poll::Ready(Err(gone)) => {
                    *end = Some(gone);
                    *reading = Reading::Done;
                    true
                }
            }
        }
        Reading::Closing(scan) => {
            if poll_discard(cx, &mut live.tcp, scan).is_ready() {
                *reading = Reading::Done;
            }
            false
        }
        Reading::Done => false,
    }
}

/// When nothing more can be done now: a stalled client, an idle or finished drain, or the
/// wait for the client's close reply once ours is out.
fn poll_settled(
    cx: &mut Context<'_>,
    pending: &Pending,
    reading: &Reading,
    stall: Pin<&mut tokio::time::Sleep>,
    close_wait: &mut Option<Pin<Box<tokio::time::Sleep>>>,
) -> Poll<Drained> {
    if !pending.unsent().is_empty() {
        return match stall.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Drained::Stalled),
            Poll::Pending => Poll::Pending,
        };
    }
    match reading {
        Reading::Echo => Poll::Ready(Drained::Idle),
        Reading::Done => Poll::Ready(Drained::Finished),
        // All sent, our close included: a moment for the client's reply.
        Reading::Closing(_) => {
            let wait =
                close_wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_TIMEOUT)));
            match wait.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Drained::Finished),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

/// Sends what a burst (or our own message) produced when the socket did not take it at
/// once, or when the session ends: every answer goes out, in order, before the close.
/// Meanwhile it reads on while less than `max_pending_output` is unsent (back-pressure: a
/// slow reader slows the reading, nothing is dropped), swallows what the client sends after
/// our close frame until its close reply, and gives up on a client that takes nothing for
/// `send_timeout`. Boxed by callers: rare, and its timers and buffer should not sit in
/// every idle session's task. `None`: all sent, the session goes on; `Some(end)`: it ended,
/// and TCP is shut down.
async fn drain(live: &mut Live, shared: &Shared, burst: Burst) -> Option<End> {
    let Burst {
        output,
        mut end,
        after_close,
    } = burst;
    let bound = shared.config.max_pending_output.max(1);
    let send_timeout = shared.config.send_timeout;
    let mut reading = reading_after(end.as_ref(), after_close);
    let mut pending = Pending {
        buffer: output,
        sent: 0,
    };
    let mut stall = Box::pin(tokio::time::sleep(send_timeout));
    let mut close_wait: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut shutdown = Box::pin(shared.shutdown.cancelled());
    loop {
        let drained = std::future::poll_fn(|cx| {
            loop {
                match poll_send(cx, &mut live.tcp, &mut pending) {
                    Err(failed) => return Poll::Ready(failed),
                    Ok(true) => stall
                        .as_mut()
                        .reset(tokio::time::Instant::now() + send_timeout),
                    Ok(false) => {}
                }
                if let Reading::Echo = reading
                    && shutdown.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Drained::GoingAway);
                }
                if poll_read_on(cx, live, &mut pending, &mut reading, &mut end, bound) {
                    continue; // new output to write, and perhaps more to read
                }
                return poll_settled(cx, &pending, &reading, stall.as_mut(), &mut close_wait);
            }
        })
        .await;
        match drained {
            Drained::Idle => return None,
            Drained::Finished => break,
            Drained::GoingAway => {
                let mut output = Vec::new();
                let mut feed = Feed {
                    input: &[],
                    output: &mut output,
                };
                end = Some(live.session.close(&mut feed, CloseCode::Away, "going away"));
                pending.push(&output);
                let mut scan = CloseScan::default();
                scan.feed(&live.session.partial);
                reading = reading_after(end.as_ref(), Some(scan));
            }
            Drained::Stalled => {
                end = Some(End::Vanished(format!(
                    "client stopped reading ({} bytes unsent for {})",
                    pending.unsent().len(),
                    humantime::format_duration(send_timeout)
                )));
                break;
            }
            Drained::Failed(error) => {
                end.get_or_insert(End::Vanished(error));
                break;
            }
        }
    }
    drop(pending); // before the shutdown: a stalled client's output goes at once
    let _ = live.tcp.shutdown().await;
    Some(end.unwrap_or_else(|| End::Vanished("connection ended".to_owned())))
}

/// Sends `output` (and ends the session if `end`): at once if the socket takes it all,
/// else through `drain`. `Err`: the session ended.
async fn deliver(live: &mut Live, shared: &Shared, burst: Burst) -> Result<(), End> {
    let burst = if burst.end.is_none() {
        let output = write_now(&live.tcp, burst.output)?;
        if output.is_empty() {
            return Ok(());
        }
        Burst { output, ..burst }
    } else {
        burst
    };
    match Box::pin(drain(live, shared, burst)).await {
        None => Ok(()),
        Some(end) => Err(end),
    }
}

/// Shutdown: our 1001 close, then the client's reply (or a moment), then TCP closed.
async fn close_going_away(live: &mut Live, shared: &Shared) -> End {
    let mut output = Vec::new();
    let mut feed = Feed {
        input: &[],
        output: &mut output,
    };
    let end = live.session.close(&mut feed, CloseCode::Away, "going away");
    let mut scan = CloseScan::default();
    scan.feed(&live.session.partial);
    let burst = Burst {
        output,
        end: Some(end),
        after_close: Some(scan),
    };
    match deliver(live, shared, burst).await {
        Ok(()) => End::Vanished("connection ended".to_owned()),
        Err(end) => end,
    }
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
    /// An answer the socket did not take at once, or the session's end with its last
    /// answers. Boxed: rare, and this value sits in the idle task's state.
    Out(Box<Burst>),
    /// The connection is gone; nothing to send. Boxed like `Out`.
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
            break Box::pin(close_going_away(&mut live, &shared)).await;
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
                // Not kept in a local: that would grow every idle session's task.
                let limit = shared.config.max_pending_output.max(1);
                match poll_answer(cx, &mut live, limit) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {}
                    Poll::Ready(Some(step)) => return Poll::Ready(step),
                }
            }
        })
        .await;
        drop(changed);
        match step {
            Step::End(end) => break *end,
            Step::Out(burst) => {
                if let Some(end) = Box::pin(drain(&mut live, &shared, *burst)).await {
                    break end;
                }
            }
            Step::Beat(moved) => {
                going_away = !moved || *beat.borrow_and_update() == Beat::Shutdown;
                if !going_away && let Err(end) = Box::pin(ping(&mut live, &shared)).await {
                    break end;
                }
            }
        }
    };
    finish(live, end, &shared);
}

/// The session's opening: the log line, the introspection document (for `/.wscheck/ws`),
/// the greeting, and whatever frames arrived with the handshake. Boxed by the caller: it
/// runs once, and `start` is freed when it returns. `None`: the session already ended.
async fn open(start: Box<Start>, shared: &Shared) -> Option<Live> {
    let Start {
        tcp,
        leftover,
        path,
        forwarded_for,
        info,
        peer,
        permit,
    } = *start;
    tracing::info!(%peer, %path, forwarded_for = forwarded_for.as_deref().unwrap_or("-"), "websocket open");
    let mut live = Live {
        tcp,
        session: Session::new(shared.config.max_message_size),
        peer,
        opened_ms: shared.started.elapsed().as_millis() as u64,
        permit,
    };
    let greeted = match greet(&mut live.session, &leftover, info) {
        Ok(burst) => deliver(&mut live, shared, burst).await,
        Err(end) => Err(end),
    };
    drop(leftover);
    match greeted {
        Ok(()) => Some(live),
        Err(end) => {
            finish(live, end, shared);
            None
        }
    }
}

/// The session's end: the log line. The closing handshake is `drain`'s.
fn finish(live: Live, end: End, shared: &Shared) {
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

/// The opening messages, and the answers to what came with the handshake.
fn greet(session: &mut Session, leftover: &[u8], info: Option<Info>) -> Result<Burst, End> {
    let mut output = Vec::new();
    if let Some(info) = info {
        let json = serde_json::to_string(&info).unwrap_or_default();
        session.send_text(&json, &mut output);
    }
    session.send_text(GREETING, &mut output);
    if leftover.is_empty() {
        return Ok(Burst {
            output,
            end: None,
            after_close: None,
        });
    }
    let mut burst = session.receive(leftover);
    output.append(&mut burst.output);
    burst.output = output;
    Ok(burst)
}

/// The heartbeat's ping, unless the peer stayed silent since the last one.
async fn ping(live: &mut Live, shared: &Shared) -> Result<(), End> {
    let session = &mut live.session;
    // Two silent intervals mean the peer is gone.
    if !session.heard_since_ping {
        return Err(End::Vanished("no answer to ping".to_owned()));
    }
    session.heard_since_ping = false;
    let mut output = Vec::new();
    echo::write_ping(&mut output, b"wscheck");
    let burst = Burst {
        output,
        end: None,
        after_close: None,
    };
    deliver(live, shared, burst).await
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

    #[test]
    fn after_our_close_the_clients_frames_are_followed_to_its_close_reply() {
        // Oversize (2048 announced, limit 1024): the rest of it is skipped, not parsed.
        let mut s = session();
        let mut big = vec![0x82, 0xfe, 0x08, 0x00, 1, 2, 3, 4];
        big.extend(vec![0x88u8; 100]); // payload bytes that look like close headers
        let burst = s.receive(&big);
        let mut scan = burst.after_close.expect("we closed");
        assert!(!scan.blind && scan.skip == 2048 - 100);
        assert!(!scan.feed(&[0x88; 1000]), "still inside the oversize frame");
        let mut rest = vec![0x88u8; 948];
        rest.extend(frame(0x2, true, b"more"));
        assert!(!scan.feed(&rest));
        let close = frame(0x8, true, &[0x03, 0xf1]);
        assert!(!scan.feed(&close[..1]), "a header split across reads");
        assert!(scan.feed(&close[1..]));

        // Shutdown: the close reply behind an unfinished frame.
        let mut scan = CloseScan::default();
        let data = frame(0x1, true, b"partial");
        assert!(!scan.feed(&data[..4]));
        let mut rest = data[4..].to_vec();
        rest.extend(close);
        assert!(scan.feed(&rest));

        // After a protocol error the stream cannot be cut into frames: blind.
        let mut s = session();
        let burst = s.receive(&[0x81, 0x02, b'h', b'i']);
        assert!(burst.after_close.expect("we closed").blind);
    }

    /// Found by fuzzing (fuzz/ frame_cutter): a 64-bit length near `u64::MAX` (RFC 6455
    /// wants its top bit clear; tungstenite does not check) overflowed header + length,
    /// a panic in debug builds and, wrapped, a close scan started inside the frame.
    #[test]
    fn a_frame_announcing_u64_max_bytes_is_oversize_not_an_overflow() {
        let mut announced = vec![0x82, 0xff];
        announced.extend([0xff; 8]);
        announced.extend([1, 2, 3, 4]);
        let mut s = session();
        assert_eq!(s.whole_frames(&announced), (14, Some((0, u64::MAX))));
        let mut data = announced.clone();
        data.extend(frame(0x8, true, &[0x03, 0xe8])); // "payload" that looks like a close
        let burst = s.receive(&data);
        assert_eq!(frames(&burst.output)[0].0, 0x8);
        let mut scan = burst.after_close.expect("we closed");
        assert!(
            !scan.blind && !scan.answered,
            "still inside the endless frame"
        );
        assert!(!scan.feed(&frame(0x8, true, &[0x03, 0xe8])));

        // Without a size limit it is a frame still arriving, behind a whole one.
        let mut data = frame(0x2, true, b"x");
        data.extend(&announced);
        assert_eq!(Session::new(usize::MAX).whole_frames(&data), (7, None));
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
