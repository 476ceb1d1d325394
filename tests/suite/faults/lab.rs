//! The hosts of the fault tests: a router host (the real `wscheck-server` on `$PORT` 8080
//! behind nginx, TLS on 443 and plain on 80, a firewall that resets every other port, as on
//! Cloud Foundry) and a client host that runs the real `wscheck` binary, joined by a veth.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wscheck_testkit::pki::TestCa;
use wscheck_testkit::{ChildGuard, ServerProcess};

use super::netns::{self, Netns, veth};
use crate::support::HOST;

/// The prober this test binary was built with.
const WSCHECK: &str = env!("CARGO_BIN_EXE_wscheck");

/// `prlimit`'s flag raising the file limit to the hard limit (the most a process without
/// CAP_SYS_RESOURCE can have; 10 000 connections need a little more than 10 000).
fn nofile() -> String {
    format!("--nofile={}", hard_nofile())
}

/// The hard limit on open files of this process (and so of its children).
pub fn hard_nofile() -> u64 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.maximum.unwrap_or(1 << 20)
}

/// Two hosts (or two with routers between), and what runs on the far one. Processes are
/// declared first: they are stopped before their namespaces go.
pub struct Lab {
    router: Option<ChildGuard>,
    pub server: Option<ServerProcess>,
    /// The CA of the router's certificate (for `--cacert`).
    pub cacert: Option<PathBuf>,
    dir: PathBuf,
    pub client: Netns,
    pub host: Netns,
    /// Routers between client and host, if any.
    pub hops: Vec<Netns>,
    /// The host's address, as the client dials it.
    pub addr: &'static str,
}

/// One run of the prober: exit code, its JSON report, and how long it took.
pub struct Run {
    pub exit: Option<i32>,
    pub json: Value,
    pub elapsed: Duration,
}

impl Lab {
    /// Client 198.18.0.1 and host 198.18.0.2 on one veth (RFC 2544's benchmarking range,
    /// in namespaces of this test only); `None` (and a skip line) when namespaces cannot
    /// be made here.
    pub fn direct(test: &str) -> Option<Lab> {
        if let Some(why) = netns::unavailable() {
            netns::skipped(test, why);
            return None;
        }
        let client = Netns::new("client");
        let host = Netns::new("host");
        veth(&client, "v0", "198.18.0.1/24", &host, "v0", "198.18.0.2/24");
        Some(Lab::assemble(client, host, Vec::new(), "198.18.0.2"))
    }

    /// Client, two routers, host: 198.18.1.0/24, 198.18.2.0/24 (the link between the
    /// routers, MTU `mtu` on both of its ends) and 198.18.3.0/24. The hosts' own links keep
    /// MTU 1500, so only a router sees that a packet is too big.
    pub fn through_routers(test: &str, mtu: u32) -> Option<Lab> {
        if let Some(why) = netns::unavailable() {
            netns::skipped(test, why);
            return None;
        }
        let (client, r1, r2, host) = (
            Netns::new("client"),
            Netns::new("r1"),
            Netns::new("r2"),
            Netns::new("host"),
        );
        veth(&client, "v0", "198.18.1.1/24", &r1, "v0", "198.18.1.2/24");
        veth(&r1, "v1", "198.18.2.1/24", &r2, "v0", "198.18.2.2/24");
        veth(&r2, "v1", "198.18.3.1/24", &host, "v0", "198.18.3.2/24");
        let mtu = mtu.to_string();
        r1.ip(&["link", "set", "v1", "mtu", &mtu]);
        r2.ip(&["link", "set", "v0", "mtu", &mtu]);
        client.ip(&["route", "add", "198.18.0.0/16", "via", "198.18.1.2"]);
        host.ip(&["route", "add", "198.18.0.0/16", "via", "198.18.3.1"]);
        r1.ip(&["route", "add", "198.18.3.0/24", "via", "198.18.2.2"]);
        r2.ip(&["route", "add", "198.18.1.0/24", "via", "198.18.2.1"]);
        for r in [&r1, &r2] {
            r.sysctl("net.ipv4.ip_forward", "1");
        }
        Some(Lab::assemble(client, host, vec![r1, r2], "198.18.3.2"))
    }

    fn assemble(client: Netns, host: Netns, hops: Vec<Netns>, addr: &'static str) -> Lab {
        // The promise: no way out of the client's namespace but the test's own subnets.
        let routes = client.ip(&["-4", "route", "show"]);
        assert!(!routes.contains("default"), "{routes}");
        // And should a packet ever be addressed elsewhere, it is dropped and counted: every
        // run of the prober checks the count is 0.
        client.nft(
            r#"table inet guard {
                chain out {
                    type filter hook output priority 0; policy accept;
                    ip daddr != { 127.0.0.0/8, 198.18.0.0/15 } counter drop comment "elsewhere"
                    ip6 daddr != { ::1, fe80::/10, ff00::/8 } counter drop comment "elsewhere"
                }
            }"#,
        );
        Lab {
            router: None,
            server: None,
            cacert: None,
            dir: wscheck_testkit::tempdir("faults").expect("temp dir"),
            client,
            host,
            hops,
            addr,
        }
    }

    /// The bundled server on `$PORT` 8080 of the host (plus `env`), with room for many files.
    pub fn serve(&mut self, env: &[(&str, &str)]) -> &mut Self {
        // ServerProcess starts a program with a clean environment: a script that enters the
        // namespace, raises the file limit and execs the server (the pid stays the server's).
        let script = self.dir.join("server.sh");
        let server = wscheck_testkit::server_binary();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\nexec ip netns exec {} prlimit {} -- {}\n",
                self.host.name,
                nofile(),
                server.display()
            ),
        )
        .expect("write server.sh");
        make_executable(&script);
        let mut all = vec![("PORT", "8080")];
        all.extend_from_slice(env);
        self.server = Some(ServerProcess::start(&script, &all));
        self
    }

    /// nginx on the host, as the router: TLS on 443 (certificate for HOST from a test CA),
    /// plain on 80, both to the app on 8080; a firewall resets every other port.
    pub fn route(&mut self) -> &mut Self {
        let ca = TestCa::new("wscheck faults CA").expect("CA");
        let cacert = ca.write(&self.dir).expect("write CA");
        let (cert, key) = ca
            .leaf(&[HOST])
            .and_then(|leaf| leaf.write(&self.dir, &ca))
            .expect("leaf certificate");
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, nginx_config(&self.dir, &cert, &key)).expect("nginx.conf");
        let child = self
            .host
            .command(nginx())
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        self.router = Some(ChildGuard(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.host.listening(443) && self.host.listening(80)) {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on 80 and 443"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.host.nft(
            r#"table inet firewall {
                chain input {
                    type filter hook input priority 0; policy accept;
                    iifname "v0" tcp dport != { 80, 443 } reject with tcp reset
                }
            }"#,
        );
        self.cacert = Some(cacert);
        self
    }

    /// `wscheck ARGS --connect-to ::ADDR: --format json` on the client host (every port of
    /// the route goes to the host, keeping its number), `--cacert` when there is a router.
    pub fn wscheck(&self, args: &[&str]) -> Run {
        self.wscheck_with(&[], args)
    }

    /// As `wscheck`, with `prefix` (e.g. `prlimit --nofile=…`) before the binary.
    pub fn wscheck_with(&self, prefix: &[&str], args: &[&str]) -> Run {
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = self.client.command(program);
                c.args(rest).arg(WSCHECK);
                c
            }
            None => self.client.command(WSCHECK),
        };
        command
            .args(args)
            .args(["--connect-to", &format!("::{}:", self.addr)])
            .args(["--format", "json"]);
        if let Some(cacert) = &self.cacert {
            command.arg("--cacert").arg(cacert);
        }
        let started = Instant::now();
        let output = command
            .output()
            .expect("run wscheck in the client namespace");
        let elapsed = started.elapsed();
        let elsewhere = self.client.counters().get("elsewhere").copied();
        assert_eq!(
            elsewhere,
            Some(0),
            "packets to addresses outside the test's subnets"
        );
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        Run {
            exit: output.status.code(),
            json,
            elapsed,
        }
    }

    /// `wscheck load ...` on the client host, with room for many connections.
    pub fn load(&self, args: &[&str]) -> Run {
        let mut all = vec!["load"];
        all.extend_from_slice(args);
        self.wscheck_with(&["prlimit", &nofile(), "--"], &all)
    }
}

/// Random loss of `percent` % of the packets that arrive on `dev` (nftables' `numgen
/// random`, in the kernel), counted: `seen <dev>` and `lost <dev>`.
pub fn lose(ns: &Netns, dev: &str, percent: u32) {
    ns.nft(&format!(
        r#"table inet loss {{
            chain arrive {{
                type filter hook prerouting priority -300; policy accept;
                iifname "{dev}" counter comment "seen"
                iifname "{dev}" numgen random mod 100 < {percent} counter drop comment "lost"
            }}
        }}"#
    ));
}

/// Delays every packet leaving `dev` by `ms` with netem; `Err` says why it cannot.
pub fn delay(ns: &Netns, dev: &str, ms: u32) -> Result<(), String> {
    let delay = format!("{ms}ms");
    ns.exec(
        "tc",
        &["qdisc", "add", "dev", dev, "root", "netem", "delay", &delay],
    )
    .map(|_| ())
    .map_err(|e| {
        if e.contains("qdisc kind is unknown") {
            "sch_netem not in this kernel (`tc qdisc add … netem`: qdisc kind is unknown)"
                .to_owned()
        } else {
            format!("tc qdisc add … netem failed: {}", e.trim())
        }
    })
}

fn nginx() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is not installed: run scripts/test, or apt-get install nginx-light")
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A gorouter-like router in a few lines: TLS ends here, Upgrade/Connection go on.
fn nginx_config(dir: &Path, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    server {{
        listen 443 ssl;
        listen 80;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:8080;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    )
}
