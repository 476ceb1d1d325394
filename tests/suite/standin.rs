//! End-to-end scenarios on the local CF stand-in: real nginx as the router, the bundled
//! server, the article's Node server and the SAP approuter as apps.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wscheck::diagnose::AnsweredBy;
use wscheck::report::Report;
use wscheck_testkit::fixtures;
use wscheck_testkit::standin::{Approuter, Route, Router};

use crate::support::{args, check, closed_port};

/// Probes `host`'s default matrix through `router`.
async fn probe(
    router: &Router,
    host: &str,
    tweak: impl FnOnce(&mut crate::support::Args),
) -> Report {
    let mut a = args(host);
    a.set_path("--cacert", &router.cacert);
    a.set_all("--connect-to", router.connect_to(closed_port()));
    tweak(&mut a);
    check(&a).await
}

fn code<'a>(report: &'a Report, url: &str) -> &'a str {
    report
        .probes
        .iter()
        .find(|p| p.result.candidate.url == url)
        .unwrap_or_else(|| panic!("no probe for {url}"))
        .diagnosis
        .code
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_route_works_on_443_and_80_and_nowhere_else() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let report = probe(&router, "echo.apps.wscheck.test", |_| {}).await;
    let h = "echo.apps.wscheck.test";
    assert_eq!(
        code(&report, &format!("wss://{h}/")),
        "ok",
        "{report:#?}\n{}",
        router.error_log()
    );
    assert_eq!(code(&report, &format!("wss://{h}:443/")), "ok");
    assert_eq!(code(&report, &format!("ws://{h}/")), "ok");
    for port in [8080, 4443] {
        for scheme in ["wss", "ws"] {
            assert_eq!(
                code(&report, &format!("{scheme}://{h}:{port}/")),
                "connect_refused"
            );
        }
    }
    let wss = &report.probes[0];
    assert!(wss.result.echo.as_ref().unwrap().verified);
    assert!(wss.result.tls.as_ref().unwrap().verified);
    assert!(report.verdict.ok && report.verdict.healthy);
    assert_eq!(
        report.verdict.recommended_url.as_deref(),
        Some(format!("wss://{h}/").as_str())
    );

    let app_view = report.app.as_ref().expect("what reached the app");
    let forwarded = |name: &str| {
        app_view
            .forwarded_headers
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(name))
            .map(|x| x.value.clone())
    };
    assert_eq!(forwarded("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(forwarded("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(forwarded("x-vcap-request-id").is_some_and(|id| id.len() == 32));
    assert!(app_view.added_by.iter().any(|w| w.contains("gorouter")));
    assert_eq!(app_view.info.request.header("host"), Some(h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_drops_upgrade_headers_gets_blamed() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut route = Route::new("stripped", app.addr);
    route.pass_upgrade = false;
    let router = Router::start(&[route]).unwrap();
    let report = probe(&router, "stripped.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(
        p.diagnosis.code.as_str(),
        "upgrade_header_stripped",
        "{report:#?}"
    );
    assert_eq!(p.http_status, Some(426));
    assert_eq!(p.diagnosis.answered_by, AnsweredBy::BundledServer);
    assert!(
        p.diagnosis
            .detail
            .contains("a proxy between the client and the app removed the headers"),
        "{}",
        p.diagnosis.detail
    );
    assert!(!report.verdict.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_down_and_unmapped_host() {
    let dead = closed_port();
    let router = Router::start(&[Route::new("down", dead)]).unwrap();
    let report = probe(&router, "down.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "app_unreachable", "{report:#?}");
    assert_eq!(p.http_status, Some(502));
    assert_eq!(p.diagnosis.answered_by, AnsweredBy::Gorouter);

    let report = probe(&router, "nope.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "route_not_found", "{report:#?}");
    assert!(
        p.result
            .response
            .as_ref()
            .unwrap()
            .body
            .contains("Requested route ('nope.apps.wscheck.test') does not exist.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_node_server_behind_the_router() {
    let (_node, node_addr) = wscheck_testkit::start_article_server().unwrap();
    let mut stripped = Route::new("article-stripped", node_addr);
    stripped.pass_upgrade = false;
    let router = Router::start(&[Route::new("article", node_addr), stripped]).unwrap();

    let report = probe(&router, "article.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "ok", "{report:#?}");
    assert_eq!(
        p.result.peer,
        wscheck::probe::echo::PeerKind::ArticleEchoServer
    );
    assert_eq!(
        p.result.echo.as_ref().unwrap().greeting.as_deref(),
        Some("Hi, this is the Echo-Server")
    );
    assert!(
        report.app.is_none(),
        "the article's server has no introspection"
    );

    // Reached without its upgrade headers, ws answers its own 426.
    let report = probe(&router, "article-stripped.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(
        p.diagnosis.code.as_str(),
        "upgrade_header_stripped",
        "{report:#?}"
    );
    assert_eq!(p.diagnosis.answered_by, AnsweredBy::AppOrProxy);
    assert_eq!(
        p.result.response.as_ref().unwrap().body.trim(),
        "Upgrade Required"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sap_approuter_in_front_of_the_app() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let enabled = Approuter::start(app.addr, true).unwrap();
    let disabled = Approuter::start(app.addr, false).unwrap();
    let router = Router::start(&[
        Route::new("ar", enabled.addr),
        Route::new("ar-nows", disabled.addr),
    ])
    .unwrap();

    let report = probe(&router, "ar.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "ok", "{report:#?}");
    assert!(p.result.echo.as_ref().unwrap().verified);

    let report = probe(&router, "ar-nows.apps.wscheck.test", |a| {
        a.switch("--only");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(
        p.diagnosis.code.as_str(),
        "approuter_websockets_disabled",
        "{report:#?}"
    );
    assert_eq!(p.diagnosis.answered_by, AnsweredBy::Approuter);

    let report = probe(&router, "ar.apps.wscheck.test", |a| {
        a.switch("--only");
        a.set("--origin", "https://evil.wscheck.test");
    })
    .await;
    let p = &report.probes[0];
    assert_eq!(p.diagnosis.code.as_str(), "origin_rejected", "{report:#?}");
    assert_eq!(p.diagnosis.answered_by, AnsweredBy::Approuter);
    assert!(
        p.diagnosis.detail.contains("https://evil.wscheck.test"),
        "{}",
        p.diagnosis.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_with_a_short_idle_timeout_cuts_quiet_sockets() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let mut idle = Route::new("idle", app.addr);
    idle.idle_timeout = Some(Duration::from_secs(2));
    let router = Router::start(&[idle]).unwrap();
    let tcp = tokio::net::TcpStream::connect(router.plain).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://idle.apps.wscheck.test/", tcp)
        .await
        .unwrap();
    let greeting = ws.next().await.unwrap().unwrap();
    assert_eq!(greeting.to_text().unwrap(), "Hi, this is the Echo-Server");
    let opened = Instant::now();
    // Nothing is sent; the router ends the connection after its idle timeout.
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the router cut the idle socket");
    assert!(
        !matches!(
            end,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ),
        "{end:?}"
    );
    let lived = opened.elapsed();
    assert!(lived >= Duration::from_millis(1500), "cut after {lived:?}");
}
