//! Application protocols on top of the WebSocket: which one a probe speaks (`--protocol`,
//! or detected from the path and the first frame), and what its opening said, for the
//! report. The openings themselves live one module each (`socketio`, `graphql`, `stomp`,
//! `sockjs`).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// `--protocol`: what to speak after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// Detect it: the path (`/socket.io/`), then the first frame (Engine.IO's open packet);
    /// otherwise the echo.
    #[default]
    Auto,
    /// The echo only.
    Raw,
    SocketIo,
    Graphql,
    Stomp,
    Sockjs,
}

/// A protocol a probe speaks over the WebSocket it opened (SockJS opens its own: see
/// `sockjs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    SocketIo,
    Graphql,
    Stomp,
}

/// GraphQL over WebSocket's subprotocols: the current one first, then the legacy one
/// (subscriptions-transport-ws).
pub const GRAPHQL_SUBPROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// STOMP's subprotocols, newest first, as stomp.js and Spring's clients offer them.
pub const STOMP_SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// What a protocol's opening said (`protocol` in the JSON; `null` for a raw WebSocket).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProtocolInfo {
    pub name: &'static str,
    pub version: Option<String>,
    /// The opening's own particulars (`sid`, `ping_interval_ms`, ...).
    #[serde(flatten)]
    pub said: Map<String, Value>,
}

/// The protocol known before any frame: asked for, or told by the path.
pub fn by_path(choice: ProtocolChoice, path: &str) -> Option<Protocol> {
    let path_only = path.split('?').next().unwrap_or_default();
    match choice {
        ProtocolChoice::SocketIo => Some(Protocol::SocketIo),
        ProtocolChoice::Graphql => Some(Protocol::Graphql),
        ProtocolChoice::Stomp => Some(Protocol::Stomp),
        ProtocolChoice::Raw | ProtocolChoice::Sockjs => None,
        ProtocolChoice::Auto if path_only.contains("/socket.io/") => Some(Protocol::SocketIo),
        ProtocolChoice::Auto
            if path_only.ends_with("/graphql") || path_only.ends_with("/subscriptions") =>
        {
            Some(Protocol::Graphql)
        }
        ProtocolChoice::Auto if names_stomp(path_only) => Some(Protocol::Stomp),
        ProtocolChoice::Auto => None,
    }
}

/// A path segment that says STOMP (`/stomp`, `/ws-stomp`, `/stomp-endpoint`).
fn names_stomp(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment.to_ascii_lowercase().contains("stomp"))
}

/// The protocol the subprotocol the server picked names.
pub fn by_subprotocol(choice: ProtocolChoice, picked: Option<&str>) -> Option<Protocol> {
    let picked = picked?;
    if matches!(choice, ProtocolChoice::Raw | ProtocolChoice::Sockjs) {
        return None;
    }
    if GRAPHQL_SUBPROTOCOLS.contains(&picked) {
        Some(Protocol::Graphql)
    } else if STOMP_SUBPROTOCOLS.contains(&picked) {
        Some(Protocol::Stomp)
    } else {
        None
    }
}

/// The subprotocols to offer: the user's (`--subprotocol`); else, for GraphQL (a server
/// refuses a client that offers none), its two; for a path that names STOMP, STOMP's
/// three, as its clients do. Nothing else is offered unasked, since an offer can change
/// what a server does (Node's `ws` picks the first one offered when the app does not
/// choose).
pub fn subprotocols_to_offer(choice: ProtocolChoice, path: &str, asked: &[String]) -> Vec<String> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    match by_path(choice, path) {
        Some(Protocol::Graphql) => GRAPHQL_SUBPROTOCOLS.map(str::to_owned).to_vec(),
        Some(Protocol::Stomp) if names_stomp(path.split('?').next().unwrap_or_default()) => {
            STOMP_SUBPROTOCOLS.map(str::to_owned).to_vec()
        }
        _ => Vec::new(),
    }
}

/// The protocol a first frame tells: an Engine.IO open packet (`0{"sid":...}`).
pub fn by_first_frame(text: &str) -> Option<Protocol> {
    let json = text.strip_prefix('0')?;
    let open: Value = serde_json::from_str(json).ok()?;
    open.get("sid").is_some().then_some(Protocol::SocketIo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_io_is_told_by_its_path_or_its_open_packet() {
        let auto = ProtocolChoice::Auto;
        assert_eq!(
            by_path(auto, "/socket.io/?EIO=4&transport=websocket"),
            Some(Protocol::SocketIo)
        );
        assert_eq!(by_path(auto, "/ws"), None);
        assert_eq!(by_path(ProtocolChoice::Raw, "/socket.io/"), None);
        assert_eq!(
            by_path(ProtocolChoice::SocketIo, "/chat"),
            Some(Protocol::SocketIo)
        );
        let open = r#"0{"sid":"a9Nu6Lug2B54odYGAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(by_first_frame(open), Some(Protocol::SocketIo));
        assert_eq!(by_first_frame("0 is a number"), None);
        assert_eq!(by_first_frame("Hi, this is the Echo-Server"), None);
    }

    #[test]
    fn graphql_is_told_by_its_path_or_the_subprotocol_picked_and_only_then_offered() {
        let auto = ProtocolChoice::Auto;
        assert_eq!(by_path(auto, "/graphql"), Some(Protocol::Graphql));
        assert_eq!(
            by_path(auto, "/api/subscriptions?x=1"),
            Some(Protocol::Graphql)
        );
        assert_eq!(by_path(auto, "/graphql-docs"), None);
        assert_eq!(
            by_subprotocol(auto, Some("graphql-ws")),
            Some(Protocol::Graphql)
        );
        assert_eq!(
            by_subprotocol(ProtocolChoice::Raw, Some("graphql-ws")),
            None
        );
        assert_eq!(by_subprotocol(auto, Some("chat")), None);
        assert_eq!(
            subprotocols_to_offer(auto, "/graphql", &[]),
            ["graphql-transport-ws", "graphql-ws"]
        );
        assert!(subprotocols_to_offer(auto, "/ws", &[]).is_empty());
        assert!(subprotocols_to_offer(ProtocolChoice::Raw, "/graphql", &[]).is_empty());
        assert_eq!(
            subprotocols_to_offer(auto, "/graphql", &["v12.stomp".into()]),
            ["v12.stomp"]
        );
    }

    #[test]
    fn stomp_is_told_by_a_path_segment_or_the_subprotocol_picked() {
        let auto = ProtocolChoice::Auto;
        assert_eq!(by_path(auto, "/stomp"), Some(Protocol::Stomp));
        assert_eq!(by_path(auto, "/app/ws-stomp/"), Some(Protocol::Stomp));
        assert_eq!(by_path(auto, "/ws?topic=stomp"), None);
        assert_eq!(by_path(auto, "/ws"), None);
        assert_eq!(
            by_subprotocol(auto, Some("v12.stomp")),
            Some(Protocol::Stomp)
        );
        assert_eq!(
            subprotocols_to_offer(auto, "/stomp", &[]),
            ["v12.stomp", "v11.stomp", "v10.stomp"]
        );
        // Asked for by flag on a path that does not say so: nothing offered, as Spring and
        // RabbitMQ take a CONNECT without one.
        assert!(subprotocols_to_offer(ProtocolChoice::Stomp, "/ws", &[]).is_empty());
        assert_eq!(by_path(ProtocolChoice::Sockjs, "/stomp"), None);
    }
}
