//! `wscheck load URL`: how many concurrent WebSockets and messages per second a route holds.
//! Opens N connections (optionally ramped), then echoes messages closed-loop (`--in-flight`
//! per connection, one by default), at a fixed total rate, or not at all (`--rate 0`: hold
//! them idle). Every echo is checked byte for byte and in order (`exchange`); latency goes
//! into an HdrHistogram; this module holds the settings, the run and its report.

mod exchange;
mod framing;
mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::Serialize;

use crate::diagnose::FailureCount;
use crate::plan::Plan;
use crate::probe::tls::TlsSetup;
use crate::report::{SCHEMA_VERSION, Tool, now_utc, redact};
pub use exchange::MessagesView;
use exchange::{Tally, Window, new_histogram, one_connection};
pub use settings::{LoadSettings, MAX_IN_FLIGHT, MIN_SIZE};

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LoadReport {
    pub schema_version: u32,
    /// Always `load`: tells this document from a probe report.
    pub kind: &'static str,
    pub tool: Tool,
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
    /// That CPU time per message sent, in microseconds: what one message costs the
    /// generator (when it is near what the server spends, the generator is the limit).
    pub cpu_us_per_message: Option<f64>,
    /// Every connection opened and every message came back intact and in order.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ConnectionsView {
    pub requested: u32,
    pub opened: u32,
    /// Connections that could not open, by diagnosis code.
    pub failed: Vec<FailureCount>,
    /// Opened connections that ended before the run did.
    pub dropped: u32,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LatencyView {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// A process's CPU time so far, user and system seconds, from /proc (Linux; 100 ticks a
/// second).
pub fn cpu_times(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_name` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0))
}

/// A process's CPU time so far, user + system seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_times(pid).map(|(user, system)| user + system)
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
    let mut totals = Totals::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(tally) => totals.add(tally),
            Err(_) => totals.error("internal: a connection task failed".to_owned(), 1),
        }
    }
    let cpu_seconds = match (cpu_before, cpu_seconds(std::process::id())) {
        (Some(before), Some(after)) => Some(((after - before) * 100.0).round() / 100.0),
        _ => None,
    };
    totals.report(&settings, redact::text_with_query(&url), cpu_seconds)
}

/// The connections' tallies added up.
struct Totals {
    messages: MessagesView,
    errors: BTreeMap<String, u64>,
    histogram: Histogram<u64>,
    failed: Vec<FailureCount>,
    opened: u32,
    dropped: u32,
}

impl Totals {
    fn new() -> Self {
        Self {
            messages: MessagesView::default(),
            errors: BTreeMap::new(),
            histogram: new_histogram(),
            failed: Vec::new(),
            opened: 0,
            dropped: 0,
        }
    }

    fn error(&mut self, kind: String, count: u64) {
        *self.errors.entry(kind).or_default() += count;
    }

    fn add(&mut self, tally: Tally) {
        match &tally.opened {
            Ok(()) => self.opened += 1,
            Err(result) => FailureCount::tally(&mut self.failed, result),
        }
        self.dropped += u32::from(tally.dropped);
        let m = tally.exchange.messages;
        let total = &mut self.messages;
        total.sent += m.sent;
        total.echoed += m.echoed;
        total.bytes_verified += m.bytes_verified;
        total.lost += m.lost;
        total.out_of_order += m.out_of_order;
        total.mismatched += m.mismatched;
        for (kind, count) in tally.exchange.errors {
            self.error(kind, count);
        }
        let _ = self.histogram.add(&tally.exchange.histogram);
    }

    fn report(self, settings: &LoadSettings, url: String, cpu_seconds: Option<f64>) -> LoadReport {
        let n = settings.connections;
        let window_s = settings.duration.as_secs_f64();
        let mut messages = self.messages;
        messages.per_second = (messages.echoed as f64 / window_s * 10.0).round() / 10.0;
        let h = &self.histogram;
        let latency_us = (!h.is_empty()).then(|| LatencyView {
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        });
        let cpu_us_per_message = cpu_seconds
            .filter(|_| messages.sent > 0)
            .map(|cpu| (cpu * 1e6 / messages.sent as f64 * 100.0).round() / 100.0);
        let ok = self.opened == n
            && self.dropped == 0
            && messages.lost == 0
            && messages.mismatched == 0
            && messages.out_of_order == 0;
        LoadReport {
            schema_version: SCHEMA_VERSION,
            kind: "load",
            tool: Tool::THIS,
            generated_at: now_utc(),
            url,
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
                opened: self.opened,
                failed: self.failed,
                dropped: self.dropped,
            },
            messages,
            latency_us,
            errors: self.errors,
            window_ms: window_s * 1000.0,
            cpu_seconds,
            cpu_us_per_message,
            ok,
        }
    }
}
