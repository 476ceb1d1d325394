//! Application protocols on top of the WebSocket: which one a probe speaks (`--protocol`,
//! or detected from the path and the first frame), and what its opening said, for the
//! report. The openings themselves live one module each (`socketio`).

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
}

/// A protocol a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    SocketIo,
}

/// What a protocol's opening said (`protocol` in the JSON; `null` for a raw WebSocket).
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolInfo {
    pub name: &'static str,
    pub version: Option<String>,
    /// The opening's own particulars (`sid`, `ping_interval_ms`, ...).
    #[serde(flatten)]
    pub said: Map<String, Value>,
}

/// The protocol known before any frame: asked for, or told by the path.
pub fn by_path(choice: ProtocolChoice, path: &str) -> Option<Protocol> {
    match choice {
        ProtocolChoice::SocketIo => Some(Protocol::SocketIo),
        ProtocolChoice::Raw => None,
        ProtocolChoice::Auto => path.contains("/socket.io/").then_some(Protocol::SocketIo),
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
}
