//! Output formats: the JSON contract, Markdown redaction, the table snapshot.

use serde::Deserialize;
use wscheck::report::Format;
use wscheck::report::{self, Report, Style};
use wscheck_testkit::fixtures;

use crate::support::{HOST, args, check, closed_port};

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
    healthy: bool,
    recommended_url: Option<String>,
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
    assert_eq!(json.probes.len(), 8);
    assert!(json.verdict.ok);
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
        "ws://{HOST}/socket?room=7&access_token=s3cr3t-token"
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
    let report = check(&a).await;
    assert!(report.verdict.ok, "{report:#?}");
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
    let text = render(&report, Format::Table);
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    ]}, {
        insta::assert_snapshot!(text);
    });
}
