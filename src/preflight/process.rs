//! Running the app as Cloud Foundry does: `bash -c "<command>"` in the app's folder, in a
//! process group of its own, with CF's environment over this one's; its output streamed to
//! stderr under a prefix and its last lines kept; SIGTERM, then SIGKILL; peak memory.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(unix)]
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::manifest::AppManifest;
use super::sockets::process_tree;
use crate::error::Error;

/// Lines of the app's output kept for the report.
const KEPT_LINES: usize = 40;
/// CF sends SIGKILL this long after SIGTERM.
pub const KILL_AFTER: Duration = Duration::from_secs(10);
/// How long the app's last lines may take to come out of its pipes once it has exited
/// (a grandchild outside its group may still hold them open).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// The running app.
pub struct App {
    child: Child,
    pub pid: u32,
    pub port: u16,
    output: Arc<Mutex<VecDeque<String>>>,
    relays: Vec<JoinHandle<()>>,
    peak_rss_kib: u64,
}

/// The environment CF gives an instance, over this process's own (so that PATH and the
/// user's toolchains work): PORT, HOME, MEMORY_LIMIT, CF_INSTANCE_*, VCAP_*, then the
/// manifest's `env`.
fn cf_environment(app: &AppManifest, port: u16) -> Vec<(String, String)> {
    let uris: Vec<&str> = app.routes.iter().map(String::as_str).collect();
    let vcap = serde_json::json!({
        "application_name": app.name,
        "name": app.name,
        "application_uris": uris,
        "uris": uris,
        "instance_index": 0,
        "limits": { "mem": app.memory_mib },
    });
    let mut env = vec![
        ("PORT".to_owned(), port.to_string()),
        ("HOME".to_owned(), app.dir.display().to_string()),
        ("CF_INSTANCE_INDEX".to_owned(), "0".to_owned()),
        (
            "CF_INSTANCE_GUID".to_owned(),
            "0a0b0c0d-0000-4000-8000-00000000a0a0".to_owned(),
        ),
        ("CF_INSTANCE_IP".to_owned(), "127.0.0.1".to_owned()),
        ("CF_INSTANCE_PORT".to_owned(), port.to_string()),
        ("CF_INSTANCE_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("VCAP_APPLICATION".to_owned(), vcap.to_string()),
        ("VCAP_SERVICES".to_owned(), "{}".to_owned()),
    ];
    if let Some(mib) = app.memory_mib {
        env.push(("MEMORY_LIMIT".to_owned(), format!("{mib}m")));
    }
    env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

impl App {
    /// Starts the app on `port`.
    pub fn start(app: &AppManifest, port: u16) -> Result<App, Error> {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(&app.command)
            .current_dir(&app.dir)
            .envs(cf_environment(app, port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // A group of its own: the whole tree can be killed at the end, none left behind.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| Error::Setup(format!("cannot run bash in {}: {e}", app.dir.display())))?;
        let pid = child.id().unwrap_or_default();
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let mut relays = Vec::new();
        if let Some(out) = child.stdout.take() {
            relays.push(tokio::spawn(relay(out, output.clone())));
        }
        if let Some(err) = child.stderr.take() {
            relays.push(tokio::spawn(relay(err, output.clone())));
        }
        Ok(App {
            child,
            pid,
            port,
            output,
            relays,
            peak_rss_kib: 0,
        })
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<Exit> {
        let status = self.child.try_wait().ok()??;
        Some(exit_of(status))
    }

    /// The processes of the app now.
    pub fn tree(&self) -> Vec<u32> {
        process_tree(self.pid)
    }

    /// Notes the tree's memory now; the peak is reported.
    pub fn sample_memory(&mut self) {
        let rss: u64 = self.tree().iter().map(|p| rss_kib(*p)).sum();
        self.peak_rss_kib = self.peak_rss_kib.max(rss);
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        (self.peak_rss_kib > 0).then(|| (self.peak_rss_kib as f64 / 1024.0 * 10.0).round() / 10.0)
    }

    /// The last lines the app wrote.
    pub fn output_tail(&self) -> Vec<String> {
        self.output
            .lock()
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops the app as CF does: SIGTERM to the process CF started, SIGKILL to the group
    /// after `KILL_AFTER`. Returns how long it took to exit, `None` if it had to be killed.
    /// Its last lines (what it logged on the way out) are in `output_tail` afterwards.
    pub async fn stop(&mut self) -> Option<Duration> {
        let started = Instant::now();
        let took = if self.exited().is_some() {
            Some(Duration::ZERO)
        } else {
            self.terminate();
            let waited = tokio::time::timeout(KILL_AFTER, self.child.wait()).await;
            self.kill_group();
            match waited {
                Ok(_) => Some(started.elapsed()),
                Err(_) => {
                    let _ = self.child.wait().await;
                    None
                }
            }
        };
        self.drain_output().await;
        took
    }

    /// Waits, briefly, for the relays to read the exited app's pipes to the end.
    async fn drain_output(&mut self) {
        let relays = std::mem::take(&mut self.relays);
        let drained = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
            for relay in relays {
                let _ = relay.await;
            }
        });
        let _ = drained.await;
    }

    /// SIGTERM to the process CF started.
    #[cfg(unix)]
    fn terminate(&mut self) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
    }

    /// Windows has no SIGTERM: the process is killed.
    #[cfg(not(unix))]
    fn terminate(&mut self) {
        let _ = self.child.start_kill();
    }

    /// Kills what is left of the group (children a shell did not pass SIGTERM on to).
    #[cfg(unix)]
    pub fn kill_group(&self) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }

    /// No process groups on Windows: the child is killed when dropped.
    #[cfg(not(unix))]
    pub fn kill_group(&self) {}
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(unix)]
fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    Exit {
        code: status.code(),
        signal: status.signal(),
    }
}

#[cfg(not(unix))]
fn exit_of(status: std::process::ExitStatus) -> Exit {
    Exit {
        code: status.code(),
        signal: None,
    }
}

/// Streams the app's output to stderr under a prefix, keeping the last lines.
async fn relay(stream: impl AsyncRead + Unpin, kept: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[app] {line}");
        if let Ok(mut kept) = kept.lock() {
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

/// VmRSS of a process, in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Whether `bash -c command` leaves bash as the process CF signals: bash runs a single
/// simple command in place (exec), but not a list, pipeline or compound command.
pub fn runs_without_exec(command: &str) -> bool {
    let trimmed = command.trim();
    if trimmed.starts_with("exec ") {
        return false;
    }
    let compound = [";", "&&", "||", "|", "\n", "(", "{", "`", "$("];
    compound.iter().any(|c| trimmed.contains(c))
        && !trimmed
            .rsplit([';', '&', '|', '\n'])
            .next()
            .is_some_and(|last| last.trim_start().starts_with("exec "))
}

/// Whether `dir` exists (checked before anything runs).
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::Setup(format!("{}: no such folder", dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_that_leave_bash_in_front_of_the_app_are_found() {
        assert!(!runs_without_exec("node server.js"));
        assert!(!runs_without_exec("exec ./wscheck-server"));
        assert!(runs_without_exec("cd app && node server.js"));
        assert!(!runs_without_exec("cd app && exec node server.js"));
        assert!(runs_without_exec("npm run build; node dist/index.js"));
    }

    fn app_running(command: &str) -> AppManifest {
        AppManifest {
            file: None,
            name: "last-words".into(),
            command: command.into(),
            command_source: "argument",
            health_check_type: super::super::manifest::HealthCheckType::Process,
            health_check_http_endpoint: "/".into(),
            timeout_s: 60,
            memory_mib: None,
            instances: 1,
            routes: Vec::new(),
            env: Default::default(),
            dir: std::env::temp_dir(),
        }
    }

    #[tokio::test]
    async fn what_is_written_until_the_pipes_close_is_in_the_tail() {
        // The app exits on SIGTERM and a process it left outside its group writes its last
        // line 200 ms later: the exit is seen first, the line must still be reported.
        // (A fifo holds the exit back until the process is out of the group.)
        let command = "trap 'f=$(mktemp -u); mkfifo $f; \
                       setsid sh -c \"echo > $f; sleep 0.2; echo last words\" & \
                       read _ < $f; rm $f; exit 0' TERM; \
                       echo ready; while :; do sleep 0.01; done";
        let mut app = App::start(&app_running(command), 0).expect("bash runs");
        while app.output_tail().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(app.stop().await.is_some(), "exited on SIGTERM");
        let tail = app.output_tail();
        assert_eq!(tail, ["ready", "last words"]);
    }
}
