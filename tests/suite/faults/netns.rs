//! Test hosts in network namespaces of their own (`ip netns`, veth pairs, nftables): unique
//! names, removed on drop even when a test panics, and no route out of them — each namespace
//! only knows the test's own veth subnets, so nothing else can be dialled from inside.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Namespaces are named `wscheck-<pid>-<n>-<role>`; a run that was killed leaves names whose
/// process is gone, and the next run removes them.
const PREFIX: &str = "wscheck-";

/// Variables that could send the prober to a proxy: none is passed into a namespace.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ws_proxy",
    "wss_proxy",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// One network namespace, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with its loopback up.
    pub fn new(role: &str) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        static SWEPT: OnceLock<()> = OnceLock::new();
        SWEPT.get_or_init(sweep_stale);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name])).expect("ip netns add");
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`; panics with ip's message when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
            .unwrap_or_else(|e| panic!("ip -n {} {}: {e}", self.name, args.join(" ")))
    }

    /// `program` run inside the namespace (`ip netns exec`, which execs it: the child's pid is
    /// the program's), without any proxy variable.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        command
    }

    /// Runs `program args` inside; its stdout, or its stderr as the error.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(program).args(args))
    }

    /// Sets a sysctl of this namespace (`net.ipv4.ip_forward` and the like are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec("sh", &["-c", &format!("echo {value} > {path}")])
            .unwrap_or_else(|e| panic!("sysctl {key}={value}: {e}"));
    }

    /// Loads an nftables ruleset (`nft -f -`); panics with nft's message when it is refused.
    pub fn nft(&self, ruleset: &str) {
        self.try_nft(ruleset)
            .unwrap_or_else(|e| panic!("nft refused:\n{ruleset}\n{e}"));
    }

    pub fn try_nft(&self, ruleset: &str) -> Result<(), String> {
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(ruleset.as_bytes())
            .map_err(|e| e.to_string())?;
        drop(stdin);
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The packet counters of the rules that carry a `comment "NAME"`, by NAME (summed).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let listing = self
            .exec("nft", &["list", "ruleset"])
            .expect("nft list ruleset");
        let mut counters = BTreeMap::new();
        for line in listing.lines() {
            let packets = line
                .split("counter packets ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok());
            let name = line
                .split("comment \"")
                .nth(1)
                .and_then(|c| c.split('"').next());
            if let (Some(packets), Some(name)) = (packets, name) {
                *counters.entry(name.to_owned()).or_default() += packets;
            }
        }
        counters
    }

    /// Whether something listens on TCP `port` in this namespace.
    pub fn listening(&self, port: u16) -> bool {
        self.exec("ss", &["-Hltn", &format!("sport = :{port}")])
            .is_ok_and(|out| !out.trim().is_empty())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// A veth pair from `a` to `b`, each end made inside its namespace (never in the root one),
/// addressed (`198.18.0.1/24`) and up.
pub fn veth(a: &Netns, a_dev: &str, a_cidr: &str, b: &Netns, b_dev: &str, b_cidr: &str) {
    run(Command::new("ip").args([
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]))
    .expect("ip link add type veth");
    for (ns, dev, cidr) in [(a, a_dev, a_cidr), (b, b_dev, b_cidr)] {
        ns.ip(&["addr", "add", cidr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

/// Why fault tests cannot run on this machine, if they cannot: not root, no `ip netns`, no
/// nftables (the command or the kernel's nf_tables). Checked once.
pub fn unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Some("not root (network namespaces need CAP_NET_ADMIN)".to_owned());
        }
        if run(Command::new("ip").arg("-V")).is_err() {
            return Some("`ip` not found (Debian package iproute2)".to_owned());
        }
        if run(Command::new("nft").arg("--version")).is_err() {
            return Some("`nft` not found (Debian package nftables)".to_owned());
        }
        let probe = format!("{PREFIX}{}-probe", std::process::id());
        if let Err(e) = run(Command::new("ip").args(["netns", "add", &probe])) {
            return Some(format!("`ip netns add` failed: {}", e.trim()));
        }
        let ns = Netns { name: probe };
        ns.try_nft("table inet probe { }")
            .err()
            .map(|e| format!("nf_tables not in this kernel: {}", e.trim()))
    })
    .as_deref()
}

/// Says that a test (or a part of it) was skipped, on the real stderr: the test harness
/// captures `eprintln!`, but a skip must show in every run, not only with --nocapture.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: faults::{test}: {why}");
}

/// Removes namespaces left by runs whose process no longer exists.
fn sweep_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}

/// Runs `command`; its stdout, or its stderr (and status) as the error.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            output.status
        ))
    }
}
