//! What is wrong with the app, from what its run showed (pure): where it listened, how it
//! exited and why (causes recognised in its last lines), the health check, the WebSocket,
//! the shutdown, memory, and the approuter's configuration.

use std::time::Duration;

use super::health::{HealthCheck, describe};
use super::manifest::HealthCheckType;
use super::model::{AppPlan, MemoryView, ProcessView, ShutdownView, WebsocketView};
use super::process::runs_without_exec;
use super::sockets::reachable_from_outside;
use super::xsapp;
use crate::deep::Finding;
use crate::diagnose::Code;

/// A shutdown slower than this is worth a finding (CF kills after 10 s).
const SLOW_SHUTDOWN: Duration = Duration::from_secs(3);

/// Everything a run showed.
pub struct Facts<'a> {
    pub plan: &'a AppPlan,
    pub process: &'a ProcessView,
    pub health: &'a HealthCheck,
    pub websocket: &'a WebsocketView,
    pub shutdown: &'a ShutdownView,
    pub memory: &'a MemoryView,
}

/// The findings of a run, most basic first.
pub fn findings(facts: &Facts<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |code: Code, detail: String| out.push(Finding::new(code, detail));
    if let Some(exit) = facts.process.exit {
        add(
            Code::AppExited,
            exited(describe(exit), &facts.process.output_tail),
        );
    }
    if let Some((code, detail)) = binding(facts.process) {
        add(code, detail);
    }
    if let Some(other) = facts.websocket.other_port {
        add(
            Code::WebsocketOnOtherPort,
            format!(
                "the upgrade works on {other}, not on $PORT ({})",
                facts.process.port
            ),
        );
    }
    health(facts, &mut add);
    let command = &facts.plan.manifest.command;
    if runs_without_exec(command) {
        add(
            Code::CommandWithoutExec,
            format!("`{command}` runs under bash, which gets the SIGTERM"),
        );
    }
    shutdown(facts.shutdown, &mut add);
    if let (Some(peak), Some(limit)) = (facts.memory.peak_rss_mib, facts.memory.limit_mib)
        && peak > limit as f64
    {
        add(
            Code::MemoryOverLimit,
            format!("peak {peak:.1} MiB of memory, the manifest allows {limit} MiB"),
        );
    }
    let destinations = facts
        .plan
        .manifest
        .env
        .get("destinations")
        .map(String::as_str);
    for (code, detail) in xsapp::check(&facts.plan.manifest.dir, &facts.plan.path, destinations) {
        add(code, detail);
    }
    out
}

/// Where the app listened, when that is what is wrong: only on loopback, or not on `$PORT`.
fn binding(process: &ProcessView) -> Option<(Code, String)> {
    let on_port: Vec<_> = process
        .bound
        .iter()
        .filter(|a| a.port() == process.port)
        .collect();
    let list = |addrs: &[&std::net::SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !on_port.is_empty() && !on_port.iter().any(|a| reachable_from_outside(a)) {
        return Some((
            Code::AppBoundLoopback,
            format!(
                "it listens on {} only; gorouter would answer 502 endpoint_failure",
                list(&on_port)
            ),
        ));
    }
    let elsewhere: Vec<_> = process.bound.iter().collect();
    (on_port.is_empty() && !elsewhere.is_empty()).then(|| {
        (
            Code::AppWrongPort,
            format!(
                "it listens on {}; $PORT is {}",
                list(&elsewhere),
                process.port
            ),
        )
    })
}

fn health(facts: &Facts<'_>, add: &mut impl FnMut(Code, String)) {
    let manifest = &facts.plan.manifest;
    let check = facts.health;
    if manifest.health_check_type == HealthCheckType::None {
        add(
            Code::HealthCheckNone,
            "health-check-type: none in the manifest".to_owned(),
        );
    }
    if !check.ok && facts.process.exit.is_none() {
        add(
            Code::HealthCheckFailed,
            format!("{} check: {}", check.kind.as_str(), check.detail),
        );
    } else if check.ok && check.after_ms > manifest.timeout_s as f64 * 500.0 {
        add(
            Code::HealthCheckSlow,
            format!(
                "passed after {:.1} s of the {} s timeout",
                check.after_ms / 1000.0,
                manifest.timeout_s
            ),
        );
    }
}

fn shutdown(view: &ShutdownView, add: &mut impl FnMut(Code, String)) {
    match view.exited_after_ms {
        None if view.killed => add(
            Code::IgnoresSigterm,
            "still running 10 s after SIGTERM; killed with SIGKILL".to_owned(),
        ),
        Some(ms) if ms >= SLOW_SHUTDOWN.as_millis() as f64 => add(
            Code::ShutdownSlow,
            format!("exited {:.1} s after SIGTERM", ms / 1000.0),
        ),
        _ => {}
    }
}

/// How the app exited, with a known cause recognised in its last lines.
fn exited(how: String, tail: &[String]) -> String {
    const CAUSES: [(&str, &str); 5] = [
        (
            "EADDRINUSE",
            "a port was already taken: two servers want the same port",
        ),
        (
            "address already in use",
            "a port was already taken: two servers want the same port",
        ),
        (
            "ModuleNotFoundError",
            "a Python module is missing (requirements.txt)",
        ),
        (
            "Cannot find module",
            "a Node module is missing (package.json dependencies)",
        ),
        (
            "command not found",
            "the start command does not exist on the stack",
        ),
    ];
    let mut detail = format!("the app exited ({how})");
    let cause = CAUSES.iter().find_map(|(needle, cause)| {
        let line = tail.iter().find(|l| l.contains(needle))?;
        Some((needle, cause, line))
    });
    // The line that names the cause says more than the last one (often a runtime's banner).
    let quoted = match cause {
        Some((needle, cause, line)) => {
            detail.push_str(&format!("; {needle}: {cause}"));
            Some(line)
        }
        None => tail.iter().rev().find(|l| !l.trim().is_empty()),
    };
    if let Some(line) = quoted {
        let line: String = line.trim().chars().take(160).collect();
        detail.push_str(&format!("; it said: {line:?}"));
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::health::HealthCheck;
    use crate::preflight::manifest::{AppManifest, HealthCheckType, parse};
    use crate::preflight::process::Exit;

    fn plan(manifest: &str) -> AppPlan {
        let mut manifest: AppManifest = parse(manifest, None).unwrap();
        manifest.dir = std::env::temp_dir();
        AppPlan {
            manifest,
            path: "/".into(),
            route_host: "app.apps.wscheck.test".into(),
        }
    }

    fn codes(
        plan: &AppPlan,
        bound: &[&str],
        exit: Option<Exit>,
        health: (bool, f64),
        shutdown: Option<f64>,
        peak: Option<f64>,
    ) -> Vec<Code> {
        let process = ProcessView {
            pid: 1,
            port: 8080,
            bound: bound.iter().map(|a| a.parse().unwrap()).collect(),
            exit,
            output_tail: vec!["Error: listen EADDRINUSE: address already in use :::8080".into()],
        };
        let health = HealthCheck {
            kind: plan.manifest.health_check_type,
            ok: health.0,
            after_ms: health.1,
            detail: String::new(),
            bound: process.bound.clone(),
            exit,
        };
        let websocket = WebsocketView {
            direct: None,
            via_router: None,
            other_port: None,
        };
        let shutdown = ShutdownView {
            signal: "SIGTERM",
            exited_after_ms: shutdown,
            killed: shutdown.is_none(),
        };
        let memory = MemoryView {
            peak_rss_mib: peak,
            limit_mib: plan.manifest.memory_mib,
        };
        let facts = Facts {
            plan,
            process: &process,
            health: &health,
            websocket: &websocket,
            shutdown: &shutdown,
            memory: &memory,
        };
        findings(&facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_healthy_quick_app_has_no_findings() {
        let p = plan("applications:\n- name: a\n  command: node s.js\n  memory: 64M\n");
        assert!(
            codes(
                &p,
                &["0.0.0.0:8080"],
                None,
                (true, 500.0),
                Some(20.0),
                Some(40.0)
            )
            .is_empty()
        );
    }

    #[test]
    fn each_finding_comes_from_what_the_run_showed() {
        let p = plan(
            "applications:\n- name: a\n  command: cd x && node s.js\n  memory: 64M\n  timeout: 10\n  health-check-type: none\n",
        );
        assert_eq!(p.manifest.health_check_type, HealthCheckType::None);
        assert_eq!(
            codes(
                &p,
                &["127.0.0.1:8080"],
                None,
                (true, 6000.0),
                Some(4000.0),
                Some(80.0)
            ),
            [
                Code::AppBoundLoopback,
                Code::HealthCheckNone,
                Code::HealthCheckSlow,
                Code::CommandWithoutExec,
                Code::ShutdownSlow,
                Code::MemoryOverLimit
            ]
        );
        let p = plan("applications:\n- name: a\n  command: node s.js\n");
        assert_eq!(
            codes(&p, &["0.0.0.0:3000"], None, (false, 2000.0), None, None),
            [
                Code::AppWrongPort,
                Code::HealthCheckFailed,
                Code::IgnoresSigterm
            ]
        );
        let exit = Some(Exit {
            code: Some(1),
            signal: None,
        });
        assert_eq!(
            codes(&p, &[], exit, (false, 200.0), Some(0.0), None),
            [Code::AppExited]
        );
    }

    #[test]
    fn an_exit_names_the_cause_found_in_the_last_lines() {
        let detail = exited(
            "exit status 1".into(),
            &[
                "Traceback (most recent call last):".into(),
                "ModuleNotFoundError: No module named 'flask'".into(),
            ],
        );
        assert!(
            detail.contains("ModuleNotFoundError: a Python module is missing")
                && detail.contains("No module named 'flask'"),
            "{detail}"
        );
    }
}
