//! Deep checks end to end on the stand-in: idle cut-offs, message sizes, latency,
//! instances, corporate proxies, many routes.

use std::time::Duration;

use crate::support::Args;
use wscheck::report::Report;
use wscheck_testkit::ServerProcess;
use wscheck_testkit::fixtures::{self, Behaviour};
use wscheck_testkit::pki::TestCa;
use wscheck_testkit::standin::{APP_GUID, Route, Router, Tinyproxy};

use crate::support::{args, check, closed_port};

fn bundled(index: &str) -> wscheck_server::Config {
    let mut config = wscheck_server::Config::default();
    config.environment.instance_index = Some(index.to_owned());
    config.environment.instance_guid = Some(format!("guid-of-instance-{index}"));
    config
}

fn via(router: &Router, host: &str) -> Args {
    let mut a = args(&format!("wss://{host}/"));
    a.switch("--only");
    a.set_path("--cacert", &router.cacert);
    a.set_all("--connect-to", router.connect_to(closed_port()));
    a
}

fn finding_codes(report: &Report) -> Vec<&'static str> {
    report
        .deep
        .as_ref()
        .expect("deep report")
        .findings
        .iter()
        .map(|f| f.code.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_measures_an_idle_cut_off_and_pings_keep_the_socket_alive() {
    let app = fixtures::start_bundled(bundled("0")).await.unwrap();
    let mut route = Route::new("idle", app.addr);
    route.idle_timeout = Some(Duration::from_secs(2));
    let router = Router::start(&[route]).unwrap();

    let mut a = via(&router, "idle.apps.wscheck.test");
    a.set("--hold", "4s");
    let report = check(&a).await;
    let hold = report.deep.as_ref().unwrap().hold.as_ref().unwrap();
    assert!(!hold.survived, "{hold:#?}");
    let cut = hold.cut.as_ref().unwrap();
    assert!(
        (1500.0..3900.0).contains(&cut.after_ms),
        "cut after {} ms",
        cut.after_ms
    );
    assert_eq!(hold.recommended_ping_interval_s, Some(1));
    assert_eq!(finding_codes(&report), ["idle_timeout"]);

    a.set("--ping-interval", "500ms");
    let report = check(&a).await;
    let hold = report.deep.as_ref().unwrap().hold.as_ref().unwrap();
    assert!(hold.survived, "{hold:#?}");
    assert!(
        hold.pings_sent >= 6 && hold.pongs_received >= 5,
        "{hold:#?}"
    );
    assert!(finding_codes(&report).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_find_the_largest_message_that_passes() {
    let app = fixtures::start_bundled(bundled("0")).await.unwrap(); // 1 MiB limit
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let mut a = via(&router, "echo.apps.wscheck.test");
    a.set("--sizes", "1KiB,64KiB,1MiB,4MiB");
    let report = check(&a).await;
    let sizes = report.deep.as_ref().unwrap().sizes.as_ref().unwrap();
    assert_eq!(sizes.largest_ok, Some(1 << 20), "{sizes:#?}");
    assert_eq!(sizes.results.len(), 8);
    for r in &sizes.results {
        if r.size <= 1 << 20 {
            assert!(r.ok, "{r:?}");
        } else {
            assert_eq!(r.outcome, "closed 1009", "{r:?}");
        }
    }
    assert_eq!(finding_codes(&report), ["message_too_large"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_reports_round_trip_percentiles_and_setup_by_stage() {
    let app = fixtures::start_bundled(bundled("0")).await.unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let mut a = via(&router, "echo.apps.wscheck.test");
    a.set("--count", "50");
    let report = check(&a).await;
    let latency = report.deep.as_ref().unwrap().latency.as_ref().unwrap();
    assert_eq!(
        (latency.requested, latency.completed),
        (50, 50),
        "{latency:#?}"
    );
    let (min, median, p99, max) = (
        latency.min_ms.unwrap(),
        latency.median_ms.unwrap(),
        latency.p99_ms.unwrap(),
        latency.max_ms.unwrap(),
    );
    assert!(min <= median && median <= p99 && p99 <= max);
    assert!(latency.setup_ms.tls.is_some() && latency.setup_ms.upgrade.is_some());
}

/// A real `wscheck-server` process standing for CF instance `index`.
fn instance(index: &str) -> ServerProcess {
    ServerProcess::start(
        &wscheck_testkit::server_binary(),
        &[
            ("CF_INSTANCE_INDEX", index),
            ("CF_INSTANCE_GUID", &format!("guid-of-instance-{index}")),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_show_which_instances_answer_and_a_crashed_one() {
    let healthy = instance("0");
    let crashed = instance("1");
    let router =
        Router::start(&[Route::instances("multi", vec![healthy.addr, crashed.addr])]).unwrap();
    // Instance 1 crashes: its port stops answering, the router still sends it connections.
    crashed.signal("KILL");
    let mut a = via(&router, "multi.apps.wscheck.test");
    a.set("--connections", "10");
    // The matrix probe itself may land on the crashed instance; as a user re-running it
    // would, probe until the recommended URL works.
    let mut report = check(&a).await;
    for _ in 0..5 {
        if report.deep.is_some() {
            break;
        }
        report = check(&a).await;
    }
    let instances = report
        .deep
        .as_ref()
        .expect("a probe reached the healthy instance")
        .instances
        .as_ref()
        .unwrap();
    assert_eq!(instances.requested, 10);
    let answered: u32 = instances.instances.iter().map(|i| i.connections).sum();
    let failed: u32 = instances.failures.iter().map(|f| f.connections).sum();
    assert_eq!(answered + failed, 10, "{instances:#?}");
    assert!(
        instances
            .instances
            .iter()
            .all(|i| i.index.as_deref() == Some("0")),
        "{instances:#?}"
    );
    assert!(
        answered >= 1 && failed >= 1,
        "round robin over a healthy and a crashed instance: {instances:#?}"
    );
    assert!(
        instances
            .failures
            .iter()
            .all(|f| f.code.as_str() == "app_unreachable"),
        "{instances:#?}"
    );
    assert!(finding_codes(&report).contains(&"app_unreachable"));

    // X-Cf-App-Instance targets the healthy instance only.
    a.set("--instance", format!("{APP_GUID}:0"));
    let report = check(&a).await;
    let instances = report.deep.as_ref().unwrap().instances.as_ref().unwrap();
    assert_eq!(instances.opened, 10, "{instances:#?}");
    assert!(instances.failures.is_empty());
    assert_eq!(
        instances.targeted.as_deref(),
        Some(format!("{APP_GUID}:0").as_str())
    );

    // An instance that does not exist: the router's 400 unknown_route is its own code,
    // not route_not_found; a malformed header (only possible with -H) gets another.
    let mut missing = via(&router, "multi.apps.wscheck.test");
    missing.set("--instance", format!("{APP_GUID}:7"));
    let report = check(&missing).await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "instance_not_found", "{p:#?}");
    assert_eq!(
        p.diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::Gorouter
    );
    assert!(
        p.diagnosis.detail.contains("Requested instance ('7')"),
        "{}",
        p.diagnosis.detail
    );
    let mut malformed = via(&router, "multi.apps.wscheck.test");
    malformed.add("--header", "X-Cf-App-Instance: not-an-instance");
    let report = check(&malformed).await;
    assert_eq!(
        report.probes[0].diagnosis.code.as_str(),
        "invalid_cf_app_instance_header",
        "{:#?}",
        report.probes[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_healthy_instances_both_answer() {
    let zero = instance("0");
    let one = instance("1");
    let router = Router::start(&[Route::instances("pair", vec![zero.addr, one.addr])]).unwrap();
    let mut a = via(&router, "pair.apps.wscheck.test");
    a.set("--connections", "6");
    let report = check(&a).await;
    let instances = report.deep.as_ref().unwrap().instances.as_ref().unwrap();
    let indexes: Vec<_> = instances
        .instances
        .iter()
        .map(|i| i.index.clone().unwrap())
        .collect();
    assert_eq!(indexes, ["0", "1"], "{instances:#?}");
    assert_eq!(instances.opened, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_corporate_proxy() {
    let app = fixtures::start_bundled(bundled("0")).await.unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();

    // An open proxy: the tunnel works for wss and ws.
    let open = Tinyproxy::start(None, &[]).unwrap();
    let mut a = args("echo.apps.wscheck.test");
    a.set("--ports", "default");
    a.set_path("--cacert", &router.cacert);
    a.set_all("--connect-to", router.connect_to(closed_port()));
    a.set("--proxy", open.url(None));
    let report = check(&a).await;
    for p in &report.probes {
        assert_eq!(p.diagnosis.code.as_str(), "ok", "{p:#?}");
        assert_eq!(
            p.result.route.proxy.as_deref(),
            Some(open.addr.to_string().as_str())
        );
        assert!(p.result.timings.proxy.is_some());
    }

    // The tunnel opens, then what is behind it drops the handshake: the detail says the
    // failure came through the proxy, after its tunnel worked.
    let closer = fixtures::start(Behaviour::CloseOnFirstBytes).await.unwrap();
    let mut dropped = args("ws://echo.apps.wscheck.test/");
    dropped
        .switch("--only")
        .add("--connect-to", format!("::{}", closer.addr))
        .set("--proxy", open.url(None));
    let report = check(&dropped).await;
    let p = &report.probes[0];
    assert_eq!(
        p.diagnosis.code.as_str(),
        "closed_during_handshake",
        "{p:#?}"
    );
    assert!(
        p.diagnosis.detail.contains(&format!(
            "through the proxy {}, whose tunnel opened",
            open.addr
        )),
        "{}",
        p.diagnosis.detail
    );

    // A proxy that wants credentials.
    let guarded = Tinyproxy::start(Some(("alice", "s3cret")), &[]).unwrap();
    a.set("--proxy", guarded.url(None));
    let report = check(&a).await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "proxy_auth_required", "{p:#?}");
    assert_eq!(p.result.stage.as_str(), "proxy");
    assert_eq!(p.http_status, Some(407));
    a.set("--proxy", guarded.url(Some(("alice", "s3cret"))));
    let report = check(&a).await;
    assert_eq!(
        report.probes[0].diagnosis.code.as_str(),
        "ok",
        "{:#?}",
        report.probes[0]
    );

    // A proxy that only tunnels to 443 refuses the router's loopback port.
    let strict = Tinyproxy::start(None, &[443]).unwrap();
    a.set("--proxy", strict.url(None));
    let report = check(&a).await;
    assert_eq!(
        report.probes[0].diagnosis.code.as_str(),
        "proxy_refused",
        "{:#?}",
        report.probes[0]
    );
    assert_eq!(
        report.probes[0].diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::Proxy
    );

    // Nothing listens where the proxy should be: nobody answered, and -x is named.
    a.set("--proxy", format!("http://{}", closed_port()));
    let report = check(&a).await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "proxy_unreachable", "{p:#?}");
    assert_eq!(
        p.diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::Nobody
    );
    assert!(
        p.diagnosis.detail.contains("(from --proxy)"),
        "{}",
        p.diagnosis.detail
    );

    // A TLS-inspecting proxy: the certificate comes from its own CA.
    let inspector = TestCa::new("Contoso TLS Inspection CA").unwrap();
    let acceptor = fixtures::tls_acceptor(
        &inspector.leaf(&["echo.apps.wscheck.test"]).unwrap(),
        &inspector,
    )
    .unwrap();
    let intercepting = fixtures::start_tls(Behaviour::WsSilent, acceptor)
        .await
        .unwrap();
    let mut a = args("wss://echo.apps.wscheck.test/");
    a.switch("--only");
    a.set_path("--cacert", &router.cacert);
    a.set_all(
        "--connect-to",
        vec![format!(
            "::{}:{}",
            intercepting.addr.ip(),
            intercepting.addr.port()
        )],
    );
    a.set("--proxy", open.url(None));
    let report = check(&a).await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "proxy_tls_intercepted", "{p:#?}");
    assert!(
        p.diagnosis.detail.contains("Contoso TLS Inspection CA"),
        "{}",
        p.diagnosis.detail
    );
}

#[test]
fn proxies_from_the_environment_and_no_proxy() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let app = runtime
        .block_on(fixtures::start_bundled(bundled("0")))
        .unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let proxy = Tinyproxy::start(Some(("bob", "pw")), &[]).unwrap();
    let nowhere = closed_port();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = assert_cmd::Command::cargo_bin("wscheck").unwrap();
        for name in [
            "https_proxy",
            "HTTPS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "wss_proxy",
            "ws_proxy",
            "no_proxy",
            "NO_PROXY",
        ] {
            cmd.env_remove(name);
        }
        cmd.envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .args([
                "echo.apps.wscheck.test",
                "--ports",
                "default",
                "--format",
                "json",
                "--cacert",
            ])
            .arg(&router.cacert);
        for rule in router.connect_to(nowhere) {
            cmd.args(["--connect-to", &rule]);
        }
        let output = cmd.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
    };
    let url = proxy.url(Some(("bob", "pw")));
    let json = run(&[("https_proxy", &url), ("ws_proxy", &url)]);
    for p in json["probes"].as_array().unwrap() {
        assert_eq!(p["route"]["proxy"], proxy.addr.to_string(), "{p:#}");
        assert_eq!(p["diagnosis"]["code"], "ok", "{p:#}");
    }
    let json = run(&[
        ("HTTPS_PROXY", &proxy.url(None)),
        ("no_proxy", ".wscheck.test"),
    ]);
    for p in json["probes"].as_array().unwrap() {
        assert!(p["route"]["proxy"].is_null(), "{p:#}");
        assert_eq!(p["diagnosis"]["code"], "ok");
    }
    let json = run(&[("HTTPS_PROXY", &proxy.url(None))]);
    assert_eq!(
        json["probes"][0]["diagnosis"]["code"],
        "proxy_auth_required"
    );
    // A proxy variable pointing nowhere: unreachable, answered by nobody, and the report
    // names the variable it came from.
    let json = run(&[("https_proxy", &format!("http://{nowhere}"))]);
    let p = &json["probes"][0];
    assert_eq!(p["diagnosis"]["code"], "proxy_unreachable", "{p:#}");
    assert_eq!(p["diagnosis"]["answered_by"], "nobody");
    assert!(
        p["diagnosis"]["detail"]
            .as_str()
            .unwrap()
            .contains("(from https_proxy)"),
        "{p:#}"
    );
    drop(app);
}

#[test]
fn routes_file_summarises_many_routes_and_details_the_failing_ones() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime
        .block_on(fixtures::start_bundled(bundled("0")))
        .unwrap();
    let router = Router::start(&[
        Route::new("echo", app.addr),
        Route::new("down", closed_port()),
    ])
    .unwrap();
    let dir = wscheck_testkit::tempdir("routes").unwrap();
    let file = dir.join("routes.txt");
    std::fs::write(&file, "# our routes\necho.apps.wscheck.test\n\ndown.apps.wscheck.test   # broken on purpose\nnope.apps.wscheck.test\n").unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("wscheck").unwrap();
    cmd.env("NO_COLOR", "1")
        .arg("--routes-file")
        .arg(&file)
        .arg("--cacert")
        .arg(&router.cacert)
        .args(["--ports", "default"]);
    for rule in router.connect_to(closed_port()) {
        cmd.args(["--connect-to", &rule]);
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("3 routes · 2 not healthy"), "{stdout}");
    let row = |route: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("│ {route} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("echo.apps.wscheck.test").contains("healthy"),
        "{stdout}"
    );
    assert!(
        row("down.apps.wscheck.test").contains("app_unreachable"),
        "{stdout}"
    );
    assert!(
        row("nope.apps.wscheck.test").contains("route_not_found"),
        "{stdout}"
    );
    // Details only for the failing routes.
    assert!(
        stdout.contains("── down.apps.wscheck.test ──")
            && stdout.contains("── nope.apps.wscheck.test ──")
    );
    assert!(!stdout.contains("── echo.apps.wscheck.test ──"));

    std::fs::write(&file, "echo.apps.wscheck.test\nftp://bad\n").unwrap();
    let output = assert_cmd::Command::cargo_bin("wscheck")
        .unwrap()
        .arg("--routes-file")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--routes-file line 2"));
    drop(app);
}
