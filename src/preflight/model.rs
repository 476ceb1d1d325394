//! The data of `wscheck app`: the plan it runs and the report it writes.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::Serialize;

use super::health::HealthCheck;
use super::manifest::AppManifest;
use super::process::Exit;
use crate::deep::Finding;
use crate::report::{Report, Tool};

/// What `wscheck app` checks, validated.
#[derive(Debug, Clone)]
pub struct AppPlan {
    pub manifest: AppManifest,
    /// The WebSocket path: `--path`, else the first route's path, else `/`.
    pub path: String,
    /// The host the local router answers for: the first route's, else `<name>.apps.wscheck.test`.
    pub route_host: String,
}

/// The app report (`"kind": "app"`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppReport {
    pub schema_version: u32,
    /// Always `app`: tells this document from a route or load report.
    pub kind: &'static str,
    pub tool: Tool,
    pub generated_at: String,
    pub manifest: AppManifest,
    pub process: ProcessView,
    pub health_check: HealthCheck,
    pub websocket: WebsocketView,
    pub shutdown: ShutdownView,
    pub memory: MemoryView,
    pub findings: Vec<Finding>,
    /// The app would pass CF's health check and its WebSocket works through the router.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProcessView {
    pub pid: u32,
    /// `$PORT`.
    pub port: u16,
    /// Every TCP address the app's processes listened on.
    pub bound: Vec<SocketAddr>,
    /// How it ended, when it ended by itself before shutdown.
    pub exit: Option<Exit>,
    pub output_tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebsocketView {
    /// The app's WebSocket on `$PORT`, directly.
    pub direct: Option<Report>,
    /// The route through the local gorouter stand-in: what `wscheck <route>` shows after
    /// `cf push`.
    pub via_router: Option<Report>,
    /// Another port of the app where the upgrade works, when `$PORT`'s does not.
    pub other_port: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShutdownView {
    pub signal: &'static str,
    pub exited_after_ms: Option<f64>,
    /// Still running `KILL_AFTER` after SIGTERM, so killed.
    pub killed: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MemoryView {
    pub peak_rss_mib: Option<f64>,
    pub limit_mib: Option<u64>,
}
