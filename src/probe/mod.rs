//! Probing: every candidate URL at once, each staged by hand (DNS, TCP, TLS, upgrade,
//! echo) under its own timeouts, each result data (stage reached, failure kind, timings,
//! what was seen), never an `Err`.

pub mod dns;
pub mod echo;
pub mod proxy;
pub mod tcp;
pub mod tls;
pub mod upgrade;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::either::Either;
use wscheck_server::info::Info;

use crate::plan::{Candidate, Plan};
use echo::{EchoInfo, EchoOutcome, PeerKind};
use tls::{CertificateProblem, TlsFailure, TlsInfo, TlsSetup};
use upgrade::HttpResponse;
use wire::{Recorded, WireLog, looks_like_tls};

/// The stages of a probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Dns,
    Connect,
    /// The CONNECT tunnel through a proxy.
    Proxy,
    Tls,
    Upgrade,
    Echo,
    /// Every stage passed.
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Proxy => "proxy",
            Stage::Tls => "tls",
            Stage::Upgrade => "upgrade",
            Stage::Echo => "echo",
            Stage::Done => "done",
        }
    }
}

/// What went wrong, precisely enough for a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    DnsFailed,
    DnsTimeout,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    /// The proxy could not be reached, broke off, or refused the tunnel (see the response).
    ProxyRefused,
    /// The proxy answered 407.
    ProxyAuthRequired,
    /// A plain-HTTP peer answered the TLS ClientHello.
    TlsToPlainPeer,
    TlsCertUntrusted,
    TlsCertNameMismatch,
    TlsCertExpired,
    TlsCertInvalid,
    TlsHandshakeFailed,
    TlsTimeout,
    /// A TLS peer answered the plaintext upgrade request.
    PlainToTlsPeer,
    /// An HTTP answer other than 101: see the response.
    HttpRefused,
    HandshakeClosed,
    HandshakeTimeout,
    /// The peer answered with something that is not HTTP.
    NotHttp,
    /// A 101 that breaks RFC 6455 (bad accept key, unrequested subprotocol).
    HandshakeInvalid,
    /// We offered subprotocols and the server picked none.
    SubprotocolNotAccepted,
    EchoTimeout,
    EchoMismatch,
    EchoClosed,
    /// Could not even build the request (bad header value).
    RequestInvalid,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// Milliseconds spent in each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub proxy: Option<f64>,
    pub tls: Option<f64>,
    pub upgrade: Option<f64>,
    pub echo: Option<f64>,
    pub total: f64,
}

/// Where the connection went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteInfo {
    /// Host and port dialled (after `--connect-to`).
    pub host: String,
    pub port: u16,
    pub redirected: bool,
    /// Every address DNS (or `--resolve`) gave.
    pub addresses: Vec<IpAddr>,
    pub connected_to: Option<SocketAddr>,
    /// The proxy tunnelled through (`host:port`), if any.
    pub proxy: Option<String>,
}

/// Everything one probe saw.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub candidate: Candidate,
    pub ok: bool,
    /// The last stage attempted (`done` when all passed).
    pub stage: Stage,
    pub failure: Option<Failure>,
    #[serde(rename = "timings_ms")]
    pub timings: Timings,
    pub route: RouteInfo,
    pub tls: Option<TlsInfo>,
    /// The request head as sent (first line, then headers).
    pub request: Vec<String>,
    pub response: Option<HttpResponse>,
    pub subprotocol: Option<String>,
    /// Credentials given but not sent because this candidate is plaintext.
    pub credentials_held_back: bool,
    pub peer: PeerKind,
    pub echo: Option<EchoInfo>,
}

impl ProbeResult {
    pub(crate) fn new(candidate: &Candidate) -> Self {
        Self {
            candidate: candidate.clone(),
            ok: false,
            stage: Stage::Dns,
            failure: None,
            timings: Timings::default(),
            route: RouteInfo::default(),
            tls: None,
            request: Vec::new(),
            response: None,
            subprotocol: None,
            credentials_held_back: false,
            peer: PeerKind::Unknown,
            echo: None,
        }
    }

    fn fail(&mut self, kind: FailureKind, message: impl Into<String>) {
        self.failure = Some(Failure {
            kind,
            message: message.into(),
        });
    }

    /// The echo verified the path end to end (not merely opened).
    pub fn echo_verified(&self) -> bool {
        self.echo.as_ref().is_some_and(|e| e.verified)
    }
}

/// The stream under the WebSocket: plain or TLS, recorded at the HTTP level.
pub type Conn = Recorded<Either<Recorded<TcpStream>, tls::Tls>>;

fn ms(since: Instant) -> Option<f64> {
    Some((since.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
}

/// The smaller of a stage budget and what is left of the probe.
fn budget(stage: Duration, deadline: Instant) -> Duration {
    stage.min(deadline.saturating_duration_since(Instant::now()))
}

fn client_config() -> WebSocketConfig {
    // Small buffers: a probe reads a handful of short messages. Writes wait for a flush
    // up to 16 KiB, so that `load --in-flight` sends a batch in one write (`send` flushes
    // anyway). No frame limit and a generous message limit: `--sizes` must see what the
    // server sends back, not our cap.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_frame_size(None)
        .max_message_size(Some(512 << 20))
}

/// Splits the raw request head into lines for the report.
fn head_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").map(str::to_owned).collect()
}

/// An open WebSocket over a probe's connection.
pub type Ws<'a> = WebSocketStream<&'a mut Conn>;

/// Runs stages 1 to 4 for `candidate` at `path`, then `then` on the open WebSocket (the
/// socket stays borrowed so that a refusal's body can still be read from it). On failure
/// `result` says where and why, and `None` is returned.
pub(crate) async fn open<R>(
    plan: &Plan,
    tls_setup: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    result: &mut ProbeResult,
    deadline: Instant,
    then: impl AsyncFnOnce(&mut Ws<'_>, &mut ProbeResult) -> R,
) -> Option<R> {
    let route = plan.route(candidate);
    result.route.host = route.host.clone();
    result.route.port = route.port;
    result.route.redirected = route.redirected;

    let proxy = plan.proxy_for(candidate);
    result.route.proxy = proxy.map(|p| p.display());
    // Through a proxy, DNS and TCP are about the proxy; the proxy resolves the route.
    let dial = match proxy {
        Some(p) => crate::plan::Route {
            host: p.host.clone(),
            port: p.port,
            pinned: p.host.parse().ok().map(|ip| vec![ip]),
            redirected: false,
        },
        None => route.clone(),
    };

    result.stage = Stage::Dns;
    let started = Instant::now();
    let addrs = match tokio::time::timeout(
        budget(plan.connect_timeout, deadline),
        dns::lookup(&dial),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(message)) if proxy.is_some() => {
            result.fail(
                FailureKind::ProxyRefused,
                format!("cannot resolve the proxy {}: {message}", dial.host),
            );
            return None;
        }
        Ok(Err(message)) => {
            result.fail(FailureKind::DnsFailed, message);
            return None;
        }
        Err(_) => {
            result.fail(
                FailureKind::DnsTimeout,
                format!("no DNS answer for {} in time", dial.host),
            );
            return None;
        }
    };
    result.timings.dns = ms(started);
    result.route.addresses = addrs.clone();

    result.stage = Stage::Connect;
    let started = Instant::now();
    let (mut tcp, peer) =
        match tcp::connect(&addrs, dial.port, budget(plan.connect_timeout, deadline)).await {
            Ok(connected) => connected,
            Err((_, message)) if proxy.is_some() => {
                result.fail(
                    FailureKind::ProxyRefused,
                    format!("cannot reach the proxy: {message}"),
                );
                return None;
            }
            Err((kind, message)) => {
                let kind = match kind {
                    tcp::ConnectError::Refused => FailureKind::ConnectRefused,
                    tcp::ConnectError::TimedOut => FailureKind::ConnectTimeout,
                    tcp::ConnectError::Other => FailureKind::ConnectFailed,
                };
                result.fail(kind, message);
                return None;
            }
        };
    result.timings.connect = ms(started);
    result.route.connected_to = Some(peer);

    if let Some(proxy) = proxy {
        result.stage = Stage::Proxy;
        let started = Instant::now();
        match proxy::tunnel(
            &mut tcp,
            proxy,
            &route.host,
            route.port,
            budget(plan.connect_timeout, deadline),
        )
        .await
        {
            Ok(()) => result.timings.proxy = ms(started),
            Err(failure) => {
                let (kind, message, response) = match failure {
                    proxy::ProxyFailure::Refused(r) => (
                        if r.status == 407 {
                            FailureKind::ProxyAuthRequired
                        } else {
                            FailureKind::ProxyRefused
                        },
                        format!(
                            "proxy {} answered {} {}",
                            proxy.display(),
                            r.status,
                            r.reason
                        ),
                        Some(r),
                    ),
                    proxy::ProxyFailure::Broken(m) => (
                        FailureKind::ProxyRefused,
                        format!("proxy {}: {m}", proxy.display()),
                        None,
                    ),
                };
                result.response = response;
                result.fail(kind, message);
                return None;
            }
        }
    }
    let (tcp, tcp_log) = Recorded::new(tcp);

    let stream = if candidate.scheme.is_tls() {
        result.stage = Stage::Tls;
        let started = Instant::now();
        let sni = plan.target.bare_host();
        match tls::handshake(
            tls_setup,
            tcp,
            &tcp_log,
            sni,
            budget(plan.connect_timeout, deadline),
        )
        .await
        {
            Ok((stream, info)) => {
                result.timings.tls = ms(started);
                result.tls = Some(info);
                Either::Right(stream)
            }
            Err((failure, info)) => {
                result.tls = info;
                let (kind, message) = match failure {
                    TlsFailure::PlainPeer(m) => (FailureKind::TlsToPlainPeer, m),
                    TlsFailure::Certificate(problem, m) => (
                        match problem {
                            CertificateProblem::Untrusted => FailureKind::TlsCertUntrusted,
                            CertificateProblem::NameMismatch => FailureKind::TlsCertNameMismatch,
                            CertificateProblem::Expired => FailureKind::TlsCertExpired,
                            CertificateProblem::Other => FailureKind::TlsCertInvalid,
                        },
                        m,
                    ),
                    TlsFailure::Handshake(m) => (FailureKind::TlsHandshakeFailed, m),
                    TlsFailure::TimedOut => (
                        FailureKind::TlsTimeout,
                        "no TLS handshake in time".to_owned(),
                    ),
                };
                result.fail(kind, message);
                return None;
            }
        }
    } else {
        Either::Left(tcp)
    };

    result.stage = Stage::Upgrade;
    let started = Instant::now();
    let (request, held_back) = match upgrade::build_request(plan, candidate, path) {
        Ok(built) => built,
        Err(message) => {
            result.fail(FailureKind::RequestInvalid, message);
            return None;
        }
    };
    result.credentials_held_back = held_back;
    let (mut conn, http_log) = Recorded::new(stream);
    let conn = &mut conn;
    let handshake =
        tokio_tungstenite::client_async_with_config(request, &mut *conn, Some(client_config()));
    let outcome = tokio::time::timeout_at(deadline.into(), handshake).await;
    result.request = head_lines(
        &http_log
            .lock()
            .map(|w| w.written.clone())
            .unwrap_or_default(),
    );
    let first_bytes = |log: &WireLog| log.lock().map(|w| w.read.clone()).unwrap_or_default();
    match outcome {
        Err(_) => {
            let got = first_bytes(&tcp_log);
            if !candidate.scheme.is_tls() && looks_like_tls(&got) {
                result.fail(
                    FailureKind::PlainToTlsPeer,
                    "the peer answered in TLS, then waited",
                );
            } else {
                result.fail(
                    FailureKind::HandshakeTimeout,
                    format!(
                        "no answer to the upgrade request within the probe timeout ({})",
                        humantime::format_duration(plan.timeout)
                    ),
                );
            }
            None
        }
        Ok(Ok((mut ws, response))) => {
            result.timings.upgrade = ms(started);
            result.response = Some(HttpResponse::from_tungstenite(&response, &[]));
            result.subprotocol = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if response
                .headers()
                .contains_key(wscheck_server::SERVER_HEADER)
            {
                result.peer = PeerKind::WscheckServer;
            }
            Some(then(&mut ws, result).await)
        }
        Ok(Err(WsError::Http(response))) => {
            result.timings.upgrade = ms(started);
            let mut body = response.body().clone().unwrap_or_default();
            upgrade::complete_body(
                conn,
                &response,
                &mut body,
                budget(Duration::from_millis(500), deadline),
            )
            .await;
            let http = HttpResponse::from_tungstenite(&response, &body);
            let message = format!("HTTP {} {}", http.status, http.reason);
            if http.header(wscheck_server::SERVER_HEADER).is_some() {
                result.peer = PeerKind::WscheckServer;
            }
            result.response = Some(http);
            result.fail(FailureKind::HttpRefused, message);
            None
        }
        Ok(Err(error)) => {
            result.timings.upgrade = ms(started);
            let got = first_bytes(&http_log);
            let kind = match &error {
                _ if !candidate.scheme.is_tls() && looks_like_tls(&first_bytes(&tcp_log)) => {
                    FailureKind::PlainToTlsPeer
                }
                WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                    tokio_tungstenite::tungstenite::error::SubProtocolError::NoSubProtocol,
                )) => FailureKind::SubprotocolNotAccepted,
                WsError::Protocol(ProtocolError::HandshakeIncomplete)
                | WsError::Io(_)
                | WsError::ConnectionClosed
                | WsError::AlreadyClosed => FailureKind::HandshakeClosed,
                WsError::HttpFormat(_) => FailureKind::NotHttp,
                WsError::Protocol(_) if !got.is_empty() && !wire::looks_like_http(&got) => {
                    FailureKind::NotHttp
                }
                WsError::Protocol(_) => FailureKind::HandshakeInvalid,
                _ => FailureKind::HandshakeClosed,
            };
            let message = match kind {
                FailureKind::PlainToTlsPeer => {
                    "the peer answered the plaintext request with TLS bytes".to_owned()
                }
                FailureKind::NotHttp => format!(
                    "{error}; first bytes: {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(40)])
                ),
                _ => error.to_string(),
            };
            result.fail(kind, message);
            None
        }
    }
}

/// Probes one candidate through every stage.
pub async fn probe(plan: &Plan, tls_setup: &TlsSetup, candidate: &Candidate) -> ProbeResult {
    let mut result = ProbeResult::new(candidate);
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let nonce = plan.message.clone().unwrap_or_else(new_nonce);
    open(
        plan,
        tls_setup,
        candidate,
        &plan.target.path,
        &mut result,
        deadline,
        async |ws, result| {
            result.stage = Stage::Echo;
            let echo_started = Instant::now();
            let (outcome, info, peer) = echo::run(ws, &nonce, result.peer, deadline).await;
            result.peer = peer;
            result.timings.echo = ms(echo_started);
            result.echo = Some(info);
            match outcome {
                EchoOutcome::Verified | EchoOutcome::Unverified => {
                    result.stage = Stage::Done;
                    result.ok = true;
                }
                EchoOutcome::TimedOut => {
                    result.fail(FailureKind::EchoTimeout, "no echo within the probe timeout")
                }
                EchoOutcome::Mismatch => result.fail(
                    FailureKind::EchoMismatch,
                    "messages came back, but not the one sent",
                ),
                EchoOutcome::Closed => {
                    let message = match &result.echo {
                        Some(EchoInfo {
                            close_code: Some(code),
                            close_reason,
                            ..
                        }) => {
                            format!(
                                "the peer closed the WebSocket ({code} {})",
                                close_reason.as_deref().unwrap_or_default()
                            )
                        }
                        Some(EchoInfo {
                            close_reason: Some(reason),
                            ..
                        }) => format!("the connection ended: {reason}"),
                        _ => "the connection ended".to_owned(),
                    };
                    result.fail(FailureKind::EchoClosed, message);
                }
            }
        },
    )
    .await;
    result.timings.total = ms(started).unwrap_or_default();
    result
}

pub(crate) fn new_nonce() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Unique per probe; no need for cryptographic randomness.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "wscheck-{:x}-{n}",
        nanos ^ u128::from(std::process::id()) << 64
    )
}

/// Probes every candidate at once; the whole takes about as long as the slowest probe,
/// which its own deadline bounds.
pub async fn probe_all(plan: &Plan, tls_setup: &TlsSetup) -> Vec<ProbeResult> {
    futures_util::future::join_all(plan.candidates.iter().map(|c| probe(plan, tls_setup, c))).await
}

/// Reads the bundled server's `/.wscheck/ws` introspection over `candidate`.
pub async fn fetch_info(plan: &Plan, tls_setup: &TlsSetup, candidate: &Candidate) -> Option<Info> {
    let mut scratch = ProbeResult::new(candidate);
    let deadline = Instant::now() + plan.timeout;
    open(
        plan,
        tls_setup,
        candidate,
        wscheck_server::INFO_WS_PATH,
        &mut scratch,
        deadline,
        async |ws, _| {
            let first = tokio::time::timeout_at(deadline.into(), ws.next())
                .await
                .ok()??
                .ok()?;
            let info = match first {
                Message::Text(text) => serde_json::from_str::<Info>(&text).ok(),
                _ => None,
            };
            let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
            info
        },
    )
    .await
    .flatten()
}
