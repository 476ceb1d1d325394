//! The binary as users run it: exit codes, usage errors, help.

use assert_cmd::Command;
use wscheck_testkit::fixtures;

use crate::support::{HOST, closed_port};

fn wscheck() -> Command {
    let mut cmd = Command::cargo_bin("wscheck").unwrap();
    // Wide enough that no line wraps: these tests read content; output.rs checks layout.
    cmd.env("NO_COLOR", "1")
        .env("COLUMNS", "200")
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    let too_long = format!("{}wscheck.test", "abcdefghi.".repeat(25));
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
        (
            vec!["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.wscheck.test"],
            "has 64 characters; DNS allows at most 63",
        ),
        (vec![&too_long], "DNS allows at most 253"),
        (
            vec!["wss://user:s3cret-pw@app.wscheck.test:0/"],
            "wss://[redacted]@app.wscheck.test:0/",
        ),
        (
            vec![
                "app.wscheck.test",
                "-H",
                "Authorization Bearer s3cret-token",
            ],
            "--header",
        ),
    ] {
        let output = wscheck().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(!stderr.contains("panicked"));
        if stderr.starts_with("wscheck:") {
            // Our own errors are one line; clap's add a usage hint.
            assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        }
        assert!(!stderr.contains("s3cret"), "no secret in errors: {stderr}");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let output = wscheck().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("EXIT CODES"), "{help}");
    assert!(help.contains("0  what you asked about works end to end"));
    assert!(
        help.contains("TARGET itself for a URL, the canonical wss://<route><path> for a route")
    );
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
    // The route is shown once, in the header; rows name scheme and port.
    assert!(
        stdout.starts_with("wscheck 0.1.0 · wscheck-demo.apps.wscheck.test · 8 URLs"),
        "{stdout}"
    );
    assert!(row("wss").contains("┆ ok "), "{stdout}");
    assert!(row("ws:8080").contains("connect_refused"), "{stdout}");
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

/// The exit code answers for what was asked: a route whose wss:// is broken fails even
/// when plain ws:// works, and the report names ws:// as a plaintext fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_wss_route_exits_1_and_names_plain_ws_as_a_plaintext_fallback() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let ca = wscheck_testkit::pki::TestCa::new("wscheck test CA").unwrap();
    let dir = wscheck_testkit::tempdir("ca").unwrap();
    let cacert = ca.write(&dir).unwrap();
    let expired = ca.expired_leaf(&[HOST]).unwrap();
    let acceptor = fixtures::tls_acceptor(&expired, &ca).unwrap();
    let front = fixtures::start_tls_front(app.addr, acceptor).await.unwrap();
    let nowhere = closed_port();
    let run = |target: &str, format: &str| {
        let output = wscheck()
            .args([target, "--format", format, "--cacert"])
            .arg(&cacert)
            .args(["--connect-to", &format!(":443:{}", front.addr)])
            .args(["--connect-to", &format!(":80:{}", app.addr)])
            .args(["--connect-to", &format!("::{nowhere}")])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    let (code, stdout) = run(HOST, "json");
    assert_eq!(code, Some(1), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let verdict = &json["verdict"];
    assert_eq!(verdict["ok"], false, "{verdict:#}");
    assert_eq!(verdict["asked_url"], format!("wss://{HOST}/"));
    assert_eq!(verdict["recommended_url"], format!("ws://{HOST}/"));
    assert_eq!(verdict["fallback"], true);
    let summary = verdict["summary"].as_str().unwrap();
    assert!(
        summary.contains("tls_cert_expired") && summary.contains("plaintext"),
        "{summary}"
    );

    let (code, stdout) = run(HOST, "table");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Verdict: FAIL — wss://{HOST}/ fails: The server's certificate is expired"
        )) && stdout.contains(&format!(
            "fallback: ws://{HOST}/ works, but unencrypted (plaintext ws://)"
        )),
        "{stdout}"
    );

    // Asking for the plaintext URL itself: it works (exit 0), and the verdict says what it is.
    let (code, stdout) = run(&format!("ws://{HOST}/"), "table");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Verdict: use ws://{HOST}/ — it works, but unencrypted (plaintext ws://)"
        )),
        "{stdout}"
    );
    // Asking for wss:// with a port: that URL is what fails.
    let (code, stdout) = run(&format!("wss://{HOST}:443/"), "json");
    assert_eq!(code, Some(1), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["verdict"]["asked_url"], format!("wss://{HOST}:443/"));
}

/// `wscheck app` refuses what it cannot run with exit 2 and one line that says what to do:
/// no folder, an unreadable manifest, no start command (naming what package.json would run).
#[test]
fn app_without_a_way_to_start_the_app_says_how_to_give_one() {
    let dir = wscheck_testkit::tempdir("app-no-command").unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"chat","scripts":{"start":"node index.js"}}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = wscheck().arg("app").args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let folder = dir.to_str().unwrap();
    let (code, stderr) = run(&[folder]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no start command")
            && stderr.contains("-- node server.js")
            && stderr.contains(
                "package.json's start script, which the Node buildpack runs, is `node index.js`"
            ),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");

    let (code, stderr) = run(&["/nonexistent/app"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("/nonexistent/app: no such folder"),
        "{stderr}"
    );

    std::fs::write(
        dir.join("manifest.yml"),
        "applications:\n- name: a\n- name: b\n",
    )
    .unwrap();
    let (code, stderr) = run(&[folder]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("pick one with --app NAME (a, b)"),
        "{stderr}"
    );
}
