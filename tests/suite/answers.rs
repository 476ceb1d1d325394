//! HTTP answers as real servers send them: HTTP/1.0 status lines, chunked and compressed
//! bodies, HTML pages, and the 101 of a refused subprotocol.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wscheck::probe::FailureKind;
use wscheck::report::{ProbeView, Report};
use wscheck_testkit::fixtures::{self, Behaviour};
use wscheck_testkit::pki::TestCa;
use wscheck_testkit::{ChildGuard, ensure_node_modules, node_dir, tempdir};

use crate::support::{HOST, check, code_of, only, single};

/// Starts `command` (which listens on a loopback port it chose and prints it) and returns
/// it with its address; `port_in` finds the port in a line of its standard output.
fn start_printing_port(
    mut command: Command,
    port_in: fn(&str) -> Option<u16>,
) -> (ChildGuard, SocketAddr) {
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = ChildGuard(command.spawn().expect("start the peer"));
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keeps reading to the end, so that the peer never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = port_in(&line) {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the peer printed its port");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// `python3 -m http.server` serving a directory with one file, on a port it chose. It
/// answers `HTTP/1.0`, with an HTML directory listing or error page.
fn python_http_server(dir: &Path) -> (ChildGuard, SocketAddr) {
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    let mut command = Command::new("python3");
    command
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(dir);
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    start_printing_port(command, |line| {
        line.split(" port ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// A Node peer from `script`, which prints the port it listens on; `ws` is on NODE_PATH.
fn node_peer(script: &str) -> (ChildGuard, SocketAddr) {
    let modules = ensure_node_modules().expect("node modules");
    let mut command = Command::new("node");
    command
        .args(["-e", script])
        .env("NODE_PATH", modules)
        .current_dir(node_dir());
    start_printing_port(command, |line| line.trim().parse().ok())
}

/// Node's `http` with bodies as frameworks send them: written in two parts (chunked),
/// gzip-compressed with a length, and an HTML page through a gzip stream (both).
const NODE_BODIES: &str = r#"
const http = require('http');
const zlib = require('zlib');
const server = http.createServer((req, res) => {
  if (req.url === '/chunked') {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.write('first part\n');
    setTimeout(() => res.end('second part\n'), 50);
  } else if (req.url === '/gzip') {
    const body = zlib.gzipSync('Service down for maintenance\n');
    res.writeHead(503, { 'Content-Type': 'text/plain', 'Content-Encoding': 'gzip',
                         'Content-Length': body.length });
    res.end(body);
  } else {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Encoding': 'gzip' });
    const gz = zlib.createGzip();
    gz.pipe(res);
    gz.write('<!DOCTYPE html><html><head><title>Welcome to the shop</title>');
    gz.write('<script>var secret = "<p>not text</p>";</script><style>p { color: red }</style>');
    setTimeout(() => gz.end('</head><body>\n  <h1>Welcome to the shop</h1>\n\n  <p>Please   sign in.</p></body></html>'), 50);
  }
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"#;

/// The one probe's failure kind.
fn kind(probe: &ProbeView) -> Option<FailureKind> {
    probe.result.failure.as_ref().map(|f| f.kind)
}

async fn probe_url(url: &str, peer: SocketAddr) -> (String, Report) {
    code_of(&only(url, peer)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_servers_http_1_0_answers_are_refusals_with_their_page() {
    let dir = tempdir("python-http").unwrap();
    let (_python, addr) = python_http_server(&dir);

    let (code, report) = probe_url(&format!("ws://{HOST}/"), addr).await;
    let probe = single(&report);
    assert_eq!(code, "not_a_websocket_endpoint", "{probe:#?}");
    assert_eq!(kind(probe), Some(FailureKind::HttpRefused));
    assert_eq!(probe.http_status, Some(200));
    let response = probe.result.response.as_ref().unwrap();
    assert_eq!(response.reason, "OK");
    assert!(
        response.header("server").unwrap().contains("SimpleHTTP"),
        "{response:?}"
    );
    assert!(response.body.contains("hello.txt"), "{response:?}");
    assert_eq!(response.excerpt(), "Directory listing for / — hello.txt");
    assert_eq!(
        probe.result.failure.as_ref().unwrap().message,
        "HTTP 200 OK"
    );

    let (code, report) = probe_url(&format!("ws://{HOST}/missing"), addr).await;
    let probe = single(&report);
    assert_eq!(code, "path_not_found", "{probe:#?}");
    let response = probe.result.response.as_ref().unwrap();
    assert_eq!(
        (response.status, response.reason.as_str()),
        (404, "File not found")
    );
    assert!(
        response
            .excerpt()
            .starts_with("Error response — Error code: 404 Message: File not found."),
        "{}",
        response.excerpt()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Go's net/http answers plain HTTP on its TLS port with these exact bytes (gorouter on
/// 443 does; see cf-websocket-facts.md). No Go toolchain here: a scripted peer sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gos_http_1_0_reply_to_plain_http_on_its_tls_port_is_read() {
    let go = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    let peer = fixtures::start(Behaviour::Respond(go.to_owned()))
        .await
        .unwrap();
    let (code, report) = probe_url(&format!("ws://{HOST}:443/"), peer.addr).await;
    let probe = single(&report);
    assert_eq!(code, "plain_to_tls_port", "{probe:#?}");
    assert_eq!(kind(probe), Some(FailureKind::HttpRefused));
    assert_eq!(probe.http_status, Some(400));
    let response = probe.result.response.as_ref().unwrap();
    assert_eq!(response.reason, "Bad Request");
    assert_eq!(
        response.body,
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    assert_eq!(
        response.excerpt(),
        "Client sent an HTTP request to an HTTPS server."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_compressed_bodies_are_decoded_before_they_are_kept() {
    let (_node, addr) = node_peer(NODE_BODIES);

    let (code, report) = probe_url(&format!("ws://{HOST}/chunked"), addr).await;
    let probe = single(&report);
    assert_eq!(code, "path_not_found", "{probe:#?}");
    let response = probe.result.response.as_ref().unwrap();
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.body, "first part\nsecond part\n");
    assert_eq!(response.excerpt(), "first part");

    let (_, report) = probe_url(&format!("ws://{HOST}/gzip"), addr).await;
    let response = single(&report).result.response.as_ref().unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "Service down for maintenance\n");

    let (code, report) = probe_url(&format!("ws://{HOST}/page"), addr).await;
    assert_eq!(code, "not_a_websocket_endpoint");
    let response = single(&report).result.response.as_ref().unwrap();
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert!(response.body.starts_with("<!DOCTYPE html>"), "{response:?}");
    assert_eq!(response.excerpt(), "Welcome to the shop — Please sign in.");
}

/// Node `ws` told to pick none of the offered subprotocols: it still answers 101.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subprotocol_shows_the_101_it_came_with() {
    let (_node, addr) = node_peer(
        r#"
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => false });
wss.on('listening', () => console.log(wss.address().port));
wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
"#,
    );
    let mut a = only(&format!("ws://{HOST}/"), addr);
    a.set_all("--subprotocol", ["chat.v2"]);
    let (code, report) = code_of(&a).await;
    let probe = single(&report);
    assert_eq!(code, "subprotocol_not_accepted", "{probe:#?}");
    assert_eq!(probe.http_status, Some(101));
    let response = probe.result.response.as_ref().unwrap();
    assert_eq!(response.reason, "Switching Protocols");
    assert_eq!(response.header("upgrade"), Some("websocket"));
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_origin_follows_each_probes_scheme() {
    let ca = TestCa::new("wscheck test CA").unwrap();
    let dir = tempdir("origin-ca").unwrap();
    let cacert = ca.write(&dir).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let plain = fixtures::start(Behaviour::WsEchoRecording(log.clone()))
        .await
        .unwrap();
    let acceptor = fixtures::tls_acceptor(&ca.leaf(&[HOST]).unwrap(), &ca).unwrap();
    let tls = fixtures::start_tls(Behaviour::WsEchoRecording(log.clone()), acceptor)
        .await
        .unwrap();

    let origin_sent = |a: &crate::support::Args| {
        let a = a.clone();
        let log = log.clone();
        async move {
            log.lock().unwrap().clear();
            check(&a).await;
            let heads = log.lock().unwrap().clone();
            assert_eq!(heads.len(), 1, "{heads:?}");
            heads[0].lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("origin")
                    .then(|| value.trim().to_owned())
            })
        }
    };
    let ws = only(&format!("ws://{HOST}/"), plain.addr);
    let mut wss = only(&format!("wss://{HOST}/"), tls.addr);
    wss.set_path("--cacert", &cacert);
    assert_eq!(origin_sent(&ws).await, Some(format!("http://{HOST}")));
    assert_eq!(origin_sent(&wss).await, Some(format!("https://{HOST}")));

    for mut a in [ws, wss] {
        a.set("--origin", "https://ui.wscheck.test");
        let given = origin_sent(&a).await;
        assert_eq!(given.as_deref(), Some("https://ui.wscheck.test"));
        a.unset("--origin").switch("--no-origin");
        assert_eq!(origin_sent(&a).await, None);
    }
    let _ = std::fs::remove_dir_all(dir);
}
