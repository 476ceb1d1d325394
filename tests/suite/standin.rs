//! End-to-end scenarios on the local CF stand-in: real nginx as the router, the bundled
//! server, the article's Node server and the SAP approuter as apps.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use wscheck::diagnose::AnsweredBy;
use wscheck::report::Report;
use wscheck_server::info::Info;
use wscheck_testkit::fixtures;
use wscheck_testkit::standin::{APP_GUID, Approuter, Route, Router, instance_guid};

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
    assert!(
        forwarded("x-vcap-request-id").is_some_and(|id| is_dashed_uuid(&id)),
        "{:?}",
        app_view.forwarded_headers
    );
    assert!(forwarded("x-request-start").is_some_and(|ms| is_recent_millis(&ms)));
    assert_eq!(forwarded("x-cf-applicationid").as_deref(), Some(APP_GUID));
    assert_eq!(
        forwarded("x-cf-instanceid").as_deref(),
        Some(instance_guid(0).as_str())
    );
    assert_eq!(forwarded("x-cf-instanceindex").as_deref(), Some("0"));
    assert_eq!(forwarded("x-forwarded-host"), None);
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

// ---- The stand-in router against what gorouter (routing-release v0.317.0) answers ----

/// `8-4-4-4-12` lower-case hex digits, version 4, RFC 4122 variant.
fn is_dashed_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// Integer milliseconds since the epoch, within a minute of now.
fn is_recent_millis(value: &str) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    value.bytes().all(|b| b.is_ascii_digit())
        && value
            .parse::<u128>()
            .is_ok_and(|ms| ms.abs_diff(now) < 60_000)
}

/// One answer of the router as it came over the wire.
#[derive(Debug)]
struct Raw {
    /// Status line and headers, without the empty line.
    head: String,
    body: String,
}

impl Raw {
    fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// Every value of header `name`, matched case-insensitively.
    fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers(name);
        assert!(values.len() <= 1, "{name} twice in\n{}", self.head);
        values.first().copied()
    }

    /// The app's introspection document (a `GET /.wscheck/info` answered by the app).
    fn info(&self) -> Info {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// Sends `request` as written to `addr` over plain TCP and reads one answer: the head, then
/// `Content-Length` bytes of body (everything up to the close when there is none; nothing
/// after a 101).
fn raw(addr: SocketAddr, request: &str) -> Raw {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let mut read = |bytes: &mut Vec<u8>| match tcp.read(&mut buf) {
        Ok(n) => {
            bytes.extend_from_slice(&buf[..n]);
            n
        }
        Err(e) => panic!("{e} after {:?}", String::from_utf8_lossy(bytes)),
    };
    let end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        assert!(
            read(&mut bytes) > 0,
            "closed before the end of the head: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    };
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let mut answer = Raw {
        head,
        body: String::new(),
    };
    if answer.status_line().starts_with("HTTP/1.1 101 ") {
        return answer;
    }
    let length = answer
        .header("content-length")
        .map(|l| l.parse::<usize>().unwrap());
    let body_start = end + 4;
    loop {
        let have = bytes.len() - body_start;
        if length.is_some_and(|l| have >= l) {
            break;
        }
        if read(&mut bytes) == 0 {
            assert!(length.is_none(), "closed early: {answer:#?}");
            break;
        }
    }
    let body_end = length.map_or(bytes.len(), |l| body_start + l);
    answer.body = String::from_utf8(bytes[body_start..body_end].to_vec()).unwrap();
    answer
}

/// `GET path` for `host` with `extra` header lines (each ending in `\r\n`).
fn get(host: &str, path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

/// Asserts gorouter's error-writer headers and returns the `X-Cf-Routererror`.
fn assert_gorouter_error<'a>(answer: &'a Raw, status_line: &str, body: &str) -> &'a str {
    assert_eq!(answer.status_line(), status_line, "{answer:#?}");
    assert_eq!(answer.body, body, "{answer:#?}");
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{answer:#?}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{answer:#?}"
    );
    // gorouter sets X-Vcap-Request-Id on the app's answers only, not on its own.
    assert_eq!(answer.header("x-vcap-request-id"), None, "{answer:#?}");
    answer
        .header("x-cf-routererror")
        .unwrap_or_else(|| panic!("no X-Cf-Routererror: {answer:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_and_dead_instances_get_gorouters_answers_byte_for_byte() {
    let dead = closed_port();
    let router = Router::start(&[Route::new("down", dead)]).unwrap();

    let answer = raw(
        router.plain,
        &get("nope.apps.wscheck.test", "/", "Connection: close\r\n"),
    );
    let error = assert_gorouter_error(
        &answer,
        "HTTP/1.1 404 Not Found",
        "404 Not Found: Requested route ('nope.apps.wscheck.test') does not exist.\n",
    );
    assert_eq!(error, "unknown_route");
    assert_eq!(answer.header("cache-control"), Some("no-cache, no-store"));
    // The host as the client sent it (gorouter quotes r.Host), and plain text whatever the
    // extension of the path.
    let answer = raw(
        router.plain,
        &get("Nope.apps.wscheck.test:80", "/index.html", ""),
    );
    assert_gorouter_error(
        &answer,
        "HTTP/1.1 404 Not Found",
        "404 Not Found: Requested route ('Nope.apps.wscheck.test:80') does not exist.\n",
    );

    let answer = raw(
        router.plain,
        &get("down.apps.wscheck.test", "/.wscheck/ws", ""),
    );
    let error = assert_gorouter_error(
        &answer,
        "HTTP/1.1 502 Bad Gateway",
        "502 Bad Gateway: Registered endpoint failed to handle the request.\n",
    );
    assert_eq!(
        error,
        format!("endpoint_failure (dial tcp {dead}: connect: connection refused)"),
        "{}",
        router.error_log()
    );
    assert_eq!(answer.header("cache-control"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_and_http_1_0_without_host() {
    let router = Router::start(&[]).unwrap();
    let answer = raw(
        router.tls,
        &get("nope.apps.wscheck.test", "/", "Connection: close\r\n"),
    );
    // Go's words; nginx writes its HTTP/1.1 status line, where Go writes HTTP/1.0.
    assert_eq!(
        answer.status_line(),
        "HTTP/1.1 400 Bad Request",
        "{answer:#?}"
    );
    assert_eq!(
        answer.body,
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    let answer = raw(router.plain, "GET / HTTP/1.0\r\n\r\n");
    let error = assert_gorouter_error(
        &answer,
        "HTTP/1.1 400 Bad Request",
        "400 Bad Request: Request had empty Host header\n",
    );
    assert_eq!(error, "empty_host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cf_app_instance_picks_an_instance_or_gets_gorouters_400s() {
    let (_apps, router) = two_instances().await;
    let host = "pair.apps.wscheck.test";

    // A well-formed header naming an instance that exists reaches that instance, every time,
    // and the app does not see the header.
    for _ in 0..3 {
        for index in ["1", "0"] {
            let answer = raw(
                router.plain,
                &get(
                    host,
                    "/.wscheck/info",
                    &format!("X-Cf-App-Instance: {APP_GUID}:{index}\r\n"),
                ),
            );
            assert_eq!(answer.status_line(), "HTTP/1.1 200 OK", "{answer:#?}");
            let info = answer.info();
            assert_eq!(info.environment.instance_index.as_deref(), Some(index));
            assert_eq!(info.request.header("x-cf-instanceindex"), Some(index));
            assert_eq!(info.request.header("x-cf-app-instance"), None);
        }
    }

    // Well formed, but no such instance: a wrong index, a wrong GUID; on an unknown host too.
    let other_guid = "0123abcd-0000-4000-8000-00000000beef";
    for (host, guid, index) in [
        (host, APP_GUID, "7"),
        (host, APP_GUID, "01"),
        (host, other_guid, "0"),
        ("nope.apps.wscheck.test", APP_GUID, "0"),
    ] {
        let answer = raw(
            router.plain,
            &get(
                host,
                "/.wscheck/ws",
                &format!("X-Cf-App-Instance: {guid}:{index}\r\n"),
            ),
        );
        let error = assert_gorouter_error(
            &answer,
            "HTTP/1.1 400 Bad Request",
            &format!(
                "400 Bad Request: Requested instance ('{index}') with guid ('{guid}') does not exist for route ('{host}')\n"
            ),
        );
        assert_eq!(error, "unknown_route");
        assert_eq!(answer.header("cache-control"), Some("no-cache, no-store"));
    }

    // Malformed (gorouter's regex: lower-case GUID, a colon, digits), on any host.
    let upper = format!("{}:0", APP_GUID.to_uppercase());
    for (host, value) in [
        (host, "garbage"),
        (host, APP_GUID),
        (host, &format!("{APP_GUID}:")),
        (host, &format!("{APP_GUID}:x")),
        (host, &format!("{APP_GUID}:0:1")),
        (host, &upper),
        ("nope.apps.wscheck.test", "garbage"),
    ] {
        let answer = raw(
            router.plain,
            &get(host, "/", &format!("X-Cf-App-Instance: {value}\r\n")),
        );
        let error = assert_gorouter_error(
            &answer,
            "HTTP/1.1 400 Bad Request",
            "400 Bad Request: Invalid X-CF-App-Instance Header\n",
        );
        assert_eq!(error, "invalid_cf_app_instance_header", "{value}");
        assert_eq!(answer.header("cache-control"), Some("no-cache, no-store"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sees_gorouters_headers_and_which_instance_it_is() {
    let (_apps, router) = two_instances().await;
    let host = "pair.apps.wscheck.test";

    // Round robin: both instances answer, and each is told its own index and instance id.
    let mut seen = Vec::new();
    let mut request_ids = Vec::new();
    for _ in 0..4 {
        let answer = raw(
            router.plain,
            &get(
                host,
                "/.wscheck/info",
                "X-Forwarded-Host: spoofed.example\r\nX-Cf-Instanceindex: 9\r\n",
            ),
        );
        assert_eq!(answer.status_line(), "HTTP/1.1 200 OK", "{answer:#?}");
        let info = answer.info();
        let request = &info.request;
        let index = info.environment.instance_index.clone().unwrap();
        assert_eq!(request.header("x-cf-instanceindex"), Some(index.as_str()));
        let guid = instance_guid(index.parse().unwrap());
        assert_eq!(request.header("x-cf-instanceid"), Some(guid.as_str()));
        assert_eq!(request.header("x-cf-applicationid"), Some(APP_GUID));
        assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(request.header("x-forwarded-proto"), Some("http"));
        let id = request.header("x-vcap-request-id").unwrap();
        assert!(is_dashed_uuid(id), "{id}");
        // The app's answer carries the same id.
        assert_eq!(answer.header("x-vcap-request-id"), Some(id), "{answer:#?}");
        request_ids.push(id.to_owned());
        let start = request.header("x-request-start").unwrap();
        assert!(is_recent_millis(start), "{start}");
        assert_eq!(request.header("host"), Some(host));
        // A plain request reaches the app with Connection: close and no Upgrade.
        assert_eq!(request.header("connection"), Some("close"));
        assert_eq!(request.header("upgrade"), None);
        // gorouter adds no X-Forwarded-Host (a client's own passes through untouched).
        assert_eq!(
            request
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-host"))
                .map(|h| h.value.as_str())
                .collect::<Vec<_>>(),
            ["spoofed.example"]
        );
        seen.push(index);
    }
    assert_eq!(seen.iter().filter(|i| *i == "0").count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|i| *i == "1").count(), 2, "{seen:?}");
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(
        request_ids.len(),
        4,
        "a fresh X-Vcap-Request-Id per request"
    );

    // What a load balancer in front set is kept: its X-Forwarded-Proto and X-Request-Start;
    // its X-Forwarded-For gets the client appended. A client's X-Vcap-Request-Id is replaced.
    let answer = raw(
        router.plain,
        &get(
            host,
            "/.wscheck/info",
            "X-Forwarded-Proto: https\r\nX-Request-Start: 12345\r\nX-Forwarded-For: 203.0.113.9\r\nX-Vcap-Request-Id: spoofed\r\n",
        ),
    );
    let info = answer.info();
    assert_eq!(info.request.header("x-forwarded-proto"), Some("https"));
    assert_eq!(info.request.header("x-request-start"), Some("12345"));
    assert_eq!(
        info.request.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert!(is_dashed_uuid(
        info.request.header("x-vcap-request-id").unwrap()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_needs_connection_upgrade_and_the_101_carries_the_request_id() {
    let app = fixtures::start_bundled(wscheck_server::Config::default())
        .await
        .unwrap();
    let router = Router::start(&[Route::new("echo", app.addr)]).unwrap();
    let host = "echo.apps.wscheck.test";
    let handshake = |connection: &str| {
        get(
            host,
            "/.wscheck/ws",
            &format!(
                "Upgrade: websocket\r\n{connection}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            ),
        )
    };

    // Without Connection: upgrade the app gets a plain GET and answers its own 426.
    for connection in ["", "Connection: keep-alive\r\n", "Connection: close\r\n"] {
        let answer = raw(router.plain, &handshake(connection));
        assert_eq!(
            answer.status_line(),
            "HTTP/1.1 426 Upgrade Required",
            "{connection:?}: {answer:#?}"
        );
        assert!(answer.header("x-wscheck-server").is_some(), "{answer:#?}");
        assert_eq!(answer.header("x-cf-routererror"), None);
        assert!(
            answer
                .body
                .contains("without: Upgrade: websocket, Connection: Upgrade."),
            "{answer:#?}"
        );
        assert!(is_dashed_uuid(answer.header("x-vcap-request-id").unwrap()));
    }

    // With it (any case, among other tokens) the 101 comes back, with X-Vcap-Request-Id.
    for connection in [
        "Connection: Upgrade\r\n",
        "Connection: keep-alive, UPGRADE\r\n",
    ] {
        let answer = raw(router.plain, &handshake(connection));
        assert_eq!(
            answer.status_line(),
            "HTTP/1.1 101 Switching Protocols",
            "{connection:?}: {answer:#?}"
        );
        assert_eq!(
            answer.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert!(is_dashed_uuid(answer.header("x-vcap-request-id").unwrap()));
    }

    // The id on the 101 is the one the app received.
    let tcp = tokio::net::TcpStream::connect(router.plain).await.unwrap();
    let (mut ws, response) =
        tokio_tungstenite::client_async(format!("ws://{host}/.wscheck/ws"), tcp)
            .await
            .unwrap();
    let id = response
        .headers()
        .get("x-vcap-request-id")
        .expect("X-Vcap-Request-Id on the 101")
        .to_str()
        .unwrap()
        .to_owned();
    let first = ws.next().await.unwrap().unwrap();
    let info: Info = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(info.request.header("x-vcap-request-id"), Some(id.as_str()));
    assert_eq!(info.request.header("connection"), Some("upgrade"));
    assert_eq!(info.request.header("upgrade"), Some("websocket"));
    assert_eq!(info.request.header("x-cf-instanceindex"), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_accepts_is_a_502_after_gorouters_dial_timeout() {
    // The kernel drops the SYNs: the router's dial gives up after 5 s, gorouter's default
    // endpoint_dial_timeout.
    let full = fixtures::full_backlog().unwrap();
    let router = Router::start(&[Route::new("stuck", full.addr)]).unwrap();
    let started = Instant::now();
    let answer = raw(router.plain, &get("stuck.apps.wscheck.test", "/", ""));
    let error = assert_gorouter_error(
        &answer,
        "HTTP/1.1 502 Bad Gateway",
        "502 Bad Gateway: Registered endpoint failed to handle the request.\n",
    );
    assert_eq!(
        error,
        format!("endpoint_failure (dial tcp {}: i/o timeout)", full.addr)
    );
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(4500)..Duration::from_secs(9)).contains(&waited),
        "{waited:?}"
    );
}

/// Two bundled servers telling their `CF_INSTANCE_INDEX` (0 and 1), behind the route
/// `pair.apps.wscheck.test`.
async fn two_instances() -> (Vec<fixtures::Bundled>, Router) {
    let mut apps = Vec::new();
    for index in ["0", "1"] {
        let mut config = wscheck_server::Config::default();
        config.environment.instance_index = Some(index.to_owned());
        apps.push(fixtures::start_bundled(config).await.unwrap());
    }
    let router = Router::start(&[Route::instances(
        "pair",
        apps.iter().map(|a| a.addr).collect(),
    )])
    .unwrap();
    (apps, router)
}

// ---- Session affinity (gorouter's sticky sessions) ----

/// A Node app that tells which instance answered (its `X-Cf-Instanceindex`, in the body, on
/// the 101 as `X-Instance-Index` and as the first WebSocket message) and sets
/// `JSESSIONID` on `/login` (first of its cookies), `/login-later` (second), `/logout`
/// (deleting it) and `/own` (next to its own `__VCAP_ID__`).
const STICKY_APP: &str = "const http = require('http'); const { WebSocketServer } = require('ws'); \
     const srv = http.createServer((q, s) => { \
       const i = q.headers['x-cf-instanceindex'] || '?'; \
       const cookies = { \
         '/login': ['JSESSIONID=s' + i + '; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Max-Age=3600; Secure; SameSite=Lax; Partitioned', 'theme=dark; Path=/'], \
         '/login-later': ['theme=dark; Path=/', 'JSESSIONID=t' + i + '; Path=/'], \
         '/logout': ['JSESSIONID=; Path=/; Expires=Thu, 01-Jan-1970 00:00:00 GMT; Max-Age=0; SameSite=strict'], \
         '/own': ['JSESSIONID=o' + i, '__VCAP_ID__=own'], \
       }[q.url]; \
       if (cookies) s.setHeader('Set-Cookie', cookies); \
       s.setHeader('Content-Type', 'text/plain'); s.end(i); }); \
     const wss = new WebSocketServer({ server: srv }); \
     wss.on('headers', (h, q) => h.push('X-Instance-Index: ' + q.headers['x-cf-instanceindex'])); \
     wss.on('connection', (ws, q) => ws.send(q.headers['x-cf-instanceindex'])); \
     srv.listen(Number(process.env.PORT), '127.0.0.1');";

const STICKY_HOST: &str = "sticky.apps.wscheck.test";

/// Two instances of `STICKY_APP` behind `sticky.apps.wscheck.test`, and their addresses.
fn sticky_pair() -> (Vec<wscheck_testkit::ChildGuard>, Vec<SocketAddr>, Router) {
    let (guards, addrs): (Vec<_>, Vec<_>) =
        (0..2).map(|_| crate::support::node_app(STICKY_APP)).unzip();
    let router = Router::start(&[Route::instances("sticky", addrs.clone())]).unwrap();
    (guards, addrs, router)
}

/// `GET path` on the sticky route with `Cookie: cookie` (none when empty) and `extra`.
fn sticky_get(router: &Router, path: &str, cookie: &str, extra: &str) -> Raw {
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    let answer = raw(
        router.plain,
        &get(STICKY_HOST, path, &format!("{cookie}{extra}")),
    );
    assert_eq!(
        answer.status_line(),
        "HTTP/1.1 200 OK",
        "{answer:#?}\n{}",
        router.error_log()
    );
    answer
}

/// The `__VCAP_ID__` Set-Cookie lines of `answer`.
fn vcap_cookies(answer: &Raw) -> Vec<&str> {
    answer
        .headers("set-cookie")
        .into_iter()
        .filter(|c| c.starts_with("__VCAP_ID__="))
        .collect()
}

/// The instance indexes answering `count` requests with `cookie`.
fn answered_by(router: &Router, cookie: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| sticky_get(router, "/", cookie, "").body)
        .collect()
}

/// Round robin: `seen` alternates between the two instances.
fn assert_alternates(seen: &[String]) {
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]) && seen.iter().all(|i| i == "0" || i == "1"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_pin_jsessionid_requests_to_the_vcap_id_instance() {
    let (_apps, addrs, router) = sticky_pair();

    // No cookies: balanced, and no __VCAP_ID__ handed out.
    for _ in 0..4 {
        assert!(vcap_cookies(&sticky_get(&router, "/", "", "")).is_empty());
    }
    assert_alternates(&answered_by(&router, "", 4));

    // The app sets JSESSIONID: the router adds __VCAP_ID__ naming the instance that
    // answered, after the app's own cookies.
    let login = sticky_get(&router, "/login", "", "");
    let index = login.body.clone();
    let other = if index == "0" { "1" } else { "0" };
    let guid = instance_guid(index.parse().unwrap());
    let set_cookies = login.headers("set-cookie");
    assert_eq!(set_cookies.len(), 3, "{login:#?}");
    assert!(set_cookies[0].starts_with(&format!("JSESSIONID=s{index};")));
    assert!(
        set_cookies[2].starts_with(&format!("__VCAP_ID__={guid}; Path=/")),
        "{login:#?}"
    );

    // Both cookies: always that instance (a round robin would alternate), and nothing set.
    let both = format!("JSESSIONID=s{index}; __VCAP_ID__={guid}");
    for _ in 0..6 {
        let answer = sticky_get(&router, "/", &both, "");
        assert_eq!(answer.body, index, "{answer:#?}");
        assert!(vcap_cookies(&answer).is_empty(), "{answer:#?}");
    }
    // Its host:port works too (gorouter's pool indexes both); the answer re-pins to the guid.
    let addr = addrs[index.parse::<usize>().unwrap()];
    let answer = sticky_get(
        &router,
        "/",
        &format!("JSESSIONID=x; __VCAP_ID__={addr}"),
        "",
    );
    assert_eq!(answer.body, index);
    assert_eq!(
        vcap_cookies(&answer),
        [format!("__VCAP_ID__={guid}; Path=/; HttpOnly")]
    );

    // __VCAP_ID__ alone, or JSESSIONID alone: balanced again.
    assert_alternates(&answered_by(&router, &format!("__VCAP_ID__={guid}"), 4));
    assert_alternates(&answered_by(&router, &format!("JSESSIONID=s{index}"), 4));
    // Cookie names are case-sensitive, as in Go.
    assert_alternates(&answered_by(
        &router,
        &format!("jsessionid=s; __VCAP_ID__={guid}"),
        4,
    ));

    // A __VCAP_ID__ naming no instance: balanced, and re-pinned to the one that answered.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let answer = sticky_get(&router, "/", "JSESSIONID=s; __VCAP_ID__=gone", "");
        let g = instance_guid(answer.body.parse().unwrap());
        assert_eq!(
            vcap_cookies(&answer),
            [format!("__VCAP_ID__={g}; Path=/; HttpOnly")]
        );
        seen.push(answer.body);
    }
    assert_alternates(&seen);

    // X-Cf-App-Instance wins over the sticky cookies, and re-pins to its instance.
    let answer = sticky_get(
        &router,
        "/",
        &both,
        &format!("X-Cf-App-Instance: {APP_GUID}:{other}\r\n"),
    );
    assert_eq!(answer.body, other);
    let other_guid = instance_guid(other.parse().unwrap());
    assert_eq!(
        vcap_cookies(&answer),
        [format!("__VCAP_ID__={other_guid}; Path=/; HttpOnly")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vcap_id_cookie_takes_gorouters_attributes_from_jsessionid() {
    let (_apps, _addrs, router) = sticky_pair();
    // Each path on instance 0, then on instance 1 (X-Cf-App-Instance), with the guid.
    let on = |path: &str| {
        ["0", "1"].map(|index| {
            let pick = format!("X-Cf-App-Instance: {APP_GUID}:{index}\r\n");
            let answer = sticky_get(&router, path, "", &pick);
            assert_eq!(answer.body, index, "{answer:#?}");
            (answer, instance_guid(index.parse().unwrap()))
        })
    };

    // Expires, Secure, SameSite and Partitioned copied; a positive Max-Age is not.
    for (answer, guid) in on("/login") {
        assert_eq!(
            vcap_cookies(&answer),
            [format!(
                "__VCAP_ID__={guid}; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly; Secure; SameSite=Lax; Partitioned"
            )],
            "{answer:#?}"
        );
    }
    // An emptied JSESSIONID that expires now: __VCAP_ID__ goes with it (Max-Age=0, the
    // Expires date re-written as Go writes it, SameSite's value capitalised).
    for (answer, guid) in on("/logout") {
        assert_eq!(
            vcap_cookies(&answer),
            [format!(
                "__VCAP_ID__={guid}; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; SameSite=Strict"
            )],
            "{answer:#?}"
        );
    }
    // JSESSIONID after another cookie still counts.
    for (answer, guid) in on("/login-later") {
        assert_eq!(answer.headers("set-cookie").len(), 3, "{answer:#?}");
        assert_eq!(
            vcap_cookies(&answer),
            [format!("__VCAP_ID__={guid}; Path=/; HttpOnly")]
        );
    }
    // An app that sets __VCAP_ID__ itself keeps it alone.
    for (answer, _) in on("/own") {
        assert_eq!(
            answer.headers("set-cookie"),
            [
                "JSESSIONID=o".to_owned() + &answer.body,
                "__VCAP_ID__=own".to_owned()
            ],
            "{answer:#?}"
        );
    }

    // A sticky request whose answer sets JSESSIONID again gets __VCAP_ID__ again.
    let guid = instance_guid(1);
    let answer = sticky_get(
        &router,
        "/login-later",
        &format!("JSESSIONID=t1; __VCAP_ID__={guid}"),
        "",
    );
    assert_eq!(answer.body, "1");
    assert_eq!(
        vcap_cookies(&answer),
        [format!("__VCAP_ID__={guid}; Path=/; HttpOnly")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_with_the_sticky_cookies_lands_on_the_vcap_id_instance() {
    let (_apps, _addrs, router) = sticky_pair();
    let login = sticky_get(&router, "/login", "", "");
    let index = login.body.clone();
    let guid = instance_guid(index.parse().unwrap());
    let handshake = |cookie: &str| {
        get(
            STICKY_HOST,
            "/",
            &format!(
                "Cookie: {cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            ),
        )
    };

    // Pinned: every 101 comes from that instance, with no cookie of the router's.
    let both = format!("JSESSIONID=s{index}; __VCAP_ID__={guid}");
    for _ in 0..6 {
        let answer = raw(router.plain, &handshake(&both));
        assert_eq!(
            answer.status_line(),
            "HTTP/1.1 101 Switching Protocols",
            "{answer:#?}"
        );
        assert_eq!(
            answer.header("x-instance-index"),
            Some(index.as_str()),
            "{answer:#?}"
        );
        assert!(vcap_cookies(&answer).is_empty(), "{answer:#?}");
    }
    // Pinned to no instance: balanced, and the 101 re-pins (gorouter sets it on the 101).
    let answer = raw(router.plain, &handshake("JSESSIONID=s; __VCAP_ID__=gone"));
    assert_eq!(
        answer.status_line(),
        "HTTP/1.1 101 Switching Protocols",
        "{answer:#?}"
    );
    let g = instance_guid(answer.header("x-instance-index").unwrap().parse().unwrap());
    assert_eq!(
        vcap_cookies(&answer),
        [format!("__VCAP_ID__={g}; Path=/; HttpOnly")]
    );

    // A real client: the socket is open to that instance.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    for _ in 0..2 {
        let mut request = format!("ws://{STICKY_HOST}/")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", both.parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(router.plain).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert_eq!(first.to_text().unwrap(), index);
    }
}
