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

use crate::cli::{CheckArgs, Format};
use crate::probe::tls::TlsSetup;
use crate::report::{Report, table::Style};

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

/// Runs the demo and returns its report.
pub async fn run(format: Format, _style: &Style) -> Result<(Report, Format), String> {
    let shutdown = CancellationToken::new();
    let pki = demo_pki().map_err(|e| format!("demo certificates: {e}"))?;

    // The app: the bundled server on its own loopback port, with CF's environment.
    let app_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let app_addr = app_listener.local_addr().map_err(|e| e.to_string())?;
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

    // The router: TLS standing for 443, plain standing for 80.
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(pki.chain, pki.key)
    .map_err(|e| format!("demo router certificate: {e}"))?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let tls_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let plain_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let tls_port = tls_listener.local_addr().map_err(|e| e.to_string())?.port();
    let plain_port = plain_listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    tokio::spawn(router(
        tls_listener,
        Some(acceptor),
        app_addr,
        shutdown.clone(),
    ));
    tokio::spawn(router(plain_listener, None, app_addr, shutdown.clone()));

    // Ports 8080 and 4443 lead nowhere, as on CF: a loopback port nobody listens on.
    let closed_port = {
        let probe = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };

    let args = CheckArgs {
        target: Some(DEMO_ROUTE.to_owned()),
        conn: crate::cli::ConnectionArgs {
            connect_to: vec![
                format!("{DEMO_ROUTE}:443:127.0.0.1:{tls_port}"),
                format!("{DEMO_ROUTE}:80:127.0.0.1:{plain_port}"),
                format!("{DEMO_ROUTE}::127.0.0.1:{closed_port}"),
            ],
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        format,
        ..CheckArgs::default()
    };
    let plan = crate::plan::plan(&args).map_err(|e| e.to_string())?;
    let tls = TlsSetup::from_pem(pki.ca_pem.as_bytes(), false)?;
    let mut report = crate::check_with(&plan, &tls).await?;
    report.notes.insert(
        0,
        format!(
            "demo: the bundled server runs as the app on 127.0.0.1:{} behind a local router that stands \
             for gorouter: TLS \"443\" on 127.0.0.1:{tls_port}, plain \"80\" on 127.0.0.1:{plain_port}; \
             ports 8080 and 4443 lead to a closed port, as on Cloud Foundry. Try `wscheck <your-route>` next.",
            app_addr.port()
        ),
    );
    shutdown.cancel();
    Ok((report, format))
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
    let mut buf = Vec::with_capacity(2048);
    let head_len = loop {
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => {
                return router_error(
                    &mut client,
                    400,
                    "Bad Request",
                    "",
                    "400 Bad Request: malformed request",
                )
                .await;
            }
        }
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
    if upstream.write_all(head.as_bytes()).await.is_err()
        || upstream.write_all(&buf[head_len..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
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
