//! `--protocol auto`'s second look: when the first attempt's outcome hints at a protocol the
//! path and first frame did not tell, one more attempt in that protocol, whose result
//! replaces the first if the protocol answered:
//! - an upgrade answered with SockJS's greeting → SockJS's opening at that base; answered
//!   with another 200 → the same if `<path>/info` is SockJS's;
//! - a bare route whose upgrade failed → socket.io at its default path (`socketio_path`);
//! - a peer silent after the echo's nonce → STOMP's CONNECT on a new connection (a broker
//!   waits for a whole frame and says nothing to a nonce).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::protocol::ProtocolChoice;
use super::tls::TlsSetup;
use super::{FailureKind, PeerKind, ProbeResult, Stage, attempt, sockjs};
use crate::plan::{Candidate, Plan};

/// Where socket.io listens unless configured otherwise, as its v4 clients ask for it.
pub const SOCKETIO_DEFAULT_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// How long the STOMP attempt after a silent echo may take: a broker answers CONNECT at
/// once, and a silent app should not double the probe's time.
const STOMP_LOOK: Duration = Duration::from_secs(2);

/// A second attempt when `first` hints at a protocol; `None` when none answered.
pub async fn second_look(
    plan: &Plan,
    tls: &TlsSetup,
    candidate: &Candidate,
    first: &ProbeResult,
    deadline: Instant,
) -> Option<ProbeResult> {
    let path = plan.target.path.as_str();
    let mut second = ProbeResult::new(candidate);
    if answered_sockjs_greeting(first) {
        sockjs::run(plan, tls, candidate, path, &mut second, deadline).await;
        return Some(second);
    }
    if refused_with(first, 200) {
        // A page, not a WebSocket: perhaps a SockJS base whose greeting a proxy replaced
        // (the SAP approuter answers "Unexpected server response: 200"); its /info tells.
        sockjs::run(plan, tls, candidate, path, &mut second, deadline).await;
        let told = second
            .protocol
            .as_ref()
            .is_some_and(|p| p.said.contains_key("websocket"));
        if told {
            return Some(second);
        }
        second = ProbeResult::new(candidate);
    }
    if bare(path) && upgrade_failed(first) {
        let socketio = Plan {
            protocol: ProtocolChoice::SocketIo,
            ..plan.clone()
        };
        let path = SOCKETIO_DEFAULT_PATH;
        attempt(&socketio, tls, candidate, path, &mut second, deadline).await;
        let info = second.protocol.as_mut().filter(|_| second.ok)?;
        info.said
            .insert("path".to_owned(), Value::from("/socket.io/"));
        return Some(second);
    }
    if silent_after_nonce(first) {
        let stomp = Plan {
            protocol: ProtocolChoice::Stomp,
            ..plan.clone()
        };
        let look = deadline.min(Instant::now() + STOMP_LOOK);
        attempt(&stomp, tls, candidate, path, &mut second, look).await;
        let answered = second.ok
            || second
                .failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::ProtocolRefused);
        return answered.then_some(second);
    }
    None
}

fn bare(path: &str) -> bool {
    matches!(path.split('?').next(), Some("" | "/"))
}

/// A refusal whose body is SockJS's greeting: the path is a SockJS base.
fn answered_sockjs_greeting(result: &ProbeResult) -> bool {
    refused(result)
        && result
            .response
            .as_ref()
            .is_some_and(|r| r.body.contains(sockjs::GREETING))
}

fn refused(result: &ProbeResult) -> bool {
    result
        .failure
        .as_ref()
        .is_some_and(|f| f.kind == FailureKind::HttpRefused)
}

fn refused_with(result: &ProbeResult, status: u16) -> bool {
    refused(result) && result.response.as_ref().is_some_and(|r| r.status == status)
}

/// The upgrade reached the app and failed there: not a router's own error answer.
fn upgrade_failed(result: &ProbeResult) -> bool {
    let Some(failure) = &result.failure else {
        return false;
    };
    let from_router = result
        .response
        .as_ref()
        .is_some_and(|r| r.header("x-cf-routererror").is_some());
    result.stage == Stage::Upgrade
        && !from_router
        && matches!(
            failure.kind,
            FailureKind::HttpRefused | FailureKind::HandshakeClosed | FailureKind::HandshakeTimeout
        )
}

/// The WebSocket opened and an unknown peer said nothing at all to the nonce.
fn silent_after_nonce(result: &ProbeResult) -> bool {
    result.failure.is_none()
        && result.peer == PeerKind::Unknown
        && result.echo.as_ref().is_some_and(|e| {
            !e.verified && e.greeting.is_none() && e.unexpected.is_none() && e.reply.is_none()
        })
}
