//! Helpers for the suite: plans aimed at loopback peers, running a check in-process.

use std::net::SocketAddr;
use std::time::Duration;

use wscheck::cli::CheckArgs;
use wscheck::report::{ProbeView, Report};

/// The route name every test uses; `--connect-to` sends it to loopback peers.
pub const HOST: &str = "app.wscheck.test";

/// Flags for `target`, with short timeouts.
pub fn args(target: &str) -> CheckArgs {
    CheckArgs {
        target: Some(target.to_owned()),
        conn: wscheck::cli::ConnectionArgs {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..CheckArgs::default()
    }
}

/// Flags probing only `url`, with every port of the route sent to `peer`.
pub fn only(url: &str, peer: SocketAddr) -> CheckArgs {
    let mut a = args(url);
    a.only = true;
    a.conn.connect_to = vec![format!("::{}:{}", peer.ip(), peer.port())];
    a
}

pub async fn check(args: &CheckArgs) -> Report {
    let plan = wscheck::plan::plan(args).expect("valid plan");
    wscheck::check(&plan).await.expect("check runs")
}

/// The single probe of an `--only` report.
pub fn single(report: &Report) -> &ProbeView {
    assert_eq!(report.probes.len(), 1, "{report:#?}");
    &report.probes[0]
}

/// Asserts the one probe's diagnosis code and returns it.
pub async fn code_of(args: &CheckArgs) -> (String, Report) {
    let report = check(args).await;
    let code = single(&report).diagnosis.code.as_str().to_owned();
    (code, report)
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
