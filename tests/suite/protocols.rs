//! Application protocols, against the real servers from npm, PyPI and Debian: socket.io 4
//! healthy, refusing its namespace in an auth middleware, reached without
//! `transport=websocket`, on a custom `path` where only its first frame tells what it is,
//! and at a bare route; socket.io 2 (Engine.IO 3) and `allowEIO3`; Flask-SocketIO with
//! `cors_allowed_origins`; two socket.io instances behind the stand-in router, with and
//! without the cookie gorouter sticks by; graphql-ws (with `ws`) accepting, refusing in
//! `onConnect`, and met without its subprotocol; RabbitMQ's Web-STOMP; sockjs with its
//! websocket transport on and off; and each behind the SAP approuter.

use std::net::SocketAddr;
use std::time::Duration;

use wscheck_testkit::ChildGuard;
use wscheck_testkit::rabbitmq::RabbitMq;
use wscheck_testkit::standin::{Approuter, Route, Router};

use crate::support::{HOST, args, check, closed_port, code_of, node_app, only, single};

/// A real socket.io 4 server on `$PORT`; `options` go to `new Server(srv, options)`, and
/// `refuse` adds an auth middleware that says no.
fn socketio(options: &str, refuse: bool) -> (wscheck_testkit::ChildGuard, std::net::SocketAddr) {
    let middleware = if refuse {
        "io.use((socket, next) => next(new Error('not authorized')));"
    } else {
        ""
    };
    node_app(&format!(
        "const http = require('http'); const {{ Server }} = require('socket.io'); \
         const srv = http.createServer((q, s) => s.end('hello')); \
         const io = new Server(srv, {options}); {middleware} \
         io.on('connection', (s) => s.emit('hello', 'world')); \
         srv.listen(Number(process.env.PORT), '127.0.0.1');"
    ))
}

const EIO4: &str = "/socket.io/?EIO=4&transport=websocket";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_io_server_completes_its_handshake_without_an_echo() {
    let (_server, addr) = socketio("{}", false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), addr)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    assert!(report.verdict.ok, "exit 0: an echo is not expected");
    let probe = single(&report);
    assert_eq!(probe.result.stage.as_str(), "done");
    let protocol = probe
        .result
        .protocol
        .as_ref()
        .expect("the opening's particulars");
    assert_eq!(protocol.name, "socket.io");
    assert_eq!(protocol.version.as_deref(), Some("EIO4"));
    assert_eq!(protocol.said["connected"], true);
    assert_eq!(protocol.said["ping_interval_ms"], 25000);
    assert!(
        probe
            .diagnosis
            .detail
            .starts_with("socket.io handshake completed (sid ")
            && probe.diagnosis.detail.contains("namespace / connected"),
        "{}",
        probe.diagnosis.detail
    );
    assert!(
        report
            .verdict
            .summary
            .contains("socket.io handshake completed"),
        "{}",
        report.verdict.summary
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["probes"][0]["protocol"]["sid"], protocol.said["sid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_middleware_refusing_the_namespace_is_shown_with_its_message() {
    let (_server, addr) = socketio("{}", true);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), addr)).await;
    assert_eq!(code, "socketio_namespace_refused", "{report:#?}");
    assert!(!report.verdict.ok);
    let probe = single(&report);
    assert_eq!(probe.result.stage.as_str(), "protocol");
    assert!(
        probe.diagnosis.detail.contains("not authorized"),
        "{}",
        probe.diagnosis.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_transport_websocket_is_named() {
    let (_server, addr) = socketio("{}", false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}/socket.io/?EIO=4"), addr)).await;
    assert_eq!(code, "socketio_transport_missing", "{report:#?}");
    assert_eq!(single(&report).http_status, Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_custom_path_the_first_frame_tells_socket_io_and_raw_does_not_look() {
    let (_server, addr) = socketio("{ path: '/chat' }", false);
    let url = format!("ws://{HOST}/chat/?EIO=4&transport=websocket");
    let (code, report) = code_of(&only(&url, addr)).await;
    assert_eq!(
        code, "ok_protocol",
        "detected by its open packet: {report:#?}"
    );
    // `--protocol raw` only echoes: socket.io drops a client whose text is no Engine.IO
    // packet, which is what a plain WebSocket client meets there.
    let mut raw = only(&url, addr);
    raw.set("--protocol", "raw");
    let (code, report) = code_of(&raw).await;
    assert_eq!(code, "closed_during_echo", "{report:#?}");
    assert!(single(&report).result.protocol.is_none());
}

/// A real graphql-ws 5 server on `ws` at `/graphql`; `refuse` makes `onConnect` say no.
fn graphql(refuse: bool) -> (wscheck_testkit::ChildGuard, std::net::SocketAddr) {
    node_app(&format!(
        "const {{ WebSocketServer }} = require('ws'); \
         const {{ useServer }} = require('graphql-ws/lib/use/ws'); \
         const {{ buildSchema }} = require('graphql'); \
         const wss = new WebSocketServer({{ host: '127.0.0.1', port: Number(process.env.PORT), path: '/graphql' }}); \
         useServer({{ schema: buildSchema('type Query {{ hello: String }}'), onConnect: () => {} }}, wss);",
        !refuse
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_websocket_is_detected_offered_its_subprotocol_and_acknowledged() {
    let (_server, addr) = graphql(false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}/graphql"), addr)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    let probe = single(&report);
    assert_eq!(
        probe.result.subprotocol.as_deref(),
        Some("graphql-transport-ws")
    );
    assert!(
        probe
            .result
            .request
            .iter()
            .any(|l| l == "Sec-WebSocket-Protocol: graphql-transport-ws, graphql-ws"),
        "{:?}",
        probe.result.request
    );
    let protocol = probe.result.protocol.as_ref().unwrap();
    assert_eq!(
        (protocol.name, protocol.said["ack"].as_bool()),
        ("graphql", Some(true))
    );
    assert!(report.verdict.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_refusing_in_on_connect_is_graphql_rejected_with_4403_explained() {
    let (_server, addr) = graphql(true);
    let (code, report) = code_of(&only(&format!("ws://{HOST}/graphql"), addr)).await;
    assert_eq!(code, "graphql_rejected", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("closed 4403 \"Forbidden\"") && detail.contains("onConnect refused"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_offers_nothing_and_graphql_ws_says_which_subprotocol_it_wants() {
    let (_server, addr) = graphql(false);
    let mut raw = only(&format!("ws://{HOST}/graphql"), addr);
    raw.set("--protocol", "raw");
    let (code, report) = code_of(&raw).await;
    assert_eq!(code, "closed_during_echo", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("4406 \"Subprotocol not acceptable\"") && detail.contains("--subprotocol"),
        "{detail}"
    );
}

/// The opening's particulars of the single probe, by name.
fn said(report: &wscheck::report::Report, key: &str) -> serde_json::Value {
    let protocol = single(report).result.protocol.as_ref().expect("a protocol");
    protocol.said.get(key).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_route_to_a_socket_io_app_names_its_path_and_works() {
    let (_server, addr) = socketio("{}", false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}/"), addr)).await;
    assert_eq!(code, "socketio_path", "{report:#?}");
    assert!(report.verdict.ok, "socket.io clients find the path: exit 0");
    assert_eq!(said(&report, "path"), "/socket.io/");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("/socket.io/?EIO=4&transport=websocket completed it"),
        "{detail}"
    );
    assert!(single(&report).diagnosis.fix.contains("path"));
}

/// A socket.io 2.x server (Engine.IO 3), from npm as `socket.io-v2`.
fn socketio_v2() -> (ChildGuard, SocketAddr) {
    node_app(
        "const http = require('http'); \
         const srv = http.createServer((q, s) => s.end('hello')); \
         const io = require('socket.io-v2')(srv); \
         io.on('connection', (s) => s.emit('hello', 'world')); \
         srv.listen(Number(process.env.PORT), '127.0.0.1');",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_versions_that_do_not_match_are_named_either_way() {
    let eio3 = "/socket.io/?EIO=3&transport=websocket";
    // A v4 client against socket.io 2: the open packet has no maxPayload.
    let (_v2, v2) = socketio_v2();
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), v2)).await;
    assert_eq!(code, "socketio_version_mismatch", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(
        detail.contains("asks for EIO4 but the server speaks EIO3"),
        "{detail}"
    );
    // A v2 client against it is fine.
    let (code, report) = code_of(&only(&format!("ws://{HOST}{eio3}"), v2)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    let version = single(&report)
        .result
        .protocol
        .as_ref()
        .unwrap()
        .version
        .clone();
    assert_eq!(version.as_deref(), Some("EIO3"));
    // A v2 client against socket.io 4: engine.io writes its 400 after the 101.
    let (_v4, v4) = socketio("{}", false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{eio3}"), v4)).await;
    assert_eq!(code, "socketio_version_mismatch", "{report:#?}");
    let detail = &single(&report).diagnosis.detail;
    assert!(detail.contains("Unsupported protocol version"), "{detail}");
    assert!(single(&report).diagnosis.fix.contains("allowEIO3"));
    // ... unless allowEIO3 is on.
    let (_v4, v4) = socketio("{ allowEIO3: true }", false);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{eio3}"), v4)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
}

/// Flask-SocketIO (PyPI) on `$PORT`, with `env` (ALLOWED_ORIGINS, REFUSE).
fn flask_socketio(env: &[(&str, &str)]) -> (ChildGuard, SocketAddr) {
    let bin = wscheck_testkit::python_venv().unwrap();
    let port = wscheck_testkit::free_port();
    let script = wscheck_testkit::repo_root().join("tests/python/flask_socketio_app.py");
    let child = std::process::Command::new(bin.join("python"))
        .arg(script)
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wscheck_testkit::wait_for_listener(addr, Duration::from_secs(20)).unwrap();
    (guard, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_socketio_connects_refuses_and_checks_the_origin() {
    let (_ok, ok) = flask_socketio(&[]);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), ok)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    assert_eq!(said(&report, "connected"), true);

    let (_refusing, refusing) = flask_socketio(&[("REFUSE", "1")]);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), refusing)).await;
    assert_eq!(code, "socketio_namespace_refused", "{report:#?}");
    assert!(single(&report).diagnosis.detail.contains("not authorized"));

    let portal = [("ALLOWED_ORIGINS", "https://portal.example.com")];
    let (_strict, strict) = flask_socketio(&portal);
    let (code, report) = code_of(&only(&format!("ws://{HOST}{EIO4}"), strict)).await;
    assert_eq!(code, "origin_rejected", "{report:#?}");
    let probe = single(&report);
    assert!(
        probe.diagnosis.detail.contains("Not an accepted origin"),
        "{}",
        probe.diagnosis.detail
    );
    assert!(probe.diagnosis.fix.contains("cors_allowed_origins"));
    // With the Origin it allows, it connects.
    let mut allowed = only(&format!("ws://{HOST}{EIO4}"), strict);
    allowed.set("--origin", "https://portal.example.com");
    let (code, report) = code_of(&allowed).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
}

/// Two socket.io 4 instances (`options` for both) behind the stand-in router, probed with
/// `--polling` over wss:// through it.
async fn polling_behind_two_instances(options: &str) -> wscheck::report::Report {
    let (_a, a) = socketio(options, false);
    let (_b, b) = socketio(options, false);
    let router = Router::start(&[Route::instances("chat", vec![a, b])]).unwrap();
    let mut probe = args(&format!("wss://chat.apps.wscheck.test{EIO4}"));
    probe.switch("--only").switch("--polling");
    probe.set_path("--cacert", &router.cacert);
    probe.set_all("--connect-to", router.connect_to(closed_port()));
    check(&probe).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_across_instances_needs_the_cookie_gorouter_sticks_by() {
    let report = polling_behind_two_instances("{}").await;
    assert_eq!(single(&report).diagnosis.code.as_str(), "ok_protocol");
    let deep = report.deep.as_ref().expect("the polling check ran");
    let polled = deep.polling.as_ref().unwrap();
    // Round robin sends every session's POST to the instance that did not open it.
    assert_eq!((polled.sessions, polled.lost), (6, 6), "{polled:#?}");
    let finding = deep
        .findings
        .iter()
        .find(|f| f.code.as_str() == "sticky_session_required")
        .expect("the sticky finding");
    assert!(
        finding.detail.contains("Session ID unknown") && finding.detail.contains("no JSESSIONID"),
        "{}",
        finding.detail
    );
    assert!(
        finding.fix.contains("__VCAP_ID__") && finding.fix.contains("transports: ['websocket']")
    );

    let report = polling_behind_two_instances("{ cookie: { name: 'JSESSIONID' } }").await;
    let deep = report.deep.as_ref().unwrap();
    let polled = deep.polling.as_ref().unwrap();
    assert_eq!(
        (polled.completed, polled.lost),
        (polled.sessions, 0),
        "{polled:#?}"
    );
    assert!(
        polled.cookies.iter().any(|c| c == "__VCAP_ID__"),
        "{polled:#?}"
    );
    assert!(deep.findings.is_empty(), "{:#?}", deep.findings);
}

/// A real sockjs (npm) server: `/echo` echoes, `/off` has its websocket transport off.
/// sockjs 0.3 answers an upgrade at its base with a plain 200 on the raw socket and leaves
/// that socket without an error listener: when the SAP approuter resets it, Node's
/// unhandled ECONNRESET ends the process. The listener on every socket here is what such
/// an app needs.
fn sockjs() -> (ChildGuard, SocketAddr) {
    node_app(
        "const http = require('http'); const sockjs = require('sockjs'); \
         const echo = sockjs.createServer({ prefix: '/echo', log: () => {} }); \
         echo.on('connection', (c) => c.on('data', (m) => c.write(m))); \
         const off = sockjs.createServer({ prefix: '/off', websocket: false, log: () => {} }); \
         const srv = http.createServer(); \
         srv.on('connection', (socket) => socket.on('error', () => {})); \
         echo.installHandlers(srv); off.installHandlers(srv); \
         srv.listen(Number(process.env.PORT), '127.0.0.1');",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_is_found_by_its_greeting_and_its_websocket_transport_checked() {
    let (_server, addr) = sockjs();
    let (code, report) = code_of(&only(&format!("ws://{HOST}/echo"), addr)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    assert_eq!(
        single(&report).result.protocol.as_ref().unwrap().name,
        "sockjs"
    );
    assert_eq!(
        (said(&report, "websocket"), said(&report, "echo")),
        (true.into(), true.into())
    );
    assert!(
        single(&report)
            .diagnosis
            .detail
            .contains("SockJS session opened")
    );

    let (code, report) = code_of(&only(&format!("ws://{HOST}/off"), addr)).await;
    assert_eq!(code, "sockjs_websocket_disabled", "{report:#?}");
    assert!(!report.verdict.ok);
    assert!(single(&report).diagnosis.fix.contains("websocket: true"));

    let mut asked = only(&format!("ws://{HOST}/echo/"), addr);
    asked.set("--protocol", "sockjs");
    let (code, report) = code_of(&asked).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_web_stomp_broker_answers_connect_or_says_why_not() {
    let broker = RabbitMq::start("/").unwrap();
    let url = format!("ws://{HOST}/ws");
    // No flag: the broker's silence to the nonce, then CONNECTED.
    let (code, report) = code_of(&only(&url, broker.web_stomp)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}\n{}", broker.log());
    let protocol = single(&report).result.protocol.clone().unwrap();
    assert_eq!(
        (protocol.name, protocol.version.as_deref()),
        ("stomp", Some("1.2"))
    );
    assert!(
        protocol.said["server"]
            .as_str()
            .unwrap()
            .starts_with("RabbitMQ/")
    );
    assert!(
        single(&report)
            .diagnosis
            .detail
            .starts_with("STOMP CONNECTED (version 1.2")
    );
    // As stomp.js offers them: the broker picks one.
    let mut offered = only(&url, broker.web_stomp);
    offered
        .add("--subprotocol", "v12.stomp")
        .add("--subprotocol", "v11.stomp");
    let (code, report) = code_of(&offered).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    assert_eq!(
        single(&report).result.subprotocol.as_deref(),
        Some("v12.stomp")
    );
    // A virtual host the broker does not have.
    let mut vhost = only(&url, broker.web_stomp);
    vhost.add("--stomp-header", "host:nope");
    let (code, report) = code_of(&vhost).await;
    assert_eq!(code, "stomp_error", "{report:#?}");
    assert!(
        single(&report)
            .diagnosis
            .detail
            .contains("Virtual host 'nope' access denied")
    );
    // Wrong credentials: refused, and the passcode is nowhere in the report.
    let mut login = only(&url, broker.web_stomp);
    login.set("--protocol", "stomp");
    login
        .add("--stomp-header", "login:guest")
        .add("--stomp-header", "passcode:s3cr3t-wrong");
    let (code, report) = code_of(&login).await;
    assert_eq!(code, "stomp_error", "{report:#?}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("s3cr3t-wrong"), "{json}");
    // Through the SAP approuter with websockets enabled.
    let approuter = Approuter::start(broker.web_stomp, true).unwrap();
    let (code, report) = code_of(&only(&url, approuter.addr)).await;
    assert_eq!(code, "ok_protocol", "{report:#?}");
    assert_eq!(
        single(&report).result.protocol.as_ref().unwrap().name,
        "stomp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_passes_through_the_approuter_with_websockets_enabled() {
    let (_sio, sio) = socketio("{}", false);
    let (_gql, gql) = graphql(false);
    let (_sjs, sjs) = sockjs();
    let (_flask, flask) = flask_socketio(&[]);
    for (backend, path, name) in [
        (sio, EIO4, "socket.io"),
        (gql, "/graphql", "graphql"),
        (sjs, "/echo", "sockjs"),
        (flask, EIO4, "socket.io"),
    ] {
        let approuter = Approuter::start(backend, true).unwrap();
        let mut probe = only(&format!("ws://{HOST}{path}"), approuter.addr);
        // A cold approuter is slow to its first backend connection on a busy machine.
        probe.set("--timeout", "15s");
        let (code, report) = code_of(&probe).await;
        assert_eq!(code, "ok_protocol", "{name} at {path}: {report:#?}");
        assert_eq!(single(&report).result.protocol.as_ref().unwrap().name, name);
    }
}
