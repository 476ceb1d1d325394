//! The server's frame cutter against tungstenite's own reader, on the same client bytes.
//!
//! `wscheck-server` does not hand the socket to tungstenite: it cuts what it reads into
//! whole frames itself (`Session::whole_frames`), keeps an unfinished frame aside, runs
//! tungstenite's protocol engine over the whole frames only, and drops the engine between
//! bursts. Three differentials check that this is invisible:
//!
//! 1. frames: `whole_frames` over the bytes against `FrameSocket` reading the same bytes
//!    (the same frame boundaries; an invalid header or an oversize frame at the same place);
//! 2. sessions: the bytes fed to `Session::receive` in chunks against one `WebSocket` (the
//!    sync API) reading them all, answering as the server does (the same output bytes —
//!    echoes, pongs, close frames with the same codes — and the same end);
//! 3. the close scan (`CloseScan`, which follows the client's frames after our close until
//!    its close reply) fed in chunks, against a walk over the whole prefix.
//!
//! Input: byte 0 picks the message size limit, byte 1 the chunking (0: one read), the rest
//! is what the client sends. Found so far: a 64-bit length near `u64::MAX` overflowed the
//! cutter (regression test in server/src/session.rs); the hot path took an empty frame
//! without its masking key as whole, and answered control frames over a size limit below
//! 125 bytes (both tests in server/src/echo.rs).

#![no_main]

use std::io::{self, Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::FrameSocket;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket};
use wscheck_server::ECHO_PREFIX;
use wscheck_server::fuzzing::{CloseScan, End, Session, websocket_config};

/// Message size limits: the edges of the 7-bit and 16-bit lengths, the default (1 MiB),
/// and none (`--max-message-size 16EiB`).
const LIMITS: [usize; 9] = [1, 16, 125, 126, 1024, 65_535, 65_536, 1 << 20, usize::MAX];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = LIMITS[usize::from(data[0]) % LIMITS.len()];
    let stream = &data[2..];
    let chunks = chunks(data[1], stream.len());
    if max == usize::MAX {
        // tungstenite's reader reserves what a header announces, so without a limit only
        // the cutter runs (it hands the engine whole frames only): it must not panic.
        unlimited(stream, &chunks);
    } else {
        frames(stream, max);
        session(stream, max, &chunks);
    }
    close_scan(stream, &chunks);
});

/// Chunk lengths (at least 1 each) that add up to `len`: a read pattern from `seed`.
fn chunks(seed: u8, len: usize) -> Vec<usize> {
    if seed == 0 {
        return if len == 0 { Vec::new() } else { vec![len] };
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let widest = 1 + usize::from(seed % 32);
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (1 + state as usize % widest).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// A frame header read independently of tungstenite: its size on the wire, opcode and
/// announced payload length; `None` while incomplete.
struct Header {
    size: usize,
    opcode: u8,
    length: u64,
}

fn header(bytes: &[u8]) -> Option<Header> {
    let second = *bytes.get(1)?;
    let extra = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let size = 2 + extra + mask;
    if bytes.len() < size {
        return None;
    }
    let length = match extra {
        0 => u64::from(second & 0x7f),
        _ => bytes[2..2 + extra]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    };
    Some(Header {
        size,
        opcode: bytes[0] & 0x0f,
        length,
    })
}

fn reserved(opcode: u8) -> bool {
    matches!(opcode, 3..=7 | 11..=15)
}

/// 1. Frame boundaries: the cutter against `FrameSocket`.
fn frames(stream: &[u8], max: usize) {
    let (whole, oversize) = Session::new(max).whole_frames(stream);
    let mut socket = FrameSocket::new(Cursor::new(stream));
    let mut at = 0usize;
    let expected = loop {
        match socket.read(Some(max)) {
            Ok(Some(frame)) => {
                let size = header(&stream[at..])
                    .expect("tungstenite read a whole frame")
                    .size;
                at += size + frame.payload().len();
            }
            Ok(None) => break (at, None),
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                let h = header(&stream[at..]).expect("an oversize frame's header is whole");
                let total = (h.size as u64).saturating_add(h.length);
                break (stream.len(), Some((at, total)));
            }
            Err(_) => break (stream.len(), None),
        }
    };
    assert_eq!(
        (whole, oversize),
        expected,
        "whole frames (len, oversize) differ from tungstenite's reader"
    );
}

/// The cutter without a size limit, over the whole stream and in chunks.
fn unlimited(stream: &[u8], chunks: &[usize]) {
    let (whole, oversize) = Session::new(usize::MAX).whole_frames(stream);
    assert!(whole <= stream.len() && oversize.is_none());
    let mut session = Session::new(usize::MAX);
    let mut fed = 0;
    for &n in chunks {
        let burst = session.receive(&stream[fed..fed + n]);
        fed += n;
        if burst.end.is_some() {
            break;
        }
    }
}

/// How a session ended, comparable.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Open,
    ClosedByPeer(Option<u16>),
    ClosedByServer(u16, String),
    Vanished(String),
}

impl From<End> for Ending {
    fn from(end: End) -> Self {
        match end {
            End::ClosedByPeer(code) => Ending::ClosedByPeer(code),
            End::ClosedByServer(code, why) => Ending::ClosedByServer(code, why.to_owned()),
            End::Vanished(why) => Ending::Vanished(why),
        }
    }
}

/// The client's bytes for the reference reader: all of them, then "would block"; what the
/// server writes is kept.
struct Pipe<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Pipe<'_> {
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

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the server's protocol says about one event, over tungstenite's plain reader.
fn reference(stream: &[u8], max: usize) -> (Vec<u8>, Ending) {
    let pipe = Pipe {
        input: stream,
        output: Vec::new(),
    };
    let mut ws = WebSocket::from_raw_socket(pipe, Role::Server, Some(websocket_config(max)));
    let close = |ws: &mut WebSocket<Pipe<'_>>, code: CloseCode, reason: &'static str| {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = ws.close(Some(frame)).and_then(|()| ws.flush());
        Ending::ClosedByServer(code.into(), reason.to_owned())
    };
    let ending = loop {
        let reply = match ws.read() {
            Ok(Message::Text(text)) => Message::text(format!("{ECHO_PREFIX}{text}")),
            Ok(Message::Binary(data)) => Message::Binary(data),
            Ok(Message::Close(frame)) => {
                let _ = ws.flush();
                break Ending::ClosedByPeer(frame.map(|f| f.code.into()));
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break Ending::Open,
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                break Ending::ClosedByPeer(None);
            }
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                break close(&mut ws, CloseCode::Size, "message too big");
            }
            Err(WsError::Utf8(_)) => break close(&mut ws, CloseCode::Invalid, "invalid utf-8"),
            Err(WsError::Protocol(_)) => {
                break close(&mut ws, CloseCode::Protocol, "protocol error");
            }
            Err(error) => break Ending::Vanished(error.to_string()),
        };
        if let Err(error) = ws.write(reply).and_then(|()| ws.flush()) {
            break Ending::Vanished(error.to_string());
        }
    };
    (ws.into_inner().output, ending)
}

/// 2. Sessions: `Session::receive` over the chunks against the reference.
fn session(stream: &[u8], max: usize, chunks: &[usize]) {
    let mut session = Session::new(max);
    let mut output = Vec::new();
    let mut ending = Ending::Open;
    let mut fed = 0;
    let mut after_close = None;
    for &n in chunks {
        let burst = session.receive(&stream[fed..fed + n]);
        fed += n;
        output.extend_from_slice(&burst.output);
        if let Some(end) = burst.end {
            ending = end.into();
            after_close = burst.after_close;
            break;
        }
    }
    let (expected_output, expected_ending) = reference(stream, max);
    assert_eq!(ending, expected_ending, "the session ended otherwise");
    assert!(
        output == expected_output,
        "the session answered otherwise:\n  cutter:      {output:02x?}\n  tungstenite: {expected_output:02x?}"
    );
    assert_eq!(
        after_close.is_some(),
        matches!(ending, Ending::ClosedByServer(..)),
        "a close scan exactly when the server closed"
    );
    // After a close for an oversize frame, the scan follows the client's frames from the
    // end of that frame: it must agree with a walk from there.
    if let Some(mut scan) = after_close
        && !scan.blind
    {
        scan.feed(&stream[fed..]);
        let start =
            first_oversize_end(stream, max).expect("a sighted scan follows an oversize frame");
        let rest = usize::try_from(start)
            .ok()
            .and_then(|start| stream.get(start..))
            .unwrap_or_default();
        let expected = walk(rest);
        assert_eq!(
            (scan.answered, scan.blind),
            (expected == Walk::Answered, expected == Walk::Blind),
            "the close scan after an oversize frame lost its place"
        );
    }
}

/// Where the first frame longer than `max` ends (past the end of `stream`, perhaps).
fn first_oversize_end(stream: &[u8], max: usize) -> Option<u128> {
    let mut at = 0usize;
    loop {
        let h = header(stream.get(at..)?)?;
        let end = at as u128 + h.size as u128 + u128::from(h.length);
        if h.length > max as u64 {
            return Some(end);
        }
        at = usize::try_from(end).ok()?;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// No close frame (yet).
    Pending,
    /// The client's close frame has begun (its header is whole).
    Answered,
    /// An invalid header: the frames can no longer be followed.
    Blind,
}

/// The frames of `bytes` from the start, header by header, payloads skipped.
fn walk(bytes: &[u8]) -> Walk {
    let mut at = 0usize;
    loop {
        let Some(h) = bytes.get(at..).and_then(header) else {
            return Walk::Pending;
        };
        if reserved(h.opcode) {
            return Walk::Blind;
        }
        if h.opcode == 0x8 {
            return Walk::Answered;
        }
        let end = at as u128 + h.size as u128 + u128::from(h.length);
        match usize::try_from(end) {
            Ok(end) if end <= bytes.len() => at = end,
            _ => return Walk::Pending,
        }
    }
}

/// 3. The close scan, fed in chunks, against a walk over what it was fed.
fn close_scan(stream: &[u8], chunks: &[usize]) {
    let mut scan = CloseScan::default();
    let mut fed = 0;
    for &n in chunks {
        let answered = scan.feed(&stream[fed..fed + n]);
        fed += n;
        let expected = walk(&stream[..fed]);
        assert_eq!(
            (answered, scan.blind),
            (expected == Walk::Answered, expected == Walk::Blind),
            "the close scan disagrees after {fed} bytes"
        );
    }
}
