//! The bundled server as users run it: the real binary on a loopback port, driven by the
//! article's Node client and server, raw sockets, and tungstenite clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wscheck_testkit::{ServerProcess, Ws, next_text, round_trip, ws_connect};

const GREETING: &str = "Hi, this is the Echo-Server";

/// The server binary under test, started with `PORT=0` and the given environment.
struct Server;

impl Server {
    fn start(env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start(env!("CARGO_BIN_EXE_wscheck-server").as_ref(), env)
    }
}

/// Sends raw bytes, then reads the answer until the server closes (at most 5 s).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    read_until_closed(&mut tcp).await
}

async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn expect_close(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return frame.code.into(),
            Ok(Some(Ok(Message::Close(None)))) => panic!("close frame without a code"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn greeted(addr: SocketAddr, path: &str) -> Ws {
    let mut ws = ws_connect(addr, path, &[]).await.unwrap();
    assert_eq!(next_text(&mut ws).await.unwrap(), GREETING);
    ws
}

#[test]
fn article_client_prints_what_the_article_shows() {
    let server = Server::start(&[]);
    let lines = wscheck_testkit::run_article_client(&format!("ws://{}", server.addr), 3).unwrap();
    assert_eq!(
        lines,
        [
            "Sent Message: Hi there!",
            "Recieved Message: Hi, this is the Echo-Server",
            "Recieved Message: Echo: Hi there!",
        ]
    );
}

#[test]
fn article_server_and_ours_give_the_same_client_the_same_lines() {
    let ours = Server::start(&[]);
    let (_node, node_addr) = wscheck_testkit::start_article_server().unwrap();
    let from_ours = wscheck_testkit::run_article_client(&format!("ws://{}", ours.addr), 3).unwrap();
    let from_node = wscheck_testkit::run_article_client(&format!("ws://{node_addr}"), 3).unwrap();
    assert_eq!(from_ours.len(), 3, "{from_ours:?}");
    assert_eq!(from_ours, from_node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_text_binary_and_answers_pings_on_any_path() {
    let server = Server::start(&[]);
    let mut ws = greeted(server.addr, "/any/path?x=1").await;
    assert_eq!(round_trip(&mut ws, "hello").await.unwrap(), "Echo: hello");
    assert_eq!(round_trip(&mut ws, "").await.unwrap(), "Echo: ");
    let payload: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], &payload[..]),
        other => panic!("expected binary echo, got {other:?}"),
    }
    ws.send(Message::Ping("p1".into())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Pong(data))) => assert_eq!(&data[..], b"p1"),
        other => panic!("expected pong, got {other:?}"),
    }
    ws.close(None).await.unwrap();
    assert!(matches!(
        ws.next().await,
        Some(Ok(Message::Close(_))) | None
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_what_reached_the_app_and_the_cf_environment() {
    let server = Server::start(&[
        ("CF_INSTANCE_INDEX", "1"),
        ("CF_INSTANCE_GUID", "4b3e-guid"),
        (
            "VCAP_APPLICATION",
            r#"{"application_name":"echo","application_uris":["echo.apps.example.test"]}"#,
        ),
    ]);
    let client = wscheck_testkit::http_client();
    let url = format!("http://{}/.wscheck/info?probe=1", server.addr);
    let response = client
        .get(&url)
        .header("X-Forwarded-Proto", "https")
        .header("x-MiXeD-Case", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-wscheck-server"],
        env!("CARGO_PKG_VERSION")
    );
    let info: wscheck_server::info::Info = response.json().await.unwrap();
    assert_eq!(info.server, "wscheck-server");
    assert_eq!(info.request.line, "GET /.wscheck/info?probe=1 HTTP/1.1");
    assert_eq!(info.request.header("x-forwarded-proto"), Some("https"));
    assert!(
        info.request
            .headers
            .iter()
            .any(|h| h.name == "x-mixed-case" || h.name == "x-MiXeD-Case"),
        "{:?}",
        info.request.headers
    );
    assert_eq!(info.listen_port, server.addr.port());
    assert!(info.peer.starts_with("127.0.0.1:"));
    assert_eq!(info.environment.port.as_deref(), Some("0"));
    assert_eq!(info.environment.instance_index.as_deref(), Some("1"));
    assert_eq!(info.environment.instance_guid.as_deref(), Some("4b3e-guid"));
    assert_eq!(info.environment.application_name.as_deref(), Some("echo"));
    assert_eq!(
        info.environment.application_uris,
        ["echo.apps.example.test"]
    );

    // Every HTTP answer names the server, errors included.
    for (path, status) in [("/healthz", 200), ("/", 200), ("/nope", 404)] {
        let response = client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            response.headers().contains_key("x-wscheck-server"),
            "{path}"
        );
    }
    let page = client
        .get(format!("http://{}/", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("wscheck-server") && page.contains("/.wscheck/info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_websocket_sends_its_own_upgrade_request_first() {
    let server = Server::start(&[("CF_INSTANCE_INDEX", "0")]);
    let mut ws = ws_connect(
        server.addr,
        "/.wscheck/ws",
        &[("X-Vcap-Request-Id", "abc-123")],
    )
    .await
    .unwrap();
    let info: wscheck_server::info::Info =
        serde_json::from_str(&next_text(&mut ws).await.unwrap()).unwrap();
    assert_eq!(info.request.line, "GET /.wscheck/ws HTTP/1.1");
    assert_eq!(info.request.header("upgrade"), Some("websocket"));
    assert_eq!(info.request.header("x-vcap-request-id"), Some("abc-123"));
    assert_eq!(info.environment.instance_index.as_deref(), Some("0"));
    assert_eq!(next_text(&mut ws).await.unwrap(), GREETING);
    assert_eq!(round_trip(&mut ws, "x").await.unwrap(), "Echo: x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_stripped_of_upgrade_headers_gets_426_naming_them() {
    let server = Server::start(&[]);
    let answer = raw_exchange(
        server.addr,
        b"GET /socket HTTP/1.1\r\nHost: app.example.test\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{answer}"
    );
    assert!(answer.contains("X-Wscheck-Server: "), "{answer}");
    assert!(
        answer.contains("without: Upgrade: websocket, Connection: Upgrade."),
        "{answer}"
    );
    assert!(answer.contains("proxy"), "{answer}");

    let only_connection_missing = raw_exchange(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(
        only_connection_missing.contains("without: Connection: Upgrade."),
        "{only_connection_missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_503_before_upgrade() {
    let server = Server::start(&[("WSCHECK_MAX_CONNECTIONS", "2")]);
    let _a = greeted(server.addr, "/").await;
    let mut b = greeted(server.addr, "/").await;
    let error = ws_connect(server.addr, "/", &[]).await.unwrap_err();
    assert!(error.to_string().contains("503"), "{error:#}");
    b.close(None).await.unwrap();
    while b.next().await.is_some() {}
    // The freed slot is usable again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ws_connect(server.addr, "/", &[]).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("slot not released: {error:#}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_or_closed_cleanly_and_never_disturbs_other_clients() {
    let mut server = Server::start(&[
        ("WSCHECK_MAX_MESSAGE_SIZE", "64KiB"),
        ("WSCHECK_HEADER_TIMEOUT", "1s"),
    ]);
    let addr = server.addr;
    let mut bystander = greeted(addr, "/bystander").await;
    let mut check_bystander = async |what: &str| {
        assert_eq!(
            round_trip(&mut bystander, what).await.unwrap(),
            format!("Echo: {what}"),
            "bystander after {what}"
        );
    };

    // Garbage: a TLS ClientHello sent to the plain port, then random bytes.
    let answer = raw_exchange(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer:?}");
    check_bystander("garbage").await;

    // A handshake cut off in the middle.
    {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: webso")
            .await
            .unwrap();
    }
    check_bystander("truncated").await;

    // 100 KiB of headers.
    let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..1600 {
        huge.extend_from_slice(format!("X-Filler-{i:04}: {}\r\n", "a".repeat(48)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    assert!(huge.len() > 100 * 1024);
    let answer = raw_exchange(addr, &huge).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "{:?}",
        &answer[..answer.len().min(200)]
    );
    check_bystander("huge headers").await;

    // A slow drip: one byte every 100 ms never completes the head; the 1 s timeout cuts it.
    {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut answer = Vec::new();
        for byte in request {
            if tcp.write_all(&[*byte]).await.is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await
            {
                answer.extend_from_slice(&buf[..n]);
                if n == 0 || answer.ends_with(b"\n") {
                    break;
                }
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    check_bystander("slow drip").await;

    // A message over the 64 KiB limit: closed with 1009.
    {
        let mut ws = greeted(addr, "/").await;
        ws.send(Message::binary(vec![7u8; 100 * 1024]))
            .await
            .unwrap();
        assert_eq!(expect_close(&mut ws).await, 1009);
    }
    check_bystander("oversize").await;

    // An unmasked frame from a client breaks RFC 6455 section 5.1: closed with 1002.
    {
        let mut ws = greeted(addr, "/").await;
        ws.get_mut()
            .write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .unwrap();
        assert_eq!(expect_close(&mut ws).await, 1002);
    }
    check_bystander("unmasked frame").await;

    // 2 000 connections opened at once, half of them starting a request, all dropped.
    {
        let mut tasks = Vec::new();
        for i in 0..2000 {
            tasks.push(tokio::spawn(async move {
                if let Ok(mut tcp) = TcpStream::connect(addr).await
                    && i % 2 == 0
                {
                    let _ = tcp
                        .write_all(b"GET / HTTP/1.1\r\nHost: storm\r\nUpgrade: websocket\r\n")
                        .await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    check_bystander("connection storm").await;
    let mut fresh = greeted(addr, "/after-storm").await;
    assert_eq!(
        round_trip(&mut fresh, "still here").await.unwrap(),
        "Echo: still here"
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_with_1001_and_exits_0_within_5s() {
    let mut server = Server::start(&[]);
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(greeted(server.addr, &format!("/client/{i}")).await);
    }
    let started = Instant::now();
    server.terminate();
    for client in &mut clients {
        assert_eq!(expect_close(client).await, 1001);
    }
    let status = loop {
        if let Some(status) = server.child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}\n{}", server.output());
    let output = server.output();
    assert!(output.contains("SIGTERM"), "{output}");
    assert!(
        output.contains("websocket close: closed by server (1001 going away)"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_one_line_per_connection_open_and_close() {
    let server = Server::start(&[]);
    let mut ws = greeted(server.addr, "/logged").await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    while ws.next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.output().contains("websocket close") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = server.output();
    let opens: Vec<_> = output
        .lines()
        .filter(|l| l.contains("websocket open") && l.contains("/logged"))
        .collect();
    assert_eq!(opens.len(), 1, "{output}");
    // The close line names the same peer (ip:port) as the open line.
    let peer = opens[0]
        .split_whitespace()
        .find(|w| w.starts_with("peer="))
        .expect("peer on the open line");
    let closes: Vec<_> = output
        .lines()
        .filter(|l| l.contains("websocket close") && l.split_whitespace().any(|w| w == peer))
        .collect();
    assert_eq!(closes.len(), 1, "{output}");
    assert!(closes[0].contains("closed by peer (1000)"), "{}", closes[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_idle_sockets_and_drops_peers_that_never_answer() {
    let server = Server::start(&[("WSCHECK_PING_INTERVAL", "200ms")]);
    let mut ws = greeted(server.addr, "/idle").await;
    match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        Ok(Some(Ok(Message::Ping(_)))) => {}
        other => panic!("expected a server ping, got {other:?}"),
    }
    // A peer that reads nothing (so never answers pings) is dropped after two intervals.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    silent
        .write_all(b"GET /silent HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.output().contains("no answer to ping") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.output().contains("path=/silent"),
        "{}",
        server.output()
    );
    assert!(
        server
            .output()
            .contains("connection lost: no answer to ping"),
        "{}",
        server.output()
    );
}
