//! The browser's view: the bundled server's page, driven in Debian's headless Chromium,
//! against the server directly and behind the stand-in router.

use std::time::Duration;

use serde_json::Value;
use wscheck_testkit::fixtures;
use wscheck_testkit::standin::{Route, Router};

const MAP: &str = "MAP *.apps.wscheck.test 127.0.0.1";

fn rows(page: &Value) -> Vec<(String, String, String)> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
                r["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_the_checks_in_a_real_browser_behind_the_router() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut idle = Route::new("idle", app.addr);
    idle.idle_timeout = Some(Duration::from_secs(2));
    let router = Router::start(&[Route::new("echo", app.addr), idle]).unwrap();
    let port = router.tls.port();

    let url = format!("https://echo.apps.wscheck.test:{port}/?hold=2");
    let page = tokio::task::spawn_blocking(move || wscheck_testkit::browser_check(&url, Some(MAP)))
        .await
        .unwrap()
        .unwrap();
    let rows = rows(&page);
    assert_eq!(rows[0].0, "wss");
    assert_eq!(rows[0].1, "ok", "{page:#}");
    assert!(rows[0].2.contains("greeting received"), "{page:#}");
    assert_eq!(rows[1].0, "ws");
    assert_eq!(rows[1].1, "FAIL blocked_mixed_content", "{page:#}");
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_str()),
        ("hold", "ok"),
        "{page:#}"
    );
    assert_eq!(
        page["verdict"],
        format!("Verdict: use wss://echo.apps.wscheck.test:{port}/")
    );
    // The JSON for a ticket: shown, and what the copy button put on the clipboard.
    let json = &page["json"];
    assert_eq!(json["checks"].as_array().unwrap().len(), 3);
    assert_eq!(json["checks"][0]["code"], "ok");
    let clipboard: Value = serde_json::from_str(page["clipboard"].as_str().unwrap()).unwrap();
    assert_eq!(&clipboard, json);

    // A router that cuts idle sockets after 2 s: the held connection dies.
    let url = format!("https://idle.apps.wscheck.test:{port}/?hold=6");
    let page = tokio::task::spawn_blocking(move || wscheck_testkit::browser_check(&url, Some(MAP)))
        .await
        .unwrap()
        .unwrap();
    let rows = self::rows(&page);
    assert_eq!(rows[2].0, "hold");
    assert_eq!(rows[2].1, "FAIL idle_timeout", "{page:#}");
    assert!(rows[2].2.starts_with("cut after "), "{page:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_over_plain_http_shows_wss_failing_on_a_plain_port() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let url = format!("http://{}/?hold=1", app.addr);
    let page = tokio::task::spawn_blocking(move || wscheck_testkit::browser_check(&url, None))
        .await
        .unwrap()
        .unwrap();
    let rows = rows(&page);
    assert_eq!(rows[0].1, "FAIL failed_to_open", "{page:#}");
    assert_eq!(rows[1].1, "ok", "{page:#}");
    assert_eq!(rows[2].1, "ok", "{page:#}");
}
