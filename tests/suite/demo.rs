//! `wscheck demo` and its scenarios: the healthy route, and the failures a newcomer should
//! see before meeting them (an Upgrade-stripping router, an app that is down).

use assert_cmd::Command;
use serde_json::Value;

const ROUTE: &str = "wscheck-demo.apps.wscheck.test";

/// Runs `wscheck demo --scenario SCENARIO --format FORMAT`: exit code and stdout.
fn demo(scenario: &str, format: &str) -> (Option<i32>, String) {
    let output = Command::cargo_bin("wscheck")
        .unwrap()
        .env("NO_COLOR", "1")
        // Wide enough that no explanation wraps: these tests read content, not layout.
        .env("COLUMNS", "200")
        .env_remove("RUST_LOG")
        .args(["demo", "--scenario", scenario, "--format", format])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{output:?}"
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn demo_json(scenario: &str) -> (Option<i32>, Value) {
    let (code, stdout) = demo(scenario, "json");
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, json)
}

/// The probe of `url` in a JSON report.
fn probe<'a>(json: &'a Value, url: &str) -> &'a Value {
    json["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"] == url)
        .unwrap_or_else(|| panic!("no probe of {url}: {json:#}"))
}

/// A response header of a probe (the report keeps them as `[name, value]` pairs).
fn response_header<'a>(probe: &'a Value, name: &str) -> Option<&'a str> {
    probe["response"]["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|h| h[1].as_str())
}

/// The table row of `url` (`wss`, `ws:8080`: the route is shown once, in the header).
fn row<'a>(table: &'a str, url: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("│ {url} ")))
        .unwrap_or_else(|| panic!("no row for {url}: {table}"))
}

/// `8-4-4-4-12` lowercase hex digits, as gorouter's `X-Vcap-Request-Id`.
fn is_dashed_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The port-less and `:443`/`:80` URLs: the four that reach the router.
fn routed_urls() -> [String; 4] {
    [
        format!("wss://{ROUTE}/"),
        format!("wss://{ROUTE}:443/"),
        format!("ws://{ROUTE}/"),
        format!("ws://{ROUTE}:80/"),
    ]
}

#[test]
fn healthy_demo_exits_0_and_the_app_sees_gorouters_headers() {
    let (code, json) = demo_json("healthy");
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["verdict"]["ok"], true);
    for url in routed_urls() {
        let probe = probe(&json, &url);
        assert_eq!(probe["diagnosis"]["code"], "ok", "{probe:#}");
        assert_eq!(probe["http_status"], 101, "{probe:#}");
        // Gorouter marks every response, the 101 included.
        let id = response_header(probe, "x-vcap-request-id").unwrap_or_default();
        assert!(is_dashed_uuid(id), "{url}: X-Vcap-Request-Id {id:?}");
    }
    let forwarded: Vec<(&str, &str)> = json["app"]["forwarded_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["value"].as_str().unwrap()))
        .collect();
    let value = |name: &str| forwarded.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(value("X-Cf-Instanceindex"), Some("0"), "{forwarded:?}");
    assert_eq!(value("X-Forwarded-Proto"), Some("https"), "{forwarded:?}");
    assert_eq!(value("X-Forwarded-For"), Some("127.0.0.1"), "{forwarded:?}");
    assert!(value("X-Cf-Applicationid").is_some_and(is_dashed_uuid));
    assert!(value("X-Cf-Instanceid").is_some_and(is_dashed_uuid));
    assert!(value("X-Vcap-Request-Id").is_some_and(is_dashed_uuid));
    assert!(
        value("X-Request-Start").is_some_and(|v| v.len() >= 13 && v.parse::<u64>().is_ok()),
        "integer milliseconds: {forwarded:?}"
    );
    let reached = json["app"]["info"]["request"]["headers"].to_string();
    assert!(
        !reached.to_ascii_lowercase().contains("x-forwarded-host"),
        "{reached}"
    );
    let note = json["notes"][0].as_str().unwrap();
    assert!(
        note.contains("`wscheck demo --scenario upgrade-stripped` / `--scenario app-down`"),
        "{note}"
    );

    let (code, table) = demo("healthy", "table");
    assert_eq!(code, Some(0), "{table}");
    assert!(row(&table, "wss").contains("┆ ok "));
    assert!(table.contains("  X-Cf-Instanceindex: 0\n"), "{table}");
    let id_line = table
        .lines()
        .find_map(|l| l.trim().strip_prefix("X-Vcap-Request-Id: "))
        .unwrap_or_default();
    assert!(is_dashed_uuid(id_line), "{table}");
    assert!(!table.contains("X-Forwarded-Host"), "{table}");
    assert!(table.contains("to see failures."), "{table}");
}

#[test]
fn upgrade_stripped_demo_shows_the_apps_426_and_exits_1() {
    let (code, json) = demo_json("upgrade-stripped");
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["verdict"]["ok"], false);
    assert!(json["verdict"]["recommended_url"].is_null(), "{json:#}");
    for url in routed_urls() {
        let probe = probe(&json, &url);
        assert_eq!(probe["http_status"], 426, "{probe:#}");
        let diagnosis = &probe["diagnosis"];
        assert_eq!(diagnosis["code"], "upgrade_header_stripped", "{probe:#}");
        assert_eq!(diagnosis["answered_by"], "bundled_server", "{probe:#}");
        assert!(
            response_header(probe, "x-vcap-request-id").is_some_and(is_dashed_uuid),
            "the router relays the app's answer with its request id: {probe:#}"
        );
    }
    assert!(json["app"].is_null(), "no WebSocket opened: {json:#}");
    let note = json["notes"][0].as_str().unwrap();
    assert!(
        note.contains("broken on purpose") && note.contains("drops the hop-by-hop Upgrade"),
        "{note}"
    );

    let (code, table) = demo("upgrade-stripped", "table");
    assert_eq!(code, Some(1), "{table}");
    let wss = row(&table, "wss");
    assert!(
        wss.contains("FAIL") && wss.contains("426") && wss.contains("upgrade_header_stripped"),
        "{wss}"
    );
    assert!(
        table.contains("detail:   HTTP 426 Upgrade Required"),
        "{table}"
    );
    assert!(table.contains("Verdict: FAIL"), "{table}");
    assert!(
        table.contains("Note: demo --scenario upgrade-stripped, broken on purpose"),
        "{table}"
    );
}

#[test]
fn app_down_demo_shows_gorouters_502_and_exits_1() {
    let (code, json) = demo_json("app-down");
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["verdict"]["ok"], false);
    for url in routed_urls() {
        let probe = probe(&json, &url);
        assert_eq!(probe["http_status"], 502, "{probe:#}");
        let diagnosis = &probe["diagnosis"];
        assert_eq!(diagnosis["code"], "app_unreachable", "{probe:#}");
        assert_eq!(diagnosis["answered_by"], "gorouter", "{probe:#}");
        let detail = diagnosis["detail"].as_str().unwrap();
        assert!(
            detail.contains("X-Cf-Routererror: endpoint_failure (dial tcp 127.0.0.1:")
                && detail.contains(": connect: connection refused)"),
            "{detail}"
        );
        // Gorouter's error reply, byte for byte where it matters.
        assert_eq!(
            probe["response"]["body"],
            "502 Bad Gateway: Registered endpoint failed to handle the request.\n"
        );
        assert_eq!(
            response_header(probe, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            response_header(probe, "x-content-type-options"),
            Some("nosniff")
        );
    }
    let note = json["notes"][0].as_str().unwrap();
    assert!(
        note.contains("broken on purpose") && note.contains("the app is not running"),
        "{note}"
    );

    let (code, table) = demo("app-down", "table");
    assert_eq!(code, Some(1), "{table}");
    let wss = row(&table, "wss");
    assert!(
        wss.contains("FAIL") && wss.contains("502") && wss.contains("app_unreachable"),
        "{wss}"
    );
    assert!(
        table.contains("X-Cf-Routererror: endpoint_failure (dial tcp 127.0.0.1:"),
        "{table}"
    );
    assert!(
        table.contains("answered: the Cloud Foundry router (gorouter)"),
        "{table}"
    );
    assert!(table.contains("Verdict: FAIL"), "{table}");
}

#[test]
fn an_unknown_scenario_is_a_usage_error_naming_the_scenarios() {
    let output = Command::cargo_bin("wscheck")
        .unwrap()
        .args(["demo", "--scenario", "nope"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["healthy", "upgrade-stripped", "app-down"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(output.stdout.is_empty());
}
