//! A plain HTTP request over a probe's staged connection (DNS, TCP, proxy, TLS as for the
//! upgrade, the same headers a browser sends), for what application protocols ask over
//! HTTP: SockJS's `/info`, Engine.IO's long-polling.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answer::Head;
pub use super::answer::HttpResponse;
use super::failure::{Failure, FailureKind};
use super::tls::TlsSetup;
use super::upgrade::{browser_headers, host_header};
use super::{ProbeResult, connect};
use crate::plan::{Candidate, Plan};

/// Most bytes of a response head read before giving up on it.
const HEAD_LIMIT: usize = 64 * 1024;

/// A request: method, path, body (sent as text/plain when not empty) and the cookies a
/// browser would send back.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a str,
    pub cookies: &'a [(String, String)],
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            body: "",
            cookies: &[],
        }
    }
}

/// GETs `path` from `candidate`; see `send`.
pub async fn get(
    plan: &Plan,
    tls_setup: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    result: &mut ProbeResult,
    deadline: Instant,
) -> Option<Result<HttpResponse, Failure>> {
    let request = Request::get(path);
    send(plan, tls_setup, candidate, &request, result, deadline).await
}

/// Sends `request` to `candidate` on a connection of its own. The connection's stages are
/// recorded in `result` (`None` when one failed: `result` says why); the request's own
/// outcome is returned.
pub async fn send(
    plan: &Plan,
    tls_setup: &TlsSetup,
    candidate: &Candidate,
    request: &Request<'_>,
    result: &mut ProbeResult,
    deadline: Instant,
) -> Option<Result<HttpResponse, Failure>> {
    let (mut stream, _) = connect(plan, tls_setup, candidate, result, deadline).await?;
    let path = request.path;
    let head = request_head(plan, candidate, request);
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(request.body.as_bytes()).await?;
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(head) = Head::parse(&got) {
                let mut body = got.split_off(head.len);
                let wait = deadline.saturating_duration_since(Instant::now());
                head.complete_body(&mut stream, &mut body, wait).await;
                return Ok(Some(head.into_response(&body)));
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 || got.len() > HEAD_LIMIT {
                return Ok(None);
            }
            got.extend_from_slice(&chunk[..n]);
        }
    };
    let outcome: Result<std::io::Result<Option<HttpResponse>>, _> =
        tokio::time::timeout_at(deadline.into(), exchange).await;
    Some(match outcome {
        Ok(Ok(Some(response))) => Ok(response),
        Ok(Ok(None)) => Err(failed(format!("GET {path}: no HTTP answer"))),
        Ok(Err(error)) => Err(failed(format!("GET {path}: {error}"))),
        Err(_) => Err(failed(format!(
            "GET {path}: no answer within the probe timeout"
        ))),
    })
}

/// The request head: Host, the browser's headers, the cookies (joined with the user's
/// `Cookie` header, if any), `Connection: close`.
fn request_head(plan: &Plan, candidate: &Candidate, request: &Request<'_>) -> String {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        request.method,
        request.path,
        host_header(plan, candidate)
    );
    let (mut headers, _) = browser_headers(plan, candidate, None);
    let ours: Vec<String> = request
        .cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if !ours.is_empty() {
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            Some((_, value)) => *value = format!("{value}; {}", ours.join("; ")),
            None => headers.push(("Cookie".to_owned(), ours.join("; "))),
        }
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || request.method != "GET" {
        head.push_str(&format!(
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
            request.body.len()
        ));
    }
    head.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
    head
}

/// The cookies a response sets (`Set-Cookie` name and value, attributes dropped), as a
/// browser would send them back.
pub fn set_cookies(response: &HttpResponse) -> Vec<(String, String)> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn failed(message: String) -> Failure {
    Failure::new(FailureKind::ProtocolFailed, message)
}
