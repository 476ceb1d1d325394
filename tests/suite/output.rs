//! Output formats: the JSON contract, Markdown for tickets (redaction, command line,
//! network path options, identical handshakes once), the table snapshot and its fit in
//! the terminal's width.

use clap::Parser;
use serde::Deserialize;
use wscheck::cli::{Cli, to_plan};
use wscheck::plan::{EnvProxy, EnvValue};
use wscheck::report::Format;
use wscheck::report::{self, Report, Style, redact};
use wscheck_testkit::fixtures;

use crate::support::{Args, HOST, args, check, closed_port};

/// The JSON contract: these fields exist with these types; `deny_unknown_fields` on the
/// top level, the verdict and the diagnosis makes any change deliberate.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReport {
    schema_version: u32,
    tool: serde_json::Value,
    generated_at: String,
    target: JsonTarget,
    command: Option<String>,
    path_options: Vec<String>,
    verdict: JsonVerdict,
    probes: Vec<JsonProbe>,
    app: Option<serde_json::Value>,
    deep: Option<serde_json::Value>,
    notes: Vec<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTarget {
    input: String,
    host: String,
    path: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonVerdict {
    ok: bool,
    asked_url: String,
    healthy: bool,
    recommended_url: Option<String>,
    fallback: bool,
    canonical_url: String,
    summary: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct JsonProbe {
    url: String,
    ok: bool,
    stage: String,
    http_status: Option<u16>,
    diagnosis: JsonDiagnosis,
    timings_ms: JsonTimings,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDiagnosis {
    code: String,
    summary: String,
    fix: String,
    detail: String,
    answered_by: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTimings {
    dns: Option<f64>,
    connect: Option<f64>,
    proxy: Option<f64>,
    tls: Option<f64>,
    upgrade: Option<f64>,
    echo: Option<f64>,
    protocol: Option<f64>,
    total: f64,
}

fn render(report: &Report, format: Format) -> String {
    let mut out = Vec::new();
    report::render(report, format, &Style::default(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_keeps_its_contract() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let refused = closed_port();
    let mut a = args(HOST);
    a.set_all(
        "--connect-to",
        vec![
            format!(":80:{}:{}", app.addr.ip(), app.addr.port()),
            format!("::{}:{}", refused.ip(), refused.port()),
        ],
    );
    let report = check(&a).await;
    let text = render(&report, Format::Json);
    let json: JsonReport = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(json.schema_version, 1);
    assert_eq!(json.command, None, "built in-process: no command line");
    assert_eq!(
        json.path_options,
        [
            format!("--connect-to :80:{}:{}", app.addr.ip(), app.addr.port()),
            format!("--connect-to ::{}:{}", refused.ip(), refused.port()),
        ]
    );
    assert_eq!(json.probes.len(), 8);
    assert!(
        !json.verdict.ok,
        "the canonical wss://host asked about does not work here"
    );
    assert_eq!(json.verdict.asked_url, format!("wss://{HOST}/"));
    assert!(json.verdict.fallback, "ws://host works, as a fallback");
    assert!(!json.verdict.healthy, "wss://host does not work here");
    assert_eq!(
        json.verdict.recommended_url.as_deref(),
        Some(format!("ws://{HOST}/").as_str())
    );
    assert_eq!(json.verdict.canonical_url, format!("wss://{HOST}/"));
    let first = &json.probes[0];
    assert_eq!(first.url, format!("wss://{HOST}/"));
    assert_eq!(
        (
            first.ok,
            first.stage.as_str(),
            first.diagnosis.code.as_str()
        ),
        (false, "connect", "connect_refused")
    );
    let ws = json
        .probes
        .iter()
        .find(|p| p.url == format!("ws://{HOST}/"))
        .unwrap();
    assert_eq!(
        (ws.ok, ws.http_status, ws.diagnosis.code.as_str()),
        (true, Some(101), "ok")
    );
    assert!(
        ws.timings_ms.upgrade.is_some()
            && ws.timings_ms.echo.is_some()
            && ws.timings_ms.tls.is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_is_ready_for_a_ticket_and_redacts_secrets() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut a = args(&format!(
        "ws://user:s3cr3t-pw@{HOST}/socket?room=7&access_token=s3cr3t-token"
    ));
    a.switch("--only");
    a.switch("--allow-plaintext-credentials");
    a.set_all(
        "--header",
        [
            "Authorization: Bearer s3cr3t-bearer",
            "Cookie: JSESSIONID=s3cr3t-cookie",
            "X-Api-Key: s3cr3t-key",
        ],
    );
    a.set_all(
        "--connect-to",
        vec![format!("::{}:{}", app.addr.ip(), app.addr.port())],
    );
    let mut report = check(&a).await;
    assert!(report.verdict.ok, "{report:#?}");
    // As the binary does with its own command line.
    report.command = Some(redact::command_line(&a.argv()));
    let markdown = render(&report, Format::Markdown);
    for format in [Format::Markdown, Format::Json, Format::Table] {
        let text = render(&report, format);
        assert!(
            !text.contains("s3cr3t"),
            "{format:?} leaks a secret:\n{text}"
        );
    }
    assert!(markdown.starts_with("### WebSocket check: "));
    assert!(markdown.contains(&format!("wscheck {}", env!("CARGO_PKG_VERSION"))));
    assert!(markdown.contains("- **Time (UTC):** "));
    assert!(markdown.contains("| URL | Result | Stage | HTTP | Time | Code |"));
    assert!(markdown.contains("access_token=[redacted]") && markdown.contains("room=7"));
    assert!(
        markdown.contains(&format!(
            "- **Command:** `wscheck 'ws://[redacted]@{HOST}/socket?room=7&access_token=[redacted]' "
        )) && markdown.contains(
            " --header 'Authorization: [redacted]' --header 'Cookie: [redacted]' \
             --header 'X-Api-Key: [redacted]' --connect-to ::127.0.0.1:"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!(
            "- **Network path options:** `--connect-to ::{}:{}`\n",
            app.addr.ip(),
            app.addr.port()
        )),
        "{markdown}"
    );
    assert!(
        markdown
            .to_ascii_lowercase()
            .contains("authorization: [redacted]"),
        "{markdown}"
    );
    // What reached the app is redacted too.
    let app_view = report.app.as_ref().unwrap();
    assert!(
        app_view
            .info
            .request
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("cookie") && h.value == "[redacted]")
    );
}

/// Makes a report's volatile parts (timings, time, ports, ids) fixed for a snapshot.
fn stabilise(report: &mut Report) {
    report.generated_at = "2026-01-01T00:00:00Z".into();
    for probe in &mut report.probes {
        probe.result.timings.total = 12.0;
        if let Some(echo) = &mut probe.result.echo {
            echo.rtt_ms = Some(1.0);
        }
        probe.diagnosis.detail = probe
            .diagnosis
            .detail
            .replace("echo round trip", "echo rtt");
    }
    report.app = None;
    report.verdict.summary = report
        .verdict
        .summary
        .split(" (")
        .next()
        .unwrap_or_default()
        .to_owned();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_snapshot() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let refused = closed_port();
    let unknown = fixtures::start(fixtures::Behaviour::Respond(fixtures::http_response(
        404,
        "Not Found",
        &[("X-Cf-Routererror", "unknown_route")],
        "404 Not Found: Requested route ('app.wscheck.test') does not exist.",
    )))
    .await
    .unwrap();
    let mut a = args(HOST);
    a.set_all(
        "--connect-to",
        vec![
            format!(":80:{}:{}", app.addr.ip(), app.addr.port()),
            format!(":4443:{}:{}", unknown.addr.ip(), unknown.addr.port()),
            format!("::{}:{}", refused.ip(), refused.port()),
        ],
    );
    let mut report = check(&a).await;
    stabilise(&mut report);
    report.command = Some(redact::command_line(&a.argv()));
    let text = render(&report, Format::Table);
    let markdown = render(&report, Format::Markdown);
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"(?i)(sec-websocket-(key|accept)): \S+", "$1: [random]"),
    ]}, {
        insta::assert_snapshot!(text);
        insta::assert_snapshot!("markdown_snapshot", markdown);
    });
}

/// The plan the binary would make of `a` with `env` as its proxy environment, checked.
async fn check_with_env(a: &Args, env: &EnvProxy) -> Report {
    let cli = Cli::try_parse_from(a.argv()).unwrap_or_else(|e| panic!("{e}"));
    let plan = to_plan::check_plan(&cli.check, env).expect("valid plan");
    wscheck::check(&plan).await.expect("check runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_options_name_a_proxy_and_its_source_but_never_its_credentials() {
    // Every probe goes to the proxy, which refuses: nothing leaves loopback.
    let proxy = closed_port();
    let mut a = args(HOST);
    a.set("--schemes", "wss")
        .switch("-k")
        .add("--connect-to", ":443:[::1]:8443")
        .add("--resolve", format!("{HOST}:443:127.0.0.1"));
    let env = EnvProxy {
        wss: Some(EnvValue {
            name: "https_proxy",
            value: format!("http://proxy-user:s3cr3t-pw@{proxy}"),
        }),
        ..EnvProxy::default()
    };
    let report = check_with_env(&a, &env).await;
    assert_eq!(
        report.path_options,
        [
            "--connect-to :443:[::1]:8443".to_owned(),
            format!("--resolve {HOST}:443:127.0.0.1"),
            format!("-x {proxy} (from https_proxy, with credentials, wss:// only)"),
            "-k".to_owned(),
        ]
    );
    for format in [Format::Markdown, Format::Json, Format::Table] {
        let text = render(&report, format);
        assert!(!text.contains("s3cr3t"), "{format:?} leaks:\n{text}");
    }

    // `-x` serves both schemes: one entry; a loopback target goes direct, and says so.
    let refused = closed_port();
    let mut a = args("127.0.0.1");
    a.set("--proxy", format!("http://u:s3cr3t-pw@{proxy}")).add(
        "--connect-to",
        format!("::{}:{}", refused.ip(), refused.port()),
    );
    let report = check_with_env(&a, &EnvProxy::default()).await;
    assert_eq!(
        report.path_options[1..],
        [format!(
            "-x {proxy} (with credentials, not used: the host is loopback or in no_proxy)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_shows_identical_handshakes_once_with_the_urls_that_sent_them() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut a = args(HOST);
    a.set("--schemes", "ws").add(
        "--connect-to",
        format!("::{}:{}", app.addr.ip(), app.addr.port()),
    );
    let report = check(&a).await;
    assert_eq!(report.probes.len(), 4, "{report:#?}");
    let markdown = render(&report, Format::Markdown);
    let handshakes = markdown
        .split("<summary>Handshakes</summary>")
        .nth(1)
        .unwrap_or_else(|| panic!("{markdown}"));
    // ws:// and ws://:80 send the same Host and Origin; :8080 and :4443 name their port.
    assert_eq!(handshakes.matches("```http").count(), 3, "{handshakes}");
    for urls in [
        format!("`ws://{HOST}/`, `ws://{HOST}:80/`"),
        format!("`ws://{HOST}:8080/`"),
        format!("`ws://{HOST}:4443/`"),
    ] {
        assert!(
            handshakes.contains(&format!("\n{urls}\n\n```http\n")),
            "{urls}: {handshakes}"
        );
    }
}

/// A route with a long name and every kind of explanation, at two widths: no line is
/// wider than the width but one made of a single word longer than it (a URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_report_fits_the_terminal_width() {
    const ROUTE: &str = "my-fairly-long-app-name.cfapps.eu10-004.hana.ondemand.com";
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let refused = closed_port();
    let cut = fixtures::start(fixtures::Behaviour::CloseOnFirstBytes)
        .await
        .unwrap();
    let router = fixtures::start(fixtures::Behaviour::Respond(fixtures::http_response(
        502,
        "Bad Gateway",
        &[(
            "X-Cf-Routererror",
            "endpoint_failure (dial tcp 10.0.137.12:61001: connect: connection refused)",
        )],
        "502 Bad Gateway: Registered endpoint failed to handle the request.\n",
    )))
    .await
    .unwrap();
    let mut a = args(&format!("{ROUTE}/ws"));
    a.set("--connect-timeout", "1s")
        .set("--count", "2")
        .switch("-k");
    a.set_all(
        "--connect-to",
        [
            format!(":80:{}", app.addr),
            format!(":443:{}", cut.addr),
            format!(":4443:{}", router.addr),
            format!("::{refused}"),
        ],
    );
    let report = check(&a).await;
    assert_eq!(report.probes.len(), 8);
    assert!(report.failures().len() >= 3, "{report:#?}");
    for width in [80, 60] {
        let style = Style {
            width,
            ..Style::default()
        };
        let mut out = Vec::new();
        report::render(&report, Format::Table, &style, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            let chars = line.chars().count();
            assert!(
                chars <= width || !line.contains(char::is_whitespace),
                "{chars} > {width} chars: {line:?}\n{text}"
            );
        }
        // The route, in the header (at 60 columns on a line of its own), not in the rows.
        let (header, rest) = text.split_once('┌').unwrap();
        assert!(header.starts_with("wscheck "), "{text}");
        assert!(header.contains(&format!("{ROUTE}/ws")), "{text}");
        assert!(
            !rest.split("\nWhy:").next().unwrap().contains(ROUTE),
            "{text}"
        );
        for row in ["wss", "wss:443", "ws", "ws:80", "wss:8080", "ws:4443"] {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("│ {row} "))),
                "no row {row}:\n{text}"
            );
        }
        assert!(text.contains("Deep checks over"), "{text}");
        assert!(text.contains("\nNote: "), "{text}");
    }
}

/// A verdict that names two URLs (the one asked about works, the canonical one fails)
/// has both queries redacted, not only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_of_the_verdict_is_redacted() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut a = args(&format!("ws://{HOST}/chat?access_token=s3cr3t-token"));
    a.add("--connect-to", format!("::{}", app.addr));
    let report = check(&a).await;
    assert!(
        report.verdict.summary.contains("but the canonical wss://"),
        "{report:#?}"
    );
    for format in [Format::Markdown, Format::Json, Format::Table] {
        let text = render(&report, format);
        assert!(!text.contains("s3cr3t"), "{format:?} leaks:\n{text}");
    }
}
