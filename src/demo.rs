//! `wscheck demo`: the main job without a CF account. Starts the bundled server (as the app
//! on its `$PORT`) behind a small in-process router that does what gorouter does (TLS on
//! "443" with a certificate for `*.apps.wscheck.test` from a throw-away CA, plain on "80",
//! gorouter's forwarded headers and `X-Vcap-Request-Id`, `X-Cf-Routererror` answers), then
//! probes the route with the real prober and prints the real report. A scenario can break
//! the route on purpose (a router that strips `Upgrade`, an app that is down), so that a
//! newcomer sees a 426 and a 502 before meeting them. Everything stays on 127.0.0.1.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::SocketAddr;
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
use wscheck_server::Environment;

use crate::check::check_with;
use crate::cli::{Cli, to_plan};
use crate::error::Error;
use crate::plan::{EnvProxy, Plan};
use crate::probe::tls::TlsSetup;
use crate::report::Report;

/// The demo route, under a domain reserved for testing (RFC 2606 `.test`).
pub const DEMO_ROUTE: &str = "wscheck-demo.apps.wscheck.test";
/// The demo app's GUID and its instance's, as gorouter forwards them (`X-Cf-Applicationid`,
/// `X-Cf-Instanceid`); made-up, but shaped like CF's.
const DEMO_APP_GUID: &str = "0de0a5c1-7e57-4d3e-8000-00000000a991";
const DEMO_INSTANCE_GUID: &str = "d3e00000-0000-4000-8000-000000000000";

/// What the demo stages: the healthy route, or one failure made on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// Everything works: exit 0.
    #[default]
    Healthy,
    /// The router drops the hop-by-hop `Upgrade`/`Connection` headers, as a proxy not set
    /// up for WebSockets does; the app answers its own 426.
    UpgradeStripped,
    /// Nothing listens on the app's port; the router answers gorouter's 502
    /// `endpoint_failure`.
    AppDown,
}

/// A throw-away CA and a router certificate for `*.apps.wscheck.test`.
struct DemoPki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn demo_pki() -> Result<DemoPki, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "wscheck demo CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut leaf = CertificateParams::new(vec!["*.apps.wscheck.test".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "*.apps.wscheck.test");
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;
    Ok(DemoPki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

fn setup(error: impl std::fmt::Display) -> Error {
    Error::Setup(format!("demo: {error}"))
}

/// Runs the demo of `scenario` and returns its report.
pub async fn run(scenario: Scenario) -> Result<Report, Error> {
    let shutdown = CancellationToken::new();
    let outcome = run_until(&shutdown, scenario).await;
    shutdown.cancel();
    outcome
}

/// Where the demo's pieces listen, for the note that tells the reader.
struct Ports {
    app: u16,
    tls: u16,
    plain: u16,
}

async fn run_until(shutdown: &CancellationToken, scenario: Scenario) -> Result<Report, Error> {
    let pki = demo_pki().map_err(|e| setup(format!("certificates: {e}")))?;
    let app = match scenario {
        // An app that is down is a port nobody listens on, as for a crashed app on CF.
        Scenario::AppDown => closed_port().await?,
        Scenario::Healthy | Scenario::UpgradeStripped => start_app(shutdown).await?,
    };
    let router = Router {
        app,
        strip_upgrade: scenario == Scenario::UpgradeStripped,
    };
    let (tls_port, plain_port) = start_router(pki.chain, pki.key, router, shutdown).await?;
    // Ports 8080 and 4443 lead nowhere, as on CF: a loopback port nobody listens on.
    let closed_port = closed_port().await?.port();

    let plan = demo_plan(tls_port, plain_port, closed_port)?;
    let tls = TlsSetup::from_pem(pki.ca_pem.as_bytes(), false).map_err(setup)?;
    let mut report = check_with(&plan, &tls).await;
    let ports = Ports {
        app: app.port(),
        tls: tls_port,
        plain: plain_port,
    };
    report.notes.insert(0, note(scenario, &ports));
    Ok(report)
}

/// The first note: what runs where, and for a failing scenario what was broken on purpose.
fn note(scenario: Scenario, ports: &Ports) -> String {
    let Ports { app, tls, plain } = ports;
    let router = format!(
        "a local router that stands for gorouter: TLS \"443\" on 127.0.0.1:{tls}, plain \"80\" \
         on 127.0.0.1:{plain}; ports 8080 and 4443 lead to a closed port, as on Cloud Foundry"
    );
    match scenario {
        Scenario::Healthy => format!(
            "demo: the bundled server runs as the app on 127.0.0.1:{app} behind {router}. Try \
             `wscheck <your-route>` next, or `wscheck demo --scenario upgrade-stripped` / \
             `--scenario app-down` to see failures."
        ),
        Scenario::UpgradeStripped => format!(
            "demo --scenario upgrade-stripped, broken on purpose: the router drops the \
             hop-by-hop Upgrade and Connection headers, as a proxy not set up for WebSockets \
             does, so the app gets a plain GET and answers 426 itself. Gorouter passes these \
             headers and never sends 426: on Cloud Foundry, look for a proxy in between. The \
             bundled server runs as the app on 127.0.0.1:{app} behind {router}. `wscheck demo` \
             shows the healthy route."
        ),
        Scenario::AppDown => format!(
            "demo --scenario app-down, broken on purpose: the app is not running, nothing \
             listens on its port 127.0.0.1:{app} (on Cloud Foundry: it crashed, or listens on \
             127.0.0.1 or on a port other than $PORT), so the router's dial is refused and it \
             answers 502 with X-Cf-Routererror: endpoint_failure, as gorouter does. The route \
             goes through {router}. `wscheck demo` shows the healthy route."
        ),
    }
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    TcpListener::bind("127.0.0.1:0").await.map_err(setup)
}

/// A loopback port nobody listens on (bound, then let go).
async fn closed_port() -> Result<SocketAddr, Error> {
    bind_loopback().await?.local_addr().map_err(setup)
}

/// The app: the bundled server on its own loopback port, with CF's environment.
async fn start_app(shutdown: &CancellationToken) -> Result<SocketAddr, Error> {
    let app_listener = bind_loopback().await?;
    let app_addr = app_listener.local_addr().map_err(setup)?;
    let config = wscheck_server::Config {
        environment: Environment {
            port: Some(app_addr.port().to_string()),
            instance_index: Some("0".to_owned()),
            instance_guid: Some(DEMO_INSTANCE_GUID.to_owned()),
            application_name: Some("wscheck-demo".to_owned()),
            application_uris: vec![DEMO_ROUTE.to_owned()],
        },
        ..wscheck_server::Config::default()
    };
    tokio::spawn(wscheck_server::serve(
        vec![app_listener],
        config,
        shutdown.clone(),
    ));
    Ok(app_addr)
}

/// The router's two listeners, TLS standing for 443 and plain for 80; their ports.
async fn start_router(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    router: Router,
    shutdown: &CancellationToken,
) -> Result<(u16, u16), Error> {
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(setup)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| setup(format!("router certificate: {e}")))?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let tls_listener = bind_loopback().await?;
    let plain_listener = bind_loopback().await?;
    let tls_port = tls_listener.local_addr().map_err(setup)?.port();
    let plain_port = plain_listener.local_addr().map_err(setup)?.port();
    tokio::spawn(serve_router(
        tls_listener,
        Some(acceptor),
        router,
        shutdown.clone(),
    ));
    tokio::spawn(serve_router(plain_listener, None, router, shutdown.clone()));
    Ok((tls_port, plain_port))
}

/// The check a user would run against the demo route, as a command line (so that clap's
/// defaults apply), with the route's ports sent to the local router.
fn demo_plan(tls_port: u16, plain_port: u16, closed_port: u16) -> Result<Plan, Error> {
    let argv = [
        "wscheck".to_owned(),
        DEMO_ROUTE.to_owned(),
        "--connect-to".to_owned(),
        format!("{DEMO_ROUTE}:443:127.0.0.1:{tls_port}"),
        "--connect-to".to_owned(),
        format!("{DEMO_ROUTE}:80:127.0.0.1:{plain_port}"),
        "--connect-to".to_owned(),
        format!("{DEMO_ROUTE}::127.0.0.1:{closed_port}"),
    ];
    let cli = <Cli as clap::Parser>::try_parse_from(argv).map_err(setup)?;
    // The demo is about the local router: no proxy from this machine's environment.
    Ok(to_plan::check_plan(&cli.check, &EnvProxy::default())?)
}

/// Largest request or response head the demo router reads (gorouter's limit is larger;
/// this is plenty).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// How long the router waits for a client's request head and for the app's answer: a
/// silent peer must not hold a task (and the other side's socket) for ever.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the router sends the demo route, and whether it makes the classic proxy mistake.
#[derive(Debug, Clone, Copy)]
struct Router {
    app: SocketAddr,
    /// Drop `Upgrade`/`Connection` instead of passing them (`--scenario upgrade-stripped`).
    strip_upgrade: bool,
}

async fn serve_router(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
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
        let tls = tls.clone();
        // Small frames both ways: Nagle plus delayed ACKs would add 40 ms per exchange.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        route_one(stream, peer, "https", router).await;
                    }
                }
                None => route_one(tcp, peer, "http", router).await,
            }
        });
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
    router: Router,
) {
    let Some((buf, head_len)) = read_request_head(&mut client).await else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(&buf[..head_len]).is_err() {
        return;
    }
    if let Some(refusal) = unroutable(&request) {
        return refusal.send(&mut client).await;
    }
    let mut app = match TcpStream::connect(router.app).await {
        Ok(app) => app,
        Err(error) => {
            return RouterError::endpoint_failure(router.app, &error)
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
        strip_upgrade: router.strip_upgrade,
    };
    let head = forwarded_head(&request, &forwarding);
    if app.write_all(&head).await.is_err() || app.write_all(&buf[head_len..]).await.is_err() {
        return;
    }
    // The client sends nothing more before the answer (a WebSocket client waits for the
    // 101; the bundled server answers a plain request without reading a body), so the head
    // can be read before the two directions are joined.
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
/// body, or the first WebSocket frames, the greeting among them). An answer that does not
/// parse as a head goes through as it came: the demo router must not be what breaks.
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

/// How one request is forwarded: who sent it, over what, under which request id.
struct Forwarding<'a> {
    peer: SocketAddr,
    proto: &'a str,
    request_id: &'a str,
    strip_upgrade: bool,
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
    match upgrade(request).filter(|_| !forwarding.strip_upgrade) {
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
        ("X-Cf-Applicationid", DEMO_APP_GUID),
        ("X-Cf-Instanceid", DEMO_INSTANCE_GUID),
        ("X-Cf-Instanceindex", "0"),
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

/// Refusals that need no app: no Host (400 `empty_host`), a host that is not the demo
/// route (404 `unknown_route`), in gorouter's words.
fn unroutable(request: &httparse::Request<'_, '_>) -> Option<RouterError> {
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        .unwrap_or_default();
    let host_only = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let (status, reason, code, message) = if host_only.is_empty() {
        (
            400,
            "Bad Request",
            "empty_host",
            "Request had empty Host header".to_owned(),
        )
    } else if host_only != DEMO_ROUTE {
        let message = format!("Requested route ('{host_only}') does not exist.");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The head the app receives for `request`, as text.
    fn forwarded(request: &str, strip_upgrade: bool) -> String {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        parsed.parse(request.as_bytes()).unwrap();
        let forwarding = Forwarding {
            peer: "192.0.2.7:50000".parse().unwrap(),
            proto: "https",
            request_id: "00000000-0000-4000-8000-000000000000",
            strip_upgrade,
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
                       X-Vcap-Request-Id: spoofed\r\nX-Forwarded-Proto: http\r\n\r\n";
        let head = forwarded(request, false);
        assert!(head.starts_with("GET /x HTTP/1.1\r\nHost: a\r\n"), "{head}");
        assert!(
            head.contains("\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nX-Forwarded-Proto: https\r\n"), "{head}");
        assert!(head.contains("\r\nX-Cf-Instanceindex: 0\r\n"), "{head}");
        assert!(
            !head.contains("spoofed") && !head.contains("X-Forwarded-Host"),
            "{head}"
        );
        assert_eq!(head.matches("X-Vcap-Request-Id").count(), 1, "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn requests_the_router_cannot_route_get_gorouters_refusals() {
        let refusal = |request: &str| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            parsed.parse(request.as_bytes()).unwrap();
            unroutable(&parsed).map(|r| (r.status, r.code, r.message))
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
        let demo = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\n\r\n",
            DEMO_ROUTE.to_uppercase()
        );
        assert_eq!(refusal(&demo), None);
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
}
