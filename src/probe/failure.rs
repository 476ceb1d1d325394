//! What went wrong in a probe, precisely enough for a diagnosis: each stage converts its
//! own errors into one of these.

use schemars::JsonSchema;
use serde::Serialize;

/// What went wrong, precisely enough for a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    DnsFailed,
    DnsTimeout,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    /// The proxy's name does not resolve or nothing accepts connections there.
    ProxyUnreachable,
    /// The proxy broke off or refused the tunnel (see the response).
    ProxyRefused,
    /// The proxy answered 407.
    ProxyAuthRequired,
    /// A plain-HTTP peer answered the TLS ClientHello.
    TlsToPlainPeer,
    TlsCertUntrusted,
    TlsCertNameMismatch,
    TlsCertExpired,
    TlsCertInvalid,
    TlsHandshakeFailed,
    TlsTimeout,
    /// A TLS peer answered the plaintext upgrade request.
    PlainToTlsPeer,
    /// An HTTP answer other than 101: see the response.
    HttpRefused,
    HandshakeClosed,
    HandshakeTimeout,
    /// The peer answered with something that is not HTTP.
    NotHttp,
    /// A 101 that breaks RFC 6455 (bad accept key, unrequested subprotocol).
    HandshakeInvalid,
    /// We offered subprotocols and the server picked none.
    SubprotocolNotAccepted,
    EchoTimeout,
    EchoMismatch,
    EchoClosed,
    /// Could not even build the request (bad header value).
    RequestInvalid,
    /// The application protocol's opening was refused (e.g. socket.io's `44` packet).
    ProtocolRefused,
    /// The application protocol's opening did not complete (closed, malformed, timed out).
    ProtocolFailed,
    /// The server speaks another version of the protocol than the client asks for.
    ProtocolMismatch,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
