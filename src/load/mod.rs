//! `wscheck load URL`: how many concurrent WebSockets and messages per second a route holds.
//! Opens N connections (optionally ramped), then echoes messages closed-loop (`--in-flight`
//! per connection, one by default), at a fixed total rate, or not at all (`--rate 0`: hold
//! them idle).
//! Every echo is checked byte for byte and in order; latency goes into an HdrHistogram.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::cli::{CheckArgs, Format, LoadArgs};
use crate::deep::FailureCount;
use crate::plan::{Candidate, Plan};
use crate::probe::tls::TlsSetup;
use crate::probe::{ProbeResult, Ws, open};

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
    pub fn from_args(args: &LoadArgs) -> Result<Self, String> {
        let size = usize::try_from(args.size.as_u64()).unwrap_or(usize::MAX);
        if !(MIN_SIZE..=(64 << 20)).contains(&size) {
            return Err(format!(
                "invalid --size {}: must be between {MIN_SIZE} B and 64 MiB",
                args.size
            ));
        }
        if !(1..=50_000).contains(&args.connections) {
            return Err(format!(
                "invalid --connections {}: must be between 1 and 50000",
                args.connections
            ));
        }
        if args.duration.is_zero() {
            return Err("invalid --duration: must be more than zero".to_owned());
        }
        if let Some(rate) = args.rate
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(format!(
                "invalid --rate {rate}: must be a number of messages per second, 0 or more"
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&args.in_flight) {
            return Err(format!(
                "invalid --in-flight {}: must be between 1 and {MAX_IN_FLIGHT}",
                args.in_flight
            ));
        }
        if args.in_flight > 1 && args.rate.is_some() {
            return Err(
                "--in-flight is for the closed loop; with --rate, the rate sets how many messages are in flight"
                    .to_owned(),
            );
        }
        Ok(Self {
            connections: args.connections,
            duration: args.duration,
            rate: args.rate,
            size,
            in_flight: args.in_flight as usize,
            ramp_up: args.ramp_up,
            warmup: args.warmup,
        })
    }

    fn mode(&self) -> &'static str {
        match self.rate {
            None => "closed_loop",
            Some(0.0) => "idle",
            Some(_) => "rate",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub schema_version: u32,
    /// Always `load`: tells this document from a probe report.
    pub kind: &'static str,
    pub tool: crate::report::Tool,
    pub generated_at: String,
    pub url: String,
    pub settings: SettingsView,
    pub connections: ConnectionsView,
    pub messages: MessagesView,
    pub latency_us: Option<LatencyView>,
    /// Errors during the run by kind (`timeout`, `closed 1009`, `reset`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The measured window.
    pub window_ms: f64,
    /// CPU time this process used during the run (user + system), to tell when the load
    /// generator, not the server, is the limit.
    pub cpu_seconds: Option<f64>,
    /// Every connection opened and every message came back intact and in order.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub mode: &'static str,
    pub connections: u32,
    pub duration_ms: f64,
    pub rate: Option<f64>,
    pub size: usize,
    /// Closed loop: messages each connection keeps in flight (1: ping-pong).
    pub in_flight: usize,
    pub ramp_up_ms: f64,
    pub warmup_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsView {
    pub requested: u32,
    pub opened: u32,
    /// Connections that could not open, by diagnosis code.
    pub failed: Vec<FailureCount>,
    /// Opened connections that ended before the run did.
    pub dropped: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct LatencyView {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

fn new_histogram() -> Histogram<u64> {
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

/// One connection's tally.
struct Tally {
    /// `Err`: why it could not open.
    opened: Result<(), ProbeResult>,
    dropped: bool,
    exchange: Exchange,
}

/// The times of a run.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// What one connection sent, what is still in flight, and what came back.
struct Exchange {
    id: u32,
    size: usize,
    window: Window,
    seq: u64,
    /// In flight, oldest first: (sequence number, sent at).
    pending: VecDeque<(u64, Instant)>,
    messages: MessagesView,
    errors: BTreeMap<String, u64>,
    histogram: Histogram<u64>,
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
                let key = frame.map_or_else(
                    || "closed".to_owned(),
                    |f| format!("closed {}", u16::from(f.code)),
                );
                self.error(key);
                return Heard::End;
            }
            Some(Ok(_)) => return Heard::Other,
            Some(Err(error)) => {
                self.error(error_kind(&error));
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
}

async fn one_connection(
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
    let interval = match settings.rate {
        Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(
            f64::from(settings.connections) / rate,
        )),
        _ => None,
    };
    let closed_loop = settings.rate.is_none();
    let idle = settings.rate == Some(0.0);
    let timeout = plan.timeout;
    let mut exchange = Exchange::new(id, settings.size, window);
    let ran = open(
        &plan,
        &tls,
        &candidate,
        &plan.target.path,
        &mut result,
        deadline,
        async |ws, _| {
            let ex = &mut exchange;
            let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Messages to send before waiting again.
            let mut owed = if closed_loop { settings.in_flight } else { 0 };
            let end = tokio::time::Instant::from_std(window.end);
            // One timer for the whole run (a timer per message would cost the generator
            // more than the server spends on the echo): the end of the window, then a
            // grace period for the stragglers.
            let stopper = tokio::time::sleep_until(end);
            tokio::pin!(stopper);
            let mut draining = false;
            let mut dropped = false;
            loop {
                if owed > 0 && !draining {
                    if ex.send(ws, owed).await.is_err() {
                        dropped = true;
                        break;
                    }
                    owed = 0;
                }
                tokio::select! {
                    _ = &mut stopper => {
                        if draining || ex.pending.is_empty() || idle {
                            break;
                        }
                        draining = true;
                        stopper.as_mut().reset(end + timeout.min(Duration::from_secs(2)));
                    }
                    _ = ticker.tick(), if interval.is_some() && !draining => owed += 1,
                    next = ws.next() => {
                        // Then whatever else has already arrived, so that the next batch
                        // answers all of them in one write.
                        let mut next = Some(next);
                        while let Some(frame) = next {
                            match ex.hear(frame) {
                                Heard::Echo => owed += usize::from(closed_loop),
                                Heard::Other => {}
                                Heard::End => {
                                    dropped = true;
                                    break;
                                }
                            }
                            next = ws.next().now_or_never();
                        }
                        if dropped || (draining && ex.pending.is_empty()) {
                            break;
                        }
                    }
                }
            }
            if !ex.pending.is_empty() {
                ex.error("timeout".to_owned());
                ex.messages.lost += ex.pending.len() as u64;
            }
            if !dropped {
                let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
            }
            dropped
        },
    )
    .await;
    Tally {
        dropped: ran.is_some_and(|dropped| dropped && Instant::now() < window.end),
        opened: ran.map(|_| ()).ok_or(result),
        exchange,
    }
}

fn error_kind(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    match error {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) | Error::ConnectionClosed => {
            "eof".to_owned()
        }
        Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_owned(),
        other => other.to_string(),
    }
}

/// A process's CPU time so far (user + system), from /proc (Linux; 100 ticks a second).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_name` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs the load described by `settings` against `plan`'s single candidate.
pub async fn run_load(plan: Plan, tls: TlsSetup, settings: LoadSettings) -> LoadReport {
    let candidate = plan.candidates[0].clone();
    let url = candidate.url.clone();
    let plan = Arc::new(plan);
    let tls = Arc::new(tls);
    let settings = Arc::new(settings);
    let cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now() + Duration::from_millis(20);
    let measure_from = started + settings.ramp_up + settings.warmup;
    let window = Window {
        measure_from,
        end: measure_from + settings.duration,
    };
    let n = settings.connections;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..n {
        let offset = settings.ramp_up.mul_f64(f64::from(id) / f64::from(n));
        tasks.spawn(one_connection(
            plan.clone(),
            tls.clone(),
            candidate.clone(),
            settings.clone(),
            id,
            started + offset,
            window,
        ));
    }
    let mut messages = MessagesView::default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut histogram = new_histogram();
    let mut failed: Vec<FailureCount> = Vec::new();
    let (mut opened, mut dropped) = (0u32, 0u32);
    while let Some(joined) = tasks.join_next().await {
        let Ok(tally) = joined else {
            *errors
                .entry("internal: a connection task failed".to_owned())
                .or_default() += 1;
            continue;
        };
        match &tally.opened {
            Ok(()) => opened += 1,
            Err(result) => FailureCount::tally(&mut failed, result),
        }
        dropped += u32::from(tally.dropped);
        let m = tally.exchange.messages;
        messages.sent += m.sent;
        messages.echoed += m.echoed;
        messages.bytes_verified += m.bytes_verified;
        messages.lost += m.lost;
        messages.out_of_order += m.out_of_order;
        messages.mismatched += m.mismatched;
        for (kind, count) in tally.exchange.errors {
            *errors.entry(kind).or_default() += count;
        }
        let _ = histogram.add(&tally.exchange.histogram);
    }
    let window_s = settings.duration.as_secs_f64();
    messages.per_second = (messages.echoed as f64 / window_s * 10.0).round() / 10.0;
    let latency_us = (!histogram.is_empty()).then(|| LatencyView {
        min: histogram.min(),
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
        mean: (histogram.mean() * 10.0).round() / 10.0,
    });
    let cpu_seconds = match (cpu_before, cpu_seconds(std::process::id())) {
        (Some(before), Some(after)) => Some(((after - before) * 100.0).round() / 100.0),
        _ => None,
    };
    let ok = opened == n
        && dropped == 0
        && messages.lost == 0
        && messages.mismatched == 0
        && messages.out_of_order == 0;
    LoadReport {
        schema_version: crate::report::SCHEMA_VERSION,
        kind: "load",
        tool: crate::report::Tool {
            name: "wscheck",
            version: env!("CARGO_PKG_VERSION"),
        },
        generated_at: crate::now_utc(),
        url: crate::report::redact::text_with_query(&url),
        settings: SettingsView {
            mode: settings.mode(),
            connections: n,
            duration_ms: settings.duration.as_secs_f64() * 1000.0,
            rate: settings.rate,
            size: settings.size,
            in_flight: settings.in_flight,
            ramp_up_ms: settings.ramp_up.as_secs_f64() * 1000.0,
            warmup_ms: settings.warmup.as_secs_f64() * 1000.0,
        },
        connections: ConnectionsView {
            requested: n,
            opened,
            failed,
            dropped,
        },
        messages,
        latency_us,
        errors,
        window_ms: window_s * 1000.0,
        cpu_seconds,
        ok,
    }
}

/// Plans a load run from its flags: the URL alone (`--only`), with the connection options.
pub fn plan_load(args: &LoadArgs) -> Result<(Plan, LoadSettings), String> {
    let settings = LoadSettings::from_args(args)?;
    let check = CheckArgs {
        target: Some(args.url.clone()),
        conn: args.conn.clone(),
        only: true,
        ..CheckArgs::default()
    };
    let plan = crate::plan::plan(&check).map_err(|e| e.to_string())?;
    Ok((plan, settings))
}

pub fn render(report: &LoadReport, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        return writeln!(out);
    }
    let md = format == Format::Markdown;
    let line = |out: &mut dyn Write, label: &str, value: String| -> std::io::Result<()> {
        if md {
            writeln!(out, "- **{label}:** {value}")
        } else {
            writeln!(out, "  {label:<12} {value}")
        }
    };
    let s = &report.settings;
    if md {
        writeln!(out, "### Load test of `{}`\n", report.url)?;
    } else {
        writeln!(
            out,
            "wscheck load · {} · {}",
            report.url, report.generated_at
        )?;
    }
    let rate = match s.rate {
        None if s.in_flight == 1 => "closed loop (one message in flight per connection)".to_owned(),
        None => format!(
            "closed loop ({} messages in flight per connection)",
            s.in_flight
        ),
        Some(0.0) => "idle (connections held, no messages)".to_owned(),
        Some(r) => format!("{r} msgs/s in total"),
    };
    line(
        out,
        "settings",
        format!(
            "{} connections · {} B messages · {rate} · {:.0} s (+{:.0} s ramp-up, {:.0} s warm-up)",
            s.connections,
            s.size,
            s.duration_ms / 1000.0,
            s.ramp_up_ms / 1000.0,
            s.warmup_ms / 1000.0
        ),
    )?;
    let c = &report.connections;
    let mut conns = format!("{} of {} opened", c.opened, c.requested);
    if c.dropped > 0 {
        conns.push_str(&format!(", {} dropped during the run", c.dropped));
    }
    for f in &c.failed {
        conns.push_str(&format!(
            "; {} failed: {} ({})",
            f.connections,
            f.code.as_str(),
            f.detail
        ));
    }
    line(out, "connections", conns)?;
    let m = &report.messages;
    line(
        out,
        "messages",
        format!(
            "{} echoed ({:.0}/s), {} bytes verified; lost {}, out of order {}, mismatched {}",
            m.echoed, m.per_second, m.bytes_verified, m.lost, m.out_of_order, m.mismatched
        ),
    )?;
    if let Some(l) = &report.latency_us {
        line(
            out,
            "latency",
            format!(
                "min {} µs · p50 {} · p90 {} · p99 {} · p99.9 {} · max {} µs",
                l.min, l.p50, l.p90, l.p99, l.p999, l.max
            ),
        )?;
    }
    if !report.errors.is_empty() {
        let errors: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect();
        line(out, "errors", errors.join(", "))?;
    }
    if let Some(cpu) = report.cpu_seconds {
        line(out, "generator", format!("{cpu:.2} s CPU in this process"))?;
    }
    line(
        out,
        "result",
        if report.ok {
            "ok: every connection opened, every echo intact and in order".to_owned()
        } else {
            "FAIL".to_owned()
        },
    )
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
