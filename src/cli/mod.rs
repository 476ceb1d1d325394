//! Command-line flags: the clap structs only, plus the proxy environment read at the edge;
//! `to_plan` turns them into a validated command.

pub mod to_plan;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::EnvProxy;

const AFTER_HELP: &str = "\
EXIT CODES:
  0  what you asked about works end to end (WebSocket opened; echo verified or not
     expected): TARGET itself for a URL, the canonical wss://<route><path> for a route
  1  it does not (the report names any other URL that works, as a fallback)
  2  usage error (bad TARGET or flag) or internal error

EXAMPLES:
  wscheck myapp.cfapps.eu10.hana.ondemand.com
  wscheck wss://myapp.example.com/socket --only
  wscheck myapp.example.com --format markdown > ticket.md
  wscheck myapp.example.com --connect-to ::127.0.0.1:8443 --cacert ca.pem
  wscheck demo";

/// Find out why a WebSocket route (on Cloud Foundry above all) does not connect.
///
/// Tries ws:// and wss:// with and without explicit ports at once, stage by stage (DNS, TCP,
/// TLS, HTTP upgrade, echo), and reports which URLs work, which fail, where and why.
#[derive(Debug, Parser)]
#[command(name = "wscheck", version, about, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CommandArgs>,
    #[command(flatten)]
    pub check: CheckArgs,
}

#[derive(Debug, Subcommand)]
pub enum CommandArgs {
    /// Start the bundled echo server behind a local TLS-terminating router on loopback,
    /// probe it as a route, and print the report: what `wscheck <route>` shows on CF.
    Demo(DemoArgs),
    /// Load a route: N concurrent WebSockets, echoed messages closed-loop or at a rate (or
    /// held idle with --rate 0); connections achieved, messages/s, latency percentiles,
    /// errors by kind; every echo checked. Exit 0 when nothing was lost.
    Load(Box<LoadArgs>),
    /// Check your own app the way Cloud Foundry will run it, before `cf push`: start it from
    /// its manifest with CF's environment and a free $PORT, run CF's health check, read
    /// where it listens, probe its WebSocket directly and through a local gorouter
    /// stand-in, stop it with SIGTERM. Exit 0 when it would pass the health check and its
    /// WebSocket works through the router.
    App(AppArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// The app's folder (default: the current one); its manifest.yml is read when present.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The manifest to read instead of DIR/manifest.yml.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The app of a multi-app manifest.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The WebSocket path (default: the first route's path, or /).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, value_name = "FORMAT")]
    pub format: FormatArg,
    /// The start command, instead of the manifest's (and of a Procfile's `web:` line).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The URL (or route) to load; probed as given, no neighbours.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Concurrent WebSockets to open.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub connections: u32,
    /// How long to measure (after ramp-up and warm-up).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Total messages per second over all connections; without it, each connection sends
    /// its next message when the last echo is back; 0 holds the connections idle.
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<f64>,
    /// Message size (at least 32 B).
    #[arg(long, default_value = "64B", value_name = "SIZE")]
    pub size: bytesize::ByteSize,
    /// Closed loop: messages each connection keeps in flight (sent, echo not yet back).
    /// 1 is ping-pong; more pipelines them, as a streaming client does.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub in_flight: u32,
    /// Spread the connection openings over this time.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ramp_up: std::time::Duration,
    /// Run this long before measuring.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub warmup: std::time::Duration,
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, value_name = "FORMAT")]
    pub format: FormatArg,
    #[command(flatten)]
    pub conn: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, value_name = "FORMAT")]
    pub format: FormatArg,
    /// What to stage: the healthy route, or a failure to see before meeting it.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Healthy, value_name = "NAME")]
    pub scenario: ScenarioArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// The route works (exit 0).
    Healthy,
    /// The router drops Upgrade/Connection; the app answers 426 (exit 1).
    UpgradeStripped,
    /// The app is down; the router answers 502 endpoint_failure (exit 1).
    AppDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A table, explanations and a verdict, for people.
    Table,
    /// One JSON document (a stable contract, see schema_version).
    Json,
    /// A Markdown block to paste into a support ticket, secrets redacted.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Detect the protocol (socket.io), else echo.
    Auto,
    /// A plain WebSocket: the echo only.
    Raw,
    /// socket.io (Engine.IO v3/v4): connect the default namespace.
    Socketio,
    /// GraphQL over WebSocket (graphql-transport-ws, legacy graphql-ws): connection_init.
    Graphql,
    /// STOMP 1.2/1.1/1.0 (RabbitMQ Web-STOMP, Spring): CONNECT, then CONNECTED or ERROR.
    Stomp,
    /// SockJS: GET <path>/info, then its WebSocket transport and the `o` frame.
    Sockjs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum SchemeArg {
    Ws,
    Wss,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Route or URL: myapp.example.com, myapp.example.com/socket, or ws://, wss://, http://,
    /// https:// URLs (IPv6 literals and international names work).
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Path (and query) to request, replacing the one in TARGET.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Explicit ports to try, comma-separated; `default` stands for the URL without a port.
    /// Replaces the default matrix (default,443|80,8080,4443).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Vec<String>,
    /// Schemes to try, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, value_name = "SCHEMES")]
    pub schemes: Vec<SchemeArg>,
    /// Probe only TARGET as given (or wss://<route> for a bare route), no neighbours.
    #[arg(long)]
    pub only: bool,

    /// Text to send for the echo check (default: a random nonce).
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Skip the echo stage: a URL works once the WebSocket opens (for apps that must not
    /// receive a stray message).
    #[arg(long, conflicts_with = "message")]
    pub no_echo: bool,
    /// What to speak after the upgrade: `auto` detects socket.io by its path
    /// (`/socket.io/`, tried on a bare route whose upgrade fails) or its first frame,
    /// GraphQL by its path (`/graphql`, `/subscriptions`, then offering its subprotocols),
    /// STOMP by a path segment naming it, GraphQL or STOMP by the subprotocol picked,
    /// SockJS by its greeting at the path, a STOMP broker by its silence to the echo, and
    /// echoes otherwise; `raw` only echoes.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Auto, value_name = "PROTOCOL")]
    pub protocol: ProtocolArg,
    /// A header for STOMP's CONNECT frame (repeatable), e.g. 'host:/' (RabbitMQ's virtual
    /// host), 'login:guest', 'passcode:...' (never shown in the report).
    #[arg(long = "stomp-header", value_name = "NAME:VALUE")]
    pub stomp_headers: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, value_name = "FORMAT")]
    pub format: FormatArg,
    /// Print each handshake request and response (secrets redacted).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Deep check: keep the best working connection idle this long and report when and how
    /// it was cut (e.g. 90s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Deep checks")]
    pub hold: Option<std::time::Duration>,
    /// With --hold: send a ping this often, to show that pings keep the connection alive.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "hold", help_heading = "Deep checks")]
    pub ping_interval: Option<std::time::Duration>,
    /// Deep check: echo messages of these sizes, text and binary (e.g. 1KiB,64KiB,1MiB,16MiB).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SIZES",
        help_heading = "Deep checks"
    )]
    pub sizes: Vec<bytesize::ByteSize>,
    /// Deep check: this many round trips over one connection; min / median / p99 / max.
    #[arg(long, value_name = "N", help_heading = "Deep checks")]
    pub count: Option<u32>,
    /// Deep check: open this many connections and report which app instances answered; on
    /// a socket.io URL, also run as many long-polling sessions (see --polling).
    #[arg(long, value_name = "N", help_heading = "Deep checks")]
    pub connections: Option<u32>,
    /// Deep check: open socket.io (Engine.IO) long-polling sessions, each request on a new
    /// connection, and report sessions lost between instances (sticky sessions needed).
    #[arg(long, help_heading = "Deep checks")]
    pub polling: bool,
    /// Probe every route of this file (one a line; blank lines and # comments ignored), a
    /// few at a time; one summary table, then the details of the failing routes.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub routes_file: Option<PathBuf>,
}

/// How to reach the target: headers, TLS trust, redirection, proxies, timeouts. Shared by
/// the prober and `wscheck load`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Extra request header, curl style (repeatable): -H 'Authorization: Bearer x'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Origin header to send (default: https://<host> for wss://, http://<host> for ws://;
    /// the SAP approuter checks it).
    #[arg(long, value_name = "ORIGIN", conflicts_with = "no_origin")]
    pub origin: Option<String>,
    /// Send no Origin header.
    #[arg(long)]
    pub no_origin: bool,
    /// Offer this subprotocol (repeatable); the report shows what the server picked.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,

    /// Do not verify TLS certificates (the report still says what was wrong with them).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file instead of the built-in Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Connect to HOST2:PORT2 instead of HOST1:PORT1 (curl semantics; Host and SNI stay the
    /// route's). Empty parts match any host/port or keep the original. Repeatable.
    #[arg(long = "connect-to", value_name = "HOST1:PORT1:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    /// Use ADDR for HOST:PORT instead of DNS (curl semantics). Repeatable.
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,

    /// Time limit of one probe, all stages together.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Time limit of each of DNS, TCP connect and TLS handshake.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub connect_timeout: std::time::Duration,
    /// Send Authorization, Cookie and user:pass@ also over plaintext ws:// (never by default).
    #[arg(long)]
    pub allow_plaintext_credentials: bool,

    /// Target one app instance with `X-Cf-App-Instance: APP_GUID:INDEX` (`cf app APP --guid`).
    #[arg(long, value_name = "APP_GUID:INDEX")]
    pub instance: Option<String>,

    /// Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides
    /// wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment.
    #[arg(short = 'x', long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts that bypass the proxy, comma-separated (overrides no_proxy / NO_PROXY).
    #[arg(long, value_name = "HOSTS")]
    pub noproxy: Option<String>,
}

/// Proxy settings from this process's environment (`https_proxy`, `NO_PROXY`, ...). Read
/// here, at the edge, so that the conversions stay pure and tests pass their own.
pub fn env_proxy() -> EnvProxy {
    EnvProxy::from_lookup(|name| std::env::var(name).ok())
}
