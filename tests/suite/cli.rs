//! The binary as users run it: exit codes, usage errors, help.

use assert_cmd::Command;
use wscheck_testkit::fixtures;

use crate::support::{HOST, closed_port};

fn wscheck() -> Command {
    let mut cmd = Command::cargo_bin("wscheck").unwrap();
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    for (args, needle) in [
        (vec!["ftp://app.wscheck.test"], "unsupported scheme 'ftp'"),
        (vec!["app.wscheck.test:0"], "port '0'"),
        (vec!["app.wscheck.test", "--ports", "http"], "--ports"),
        (
            vec!["app.wscheck.test", "--connect-to", "nonsense"],
            "--connect-to",
        ),
        (vec!["app.wscheck.test", "--timeout", "soon"], "--timeout"),
        (
            vec!["app.wscheck.test", "--cacert", "/nonexistent/ca.pem"],
            "--cacert /nonexistent/ca.pem",
        ),
        (vec![], "missing TARGET"),
    ] {
        let output = wscheck().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = wscheck().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("EXIT CODES"), "{help}");
    assert!(help.contains("0  the recommended URL works end to end"));
    assert!(help.contains("--connect-to <HOST1:PORT1:HOST2:PORT2>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_0_when_the_route_works_and_1_when_nothing_does() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let to_app = format!("::{}:{}", app.addr.ip(), app.addr.port());
    let output = wscheck()
        .args([&format!("ws://{HOST}/"), "--only", "--connect-to", &to_app])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Verdict: use ws://app.wscheck.test/"),
        "{stdout}"
    );

    let nowhere = closed_port();
    let output = wscheck()
        .args([
            HOST,
            "--connect-to",
            &format!("::{}:{}", nowhere.ip(), nowhere.port()),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["verdict"]["ok"], false);
    assert_eq!(json["probes"].as_array().unwrap().len(), 8);
}

#[test]
fn demo_shows_a_healthy_route_and_the_failing_ports() {
    let output = wscheck().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let row = |url: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("│ {url} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("wss://wscheck-demo.apps.wscheck.test/").contains("┆ ok "),
        "{stdout}"
    );
    assert!(
        row("ws://wscheck-demo.apps.wscheck.test:8080/").contains("connect_refused"),
        "{stdout}"
    );
    assert!(stdout.contains("connect_refused"), "{stdout}");
    assert!(stdout.contains("X-Forwarded-Proto: https"), "{stdout}");
    assert!(
        stdout
            .contains("Verdict: use wss://wscheck-demo.apps.wscheck.test/ — the route is healthy"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_prints_each_handshake_and_resolve_pins_addresses() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let port = app.addr.port();
    let url = format!("ws://{HOST}:{port}/chat?token=s3cr3t-tok");
    let output = wscheck()
        .args([
            &url,
            "--only",
            "-v",
            "--resolve",
            &format!("{HOST}:{port}:127.0.0.1"),
            "-H",
            "Authorization: Bearer s3cr3t-bearer",
            "--allow-plaintext-credentials",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Handshakes:"), "{stdout}");
    assert!(
        stdout.contains("> GET /chat?token=[redacted] HTTP/1.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("> Host: {HOST}:{port}")),
        "{stdout}"
    );
    assert!(stdout.contains("> authorization: [redacted]"), "{stdout}");
    assert!(
        stdout.contains("< HTTP/1.1 101 Switching Protocols"),
        "{stdout}"
    );
    assert!(stdout.contains("< x-wscheck-server: "), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}
