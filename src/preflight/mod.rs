//! `wscheck app`: the user's own app checked the way Cloud Foundry will run it, before
//! `cf push`: started from its manifest with CF's environment, put through CF's health
//! check, its bound addresses read from `/proc`, its WebSocket probed directly and through
//! a local gorouter stand-in, stopped with SIGTERM; findings from a pure function.

pub mod findings;
pub mod health;
pub mod manifest;
mod model;
pub mod probes;
pub mod process;
pub mod sockets;
pub mod xsapp;

use crate::error::Error;
use crate::plan::Planner;
use crate::report::{SCHEMA_VERSION, Tool, now_utc};
pub use model::{AppPlan, AppReport, MemoryView, ProcessView, ShutdownView, WebsocketView};
use process::App;

/// Runs the app, checks it, stops it, and reports; `planner` makes the probes' plans from
/// the command lines a user would type.
pub async fn run(plan: &AppPlan, planner: Planner) -> Result<AppReport, Error> {
    process::check_dir(&plan.manifest.dir)?;
    let port = crate::router::unused_loopback_port()?.port();
    let mut app = App::start(&plan.manifest, port)?;
    let health = health::run(&mut app, &plan.manifest).await;
    let websocket = if health.exit.is_none() {
        probes::run(plan, &health, port, planner).await?
    } else {
        WebsocketView {
            direct: None,
            via_router: None,
            other_port: None,
        }
    };
    app.sample_memory();
    let exit = health.exit.or_else(|| app.exited());
    let took = app.stop().await;
    let shutdown = ShutdownView {
        signal: "SIGTERM",
        exited_after_ms: took.map(crate::probe::ws::ms),
        killed: took.is_none(),
    };
    let process = ProcessView {
        pid: app.pid,
        port,
        bound: health.bound.clone(),
        exit,
        output_tail: app.output_tail(),
    };
    let memory = MemoryView {
        peak_rss_mib: app.peak_rss_mib(),
        limit_mib: plan.manifest.memory_mib,
    };
    let facts = findings::Facts {
        plan,
        process: &process,
        health: &health,
        websocket: &websocket,
        shutdown: &shutdown,
        memory: &memory,
    };
    let findings = findings::findings(&facts);
    let ok = health.ok && websocket.via_router.as_ref().is_some_and(|r| r.verdict.ok);
    Ok(AppReport {
        schema_version: SCHEMA_VERSION,
        kind: "app",
        tool: Tool::THIS,
        generated_at: now_utc(),
        manifest: plan.manifest.clone(),
        process,
        health_check: health,
        websocket,
        shutdown,
        memory,
        findings,
        ok,
    })
}
