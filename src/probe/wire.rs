//! A stream wrapper that keeps the first bytes each way: the exact handshake on the wire
//! for `-v`, and the peer's first bytes, which tell TLS from plain HTTP when a stage fails.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much of each direction is kept.
const KEEP: usize = 8 * 1024;

/// The first bytes read from and written to a stream.
#[derive(Debug, Default)]
pub struct Wire {
    pub read: Vec<u8>,
    pub written: Vec<u8>,
}

pub type WireLog = Arc<Mutex<Wire>>;

pub struct Recorded<S> {
    inner: S,
    log: WireLog,
    /// Bytes kept so far each way: once both are full, reads and writes skip the lock
    /// (a load run moves millions of messages through here).
    read_kept: usize,
    written_kept: usize,
}

impl<S> Recorded<S> {
    pub fn new(inner: S) -> (Self, WireLog) {
        let log = WireLog::default();
        (
            Self {
                inner,
                log: log.clone(),
                read_kept: 0,
                written_kept: 0,
            },
            log,
        )
    }
}

fn keep(into: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEEP.saturating_sub(into.len());
    into.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll
            && self.read_kept < KEEP
        {
            let new = &buf.filled()[before..];
            self.read_kept += new.len();
            if !new.is_empty()
                && let Ok(mut log) = self.log.lock()
            {
                keep(&mut log.read, new);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &poll
            && self.written_kept < KEEP
        {
            self.written_kept += n;
            if let Ok(mut log) = self.log.lock() {
                keep(&mut log.written, &data[..*n]);
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether bytes look like a TLS record (handshake or alert, any TLS version).
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// Whether bytes look like an HTTP response.
pub fn looks_like_http(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/")
}
