//! What one probe saw: the stage it reached, its failure, timings, route, TLS, the HTTP
//! exchange and the echo. Data, never an `Err`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use super::echo::{EchoInfo, PeerKind};
use super::failure::Failure;
use super::protocol::ProtocolInfo;
use super::tls::TlsInfo;
use super::upgrade::HttpResponse;
use super::ws::ms_since;
use crate::plan::{Candidate, Proxy, Route};

/// The stages of a probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Dns,
    Connect,
    /// The CONNECT tunnel through a proxy.
    Proxy,
    Tls,
    Upgrade,
    Echo,
    /// The application protocol's opening (instead of the echo).
    Protocol,
    /// Every stage passed.
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Proxy => "proxy",
            Stage::Tls => "tls",
            Stage::Upgrade => "upgrade",
            Stage::Echo => "echo",
            Stage::Protocol => "protocol",
            Stage::Done => "done",
        }
    }
}

/// Milliseconds spent in each stage.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Timings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub proxy: Option<f64>,
    pub tls: Option<f64>,
    pub upgrade: Option<f64>,
    pub echo: Option<f64>,
    pub protocol: Option<f64>,
    pub total: f64,
}

impl Timings {
    fn set(&mut self, stage: Stage, ms: f64) {
        let slot = match stage {
            Stage::Dns => &mut self.dns,
            Stage::Connect => &mut self.connect,
            Stage::Proxy => &mut self.proxy,
            Stage::Tls => &mut self.tls,
            Stage::Upgrade => &mut self.upgrade,
            Stage::Echo => &mut self.echo,
            Stage::Protocol => &mut self.protocol,
            Stage::Done => return,
        };
        *slot = Some(ms);
    }
}

/// Where the connection went.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct RouteInfo {
    /// Host and port dialled (after `--connect-to`).
    pub host: String,
    pub port: u16,
    pub redirected: bool,
    /// Every address DNS (or `--resolve`) gave.
    pub addresses: Vec<IpAddr>,
    pub connected_to: Option<SocketAddr>,
    /// The proxy tunnelled through (`host:port`), if any.
    pub proxy: Option<String>,
}

impl RouteInfo {
    /// What is known before dialling: the route and the proxy, if any.
    pub fn planned(route: &Route, proxy: Option<&Proxy>) -> Self {
        Self {
            host: route.host.clone(),
            port: route.port,
            redirected: route.redirected,
            proxy: proxy.map(Proxy::display),
            ..Self::default()
        }
    }
}

/// Everything one probe saw.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub candidate: Candidate,
    pub ok: bool,
    /// The last stage attempted (`done` when all passed).
    pub stage: Stage,
    pub failure: Option<Failure>,
    #[serde(rename = "timings_ms")]
    pub timings: Timings,
    pub route: RouteInfo,
    pub tls: Option<TlsInfo>,
    /// The request head as sent (first line, then headers).
    pub request: Vec<String>,
    pub response: Option<HttpResponse>,
    pub subprotocol: Option<String>,
    /// Credentials given but not sent because this candidate is plaintext.
    pub credentials_held_back: bool,
    pub peer: PeerKind,
    pub echo: Option<EchoInfo>,
    /// What the application protocol's opening said; `None` for a raw WebSocket.
    pub protocol: Option<ProtocolInfo>,
}

impl ProbeResult {
    pub fn new(candidate: &Candidate) -> Self {
        Self {
            candidate: candidate.clone(),
            ok: false,
            stage: Stage::Dns,
            failure: None,
            timings: Timings::default(),
            route: RouteInfo::default(),
            tls: None,
            request: Vec::new(),
            response: None,
            subprotocol: None,
            credentials_held_back: false,
            peer: PeerKind::Unknown,
            echo: None,
            protocol: None,
        }
    }

    /// The echo verified the path end to end (not merely opened).
    pub fn echo_verified(&self) -> bool {
        self.echo.as_ref().is_some_and(|e| e.verified)
    }

    /// Enters `stage`; the clock returned times it.
    pub(crate) fn enter(&mut self, stage: Stage) -> Instant {
        self.stage = stage;
        Instant::now()
    }

    /// Records the outcome of the current stage: the time it took, or its failure.
    pub(crate) fn settle<T>(&mut self, started: Instant, outcome: Result<T, Failure>) -> Option<T> {
        match outcome {
            Ok(value) => {
                self.timings.set(self.stage, ms_since(started));
                Some(value)
            }
            Err(failure) => {
                self.failure = Some(failure);
                None
            }
        }
    }

    /// Marks every stage passed.
    pub(crate) fn done(&mut self) {
        self.stage = Stage::Done;
        self.ok = true;
    }
}
