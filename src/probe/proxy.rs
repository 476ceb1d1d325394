//! Stage 2b: an HTTP CONNECT tunnel through a proxy (`-x`, `https_proxy`, ...), for wss
//! and ws alike. The proxy's refusal is kept whole for the diagnosis.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::answer::{Head, HttpResponse};
use super::failure::{Failure, FailureKind};
use crate::plan::Proxy;

#[derive(Debug)]
pub enum ProxyFailure {
    /// Any answer but 2xx (407: the proxy wants credentials, or rejected the ones given).
    Refused(HttpResponse),
    /// The proxy closed, spoke no HTTP, or did not answer in time.
    Broken(String),
}

/// Asks `proxy` (already connected on `stream`) for a tunnel to `host:port`.
pub async fn tunnel(
    stream: &mut TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
    budget: Duration,
) -> Result<(), ProxyFailure> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wscheck/{}\r\nProxy-Connection: Keep-Alive\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some((user, pass)) = &proxy.credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| ProxyFailure::Broken(e.to_string()))?;
        read_answer(stream).await
    };
    match tokio::time::timeout(budget, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ProxyFailure::Broken(
            "the proxy did not answer CONNECT in time".to_owned(),
        )),
    }
}

/// Reads the proxy's answer to CONNECT: a 2xx opens the tunnel; anything else is kept
/// whole, its body read briefly and decoded as any HTTP answer's (`answer::Head`).
async fn read_answer(stream: &mut TcpStream) -> Result<(), ProxyFailure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| ProxyFailure::Broken(e.to_string()))?;
        if n == 0 {
            return Err(ProxyFailure::Broken(
                "the proxy closed the connection without answering CONNECT".to_owned(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        match Head::parse(&buf) {
            Some(head) if (200..300).contains(&head.status) => return Ok(()),
            Some(head) => {
                let mut body = buf[head.len..].to_vec();
                head.complete_body(stream, &mut body, Duration::from_millis(300))
                    .await;
                return Err(ProxyFailure::Refused(head.into_response(&body)));
            }
            // An HTTP head still arriving.
            None if buf.len() < 64 * 1024 && Head::incomplete(&buf) => {}
            None if Head::incomplete(&buf) => {
                return Err(ProxyFailure::Broken(
                    "the proxy's answer head is too large".to_owned(),
                ));
            }
            None => {
                let start = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
                return Err(ProxyFailure::Broken(format!(
                    "the proxy did not answer in HTTP: first bytes {start:?}"
                )));
            }
        }
    }
}

/// The stage as a probe runs it: the tunnel, or the failure and the proxy's refusal (kept
/// whole for the diagnosis).
pub async fn stage(
    stream: &mut TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
    budget: Duration,
) -> (Result<(), Failure>, Option<HttpResponse>) {
    match tunnel(stream, proxy, host, port, budget).await {
        Ok(()) => (Ok(()), None),
        Err(ProxyFailure::Refused(response)) => {
            let kind = if response.status == 407 {
                FailureKind::ProxyAuthRequired
            } else {
                FailureKind::ProxyRefused
            };
            let message = format!(
                "proxy {} answered {} {}",
                proxy.display(),
                response.status,
                response.reason
            );
            (Err(Failure::new(kind, message)), Some(response))
        }
        Err(ProxyFailure::Broken(message)) => (
            Err(Failure::new(
                FailureKind::ProxyRefused,
                format!("proxy {}: {message}", proxy.display()),
            )),
            None,
        ),
    }
}
