//! `wscheck demo`: the main job without a CF account. Starts the bundled server (as the app
//! on its `$PORT`) behind a small in-process router that does what gorouter does (TLS on
//! "443" with a certificate for `*.apps.wscheck.test` from a throw-away CA, plain on "80",
//! forwarded headers, `X-Cf-Routererror` answers), then probes the route with the real
//! prober and prints the real report. Everything stays on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
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

/// Runs the demo and returns its report.
pub async fn run() -> Result<Report, Error> {
    let shutdown = CancellationToken::new();
    let outcome = run_until(&shutdown).await;
    shutdown.cancel();
    outcome
}

async fn run_until(shutdown: &CancellationToken) -> Result<Report, Error> {
    let pki = demo_pki().map_err(|e| setup(format!("certificates: {e}")))?;
    let app_addr = start_app(shutdown).await?;

    // The router: TLS standing for 443, plain standing for 80.
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(setup)?
    .with_no_client_auth()
    .with_single_cert(pki.chain, pki.key)
    .map_err(|e| setup(format!("router certificate: {e}")))?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let tls_listener = bind_loopback().await?;
    let plain_listener = bind_loopback().await?;
    let tls_port = tls_listener.local_addr().map_err(setup)?.port();
    let plain_port = plain_listener.local_addr().map_err(setup)?.port();
    tokio::spawn(router(
        tls_listener,
        Some(acceptor),
        app_addr,
        shutdown.clone(),
    ));
    tokio::spawn(router(plain_listener, None, app_addr, shutdown.clone()));
    // Ports 8080 and 4443 lead nowhere, as on CF: a loopback port nobody listens on.
    let closed_port = bind_loopback().await?.local_addr().map_err(setup)?.port();

    let plan = demo_plan(tls_port, plain_port, closed_port)?;
    let tls = TlsSetup::from_pem(pki.ca_pem.as_bytes(), false).map_err(setup)?;
    let mut report = check_with(&plan, &tls).await;
    report.notes.insert(
        0,
        format!(
            "demo: the bundled server runs as the app on 127.0.0.1:{} behind a local router that stands \
             for gorouter: TLS \"443\" on 127.0.0.1:{tls_port}, plain \"80\" on 127.0.0.1:{plain_port}; \
             ports 8080 and 4443 lead to a closed port, as on Cloud Foundry. Try `wscheck <your-route>` next.",
            app_addr.port()
        ),
    );
    Ok(report)
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    TcpListener::bind("127.0.0.1:0").await.map_err(setup)
}

/// The app: the bundled server on its own loopback port, with CF's environment.
async fn start_app(shutdown: &CancellationToken) -> Result<SocketAddr, Error> {
    let app_listener = bind_loopback().await?;
    let app_addr = app_listener.local_addr().map_err(setup)?;
    let config = wscheck_server::Config {
        environment: Environment {
            port: Some(app_addr.port().to_string()),
            instance_index: Some("0".to_owned()),
            instance_guid: Some("d3m0-0000-4000-8000-000000000000".to_owned()),
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

/// Largest request head the demo router reads (gorouter's limit is larger; this is plenty).
const MAX_HEAD: usize = 64 * 1024;

async fn router(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: SocketAddr,
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
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        route_one(stream, peer, "https", app).await;
                    }
                }
                None => route_one(tcp, peer, "http", app).await,
            }
        });
    }
}

/// Forwards one request as gorouter would: unknown hosts get 404 `unknown_route`, a dead
/// app 502 `endpoint_failure`, the rest goes to the app with the forwarding headers.
async fn route_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    peer: SocketAddr,
    proto: &str,
    app: SocketAddr,
) {
    let Some((buf, head_len)) = read_head(&mut client).await else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(&buf[..head_len]).is_err() {
        return;
    }
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        .unwrap_or_default();
    let host_only = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(h, _)| h)
        .to_owned();
    if host_only != DEMO_ROUTE {
        let body = format!("404 Not Found: Requested route ('{host_only}') does not exist.");
        return router_error(&mut client, 404, "Not Found", "unknown_route", &body).await;
    }
    let mut upstream = match TcpStream::connect(app).await {
        Ok(upstream) => {
            let _ = upstream.set_nodelay(true);
            upstream
        }
        Err(error) => {
            let code = format!("endpoint_failure (dial tcp {app}: {error})");
            return router_error(
                &mut client,
                502,
                "Bad Gateway",
                &code,
                "502 Bad Gateway: Registered endpoint failed to handle the request.",
            )
            .await;
        }
    };
    let head = forwarded_head(&request, peer, proto);
    if upstream.write_all(head.as_bytes()).await.is_err()
        || upstream.write_all(&buf[head_len..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Reads a request head (and whatever followed it); a malformed or oversized one gets a
/// 400. The bytes read and the head's length, or `None` when the client is gone.
async fn read_head<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => return Some((buf, len)),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => {
                let body = "400 Bad Request: malformed request";
                router_error(client, 400, "Bad Request", "", body).await;
                return None;
            }
        }
    }
}

/// The request head as the app receives it: as sent, plus gorouter's forwarding headers.
fn forwarded_head(request: &httparse::Request<'_, '_>, peer: SocketAddr, proto: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method.unwrap_or("GET"),
        request.path.unwrap_or("/"),
        request.version.unwrap_or(1)
    );
    for h in request.headers.iter() {
        head.push_str(&format!(
            "{}: {}\r\n",
            h.name,
            String::from_utf8_lossy(h.value)
        ));
    }
    head.push_str(&format!(
        "X-Forwarded-For: {}\r\nX-Forwarded-Proto: {proto}\r\nX-Vcap-Request-Id: {:08x}-{:04x}-4000-8000-{:012x}\r\nX-Request-Start: {}\r\n\r\n",
        peer.ip(),
        now.as_secs() & 0xffff_ffff,
        now.subsec_micros() & 0xffff,
        u64::from(peer.port()) << 16 | u64::from(now.subsec_nanos() & 0xffff),
        now.as_millis()
    ));
    head
}

async fn router_error<S: AsyncWrite + Unpin>(
    client: &mut S,
    status: u16,
    reason: &str,
    router_error: &str,
    body: &str,
) {
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len() + 1
    );
    if !router_error.is_empty() {
        response.push_str(&format!("X-Cf-Routererror: {router_error}\r\n"));
    }
    response.push_str(&format!("\r\n{body}\n"));
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}
