//! Every diagnosis code, produced for real by a peer on loopback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wscheck_testkit::fixtures::{self, Behaviour, http_response};
use wscheck_testkit::pki::TestCa;

use crate::support::{HOST, args, check, closed_port, code_of, node_app, only, single};

fn cfg() -> wscheck_server::Config {
    wscheck_server::Config::default()
}

/// A CA the prober trusts (written for `--cacert`), and its file.
struct Trust {
    ca: TestCa,
    _dir: std::path::PathBuf,
    cacert: std::path::PathBuf,
}

fn trust() -> Trust {
    let ca = TestCa::new("wscheck test CA").unwrap();
    let dir = wscheck_testkit::tempdir("ca").unwrap();
    let cacert = ca.write(&dir).unwrap();
    Trust {
        ca,
        _dir: dir,
        cacert,
    }
}

async fn refusal(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> String {
    let peer = fixtures::start(Behaviour::Respond(http_response(
        status, reason, headers, body,
    )))
    .await
    .unwrap();
    let (code, _) = code_of(&only(&format!("ws://{HOST}/"), peer.addr)).await;
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_through_a_tls_router_with_echo_and_what_reached_the_app() {
    let t = trust();
    let app = fixtures::start_bundled(cfg()).await.unwrap();
    let acceptor = fixtures::tls_acceptor(&t.ca.leaf(&[HOST]).unwrap(), &t.ca).unwrap();
    let front = fixtures::start_tls_front(app.addr, acceptor).await.unwrap();
    let mut a = only(&format!("wss://{HOST}/"), front.addr);
    a.set_path("--cacert", &t.cacert);
    let report = check(&a).await;
    let probe = single(&report);
    assert_eq!(probe.diagnosis.code.as_str(), "ok", "{probe:#?}");
    assert_eq!(probe.http_status, Some(101));
    let tls = probe.result.tls.as_ref().unwrap();
    assert!(tls.verified);
    assert_eq!(
        tls.alpn.as_deref(),
        Some("http/1.1"),
        "only http/1.1 is offered"
    );
    assert_eq!(tls.certificate.as_ref().unwrap().sans, [HOST]);
    let echo = probe.result.echo.as_ref().unwrap();
    assert!(echo.verified);
    assert_eq!(
        echo.greeting.as_deref(),
        Some("Hi, this is the Echo-Server")
    );
    assert_eq!(
        echo.reply.as_deref(),
        Some(format!("Echo: {}", echo.sent).as_str())
    );
    // Host and Origin as a browser sends them.
    assert!(
        probe.result.request.contains(&format!("Host: {HOST}")),
        "{:?}",
        probe.result.request
    );
    assert!(
        probe
            .result
            .request
            .contains(&format!("Origin: https://{HOST}")),
        "{:?}",
        probe.result.request
    );
    // Header names are case-insensitive; tungstenite writes user headers in lower case.
    assert!(
        probe
            .result
            .request
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("user-agent: wscheck/")),
        "{:?}",
        probe.result.request
    );
    let app_view = report.app.as_ref().expect("the bundled server was read");
    assert!(
        app_view
            .forwarded_headers
            .iter()
            .any(|h| h.name == "X-Forwarded-Proto" && h.value == "https")
    );
    assert!(report.verdict.ok && report.verdict.healthy);
    assert_eq!(
        report.verdict.recommended_url.as_deref(),
        Some(format!("wss://{HOST}/").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_unverified_echo_when_an_unknown_app_stays_silent() {
    let peer = fixtures::start(Behaviour::WsSilent).await.unwrap();
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), peer.addr)).await;
    assert_eq!(code, "ok_unverified_echo");
    assert!(report.verdict.ok, "an app that does not echo still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failure() {
    // wscheck refuses such a TARGET itself; as a --connect-to host, a label longer than 63
    // octets fails in the resolver library: no query leaves the machine.
    let host = format!("{}.wscheck.test", "a".repeat(64));
    let mut a = args(&format!("wss://{HOST}/"));
    a.switch("--only")
        .add("--connect-to", format!("::{host}:443"));
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "dns_failure");
    assert_eq!(single(&report).result.stage.as_str(), "dns");
    assert_eq!(
        single(&report).diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::Nobody
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_and_connect_timeout() {
    let (code, _) = code_of(&only(&format!("ws://{HOST}:8080/"), closed_port())).await;
    assert_eq!(code, "connect_refused");

    let full = fixtures::full_backlog().unwrap();
    let mut a = only(&format!("ws://{HOST}:8080/"), full.addr);
    a.set("--connect-timeout", "800ms");
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "connect_timeout", "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_told_apart() {
    let t = trust();
    let other_ca = TestCa::new("Corporate Proxy CA").unwrap();
    let cases = [
        (
            fixtures::tls_acceptor(&other_ca.leaf(&[HOST]).unwrap(), &other_ca).unwrap(),
            "tls_cert_untrusted",
            "Corporate Proxy CA",
        ),
        (
            fixtures::tls_acceptor(&t.ca.leaf(&["other.wscheck.test"]).unwrap(), &t.ca).unwrap(),
            "tls_cert_name_mismatch",
            "other.wscheck.test",
        ),
        (
            fixtures::tls_acceptor(&t.ca.expired_leaf(&[HOST]).unwrap(), &t.ca).unwrap(),
            "tls_cert_expired",
            "days ago",
        ),
    ];
    for (acceptor, expected, detail) in cases {
        let peer = fixtures::start_tls(Behaviour::WsSilent, acceptor)
            .await
            .unwrap();
        let mut a = only(&format!("wss://{HOST}/"), peer.addr);
        a.set_path("--cacert", &t.cacert);
        let (code, report) = code_of(&a).await;
        assert_eq!(code, expected);
        let probe = single(&report);
        assert_eq!(probe.result.stage.as_str(), "tls");
        assert!(
            probe.diagnosis.detail.contains(detail),
            "{}",
            probe.diagnosis.detail
        );
        assert!(
            probe
                .result
                .tls
                .as_ref()
                .unwrap()
                .verification_error
                .is_some()
        );

        // -k gets through, and still says what was wrong.
        a.switch("--insecure");
        let (code, report) = code_of(&a).await;
        assert_eq!(code, "ok_unverified_echo");
        assert!(!single(&report).result.tls.as_ref().unwrap().verified);
    }

    let closer = fixtures::start(Behaviour::CloseOnFirstBytes).await.unwrap();
    let (code, _) = code_of(&only(&format!("wss://{HOST}/"), closer.addr)).await;
    assert_eq!(code, "tls_handshake_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scheme_for_the_port_both_ways() {
    let t = trust();
    let app = fixtures::start_bundled(cfg()).await.unwrap();
    let (code, report) = code_of(&only(&format!("wss://{HOST}:8080/"), app.addr)).await;
    assert_eq!(code, "tls_to_plain_port", "{report:#?}");

    let acceptor = fixtures::tls_acceptor(&t.ca.leaf(&[HOST]).unwrap(), &t.ca).unwrap();
    let front = fixtures::start_tls_front(app.addr, acceptor).await.unwrap();
    let (code, report) = code_of(&only(&format!("ws://{HOST}:443/"), front.addr)).await;
    assert_eq!(code, "plain_to_tls_port", "{report:#?}");

    // nginx's own answer to plain HTTP on its TLS port.
    let code = refusal(
        400,
        "Bad Request",
        &[("Server", "nginx")],
        "<html>400 The plain HTTP request was sent to HTTPS port</html>",
    )
    .await;
    assert_eq!(code, "plain_to_tls_port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gorouter_errors() {
    let cases = [
        (
            404,
            "Not Found",
            "unknown_route",
            "404 Not Found: Requested route ('app.wscheck.test') does not exist.",
            "route_not_found",
        ),
        (
            503,
            "Service Unavailable",
            "no_endpoints",
            "503 Service Unavailable: Requested route ('app.wscheck.test') has no available endpoints.",
            "no_app_instances",
        ),
        (
            502,
            "Bad Gateway",
            "endpoint_failure (dial tcp 10.0.0.1:8080: connect: connection refused)",
            "502 Bad Gateway: Registered endpoint failed to handle the request.",
            "app_unreachable",
        ),
        (
            503,
            "Service Unavailable",
            "Connection Limit Reached",
            "",
            "connection_limit_reached",
        ),
        (
            503,
            "Service Unavailable",
            "route_service_unsupported",
            "",
            "route_service_unsupported",
        ),
        (
            400,
            "Bad Request",
            "empty_host",
            "400 Bad Request: Request had empty Host header",
            "empty_host",
        ),
        // gorouter's answers to X-Cf-App-Instance (routing-release 0.317, byte for byte).
        (
            400,
            "Bad Request",
            "unknown_route",
            "400 Bad Request: Requested instance ('7') with guid ('5a9e1c1e-0000-4000-8000-0000000000a1') does not exist for route ('app.wscheck.test')",
            "instance_not_found",
        ),
        (
            400,
            "Bad Request",
            "invalid_cf_app_instance_header",
            "400 Bad Request: Invalid X-CF-App-Instance Header",
            "invalid_cf_app_instance_header",
        ),
    ];
    for (status, reason, router_error, body, expected) in cases {
        let peer = fixtures::start(Behaviour::Respond(http_response(
            status,
            reason,
            &[("X-Cf-Routererror", router_error)],
            body,
        )))
        .await
        .unwrap();
        let (code, report) = code_of(&only(&format!("ws://{HOST}/"), peer.addr)).await;
        assert_eq!(code, expected, "{router_error}");
        let probe = single(&report);
        assert_eq!(
            probe.diagnosis.answered_by,
            wscheck::diagnose::AnsweredBy::Gorouter
        );
        assert_eq!(probe.http_status, Some(status));
        assert!(
            probe
                .result
                .response
                .as_ref()
                .unwrap()
                .body
                .starts_with(body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_and_proxy_refusals() {
    let marked = [("X-Wscheck-Server", "0.1.0")];
    assert_eq!(refusal(426, "Upgrade Required", &marked, "426 Upgrade Required: a WebSocket handshake reached the app without: Upgrade: websocket, Connection: Upgrade.").await, "upgrade_header_stripped");
    assert_eq!(
        refusal(426, "Upgrade Required", &[], "Upgrade Required").await,
        "upgrade_header_stripped"
    );
    assert_eq!(
        refusal(
            200,
            "OK",
            &[("Content-Type", "text/html")],
            "<html>hello</html>"
        )
        .await,
        "not_a_websocket_endpoint"
    );
    assert_eq!(
        refusal(403, "Forbidden", &[], "WebSockets are disabled").await,
        "approuter_websockets_disabled"
    );
    assert_eq!(
        refusal(
            403,
            "Forbidden",
            &[],
            "Origin https://evil.example is not allowed"
        )
        .await,
        "origin_rejected"
    );
    assert_eq!(refusal(403, "Forbidden", &[], "").await, "forbidden");
    assert_eq!(
        refusal(401, "Unauthorized", &[("WWW-Authenticate", "Bearer")], "").await,
        "auth_required"
    );
    assert_eq!(
        refusal(
            302,
            "Found",
            &[(
                "Location",
                "https://login.example.test/oauth/authorize?client_id=x"
            )],
            ""
        )
        .await,
        "auth_required"
    );
    assert_eq!(
        refusal(
            301,
            "Moved Permanently",
            &[("Location", "https://app.wscheck.test/")],
            ""
        )
        .await,
        "redirected"
    );
    assert_eq!(
        refusal(404, "Not Found", &[], "Cannot GET /").await,
        "path_not_found"
    );
    assert_eq!(
        refusal(500, "Internal Server Error", &[], "boom").await,
        "unexpected_status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_426_from_the_bundled_server_names_the_proxy() {
    let app = fixtures::start_bundled(cfg()).await.unwrap();
    // A proxy that forgets the hop-by-hop headers: forward the head without them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let backend = app.addr;
    let proxy = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = client.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stripped: String = head
                    .split("\r\n")
                    .filter(|l| {
                        !l.to_ascii_lowercase().starts_with("upgrade:")
                            && !l.to_ascii_lowercase().starts_with("connection:")
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n");
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                upstream.write_all(stripped.as_bytes()).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), proxy_addr)).await;
    proxy.abort();
    assert_eq!(code, "upgrade_header_stripped");
    let probe = single(&report);
    assert_eq!(
        probe.diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::BundledServer
    );
    assert!(
        probe
            .diagnosis
            .detail
            .contains("a proxy between the client and the app removed the headers"),
        "{}",
        probe.diagnosis.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_failures() {
    let closer = fixtures::start(Behaviour::CloseOnFirstBytes).await.unwrap();
    assert_eq!(
        code_of(&only(&format!("ws://{HOST}/"), closer.addr))
            .await
            .0,
        "closed_during_handshake"
    );

    let hole = fixtures::start(Behaviour::BlackHole).await.unwrap();
    let mut a = only(&format!("ws://{HOST}/"), hole.addr);
    a.set("--timeout", "1s");
    assert_eq!(code_of(&a).await.0, "handshake_timeout");

    let ssh = fixtures::start(Behaviour::NotHttp).await.unwrap();
    assert_eq!(
        code_of(&only(&format!("ws://{HOST}/"), ssh.addr)).await.0,
        "not_http"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_failures() {
    let greeter = fixtures::start(Behaviour::WsGreetThenSilent).await.unwrap();
    let mut a = only(&format!("ws://{HOST}/"), greeter.addr);
    a.set("--timeout", "2s");
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "echo_timeout", "an article echo server must echo");
    assert!(!report.verdict.ok);

    // An app that is not an echo server (push, chat, greeting-only) is working: what it
    // sent is shown, and the exit code is 0.
    let other = fixtures::start(Behaviour::WsReply("{\"type\":\"hello\"}".into()))
        .await
        .unwrap();
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), other.addr)).await;
    assert_eq!(code, "ok_unverified_echo");
    assert!(report.verdict.ok);
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("the app sent: {\"type\":\"hello\"}"),
        "{detail}"
    );

    // Only a peer known to echo (here by the article's greeting) that answers something
    // else is a mismatch.
    let altered = fixtures::start(Behaviour::WsGreetThenReply("Echo: something else".into()))
        .await
        .unwrap();
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), altered.addr)).await;
    assert_eq!(code, "echo_mismatch");
    assert!(!report.verdict.ok);

    let closer = fixtures::start(Behaviour::WsClose(1009)).await.unwrap();
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), closer.addr)).await;
    assert_eq!(code, "closed_during_echo");
    assert!(
        single(&report).diagnosis.detail.contains("1009"),
        "{}",
        single(&report).diagnosis.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocols_are_offered_and_the_choice_reported() {
    let app = fixtures::start_bundled(cfg()).await.unwrap();
    let mut a = only(&format!("ws://{HOST}/"), app.addr);
    a.set_all("--subprotocol", ["chat.v2", "chat.v1"]);
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "ok");
    assert_eq!(
        single(&report).result.subprotocol.as_deref(),
        Some("chat.v2")
    );

    let ignorer = fixtures::start(Behaviour::WsIgnoreSubprotocols)
        .await
        .unwrap();
    let mut a = only(&format!("ws://{HOST}/"), ignorer.addr);
    a.set_all("--subprotocol", ["chat.v2"]);
    assert_eq!(code_of(&a).await.0, "subprotocol_not_accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_is_sent_replaced_or_left_out() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let peer = fixtures::start(Behaviour::WsEchoRecording(log.clone()))
        .await
        .unwrap();
    let mut a = only(&format!("ws://{HOST}/"), peer.addr);
    check(&a).await;
    a.set("--origin", "https://ui.wscheck.test");
    check(&a).await;
    a.unset("--origin");
    a.switch("--no-origin");
    check(&a).await;
    let heads = log.lock().unwrap().clone();
    assert_eq!(heads.len(), 3);
    assert!(
        // A browser on an http:// page sends an http:// Origin with ws://.
        heads[0].contains(&format!("Origin: http://{HOST}\r\n")),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].contains("Origin: https://ui.wscheck.test\r\n"),
        "{}",
        heads[1]
    );
    assert!(
        !heads[2].to_ascii_lowercase().contains("origin:"),
        "{}",
        heads[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_over_plaintext_unless_allowed() {
    let t = trust();
    let log = Arc::new(Mutex::new(Vec::new()));
    let plain = fixtures::start(Behaviour::WsEchoRecording(log.clone()))
        .await
        .unwrap();
    let acceptor = fixtures::tls_acceptor(&t.ca.leaf(&[HOST]).unwrap(), &t.ca).unwrap();
    let tls = fixtures::start_tls(Behaviour::WsEchoRecording(log.clone()), acceptor)
        .await
        .unwrap();

    let mut a = args(&format!("user:pw@{HOST}"));
    a.add("--header", "Cookie: JSESSIONID=abc123");
    a.set_path("--cacert", &t.cacert);
    a.set("--ports", "default");
    // The first matching rule wins: port 80 to the plain peer, the rest to the TLS one.
    a.set_all(
        "--connect-to",
        vec![
            format!(":80:{}:{}", plain.addr.ip(), plain.addr.port()),
            format!("::{}:{}", tls.addr.ip(), tls.addr.port()),
        ],
    );
    let report = check(&a).await;
    let wss = report
        .probes
        .iter()
        .find(|p| p.result.candidate.url.starts_with("wss://"))
        .unwrap();
    let ws = report
        .probes
        .iter()
        .find(|p| p.result.candidate.url.starts_with("ws://"))
        .unwrap();
    assert!(
        wss.diagnosis.code.is_ok() && ws.diagnosis.code.is_ok(),
        "{report:#?}"
    );
    assert!(!wss.result.credentials_held_back);
    assert!(ws.result.credentials_held_back);
    assert!(report.notes.iter().any(|n| n.contains("held back")));
    {
        let heads = log.lock().unwrap();
        let over_tls = heads
            .iter()
            .find(|h| {
                h.to_ascii_lowercase()
                    .contains("authorization: basic dxnlcjpwdw==")
            })
            .expect("credentials sent over TLS");
        assert!(
            over_tls
                .to_ascii_lowercase()
                .contains("cookie: jsessionid=abc123"),
            "{over_tls}"
        );
        assert_eq!(
            heads.iter().filter(|h| h.contains("JSESSIONID")).count(),
            1,
            "{heads:?}"
        );
    }
    log.lock().unwrap().clear();
    a.switch("--allow-plaintext-credentials");
    let report = check(&a).await;
    assert!(
        report
            .probes
            .iter()
            .all(|p| !p.result.credentials_held_back)
    );
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|h| h.contains("JSESSIONID"))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_never_gets_an_answer_does_not_delay_the_others() {
    let app = fixtures::start_bundled(cfg()).await.unwrap();
    let hole = fixtures::start(Behaviour::BlackHole).await.unwrap();
    let mut a = args(HOST);
    a.set("--timeout", "3s");
    // ws://:80 goes to a black hole; every other port to the app.
    a.set_all(
        "--connect-to",
        vec![
            format!(":80:{}:{}", hole.addr.ip(), hole.addr.port()),
            format!("::{}:{}", app.addr.ip(), app.addr.port()),
        ],
    );
    a.set("--schemes", "ws");
    let started = Instant::now();
    let report = check(&a).await;
    let elapsed = started.elapsed();
    let (holes, others): (Vec<_>, Vec<_>) = report.probes.iter().partition(|p| {
        p.result.candidate.url.starts_with(&format!("ws://{HOST}/"))
            || p.result.candidate.url.contains(":80/")
    });
    assert!(
        holes
            .iter()
            .all(|p| p.diagnosis.code.as_str() == "handshake_timeout"),
        "{holes:#?}"
    );
    assert!(holes.iter().all(|p| p.result.timings.total >= 2900.0));
    for p in &others {
        assert_eq!(p.diagnosis.code.as_str(), "ok", "{p:#?}");
        assert!(
            p.result.timings.total < 2000.0,
            "{} took {} ms",
            p.result.candidate.url,
            p.result.timings.total
        );
    }
    // The whole report is bounded by one probe's timeout, not the sum (+ the info read).
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// A TLS port that accepts TCP and then says nothing was answered by nobody: not a failed
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_port_is_a_tls_handshake_timeout_answered_by_nobody() {
    let hole = fixtures::start(Behaviour::BlackHole).await.unwrap();
    let mut a = only(&format!("wss://{HOST}/"), hole.addr);
    a.set("--connect-timeout", "1s");
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "tls_handshake_timeout", "{report:#?}");
    assert_eq!(
        single(&report).diagnosis.answered_by,
        wscheck::diagnose::AnsweredBy::Nobody
    );
}

/// `--no-echo`: the URL works once the WebSocket opens; nothing is sent. (This peer greets
/// like the article's echo server and then never echoes: with the echo stage it would be
/// `echo_timeout`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_skips_the_echo_stage() {
    let peer = fixtures::start(Behaviour::WsGreetThenSilent).await.unwrap();
    let mut a = only(&format!("ws://{HOST}/"), peer.addr);
    a.switch("--no-echo");
    let (code, report) = code_of(&a).await;
    assert_eq!(code, "ok_unverified_echo", "{report:#?}");
    assert!(report.verdict.ok);
    assert!(single(&report).result.echo.is_none());
    assert!(
        single(&report)
            .diagnosis
            .detail
            .contains("echo skipped (--no-echo)"),
        "{}",
        single(&report).diagnosis.detail
    );
}

/// A real Express app that has no WebSocket at the path: the fix names Express's way to
/// share the HTTP server with the WebSocket server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_express_app_without_the_websocket_path_gets_express_advice() {
    let (_app, addr) = node_app(
        "const app = require('express')(); app.get('/', (q, s) => s.send('hello')); \
         app.listen(Number(process.env.PORT), '127.0.0.1');",
    );
    let (code, report) = code_of(&only(&format!("ws://{HOST}/ws"), addr)).await;
    assert_eq!(code, "path_not_found", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("the app is Express (Node)")
            && detail.contains("new WebSocketServer({ server"),
        "{detail}"
    );
}

/// A real Node `ws` server that closes with an application code naming a subprotocol (as
/// graphql-ws does with 4406): the report shows the code and reason, explains 4xxx, and
/// suggests --subprotocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_during_the_echo_shows_its_code_reason_and_what_to_do() {
    let (_app, addr) = node_app(
        "const { WebSocketServer } = require('ws'); \
         const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT) }); \
         wss.on('connection', (ws) => ws.on('message', () => ws.close(4406, 'Subprotocol not acceptable')));",
    );
    let (code, report) = code_of(&only(&format!("ws://{HOST}/live"), addr)).await;
    assert_eq!(code, "closed_during_echo", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("closed the WebSocket with 4406 \"Subprotocol not acceptable\"")
            && detail.contains("application-defined")
            && detail.contains("--subprotocol"),
        "{detail}"
    );
}
