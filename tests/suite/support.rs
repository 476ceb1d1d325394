//! Helpers for the suite: command lines aimed at loopback peers, parsed as the binary
//! parses them (clap's defaults apply), and checks run in-process.

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;
use wscheck::cli::{Cli, to_plan};
use wscheck::plan::{EnvProxy, Plan};
use wscheck::report::{ProbeView, Report};

/// The route name every test uses; `--connect-to` sends it to loopback peers.
pub const HOST: &str = "app.wscheck.test";

/// A `wscheck TARGET ...` command line under construction. A flag set again replaces its
/// earlier value; `add` appends to a repeatable flag.
#[derive(Debug, Clone)]
pub struct Args {
    target: String,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    /// Sets `flag` to `value`, replacing any earlier value.
    pub fn set(&mut self, flag: &str, value: impl Into<String>) -> &mut Self {
        self.unset(flag);
        self.add(flag, value)
    }

    /// Adds one more `flag value` (for repeatable flags: -H, --connect-to, ...).
    pub fn add(&mut self, flag: &str, value: impl Into<String>) -> &mut Self {
        self.flags.push((flag.to_owned(), Some(value.into())));
        self
    }

    /// Sets a repeatable `flag` to exactly `values`.
    pub fn set_all<S: Into<String>>(
        &mut self,
        flag: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.unset(flag);
        for value in values {
            self.add(flag, value);
        }
        self
    }

    /// Sets `--cacert` (or any flag taking a file) to `path`.
    pub fn set_path(&mut self, flag: &str, path: &Path) -> &mut Self {
        self.set(flag, path.to_str().expect("UTF-8 test path"))
    }

    /// Turns on a flag without a value (`--only`, `-k`, ...).
    pub fn switch(&mut self, flag: &str) -> &mut Self {
        if !self.flags.iter().any(|(f, _)| f == flag) {
            self.flags.push((flag.to_owned(), None));
        }
        self
    }

    /// Removes every occurrence of `flag`.
    pub fn unset(&mut self, flag: &str) -> &mut Self {
        self.flags.retain(|(f, _)| f != flag);
        self
    }

    /// The command line, program name first.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["wscheck".to_owned(), self.target.clone()];
        for (flag, value) in &self.flags {
            argv.push(flag.clone());
            argv.extend(value.clone());
        }
        argv
    }

    /// The plan the binary would make of this command line (with no proxy environment).
    pub fn plan(&self) -> Plan {
        let cli = Cli::try_parse_from(self.argv()).unwrap_or_else(|e| panic!("{e}"));
        to_plan::check_plan(&cli.check, &EnvProxy::default()).expect("valid plan")
    }
}

/// `wscheck TARGET` with short timeouts.
pub fn args(target: &str) -> Args {
    let mut args = Args {
        target: target.to_owned(),
        flags: Vec::new(),
    };
    args.set("--timeout", "5s").set("--connect-timeout", "2s");
    args
}

/// Probes only `url`, with every port of the route sent to `peer`.
pub fn only(url: &str, peer: SocketAddr) -> Args {
    let mut a = args(url);
    a.switch("--only")
        .add("--connect-to", format!("::{}:{}", peer.ip(), peer.port()));
    a
}

pub async fn check(args: &Args) -> Report {
    wscheck::check(&args.plan()).await.expect("check runs")
}

/// The single probe of an `--only` report.
pub fn single(report: &Report) -> &ProbeView {
    assert_eq!(report.probes.len(), 1, "{report:#?}");
    &report.probes[0]
}

/// Asserts the one probe's diagnosis code and returns it.
pub async fn code_of(args: &Args) -> (String, Report) {
    let report = check(args).await;
    let code = single(&report).diagnosis.code.as_str().to_owned();
    (code, report)
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A small real Node app (`script`, with tests/node's packages: express, ws, socket.io) on a free
/// loopback `$PORT`; stopped when the guard drops.
pub fn node_app(script: &str) -> (wscheck_testkit::ChildGuard, SocketAddr) {
    let modules = wscheck_testkit::ensure_node_modules().unwrap();
    let port = wscheck_testkit::free_port();
    let child = std::process::Command::new("node")
        .args(["-e", script])
        .env("PORT", port.to_string())
        .env("NODE_PATH", &modules)
        .spawn()
        .unwrap();
    let guard = wscheck_testkit::ChildGuard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wscheck_testkit::wait_for_listener(addr, std::time::Duration::from_secs(10)).unwrap();
    (guard, addr)
}
