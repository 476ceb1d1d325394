//! Real network faults between test hosts in network namespaces: packets dropped, reset,
//! black-holed and lost by the kernel (nftables, a small MTU, tc when it has netem), never by
//! a stand-in process; the real `wscheck` and `wscheck-server` binaries on either side. The
//! figures go to stderr (`--nocapture` shows them). The tests need root, `ip netns` and
//! nftables, and print `skipped: …` without them.

mod lab;
mod netns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::HOST;
use lab::{Lab, Run, delay, lose};

fn probes(run: &Run) -> &[Value] {
    run.json["probes"].as_array().expect("probes")
}

fn only_probe(run: &Run) -> &Value {
    let probes = probes(run);
    assert_eq!(probes.len(), 1, "{:#}", run.json);
    &probes[0]
}

fn code(probe: &Value) -> &str {
    probe["diagnosis"]["code"].as_str().expect("diagnosis code")
}

fn total_ms(probe: &Value) -> f64 {
    probe["timings_ms"]["total"].as_f64().expect("total time")
}

/// A rule set on the host's input, in a table of its own (the firewall's still applies).
fn fault(lab: &Lab, rule: &str) {
    lab.host.nft(&format!(
        "table inet fault {{\n chain input {{\n  type filter hook input priority -10; policy accept;\n  {rule}\n }}\n}}"
    ));
}

/// A router host (nginx and the bundled server) and a client host.
fn cf(test: &str) -> Option<Lab> {
    let mut lab = Lab::direct(test)?;
    lab.serve(&[]).route();
    Some(lab)
}

#[test]
fn syn_dropped_is_connect_timeout_within_the_connect_timeout() {
    let Some(lab) = cf("syn_dropped_is_connect_timeout_within_the_connect_timeout") else {
        return;
    };
    fault(
        &lab,
        r#"iifname "v0" tcp dport 443 tcp flags & (syn | ack) == syn counter drop comment "syn""#,
    );
    let url = format!("wss://{HOST}/");
    let run = lab.wscheck(&[&url, "--only", "--connect-timeout", "1s", "--timeout", "5s"]);
    let probe = only_probe(&run);
    assert_eq!(code(probe), "connect_timeout", "{probe:#}");
    assert_eq!(probe["stage"], "connect");
    let total = total_ms(probe);
    assert!((1000.0..1300.0).contains(&total), "{total} ms");
    assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
    assert_eq!(run.exit, Some(1));
    let syns = lab.host.counters()["syn"];
    assert!(syns >= 1);
    eprintln!(
        "figure: SYN dropped: connect_timeout after {total:.0} ms, --connect-timeout 1 s \
         (report after {} ms, {syns} SYN dropped)",
        run.elapsed.as_millis()
    );
}

#[test]
fn rst_is_connect_refused_at_once() {
    let Some(lab) = cf("rst_is_connect_refused_at_once") else {
        return;
    };
    // nginx listens on 443: the refusal is the firewall's reset, not a closed port.
    assert!(lab.host.listening(443));
    fault(
        &lab,
        r#"iifname "v0" tcp dport 443 counter reject with tcp reset comment "rst""#,
    );
    let url = format!("wss://{HOST}/");
    let run = lab.wscheck(&[&url, "--only", "--connect-timeout", "1s"]);
    let probe = only_probe(&run);
    assert_eq!(code(probe), "connect_refused", "{probe:#}");
    let total = total_ms(probe);
    assert!(total < 100.0, "{total} ms");
    let detail = probe["diagnosis"]["detail"].as_str().unwrap();
    assert!(detail.contains("refused"), "{detail}");
    eprintln!(
        "figure: RST: connect_refused after {total:.1} ms ({} SYN reset); detail: {detail}",
        lab.host.counters()["rst"]
    );
}

#[test]
fn accept_then_silence_is_handshake_timeout_and_tls_handshake_timeout() {
    let test = "accept_then_silence_is_handshake_timeout_and_tls_handshake_timeout";
    let Some(lab) = cf(test) else {
        return;
    };
    // TCP opens (SYN and bare ACKs pass), then every segment carrying data is dropped: an
    // IP packet over 100 bytes (a bare ACK, options included, is at most 80).
    fault(
        &lab,
        r#"iifname "v0" tcp dport { 80, 443 } meta length > 100 counter drop comment "data""#,
    );
    // Both port-less URLs at once: wss:// (TLS stage, --connect-timeout) and ws:// (upgrade,
    // --timeout).
    let args = [HOST, "--ports", "default", "--connect-timeout", "1s"];
    let run = lab.wscheck(&[&args[..], &["--timeout", "2s"]].concat());
    let mut seen = Vec::new();
    for probe in probes(&run) {
        let (expected, stage, bound) = match probe["scheme"].as_str() {
            Some("wss") => ("tls_handshake_timeout", "tls", 1000.0),
            _ => ("handshake_timeout", "upgrade", 2000.0),
        };
        assert_eq!(code(probe), expected, "{probe:#}");
        assert_eq!(probe["stage"], stage);
        assert!(probe["timings_ms"]["connect"].is_number(), "TCP opened");
        let total = total_ms(probe);
        assert!((bound..bound + 300.0).contains(&total), "{total} ms");
        seen.push(format!("{} {expected} after {total:.0} ms", probe["url"]));
    }
    assert_eq!(seen.len(), 2);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    eprintln!(
        "figure: accept-then-silence: {} (--connect-timeout 1 s, --timeout 2 s; {} data \
         segments dropped; report after {} ms)",
        seen.join(", "),
        lab.host.counters()["data"],
        run.elapsed.as_millis()
    );
}

#[test]
fn reset_after_the_101_is_closed_during_echo_naming_the_reset() {
    let Some(lab) = cf("reset_after_the_101_is_closed_during_echo_naming_the_reset") else {
        return;
    };
    // The client's first WebSocket frame (a masked text frame: first payload byte 0x81;
    // the HTTP request starts with "GET") is answered with a TCP reset.
    fault(
        &lab,
        r#"iifname "v0" tcp dport 80 @ih,0,8 0x81 counter reject with tcp reset comment "frame""#,
    );
    let url = format!("ws://{HOST}/");
    let run = lab.wscheck(&[&url, "--only", "--timeout", "3s"]);
    let probe = only_probe(&run);
    assert_eq!(probe["http_status"], 101, "{probe:#}");
    assert_eq!(probe["stage"], "echo");
    assert_eq!(code(probe), "closed_during_echo", "{probe:#}");
    let message = probe["failure"]["message"].as_str().unwrap();
    let detail = probe["diagnosis"]["detail"].as_str().unwrap();
    for text in [message, detail] {
        assert!(text.to_lowercase().contains("reset"), "{text}");
    }
    assert!(lab.host.counters()["frame"] >= 1);
    eprintln!(
        "figure: reset after the 101: closed_during_echo after {:.1} ms; detail: {detail}",
        total_ms(probe)
    );
}

/// The per-direction loss counters of both hosts, as a figure.
fn loss_figure(lab: &Lab) -> String {
    let (mut seen, mut lost) = (0, 0);
    for ns in [&lab.client, &lab.host] {
        let counters = ns.counters();
        seen += counters["seen"];
        lost += counters["lost"];
    }
    let rate = 100.0 * lost as f64 / seen.max(1) as f64;
    format!("{lost} of {seen} packets dropped ({rate:.1} %)")
}

#[test]
fn rtt_200ms_and_10_percent_loss_classify_the_matrix_and_lose_no_echo() {
    let test = "rtt_200ms_and_10_percent_loss_classify_the_matrix_and_lose_no_echo";
    let Some(lab) = cf(test) else {
        return;
    };
    // 100 ms each way, when the kernel can delay packets at all.
    let delayed = delay(&lab.client, "v0", 100).and_then(|()| delay(&lab.host, "v0", 100));
    if let Err(why) = &delayed {
        netns::skipped(
            test,
            &format!("200 ms RTT: {why}; the 10 % loss runs alone"),
        );
    }
    let rtt_ms = if delayed.is_ok() { 200.0 } else { 0.0 };
    lose(&lab.client, "v0", 10);
    lose(&lab.host, "v0", 10);
    matrix_under_loss(&lab);
    latency_under_loss(&lab, rtt_ms);
    echo_stream_under_loss(&lab);
    eprintln!("figure: loss: {}", loss_figure(&lab));
}

/// Time-outs that TCP's own retransmissions fit in: a SYN (or its answer) is lost with
/// p = 0.19, and the sixth try leaves at 31 s.
const PATIENT: [&str; 4] = ["--connect-timeout", "32s", "--timeout", "40s"];

fn matrix_under_loss(lab: &Lab) {
    let run = lab.wscheck(&[&[HOST][..], &PATIENT].concat());
    let mut rows = Vec::new();
    for probe in probes(&run) {
        // As on Cloud Foundry: 443 and 80 work, every other port is refused.
        let expected = match probe["port"].as_u64() {
            Some(443 | 80) => "ok",
            _ => "connect_refused",
        };
        assert_eq!(code(probe), expected, "{probe:#}");
        rows.push(format!(
            "{} {} {:.0} ms",
            probe["url"].as_str().unwrap(),
            code(probe),
            total_ms(probe)
        ));
    }
    assert_eq!(rows.len(), 8);
    assert!(run.elapsed < Duration::from_secs(41), "{:?}", run.elapsed);
    assert_eq!(run.exit, Some(0));
    eprintln!(
        "figure: matrix under loss: report after {} ms (bound 40 s): {}",
        run.elapsed.as_millis(),
        rows.join("; ")
    );
}

fn latency_under_loss(lab: &Lab, rtt_ms: f64) {
    let url = format!("wss://{HOST}/");
    let run = lab.wscheck(&[&[url.as_str(), "--only", "--count", "20"][..], &PATIENT].concat());
    let latency = &run.json["deep"]["latency"];
    assert_eq!(latency["completed"], 20, "{latency:#}");
    let figure = |key: &str| latency[key].as_f64().expect("a latency figure");
    let [min, median, p99, max] = ["min_ms", "median_ms", "p99_ms", "max_ms"].map(figure);
    assert!(min <= median && median <= p99 && p99 <= max, "{latency:#}");
    assert!(min >= rtt_ms, "{min} ms under a {rtt_ms} ms RTT");
    eprintln!(
        "figure: --count 20 under loss (RTT added: {rtt_ms} ms): min {min} ms, median \
         {median} ms, p99 {p99} ms, max {max} ms"
    );
}

/// Ten connections echo closed-loop for 3 s through the router. What the app received and
/// sent is read from its own log: the generator counts an echo later than 2 s after its
/// window as lost, and under 10 % loss TCP's retransmissions sometimes take longer.
fn echo_stream_under_loss(lab: &Lab) {
    let url = format!("ws://{HOST}/");
    let args = ["--connections", "10", "--duration", "3s", "--size", "1KiB"];
    let skip = lab.server.as_ref().unwrap().output().lines().count();
    let run_end = log_stamp(std::time::SystemTime::now() + Duration::from_secs(3));
    let run = lab.load(&[&[url.as_str()][..], &args, &PATIENT].concat());
    let json = &run.json;
    assert_eq!(json["connections"]["opened"], 10, "{json:#}");
    assert_eq!(json["connections"]["dropped"], 0, "{json:#}");
    let m = &json["messages"];
    for key in ["out_of_order", "mismatched"] {
        assert_eq!(m[key], 0, "{key}: {json:#}");
    }
    let echoed = m["echoed"].as_u64().unwrap();
    assert!(echoed > 0, "{json:#}");
    assert_eq!(m["bytes_verified"].as_u64(), Some(echoed * 1024));
    let app = settled_view(lab, skip, 10, &run_end);
    assert_eq!(app.opened, 10, "{app:?}");
    assert_eq!(app.cut_in_run, 0, "{app:?}");
    let sent = m["sent"].as_u64().unwrap();
    // A message whose write was still under way when the window closed (one per
    // connection at most, under loss) reaches the app without being counted as sent.
    assert!(app.messages_in <= sent + 10, "{app:?}");
    assert!(
        sent.saturating_sub(app.messages_in) <= app.cut_after_run,
        "{app:?}"
    );
    assert_eq!(app.unechoed, 0, "{app:?}");
    eprintln!(
        "figure: echo stream under loss: {sent} sent, the app received {} and echoed each; \
         {echoed} echoes in the window, {} bytes verified, out of order {}, later than the \
         generator's 2 s grace {}; latency p50 {} µs, p99 {} µs, max {} µs",
        app.messages_in,
        m["bytes_verified"],
        m["out_of_order"],
        m["lost"],
        json["latency_us"]["p50"],
        json["latency_us"]["p99"],
        json["latency_us"]["max"]
    );
}

/// The client's view of `--sizes 1KiB,64KiB` over a path whose middle link has MTU 1280
/// and whose routers drop their ICMP "fragmentation needed": a path MTU black hole.
fn black_hole(test: &str) -> Option<(Lab, Run)> {
    let mut lab = Lab::through_routers(test, 1280)?;
    lab.serve(&[]);
    for hop in &lab.hops {
        hop.nft(
            r#"table inet fault {
                chain output {
                    type filter hook output priority 0; policy accept;
                    icmp type destination-unreachable icmp code frag-needed counter drop comment "icmp"
                }
            }"#,
        );
    }
    let url = format!("ws://{HOST}:8080/");
    let args = ["--only", "--sizes", "1KiB,64KiB", "--timeout", "2s"];
    let run = lab.wscheck(&[&[url.as_str()][..], &args].concat());
    Some((lab, run))
}

#[test]
fn path_mtu_black_hole_fails_large_sizes_and_passes_small_ones() {
    let test = "path_mtu_black_hole_fails_large_sizes_and_passes_small_ones";
    let Some((lab, run)) = black_hole(test) else {
        return;
    };
    let sizes = &run.json["deep"]["sizes"];
    let outcomes: Vec<(u64, &str)> = sizes["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["size"].as_u64().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    let expected = [
        (1024, "ok"),
        (1024, "ok"),
        (65536, "timeout"),
        (65536, "timeout"),
    ];
    assert_eq!(outcomes, expected, "{sizes:#}");
    assert_eq!(sizes["largest_ok"], 1024);
    let findings = run.json["deep"]["findings"].as_array().unwrap();
    let finding = findings
        .iter()
        .find(|f| f["code"] == "path_mtu_black_hole")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    let detail = finding["detail"].as_str().unwrap();
    assert!(
        detail.contains("1.0 KiB") && detail.contains("timeout"),
        "{detail}"
    );
    let icmp: u64 = lab.hops.iter().map(|h| h.counters()["icmp"]).sum();
    assert!(icmp >= 1, "the routers sent no ICMP to drop");

    // The same path with ICMP let through: path MTU discovery works and 64 KiB passes.
    for hop in &lab.hops {
        hop.exec("nft", &["delete", "table", "inet", "fault"])
            .unwrap();
    }
    let url = format!("ws://{HOST}:8080/");
    let control = lab.wscheck(&[&url, "--only", "--sizes", "64KiB", "--timeout", "2s"]);
    let results = &control.json["deep"]["sizes"]["results"];
    assert!(
        results.as_array().unwrap().iter().all(|r| r["ok"] == true),
        "{results:#}"
    );
    eprintln!(
        "figure: MTU 1280 black hole: {outcomes:?} ({icmp} ICMP frag-needed dropped; report \
         after {} ms); finding: {detail}; with ICMP let through 64 KiB passes in {} / {} ms",
        run.elapsed.as_millis(),
        results[0]["rtt_ms"],
        results[1]["rtt_ms"]
    );
}

#[test]
fn path_mtu_black_hole_is_explained_as_one() {
    let Some((_lab, run)) = black_hole("path_mtu_black_hole_is_explained_as_one") else {
        return;
    };
    let finding = &run.json["deep"]["findings"][0];
    let text = format!(
        "{} {} {}",
        finding["summary"], finding["detail"], finding["fix"]
    );
    assert!(text.contains("MTU"), "{finding:#}");
    assert!(!text.contains("closed or reset instead"), "{finding:#}");
}

/// The largest resident set `pid` reaches until `stop` is set, in KiB.
fn peak_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// What the server's log says about its connections.
#[derive(Debug, Default)]
struct ServerView {
    opened: u64,
    /// Close lines by how the connection ended (`closed by peer`, `connection lost: …`).
    ends: std::collections::BTreeMap<String, u64>,
    /// Connections that ended otherwise than by the client's close, while the client's run
    /// lasted, and after it (the client drops a connection whose close is still on its way:
    /// a reset).
    cut_in_run: u64,
    cut_after_run: u64,
    messages_in: u64,
    /// Connections where messages_out was not messages_in plus the greeting.
    unechoed: u64,
}

impl ServerView {
    /// Reads the server's log; `run_end` is when the client's run ended, in the log's own
    /// timestamp format (UTC, microseconds), so that the two compare as text.
    fn read(log: &str, run_end: &str) -> ServerView {
        let mut view = ServerView::default();
        for line in log.lines() {
            if line.contains("websocket open ") {
                view.opened += 1;
            }
            let Some(rest) = line.split("websocket close: ").nth(1) else {
                continue;
            };
            let end = rest.split(" peer=").next().unwrap_or(rest);
            let end = end.split(" (").next().unwrap_or(end).to_owned();
            if end != "closed by peer" {
                let stamp = line.split_whitespace().next().unwrap_or_default();
                match stamp < run_end {
                    true => view.cut_in_run += 1,
                    false => view.cut_after_run += 1,
                }
            }
            *view.ends.entry(end).or_default() += 1;
            let field = |name: &str| -> u64 {
                rest.split(&format!(" {name}="))
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0)
            };
            view.messages_in += field("messages_in");
            view.unechoed += u64::from(field("messages_out") != field("messages_in") + 1);
        }
        view
    }

    fn closed(&self) -> u64 {
        self.ends.values().sum()
    }
}

/// `at` as the server's log writes its timestamps: `2026-11-27T08:21:18.123456Z`.
fn log_stamp(at: std::time::SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from(at)
        .format(&format)
        .expect("a formattable time")
}

#[test]
fn ten_thousand_connections_with_5_percent_loss_lose_nothing_the_client_kept() {
    let test = "ten_thousand_connections_with_5_percent_loss_lose_nothing_the_client_kept";
    let hard = lab::hard_nofile();
    if hard < 10_100 {
        let why = format!("the hard limit on open files is {hard}, under 10 100");
        return netns::skipped(test, &why);
    }
    let Some(mut lab) = Lab::direct(test) else {
        return;
    };
    // The connection limit is not what this test is about.
    lab.serve(&[("WSCHECK_MAX_CONNECTIONS", "20000")]);
    lose(&lab.client, "v0", 5);
    lose(&lab.host, "v0", 5);
    let pid = lab.server.as_ref().unwrap().child.0.id();
    let idle_kib = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = peak_rss(pid, stop.clone());
    let url = format!("ws://{HOST}:8080/");
    // Opened over 10 s (the debug builds keep up with 1 000 a second on two busy cores),
    // then held for 6 s; each connection sends a message every 10 s.
    let args = [
        "--connections",
        "10000",
        "--ramp-up",
        "10s",
        "--duration",
        "6s",
    ];
    // The measured window ends 16 s after the start, later by the time the process takes
    // to start: a cut stamped before this is a cut during the run.
    let run_end = log_stamp(std::time::SystemTime::now() + Duration::from_secs(16));
    let run = lab.load(&[&[url.as_str()][..], &args, &["--rate", "1000"], &PATIENT].concat());
    stop.store(true, Ordering::Relaxed);
    let peak_kib = sampler.join().unwrap();
    let client = &run.json;
    let opened = client["connections"]["opened"].as_u64().unwrap();
    let server = settled_view(&lab, 0, opened, &run_end);
    check_ten_thousand(client, &server, peak_kib);
    let per_connection = (peak_kib.saturating_sub(idle_kib) * 1024) / 10_000;
    eprintln!(
        "figure: 10 000 connections, 5 % loss: client opened {}, failed {}, dropped {}, sent \
         {} messages, {} echoes later than the generator's 2 s grace; server opened {}, \
         received {} messages and echoed each, ends {:?} ({} cut during the run, {} reset by \
         the client after it); server RSS {} KiB idle, peak {} KiB \
         ({per_connection} B a connection); {}; run {} ms",
        client["connections"]["opened"],
        client["connections"]["failed"],
        client["connections"]["dropped"],
        client["messages"]["sent"],
        client["messages"]["lost"],
        server.opened,
        server.messages_in,
        server.ends,
        server.cut_in_run,
        server.cut_after_run,
        idle_kib,
        peak_kib,
        loss_figure(&lab),
        run.elapsed.as_millis()
    );
}

/// The server's view of its log after line `skip`, once every connection there has its
/// close line.
fn settled_view(lab: &Lab, skip: usize, client_opened: u64, run_end: &str) -> ServerView {
    let server = lab.server.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log: Vec<String> = server
            .output()
            .lines()
            .skip(skip)
            .map(str::to_owned)
            .collect();
        let view = ServerView::read(&log.join("\n"), run_end);
        let settled = view.opened >= client_opened && view.closed() == view.opened;
        if settled || Instant::now() > deadline {
            return view;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check_ten_thousand(client: &Value, server: &ServerView, peak_kib: u64) {
    let c = &client["connections"];
    let opened = c["opened"].as_u64().unwrap();
    let failed: u64 = c["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["connections"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(opened + failed, 10_000, "{client:#}");
    assert_eq!(c["dropped"], 0, "{client:#}\n{server:?}");
    // Every echo that came back was intact and in order. (An echo later than the
    // generator's 2 s grace after the window counts as lost there: under loss TCP's
    // retransmissions can take that long, so what the server received and sent is read
    // from its own log instead.)
    let m = &client["messages"];
    for key in ["out_of_order", "mismatched"] {
        assert_eq!(m[key], 0, "{key}: {client:#}");
    }
    // Every connection the client opened, the server opened, and ended it only when the
    // client did: never on its own (no ping left unanswered, no client too slow, no close
    // of its own), and during the run only for connections the client failed too.
    assert!(
        server.opened >= opened && server.opened <= opened + failed,
        "{server:?}"
    );
    assert_eq!(server.closed(), server.opened, "{server:?}");
    assert!(server.cut_in_run <= failed, "{server:?}");
    for end in server.ends.keys() {
        let own = ["closed by server", "no answer to ping", "stopped reading"];
        assert!(!own.iter().any(|o| end.contains(o)), "{server:?}");
    }
    // Every message sent reached the server, but those on connections the client reset
    // itself at its end, and the server echoed each one it received.
    let sent = m["sent"].as_u64().unwrap();
    assert!(server.messages_in <= sent, "{server:?}");
    assert!(
        sent - server.messages_in <= server.cut_after_run,
        "{server:?}"
    );
    assert_eq!(server.unechoed, 0, "{server:?}");
    // The manifest gives the server 64 MiB.
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}
