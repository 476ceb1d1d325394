//! Pipelining, slow readers and the closing handshake, byte by byte: a raw TCP client that
//! writes its own masked frames, so that nothing between the test and the server buffers,
//! reorders or answers anything.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wscheck_testkit::ServerProcess;

const GREETING: &[u8] = b"Hi, this is the Echo-Server";
const MESSAGES: usize = 64;
const MESSAGE_SIZE: usize = 64 * 1024;

fn server(env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(env!("CARGO_BIN_EXE_wscheck-server").as_ref(), env)
}

/// A masked client frame (FIN set).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// 64 distinct 64 KiB binary messages.
fn messages() -> Vec<Vec<u8>> {
    (0..MESSAGES)
        .map(|i| {
            (0..MESSAGE_SIZE)
                .map(|j| (i * 31 + j * 7 + j / 251) as u8)
                .collect()
        })
        .collect()
}

/// The messages and a close (1000 "done") as one buffer, to go out in one write.
fn pipelined(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend(frame(0x2, message));
    }
    out.extend(frame(0x8, &[0x03, 0xe8, b'd', b'o', b'n', b'e']));
    out
}

/// Connects and upgrades; returns the stream and what followed the 101 head.
async fn upgrade(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /pipeline HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("101 in time")
            .unwrap();
        assert!(n > 0, "closed during the handshake");
        head.extend_from_slice(&buf[..n]);
    };
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    (tcp, head.split_off(end))
}

/// Decodes the server's (unmasked) frames: (opcode, payload); panics on a cut frame.
fn decode(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "stream ends inside a frame header");
        let opcode = bytes[0] & 0x0f;
        assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        assert!(
            bytes.len() >= header + len,
            "stream ends inside a frame: {} of {} payload bytes after {} whole frames",
            bytes.len().saturating_sub(header),
            len,
            out.len()
        );
        out.push((opcode, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    out
}

/// Greeting, every message echoed verbatim and in order, the close reply, nothing else.
fn assert_all_echoed_then_closed(received: &[u8], messages: &[Vec<u8>]) {
    let frames = decode(received);
    assert!(!frames.is_empty(), "nothing received");
    assert_eq!(frames[0], (0x1, GREETING.to_vec()));
    let echoes: Vec<_> = frames[1..]
        .iter()
        .take_while(|(opcode, _)| *opcode == 0x2)
        .collect();
    assert_eq!(
        echoes.len(),
        messages.len(),
        "echoes received; frames: {:?}",
        frames
            .iter()
            .map(|(o, p)| (*o, p.len()))
            .collect::<Vec<_>>()
    );
    for (i, ((_, echo), sent)) in echoes.iter().zip(messages).enumerate() {
        assert!(echo == sent, "echo {i} differs from what was sent");
    }
    let rest = &frames[1 + echoes.len()..];
    assert_eq!(rest.len(), 1, "exactly a close frame after the echoes");
    assert_eq!(rest[0].0, 0x8, "a close frame after the echoes");
    assert_eq!(
        &rest[0].1[..2],
        &[0x03, 0xe8],
        "the close reply echoes 1000"
    );
}

/// Reads until EOF (at most `within`).
async fn read_to_eof(tcp: &mut TcpStream, received: &mut Vec<u8>, within: Duration) {
    tokio::time::timeout(within, tcp.read_to_end(received))
        .await
        .expect("EOF in time")
        .expect("clean EOF, no reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_messages_and_close_in_one_write_are_all_echoed_before_the_close() {
    let server = server(&[]);
    let messages = messages();
    let (mut tcp, mut received) = upgrade(server.addr).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        tcp.write_all(&pipelined(&messages)),
    )
    .await
    .expect("the server takes the whole pipeline (back-pressure within its limits)")
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    read_to_eof(&mut tcp, &mut received, Duration::from_secs(10)).await;
    assert_all_echoed_then_closed(&received, &messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_every_echo_under_back_pressure() {
    // A small bound, so that back-pressure (not a big buffer) carries the 4 MiB.
    let server = server(&[
        ("WSCHECK_MAX_PENDING_OUTPUT", "256KiB"),
        ("WSCHECK_SEND_TIMEOUT", "2s"),
    ]);
    let messages = messages();
    let (tcp, received) = upgrade(server.addr).await;
    let (mut read, mut write) = tcp.into_split();
    let data = pipelined(&messages);
    let writer = tokio::spawn(async move { write.write_all(&data).await.map(|()| write) });
    let mut received = received;
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "slow read took too long");
        let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk))
            .await
            .expect("data or EOF in time")
            .expect("no reset");
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        // Slow: a short pause per chunk, a longer one (still under the send timeout)
        // every 512 KiB.
        let pause = if received.len() % (512 * 1024) < n {
            500
        } else {
            2
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let _write_half = writer.await.unwrap().expect("the whole pipeline was taken");
    assert_all_echoed_then_closed(&received, &messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout_with_a_reason() {
    let server = server(&[
        ("WSCHECK_MAX_PENDING_OUTPUT", "256KiB"),
        ("WSCHECK_SEND_TIMEOUT", "1s"),
    ]);
    let (tcp, _) = upgrade(server.addr).await;
    let (_read, mut write) = tcp.into_split();
    // 32 MiB that come back as echoes nobody reads.
    let one = frame(0x2, &vec![5u8; MESSAGE_SIZE]);
    let writer = tokio::spawn(async move {
        for _ in 0..512 {
            if write.write_all(&one).await.is_err() {
                break;
            }
        }
        write
    });
    let started = Instant::now();
    let expected = "websocket close: connection lost: client stopped reading";
    while !server.output().contains(expected) && started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = server.output();
    assert!(output.contains(expected), "{output}");
    writer.abort();
    // The server is fine afterwards.
    let (mut tcp, mut received) = upgrade(server.addr).await;
    tcp.write_all(&pipelined(&messages()[..2])).await.unwrap();
    read_to_eof(&mut tcp, &mut received, Duration::from_secs(5)).await;
    assert_all_echoed_then_closed(&received, &messages()[..2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_server_closes_first_it_closes_tcp_as_soon_as_the_close_is_answered() {
    let server = server(&[("WSCHECK_MAX_MESSAGE_SIZE", "64KiB")]);
    let (mut tcp, mut received) = upgrade(server.addr).await;
    // 100 KiB, over the limit: the server closes with 1009.
    tcp.write_all(&frame(0x2, &vec![9u8; 100 * 1024]))
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let close_at = loop {
        // The greeting (2 + 27 bytes), then the close frame: 2 + 2 + "message too big".
        if received.len() >= 29 + 4 && received[29] == 0x88 {
            let frames = decode(&received);
            assert_eq!(frames.len(), 2, "greeting and close");
            assert_eq!(&frames[1].1[..2], &1009u16.to_be_bytes());
            break received.len();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("a close frame in time")
            .unwrap();
        assert!(n > 0, "EOF before the close frame");
        received.extend_from_slice(&buf[..n]);
    };
    // RFC 6455 7.1.1: having received our answer, the server closes TCP first. It used to
    // linger about 1 s (until the client's FIN) instead.
    tcp.write_all(&frame(0x8, &1009u16.to_be_bytes()))
        .await
        .unwrap();
    let answered = Instant::now();
    read_to_eof(&mut tcp, &mut received, Duration::from_secs(5)).await;
    let took = answered.elapsed();
    assert_eq!(received.len(), close_at, "nothing after the close frame");
    assert!(
        took < Duration::from_millis(500),
        "the server closed TCP {took:?} after the close reply"
    );
}
