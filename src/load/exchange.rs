//! The exchange engine of `wscheck load`: one connection's loop (closed loop, rate or
//! idle), its payloads that name their connection and sequence, and the byte-for-byte,
//! in-order check of every echo. Once the connection is open it speaks WebSocket through
//! `framing` on the raw stream: the generator must cost less per message than the server
//! it loads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use schemars::JsonSchema;
use serde::Serialize;

use super::framing::{Framing, Garbled, Heard as Frame};
use super::settings::LoadSettings;
use crate::plan::{Candidate, Plan};
use crate::probe::tls::TlsSetup;
use crate::probe::ws::{close_key, io_cut_kind};
use crate::probe::{Conn, ProbeResult, open};

pub(super) fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// An echo of one of connection `id`'s payloads (verbatim or `Echo: `-prefixed): its
/// sequence number, and whether it is byte for byte the payload `framing` sent for it.
/// `None`: not one of this connection's payloads.
fn read_echo(reply: &[u8], id: u32, size: usize) -> Option<(u64, bool)> {
    let body = reply
        .strip_prefix(wscheck_server::ECHO_PREFIX.as_bytes())
        .unwrap_or(reply);
    let rest = body.strip_prefix(b"wscheck-load ")?;
    let (got_id, rest) = decimal_then_space(rest)?;
    (got_id == u64::from(id)).then_some(())?;
    let (seq, fill) = decimal_then_space(rest)?;
    // The numbers were written canonically, so this much checks the header byte for byte.
    Some((seq, body.len() == size && is_fill(fill)))
}

/// Whether `bytes` are all `x`: compared a block at a time (a byte loop with an early
/// exit would not be vectorised, and 4 KiB echoes go through here).
fn is_fill(bytes: &[u8]) -> bool {
    const BLOCK: [u8; 256] = [b'x'; 256];
    bytes
        .chunks(BLOCK.len())
        .all(|chunk| chunk == &BLOCK[..chunk.len()])
}

/// A canonical decimal (no leading zero) and a space, and what follows.
fn decimal_then_space(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || (digits > 1 && bytes[0] == b'0') || bytes.get(digits) != Some(&b' ') {
        return None;
    }
    let n = bytes[..digits].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((n, &bytes[digits + 1..]))
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct MessagesView {
    pub sent: u64,
    /// Echoes received for messages sent in the measured window.
    pub echoed: u64,
    pub per_second: f64,
    /// Payload bytes that came back identical.
    pub bytes_verified: u64,
    /// Sent, never echoed.
    pub lost: u64,
    pub out_of_order: u64,
    /// Came back, but not as sent.
    pub mismatched: u64,
}

/// One connection's tally.
pub(super) struct Tally {
    /// `Err`: why it could not open.
    pub opened: Result<(), ProbeResult>,
    pub dropped: bool,
    pub exchange: Exchange,
}

/// The times of a run.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub measure_from: Instant,
    pub end: Instant,
}

/// What one connection sent, what is still in flight, and what came back.
pub(super) struct Exchange {
    id: u32,
    size: usize,
    window: Window,
    seq: u64,
    /// In flight, oldest first: (sequence number, sent at).
    pending: VecDeque<(u64, Instant)>,
    pub messages: MessagesView,
    pub errors: BTreeMap<String, u64>,
    pub histogram: Histogram<u64>,
    /// Latencies not yet in `histogram`: a value and how many times in a row.
    latency_run: (u64, u64),
    framing: Framing,
}

/// What a received frame meant for the loop.
enum Heard {
    /// The echo of one of our messages (intact or not): its slot is free again.
    Echo,
    /// Something else (the greeting, a ping): carry on.
    Other,
    /// The connection ended.
    End,
}

impl Exchange {
    fn new(id: u32, size: usize, window: Window) -> Self {
        // Masking keys differ per connection and per run.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            id,
            size,
            window,
            seq: 0,
            pending: VecDeque::new(),
            messages: MessagesView::default(),
            errors: BTreeMap::new(),
            histogram: new_histogram(),
            latency_run: (0, 0),
            framing: Framing::new(seed),
        }
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Records a latency; a pipelined batch's echoes (sent together, read together) share
    /// one, so equal values in a row go into the histogram at once.
    fn record_latency(&mut self, us: u64) {
        if self.latency_run.0 == us {
            self.latency_run.1 += 1;
        } else {
            self.flush_latencies();
            self.latency_run = (us, 1);
        }
    }

    fn flush_latencies(&mut self) {
        let (value, count) = std::mem::take(&mut self.latency_run);
        if count > 0 {
            self.histogram.saturating_record_n(value, count);
        }
    }

    /// Queues `count` messages: pipelined messages leave in one write.
    fn queue(&mut self, count: usize) {
        let now = Instant::now();
        for _ in 0..count {
            self.seq += 1;
            self.pending.push_back((self.seq, now));
            self.framing.push_payload(self.id, self.seq, self.size);
        }
    }

    /// Writes what is queued (messages, pongs). `Err`: the connection failed.
    async fn flush(&mut self, conn: &mut Conn) -> Result<(), ()> {
        if self.framing.output.is_empty() {
            return Ok(());
        }
        match conn.write_all(&self.framing.output).await {
            Ok(()) => {
                self.framing.output.clear();
                self.messages.sent = self.seq;
                Ok(())
            }
            Err(error) => {
                // Not known to have left: not sent, so not lost either.
                self.pending.retain(|(seq, _)| *seq <= self.messages.sent);
                self.error(format!("send: {}", io_kind(&error)));
                Err(())
            }
        }
    }

    /// Takes one frame from the server, received at `received`.
    fn hear(&mut self, frame: Frame<'_>, received: Instant) -> Heard {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Close(code) => {
                self.error(close_key(code));
                return Heard::End;
            }
            Frame::Ping(_) | Frame::Binary | Frame::Pong => return Heard::Other,
        };
        if text == wscheck_server::GREETING.as_bytes() {
            return Heard::Other;
        }
        let Some((got, intact)) = read_echo(text, self.id, self.size) else {
            self.messages.mismatched += 1;
            return Heard::Other;
        };
        let Some(position) = self.pending.iter().position(|(s, _)| *s == got) else {
            self.messages.mismatched += 1;
            return Heard::Other;
        };
        if position > 0 {
            self.messages.out_of_order += 1;
        }
        // In order (the usual case): the oldest, taken off the front.
        let taken = if position == 0 {
            self.pending.pop_front()
        } else {
            self.pending.remove(position)
        };
        let (_, sent_at) = taken.expect("position is in range");
        if !intact {
            self.messages.mismatched += 1;
        } else if sent_at >= self.window.measure_from && received <= self.window.end {
            self.messages.echoed += 1;
            self.messages.bytes_verified += self.size as u64;
            let us = received.duration_since(sent_at).as_micros().max(1) as u64;
            self.record_latency(us);
        }
        Heard::Echo
    }

    /// Hears every whole frame read so far, so that the next batch answers all of them in
    /// one write. The number of echoes heard, or `None` when the connection ended.
    fn hear_all(&mut self, read: std::io::Result<usize>) -> Option<usize> {
        match read {
            Ok(0) => {
                self.error("eof".to_owned());
                return None;
            }
            Ok(_) => {}
            Err(error) => {
                self.error(io_kind(&error));
                return None;
            }
        }
        let received = Instant::now();
        let mut echoes = 0;
        // The frames borrow the framing's buffer while `hear` takes the rest of `self`.
        let mut framing = std::mem::take(&mut self.framing);
        let heard = loop {
            let frame = match framing.next() {
                Ok(Some(Frame::Ping(payload))) => {
                    let payload = payload.to_vec(); // rare: a server ping
                    framing.push_pong(&payload);
                    continue;
                }
                Ok(Some(frame)) => frame,
                Ok(None) => break Some(echoes),
                Err(Garbled(what)) => {
                    self.error(format!("protocol: {what}"));
                    break None;
                }
            };
            match self.hear(frame, received) {
                Heard::Echo => echoes += 1,
                Heard::Other => {}
                Heard::End => break None,
            }
        };
        self.framing = framing;
        heard
    }

    /// Sends and hears until the window ends (then waits a grace period for the echoes
    /// still in flight). Returns whether the connection ended early.
    async fn drive(&mut self, conn: &mut Conn, pace: &Pace) -> bool {
        let mut ticker = tokio::time::interval(pace.interval.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Messages to send before waiting again.
        let mut owed = if pace.closed_loop { pace.in_flight } else { 0 };
        let end = tokio::time::Instant::from_std(self.window.end);
        // One timer for the whole run (a timer per message would cost the generator more
        // than the server spends on the echo): the end of the window, then the grace.
        let stopper = tokio::time::sleep_until(end);
        tokio::pin!(stopper);
        let mut draining = false;
        // A read that ended inside a frame: the rest follows at once, so read it before
        // sending, and answer the whole batch in one write (as the server does).
        let mut mid_frame = false;
        let dropped = loop {
            if owed > 0 && !draining && !mid_frame {
                self.queue(owed);
                owed = 0;
            }
            if !mid_frame && self.flush(conn).await.is_err() {
                break true;
            }
            tokio::select! {
                // In this order, not a random one: the end first, so a busy socket cannot
                // starve it; no random number per message either.
                biased;
                _ = &mut stopper => {
                    if draining || self.pending.is_empty() || pace.idle {
                        break false;
                    }
                    draining = true;
                    stopper.as_mut().reset(end + pace.grace);
                }
                _ = ticker.tick(), if pace.interval.is_some() && !draining => owed += 1,
                read = conn.read_buf(self.framing.read_buffer()) => {
                    let Some(echoes) = self.hear_all(read) else {
                        break true;
                    };
                    owed += echoes * usize::from(pace.closed_loop);
                    mid_frame = self.framing.mid_frame();
                    if draining && self.pending.is_empty() {
                        break false;
                    }
                }
            }
        };
        self.flush_latencies();
        if !self.pending.is_empty() {
            self.error("timeout".to_owned());
            self.messages.lost += self.pending.len() as u64;
        }
        dropped
    }
}

/// `reset`, `eof` or the error's text.
fn io_kind(error: &std::io::Error) -> String {
    io_cut_kind(error).map_or_else(|| error.to_string(), str::to_owned)
}

/// How a connection sends: closed loop (`in_flight` at a time), at an interval, or idle.
pub(super) struct Pace {
    interval: Option<Duration>,
    closed_loop: bool,
    idle: bool,
    in_flight: usize,
    /// How long stragglers may take after the window.
    grace: Duration,
}

impl Pace {
    pub(super) fn new(settings: &LoadSettings, timeout: Duration) -> Self {
        Self {
            interval: match settings.rate {
                Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(
                    f64::from(settings.connections) / rate,
                )),
                _ => None,
            },
            closed_loop: settings.rate.is_none(),
            idle: settings.rate == Some(0.0),
            in_flight: settings.in_flight,
            grace: timeout.min(Duration::from_secs(2)),
        }
    }
}

/// Opens connection `id` at `start_at` and drives it through the window.
pub(super) async fn one_connection(
    plan: Arc<Plan>,
    tls: Arc<TlsSetup>,
    candidate: Candidate,
    settings: Arc<LoadSettings>,
    id: u32,
    start_at: Instant,
    window: Window,
) -> Tally {
    tokio::time::sleep_until(start_at.into()).await;
    let mut result = ProbeResult::new(&candidate);
    let deadline = Instant::now() + plan.timeout;
    let pace = Pace::new(&settings, plan.timeout);
    let mut exchange = Exchange::new(id, settings.size, window);
    let path = &plan.target.path;
    let ran = open(&plan, &tls, &candidate, path, &mut result, deadline, {
        async |ws, _| {
            let dropped = exchange.drive(ws.get_mut(), &pace).await;
            if !dropped {
                let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
            }
            dropped
        }
    })
    .await;
    Tally {
        dropped: ran.is_some_and(|dropped| dropped && Instant::now() < window.end),
        opened: ran.map(|_| ()).ok_or(result),
        exchange,
    }
}

#[cfg(test)]
mod tests {
    use super::super::framing::tests::client_frames;
    use super::*;

    /// The payload `framing` sends: the unmasked text of its one frame.
    fn payload(id: u32, seq: u64, size: usize) -> String {
        let mut framing = Framing::new(3);
        framing.push_payload(id, seq, size);
        let [(_, text)] = &client_frames(&framing.output)[..] else {
            panic!("one frame");
        };
        String::from_utf8(text.clone()).unwrap()
    }

    #[test]
    fn payloads_are_exact_in_size_and_carry_their_sequence() {
        let p = payload(7, 42, 64);
        assert_eq!(p.len(), 64);
        assert!(p.starts_with("wscheck-load 7 42 xxx"));
        let echo = |reply: &str| read_echo(reply.as_bytes(), 7, 64);
        assert_eq!(echo(&p), Some((42, true)));
        assert_eq!(echo(&format!("Echo: {p}")), Some((42, true)));
        assert_eq!(read_echo(p.as_bytes(), 8, 64), None, "another connection's");
        assert_eq!(echo(&format!("Echo: {p}x")), Some((42, false)));
        assert_eq!(echo(&p.replace("xxx", "xyx")), Some((42, false)));
        assert_eq!(echo(&p.replace(" 42 ", " 042")), None, "not canonical");
        assert_eq!(echo("wscheck-load 7 1x2 "), None);
        assert_eq!(echo("wscheck-load 7 99999999999999999999 x"), None);
        assert_eq!(payload(1, 2, 300).len(), 300);
        assert_eq!(
            payload(0, u64::MAX, 64),
            format!("wscheck-load 0 {} {}", u64::MAX, "x".repeat(28))
        );
    }
}
