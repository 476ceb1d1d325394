//! The bundled echo server: one port for HTTP and WebSocket, as a Cloud Foundry app must.
//!
//! `serve` runs on listeners the caller binds (so tests and `wscheck demo` can use port 0),
//! until the shutdown token fires; then every socket is closed with 1001 "going away".

mod http;
pub mod info;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use info::Environment;

/// What the server sends first on every WebSocket, as the article's `server.js` does.
pub const GREETING: &str = "Hi, this is the Echo-Server";
/// Prefix of every echoed text message, as in the article's `server.js`.
pub const ECHO_PREFIX: &str = "Echo: ";
/// Response header that tells the prober it reached this app and not something in between.
pub const SERVER_HEADER: &str = "X-Wscheck-Server";
/// Plain HTTP introspection endpoint.
pub const INFO_PATH: &str = "/.wscheck/info";
/// WebSocket path that first sends the introspection JSON of its own upgrade request.
pub const INFO_WS_PATH: &str = "/.wscheck/ws";
/// Health check endpoint for `health-check-type: http`.
pub const HEALTH_PATH: &str = "/healthz";
/// This server's version, sent in `X-Wscheck-Server` and in the introspection JSON.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Limits and timers of one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest WebSocket message (and frame) accepted; larger ones close with 1009.
    pub max_message_size: usize,
    /// Most WebSocket sessions at once; an upgrade beyond it gets 503.
    pub max_connections: usize,
    /// Time a client has to send its whole request head.
    pub header_timeout: Duration,
    /// Interval of server pings on idle sockets; `None` disables them.
    pub ping_interval: Option<Duration>,
    /// How long shutdown waits for sockets to finish their close handshake.
    pub shutdown_grace: Duration,
    /// What the process learned from its environment (PORT, CF_INSTANCE_*, VCAP_APPLICATION).
    pub environment: Environment,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(25)),
            shutdown_grace: Duration::from_secs(4),
            environment: Environment::default(),
        }
    }
}

/// State shared by every connection of one server.
struct Shared {
    config: Config,
    started: Instant,
    sessions: Arc<Semaphore>,
    shutdown: CancellationToken,
    /// Every connection and session task, so that shutdown can wait for them.
    tracker: TaskTracker,
    /// One heartbeat for all sessions: ping time, then shutdown. A shared clock instead of
    /// a timer per socket keeps an idle session small.
    beat: tokio::sync::watch::Sender<Beat>,
}

/// What the heartbeat tells every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// Time for ping number n.
    Ping(u64),
    /// Close with 1001 and end.
    Shutdown,
}

/// Drives the heartbeat: a ping beat every interval, the shutdown beat at once.
async fn heartbeat(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(
        shared
            .config
            .ping_interval
            .unwrap_or(Duration::from_secs(3600)),
    );
    ticker.reset(); // the first tick of an interval fires at once; the first ping should not
    let mut n = 0;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                shared.beat.send_replace(Beat::Shutdown);
                return;
            }
            _ = ticker.tick(), if shared.config.ping_interval.is_some() => {
                n += 1;
                shared.beat.send_replace(Beat::Ping(n));
            }
        }
    }
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
