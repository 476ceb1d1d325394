//! Scripted peers on `127.0.0.1:0` for the prober's tests: canned HTTP answers, black holes,
//! WebSocket peers that misbehave, and a TLS front (rcgen certificates) that forwards to
//! any of them, adding the forwarding headers a router adds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::pki::{Leaf, TestCa};

/// What a scripted peer does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Reads the request head, writes these bytes, closes.
    Respond(String),
    /// Accepts and reads, never answers (the connection stays open).
    BlackHole,
    /// Reads the first bytes, then closes without a word.
    CloseOnFirstBytes,
    /// Reads the request head, then writes bytes that are not HTTP.
    NotHttp,
    /// Completes the WebSocket handshake, then never sends anything.
    WsSilent,
    /// Completes the handshake, answers every message with this text.
    WsReply(String),
    /// Completes the handshake, closes with this code on the first message.
    WsClose(u16),
    /// Completes the handshake, sends the article's greeting, then never answers.
    WsGreetThenSilent,
    /// Sends the article's greeting, then answers every message with this text: an echo
    /// server (by its greeting) whose answers were altered on the way.
    WsGreetThenReply(String),
    /// Completes the handshake without choosing any of the offered subprotocols.
    WsIgnoreSubprotocols,
    /// Completes the handshake with an echo, and records the raw request head.
    WsEchoRecording(Arc<std::sync::Mutex<Vec<String>>>),
    /// Completes the handshake, echoes messages in pairs, the second of each pair first.
    WsEchoSwapped,
}

/// A running peer; stops when dropped.
pub struct Peer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP response with the given status, headers and body (Content-Length set).
pub fn http_response(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// Reads until the end of a request head (or EOF / 64 KiB); returns the head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn accept_websocket<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    head: &str,
    choose_protocol: bool,
) -> bool {
    let Some(key) = header(head, "sec-websocket-key") else {
        return false;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if choose_protocol && let Some(p) = header(head, "sec-websocket-protocol") {
        response.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            p.split(',').next().unwrap_or_default().trim()
        ));
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await.is_ok()
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin + Send>(mut stream: S, behaviour: Behaviour) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
    match behaviour {
        Behaviour::CloseOnFirstBytes => {
            let mut chunk = [0u8; 64];
            let _ = stream.read(&mut chunk).await;
        }
        Behaviour::BlackHole => {
            let mut sink = [0u8; 1024];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        Behaviour::Respond(bytes) => {
            if read_head(&mut stream).await.is_some() {
                let _ = stream.write_all(bytes.as_bytes()).await;
                let _ = stream.shutdown().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Behaviour::NotHttp => {
            if read_head(&mut stream).await.is_some() {
                let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Behaviour::WsSilent
        | Behaviour::WsGreetThenSilent
        | Behaviour::WsGreetThenReply(_)
        | Behaviour::WsReply(_)
        | Behaviour::WsClose(_)
        | Behaviour::WsIgnoreSubprotocols
        | Behaviour::WsEchoRecording(_)
        | Behaviour::WsEchoSwapped => {
            let Some(head) = read_head(&mut stream).await else {
                return;
            };
            if let Behaviour::WsEchoRecording(log) = &behaviour {
                log.lock().unwrap().push(head.clone());
            }
            let choose = !matches!(behaviour, Behaviour::WsIgnoreSubprotocols);
            if !accept_websocket(&mut stream, &head, choose).await {
                return;
            }
            let mut ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Server, None)
                    .await;
            if matches!(
                behaviour,
                Behaviour::WsGreetThenSilent | Behaviour::WsGreetThenReply(_)
            ) && ws
                .send(Message::text(wscheck_server::GREETING))
                .await
                .is_err()
            {
                return;
            }
            let mut held: Option<Message> = None;
            while let Some(Ok(message)) = ws.next().await {
                if !message.is_text() && !message.is_binary() {
                    continue;
                }
                let reply = match &behaviour {
                    Behaviour::WsEchoSwapped => match held.take() {
                        None => {
                            held = Some(message);
                            continue;
                        }
                        Some(first) => {
                            if ws.feed(message).await.is_err() {
                                break;
                            }
                            first
                        }
                    },
                    Behaviour::WsSilent
                    | Behaviour::WsGreetThenSilent
                    | Behaviour::WsIgnoreSubprotocols => continue,
                    Behaviour::WsReply(text) | Behaviour::WsGreetThenReply(text) => {
                        Message::text(text.clone())
                    }
                    Behaviour::WsEchoRecording(_) => message,
                    Behaviour::WsClose(code) => {
                        let _ = ws
                            .close(Some(CloseFrame {
                                code: (*code).into(),
                                reason: "fixture".into(),
                            }))
                            .await;
                        continue;
                    }
                    _ => unreachable!(),
                };
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Starts a plain scripted peer.
pub async fn start(behaviour: Behaviour) -> Result<Peer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one(stream, behaviour.clone()));
        }
    });
    Ok(Peer { addr, task })
}

/// A TLS server config for `leaf` (rustls, ring).
pub fn tls_acceptor(leaf: &Leaf, ca: &TestCa) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(format!("{}{}", leaf.cert_pem, ca.pem()).as_bytes())
            .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Starts a TLS scripted peer.
pub async fn start_tls(behaviour: Behaviour, acceptor: tokio_rustls::TlsAcceptor) -> Result<Peer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_one(tls, behaviour).await;
                }
            });
        }
    });
    Ok(Peer { addr, task })
}

/// A TLS-terminating front to `backend` that adds X-Forwarded-For/-Proto, like a router.
pub async fn start_tls_front(
    backend: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Result<Peer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Some(head) = read_head(&mut tls).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let (head_only, rest) = head.split_once("\r\n\r\n").unwrap_or((&head, ""));
                let forwarded = format!(
                    "{head_only}\r\nX-Forwarded-For: {}\r\nX-Forwarded-Proto: https\r\n\r\n{rest}",
                    peer.ip()
                );
                if upstream.write_all(forwarded.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    Ok(Peer { addr, task })
}

/// The bundled server in-process on `127.0.0.1:0`.
pub struct Bundled {
    pub addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Bundled {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start_bundled(config: wscheck_server::Config) -> Result<Bundled> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(wscheck_server::serve(
        vec![listener],
        config,
        shutdown.clone(),
    ));
    Ok(Bundled { addr, shutdown })
}

/// A loopback port whose accept queue is full, so a new connection's SYN goes unanswered
/// (the kernel drops it): a connect time-out without leaving 127.0.0.1.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
}

pub fn full_backlog() -> Result<FullBacklog> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(0)?;
    let addr = socket.local_addr()?.as_socket().expect("inet");
    let mut fillers = Vec::new();
    // With backlog 0 the queue holds one or two connections; fill it for sure.
    for _ in 0..3 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    Ok(FullBacklog {
        addr,
        _listener: socket,
        _fillers: fillers,
    })
}
