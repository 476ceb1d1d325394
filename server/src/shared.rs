//! State shared by every connection of one server: its config, the session limit, the
//! shutdown token, the task tracker, and the one heartbeat that drives pings and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) started: Instant,
    pub(crate) sessions: Arc<Semaphore>,
    pub(crate) shutdown: CancellationToken,
    /// Every connection and session task, so that shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// One heartbeat for all sessions: ping time, then shutdown. A shared clock instead of
    /// a timer per socket keeps an idle session small.
    pub(crate) beat: tokio::sync::watch::Sender<Beat>,
}

/// What the heartbeat tells every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Time for ping number n.
    Ping(u64),
    /// Close with 1001 and end.
    Shutdown,
}

/// Drives the heartbeat: a ping beat every interval, the shutdown beat at once.
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
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
