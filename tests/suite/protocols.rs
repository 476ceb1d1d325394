//! Application protocols, against the real servers from npm: socket.io 4 healthy, refusing
//! its namespace in an auth middleware, reached without `transport=websocket`, and on a
//! custom `path` where only its first frame tells what it is; graphql-ws (with `ws`)
//! accepting, refusing in `onConnect`, and met without its subprotocol.

use crate::support::{HOST, code_of, node_app, only, single};

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
