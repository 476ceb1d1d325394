//! The crate's one error type: what stops a command before or after its work (bad flags,
//! a setup that cannot be made, a report that cannot be written). A failed probe is never
//! an error: it is data in the report.

/// Why a command could not run; `app` maps each kind to its exit code in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What clap refused (or `--help` / `--version`, which clap reports the same way).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The command line is wrong: a bad TARGET, flag value or routes file line.
    #[error(transparent)]
    Usage(#[from] Usage),
    /// Something the command needs could not be set up (runtime, `--cacert`, a file).
    #[error("{0}")]
    Setup(String),
    /// The report could not be written.
    #[error("cannot write the report: {0}")]
    Output(#[source] std::io::Error),
}

/// What is wrong with the command line, one line each, naming the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Usage {
    #[error(
        "missing TARGET: give a route (myapp.example.com) or a ws://, wss://, http:// or https:// URL"
    )]
    MissingTarget,
    #[error("invalid TARGET {input:?}: {reason}")]
    InvalidTarget { input: String, reason: String },
    #[error("invalid --header {0:?}: expected 'Name: value'")]
    InvalidHeader(String),
    #[error("invalid --stomp-header {0:?}: expected NAME:VALUE without line breaks")]
    InvalidStompHeader(String),
    #[error("invalid --ports item {0:?}: expected a port 1-65535 or 'default'")]
    InvalidPort(String),
    #[error("invalid --connect-to {0:?}: expected HOST1:PORT1:HOST2:PORT2 (parts may be empty)")]
    InvalidConnectTo(String),
    #[error("invalid --resolve {0:?}: expected HOST:PORT:ADDR[,ADDR...]")]
    InvalidResolve(String),
    #[error("invalid --{flag}: must be more than zero")]
    ZeroDuration { flag: &'static str },
    #[error(
        "invalid --origin {0:?}: expected scheme://host[:port], e.g. https://myapp.example.com"
    )]
    InvalidOrigin(String),
    #[error("invalid --path {0:?}: must start with '/'")]
    InvalidPath(String),
    #[error("invalid --subprotocol {0:?}: must be a non-empty token without spaces or commas")]
    InvalidSubprotocol(String),
    #[error("--message must not be empty")]
    EmptyMessage,
    #[error("invalid proxy {value:?} (from {source_name}): {reason}")]
    InvalidProxy {
        value: String,
        source_name: String,
        reason: String,
    },
    #[error(
        "invalid --instance {0:?}: expected APP_GUID:INDEX, e.g. 2d8b1ba5-4b6e-4b6e-9f1c-0a1b2c3d4e5f:1"
    )]
    InvalidInstance(String),
    #[error("invalid --{flag}: {reason}")]
    InvalidDeep { flag: &'static str, reason: String },
    /// A `wscheck load` setting out of its range or in conflict with another.
    #[error("{0}")]
    InvalidLoad(String),
    #[error("--routes-file {path}: no routes in the file")]
    EmptyRoutesFile { path: String },
    #[error("--routes-file line {line}: {error}")]
    RoutesFileLine { line: usize, error: Box<Usage> },
}
