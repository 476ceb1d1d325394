//! The exchange engine of `wscheck load`: one connection's loop (closed loop, rate or
//! idle), its payloads that name their connection and sequence, and the byte-for-byte,
//! in-order check of every echo.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use schemars::JsonSchema;
use serde::Serialize;

use super::settings::LoadSettings;
use crate::plan::{Candidate, Plan};
use crate::probe::tls::TlsSetup;
use crate::probe::ws::{close_key, cut_kind};
use crate::probe::{ProbeResult, Ws, open};

pub(super) fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// A payload of exactly `size` bytes that names its connection and sequence number.
fn payload(id: u32, seq: u64, size: usize) -> String {
    let mut text = format!("wscheck-load {id} {seq} ");
    let fill = size.saturating_sub(text.len());
    text.extend(std::iter::repeat_n('x', fill));
    text
}

/// The sequence number in an echo of one of connection `id`'s payloads.
fn sequence_of(reply: &str, id: u32) -> Option<u64> {
    let body = reply
        .strip_prefix(wscheck_server::ECHO_PREFIX)
        .unwrap_or(reply);
    let rest = body.strip_prefix("wscheck-load ")?;
    let mut parts = rest.splitn(3, ' ');
    (parts.next()?.parse::<u32>().ok()? == id).then_some(())?;
    parts.next()?.parse().ok()
}

/// Whether `reply` is the echo (verbatim or `Echo: `-prefixed) of payload `seq` of
/// connection `id`, checked byte for byte without building the payload again.
fn is_echo(reply: &str, id: u32, seq: u64, size: usize, header: &mut String) -> bool {
    use std::fmt::Write as _;
    let body = reply
        .strip_prefix(wscheck_server::ECHO_PREFIX)
        .filter(|b| b.len() == size)
        .unwrap_or(reply);
    header.clear();
    let _ = write!(header, "wscheck-load {id} {seq} ");
    body.len() == size
        && body.starts_with(header.as_str())
        && body.as_bytes()[header.len().min(size)..]
            .iter()
            .all(|b| *b == b'x')
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
    /// Reused for checking echoes.
    header: String,
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
        Self {
            id,
            size,
            window,
            seq: 0,
            pending: VecDeque::new(),
            messages: MessagesView::default(),
            errors: BTreeMap::new(),
            histogram: new_histogram(),
            header: String::with_capacity(48),
        }
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Sends `count` messages with one flush: pipelined messages leave in one write.
    async fn send(&mut self, ws: &mut Ws<'_>, count: usize) -> Result<(), ()> {
        let first = self.pending.len();
        let mut sent = Ok(());
        for _ in 0..count {
            self.seq += 1;
            self.pending.push_back((self.seq, Instant::now()));
            let message = Message::text(payload(self.id, self.seq, self.size));
            sent = ws.feed(message).await;
            if sent.is_err() {
                break;
            }
        }
        if sent.is_ok() {
            sent = ws.flush().await;
        }
        match sent {
            Ok(()) => {
                self.messages.sent += count as u64;
                Ok(())
            }
            Err(error) => {
                // Not known to have left: not sent, so not lost either.
                self.pending.truncate(first);
                self.error(format!("send: {error}"));
                Err(())
            }
        }
    }

    fn hear(&mut self, next: Option<Result<Message, WsError>>) -> Heard {
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                self.error(close_key(frame.map(|f| u16::from(f.code))));
                return Heard::End;
            }
            Some(Ok(_)) => return Heard::Other,
            Some(Err(error)) => {
                let kind = cut_kind(&error).map_or_else(|| error.to_string(), str::to_owned);
                self.error(kind);
                return Heard::End;
            }
            None => {
                self.error("eof".to_owned());
                return Heard::End;
            }
        };
        if text.as_str() == wscheck_server::GREETING {
            return Heard::Other;
        }
        let received = Instant::now();
        let Some(got) = sequence_of(&text, self.id) else {
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
        let (seq, sent_at) = self.pending.remove(position).expect("position is in range");
        if !is_echo(&text, self.id, seq, self.size, &mut self.header) {
            self.messages.mismatched += 1;
        } else if sent_at >= self.window.measure_from && received <= self.window.end {
            self.messages.echoed += 1;
            self.messages.bytes_verified += self.size as u64;
            let us = received.duration_since(sent_at).as_micros().max(1) as u64;
            self.histogram.saturating_record(us);
        }
        Heard::Echo
    }

    /// Hears `first` and whatever else has already arrived, so that the next batch
    /// answers all of them in one write. The number of echoes heard, or `None` when the
    /// connection ended.
    fn hear_burst(
        &mut self,
        ws: &mut Ws<'_>,
        first: Option<Result<Message, WsError>>,
    ) -> Option<usize> {
        let mut echoes = 0;
        let mut next = Some(first);
        while let Some(frame) = next {
            match self.hear(frame) {
                Heard::Echo => echoes += 1,
                Heard::Other => {}
                Heard::End => return None,
            }
            next = ws.next().now_or_never();
        }
        Some(echoes)
    }

    /// Sends and hears until the window ends (then waits a grace period for the echoes
    /// still in flight). Returns whether the connection ended early.
    async fn drive(&mut self, ws: &mut Ws<'_>, pace: &Pace) -> bool {
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
        let dropped = loop {
            if owed > 0 && !draining {
                if self.send(ws, owed).await.is_err() {
                    break true;
                }
                owed = 0;
            }
            tokio::select! {
                _ = &mut stopper => {
                    if draining || self.pending.is_empty() || pace.idle {
                        break false;
                    }
                    draining = true;
                    stopper.as_mut().reset(end + pace.grace);
                }
                _ = ticker.tick(), if pace.interval.is_some() && !draining => owed += 1,
                next = ws.next() => {
                    let Some(echoes) = self.hear_burst(ws, next) else {
                        break true;
                    };
                    owed += echoes * usize::from(pace.closed_loop);
                    if draining && self.pending.is_empty() {
                        break false;
                    }
                }
            }
        };
        if !self.pending.is_empty() {
            self.error("timeout".to_owned());
            self.messages.lost += self.pending.len() as u64;
        }
        dropped
    }
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
            let dropped = exchange.drive(ws, &pace).await;
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
    use super::*;

    #[test]
    fn payloads_are_exact_in_size_and_carry_their_sequence() {
        let p = payload(7, 42, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(sequence_of(&p, 7), Some(42));
        assert_eq!(sequence_of(&format!("Echo: {p}"), 7), Some(42));
        assert_eq!(sequence_of(&p, 8), None);
        let mut header = String::new();
        assert!(is_echo(&format!("Echo: {p}"), 7, 42, 64, &mut header));
        assert!(is_echo(&p, 7, 42, 64, &mut header));
        assert!(!is_echo(&format!("Echo: {p}x"), 7, 42, 64, &mut header));
        assert!(!is_echo(&p.replace("xxx", "xyx"), 7, 42, 64, &mut header));
        assert!(!is_echo(&p, 7, 43, 64, &mut header));
    }
}
