//! The limits and timers of one server, and what it learned from its environment.

use std::time::Duration;

use crate::info::Environment;

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
    /// Back-pressure: while more than this much of a session's output is unsent (its
    /// client reads slower than it sends), the server stops reading from that client.
    pub max_pending_output: usize,
    /// A client that takes none of its unsent output for this long is disconnected.
    pub send_timeout: Duration,
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
            max_pending_output: 4 << 20,
            send_timeout: Duration::from_secs(10),
            environment: Environment::default(),
        }
    }
}
