//! `wscheck demo`: the main job without a CF account. Starts the bundled server (as the app
//! on its `$PORT`) behind `router`'s gorouter stand-in (TLS on "443" with a certificate for
//! `*.apps.wscheck.test` from a throw-away CA, plain on "80", gorouter's forwarded headers
//! and `X-Vcap-Request-Id`, `X-Cf-Routererror` answers), then probes the route with the real
//! prober and prints the real report. A scenario can break the route on purpose (a router
//! that strips `Upgrade`, an app that is down), so that a newcomer sees a 426 and a 502
//! before meeting them. Everything stays on 127.0.0.1.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wscheck_server::Environment;

use crate::check::check_with;
use crate::error::Error;
use crate::plan::{Plan, Planner};
use crate::probe::tls::TlsSetup;
use crate::report::Report;
use crate::router::{CfRouter, RouterConfig, unused_loopback_port};

/// The demo route, under a domain reserved for testing (RFC 2606 `.test`).
pub const DEMO_ROUTE: &str = "wscheck-demo.apps.wscheck.test";
/// The demo app's GUID and its instance's, as gorouter forwards them (`X-Cf-Applicationid`,
/// `X-Cf-Instanceid`); made-up, but shaped like CF's.
const DEMO_APP_GUID: &str = "0de0a5c1-7e57-4d3e-8000-00000000a991";
const DEMO_INSTANCE_GUID: &str = "d3e00000-0000-4000-8000-000000000000";

/// What the demo stages: the healthy route, or one failure made on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// Everything works: exit 0.
    #[default]
    Healthy,
    /// The router drops the hop-by-hop `Upgrade`/`Connection` headers, as a proxy not set
    /// up for WebSockets does; the app answers its own 426.
    UpgradeStripped,
    /// Nothing listens on the app's port; the router answers gorouter's 502
    /// `endpoint_failure`.
    AppDown,
}

fn setup(error: impl std::fmt::Display) -> Error {
    Error::Setup(format!("demo: {error}"))
}

/// Runs the demo of `scenario` and returns its report; `planner` makes the probe's plan
/// from the command line a user would type.
pub async fn run(scenario: Scenario, planner: Planner) -> Result<Report, Error> {
    let shutdown = CancellationToken::new();
    let outcome = run_until(&shutdown, scenario, planner).await;
    shutdown.cancel();
    outcome
}

/// Where the demo's pieces listen, for the note that tells the reader.
struct Ports {
    app: u16,
    tls: u16,
    plain: u16,
}

async fn run_until(
    shutdown: &CancellationToken,
    scenario: Scenario,
    planner: Planner,
) -> Result<Report, Error> {
    let app = match scenario {
        // An app that is down is a port nobody listens on, as for a crashed app on CF.
        Scenario::AppDown => unused_loopback_port()?,
        Scenario::Healthy | Scenario::UpgradeStripped => start_app(shutdown).await?,
    };
    // Stopped when dropped, at the end of this function: after the report is made.
    let router = CfRouter::start(RouterConfig {
        hosts: vec![DEMO_ROUTE.to_owned()],
        app,
        strip_upgrade: scenario == Scenario::UpgradeStripped,
        app_guid: DEMO_APP_GUID.to_owned(),
        instance_guid: DEMO_INSTANCE_GUID.to_owned(),
        instance_index: 0,
    })
    .await?;
    // Ports 8080 and 4443 lead nowhere, as on CF: a loopback port nobody listens on.
    let closed = unused_loopback_port()?;

    let plan = demo_plan(router.connect_to(DEMO_ROUTE, closed), planner)?;
    let tls = TlsSetup::from_pem(router.ca_pem().as_bytes(), false).map_err(setup)?;
    let mut report = check_with(&plan, &tls).await;
    let ports = Ports {
        app: app.port(),
        tls: router.tls.port(),
        plain: router.plain.port(),
    };
    report.notes.insert(0, note(scenario, &ports));
    Ok(report)
}

/// The first note: what runs where, and for a failing scenario what was broken on purpose.
fn note(scenario: Scenario, ports: &Ports) -> String {
    let Ports { app, tls, plain } = ports;
    let router = format!(
        "a local router that stands for gorouter: TLS \"443\" on 127.0.0.1:{tls}, plain \"80\" \
         on 127.0.0.1:{plain}; ports 8080 and 4443 lead to a closed port, as on Cloud Foundry"
    );
    match scenario {
        Scenario::Healthy => format!(
            "demo: the bundled server runs as the app on 127.0.0.1:{app} behind {router}. Try \
             `wscheck <your-route>` next, or `wscheck demo --scenario upgrade-stripped` / \
             `--scenario app-down` to see failures."
        ),
        Scenario::UpgradeStripped => format!(
            "demo --scenario upgrade-stripped, broken on purpose: the router drops the \
             hop-by-hop Upgrade and Connection headers, as a proxy not set up for WebSockets \
             does, so the app gets a plain GET and answers 426 itself. Gorouter passes these \
             headers and never sends 426: on Cloud Foundry, look for a proxy in between. The \
             bundled server runs as the app on 127.0.0.1:{app} behind {router}. `wscheck demo` \
             shows the healthy route."
        ),
        Scenario::AppDown => format!(
            "demo --scenario app-down, broken on purpose: the app is not running, nothing \
             listens on its port 127.0.0.1:{app} (on Cloud Foundry: it crashed, or listens on \
             127.0.0.1 or on a port other than $PORT), so the router's dial is refused and it \
             answers 502 with X-Cf-Routererror: endpoint_failure, as gorouter does. The route \
             goes through {router}. `wscheck demo` shows the healthy route."
        ),
    }
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    TcpListener::bind("127.0.0.1:0").await.map_err(setup)
}

/// The app: the bundled server on its own loopback port, with CF's environment.
async fn start_app(shutdown: &CancellationToken) -> Result<SocketAddr, Error> {
    let app_listener = bind_loopback().await?;
    let app_addr = app_listener.local_addr().map_err(setup)?;
    let config = wscheck_server::Config {
        environment: Environment {
            port: Some(app_addr.port().to_string()),
            instance_index: Some("0".to_owned()),
            instance_guid: Some(DEMO_INSTANCE_GUID.to_owned()),
            application_name: Some("wscheck-demo".to_owned()),
            application_uris: vec![DEMO_ROUTE.to_owned()],
        },
        ..wscheck_server::Config::default()
    };
    tokio::spawn(wscheck_server::serve(
        vec![app_listener],
        config,
        shutdown.clone(),
    ));
    Ok(app_addr)
}

/// The check a user would run against the demo route, as a command line (so that clap's
/// defaults apply), with the route's ports sent to the local router by `connect_to`. The
/// demo is about the local router: no proxy from this machine's environment.
fn demo_plan(connect_to: Vec<String>, planner: Planner) -> Result<Plan, Error> {
    let mut argv = vec![DEMO_ROUTE.to_owned()];
    for rule in connect_to {
        argv.extend(["--connect-to".to_owned(), rule]);
    }
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    planner(&args)
}
