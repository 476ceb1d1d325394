//! A local gorouter stand-in in front of any app listening on a loopback port.
//!
//! TLS "443" with a certificate from a throw-away CA, plain "80", gorouter's headers toward
//! the app, `X-Vcap-Request-Id` on its answers and its `X-Cf-Routererror` refusals, as
//! observed on routing-release 0.317 (the facts file's last section). `wscheck demo` puts
//! the bundled server behind it, `wscheck app` the user's app; both probe it with the real
//! prober through `--connect-to` rules. Everything listens on 127.0.0.1 only.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// What the router routes, and what it tells the app about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Host names the route answers for (the certificate covers them; other hosts get 404
    /// unknown_route).
    pub hosts: Vec<String>,
    /// Where the app listens (loopback).
    pub app: SocketAddr,
    /// Drop Upgrade/Connection (the upgrade-stripped scenario).
    pub strip_upgrade: bool,
    /// What the router tells the app in X-Cf-Applicationid / X-Cf-Instanceid /
    /// X-Cf-Instanceindex.
    pub app_guid: String,
    pub instance_guid: String,
    pub instance_index: u32,
}

/// A running router: its two listeners, the CA that signed its certificate. Dropping it
/// stops the listeners and every connection still going through it.
#[derive(Debug)]
pub struct CfRouter {
    /// The TLS listener, standing for gorouter's 443.
    pub tls: SocketAddr,
    /// The plain listener, standing for gorouter's 80.
    pub plain: SocketAddr,
    ca_pem: String,
    shutdown: CancellationToken,
}

/// A loopback port nobody listens on (bound, then let go): where the ports CF does not route
/// lead, or a free `$PORT` for an app.
pub fn unused_loopback_port() -> Result<SocketAddr, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Setup(format!("no free loopback port: {e}")))?;
    listener
        .local_addr()
        .map_err(|e| Error::Setup(format!("no free loopback port: {e}")))
}

impl CfRouter {
    /// Makes the certificates, binds 127.0.0.1:0 twice (TLS, plain) and serves until dropped.
    pub async fn start(config: RouterConfig) -> Result<CfRouter, Error> {
        if config.hosts.iter().all(|h| h.trim().is_empty()) {
            return Err(setup("no host name to route"));
        }
        let pki = Pki::new(&config.hosts).map_err(|e| setup(format!("certificates: {e}")))?;
        let acceptor = pki.acceptor()?;
        let tls_listener = bind_loopback().await?;
        let plain_listener = bind_loopback().await?;
        let router = CfRouter {
            tls: tls_listener.local_addr().map_err(setup)?,
            plain: plain_listener.local_addr().map_err(setup)?,
            ca_pem: pki.ca_pem,
            shutdown: CancellationToken::new(),
        };
        let route = Arc::new(Route::from(config));
        let shutdown = router.shutdown.clone();
        tokio::spawn(serve(
            tls_listener,
            Some(acceptor),
            route.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(serve(plain_listener, None, route, shutdown));
        Ok(router)
    }

    /// The throw-away CA's PEM (to trust it: crate::probe::tls::TlsSetup::from_pem).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `--connect-to` rules sending `host`'s 443 and 80 here and every other port to
    /// `closed` (a loopback port nobody listens on), as on CF, where only 443 and 80 lead
    /// to gorouter. The catch-all comes last: the first matching rule wins.
    pub fn connect_to(&self, host: &str, closed: SocketAddr) -> Vec<String> {
        vec![
            format!("{host}:443:{}", self.tls),
            format!("{host}:80:{}", self.plain),
            format!("{host}::{closed}"),
        ]
    }
}

impl Drop for CfRouter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn setup(error: impl std::fmt::Display) -> Error {
    Error::Setup(format!("router: {error}"))
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    TcpListener::bind("127.0.0.1:0").await.map_err(setup)
}

/// A throw-away CA and the router's certificate, signed by it.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new(hosts: &[String]) -> Result<Pki, rcgen::Error> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "wscheck demo CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let names = certificate_names(hosts);
        let mut leaf = CertificateParams::new(names.clone())?;
        leaf.distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &ca)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            chain: vec![cert.der().clone(), ca.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The TLS side of the "443" listener. No ALPN: a WebSocket client that offers h2 gets
    /// http/1.1, which is what it needs through gorouter anyway.
    fn acceptor(&self) -> Result<TlsAcceptor, Error> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key.clone_key())
        .map_err(|e| setup(format!("certificate: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The names the certificate is for: first the wildcard of each host's domain (the shape of
/// CF's shared-domain certificate, `*.cfapps.…`, so that another host of the domain gets
/// gorouter's 404 after a good handshake, as on CF), then the hosts themselves. No wildcard
/// for an IP address, a one-label host, or directly under a one-label domain (`*.test`
/// would match a whole TLD). Never empty: `start` refuses an empty host list.
fn certificate_names(hosts: &[String]) -> Vec<String> {
    let hosts: Vec<String> = hosts
        .iter()
        .map(|h| normal_host(h))
        .filter(|h| !h.is_empty())
        .collect();
    let wildcards = hosts.iter().filter_map(|host| {
        let (_, domain) = host.split_once('.')?;
        let wildcard =
            host.parse::<IpAddr>().is_err() && !host.starts_with("*.") && domain.contains('.');
        wildcard.then(|| format!("*.{domain}"))
    });
    let mut names: Vec<String> = Vec::new();
    for name in wildcards.collect::<Vec<_>>().into_iter().chain(hosts) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A host name as the router compares it: trimmed, lowercase, without an IPv6 literal's
/// brackets.
fn normal_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The configuration as the connections share it, host names normalised once.
#[derive(Debug)]
struct Route {
    hosts: Vec<String>,
    app: SocketAddr,
    strip_upgrade: bool,
    app_guid: String,
    instance_guid: String,
    instance_index: String,
}

impl From<RouterConfig> for Route {
    fn from(config: RouterConfig) -> Self {
        Route {
            hosts: config.hosts.iter().map(|h| normal_host(h)).collect(),
            app: config.app,
            strip_upgrade: config.strip_upgrade,
            app_guid: config.app_guid,
            instance_guid: config.instance_guid,
            instance_index: config.instance_index.to_string(),
        }
    }
}

/// Largest request or response head the router reads (gorouter's limit is larger; this is
/// plenty).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// How long the router waits for a client's request head and for the app's answer: a
/// silent peer must not hold a task (and the other side's socket) for ever.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on one listener until shutdown. Each connection stops at shutdown too, so that a
/// held WebSocket does not outlive the router it went through.
async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    route: Arc<Route>,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let (tls, route) = (tls.clone(), route.clone());
        // Small frames both ways: Nagle plus delayed ACKs would add 40 ms per exchange.
        let _ = tcp.set_nodelay(true);
        let connection = async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        route_one(stream, peer, "https", &route).await;
                    }
                }
                None => route_one(tcp, peer, "http", &route).await,
            }
        };
        tokio::spawn(shutdown.clone().run_until_cancelled_owned(connection));
    }
}

/// Forwards one request as gorouter would: no Host gets 400 `empty_host`, an unknown host
/// 404 `unknown_route`, an app that cannot be dialled 502 `endpoint_failure`; the rest goes
/// to the app with gorouter's headers, and the app's answer comes back with
/// `X-Vcap-Request-Id`. One request per connection: the app is told `Connection: close`
/// (or the connection becomes a WebSocket), so nothing after the first head needs parsing.
async fn route_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    peer: SocketAddr,
    proto: &str,
    route: &Route,
) {
    let Some((buf, head_len)) = read_request_head(&mut client).await else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(&buf[..head_len]).is_err() {
        return;
    }
    if let Some(refusal) = unroutable(&request, &route.hosts) {
        return refusal.send(&mut client).await;
    }
    let mut app = match TcpStream::connect(route.app).await {
        Ok(app) => app,
        Err(error) => {
            return RouterError::endpoint_failure(route.app, &error)
                .send(&mut client)
                .await;
        }
    };
    let _ = app.set_nodelay(true);
    let request_id = request_id();
    let forwarding = Forwarding {
        peer,
        proto,
        request_id: &request_id,
        route,
    };
    let head = forwarded_head(&request, &forwarding);
    if app.write_all(&head).await.is_err() || app.write_all(&buf[head_len..]).await.is_err() {
        return;
    }
    // The answer's head is read before the two directions are joined: a WebSocket client
    // waits for the 101, and a plain request's body beyond the bytes that came with its
    // head reaches the app only once it has answered (enough for GETs and upgrades, which
    // is what goes through here).
    let Some(answer) = read_answer_head(&mut app, &request_id).await else {
        return;
    };
    if client.write_all(&answer).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut app).await;
}

/// Reads a request head (and whatever followed it); a malformed or oversized one gets a
/// 400. The bytes read and the head's length, or `None` when the client is gone.
async fn read_request_head<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        match tokio::time::timeout(HEAD_TIMEOUT, client.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(&buf) {
            Ok(httparse::Status::Complete(len)) => return Some((buf, len)),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => {
                RouterError::bad_request().send(client).await;
                return None;
            }
        }
    }
}

/// Reads the app's response head and returns what the client gets: the head with
/// gorouter's `X-Vcap-Request-Id` added (the 101 included), then whatever followed it (a
/// body, or the first WebSocket frames, a greeting among them). An answer that does not
/// parse as a head goes through as it came: the router must not be what breaks.
/// `None` when the app sent nothing in time.
async fn read_answer_head(app: &mut TcpStream, request_id: &str) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        let n = match tokio::time::timeout(HEAD_TIMEOUT, app.read_buf(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return None,
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if n > 0 && buf.len() < MAX_HEAD => continue,
            _ => return (!buf.is_empty()).then_some(buf),
        };
        let mut out = format!(
            "HTTP/1.{} {} {}\r\n",
            response.version.unwrap_or(1),
            response.code.unwrap_or(200),
            response.reason.unwrap_or_default()
        )
        .into_bytes();
        for h in response.headers.iter() {
            if !h.name.eq_ignore_ascii_case("x-vcap-request-id") {
                push_header(&mut out, h.name, h.value);
            }
        }
        push_header(&mut out, "X-Vcap-Request-Id", request_id.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&buf[head_len..]);
        return Some(out);
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How one request is forwarded: who sent it, over what, under which request id, where.
struct Forwarding<'a> {
    peer: SocketAddr,
    proto: &'a str,
    request_id: &'a str,
    route: &'a Route,
}

/// Hop-by-hop headers: they concern one connection, so a proxy does not pass them on as
/// they came (RFC 9110 §7.6.1); the router writes its own `Connection` (and `Upgrade`).
/// `Transfer-Encoding` stays: the body is relayed as it came, chunks and all.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
];
/// The headers the router sets itself; any a client sent are replaced, so that what the
/// app sees is what this router added (`X-Forwarded-For` is appended to instead).
const SET_BY_ROUTER: [&str; 7] = [
    "x-cf-applicationid",
    "x-cf-instanceid",
    "x-cf-instanceindex",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-start",
    "x-vcap-request-id",
];

/// The request head as the app receives it from gorouter: the client's headers less the
/// hop-by-hop ones, `Connection: Upgrade` with the client's `Upgrade` only when the
/// client's `Connection` contains `upgrade` (else `Connection: close`, as gorouter sends
/// plain requests), then gorouter's headers (no `X-Forwarded-Host`: gorouter adds none).
fn forwarded_head(request: &httparse::Request<'_, '_>, forwarding: &Forwarding<'_>) -> Vec<u8> {
    let route = forwarding.route;
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method.unwrap_or("GET"),
        request.path.unwrap_or("/"),
        request.version.unwrap_or(1)
    )
    .into_bytes();
    let mut forwarded_for = Vec::new();
    for h in request.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "x-forwarded-for" {
            forwarded_for.push(String::from_utf8_lossy(h.value).trim().to_owned());
        }
        if !HOP_BY_HOP.contains(&name.as_str()) && !SET_BY_ROUTER.contains(&name.as_str()) {
            push_header(&mut head, h.name, h.value);
        }
    }
    match upgrade(request).filter(|_| !route.strip_upgrade) {
        Some(protocol) => {
            push_header(&mut head, "Connection", b"Upgrade");
            push_header(&mut head, "Upgrade", protocol);
        }
        None => push_header(&mut head, "Connection", b"close"),
    }
    forwarded_for.push(forwarding.peer.ip().to_string());
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .to_string();
    // In the order Go writes them (sorted by name), as the app behind gorouter sees them.
    for (name, value) in [
        ("X-Cf-Applicationid", route.app_guid.as_str()),
        ("X-Cf-Instanceid", &route.instance_guid),
        ("X-Cf-Instanceindex", &route.instance_index),
        ("X-Forwarded-For", &forwarded_for.join(", ")),
        ("X-Forwarded-Proto", forwarding.proto),
        ("X-Request-Start", &start),
        ("X-Vcap-Request-Id", forwarding.request_id),
    ] {
        push_header(&mut head, name, value.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The client's `Upgrade` value, when the request asks to upgrade the way gorouter
/// recognises it: `Connection` contains `upgrade` (gorouter drops a lone `Upgrade`).
fn upgrade<'a>(request: &httparse::Request<'_, 'a>) -> Option<&'a [u8]> {
    let header = |wanted: &'static str| {
        request
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(wanted))
            .map(|h| h.value)
    };
    let asks = header("connection").any(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("upgrade")
    });
    asks.then(|| header("upgrade").next()).flatten()
}

/// A fresh dashed UUID (version 4 layout) for `X-Vcap-Request-Id`. std's `RandomState` is
/// keyed from the OS's randomness, which is enough for a request id and needs no crate.
fn request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |half: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(n);
        hasher.write_u64(half);
        hasher.finish()
    };
    let high = (word(0) & !0xf000) | 0x4000; // version 4
    let low = (word(1) >> 2) | (1 << 63); // variant 10xx
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// The router's own answer, worded as gorouter's error writer words it:
/// `X-Cf-Routererror: <code>` and the body `<status> <reason>: <message>`.
struct RouterError {
    status: u16,
    reason: &'static str,
    /// `X-Cf-Routererror`; empty for a request too broken to route (Go's own 400).
    code: String,
    message: String,
}

impl RouterError {
    fn bad_request() -> Self {
        Self {
            status: 400,
            reason: "Bad Request",
            code: String::new(),
            message: "malformed request".to_owned(),
        }
    }

    /// A dial that failed, in Go's words: `dial tcp 127.0.0.1:PORT: connect: connection
    /// refused`, as the real gorouter puts it in the header.
    fn endpoint_failure(app: SocketAddr, error: &std::io::Error) -> Self {
        let cause = match error.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
            std::io::ErrorKind::TimedOut => "i/o timeout".to_owned(),
            _ => format!("connect: {error}"),
        };
        Self {
            status: 502,
            reason: "Bad Gateway",
            code: format!("endpoint_failure (dial tcp {app}: {cause})"),
            message: "Registered endpoint failed to handle the request.".to_owned(),
        }
    }

    async fn send<S: AsyncWrite + Unpin>(self, client: &mut S) {
        let body = format!("{} {}: {}\n", self.status, self.reason, self.message);
        let mut response = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            body.len()
        );
        if self.status == 404 {
            response.push_str("Cache-Control: no-cache, no-store\r\n");
        }
        if !self.code.is_empty() {
            response.push_str(&format!("X-Cf-Routererror: {}\r\n", self.code));
        }
        response.push_str(&format!("\r\n{body}"));
        let _ = client.write_all(response.as_bytes()).await;
        let _ = client.shutdown().await;
    }
}

/// Refusals that need no app: no Host (400 `empty_host`), a host that is not one of the
/// route's (404 `unknown_route`), in gorouter's words.
fn unroutable(request: &httparse::Request<'_, '_>, hosts: &[String]) -> Option<RouterError> {
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .unwrap_or_default();
    let host = normal_host(without_port(host.trim()));
    let (status, reason, code, message) = if host.is_empty() {
        (
            400,
            "Bad Request",
            "empty_host",
            "Request had empty Host header".to_owned(),
        )
    } else if !hosts.contains(&host) {
        let message = format!("Requested route ('{host}') does not exist.");
        (404, "Not Found", "unknown_route", message)
    } else {
        return None;
    };
    Some(RouterError {
        status,
        reason,
        code: code.to_owned(),
        message,
    })
}

/// A `Host` value without its port: `name:443` → `name`, `[::1]:443` → `[::1]`; a bare
/// IPv6 address (more than one colon, no brackets) has no port to drop.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, _)) if !name.contains(':') || name.ends_with(']') => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "wscheck-demo.apps.wscheck.test";

    fn route(strip_upgrade: bool) -> Route {
        Route::from(RouterConfig {
            hosts: vec![HOST.to_owned()],
            app: "127.0.0.1:9".parse().unwrap(),
            strip_upgrade,
            app_guid: "0de0a5c1-7e57-4d3e-8000-00000000a991".to_owned(),
            instance_guid: "d3e00000-0000-4000-8000-000000000000".to_owned(),
            instance_index: 3,
        })
    }

    /// The head the app receives for `request`, as text.
    fn forwarded(request: &str, strip_upgrade: bool) -> String {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        parsed.parse(request.as_bytes()).unwrap();
        let route = route(strip_upgrade);
        let forwarding = Forwarding {
            peer: "192.0.2.7:50000".parse().unwrap(),
            proto: "https",
            request_id: "00000000-0000-4000-8000-000000000000",
            route: &route,
        };
        String::from_utf8(forwarded_head(&parsed, &forwarding)).unwrap()
    }

    #[test]
    fn upgrade_passes_only_when_connection_asks_for_it() {
        let asks = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let head = forwarded(asks, false);
        assert!(
            head.contains("\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"),
            "{head}"
        );
        assert!(!head.contains("keep-alive"), "{head}");

        let lone = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        let head = forwarded(lone, false);
        assert!(!head.contains("Upgrade"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");

        let head = forwarded(asks, true);
        assert!(!head.contains("Upgrade"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    }

    #[test]
    fn gorouters_headers_replace_the_clients_and_x_forwarded_for_grows() {
        let request = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n\
                       X-Vcap-Request-Id: spoofed\r\nX-Forwarded-Proto: http\r\n\
                       X-Cf-Instanceindex: 9\r\n\r\n";
        let head = forwarded(request, false);
        assert!(head.starts_with("GET /x HTTP/1.1\r\nHost: a\r\n"), "{head}");
        assert!(
            head.contains("\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nX-Forwarded-Proto: https\r\n"), "{head}");
        assert!(
            head.contains("\r\nX-Cf-Applicationid: 0de0a5c1-7e57-4d3e-8000-00000000a991\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nX-Cf-Instanceid: d3e00000-0000-4000-8000-000000000000\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nX-Cf-Instanceindex: 3\r\n"), "{head}");
        assert!(
            !head.contains("spoofed") && !head.contains("X-Forwarded-Host"),
            "{head}"
        );
        assert!(!head.contains(": 9\r\n"), "{head}");
        assert_eq!(head.matches("X-Vcap-Request-Id").count(), 1, "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn requests_the_router_cannot_route_get_gorouters_refusals() {
        let hosts = route(false).hosts;
        let refusal = |request: &str| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            parsed.parse(request.as_bytes()).unwrap();
            unroutable(&parsed, &hosts).map(|r| (r.status, r.code, r.message))
        };
        assert_eq!(
            refusal("GET / HTTP/1.0\r\n\r\n"),
            Some((
                400,
                "empty_host".into(),
                "Request had empty Host header".into()
            ))
        );
        assert_eq!(
            refusal("GET / HTTP/1.1\r\nHost: other.apps.wscheck.test:443\r\n\r\n"),
            Some((
                404,
                "unknown_route".into(),
                "Requested route ('other.apps.wscheck.test') does not exist.".into()
            ))
        );
        let ours = format!(
            "GET / HTTP/1.1\r\nHost: {}:443\r\n\r\n",
            HOST.to_uppercase()
        );
        assert_eq!(refusal(&ours), None);
    }

    #[test]
    fn host_values_lose_their_port_but_not_an_ipv6_address() {
        assert_eq!(without_port("a.test:443"), "a.test");
        assert_eq!(without_port("a.test"), "a.test");
        assert_eq!(without_port("[::1]:443"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("::1"), "::1");
        assert_eq!(normal_host(" [::1] "), "::1");
        assert_eq!(normal_host("A.Test"), "a.test");
    }

    #[test]
    fn the_certificate_is_for_the_hosts_and_their_domains_wildcard() {
        let names = |hosts: &[&str]| {
            certificate_names(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            names(&[HOST, "b.apps.wscheck.test", "localhost", "127.0.0.1"]),
            [
                "*.apps.wscheck.test",
                HOST,
                "b.apps.wscheck.test",
                "localhost",
                "127.0.0.1"
            ]
        );
        // No wildcard that would cover a whole top-level domain.
        assert_eq!(names(&["Example.TEST"]), ["example.test"]);
    }

    #[test]
    fn request_ids_are_fresh_version_4_uuids() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "{id}");
        }
    }

    /// The router end to end, with a one-shot app on loopback: gorouter's headers reach it,
    /// its answer comes back marked, other hosts and a dropped router are refused.
    #[tokio::test]
    async fn routes_one_host_to_any_app_until_dropped() {
        let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = route_config(app.local_addr().unwrap());
        config.hosts = vec!["MyApp.Apps.Example.test".to_owned()];
        let router = CfRouter::start(config).await.unwrap();
        assert!(router.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let seen = tokio::spawn(async move {
            let (mut conn, _) = app.accept().await.unwrap();
            let head = read_head(&mut conn).await;
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            head
        });
        let answer = exchange(router.plain, "myapp.apps.example.test:80").await;
        let head = seen.await.unwrap();
        assert!(head.contains("\r\nX-Forwarded-Proto: http\r\n"), "{head}");
        assert!(head.contains("\r\nX-Cf-Instanceindex: 3\r\n"), "{head}");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\nX-Vcap-Request-Id: "), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");

        let other = exchange(router.plain, "other.apps.example.test").await;
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        assert!(other.contains("X-Cf-Routererror: unknown_route"), "{other}");

        let plain = router.plain;
        drop(router);
        // The listener closes once its task sees the cancellation: soon, not at once.
        for _ in 0..100 {
            if TcpStream::connect(plain).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("still listening on {plain} after the router was dropped");
    }

    #[test]
    fn connect_to_sends_443_and_80_here_and_the_rest_to_the_closed_port() {
        let router = CfRouter {
            tls: "127.0.0.1:1001".parse().unwrap(),
            plain: "127.0.0.1:1002".parse().unwrap(),
            ca_pem: String::new(),
            shutdown: CancellationToken::new(),
        };
        assert_eq!(
            router.connect_to("a.apps.test", "127.0.0.1:1003".parse().unwrap()),
            [
                "a.apps.test:443:127.0.0.1:1001",
                "a.apps.test:80:127.0.0.1:1002",
                "a.apps.test::127.0.0.1:1003"
            ]
        );
    }

    fn route_config(app: SocketAddr) -> RouterConfig {
        RouterConfig {
            hosts: vec![HOST.to_owned()],
            app,
            strip_upgrade: false,
            app_guid: "0de0a5c1-7e57-4d3e-8000-00000000a991".to_owned(),
            instance_guid: "d3e00000-0000-4000-8000-000000000000".to_owned(),
            instance_index: 3,
        }
    }

    async fn read_head(conn: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        while !buf.ends_with(b"\r\n\r\n") {
            assert!(conn.read_buf(&mut buf).await.unwrap() > 0, "head cut short");
        }
        String::from_utf8(buf).unwrap()
    }

    /// A plain GET for `host` through the router's `addr`; the whole answer.
    async fn exchange(addr: SocketAddr, host: &str) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }
}
