//! The app's WebSocket, probed with the real prober: on `$PORT` directly, on its other
//! ports when `$PORT`'s does not work, and as its route through a local gorouter stand-in
//! (TLS "443", plain "80"), which is the report `wscheck <route>` gives after `cf push`.

use std::net::SocketAddr;

use super::health::HealthCheck;
use super::model::{AppPlan, WebsocketView};
use super::sockets::reachable_from_outside;
use crate::check::{check, check_with};
use crate::error::Error;
use crate::plan::Planner;
use crate::probe::tls::TlsSetup;
use crate::report::Report;
use crate::router::{CfRouter, RouterConfig, unused_loopback_port};

/// Probes the app on `$PORT` (`app_port`) and its other ports, and its route.
pub async fn run(
    plan: &AppPlan,
    health: &HealthCheck,
    app_port: u16,
    planner: Planner,
) -> Result<WebsocketView, Error> {
    let port = health
        .bound
        .iter()
        .any(|a| a.port() == app_port)
        .then_some(app_port);
    let direct = match port {
        Some(port) => Some(probe_loopback(plan, port, planner).await?),
        None => None,
    };
    let other_port = match &direct {
        Some(report) if report.verdict.ok => None,
        _ => other_port(plan, health, port, planner).await?,
    };
    // Gorouter reaches an instance on its container address: an app bound to loopback only
    // is not reachable through it, so the route is not probed (the finding says why).
    let routable = health
        .bound
        .iter()
        .any(|a| Some(a.port()) == port && reachable_from_outside(a));
    let via_router = match port {
        Some(port) if routable => Some(through_router(plan, port, planner).await?),
        _ => None,
    };
    Ok(WebsocketView {
        direct,
        via_router,
        other_port,
    })
}

/// `ws://127.0.0.1:PORT<path>`, alone.
async fn probe_loopback(plan: &AppPlan, port: u16, planner: Planner) -> Result<Report, Error> {
    let url = format!("ws://127.0.0.1:{port}{}", plan.path);
    check(&planner(&[url.as_str(), "--only", "--timeout", "10s"])?).await
}

/// The first other port of the app where the upgrade works.
async fn other_port(
    plan: &AppPlan,
    health: &HealthCheck,
    port: Option<u16>,
    planner: Planner,
) -> Result<Option<SocketAddr>, Error> {
    for addr in health.bound.iter().filter(|a| Some(a.port()) != port) {
        let report = probe_loopback(plan, addr.port(), planner).await?;
        if report.verdict.ok {
            return Ok(Some(*addr));
        }
    }
    Ok(None)
}

/// The route, full matrix, through the router: 443 and 80 to it, other ports closed.
async fn through_router(plan: &AppPlan, port: u16, planner: Planner) -> Result<Report, Error> {
    let router = CfRouter::start(RouterConfig {
        hosts: vec![plan.route_host.clone()],
        app: SocketAddr::from(([127, 0, 0, 1], port)),
        strip_upgrade: false,
        app_guid: "0a0b0c0d-0000-4000-8000-00000000a9a9".to_owned(),
        instance_guid: "0a0b0c0d-0000-4000-8000-00000000a0a0".to_owned(),
        instance_index: 0,
    })
    .await?;
    let closed = unused_loopback_port()?;
    let target = format!("{}{}", plan.route_host, plan.path);
    let mut argv = vec![target];
    for rule in router.connect_to(&plan.route_host, closed) {
        argv.extend(["--connect-to".to_owned(), rule]);
    }
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let tls = TlsSetup::from_pem(router.ca_pem().as_bytes(), false).map_err(Error::Setup)?;
    Ok(check_with(&planner(&args)?, &tls).await)
}
