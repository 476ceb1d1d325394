//! The JSON contracts as JSON Schemas: `schema/*.schema.json` are generated from the report
//! types (`WSCHECK_UPDATE_SCHEMA=1 cargo test --test suite schemas` rewrites them), and real
//! reports of each kind (route, load, app; healthy and failing, with deep checks) validate
//! against them, also with every object closed to fields the schema does not name.

use assert_cmd::Command;
use serde_json::Value;
use wscheck::report::json;
use wscheck_testkit::{ensure_node_modules, fixtures, repo_root};

use crate::support::{args, check, closed_port};

/// The committed schema `name` (under `schema/`).
fn committed(name: &str) -> Value {
    let path = repo_root().join("schema").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_schemas_match_the_types() {
    let dir = repo_root().join("schema");
    for (name, schema) in json::schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(name);
        if std::env::var_os("WSCHECK_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "schema/{name} differs from the types: run WSCHECK_UPDATE_SCHEMA=1 cargo test --test suite schemas"
        );
    }
}

/// Every object schema that names its properties and says nothing of others refuses others.
fn closed(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(closed);
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// Asserts that `document` is valid against the committed schema `name`, as committed and
/// closed (no field the schema does not describe).
fn assert_valid(name: &str, document: &Value) {
    let open = committed(name);
    let mut strict = open.clone();
    closed(&mut strict);
    for schema in [open, strict] {
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("schema/{name} is not a valid schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(document)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{document:#}");
    }
}

#[test]
fn the_schemas_refuse_a_wrong_document() {
    let mut report = committed("route-report.schema.json");
    closed(&mut report);
    let validator = jsonschema::validator_for(&report).unwrap();
    assert!(!validator.is_valid(&serde_json::json!({"schema_version": 1})));
    let load = jsonschema::validator_for(&committed("load-report.schema.json")).unwrap();
    assert!(!validator.is_valid(&serde_json::json!({"kind": "app"})));
    assert!(!load.is_valid(&serde_json::json!({"schema_version": 1, "kind": "app"})));
}

/// `wscheck ARGS --format json` run as a user runs it: exit code and the document.
fn wscheck_json(args: &[&str]) -> (Option<i32>, Value) {
    let node_path = ensure_node_modules().expect("tests/node/node_modules");
    let output = Command::cargo_bin("wscheck")
        .unwrap()
        .current_dir(repo_root())
        .env("NODE_PATH", node_path)
        .env_remove("RUST_LOG")
        .args(args)
        .args(["--format", "json"])
        .timeout(std::time::Duration::from_secs(180))
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stderr));
    });
    (output.status.code(), json)
}

/// A report built in-process, written by the one JSON writer.
fn written(report: &wscheck::report::Report) -> Value {
    let mut out = Vec::new();
    json::write(report, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn demo_route_reports_validate() {
    for scenario in ["healthy", "upgrade-stripped", "app-down"] {
        let (code, json) = wscheck_json(&["demo", "--scenario", scenario]);
        assert!(matches!(code, Some(0 | 1)), "{scenario}: {json:#}");
        assert!(!json["probes"].as_array().unwrap().is_empty());
        assert_valid("route-report.schema.json", &json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_reports_with_deep_checks_and_failures_validate() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    // The bundled server: ws works, wss to its plain port fails, with deep checks.
    let mut a = args(&format!("ws://{}/", app.addr));
    a.set("--count", "5")
        .set("--sizes", "1KiB,64KiB")
        .set("--hold", "1s")
        .set("--connections", "2");
    let report = written(&check(&a).await);
    assert_eq!(report["verdict"]["ok"], true, "{report:#}");
    assert!(report["deep"]["latency"].is_object(), "{report:#}");
    assert!(report["app"].is_object(), "{report:#}");
    assert_valid("route-report.schema.json", &report);
    // Nothing listens: every probe fails at connect.
    let refused = closed_port();
    let report = written(&check(&args(&format!("ws://{refused}/"))).await);
    assert_eq!(report["verdict"]["ok"], false, "{report:#}");
    assert_valid("route-report.schema.json", &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_validate() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let url = format!("ws://{}/", app.addr);
    let common = ["--connections", "4", "--duration", "1s"];
    let (code, json) = tokio::task::spawn_blocking(move || {
        let mut argv = vec!["load", url.as_str()];
        argv.extend(common);
        wscheck_json(&argv)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{json:#}");
    assert_valid("load-report.schema.json", &json);
    let url = format!("ws://{}/", closed_port());
    let (code, json) = tokio::task::spawn_blocking(move || {
        let mut argv = vec!["load", url.as_str()];
        argv.extend(common);
        wscheck_json(&argv)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{json:#}");
    assert_valid("load-report.schema.json", &json);
}

#[test]
fn app_reports_validate() {
    let (code, json) = wscheck_json(&["app", "tests/apps/express-shared", "--path", "/ws"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert!(json["websocket"]["via_router"].is_object(), "{json:#}");
    assert_valid("app-report.schema.json", &json);
    let (code, json) = wscheck_json(&["app", "tests/apps/eaddrinuse"]);
    assert_eq!(code, Some(1), "{json:#}");
    assert!(json["process"]["exit"].is_object(), "{json:#}");
    assert_valid("app-report.schema.json", &json);
}
