//! The HTTP side of a connection: read one request head under a deadline and a size cap,
//! answer plain requests, refuse broken upgrades with a reason, hand good ones to a session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::info::{Header, Info, RequestInfo, SERVER_NAME};
use crate::linger::linger;
use crate::protocol::{HEALTH_PATH, INFO_PATH, INFO_WS_PATH, SERVER_HEADER, VERSION};
use crate::session;
use crate::shared::Shared;

/// Largest request head accepted; gorouter's own default limit is 1 MiB, but an echo
/// server has no use for more than this, and it bounds what a hostile client can pin.
const MAX_HEAD_BYTES: usize = 32 * 1024;
const MAX_HEADERS: usize = 128;
/// Time allowed to write a response to a client that may not be reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request head.
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<Header>,
}

impl RequestHead {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Whether any `name` header lists `token` in its comma-separated values.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub(crate) fn path(&self) -> &str {
        let path = self.target.split(['?', '#']).next().unwrap_or("/");
        if path.is_empty() { "/" } else { path }
    }

    pub(crate) fn info(&self, peer: SocketAddr, local_port: u16, shared: &Shared) -> Info {
        Info {
            server: SERVER_NAME.to_owned(),
            version: VERSION.to_owned(),
            uptime_ms: shared.started.elapsed().as_millis() as u64,
            request: RequestInfo {
                line: format!(
                    "{} {} HTTP/1.{}",
                    self.method, self.target, self.minor_version
                ),
                method: self.method.clone(),
                target: self.target.clone(),
                headers: self.headers.clone(),
            },
            peer: peer.to_string(),
            listen_port: local_port,
            environment: shared.config.environment.clone(),
        }
    }
}

enum HeadRead {
    Complete(RequestHead, Vec<u8>),
    /// The client closed (or reset) before sending a whole head: nothing to answer.
    Closed,
    TooLarge,
    Malformed(String),
    TimedOut,
}

async fn read_head(stream: &mut TcpStream, timeout: Duration) -> HeadRead {
    // A heap buffer, not an array in the future: the connection's task stays small for
    // the whole life of a WebSocket that follows.
    let mut buf = Vec::with_capacity(1024);
    let read_all = async {
        loop {
            if buf.len() == buf.capacity() {
                buf.reserve(buf.len().min(MAX_HEAD_BYTES));
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = RequestHead {
                        method: request.method.unwrap_or_default().to_owned(),
                        target: request.path.unwrap_or_default().to_owned(),
                        minor_version: request.version.unwrap_or(1),
                        headers: request
                            .headers
                            .iter()
                            .map(|h| Header {
                                name: h.name.to_owned(),
                                value: String::from_utf8_lossy(h.value).into_owned(),
                            })
                            .collect(),
                    };
                    return HeadRead::Complete(head, buf[len..].to_vec());
                }
                Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                    return HeadRead::TooLarge;
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return HeadRead::TooLarge,
                Err(error) => return HeadRead::Malformed(error.to_string()),
            }
        }
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or(HeadRead::TimedOut)
}

/// A response this server writes by hand (always `Connection: close`).
pub(crate) struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n{SERVER_HEADER}: {VERSION}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Writes `response`, then closes gracefully: shut down our side and discard what the
/// client still sends for a moment, so the answer is not lost to a TCP reset.
async fn respond_and_close(stream: &mut TcpStream, response: Response, head_only: bool) {
    let bytes = response.encode(head_only);
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(WRITE_TIMEOUT, write).await.is_err() {
        return;
    }
    linger(stream).await;
}

/// Serves one connection: one request, then either a WebSocket session or a close.
pub(crate) async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    local_port: u16,
    shared: &Arc<Shared>,
) {
    let (head, leftover) = match read_head(&mut stream, shared.config.header_timeout).await {
        HeadRead::Complete(head, leftover) => (head, leftover),
        HeadRead::Closed => return,
        HeadRead::TooLarge => {
            tracing::info!(%peer, "request head too large");
            let response = Response::text(
                431,
                "Request Header Fields Too Large",
                format!("request head exceeds {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers\n"),
            );
            return respond_and_close(&mut stream, response, false).await;
        }
        HeadRead::Malformed(error) => {
            tracing::info!(%peer, %error, "malformed request");
            let response = Response::text(400, "Bad Request", format!("bad request: {error}\n"));
            return respond_and_close(&mut stream, response, false).await;
        }
        HeadRead::TimedOut => {
            tracing::info!(%peer, "request head not complete within the header timeout");
            let response = Response::text(
                408,
                "Request Timeout",
                "request head not received in time\n",
            );
            return respond_and_close(&mut stream, response, false).await;
        }
    };

    if is_upgrade_attempt(&head) {
        return handle_upgrade(stream, head, leftover, peer, local_port, shared).await;
    }
    let head_only = head.method == "HEAD";
    let response = plain_response(&head, peer, local_port, shared);
    tracing::debug!(%peer, method = %head.method, target = %head.target, status = response.status, "http");
    respond_and_close(&mut stream, response, head_only).await;
}

/// A request that tries to be a WebSocket handshake, even a broken one.
fn is_upgrade_attempt(head: &RequestHead) -> bool {
    head.header("sec-websocket-key").is_some() || head.has_token("upgrade", "websocket")
}

/// What a WebSocket handshake lacks, in the words of the headers a client must send.
fn missing_upgrade_parts(head: &RequestHead) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if head.minor_version == 0 {
        missing.push("HTTP/1.1 (the request was HTTP/1.0, which cannot upgrade)");
    }
    if !head.has_token("upgrade", "websocket") {
        missing.push("Upgrade: websocket");
    }
    if !head.has_token("connection", "upgrade") {
        missing.push("Connection: Upgrade");
    }
    if head.header("sec-websocket-key").is_none() {
        missing.push("Sec-WebSocket-Key");
    }
    missing
}

async fn handle_upgrade(
    mut stream: TcpStream,
    head: RequestHead,
    leftover: Vec<u8>,
    peer: SocketAddr,
    local_port: u16,
    shared: &Arc<Shared>,
) {
    if let Some(response) = refuse_handshake(&head, peer) {
        return respond_and_close(&mut stream, response, false).await;
    }
    let Ok(permit) = shared.sessions.clone().try_acquire_owned() else {
        tracing::warn!(%peer, limit = shared.config.max_connections, "503: connection limit reached");
        let response = Response::text(
            503,
            "Service Unavailable",
            format!(
                "connection limit reached ({} WebSockets)\n",
                shared.config.max_connections
            ),
        )
        .with_header("Retry-After", "1");
        return respond_and_close(&mut stream, response, false).await;
    };
    let response = switching_protocols(&head);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(response.as_bytes())).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let info = (head.path() == INFO_WS_PATH).then(|| head.info(peer, local_port, shared));
    let forwarded_for = head.header("x-forwarded-for").map(str::to_owned);
    let RequestHead {
        target: path,
        headers,
        ..
    } = head;
    drop(headers);
    // A task of its own: the session lives for hours, and its task should not carry the
    // handshake's state.
    let start = Box::new(session::Start {
        tcp: stream,
        leftover,
        path,
        forwarded_for,
        info,
        peer,
        permit,
    });
    shared.tracker.spawn(session::run(start, shared.clone()));
}

/// The answer to a handshake this server cannot accept: upgrade headers missing (a proxy
/// dropped them), not a GET, or another WebSocket version.
fn refuse_handshake(head: &RequestHead, peer: SocketAddr) -> Option<Response> {
    let missing = missing_upgrade_parts(head);
    if !missing.is_empty() {
        tracing::info!(%peer, target = %head.target, missing = %missing.join(", "), "426: WebSocket handshake without its upgrade headers");
        let body = format!(
            "426 Upgrade Required: a WebSocket handshake reached the app without: {}.\n\
             A proxy between the client and this app dropped the hop-by-hop headers \
             (or the client does not speak WebSocket).\n",
            missing.join(", ")
        );
        let response = Response::text(426, "Upgrade Required", body)
            .with_header("Upgrade", "websocket")
            .with_header("Sec-WebSocket-Version", "13");
        return Some(response);
    }
    if head.method != "GET" {
        let response = Response::text(
            405,
            "Method Not Allowed",
            "a WebSocket handshake must be a GET\n",
        )
        .with_header("Allow", "GET");
        return Some(response);
    }
    if head.header("sec-websocket-version").map(str::trim) != Some("13") {
        let response = Response::text(
            426,
            "Upgrade Required",
            "unsupported Sec-WebSocket-Version; this server speaks 13\n",
        )
        .with_header("Upgrade", "websocket")
        .with_header("Sec-WebSocket-Version", "13");
        return Some(response);
    }
    None
}

/// The 101, marked as this server's, with the client's first subprotocol: an echo server
/// speaks any, so the prober can show that negotiation works end to end.
fn switching_protocols(head: &RequestHead) -> String {
    let key = head.header("sec-websocket-key").unwrap_or_default();
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
    let protocol = head
        .header("sec-websocket-protocol")
        .and_then(|list| list.split(',').map(str::trim).find(|p| !p.is_empty()));
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{SERVER_HEADER}: {VERSION}\r\n"
    );
    if let Some(protocol) = protocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    response.push_str("\r\n");
    response
}

fn plain_response(
    head: &RequestHead,
    peer: SocketAddr,
    local_port: u16,
    shared: &Shared,
) -> Response {
    if head.method != "GET" && head.method != "HEAD" {
        return Response::text(405, "Method Not Allowed", "only GET and HEAD are served\n")
            .with_header("Allow", "GET, HEAD");
    }
    match head.path() {
        HEALTH_PATH => Response::text(200, "OK", "ok\n"),
        // Browsers ask for it with the page; an empty answer keeps their console clean.
        "/favicon.ico" => Response::text(204, "No Content", ""),
        INFO_PATH => {
            let info = head.info(peer, local_port, shared);
            Response {
                status: 200,
                reason: "OK",
                content_type: "application/json",
                headers: Vec::new(),
                body: serde_json::to_vec_pretty(&info).unwrap_or_default(),
            }
        }
        "/" => Response {
            status: 200,
            reason: "OK",
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: include_str!("index.html").as_bytes().to_vec(),
        },
        _ => Response::text(
            404,
            "Not Found",
            "no page here; this is wscheck-server: open a WebSocket on any path, or GET / for help\n",
        ),
    }
}
