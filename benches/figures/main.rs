//! Benchmarks that print figures (not timed tests): the bundled server against the
//! article's Node `server.js` under the same load generator, and the prober's report time.
//! Everything runs on loopback. `cargo bench --bench figures` (about three minutes).
//!
//! Server figures: echo throughput with 100 connections (64 B and 4 KiB, closed loop, 2 s
//! warm-up + 10 s), both saturating (16 messages in flight per connection: the most the
//! server echoes) and ping-pong (one in flight: the round trip), with the latency under
//! each load; RSS with 10 000 idle connections (on a fresh process); start-up time and idle
//! RSS. The generator's own CPU share is printed beside each throughput; when it is near
//! one full core, the same load is repeated with two generator processes.
//! Prober figures: the default 8-URL matrix against the healthy stand-in vs one probe, and
//! the report time with one URL black-holed.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wscheck::cli::to_plan;
use wscheck_testkit::standin::{Route, Router};
use wscheck_testkit::{ChildGuard, fixtures, free_port, node_dir, repo_root};

const CONNECTIONS: u32 = 100;
/// Messages in flight per connection for the saturating load.
const IN_FLIGHT: u32 = 16;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
const IDLE_CONNECTIONS: u32 = 10_000;

fn release_binary(name: &str) -> std::path::PathBuf {
    repo_root().join("target/release").join(name)
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A server under test: a process on a loopback port, started with a raised fd limit.
struct Server {
    name: &'static str,
    child: ChildGuard,
    addr: SocketAddr,
    startup_ms: f64,
    idle_rss_kib: u64,
}

fn start_server(name: &'static str, command: &str, port: u16) -> Server {
    let started = Instant::now();
    let child = Command::new("bash")
        .args(["-c", &format!("ulimit -n 20000 && exec {command}")])
        .env("PORT", port.to_string())
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
            "{name} did not start"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    Server {
        name,
        child: ChildGuard(child),
        addr,
        startup_ms,
        idle_rss_kib: rss_kib(pid),
    }
}

/// What a generator does.
#[derive(Clone)]
struct Load<'a> {
    connections: u32,
    size: &'a str,
    rate: Option<f64>,
    in_flight: u32,
    duration: Duration,
    warmup: Duration,
    ramp_up: Duration,
}

/// A load run against a server: the URL and what to do.
#[derive(Clone)]
struct LoadRun<'a> {
    url: String,
    load: Load<'a>,
}

fn load_args<'a>(addr: SocketAddr, load: &Load<'a>) -> LoadRun<'a> {
    LoadRun {
        url: format!("ws://{addr}/"),
        load: load.clone(),
    }
}

impl LoadRun<'_> {
    /// `load URL ...` for one generator of `processes`, connections and rate split
    /// between them: the command line a user would type.
    fn argv(&self, processes: u32) -> Vec<String> {
        let l = &self.load;
        let mut argv: Vec<String> = [
            "load".to_owned(),
            self.url.clone(),
            "--connections".to_owned(),
            (l.connections / processes).to_string(),
            "--size".to_owned(),
            l.size.to_owned(),
            "--in-flight".to_owned(),
            l.in_flight.to_string(),
            "--duration".to_owned(),
            format!("{}ms", l.duration.as_millis()),
            "--warmup".to_owned(),
            format!("{}ms", l.warmup.as_millis()),
            "--ramp-up".to_owned(),
            format!("{}ms", l.ramp_up.as_millis()),
            "--format".to_owned(),
            "json".to_owned(),
        ]
        .into();
        if let Some(rate) = l.rate {
            argv.extend([
                "--rate".to_owned(),
                (rate / f64::from(processes)).to_string(),
            ]);
        }
        argv
    }
}

/// One generator thread in this process (as in the baseline), its options parsed from the
/// same command line as the binary's.
fn load_in_process(run: &LoadRun<'_>) -> Value {
    let argv = std::iter::once("wscheck".to_owned()).chain(run.argv(1));
    let cli = <wscheck::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let env = wscheck::plan::EnvProxy::default();
    let Ok(to_plan::Command::Load { plan, settings, .. }) = to_plan::command(cli, &env) else {
        panic!("a load command");
    };
    let tls = wscheck::probe::tls::TlsSetup::new(None, false).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    serde_json::to_value(runtime.block_on(wscheck::load::run_load(plan, tls, settings))).unwrap()
}

/// `processes` generator processes (the wscheck binary), connections split between them.
fn load_in_processes(run: &LoadRun<'_>, processes: u32) -> Vec<Value> {
    let children: Vec<_> = (0..processes)
        .map(|_| {
            let mut command = Command::new("bash");
            let line = format!(
                "ulimit -n 20000 && exec {} {}",
                release_binary("wscheck").display(),
                run.argv(processes).join(" ")
            );
            command
                .args(["-c", &line])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            command.spawn().expect("start generator")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
        })
        .collect()
}

fn throughput(server: &Server, size: &str, in_flight: u32) -> Value {
    let args = load_args(
        server.addr,
        &Load {
            connections: CONNECTIONS,
            size,
            rate: None,
            in_flight,
            duration: MEASURE,
            warmup: WARMUP,
            ramp_up: Duration::ZERO,
        },
    );
    let pid = server.child.0.id();
    let cpu_seconds = |pid| wscheck::load::cpu_seconds(pid).unwrap_or(0.0);
    let server_cpu = cpu_seconds(pid);
    let single = load_in_process(&args);
    let server_cpu = cpu_seconds(pid) - server_cpu;
    let total_s = (WARMUP + MEASURE).as_secs_f64();
    let generator_share = single["cpu_seconds"].as_f64().unwrap_or(0.0) / total_s;
    let mut figures = json!({
        "size": size,
        "in_flight": in_flight,
        "msgs_per_s": single["messages"]["per_second"],
        "p50_us": single["latency_us"]["p50"],
        "p99_us": single["latency_us"]["p99"],
        "lost": single["messages"]["lost"],
        "ok": single["ok"],
        "generator_cpu_share": (generator_share * 100.0).round() / 100.0,
        "server_cpu_share": (server_cpu / total_s * 100.0).round() / 100.0,
    });
    // One generator thread near a full core is the limit, not the server: add a second.
    if generator_share > 0.85 {
        let runs = load_in_processes(&args, 2);
        let sum: f64 = runs
            .iter()
            .map(|r| r["messages"]["per_second"].as_f64().unwrap_or(0.0))
            .sum();
        let p99 = runs
            .iter()
            .filter_map(|r| r["latency_us"]["p99"].as_u64())
            .max();
        figures["two_generators"] = json!({ "msgs_per_s": sum.round(), "p99_us": p99, "ok": runs.iter().all(|r| r["ok"] == true) });
    }
    figures
}

/// RSS with 10 000 idle connections, on a fresh process: what they cost, not what earlier
/// loads left behind.
fn idle_memory(server: &Server) -> Value {
    // Open 10 000 connections over 5 s, hold them; read the server's RSS while held.
    let hold = Duration::from_secs(6);
    let args = load_args(
        server.addr,
        &Load {
            connections: IDLE_CONNECTIONS,
            size: "64B",
            rate: Some(0.0),
            in_flight: 1,
            duration: hold,
            warmup: Duration::ZERO,
            ramp_up: Duration::from_secs(5),
        },
    );
    let generator = std::thread::spawn(move || load_in_processes(&args, 1));
    std::thread::sleep(Duration::from_secs(5) + Duration::from_secs(3));
    let rss = rss_kib(server.child.0.id());
    let run = generator.join().unwrap().pop().unwrap_or(Value::Null);
    let opened = run["connections"]["opened"].as_u64().unwrap_or(0);
    let per_connection = if opened > 0 {
        (rss.saturating_sub(server.idle_rss_kib) * 1024) as f64 / opened as f64
    } else {
        f64::NAN
    };
    json!({
        "connections_opened": opened,
        "rss_mib": (rss as f64 / 1024.0 * 10.0).round() / 10.0,
        "bytes_per_connection": per_connection.round(),
    })
}

fn server_figures(name: &'static str, command: &str) -> Value {
    let server = start_server(name, command, free_port());
    let mut figures = json!({
        "server": server.name,
        "startup_ms": (server.startup_ms * 10.0).round() / 10.0,
        "idle_rss_mib": (server.idle_rss_kib as f64 / 1024.0 * 10.0).round() / 10.0,
    });
    for (key, size, in_flight) in [
        ("throughput_64b", "64B", IN_FLIGHT),
        ("throughput_4kib", "4KiB", IN_FLIGHT),
        ("ping_pong_64b", "64B", 1),
        ("ping_pong_4kib", "4KiB", 1),
    ] {
        eprintln!("… {name}: {size}, {in_flight} in flight per connection");
        figures[key] = throughput(&server, size, in_flight);
    }
    drop(server);
    eprintln!("… {name}: {IDLE_CONNECTIONS} idle connections (fresh process)");
    let fresh = start_server(name, command, free_port());
    figures["idle_10k"] = idle_memory(&fresh);
    figures
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

fn check(label: &str, ok: bool, detail: String) -> bool {
    println!("  [{}] {label}: {detail}", if ok { "pass" } else { "FAIL" });
    ok
}

fn main() {
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

    let ours = server_figures(
        "wscheck-server",
        &release_binary("wscheck-server").display().to_string(),
    );
    let node_script = node_dir().join("article/server.js");
    let node = server_figures(
        "article server.js (Node)",
        &format!("node {}", node_script.display()),
    );
    eprintln!("… prober");
    let prober = prober_figures();
    let figures = json!({ "servers": [ours, node], "prober": prober, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) });
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("figures.json"),
        serde_json::to_vec_pretty(&figures).unwrap(),
    )
    .unwrap();

    println!(
        "\nServer figures (loopback, {} cores, 100 connections; generator CPU share of one core in brackets)\n",
        figures["cores"]
    );
    println!(
        "| server | load | msgs/s 64 B | p50 / p99 µs (64 B) | msgs/s 4 KiB | p50 / p99 µs (4 KiB) |"
    );
    println!("|---|---|---|---|---|---|");
    let rate = |t: &Value| {
        let mut cell = format!("{} [{}]", t["msgs_per_s"], t["generator_cpu_share"]);
        if let Some(two) = t.get("two_generators") {
            cell.push_str(&format!("; 2 generators: {}", two["msgs_per_s"]));
        }
        cell
    };
    let latency = |t: &Value| format!("{} / {}", t["p50_us"], t["p99_us"]);
    for s in figures["servers"].as_array().unwrap() {
        for (load, small, large) in [
            (
                format!("{IN_FLIGHT} in flight (saturating)"),
                "throughput_64b",
                "throughput_4kib",
            ),
            (
                "1 in flight (ping-pong)".to_owned(),
                "ping_pong_64b",
                "ping_pong_4kib",
            ),
        ] {
            println!(
                "| {} | {load} | {} | {} | {} | {} |",
                s["server"].as_str().unwrap(),
                rate(&s[small]),
                latency(&s[small]),
                rate(&s[large]),
                latency(&s[large]),
            );
        }
    }
    println!("\n| server | idle RSS | RSS, 10 000 idle | bytes per idle socket | start-up |");
    println!("|---|---|---|---|---|");
    for s in figures["servers"].as_array().unwrap() {
        println!(
            "| {} | {} MiB | {} MiB ({} open) | {} | {} ms |",
            s["server"].as_str().unwrap(),
            s["idle_rss_mib"],
            s["idle_10k"]["rss_mib"],
            s["idle_10k"]["connections_opened"],
            s["idle_10k"]["bytes_per_connection"],
            s["startup_ms"]
        );
    }
    let p = &figures["prober"];
    println!("\nProber figures\n");
    println!(
        "  one probe: {} ms · default 8-URL matrix: {} ms ({}×) · one URL black-holed: report in {} ms (probe timeout {} ms)",
        p["single_probe_ms"],
        p["matrix_8_urls_ms"],
        p["matrix_over_single"],
        p["black_holed_report_ms"],
        p["probe_timeout_ms"]
    );

    println!("\nTargets\n");
    let best = |t: &Value| {
        t["msgs_per_s"].as_f64().unwrap_or(0.0).max(
            t.get("two_generators")
                .and_then(|g| g["msgs_per_s"].as_f64())
                .unwrap_or(0.0),
        )
    };
    let (o, n) = (&figures["servers"][0], &figures["servers"][1]);
    let mut all = true;
    for (label, key) in [
        ("throughput 64 B", "throughput_64b"),
        ("throughput 4 KiB", "throughput_4kib"),
    ] {
        let ratio = best(&o[key]) / best(&n[key]).max(1.0);
        all &= check(
            &format!("{label} at least 3× Node ({IN_FLIGHT} in flight per connection)"),
            ratio >= 3.0,
            format!("{ratio:.2}×"),
        );
    }
    for key in [
        "throughput_64b",
        "throughput_4kib",
        "ping_pong_64b",
        "ping_pong_4kib",
    ] {
        let (op99, np99) = (
            o[key]["p99_us"].as_f64().unwrap_or(f64::MAX),
            n[key]["p99_us"].as_f64().unwrap_or(0.0),
        );
        all &= check(
            &format!(
                "p99 no worse than Node ({}, {} in flight)",
                o[key]["size"].as_str().unwrap_or("?"),
                o[key]["in_flight"]
            ),
            op99 <= np99,
            format!("{op99} µs vs {np99} µs"),
        );
    }
    let (ob, nb) = (
        o["idle_10k"]["bytes_per_connection"]
            .as_f64()
            .unwrap_or(f64::MAX),
        n["idle_10k"]["bytes_per_connection"]
            .as_f64()
            .unwrap_or(0.0),
    );
    all &= check(
        "idle socket at most a quarter of Node's",
        ob <= nb / 4.0,
        format!("{ob} B vs {nb} B"),
    );
    let orss = o["idle_10k"]["rss_mib"].as_f64().unwrap_or(f64::MAX);
    all &= check(
        "10 000 idle connections under 64 MiB RSS",
        orss < 64.0 && o["idle_10k"]["connections_opened"] == IDLE_CONNECTIONS,
        format!("{orss} MiB"),
    );
    let ratio = p["matrix_over_single"].as_f64().unwrap_or(f64::MAX);
    all &= check(
        "8-URL matrix within 1.5× one probe",
        ratio <= 1.5,
        format!("{ratio}×"),
    );
    let holed = p["black_holed_report_ms"].as_f64().unwrap_or(f64::MAX);
    all &= check(
        "black-holed URL: report within timeout + 0.5 s",
        holed <= 2500.0,
        format!("{holed} ms"),
    );
    for (label, key) in [("64 B", "ping_pong_64b"), ("4 KiB", "ping_pong_4kib")] {
        let ratio = best(&o[key]) / best(&n[key]).max(1.0);
        println!(
            "  [note] ping-pong {label} (1 in flight): {ratio:.2}× Node; a round trip per message is bound by loopback TCP in the kernel (README)"
        );
    }
    println!(
        "\n{}; figures in target/bench/figures.json",
        if all {
            "all targets met"
        } else {
            "some targets missed"
        }
    );
}
