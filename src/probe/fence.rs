//! A stream wrapper that ends the read of a `101 Switching Protocols` answer at its blank
//! line: the bytes behind it (the server's first frames) wait here instead of in the
//! handshake's buffer, so that whoever speaks WebSocket next, tungstenite or `wscheck
//! load`'s own framing, reads the stream from its first frame. Other answers pass as they
//! come (their body is part of the answer the prober reports).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// "HTTP/1.1 101": enough of the status line to tell a switch from anything else.
const STATUS_LINE_START: usize = 12;

/// Where the answer's head stands.
enum Head {
    /// The first bytes of the status line, until there are enough of them.
    Status(Vec<u8>),
    /// A 101: line ends seen in a row (CR ignored), two end the head.
    Switching { line_ends: u8 },
    /// The head is over, or it is not a 101: reads pass through.
    Passed,
}

pub struct HeadFence<S> {
    inner: S,
    head: Head,
    /// Bytes read behind a 101's head, served before the next read.
    held: Vec<u8>,
}

impl<S> HeadFence<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            head: Head::Status(Vec::with_capacity(STATUS_LINE_START)),
            held: Vec::new(),
        }
    }
}

/// Follows the head over `bytes`: where it ends within them, if it does.
fn head_end(head: &mut Head, bytes: &[u8]) -> Option<usize> {
    for (i, &byte) in bytes.iter().enumerate() {
        match head {
            Head::Status(start) => {
                start.push(byte);
                if start.len() == STATUS_LINE_START || byte == b'\n' {
                    let switching =
                        start.starts_with(b"HTTP/1.") && start.get(9..12) == Some(b"101");
                    *head = if switching {
                        Head::Switching {
                            line_ends: u8::from(byte == b'\n'),
                        }
                    } else {
                        Head::Passed
                    };
                }
            }
            Head::Switching { line_ends } => match byte {
                b'\n' if *line_ends == 1 => {
                    *head = Head::Passed;
                    return Some(i + 1);
                }
                b'\n' => *line_ends = 1,
                b'\r' => {}
                _ => *line_ends = 0,
            },
            Head::Passed => return None,
        }
    }
    None
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadFence<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            let n = this.held.len().min(buf.remaining());
            buf.put_slice(&this.held[..n]);
            this.held.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && !matches!(this.head, Head::Passed) {
            let filled = &buf.filled()[before..];
            if let Some(end) = head_end(&mut this.head, filled) {
                this.held = filled[end..].to_vec();
                buf.set_filled(before + end);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadFence<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Reads `wire` through a fence, in chunks of `chunk` bytes: the reads' results.
    async fn reads(wire: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let chunks = wire.chunks(chunk).map(<[u8]>::to_vec).collect();
        let mut fence = HeadFence::new(ChunkReader { chunks });
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0; 4096];
            let n = fence.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.push(buf[..n].to_vec());
        }
    }

    /// A reader that hands out its chunks one read at a time.
    struct ChunkReader {
        chunks: Vec<Vec<u8>>,
    }

    impl AsyncRead for ChunkReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.chunks.is_empty() {
                let chunk = self.chunks.remove(0);
                buf.put_slice(&chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_switch_ends_the_read_at_the_blank_line_whatever_the_chunks() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let frame = b"\x81\x02hi";
        let wire = [&head[..], frame].concat();
        for chunk in [1, 5, 13, 40, wire.len()] {
            let got = reads(&wire, chunk).await;
            let joined: Vec<u8> = got.concat();
            assert_eq!(joined, wire, "chunk {chunk}");
            let mut at = 0;
            let ends: Vec<usize> = got
                .iter()
                .map(|r| {
                    at += r.len();
                    at
                })
                .collect();
            assert!(
                ends.contains(&head.len()),
                "chunk {chunk}: a read ends at the head"
            );
        }
    }

    #[tokio::test]
    async fn other_answers_pass_with_their_body() {
        let wire = b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(reads(wire, wire.len()).await, [wire.to_vec()]);
        let bare = b"HTTP/1.1 101 OK\n\nrest";
        assert_eq!(
            reads(bare, bare.len()).await,
            [b"HTTP/1.1 101 OK\n\n".to_vec(), b"rest".to_vec()]
        );
    }
}
