//! The bundled echo server: one port for HTTP and WebSocket, as a Cloud Foundry app must.
//!
//! `serve` runs on listeners the caller binds (so tests and `wscheck demo` can use port 0),
//! until the shutdown token fires; then every socket is closed with 1001 "going away".

mod config;
mod echo;
mod http;
pub mod info;
mod linger;
mod protocol;
mod session;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
/// Framing shared with `wscheck load`, which writes client frames.
pub use echo::{apply_mask, read_frame_length, write_frame_header};
pub use info::Environment;
pub use protocol::{
    ECHO_PREFIX, GREETING, HEALTH_PATH, INFO_PATH, INFO_WS_PATH, SERVER_HEADER, VERSION,
};
use shared::{Beat, Shared, heartbeat};

/// Internals the fuzz targets in `fuzz/` drive directly (the frame cutter and the close
/// scan of a session); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::session::{Burst, CloseScan, End, Session, websocket_config};
}

/// Serves on `listeners` until `shutdown` is cancelled, then closes every WebSocket with
/// 1001 and waits (at most `config.shutdown_grace`) for the connections to end.
pub async fn serve(listeners: Vec<TcpListener>, config: Config, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let shared = Arc::new(Shared {
        sessions: Arc::new(Semaphore::new(config.max_connections)),
        config,
        started: Instant::now(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        beat: tokio::sync::watch::Sender::new(Beat::Ping(0)),
    });
    tracker.spawn(heartbeat(shared.clone()));
    for listener in listeners {
        tracker.spawn(accept_loop(listener, shared.clone()));
    }
    shutdown.cancelled().await;
    tracker.close();
    if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "shutdown grace elapsed; dropping remaining connections"
        );
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared
                    .tracker
                    .spawn(handle_connection(stream, peer, shared.clone()));
            }
            Err(error) => {
                // EMFILE and friends: back off instead of spinning; the listener stays usable.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or_default();
    http::handle(stream, peer, local_port, &shared).await;
}

/// Binds the server's listeners: `0.0.0.0:port`, plus `[::]:port` (IPv6 only) when the host
/// has IPv6. With port 0 both get the port the IPv4 socket was given.
pub fn bind(port: u16) -> std::io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Socket, Type};
    fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        TcpListener::from_std(socket.into())
    }
    let v4 = listen(SocketAddr::from(([0, 0, 0, 0], port)))?;
    let port = v4.local_addr()?.port();
    let mut listeners = vec![v4];
    match listen(SocketAddr::from(([0u16; 8], port))) {
        Ok(v6) => listeners.push(v6),
        Err(error) => tracing::info!(%error, "no IPv6 listener; serving IPv4 only"),
    }
    Ok(listeners)
}
