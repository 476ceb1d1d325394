//! The prober's reading of an HTTP answer to its upgrade request: the bytes a peer sends
//! back go through the real upgrade stage (tungstenite's client handshake over an
//! in-memory stream, then `upgrade::refusal`, which falls back on `answer::Head` for what
//! tungstenite refuses, reads the rest of the body and decodes it), then the diagnosis of
//! the result; and through `answer::Head` directly (head, body, excerpt), with its
//! invariants. No socket is opened.
//!
//! Input: the peer's bytes (an HTTP response, or anything else).

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wscheck::diagnose::diagnose;
use wscheck::plan::{Candidate, Plan};
use wscheck::probe::answer::Head;
use wscheck::probe::upgrade::{self, Accepted, Logs};
use wscheck::probe::wire::Recorded;
use wscheck::probe::{ProbeResult, Stage, ws};

/// The RFC 6455 sample key, so that a 101 with the right accept key
/// (`s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`) opens the WebSocket.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
});

static PLAN: LazyLock<Plan> = LazyLock::new(|| {
    wscheck::cli::to_plan::plan_from_argv(&["ws://app.example.com/ws", "--only"]).expect("a plan")
});

fuzz_target!(|data: &[u8]| {
    head(data);
    upgrade_stage(data);
});

/// `Head` over the bytes, the body decoded, the excerpt.
fn head(data: &[u8]) {
    let parsed = Head::parse(data);
    let incomplete = Head::incomplete(data);
    let Some(head) = parsed else {
        return;
    };
    assert!(!incomplete, "a complete head is not incomplete");
    assert!(head.len <= data.len());
    let response = head.clone().into_response(&data[head.len..]);
    assert_eq!(response.status, head.status);
    assert_eq!(response.headers, head.headers);
    let excerpt = response.excerpt();
    assert!(
        excerpt.chars().count() <= 160,
        "an excerpt of {} characters",
        excerpt.chars().count()
    );
    assert!(!excerpt.contains('\n'), "an excerpt of more than one line");
}

/// The peer: serves `input` in reads of `step` bytes, then end of file; swallows writes.
struct Peer<'a> {
    input: &'a [u8],
    step: usize,
}

impl AsyncRead for Peer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.input.len().min(self.step).min(buf.remaining());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The upgrade stage as `probe::upgrade_then` runs it, the peer's answer being `data`.
fn upgrade_stage(data: &[u8]) {
    let plan = &*PLAN;
    let candidate: &Candidate = &plan.candidates[0];
    // Segments as a network might cut them; fixed by the content, so runs repeat.
    let step = 1 + data.iter().map(|b| usize::from(*b)).sum::<usize>() % 1500;
    let (mut request, _) =
        upgrade::build_request(plan, candidate, &plan.target.path).expect("a request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Key", HeaderValue::from_static(KEY));
    let mut result = ProbeResult::new(candidate);
    result.stage = Stage::Upgrade;
    RUNTIME.block_on(async {
        let (tcp, tcp_log) = Recorded::new(Peer { input: data, step });
        let (mut conn, http_log) = Recorded::new(tcp);
        let handshake = tokio_tungstenite::client_async_with_config(
            request,
            &mut conn,
            Some(ws::client_config()),
        )
        .await;
        match handshake {
            Ok((_ws, response)) => {
                let accepted = Accepted::new(&response);
                assert_eq!(accepted.response.status, 101);
                result.response = Some(accepted.response);
                result.subprotocol = accepted.subprotocol;
                result.stage = Stage::Done;
                result.ok = true;
            }
            Err(error) => {
                let logs = Logs {
                    tcp: &tcp_log,
                    http: &http_log,
                };
                let wait = Duration::from_millis(500);
                let refusal = upgrade::refusal(error, &mut conn, candidate, logs, wait).await;
                result.response = refusal.response;
                result.failure = Some(refusal.failure);
            }
        }
    });
    if let Some(response) = &result.response {
        let excerpt = response.excerpt();
        assert!(excerpt.chars().count() <= 160);
    }
    let diagnosis = diagnose(&result);
    assert_eq!(diagnosis.code.is_ok(), result.failure.is_none());
}
