//! What a load run does, validated: connections, duration, rate or closed loop, message
//! size, messages in flight, ramp-up and warm-up.

use std::time::Duration;

/// Smallest message: room for the connection and sequence numbers that make every
/// payload unique and checkable.
pub const MIN_SIZE: usize = 32;

/// Most messages a connection may keep in flight (`--in-flight`).
pub const MAX_IN_FLIGHT: u32 = 1024;

/// What to do, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSettings {
    pub connections: u32,
    pub duration: Duration,
    /// Total messages per second over all connections; `None`: closed loop; `0`: idle.
    pub rate: Option<f64>,
    pub size: usize,
    /// Closed loop: messages each connection keeps in flight.
    pub in_flight: usize,
    pub ramp_up: Duration,
    pub warmup: Duration,
}

impl LoadSettings {
    /// `closed_loop`, `idle` or `rate`, as the report names it.
    pub fn mode(&self) -> &'static str {
        match self.rate {
            None => "closed_loop",
            Some(0.0) => "idle",
            Some(_) => "rate",
        }
    }
}
