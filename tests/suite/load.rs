//! `wscheck load`: connections achieved, messages verified, errors counted, exit codes.

use assert_cmd::Command;
use serde_json::Value;
use wscheck_testkit::fixtures::{self, Behaviour};
use wscheck_testkit::standin::{Route, Router};

use crate::support::closed_port;

fn load(args: &[&str]) -> (Option<i32>, Value) {
    let output = Command::cargo_bin("wscheck")
        .unwrap()
        .arg("load")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), json)
}

/// Asserts that every echo of a run came back intact and in order; returns how many.
fn assert_every_echo_verified(json: &Value, size: u64) -> u64 {
    let echoed = json["messages"]["echoed"].as_u64().unwrap();
    assert_eq!(
        json["messages"]["bytes_verified"].as_u64().unwrap(),
        echoed * size,
        "{json:#}"
    );
    assert_eq!(
        (
            json["messages"]["lost"].as_u64(),
            json["messages"]["mismatched"].as_u64(),
            json["messages"]["out_of_order"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{json:#}"
    );
    echoed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_rate_and_idle_runs_verify_every_echo() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let url = format!("ws://{}/", app.addr);

    let (code, json) = load(&[
        &url,
        "--connections",
        "20",
        "--duration",
        "1s",
        "--size",
        "256B",
    ]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["kind"], "load");
    assert_eq!(json["connections"]["opened"], 20);
    let echoed = assert_every_echo_verified(&json, 256);
    assert!(echoed > 100, "{json:#}");
    let l = &json["latency_us"];
    assert!(
        l["min"].as_u64() <= l["p50"].as_u64()
            && l["p50"].as_u64() <= l["p99"].as_u64()
            && l["p99"].as_u64() <= l["max"].as_u64()
    );

    let (code, json) = load(&[
        &url,
        "--connections",
        "10",
        "--duration",
        "1s",
        "--rate",
        "500",
        "--ramp-up",
        "200ms",
    ]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["settings"]["mode"], "rate");
    let per_second = json["messages"]["per_second"].as_f64().unwrap();
    assert!((300.0..=600.0).contains(&per_second), "{per_second}");

    let (code, json) = load(&[
        &url,
        "--connections",
        "200",
        "--duration",
        "500ms",
        "--rate",
        "0",
    ]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["settings"]["mode"], "idle");
    assert_eq!(json["connections"]["opened"], 200);
    assert_eq!(json["messages"]["sent"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_messages_come_back_verified_and_in_order() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let url = format!("ws://{}/", app.addr);
    let (code, json) = load(&[
        &url,
        "--connections",
        "10",
        "--duration",
        "1s",
        "--in-flight",
        "8",
        "--size",
        "1KiB",
    ]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["settings"]["in_flight"], 8);
    let echoed = assert_every_echo_verified(&json, 1024);
    assert!(echoed > 1000, "{json:#}");

    // A peer that answers each pair of messages the wrong way round.
    let swapping = fixtures::start(Behaviour::WsEchoSwapped).await.unwrap();
    let (code, json) = load(&[
        &format!("ws://{}/", swapping.addr),
        "--connections",
        "2",
        "--duration",
        "500ms",
        "--in-flight",
        "4",
    ]);
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["ok"], false);
    let out_of_order = json["messages"]["out_of_order"].as_u64().unwrap();
    assert!(out_of_order > 10, "{json:#}");
    assert_eq!(json["messages"]["mismatched"], 0, "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_with_their_diagnosis_codes() {
    // A connection limit of 5 on the app: the other upgrades get 503 from the app.
    let config = wscheck_server::Config {
        max_connections: 5,
        ..Default::default()
    };
    let app = fixtures::start_bundled(config).await.unwrap();
    let (code, json) = load(&[
        &format!("ws://{}/", app.addr),
        "--connections",
        "8",
        "--duration",
        "500ms",
    ]);
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["connections"]["opened"], 5);
    assert_eq!(
        json["connections"]["failed"][0]["code"], "connection_limit_reached",
        "{json:#}"
    );
    assert_eq!(json["connections"]["failed"][0]["connections"], 3);

    let (code, json) = load(&[
        &format!("ws://{}/", closed_port()),
        "--connections",
        "3",
        "--duration",
        "200ms",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(json["connections"]["failed"][0]["code"], "connect_refused");

    // A peer that answers with something else: every message counts as mismatched.
    let liar = fixtures::start(Behaviour::WsReply("not your message".into()))
        .await
        .unwrap();
    let (code, json) = load(&[
        &format!("ws://{}/", liar.addr),
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--rate",
        "20",
    ]);
    assert_eq!(code, Some(1), "{json:#}");
    assert!(
        json["messages"]["mismatched"].as_u64().unwrap() > 0,
        "{json:#}"
    );
    assert_eq!(json["messages"]["echoed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_stand_in_router_over_tls() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let mut args: Vec<String> = vec![
        "echo.apps.wscheck.test".into(),
        "--connections".into(),
        "10".into(),
        "--duration".into(),
        "1s".into(),
        "--cacert".into(),
        router.cacert.display().to_string(),
    ];
    for rule in router.connect_to(closed_port()) {
        args.push("--connect-to".into());
        args.push(rule);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, json) = load(&args);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["url"], "wss://echo.apps.wscheck.test/");
    assert!(json["messages"]["echoed"].as_u64().unwrap() > 50);
}

#[test]
fn bad_load_flags_exit_2() {
    for (args, needle) in [
        (vec!["ws://127.0.0.1:9/", "--size", "8B"], "--size"),
        (
            vec!["ws://127.0.0.1:9/", "--connections", "0"],
            "--connections",
        ),
        (vec!["ws://127.0.0.1:9/", "--rate=-1"], "--rate"),
        (vec!["ws://127.0.0.1:9/", "--rate=nan"], "--rate"),
        (vec!["ws://127.0.0.1:9/", "--in-flight", "0"], "--in-flight"),
        (
            vec!["ws://127.0.0.1:9/", "--in-flight", "4", "--rate", "10"],
            "--in-flight",
        ),
        (vec!["ftp://x"], "unsupported scheme"),
    ] {
        let output = Command::cargo_bin("wscheck")
            .unwrap()
            .arg("load")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
