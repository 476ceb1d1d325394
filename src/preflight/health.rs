//! Cloud Foundry's health check, with its semantics: `port` passes when the instance's own
//! (non-loopback) address accepts TCP on `$PORT`; `http` when a GET of the endpoint answers
//! 200 within 1 s; `process` (and `none`) while the process runs. Where the app binds is read
//! from `/proc`, so 127.0.0.1 is told from 0.0.0.0 without dialling anything else; the
//! connections made go to loopback only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::manifest::{AppManifest, HealthCheckType};
use super::process::{App, Exit};
use super::sockets::{listening, reachable_from_outside};

/// How often the check looks again (CF's interval is about as short).
const POLL: Duration = Duration::from_millis(200);
/// A listener this long only on loopback, or only on another port, is taken as final: an
/// app rarely rebinds, and CF would go on failing until its timeout.
const SETTLED: Duration = Duration::from_secs(2);
/// CF's `http` check wants its answer within this.
const HTTP_WAIT: Duration = Duration::from_secs(1);

/// What the health check saw.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    pub ok: bool,
    /// When it passed (or gave up), from the start.
    pub after_ms: f64,
    pub detail: String,
    /// Every TCP address the app's processes listened on when the check ended.
    #[serde(skip)]
    pub bound: Vec<SocketAddr>,
    /// The process had exited.
    #[serde(skip)]
    pub exit: Option<Exit>,
}

/// Waits for the app to pass its health check, or to fail it for good, within the
/// manifest's `timeout`.
pub async fn run(app: &mut App, manifest: &AppManifest) -> HealthCheck {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(manifest.timeout_s);
    let mut settled_since: Option<Instant> = None;
    loop {
        app.sample_memory();
        let bound = listening(&app.tree());
        let outcome = |ok: bool, detail: String, exit: Option<Exit>| HealthCheck {
            kind: manifest.health_check_type,
            ok,
            after_ms: crate::probe::ws::ms_since(started),
            detail,
            bound: bound.clone(),
            exit,
        };
        if let Some(exit) = app.exited() {
            return outcome(
                false,
                format!("the app exited ({})", describe(exit)),
                Some(exit),
            );
        }
        let on_port: Vec<&SocketAddr> = bound.iter().filter(|a| a.port() == app.port).collect();
        let outside = on_port.iter().any(|a| reachable_from_outside(a));
        // `process`/`none` pass while the process runs; wait only for $PORT to be probed.
        let reachable = outside || (lenient(manifest) && !on_port.is_empty());
        if reachable && passes(manifest, app.port).await {
            return outcome(true, passed_detail(manifest), None);
        }
        // Bound, but not where CF looks: final once it has stayed so for a moment.
        if !bound.is_empty() && !reachable {
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= SETTLED {
                let ok = lenient(manifest);
                return outcome(ok, stuck_detail(&bound, app.port), None);
            }
        } else {
            settled_since = None;
        }
        if Instant::now() >= deadline {
            let detail = match bound.is_empty() {
                true => format!(
                    "nothing listened on $PORT ({}) within the timeout ({} s)",
                    app.port, manifest.timeout_s
                ),
                false => stuck_detail(&bound, app.port),
            };
            return outcome(lenient(manifest), detail, None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `process` and `none` pass while the process runs: they never look at ports.
fn lenient(manifest: &AppManifest) -> bool {
    matches!(
        manifest.health_check_type,
        HealthCheckType::Process | HealthCheckType::None
    )
}

/// The check proper, once the app listens on `$PORT` where CF can reach it.
async fn passes(manifest: &AppManifest, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match manifest.health_check_type {
        HealthCheckType::Http => http_ok(addr, &manifest.health_check_http_endpoint).await,
        _ => TcpStream::connect(addr).await.is_ok(),
    }
}

/// A GET of `endpoint` answered 200 within `HTTP_WAIT`.
async fn http_ok(addr: SocketAddr, endpoint: &str) -> bool {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "GET {endpoint} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wscheck health check\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let n = tcp.read(&mut head).await.ok()?;
        let line = String::from_utf8_lossy(&head[..n]).into_owned();
        Some(line.split_whitespace().nth(1) == Some("200"))
    };
    matches!(
        tokio::time::timeout(HTTP_WAIT, exchange).await,
        Ok(Some(true))
    )
}

fn passed_detail(manifest: &AppManifest) -> String {
    match manifest.health_check_type {
        HealthCheckType::Http => format!(
            "GET {} answered 200 on $PORT",
            manifest.health_check_http_endpoint
        ),
        HealthCheckType::Port => "the app accepts TCP on $PORT on all interfaces".to_owned(),
        _ => "the process runs and listens on $PORT".to_owned(),
    }
}

fn stuck_detail(bound: &[SocketAddr], port: u16) -> String {
    let list: Vec<String> = bound.iter().map(ToString::to_string).collect();
    if bound.iter().any(|a| a.port() == port) {
        format!(
            "the app listens on {} only: loopback, which CF's check (on the instance's own address) cannot reach",
            list.join(", ")
        )
    } else {
        format!(
            "the app listens on {}, not on $PORT ({port})",
            list.join(", ")
        )
    }
}

/// `exit status 1`, `killed by signal 9`.
pub fn describe(exit: Exit) -> String {
    match (exit.code, exit.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_owned(),
    }
}
