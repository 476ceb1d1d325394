//! `wscheck app`: real apps of `tests/apps` (the article's Node server, Flask with
//! Flask-Sock, Express with `ws`, the SAP approuter, the bundled server) run from their own
//! `manifest.yml` the way Cloud Foundry runs them, checked, stopped, and reported on.
//! Node apps find `ws`, `express` and `@sap/approuter` through `NODE_PATH`
//! (`tests/node/node_modules`); Python apps run in `tests/python/.venv`, first on `PATH`.

use std::path::PathBuf;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use wscheck_testkit::{ensure_node_modules, python_venv, repo_root};

/// What a run of `wscheck app` gave: exit code, stdout, stderr (the app's output, prefixed).
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `wscheck app ARGS` from the workspace root, with `NODE_PATH` set and, for Python
/// apps, the venv's `bin` first on `PATH`, as a user with both installed would.
fn wscheck_app(args: &[&str], python: bool, columns: u16) -> Run {
    let node_path = ensure_node_modules().expect("tests/node/node_modules");
    let mut path: Vec<PathBuf> = Vec::new();
    if python {
        path.push(python_venv().expect("tests/python/.venv"));
    }
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let output = Command::cargo_bin("wscheck")
        .unwrap()
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env("COLUMNS", columns.to_string())
        .env("NODE_PATH", node_path)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("RUST_LOG")
        .arg("app")
        .args(args)
        .timeout(std::time::Duration::from_secs(180))
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "wscheck panicked:\n{}",
        run.stderr
    );
    run
}

/// `wscheck app tests/apps/NAME [EXTRA] --format json`: exit code and the checked document.
fn app_json(name: &str, extra: &[&str], python: bool) -> (Option<i32>, Value) {
    app_json_in(&format!("tests/apps/{name}"), extra, python)
}

/// `wscheck app DIR ... --format json` for an app folder anywhere in the repository.
fn app_json_in(dir: &str, extra: &[&str], python: bool) -> (Option<i32>, Value) {
    let mut args = vec![dir];
    args.extend(extra);
    args.extend(["--format", "json"]);
    let run = wscheck_app(&args, python, 200);
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}; exit {:?}\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        )
    });
    check_contract(&json, run.code);
    check_manifest(&json, &repo_root().join(dir).join("manifest.yml"));
    (run.code, json)
}

/// The parts of the app report every run has, with their types.
fn check_contract(json: &Value, code: Option<i32>) {
    assert_eq!(json["schema_version"], 1, "{json:#}");
    assert_eq!(json["kind"], "app", "{json:#}");
    let ok = json["ok"].as_bool().expect("ok is a bool");
    assert_eq!(ok, code == Some(0), "ok ⇔ exit 0 (exit {code:?}): {json:#}");
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {json:#}");

    let manifest = &json["manifest"];
    assert!(manifest["file"].is_string() || manifest["file"].is_null());
    for key in ["name", "command", "health_check_type"] {
        assert!(manifest[key].is_string(), "manifest.{key}: {manifest:#}");
    }
    assert!(manifest["timeout_s"].is_u64(), "{manifest:#}");
    assert!(manifest["memory_mib"].is_u64() || manifest["memory_mib"].is_null());
    assert!(manifest["routes"].is_array(), "{manifest:#}");

    let process = &json["process"];
    assert!(
        process["pid"].as_u64().is_some_and(|p| p > 0),
        "{process:#}"
    );
    assert!(
        process["port"].as_u64().is_some_and(|p| p > 0),
        "{process:#}"
    );
    for addr in process["bound"].as_array().expect("bound is a list") {
        let addr = addr.as_str().expect("bound addresses are strings");
        assert!(
            addr.parse::<std::net::SocketAddr>().is_ok(),
            "{addr:?} is an address:port"
        );
    }
    let exit = &process["exit"];
    assert!(
        exit.is_null() || (exit.get("code").is_some() && exit.get("signal").is_some()),
        "{exit:#}"
    );
    assert!(
        process["output_tail"]
            .as_array()
            .expect("output_tail is a list")
            .iter()
            .all(Value::is_string)
    );

    let health = &json["health_check"];
    assert_eq!(health["type"], manifest["health_check_type"], "{health:#}");
    assert!(health["ok"].is_boolean() && health["detail"].is_string());

    for key in ["direct", "via_router"] {
        let report = &json["websocket"][key];
        assert!(
            report.is_null()
                || (report["verdict"]["ok"].is_boolean() && report["probes"].is_array()),
            "websocket.{key}: {report:#}"
        );
    }

    let shutdown = &json["shutdown"];
    assert_eq!(shutdown["signal"], "SIGTERM", "{shutdown:#}");
    assert!(shutdown["exited_after_ms"].is_number() || shutdown["exited_after_ms"].is_null());
    assert!(shutdown["killed"].is_boolean(), "{shutdown:#}");

    let memory = &json["memory"];
    assert!(memory["peak_rss_mib"].is_number() || memory["peak_rss_mib"].is_null());
    assert_eq!(memory["limit_mib"], manifest["memory_mib"], "{json:#}");

    for finding in json["findings"].as_array().expect("findings is a list") {
        for key in ["code", "summary", "fix", "detail"] {
            assert!(
                finding[key].as_str().is_some_and(|s| !s.is_empty()),
                "finding.{key}: {finding:#}"
            );
        }
    }
}

/// The report's `manifest` is what `file` says: name, command, health check, memory, routes.
fn check_manifest(json: &Value, file: &std::path::Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let app = &doc["applications"][0];
    let manifest = &json["manifest"];
    let reported = manifest["file"].as_str().expect("a manifest was read");
    assert!(
        repo_root().join(reported).canonicalize().unwrap() == file.canonicalize().unwrap(),
        "{reported} is {}",
        file.display()
    );
    assert_eq!(manifest["name"], app["name"].as_str().unwrap());
    assert_eq!(manifest["command"], app["command"].as_str().unwrap());
    assert_eq!(
        manifest["health_check_type"],
        app["health-check-type"].as_str().unwrap_or("port")
    );
    let routes: Vec<&str> = app["routes"]
        .as_sequence()
        .map(|r| r.iter().filter_map(|r| r["route"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(manifest["routes"], serde_json::json!(routes));
    let memory = app["memory"].as_str().map(|m| {
        m.trim_end_matches('M')
            .parse::<u64>()
            .expect("memory in M in tests/apps")
    });
    assert_eq!(manifest["memory_mib"], serde_json::json!(memory));
}

fn codes(json: &Value) -> Vec<&str> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

fn finding<'a>(json: &'a Value, code: &str) -> &'a Value {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} finding: {:?}\n{json:#}", codes(json)))
}

fn port(json: &Value) -> u64 {
    json["process"]["port"].as_u64().unwrap()
}

fn bound(json: &Value) -> Vec<&str> {
    json["process"]["bound"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// Listens on `$PORT` on all interfaces (0.0.0.0 or `[::]`, which Node's default is).
fn listens_on_all_interfaces(json: &Value) -> bool {
    let port = port(json);
    bound(json)
        .iter()
        .any(|a| *a == format!("0.0.0.0:{port}") || *a == format!("[::]:{port}"))
}

/// The probe of `url` in a route report.
fn probe<'a>(report: &'a Value, url: &str) -> &'a Value {
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"] == url)
        .unwrap_or_else(|| panic!("no probe of {url}: {report:#}"))
}

/// The route works through the local router: `wss://ROUTE/PATH` opened and echoed.
fn assert_route_ok(json: &Value, route: &str, path: &str) {
    let report = &json["websocket"]["via_router"];
    assert_eq!(report["verdict"]["ok"], true, "{report:#}");
    let probe = probe(report, &format!("wss://{route}{path}"));
    assert_eq!(probe["diagnosis"]["code"], "ok", "{probe:#}");
    let direct = &json["websocket"]["direct"];
    assert_eq!(direct["verdict"]["ok"], true, "{direct:#}");
}

/// Healthy: exit 0, the health check passed, no findings, listening on all interfaces,
/// the route's WebSocket works, and SIGTERM ends it promptly.
fn assert_healthy(code: Option<i32>, json: &Value, route: &str, path: &str) {
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["ok"], true);
    assert!(codes(json).is_empty(), "findings: {:?}", codes(json));
    assert_eq!(json["health_check"]["ok"], true, "{json:#}");
    assert!(json["process"]["exit"].is_null(), "{json:#}");
    assert!(listens_on_all_interfaces(json), "{:?}", bound(json));
    assert_route_ok(json, route, path);
    assert_eq!(json["shutdown"]["killed"], false, "{json:#}");
    let after = json["shutdown"]["exited_after_ms"].as_f64().unwrap();
    assert!(after < 3000.0, "exited {after} ms after SIGTERM");
}

#[test]
fn the_articles_node_server_is_healthy() {
    // The article's own folder (tests/node/article): its server.js, with a manifest.
    let (code, json) = app_json_in("tests/node/article", &[], false);
    assert_healthy(code, &json, "article.apps.wscheck.test", "/");
    assert_eq!(json["manifest"]["name"], "websocket_cf");
    // The article's greeting and echo, as the direct probe saw them.
    let direct = &json["websocket"]["direct"]["probes"][0];
    assert_eq!(direct["diagnosis"]["code"], "ok", "{direct:#}");
}

#[test]
fn flask_bound_to_loopback_is_found() {
    let (code, json) = app_json("flask-loopback", &["--path", "/ws"], true);
    assert_eq!(code, Some(1), "{json:#}");
    let port = port(&json);
    assert_eq!(bound(&json), [format!("127.0.0.1:{port}")], "{json:#}");
    let loopback = finding(&json, "app_bound_loopback");
    assert!(
        loopback["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{loopback:#}"
    );
    assert!(loopback["fix"].as_str().unwrap().contains("0.0.0.0"));
    assert_eq!(json["health_check"]["ok"], false, "{json:#}");
    assert!(
        json["process"]["exit"].is_null(),
        "it runs, just unreachable"
    );
    // Its WebSocket itself works (on loopback); gorouter could not reach it, so no route.
    assert_eq!(
        json["websocket"]["direct"]["verdict"]["ok"], true,
        "{json:#}"
    );
    assert!(json["websocket"]["via_router"].is_null(), "{json:#}");
}

#[test]
fn flask_bound_to_all_interfaces_is_healthy() {
    let (code, json) = app_json("flask-fixed", &["--path", "/ws"], true);
    assert_healthy(code, &json, "flask-fixed.apps.wscheck.test", "/ws");
    assert_eq!(json["health_check"]["type"], "http");
    let port = port(&json);
    assert!(
        bound(&json).contains(&format!("0.0.0.0:{port}").as_str()),
        "{json:#}"
    );
}

#[test]
fn express_with_ws_on_a_second_port_is_found() {
    let (code, json) = app_json("express-two-ports", &[], false);
    assert_eq!(code, Some(1), "{json:#}");
    // The port the app printed for its WebSocket server (`port: 0`: whatever was free).
    let ws_port: u64 = json["process"]["output_tail"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| {
            l.as_str()?
                .strip_prefix("WebSocket server listening on port ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the app printed its WebSocket port: {json:#}"));
    assert_ne!(ws_port, port(&json));
    assert!(
        bound(&json)
            .iter()
            .any(|a| a.ends_with(&format!(":{ws_port}"))),
        "{json:#}"
    );
    let other = finding(&json, "websocket_on_other_port");
    assert!(
        other["detail"]
            .as_str()
            .unwrap()
            .contains(&ws_port.to_string()),
        "{other:#}"
    );
    // The trap: CF's health check passes, the route's WebSocket does not.
    assert_eq!(json["health_check"]["ok"], true, "{json:#}");
    assert_eq!(
        json["websocket"]["direct"]["verdict"]["ok"], false,
        "{json:#}"
    );
    assert_eq!(
        json["websocket"]["via_router"]["verdict"]["ok"], false,
        "{json:#}"
    );
}

#[test]
fn express_and_ws_sharing_the_server_are_healthy() {
    let (code, json) = app_json("express-shared", &["--path", "/ws"], false);
    assert_healthy(code, &json, "express-shared.apps.wscheck.test", "/ws");
    let tail = json["process"]["output_tail"].to_string();
    assert!(
        tail.contains("SIGTERM: closing WebSockets with 1001"),
        "its SIGTERM handler ran: {tail}"
    );
}

#[test]
fn two_servers_on_port_crash_with_eaddrinuse() {
    let (code, json) = app_json("eaddrinuse", &[], false);
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["process"]["exit"]["code"], 1, "{json:#}");
    let exited = finding(&json, "app_exited");
    assert!(
        exited["detail"].as_str().unwrap().contains("EADDRINUSE"),
        "{exited:#}"
    );
    assert!(
        json["process"]["output_tail"]
            .to_string()
            .contains("listen EADDRINUSE: address already in use"),
        "{json:#}"
    );
    assert_eq!(json["health_check"]["ok"], false, "{json:#}");
    assert!(json["websocket"]["via_router"].is_null(), "{json:#}");
}

#[test]
fn an_app_that_ignores_sigterm_is_found() {
    // Whether this alone fails the run is the command's choice: the finding is asserted,
    // not the exit code (the contract's ok ⇔ exit 0 still holds, see check_contract).
    let (_code, json) = app_json("ignores-sigterm", &[], false);
    let ignores = finding(&json, "ignores_sigterm");
    assert!(!ignores["fix"].as_str().unwrap().is_empty());
    assert_eq!(json["shutdown"]["killed"], true, "{json:#}");
    assert!(json["shutdown"]["exited_after_ms"].is_null(), "{json:#}");
    assert!(
        json["process"]["output_tail"]
            .to_string()
            .contains("SIGTERM received"),
        "the app got SIGTERM itself (bash exec'd node): {json:#}"
    );
    // Otherwise healthy.
    assert_eq!(json["health_check"]["ok"], true, "{json:#}");
    assert_route_ok(&json, "ignores-sigterm.apps.wscheck.test", "/");
}

#[test]
fn health_check_type_none_is_found() {
    let (_code, json) = app_json("health-none", &[], false);
    finding(&json, "health_check_none");
    assert_eq!(json["health_check"]["type"], "none");
    assert_eq!(json["manifest"]["health_check_type"], "none");
    // The app itself works: the finding is about what CF would not notice.
    assert!(listens_on_all_interfaces(&json), "{json:#}");
    assert_route_ok(&json, "health-none.apps.wscheck.test", "/");
}

#[test]
fn an_approuter_with_websockets_disabled_is_found() {
    let (code, json) = app_json("approuter-ws-disabled", &["--path", "/ws"], false);
    assert_eq!(code, Some(1), "{json:#}");
    let disabled = finding(&json, "approuter_websockets_disabled");
    assert!(
        disabled["detail"].as_str().unwrap().contains("xs-app.json"),
        "{disabled:#}"
    );
    // The destination is defined (default-env.json) and a route matches /ws: only the flag.
    let codes = codes(&json);
    assert!(
        !codes.contains(&"approuter_destination_missing")
            && !codes.contains(&"approuter_route_missing"),
        "{codes:?}"
    );
    // The approuter really started and answered the upgrade with its 403.
    assert_eq!(json["health_check"]["ok"], true, "{json:#}");
    let direct = &json["websocket"]["direct"]["probes"][0];
    assert_eq!(direct["http_status"], 403, "{direct:#}");
}

#[test]
fn the_bundled_server_from_its_own_manifest_is_healthy() {
    // manifest.yml's `path: dist/cf` is filled by the documented build (as for `cf push`).
    let root = repo_root();
    let status = StdCommand::new(root.join("scripts/build-cf-bundle"))
        .current_dir(&root)
        .status()
        .expect("run scripts/build-cf-bundle");
    assert!(status.success(), "scripts/build-cf-bundle failed: {status}");
    // `wscheck app` in the repository's root: DIR defaults to the current folder.
    let run = wscheck_app(&["--format", "json"], false, 200);
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    check_contract(&json, run.code);
    check_manifest(&json, &root.join("manifest.yml"));
    // `random-route: true`: no route in the manifest, the router answers for the app's name.
    assert_healthy(run.code, &json, "wscheck-server.apps.wscheck.test", "/");
    assert_eq!(json["health_check"]["type"], "http");
    let port = port(&json);
    for addr in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        assert!(bound(&json).contains(&addr.as_str()), "{json:#}");
    }
    assert!(
        json["process"]["output_tail"]
            .to_string()
            .contains("closing sockets with 1001"),
        "{json:#}"
    );
}

#[test]
fn the_table_names_the_loopback_binding_and_its_fix_within_the_width() {
    let run = wscheck_app(&["tests/apps/flask-loopback", "--path", "/ws"], true, 80);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let table = &run.stdout;
    for needle in [
        "wscheck app · flask-loopback · tests/apps/flask-loopback",
        "tests/apps/flask-loopback/manifest.yml",
        "`python app.py`",
        "listened on 127.0.0.1:",
        "app_bound_loopback",
        "Bind to 0.0.0.0 and $PORT",
        "Verdict: FAIL",
    ] {
        assert!(table.contains(needle), "{needle:?} in:\n{table}");
    }
    for line in table.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    // The app's own output goes to stderr, under a prefix, not into the report.
    assert!(run.stderr.contains("[app]"), "{}", run.stderr);
    assert!(!table.contains("Running on http://"), "{table}");
}
