//! Deep checks over the recommended URL, after the matrix: idle survival (`--hold`),
//! message sizes (`--sizes`), latency (`--count`) and instances (`--connections`). Each
//! opens its own connections with the probe's staged machinery and returns data; findings
//! (`idle_timeout`, `message_too_large`, `sticky_session_required`) come from the pure
//! `findings`. Long-polling sessions (`--polling`) live in `polling`.

pub mod polling;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use schemars::JsonSchema;
use serde::Serialize;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use crate::diagnose::{Code, FailureCount, diagnose};
use crate::plan::{Candidate, Plan};
use crate::probe::tls::TlsSetup;
use crate::probe::ws::{close_key, cut_kind, ms, read_info};
use crate::probe::{ProbeResult, Timings, Ws, open};

/// Everything the deep checks found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeepReport {
    /// The URL the checks ran over.
    pub url: String,
    pub hold: Option<HoldResult>,
    pub sizes: Option<SizesResult>,
    pub latency: Option<LatencyResult>,
    pub instances: Option<InstancesResult>,
    /// Engine.IO long-polling sessions (`--polling`, or `--connections` on a socket.io URL).
    pub polling: Option<polling::PollingResult>,
    pub findings: Vec<Finding>,
}

/// A problem a deep check found, with a diagnosis code like a probe's.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Finding {
    pub code: Code,
    pub summary: &'static str,
    pub fix: &'static str,
    pub detail: String,
}

impl Finding {
    /// A finding of `code`, with its texts and this case's `detail`.
    pub fn new(code: Code, detail: String) -> Self {
        Self {
            code,
            summary: code.summary(),
            fix: code.fix(),
            detail,
        }
    }
}

/// How a held connection ended.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Cut {
    pub after_ms: f64,
    /// `close` (a close frame), `eof` (TCP closed without one), `reset`, or `error`.
    pub how: &'static str,
    pub close_code: Option<u16>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HoldResult {
    pub requested_ms: f64,
    pub survived: bool,
    pub cut: Option<Cut>,
    /// Client pings sent (with `--ping-interval`) and pongs received.
    pub ping_interval_ms: Option<f64>,
    pub pings_sent: u32,
    pub pongs_received: u32,
    /// Pings the server sent while we held the connection (the bundled one pings every 25 s).
    pub server_pings: u32,
    /// Half the measured cut-off, in whole seconds (at least 1).
    pub recommended_ping_interval_s: Option<u64>,
    /// Why the hold could not start, if it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Text,
    Binary,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SizeResult {
    pub size: usize,
    pub kind: Kind,
    pub ok: bool,
    /// `ok`, `closed <code>`, `closed`, `reset`, `timeout`, `mismatch`, or why it could not open.
    pub outcome: String,
    pub rtt_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SizesResult {
    pub results: Vec<SizeResult>,
    /// Largest size that passed as text and as binary.
    pub largest_ok: Option<usize>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LatencyResult {
    pub requested: u32,
    pub completed: u32,
    pub min_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Connection set-up of the latency connection, by stage.
    pub setup_ms: Timings,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InstanceCount {
    pub index: Option<String>,
    pub guid: Option<String>,
    pub connections: u32,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InstancesResult {
    pub requested: u32,
    pub opened: u32,
    /// Connections whose peer sent no instance (not the bundled server).
    pub unknown_instance: u32,
    pub instances: Vec<InstanceCount>,
    pub failures: Vec<FailureCount>,
    /// The `X-Cf-App-Instance` sent (`--instance`), if any.
    pub targeted: Option<String>,
    pub explanation: &'static str,
}

/// How gorouter spreads connections, for the instances section.
pub const INSTANCES_EXPLANATION: &str = "Gorouter spreads new connections over the app's instances (round robin). \
A JSESSIONID cookie set by the app makes gorouter add __VCAP_ID__=<instance guid>, so later requests of that \
client stick to one instance; an upgrade request carrying both cookies lands on that instance. To reach one \
instance on purpose, send X-Cf-App-Instance: APP_GUID:INDEX (--instance; APP_GUID from `cf app APP --guid`).";

/// Runs the deep checks the plan asks for over `candidate`.
pub async fn run(plan: &Plan, tls: &TlsSetup, candidate: &Candidate) -> DeepReport {
    let deep = &plan.deep;
    // Independent checks run at once; the hold is the long one anyway.
    let hold = async {
        match deep.hold {
            Some(duration) => Some(hold(plan, tls, candidate, duration, deep.ping_interval).await),
            None => None,
        }
    };
    let sizes = async {
        if deep.sizes.is_empty() {
            None
        } else {
            Some(sizes(plan, tls, candidate, &deep.sizes).await)
        }
    };
    let latency = async {
        match deep.count {
            Some(count) => Some(latency(plan, tls, candidate, count).await),
            None => None,
        }
    };
    let instances = async {
        match deep.connections {
            Some(n) => Some(instances(plan, tls, candidate, n).await),
            None => None,
        }
    };
    let polling = async {
        let socketio = plan.target.path.contains("/socket.io/");
        let sessions = match (deep.polling, deep.connections) {
            (true, n) => Some(n.unwrap_or(polling::DEFAULT_SESSIONS)),
            (false, Some(n)) if socketio => Some(n),
            _ => None,
        };
        match sessions {
            Some(n) => Some(polling::run(plan, tls, candidate, n).await),
            None => None,
        }
    };
    let (hold, sizes, latency, instances, polling) =
        tokio::join!(hold, sizes, latency, instances, polling);
    let mut report = DeepReport {
        url: candidate.url.clone(),
        hold,
        sizes,
        latency,
        instances,
        polling,
        findings: Vec::new(),
    };
    report.findings = findings(&report);
    report
}

/// The problems in a deep report (pure).
pub fn findings(report: &DeepReport) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(hold) = &report.hold
        && let Some(cut) = &hold.cut
    {
        let recommended = hold.recommended_ping_interval_s.unwrap_or(1);
        out.push(Finding::new(
            Code::IdleTimeout,
            format!(
                "cut after {:.1} s idle ({}{}); ping every {recommended} s or more often",
                cut.after_ms / 1000.0,
                cut.how,
                cut.close_code.map(|c| format!(" {c}")).unwrap_or_default()
            ),
        ));
    }
    if let Some(sizes) = &report.sizes
        && let Some(failed) = sizes.results.iter().find(|r| !r.ok)
    {
        let largest = sizes.largest_ok.map_or_else(
            || "none".to_owned(),
            |b| bytesize::ByteSize(b as u64).to_string(),
        );
        // No answer at all, while a smaller size passed: the path loses large packets.
        let lost_on_the_way = failed.outcome == "timeout" && sizes.largest_ok.is_some();
        let code = if lost_on_the_way {
            Code::PathMtuBlackHole
        } else {
            Code::MessageTooLarge
        };
        out.push(Finding::new(
            code,
            format!(
                "largest size that passed: {largest}; {} {:?} failed: {}",
                bytesize::ByteSize(failed.size as u64),
                failed.kind,
                failed.outcome
            ),
        ));
    }
    if let Some(instances) = &report.instances {
        for failure in &instances.failures {
            out.push(Finding::new(
                failure.code,
                format!(
                    "{} of {} connections: {}",
                    failure.connections, instances.requested, failure.detail
                ),
            ));
        }
    }
    if let Some(polled) = report.polling.as_ref().filter(|p| p.lost > 0) {
        out.push(Finding::new(
            Code::StickySessionRequired,
            sticky_detail(polled),
        ));
    }
    out
}

/// Which sessions broke, and whether the app set the cookie gorouter sticks by.
fn sticky_detail(polled: &polling::PollingResult) -> String {
    let cookie = if polled.cookies.iter().any(|c| c == "JSESSIONID") {
        "the app sets JSESSIONID, yet requests were not kept on one instance"
    } else {
        "the app sets no JSESSIONID cookie, so gorouter does not keep a client on one instance"
    };
    format!(
        "{} of {} long-polling sessions ({}) were lost: a follow-up request got 400 \"Session ID unknown\" from another instance; {cookie}",
        polled.lost, polled.sessions, polled.path
    )
}

/// Opens `candidate` at `path` and runs `then` on the socket; a failure to open comes back
/// as its diagnosis.
async fn with_socket<R>(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    deadline: Instant,
    then: impl AsyncFnOnce(&mut Ws<'_>, &mut ProbeResult) -> R,
) -> Result<(R, ProbeResult), ProbeResult> {
    let mut result = ProbeResult::new(candidate);
    match open(plan, tls, candidate, path, &mut result, deadline, then).await {
        Some(r) => Ok((r, result)),
        None => Err(result),
    }
}

fn open_failure(result: &ProbeResult) -> String {
    let d = diagnose(result);
    format!("could not open: {} ({})", d.code.as_str(), d.detail)
}

async fn hold(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    duration: Duration,
    ping_interval: Option<Duration>,
) -> HoldResult {
    let mut held = HoldResult {
        requested_ms: ms(duration),
        survived: false,
        cut: None,
        ping_interval_ms: ping_interval.map(ms),
        pings_sent: 0,
        pongs_received: 0,
        server_pings: 0,
        recommended_ping_interval_s: None,
        error: None,
    };
    let deadline = Instant::now() + duration + plan.timeout;
    let outcome = with_socket(plan, tls, candidate, &plan.target.path, deadline, async |ws, _| {
        let started = Instant::now();
        let until = tokio::time::Instant::from_std(started + duration);
        let mut pinger = tokio::time::interval(ping_interval.unwrap_or(Duration::from_secs(3600)));
        pinger.reset();
        let mut counts = (0u32, 0u32, 0u32);
        let cut = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break None,
                _ = pinger.tick(), if ping_interval.is_some() => {
                    counts.0 += 1;
                    if let Err(error) = ws.send(Message::Ping(Bytes::from_static(b"wscheck-hold"))).await {
                        break Some(Cut { after_ms: ms(started.elapsed()), how: "error", close_code: None, detail: error.to_string() });
                    }
                }
                next = ws.next() => match next {
                    Some(Ok(Message::Pong(_))) => counts.1 += 1,
                    Some(Ok(Message::Ping(_))) => counts.2 += 1,
                    Some(Ok(Message::Close(frame))) => break Some(Cut {
                        after_ms: ms(started.elapsed()),
                        how: "close",
                        close_code: frame.as_ref().map(|f| f.code.into()),
                        detail: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break Some(cut_from_error(started.elapsed(), &error)),
                    None => break Some(Cut { after_ms: ms(started.elapsed()), how: "eof", close_code: None, detail: "the connection ended".to_owned() }),
                },
            }
        };
        if cut.is_none() {
            let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
        }
        (cut, counts)
    })
    .await;
    match outcome {
        Ok(((cut, (sent, pongs, server_pings)), _)) => {
            held.pings_sent = sent;
            held.pongs_received = pongs;
            held.server_pings = server_pings;
            held.survived = cut.is_none();
            held.recommended_ping_interval_s = cut
                .as_ref()
                .map(|c| ((c.after_ms / 2000.0).floor() as u64).clamp(1, 30));
            held.cut = cut;
        }
        Err(result) => held.error = Some(open_failure(&result)),
    }
    held
}

fn cut_from_error(after: Duration, error: &WsError) -> Cut {
    Cut {
        after_ms: ms(after),
        how: cut_kind(error).unwrap_or("error"),
        close_code: None,
        detail: error.to_string(),
    }
}

/// A payload of `size` bytes that is easy to check and unlikely to be mistaken.
fn payload(size: usize, kind: Kind) -> Vec<u8> {
    match kind {
        Kind::Text => b"wscheck-size-"
            .iter()
            .chain(b"0123456789abcdefghijklmnopqrstuvwxyz".iter().cycle())
            .take(size)
            .copied()
            .collect(),
        Kind::Binary => (0..size).map(|i| (i % 251) as u8).collect(),
    }
}

/// Waits for `expected` (or, for text, `Echo: expected`) and says how it went.
async fn await_echo(
    ws: &mut Ws<'_>,
    expected: &[u8],
    kind: Kind,
    until: Instant,
) -> Result<(), String> {
    let prefix = wscheck_server::ECHO_PREFIX.as_bytes();
    loop {
        let next = match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => return Err("timeout".to_owned()),
            Ok(next) => next,
        };
        match next {
            Some(Ok(Message::Text(text))) if kind == Kind::Text => {
                let bytes = text.as_bytes();
                if bytes == expected
                    || (bytes.starts_with(prefix) && &bytes[prefix.len()..] == expected)
                {
                    return Ok(());
                }
                // The article's greeting comes first on every connection; anything else
                // is not our echo.
                if text.as_str() != wscheck_server::GREETING {
                    return Err("mismatch".to_owned());
                }
            }
            Some(Ok(Message::Binary(data))) if kind == Kind::Binary => {
                return if data.as_ref() == expected {
                    Ok(())
                } else {
                    Err("mismatch".to_owned())
                };
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(close_key(frame.map(|f| u16::from(f.code))));
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                return Err(cut_kind(&error).map_or_else(|| error.to_string(), str::to_owned));
            }
            None => return Err("eof".to_owned()),
        }
    }
}

async fn sizes(plan: &Plan, tls: &TlsSetup, candidate: &Candidate, sizes: &[usize]) -> SizesResult {
    let mut results = Vec::new();
    for &size in sizes {
        for kind in [Kind::Text, Kind::Binary] {
            // A fresh connection per message: a failure (1009, reset) must not spill over.
            let deadline = Instant::now() + plan.timeout;
            let data = payload(size, kind);
            let outcome = with_socket(
                plan,
                tls,
                candidate,
                &plan.target.path,
                deadline,
                async |ws, _| {
                    let sent = Instant::now();
                    let message = match kind {
                        Kind::Text => {
                            Message::text(String::from_utf8(data.clone()).unwrap_or_default())
                        }
                        Kind::Binary => Message::binary(data.clone()),
                    };
                    match tokio::time::timeout_at(deadline.into(), ws.send(message)).await {
                        Ok(Ok(())) => {}
                        // A send that cannot finish: nothing the peer reads gets through.
                        Err(_) => return (Err("timeout".to_owned()), None),
                        Ok(Err(error)) => {
                            return (Err(cut_kind(&error).unwrap_or("error").to_owned()), None);
                        }
                    }
                    let echoed = await_echo(ws, &data, kind, deadline).await;
                    let rtt = echoed.is_ok().then(|| ms(sent.elapsed()));
                    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                    (echoed, rtt)
                },
            )
            .await;
            let (ok, outcome, rtt_ms) = match outcome {
                Ok(((Ok(()), rtt), _)) => (true, "ok".to_owned(), rtt),
                Ok(((Err(why), _), _)) => (false, why, None),
                Err(result) => (false, open_failure(&result), None),
            };
            results.push(SizeResult {
                size,
                kind,
                ok,
                outcome,
                rtt_ms,
            });
        }
    }
    let largest_ok = sizes
        .iter()
        .copied()
        .filter(|s| results.iter().filter(|r| r.size == *s).all(|r| r.ok))
        .max();
    SizesResult {
        results,
        largest_ok,
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

async fn latency(plan: &Plan, tls: &TlsSetup, candidate: &Candidate, count: u32) -> LatencyResult {
    // Room for every round trip at the per-probe timeout would be silly; a round trip that
    // takes longer than the probe timeout ends the series.
    let deadline = Instant::now() + plan.timeout * 2 + Duration::from_millis(u64::from(count));
    let outcome = with_socket(
        plan,
        tls,
        candidate,
        &plan.target.path,
        deadline,
        async |ws, _| {
            let mut samples = Vec::with_capacity(count as usize);
            let mut error = None;
            for i in 0..count {
                let nonce = format!("wscheck-rtt-{i}");
                let sent = Instant::now();
                if let Err(e) = ws.send(Message::text(nonce.clone())).await {
                    error = Some(e.to_string());
                    break;
                }
                match await_echo(
                    ws,
                    nonce.as_bytes(),
                    Kind::Text,
                    Instant::now() + plan.timeout,
                )
                .await
                {
                    Ok(()) => samples.push(ms(sent.elapsed())),
                    Err(why) => {
                        error = Some(format!("round trip {} of {count}: {why}", i + 1));
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
            (samples, error)
        },
    )
    .await;
    match outcome {
        Ok(((mut samples, error), result)) => {
            samples.sort_by(f64::total_cmp);
            LatencyResult {
                requested: count,
                completed: samples.len() as u32,
                min_ms: samples.first().copied(),
                median_ms: percentile(&samples, 50.0),
                p99_ms: percentile(&samples, 99.0),
                max_ms: samples.last().copied(),
                setup_ms: result.timings,
                error,
            }
        }
        Err(result) => LatencyResult {
            requested: count,
            completed: 0,
            min_ms: None,
            median_ms: None,
            p99_ms: None,
            max_ms: None,
            setup_ms: result.timings.clone(),
            error: Some(open_failure(&result)),
        },
    }
}

async fn instances(plan: &Plan, tls: &TlsSetup, candidate: &Candidate, n: u32) -> InstancesResult {
    let deadline = Instant::now() + plan.timeout;
    // Connections stay open until all are counted, so that the router cannot hand the same
    // instance a closed connection's slot.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n as usize));
    let attempts = (0..n).map(|_| {
        let barrier = barrier.clone();
        async move {
            let outcome = with_socket(
                plan,
                tls,
                candidate,
                wscheck_server::INFO_WS_PATH,
                deadline,
                async |ws, _| read_info(ws, deadline).await,
            )
            .await;
            let _ = tokio::time::timeout_at(deadline.into(), barrier.wait()).await;
            outcome
        }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let mut by_instance: BTreeMap<(Option<String>, Option<String>), u32> = BTreeMap::new();
    let mut failures: Vec<FailureCount> = Vec::new();
    let (mut opened, mut unknown) = (0, 0);
    for outcome in outcomes {
        match outcome {
            Ok((Some(info), _)) => {
                opened += 1;
                *by_instance
                    .entry((
                        info.environment.instance_index,
                        info.environment.instance_guid,
                    ))
                    .or_default() += 1;
            }
            Ok((None, _)) => {
                opened += 1;
                unknown += 1;
            }
            Err(result) => FailureCount::tally(&mut failures, &result),
        }
    }
    InstancesResult {
        requested: n,
        opened,
        unknown_instance: unknown,
        instances: by_instance
            .into_iter()
            .map(|((index, guid), connections)| InstanceCount {
                index,
                guid,
                connections,
            })
            .collect(),
        failures,
        targeted: plan
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-cf-app-instance"))
            .map(|(_, v)| v.clone()),
        explanation: INSTANCES_EXPLANATION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn payloads_have_the_requested_size() {
        assert_eq!(payload(1024, Kind::Text).len(), 1024);
        assert!(std::str::from_utf8(&payload(70_000, Kind::Text)).is_ok());
        assert_eq!(payload(3, Kind::Binary), [0, 1, 2]);
    }

    #[test]
    fn findings_name_the_cut_off_and_the_largest_size() {
        let report = DeepReport {
            url: "wss://x/".into(),
            hold: Some(HoldResult {
                requested_ms: 90_000.0,
                survived: false,
                cut: Some(Cut {
                    after_ms: 60_100.0,
                    how: "eof",
                    close_code: None,
                    detail: String::new(),
                }),
                ping_interval_ms: None,
                pings_sent: 0,
                pongs_received: 0,
                server_pings: 0,
                recommended_ping_interval_s: Some(30),
                error: None,
            }),
            sizes: Some(SizesResult {
                results: vec![
                    SizeResult {
                        size: 1024,
                        kind: Kind::Text,
                        ok: true,
                        outcome: "ok".into(),
                        rtt_ms: Some(1.0),
                    },
                    SizeResult {
                        size: 16 << 20,
                        kind: Kind::Text,
                        ok: false,
                        outcome: "closed 1009".into(),
                        rtt_ms: None,
                    },
                ],
                largest_ok: Some(1024),
            }),
            latency: None,
            instances: None,
            polling: Some(polling::PollingResult {
                path: "/socket.io/?EIO=4&transport=polling".into(),
                sessions: 6,
                completed: 0,
                lost: 6,
                cookies: vec!["io".into()],
                error: None,
            }),
            findings: vec![],
        };
        let found = findings(&report);
        assert_eq!(found[2].code, Code::StickySessionRequired);
        assert!(
            found[2].detail.starts_with("6 of 6 long-polling sessions")
                && found[2].detail.contains("sets no JSESSIONID"),
            "{}",
            found[2].detail
        );
        assert_eq!(found[0].code, Code::IdleTimeout);
        assert!(
            found[0].detail.contains("cut after 60.1 s idle (eof)")
                && found[0].detail.contains("every 30 s"),
            "{}",
            found[0].detail
        );
        assert_eq!(found[1].code, Code::MessageTooLarge);
        assert!(
            found[1]
                .detail
                .contains("largest size that passed: 1.0 KiB")
                && found[1].detail.contains("closed 1009"),
            "{}",
            found[1].detail
        );
    }
}
