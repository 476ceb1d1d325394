//! From flags to a validated plan: the target, the ws/wss × port matrix, and every probe
//! setting. Pure (no I/O), so each rule is unit-tested.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{CheckArgs, Format, SchemeArg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Ws,
    Wss,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
    pub fn is_tls(self) -> bool {
        self == Scheme::Wss
    }
}

impl From<SchemeArg> for Scheme {
    fn from(arg: SchemeArg) -> Self {
        match arg {
            SchemeArg::Ws => Scheme::Ws,
            SchemeArg::Wss => Scheme::Wss,
        }
    }
}

/// What the user asked to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The argument as typed (credentials removed).
    pub input: String,
    /// Host as it goes into URLs and Host headers: punycode for IDNs, `[..]` for IPv6.
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Scheme and explicit port of a full URL; `None` for a bare route.
    pub given: Option<(Scheme, Option<u16>)>,
    /// `user:pass@` from the URL.
    pub userinfo: Option<(String, String)>,
}

impl Target {
    /// The host without IPv6 brackets, for DNS and TLS.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// One URL of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub url: String,
    pub scheme: Scheme,
    /// The port written in the URL; `None` when the URL has none.
    pub explicit_port: Option<u16>,
    /// The port dialled (before `--connect-to`).
    pub port: u16,
    /// The Host header, as a browser sends it: the port only when not the scheme's default.
    pub host_header: String,
}

impl Candidate {
    pub fn new(target: &Target, scheme: Scheme, explicit_port: Option<u16>) -> Self {
        let port = explicit_port.unwrap_or(scheme.default_port());
        let authority = match explicit_port {
            Some(p) => format!("{}:{p}", target.host),
            None => target.host.clone(),
        };
        let host_header = if port == scheme.default_port() {
            target.host.clone()
        } else {
            format!("{}:{port}", target.host)
        };
        Self {
            url: format!("{}://{authority}{}", scheme.as_str(), target.path),
            scheme,
            explicit_port,
            port,
            host_header,
        }
    }
}

impl Candidate {
    /// Rank among working URLs (lower is better): the canonical port-less wss:// first.
    pub fn preference(&self) -> u8 {
        match (self.scheme, self.explicit_port) {
            (Scheme::Wss, None) => 0,
            (Scheme::Wss, Some(443)) => 1,
            (Scheme::Wss, _) => 2,
            (Scheme::Ws, None) => 3,
            (Scheme::Ws, Some(80)) => 4,
            (Scheme::Ws, _) => 5,
        }
    }
}

/// `--connect-to HOST1:PORT1:HOST2:PORT2`; `None` parts match anything / keep the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub from_host: Option<String>,
    pub from_port: Option<u16>,
    pub to_host: Option<String>,
    pub to_port: Option<u16>,
}

/// `--resolve HOST:PORT:ADDR[,ADDR...]`; host `*` matches any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
}

/// Where one candidate's TCP connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host: String,
    pub port: u16,
    /// Addresses from `--resolve`; `None` means ask DNS.
    pub pinned: Option<Vec<IpAddr>>,
    /// Whether `--connect-to` changed host or port.
    pub redirected: bool,
}

/// Proxy settings from the environment (read by the binary, passed in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvProxy {
    pub wss: Option<String>,
    pub ws: Option<String>,
    pub no_proxy: Option<String>,
}

impl EnvProxy {
    /// wss: `wss_proxy`, `https_proxy`, `HTTPS_PROXY`; ws: `ws_proxy`, `http_proxy`,
    /// `HTTP_PROXY`; bypass list: `no_proxy`, `NO_PROXY`. First non-empty wins.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        Self {
            wss: first(&["wss_proxy", "https_proxy", "HTTPS_PROXY"]),
            ws: first(&["ws_proxy", "http_proxy", "HTTP_PROXY"]),
            no_proxy: first(&["no_proxy", "NO_PROXY"]),
        }
    }
}

/// An HTTP proxy to tunnel through with CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    /// Where it came from (`--proxy`, `https_proxy`, ...), for the report.
    pub source: String,
}

impl Proxy {
    /// `host:port`, for reports (never the credentials).
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Deep checks over the recommended URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deep {
    pub hold: Option<Duration>,
    pub ping_interval: Option<Duration>,
    /// Message sizes in bytes, ascending, without duplicates.
    pub sizes: Vec<usize>,
    pub count: Option<u32>,
    pub connections: Option<u32>,
}

impl Deep {
    pub fn any(&self) -> bool {
        self.hold.is_some()
            || !self.sizes.is_empty()
            || self.count.is_some()
            || self.connections.is_some()
    }
}

/// Everything a check needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub candidates: Vec<Candidate>,
    /// User headers, in order.
    pub headers: Vec<(String, String)>,
    pub origin: Option<String>,
    pub subprotocols: Vec<String>,
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    pub resolve: Vec<Resolve>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub message: Option<String>,
    pub allow_plaintext_credentials: bool,
    pub format: Format,
    pub verbose: bool,
    pub deep: Deep,
    pub proxy_wss: Option<Proxy>,
    pub proxy_ws: Option<Proxy>,
    /// Hosts that bypass the proxy (`*` for all; `.example.com` or `example.com` for a domain).
    pub no_proxy: Vec<String>,
}

/// Headers that carry user credentials: held back over plaintext, redacted in reports.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl Plan {
    /// Where `candidate` connects, after `--connect-to` and `--resolve`.
    pub fn route(&self, candidate: &Candidate) -> Route {
        let host = self.target.bare_host();
        let mut route = Route {
            host: host.to_owned(),
            port: candidate.port,
            pinned: None,
            redirected: false,
        };
        if let Some(rule) = self.connect_to.iter().find(|r| {
            r.from_host
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(host))
                && r.from_port.is_none_or(|p| p == candidate.port)
        }) {
            if let Some(to) = &rule.to_host {
                route.host = to.clone();
            }
            if let Some(to) = rule.to_port {
                route.port = to;
            }
            route.redirected = true;
        }
        route.pinned = self
            .resolve
            .iter()
            .find(|r| {
                (r.host == "*" || r.host.eq_ignore_ascii_case(&route.host)) && r.port == route.port
            })
            .map(|r| r.addrs.clone());
        if route.pinned.is_none()
            && let Ok(ip) = route.host.parse::<IpAddr>()
        {
            route.pinned = Some(vec![ip]);
        }
        route
    }

    /// The proxy `candidate` tunnels through, if any. Loopback targets and `no_proxy`
    /// matches go direct.
    pub fn proxy_for(&self, candidate: &Candidate) -> Option<&Proxy> {
        let proxy = match candidate.scheme {
            Scheme::Wss => self.proxy_wss.as_ref(),
            Scheme::Ws => self.proxy_ws.as_ref(),
        }?;
        let host = self.target.bare_host().to_ascii_lowercase();
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let bypassed = self.no_proxy.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .to_ascii_lowercase();
            entry == "*" || host == entry || host.ends_with(&format!(".{entry}"))
        });
        (!loopback && !bypassed).then_some(proxy)
    }

    /// Whether the user gave credentials (header or URL userinfo).
    pub fn has_credentials(&self) -> bool {
        self.target.userinfo.is_some()
            || self
                .headers
                .iter()
                .any(|(name, _)| CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "missing TARGET: give a route (myapp.example.com) or a ws://, wss://, http:// or https:// URL"
    )]
    MissingTarget,
    #[error("invalid TARGET {input:?}: {reason}")]
    InvalidTarget { input: String, reason: String },
    #[error("invalid --header {0:?}: expected 'Name: value'")]
    InvalidHeader(String),
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
}

/// The default matrix: what the article and CF users try.
const DEFAULT_MATRIX: [(Scheme, Option<u16>); 8] = [
    (Scheme::Wss, None),
    (Scheme::Wss, Some(443)),
    (Scheme::Ws, None),
    (Scheme::Ws, Some(80)),
    (Scheme::Wss, Some(8080)),
    (Scheme::Ws, Some(8080)),
    (Scheme::Wss, Some(4443)),
    (Scheme::Ws, Some(4443)),
];

/// Turns flags into a plan, or names the first thing wrong with them.
pub fn plan(args: &CheckArgs) -> Result<Plan, PlanError> {
    let input = args.target.as_deref().ok_or(PlanError::MissingTarget)?;
    let mut target = parse_target(input)?;
    if let Some(path) = &args.path {
        if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
            return Err(PlanError::InvalidPath(path.clone()));
        }
        target.path = path.clone();
    }

    let ports = args
        .ports
        .iter()
        .map(|p| parse_port_item(p))
        .collect::<Result<Vec<_>, _>>()?;
    let schemes: Vec<Scheme> = if args.schemes.is_empty() {
        vec![Scheme::Wss, Scheme::Ws]
    } else {
        let mut unique = Vec::new();
        for s in &args.schemes {
            let s = Scheme::from(*s);
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        unique
    };

    let mut matrix: Vec<(Scheme, Option<u16>)> = Vec::new();
    let mut push = |entry: (Scheme, Option<u16>)| {
        if !matrix.contains(&entry) {
            matrix.push(entry);
        }
    };
    if let Some(given) = target.given {
        push(given);
    }
    if args.only {
        if target.given.is_none() {
            push((Scheme::Wss, None));
        }
    } else if ports.is_empty() {
        DEFAULT_MATRIX
            .iter()
            .filter(|(s, _)| schemes.contains(s))
            .for_each(|e| push(*e));
    } else {
        for scheme in &schemes {
            for port in &ports {
                push((*scheme, *port));
            }
        }
    }
    let candidates = matrix
        .into_iter()
        .map(|(scheme, port)| Candidate::new(&target, scheme, port))
        .collect();

    let headers = args
        .conn
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let origin = if args.conn.no_origin {
        None
    } else if let Some(origin) = &args.conn.origin {
        let valid = url::Url::parse(origin)
            .ok()
            .is_some_and(|u| u.host_str().is_some() && !origin.contains(char::is_whitespace));
        if !valid {
            return Err(PlanError::InvalidOrigin(origin.clone()));
        }
        Some(origin.clone())
    } else {
        Some(format!("https://{}", target.host))
    };
    for protocol in &args.conn.subprotocols {
        if protocol.is_empty() || protocol.contains([' ', ',', '\t']) {
            return Err(PlanError::InvalidSubprotocol(protocol.clone()));
        }
    }
    if args.conn.timeout.is_zero() {
        return Err(PlanError::ZeroDuration { flag: "timeout" });
    }
    if args.conn.connect_timeout.is_zero() {
        return Err(PlanError::ZeroDuration {
            flag: "connect-timeout",
        });
    }
    if args.message.as_deref() == Some("") {
        return Err(PlanError::EmptyMessage);
    }
    let mut headers = headers;
    if let Some(instance) = &args.conn.instance {
        let valid = instance.split_once(':').is_some_and(|(guid, index)| {
            !guid.is_empty()
                && guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                && index.parse::<u32>().is_ok()
        });
        if !valid {
            return Err(PlanError::InvalidInstance(instance.clone()));
        }
        headers.push(("X-Cf-App-Instance".to_owned(), instance.clone()));
    }
    let deep = deep_plan(args)?;
    let (proxy_wss, proxy_ws) = match &args.conn.proxy {
        Some(url) => {
            let proxy = parse_proxy(url, "--proxy")?;
            (Some(proxy.clone()), Some(proxy))
        }
        None => (
            args.conn
                .env_proxy
                .wss
                .as_deref()
                .map(|u| parse_proxy(u, "the environment (wss_proxy / https_proxy)"))
                .transpose()?,
            args.conn
                .env_proxy
                .ws
                .as_deref()
                .map(|u| parse_proxy(u, "the environment (ws_proxy / http_proxy)"))
                .transpose()?,
        ),
    };
    let no_proxy = args
        .conn
        .noproxy
        .as_deref()
        .or(args.conn.env_proxy.no_proxy.as_deref())
        .map(|list| {
            list.split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();

    Ok(Plan {
        target,
        candidates,
        headers,
        origin,
        subprotocols: args.conn.subprotocols.clone(),
        insecure: args.conn.insecure,
        cacert: args.conn.cacert.clone(),
        connect_to: args
            .conn
            .connect_to
            .iter()
            .map(|c| parse_connect_to(c))
            .collect::<Result<_, _>>()?,
        resolve: args
            .conn
            .resolve
            .iter()
            .map(|r| parse_resolve(r))
            .collect::<Result<_, _>>()?,
        timeout: args.conn.timeout,
        connect_timeout: args.conn.connect_timeout,
        message: args.message.clone(),
        allow_plaintext_credentials: args.conn.allow_plaintext_credentials,
        format: args.format,
        verbose: args.verbose,
        deep,
        proxy_wss,
        proxy_ws,
        no_proxy,
    })
}

fn deep_plan(args: &CheckArgs) -> Result<Deep, PlanError> {
    let mut sizes = Vec::new();
    for size in &args.sizes {
        let bytes = usize::try_from(size.as_u64())
            .ok()
            .filter(|b| (1..=(256 << 20)).contains(b))
            .ok_or_else(|| PlanError::InvalidDeep {
                flag: "sizes",
                reason: format!("{size} is outside 1 B..256 MiB"),
            })?;
        if !sizes.contains(&bytes) {
            sizes.push(bytes);
        }
    }
    sizes.sort_unstable();
    if args.hold.is_some_and(|h| h.is_zero()) {
        return Err(PlanError::ZeroDuration { flag: "hold" });
    }
    if args.ping_interval.is_some_and(|p| p.is_zero()) {
        return Err(PlanError::ZeroDuration {
            flag: "ping-interval",
        });
    }
    if let Some(count) = args.count
        && !(1..=100_000).contains(&count)
    {
        return Err(PlanError::InvalidDeep {
            flag: "count",
            reason: format!("{count} is outside 1..100000"),
        });
    }
    if let Some(connections) = args.connections
        && !(1..=10_000).contains(&connections)
    {
        return Err(PlanError::InvalidDeep {
            flag: "connections",
            reason: format!("{connections} is outside 1..10000"),
        });
    }
    Ok(Deep {
        hold: args.hold,
        ping_interval: args.ping_interval,
        sizes,
        count: args.count,
        connections: args.connections,
    })
}

/// Parses `http://[user:pass@]host[:port]` (port 1080 when absent, as curl does).
fn parse_proxy(raw: &str, source: &str) -> Result<Proxy, PlanError> {
    let bad = |reason: &str| PlanError::InvalidProxy {
        value: redact_userinfo(raw),
        source_name: source.to_owned(),
        reason: reason.to_owned(),
    };
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad(
            "only http:// proxies are supported (CONNECT over plain HTTP)",
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad("no host")),
    };
    let credentials = (!url.username().is_empty()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        )
    });
    Ok(Proxy {
        host,
        port: url.port().unwrap_or(1080),
        credentials,
        source: source.to_owned(),
    })
}

fn redact_userinfo(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}[redacted]@{}", &raw[..s + 3], &raw[at + 1..]),
        (None, Some(at)) => format!("[redacted]@{}", &raw[at + 1..]),
        _ => raw.to_owned(),
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> PlanError {
    PlanError::InvalidTarget {
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a bare route or a ws/wss/http/https URL.
pub fn parse_target(input: &str) -> Result<Target, PlanError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid(input, "it is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(input, "it contains spaces or control characters"));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "ws" | "http" => Scheme::Ws,
                "wss" | "https" => Scheme::Wss,
                other => {
                    return Err(invalid(
                        input,
                        format!(
                            "unsupported scheme '{other}' (use ws, wss, http, https, or a bare route)"
                        ),
                    ));
                }
            };
            (Some(scheme), rest)
        }
        None => (None, trimmed),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(input, "no host"));
    }
    // The url crate drops a default port (wss://h:443 -> wss://h); whether the user wrote
    // one matters here, so read the authority ourselves.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let explicit_port = match host_port.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':') && (!host.starts_with('[') || host.ends_with(']')) =>
        {
            let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                invalid(
                    input,
                    format!("port '{port}' is not a number from 1 to 65535"),
                )
            })?;
            Some(port)
        }
        _ => None,
    };
    let url_scheme = scheme.unwrap_or(Scheme::Wss);
    let url = url::Url::parse(&format!("{}://{rest}", url_scheme.as_str()))
        .map_err(|e| invalid(input, e.to_string()))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => {
            if d.is_empty() {
                return Err(invalid(input, "no host"));
            }
            if d.split('.').any(str::is_empty) && !d.ends_with('.') {
                return Err(invalid(input, format!("host '{d}' has an empty label")));
            }
            d.to_owned()
        }
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(invalid(input, "no host")),
    };
    let userinfo = (!url.username().is_empty()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        )
    });
    if url.fragment().is_some() {
        return Err(invalid(input, "a WebSocket URL cannot have a #fragment"));
    }
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let given = match (scheme, explicit_port) {
        (Some(s), port) => Some((s, port)),
        (None, Some(port)) => Some((Scheme::Wss, Some(port))),
        (None, None) => None,
    };
    let shown = match &userinfo {
        Some(_) => trimmed.replacen(&authority[..=authority.rfind('@').unwrap_or(0)], "", 1),
        None => trimmed.to_owned(),
    };
    Ok(Target {
        input: shown,
        host,
        path,
        given,
        userinfo,
    })
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_port_item(item: &str) -> Result<Option<u16>, PlanError> {
    let item = item.trim();
    if item.eq_ignore_ascii_case("default") || item.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    item.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(Some)
        .ok_or_else(|| PlanError::InvalidPort(item.to_owned()))
}

fn parse_header(raw: &str) -> Result<(String, String), PlanError> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| PlanError::InvalidHeader(raw.to_owned()))?;
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name || value.contains(['\r', '\n']) {
        return Err(PlanError::InvalidHeader(raw.to_owned()));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Splits `a:b:c` on colons outside `[...]`.
fn split_colons(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn parse_connect_to(raw: &str) -> Result<ConnectTo, PlanError> {
    let bad = || PlanError::InvalidConnectTo(raw.to_owned());
    let parts = split_colons(raw);
    let [h1, p1, h2, p2] = parts[..] else {
        return Err(bad());
    };
    let port = |p: &str| -> Result<Option<u16>, PlanError> {
        if p.is_empty() {
            Ok(None)
        } else {
            p.parse().ok().filter(|p| *p != 0).map(Some).ok_or_else(bad)
        }
    };
    let host = |h: &str| (!h.is_empty()).then(|| unbracket(h).to_owned());
    Ok(ConnectTo {
        from_host: host(h1),
        from_port: port(p1)?,
        to_host: host(h2),
        to_port: port(p2)?,
    })
}

fn parse_resolve(raw: &str) -> Result<Resolve, PlanError> {
    let bad = || PlanError::InvalidResolve(raw.to_owned());
    let parts = split_colons(raw);
    let [host, port, addrs] = parts[..] else {
        return Err(bad());
    };
    let port = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let addrs = addrs
        .split(',')
        .map(|a| unbracket(a.trim()).parse::<IpAddr>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if host.is_empty() || addrs.is_empty() {
        return Err(bad());
    }
    Ok(Resolve {
        host: unbracket(host).to_owned(),
        port,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(target: &str) -> CheckArgs {
        CheckArgs {
            target: Some(target.to_owned()),
            conn: crate::cli::ConnectionArgs {
                timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
                ..Default::default()
            },
            ..CheckArgs::default()
        }
    }

    fn urls(plan: &Plan) -> Vec<&str> {
        plan.candidates.iter().map(|c| c.url.as_str()).collect()
    }

    #[test]
    fn bare_route_gets_the_default_matrix() {
        let plan = plan(&args("myapp.cfapps.eu10.hana.ondemand.com")).unwrap();
        let h = "myapp.cfapps.eu10.hana.ondemand.com";
        assert_eq!(
            urls(&plan),
            [
                format!("wss://{h}/"),
                format!("wss://{h}:443/"),
                format!("ws://{h}/"),
                format!("ws://{h}:80/"),
                format!("wss://{h}:8080/"),
                format!("ws://{h}:8080/"),
                format!("wss://{h}:4443/"),
                format!("ws://{h}:4443/"),
            ]
        );
        assert_eq!(
            plan.origin.as_deref(),
            Some("https://myapp.cfapps.eu10.hana.ondemand.com")
        );
    }

    #[test]
    fn host_header_carries_the_port_only_when_not_the_default() {
        let plan = plan(&args("app.example.com")).unwrap();
        let hosts: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.host_header.as_str())
            .collect();
        assert_eq!(
            hosts,
            [
                "app.example.com",
                "app.example.com",
                "app.example.com",
                "app.example.com",
                "app.example.com:8080",
                "app.example.com:8080",
                "app.example.com:4443",
                "app.example.com:4443",
            ]
        );
    }

    #[test]
    fn route_with_path_keeps_path_and_query() {
        let plan = plan(&args("myapp.example.com/socket?room=1")).unwrap();
        assert_eq!(
            plan.candidates[0].url,
            "wss://myapp.example.com/socket?room=1"
        );
    }

    #[test]
    fn full_url_with_port_comes_first_with_its_neighbours() {
        let plan = plan(&args("ws://myapp.example.com:8080/ws")).unwrap();
        assert_eq!(plan.candidates[0].url, "ws://myapp.example.com:8080/ws");
        assert_eq!(plan.candidates.len(), 8);
        let mut only = args("ws://myapp.example.com:8080/ws");
        only.only = true;
        assert_eq!(
            urls(&super::plan(&only).unwrap()),
            ["ws://myapp.example.com:8080/ws"]
        );
    }

    #[test]
    fn explicit_default_port_is_kept_apart_from_no_port() {
        let mut a = args("wss://myapp.example.com:443");
        a.only = true;
        let plan = plan(&a).unwrap();
        assert_eq!(urls(&plan), ["wss://myapp.example.com:443/"]);
        assert_eq!(plan.candidates[0].explicit_port, Some(443));
    }

    #[test]
    fn http_urls_map_to_ws_schemes() {
        let mut a = args("https://myapp.example.com/x");
        a.only = true;
        assert_eq!(urls(&plan(&a).unwrap()), ["wss://myapp.example.com/x"]);
        let mut a = args("http://myapp.example.com");
        a.only = true;
        assert_eq!(urls(&plan(&a).unwrap()), ["ws://myapp.example.com/"]);
    }

    #[test]
    fn ipv6_literals_and_idns_work() {
        let mut a = args("wss://[::1]:8443/x");
        a.only = true;
        let p = plan(&a).unwrap();
        assert_eq!(urls(&p), ["wss://[::1]:8443/x"]);
        assert_eq!(p.target.bare_host(), "::1");
        assert_eq!(
            p.route(&p.candidates[0]).pinned,
            Some(vec!["::1".parse().unwrap()])
        );
        let p = plan(&args("bücher.example")).unwrap();
        assert_eq!(p.target.host, "xn--bcher-kva.example");
    }

    #[test]
    fn ports_and_schemes_narrow_or_extend_the_matrix() {
        let mut a = args("app.example.com");
        a.ports = vec!["default".into(), "8443".into()];
        a.schemes = vec![SchemeArg::Wss];
        assert_eq!(
            urls(&plan(&a).unwrap()),
            ["wss://app.example.com/", "wss://app.example.com:8443/"]
        );
        let mut a = args("app.example.com");
        a.schemes = vec![SchemeArg::Ws];
        assert_eq!(plan(&a).unwrap().candidates.len(), 4);
    }

    #[test]
    fn invalid_input_names_what_is_wrong() {
        for (input, needle) in [
            ("", "empty"),
            ("ftp://x.example.com", "unsupported scheme 'ftp'"),
            ("wss://", "no host"),
            ("app.example.com:99999", "port '99999'"),
            ("app .example.com", "spaces"),
            ("wss://a..b/", "empty label"),
            ("wss://app.example.com/#frag", "fragment"),
        ] {
            let error = plan(&args(input)).unwrap_err().to_string();
            assert!(error.contains(needle), "{input:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        assert_eq!(
            plan(&CheckArgs::default()).unwrap_err(),
            PlanError::MissingTarget
        );
        let mut a = args("app.example.com");
        a.ports = vec!["http".into()];
        assert_eq!(plan(&a).unwrap_err(), PlanError::InvalidPort("http".into()));
        let mut a = args("app.example.com");
        a.conn.headers = vec!["NoColon".into()];
        assert!(matches!(plan(&a).unwrap_err(), PlanError::InvalidHeader(_)));
        let mut a = args("app.example.com");
        a.conn.timeout = Duration::ZERO;
        assert!(plan(&a).unwrap_err().to_string().contains("--timeout"));
    }

    #[test]
    fn userinfo_is_taken_out_of_the_urls() {
        let p = plan(&args("wss://user:p%40ss@app.example.com/x")).unwrap();
        assert_eq!(p.target.userinfo, Some(("user".into(), "p@ss".into())));
        assert!(p.candidates.iter().all(|c| !c.url.contains("user")));
        assert_eq!(p.target.input, "wss://app.example.com/x");
        assert!(p.has_credentials());
    }

    #[test]
    fn connect_to_and_resolve_follow_curl() {
        let mut a = args("app.example.com");
        a.conn.connect_to = vec![
            "app.example.com:443:127.0.0.1:8443".into(),
            "::[::1]:".into(),
        ];
        a.conn.resolve = vec!["localhost:9000:127.0.0.2,[::1]".into()];
        let p = plan(&a).unwrap();
        let wss = p.route(&p.candidates[0]);
        assert_eq!((wss.host.as_str(), wss.port), ("127.0.0.1", 8443));
        assert_eq!(wss.pinned, Some(vec!["127.0.0.1".parse().unwrap()]));
        assert!(wss.redirected);
        let ws8080 = p.route(&p.candidates[5]);
        assert_eq!((ws8080.host.as_str(), ws8080.port), ("::1", 8080));

        let mut a = args("localhost:9000");
        a.conn.resolve = vec!["localhost:9000:127.0.0.2,[::1]".into()];
        let p = plan(&a).unwrap();
        let r = p.route(&p.candidates[0]);
        assert_eq!(
            r.pinned,
            Some(vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()])
        );
        assert!(!r.redirected);

        for bad in ["a:b", "h:1:h:x", "h:1:h:2:3"] {
            let mut a = args("app.example.com");
            a.conn.connect_to = vec![bad.into()];
            assert!(
                matches!(plan(&a).unwrap_err(), PlanError::InvalidConnectTo(_)),
                "{bad}"
            );
        }
        let mut a = args("app.example.com");
        a.conn.resolve = vec!["h:443:not-an-ip".into()];
        assert!(matches!(
            plan(&a).unwrap_err(),
            PlanError::InvalidResolve(_)
        ));
    }

    #[test]
    fn proxies_come_from_the_flag_or_the_environment_and_skip_loopback_and_no_proxy() {
        let env = EnvProxy::from_lookup(|name| match name {
            "HTTPS_PROXY" => Some("http://proxy.corp.example:3128".into()),
            "http_proxy" => Some("proxy.corp.example:8080".into()),
            "NO_PROXY" => Some("internal.example,.svc".into()),
            _ => None,
        });
        let mut a = args("app.example.com");
        a.conn.env_proxy = env.clone();
        let p = plan(&a).unwrap();
        assert_eq!(
            p.proxy_for(&p.candidates[0]).map(Proxy::display).as_deref(),
            Some("proxy.corp.example:3128")
        );
        assert_eq!(
            p.proxy_for(&p.candidates[2]).map(Proxy::display).as_deref(),
            Some("proxy.corp.example:8080")
        );

        for direct in ["api.internal.example", "x.svc", "localhost", "127.0.0.1"] {
            let mut a = args(direct);
            a.conn.env_proxy = env.clone();
            let p = plan(&a).unwrap();
            assert!(p.proxy_for(&p.candidates[0]).is_none(), "{direct}");
        }

        let mut a = args("app.example.com");
        a.conn.env_proxy = env;
        a.conn.proxy = Some("http://u:p%40ss@10.1.2.3".into());
        let p = plan(&a).unwrap();
        let proxy = p.proxy_for(&p.candidates[0]).unwrap();
        assert_eq!(
            (proxy.port, proxy.credentials.clone()),
            (1080, Some(("u".into(), "p@ss".into())))
        );

        let mut a = args("app.example.com");
        a.conn.proxy = Some("https://u:secret@proxy:443".into());
        let error = plan(&a).unwrap_err().to_string();
        assert!(
            error.contains("only http://") && !error.contains("secret"),
            "{error}"
        );
    }

    #[test]
    fn deep_checks_and_instance_targeting_are_validated() {
        let mut a = args("app.example.com");
        a.sizes = vec![
            "64KiB".parse().unwrap(),
            "1KiB".parse().unwrap(),
            "1KiB".parse().unwrap(),
        ];
        a.conn.instance = Some("2d8b1ba5-4b6e:1".into());
        let p = plan(&a).unwrap();
        assert_eq!(p.deep.sizes, [1024, 65536]);
        assert!(
            p.headers
                .contains(&("X-Cf-App-Instance".into(), "2d8b1ba5-4b6e:1".into()))
        );
        a.conn.instance = Some("guid-without-index".into());
        assert!(matches!(
            plan(&a).unwrap_err(),
            PlanError::InvalidInstance(_)
        ));
        let mut a = args("app.example.com");
        a.count = Some(0);
        assert!(plan(&a).unwrap_err().to_string().contains("--count"));
        let mut a = args("app.example.com");
        a.hold = Some(Duration::ZERO);
        assert!(plan(&a).unwrap_err().to_string().contains("--hold"));
    }

    #[test]
    fn origin_defaults_to_the_https_route_and_can_be_dropped_or_replaced() {
        let mut a = args("app.example.com");
        a.conn.no_origin = true;
        assert_eq!(plan(&a).unwrap().origin, None);
        let mut a = args("app.example.com");
        a.conn.origin = Some("https://other.example.com".into());
        assert_eq!(
            plan(&a).unwrap().origin.as_deref(),
            Some("https://other.example.com")
        );
        a.conn.origin = Some("not an origin".into());
        assert!(matches!(plan(&a).unwrap_err(), PlanError::InvalidOrigin(_)));
    }
}
