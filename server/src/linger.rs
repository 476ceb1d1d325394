//! Closing without losing the last answer: before a socket is dropped, discard what the
//! client still sends for a moment. Closing with unread input makes the kernel send a reset
//! that can destroy our last answer (a response or a close frame) before the client reads it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long we discard the rest of the client's input before dropping the socket.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// Enough to swallow the rest of an oversize message (so its sender sees our 1009 close
/// frame, not a reset); the time limit bounds it anyway.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Reads and discards until the client closes, `LINGER_BYTES` or `LINGER_TIME`.
pub(crate) async fn linger(stream: &mut TcpStream) {
    let mut sink = vec![0u8; 8192];
    let mut discarded = 0;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while discarded < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}
