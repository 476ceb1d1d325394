//! Stage 2b: an HTTP CONNECT tunnel through a proxy (`-x`, `https_proxy`, ...), for wss
//! and ws alike. The proxy's refusal is kept whole for the diagnosis.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::failure::{Failure, FailureKind};
use super::upgrade::{BODY_LIMIT, HttpResponse};
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
/// whole, with the start of its body.
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
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or_default();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let mut answer = HttpResponse {
                    status,
                    reason: response.reason.unwrap_or_default().to_owned(),
                    headers: response
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: String::new(),
                };
                answer.body = read_body(stream, buf[len..].to_vec()).await;
                return Err(ProxyFailure::Refused(answer));
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => continue,
            Ok(httparse::Status::Partial) => {
                return Err(ProxyFailure::Broken(
                    "the proxy's answer head is too large".to_owned(),
                ));
            }
            Err(error) => {
                return Err(ProxyFailure::Broken(format!(
                    "the proxy did not answer in HTTP: {error}"
                )));
            }
        }
    }
}

/// The start of a refusal's body (an error page, short): what is there already or soon.
async fn read_body(stream: &mut TcpStream, mut body: Vec<u8>) -> String {
    let mut chunk = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while body.len() < BODY_LIMIT {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&body[..body.len().min(BODY_LIMIT)]).into_owned()
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
