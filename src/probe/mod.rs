//! Probing: every candidate URL at once, each staged by hand (DNS, TCP, proxy, TLS,
//! upgrade, then the echo or the application protocol's opening), one function per stage
//! under its own timeout, each converting its own failure. A result is data (stage
//! reached, failure kind, timings, what was seen), never an `Err`.

pub mod answer;
mod detect;
pub mod dns;
pub mod echo;
pub mod failure;
pub mod fence;
pub mod graphql;
pub mod http;
pub mod opening;
pub mod protocol;
pub mod proxy;
pub mod result;
pub mod socketio;
pub mod sockjs;
pub mod stomp;
pub mod tcp;
pub mod tls;
pub mod upgrade;
pub mod wire;
pub mod ws;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::either::Either;
use wscheck_server::info::Info;

use crate::plan::{Candidate, Plan};
use answer::{Head, HttpResponse};
pub use echo::PeerKind;
use echo::{EchoOutcome, new_nonce};
pub use failure::{Failure, FailureKind};
use fence::HeadFence;
use protocol::{Protocol, ProtocolChoice};
pub use result::{ProbeResult, RouteInfo, Stage, Timings};
use tls::TlsSetup;
use upgrade::{Accepted, Logs};
use wire::{Recorded, WireLog};
use ws::ms_since;

/// The stream under the WebSocket: plain or TLS, recorded at the HTTP level.
pub type Conn = Recorded<HeadFence<Either<Recorded<TcpStream>, tls::Tls>>>;

/// An open WebSocket over a probe's connection.
pub type Ws<'a> = WebSocketStream<&'a mut Conn>;

/// The smaller of a stage budget and what is left of the probe.
fn budget(stage: Duration, deadline: Instant) -> Duration {
    stage.min(deadline.saturating_duration_since(Instant::now()))
}

/// The stream after stages 1 to 3 (DNS, TCP, proxy, TLS) and the log of its first TCP
/// bytes.
pub(crate) type Connected = (Either<Recorded<TcpStream>, tls::Tls>, WireLog);

/// Runs stages 1 to 3 for `candidate`. On failure `result` says where and why, and `None`
/// is returned.
pub(crate) async fn connect(
    plan: &Plan,
    tls_setup: &TlsSetup,
    candidate: &Candidate,
    result: &mut ProbeResult,
    deadline: Instant,
) -> Option<Connected> {
    let route = plan.route(candidate);
    let proxy = plan.proxy_for(candidate);
    result.route = RouteInfo::planned(&route, proxy);
    // Through a proxy, DNS and TCP are about the proxy; the proxy resolves the route.
    let dial = proxy.map_or_else(|| route.clone(), |p| p.dial_route());
    let connect_budget = || budget(plan.connect_timeout, deadline);

    let started = result.enter(Stage::Dns);
    let addrs = dns::stage(&dial, proxy, connect_budget()).await;
    let addrs = result.settle(started, addrs)?;
    result.route.addresses = addrs.clone();

    let started = result.enter(Stage::Connect);
    let connected = tcp::stage(&addrs, dial.port, proxy, connect_budget()).await;
    let (mut tcp, peer) = result.settle(started, connected)?;
    result.route.connected_to = Some(peer);

    if let Some(proxy) = proxy {
        let started = result.enter(Stage::Proxy);
        let (tunnel, refusal) =
            proxy::stage(&mut tcp, proxy, &route.host, route.port, connect_budget()).await;
        result.response = refusal;
        result.settle(started, tunnel)?;
    }
    let (tcp, tcp_log) = Recorded::new(tcp);

    let stream = if candidate.scheme.is_tls() {
        let started = result.enter(Stage::Tls);
        let sni = plan.target.bare_host();
        let (stream, info) = tls::stage(tls_setup, tcp, &tcp_log, sni, connect_budget()).await;
        result.tls = info;
        Either::Right(result.settle(started, stream)?)
    } else {
        Either::Left(tcp)
    };
    Some((stream, tcp_log))
}

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
    let (stream, tcp_log) = connect(plan, tls_setup, candidate, result, deadline).await?;
    upgrade_then(
        plan, candidate, path, stream, &tcp_log, result, deadline, then,
    )
    .await
}

/// Stage 4, the HTTP upgrade, then `then` on the open WebSocket.
#[allow(clippy::too_many_arguments)]
async fn upgrade_then<R>(
    plan: &Plan,
    candidate: &Candidate,
    path: &str,
    stream: Either<Recorded<TcpStream>, tls::Tls>,
    tcp_log: &WireLog,
    result: &mut ProbeResult,
    deadline: Instant,
    then: impl AsyncFnOnce(&mut Ws<'_>, &mut ProbeResult) -> R,
) -> Option<R> {
    let started = result.enter(Stage::Upgrade);
    let (request, held_back) = match upgrade::build_request(plan, candidate, path) {
        Ok(built) => built,
        Err(message) => {
            let failure = Failure::new(FailureKind::RequestInvalid, message);
            return result.settle(started, Err(failure));
        }
    };
    result.credentials_held_back = held_back;
    let (mut conn, http_log) = Recorded::new(HeadFence::new(stream));
    let conn = &mut conn;
    let handshake =
        tokio_tungstenite::client_async_with_config(request, &mut *conn, Some(ws::client_config()));
    let outcome = tokio::time::timeout_at(deadline.into(), handshake).await;
    let written = http_log.lock().map(|w| w.written.clone());
    result.request = upgrade::head_lines(&written.unwrap_or_default());
    match outcome {
        Ok(Ok((mut ws, response))) => {
            let accepted = Accepted::new(&response);
            result.timings.upgrade = Some(ms_since(started));
            result.response = Some(accepted.response);
            result.subprotocol = accepted.subprotocol;
            if accepted.from_bundled_server {
                result.peer = PeerKind::WscheckServer;
            }
            let spoken = then(&mut ws, result).await;
            if result.failure.is_some()
                && let Some(refusal) = answer_after_switch(&http_log)
            {
                result.stage = Stage::Upgrade;
                result.failure = Some(Failure::new(
                    FailureKind::HttpRefused,
                    format!(
                        "HTTP {} {} written after the 101",
                        refusal.status, refusal.reason
                    ),
                ));
                result.response = Some(refusal);
            }
            Some(spoken)
        }
        Ok(Err(error)) => {
            let logs = Logs {
                tcp: tcp_log,
                http: &http_log,
            };
            let wait = budget(Duration::from_millis(500), deadline);
            let refusal = upgrade::refusal(error, conn, candidate, logs, wait).await;
            result.timings.upgrade = Some(ms_since(started));
            result.response = refusal.response;
            if refusal.from_bundled_server {
                result.peer = PeerKind::WscheckServer;
            }
            result.settle(started, Err(refusal.failure))
        }
        Err(_) => {
            let failure = upgrade::timed_out(candidate, tcp_log, plan.timeout);
            result.settle(started, Err(failure))
        }
    }
}

/// An HTTP answer the server wrote after its 101, which then failed whatever came next:
/// engine.io 6 refuses an Engine.IO version it does not accept (`allowEIO3` off) so.
fn answer_after_switch(log: &WireLog) -> Option<HttpResponse> {
    let read = log.lock().ok()?.read.clone();
    let switched = Head::parse(&read)?;
    let rest = &read[switched.len..];
    let head = Head::parse(rest)?;
    let body = rest[head.len..].to_vec();
    Some(head.into_response(&body))
}

/// Probes one candidate through every stage.
pub async fn probe(plan: &Plan, tls_setup: &TlsSetup, candidate: &Candidate) -> ProbeResult {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let path = plan.target.path.as_str();
    let mut result = ProbeResult::new(candidate);
    if plan.protocol == ProtocolChoice::Sockjs && plan.echo {
        sockjs::run(plan, tls_setup, candidate, path, &mut result, deadline).await;
    } else {
        attempt(plan, tls_setup, candidate, path, &mut result, deadline).await;
        if plan.protocol == ProtocolChoice::Auto && plan.echo {
            let second = detect::second_look(plan, tls_setup, candidate, &result, deadline);
            if let Some(better) = second.await {
                result = better;
            }
        }
    }
    result.timings.total = ms_since(started);
    result
}

/// Opens `path` and speaks the plan's protocol (or the echo) over it.
async fn attempt(
    plan: &Plan,
    tls_setup: &TlsSetup,
    candidate: &Candidate,
    path: &str,
    result: &mut ProbeResult,
    deadline: Instant,
) {
    open(plan, tls_setup, candidate, path, result, deadline, {
        async |ws, result| speak(plan, ws, result, path, deadline).await
    })
    .await;
}

/// After the upgrade: the protocol's opening, or the echo.
async fn speak(
    plan: &Plan,
    ws: &mut Ws<'_>,
    result: &mut ProbeResult,
    path: &str,
    deadline: Instant,
) {
    if !plan.echo {
        result.done();
        let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
        return;
    }
    let picked = result.subprotocol.clone();
    let known = protocol::by_subprotocol(plan.protocol, picked.as_deref())
        .or_else(|| protocol::by_path(plan.protocol, path));
    match known {
        Some(Protocol::SocketIo) => {
            let opening = socketio::open(ws, None, path, deadline);
            return protocol_stage(result, opening).await;
        }
        Some(Protocol::Graphql) => {
            let opening = graphql::open(ws, picked, deadline);
            return protocol_stage(result, opening).await;
        }
        Some(Protocol::Stomp) => {
            let opening = stomp::open(ws, picked, &plan.stomp_headers, deadline);
            return protocol_stage(result, opening).await;
        }
        None => {}
    }
    // Auto: a first frame may tell the protocol (Engine.IO's open packet); the echo then
    // goes on with that frame already read.
    let first = match plan.protocol {
        ProtocolChoice::Auto => first_frame(ws).await,
        _ => None,
    };
    let open_packet = match &first {
        Some(Ok(Message::Text(text))) if protocol::by_first_frame(text).is_some() => {
            Some(text.to_string())
        }
        _ => None,
    };
    if open_packet.is_some() {
        let opening = socketio::open(ws, open_packet, path, deadline);
        return protocol_stage(result, opening).await;
    }
    let nonce = plan.message.clone().unwrap_or_else(new_nonce);
    let echo_started = result.enter(Stage::Echo);
    let (outcome, info, peer) = echo::run(ws, &nonce, first, result.peer, deadline).await;
    result.peer = peer;
    result.timings.echo = Some(ms_since(echo_started));
    result.failure = outcome.failure(&info);
    result.echo = Some(info);
    if matches!(outcome, EchoOutcome::Verified | EchoOutcome::Unverified) {
        result.done();
    }
}

/// How long a probe in `auto` mode waits for a first frame that tells the protocol: servers
/// that speak first (Engine.IO, the article's greeting) do so at once.
const FIRST_FRAME_WAIT: Duration = Duration::from_millis(250);

/// The first frame, if the peer speaks first.
async fn first_frame(ws: &mut Ws<'_>) -> Option<Result<Message, WsError>> {
    tokio::time::timeout(FIRST_FRAME_WAIT, ws.next())
        .await
        .ok()?
}

/// An application protocol's opening instead of the echo: `opening` (a future, which does
/// nothing until awaited) runs under the `protocol` stage, and its outcome is the probe's.
async fn protocol_stage(
    result: &mut ProbeResult,
    opening: impl Future<Output = (protocol::ProtocolInfo, Option<Failure>)>,
) {
    let started = result.enter(Stage::Protocol);
    let (info, failure) = opening.await;
    result.timings.protocol = Some(ms_since(started));
    result.protocol = Some(info);
    result.failure = failure;
    if result.failure.is_none() {
        result.done();
    }
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
    let path = wscheck_server::INFO_WS_PATH;
    open(plan, tls_setup, candidate, path, &mut scratch, deadline, {
        async |ws, _| {
            let info = ws::read_info(ws, deadline).await;
            let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
            info
        }
    })
    .await
    .flatten()
}
