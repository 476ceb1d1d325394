//! The plan of a check: the target, the ws/wss × port matrix and every probe setting, as
//! pure types, plus the parsers of their textual forms (targets, headers, `--connect-to`,
//! `--resolve`, proxies). No clap, no output format, no I/O: each rule is unit-tested.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::Usage;
use crate::report::redact::without_userinfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
    /// Whether the URL's host is an internal route (`*.apps.internal`).
    pub fn is_internal(&self) -> bool {
        is_internal_host(self.host_header.split(':').next().unwrap_or_default())
    }

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
    pub wss: Option<EnvValue>,
    pub ws: Option<EnvValue>,
    pub no_proxy: Option<EnvValue>,
}

/// An environment variable's value, with its name (reports say where a proxy came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvValue {
    pub name: &'static str,
    pub value: String,
}

impl EnvProxy {
    /// wss: `wss_proxy`, `https_proxy`, `HTTPS_PROXY`; ws: `ws_proxy`, `http_proxy`,
    /// `HTTP_PROXY`; bypass list: `no_proxy`, `NO_PROXY`. First non-empty wins.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|name| {
                let value = lookup(name).filter(|v| !v.trim().is_empty())?;
                Some(EnvValue { name, value })
            })
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
    /// Where it came from (`--proxy`, or the variable: `https_proxy`, ...), for reports.
    pub source: String,
}

impl Proxy {
    /// Where a connection through this proxy dials: the proxy itself.
    pub fn dial_route(&self) -> Route {
        Route {
            host: self.host.clone(),
            port: self.port,
            pinned: self.host.parse().ok().map(|ip| vec![ip]),
            redirected: false,
        }
    }

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
    /// Engine.IO long-polling sessions across instances (`--polling`).
    pub polling: bool,
}

impl Deep {
    pub fn any(&self) -> bool {
        self.hold.is_some()
            || !self.sizes.is_empty()
            || self.count.is_some()
            || self.connections.is_some()
            || self.polling
    }
}

/// Everything a check needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub candidates: Vec<Candidate>,
    /// User headers, in order.
    pub headers: Vec<(String, String)>,
    pub origin: Origin,
    pub subprotocols: Vec<String>,
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    pub resolve: Vec<Resolve>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub message: Option<String>,
    /// Run the echo stage (`--no-echo` turns it off).
    pub echo: bool,
    /// What to speak after the upgrade (`--protocol`).
    pub protocol: crate::probe::protocol::ProtocolChoice,
    /// Headers for STOMP's CONNECT (`--stomp-header`), in order.
    pub stomp_headers: Vec<(String, String)>,
    pub allow_plaintext_credentials: bool,
    pub deep: Deep,
    pub proxies: Proxies,
}

/// The Origin header a probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// What a browser on the route's own page sends: `http://<host>` for a `ws://`
    /// candidate, `https://<host>` for a `wss://` one; with the port when the URL names
    /// one that is not the scheme's own (a page served from `localhost:5000` sends it, and
    /// same-origin checks such as python-socketio's compare it with Host).
    Default,
    /// `--origin`, sent on every candidate.
    Given(String),
    /// `--no-origin`: none.
    None,
}

/// The proxies to tunnel through, by scheme, and the hosts that bypass them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    pub wss: Option<Proxy>,
    pub ws: Option<Proxy>,
    /// Hosts that bypass the proxy (`*` for all; `.example.com` or `example.com` for a domain).
    pub no_proxy: Vec<String>,
}

/// Builds a check plan from a command line, as the binary parses it (clap's defaults apply):
/// `cli::to_plan::plan_from_argv`, handed down by `app` to the modes that probe on their own
/// (demo, app), so that they build options as users do without depending on the CLI.
pub type Planner = fn(&[&str]) -> Result<Plan, crate::error::Error>;

/// Headers that carry user credentials: held back over plaintext, redacted in reports.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl Plan {
    /// The Origin header for `candidate`, if any (see [`Origin`]).
    pub fn origin_for(&self, candidate: &Candidate) -> Option<String> {
        match &self.origin {
            Origin::Default => {
                let scheme = if candidate.scheme.is_tls() {
                    "https"
                } else {
                    "http"
                };
                let named_port = matches!(self.target.given, Some((_, Some(_))));
                let host = if named_port {
                    &candidate.host_header
                } else {
                    &self.target.host
                };
                Some(format!("{scheme}://{host}"))
            }
            Origin::Given(origin) => Some(origin.clone()),
            Origin::None => None,
        }
    }

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
            Scheme::Wss => self.proxies.wss.as_ref(),
            Scheme::Ws => self.proxies.ws.as_ref(),
        }?;
        let host = self.target.bare_host().to_ascii_lowercase();
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let bypassed = self.proxies.no_proxy.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .to_ascii_lowercase();
            entry == "*" || host == entry || host.ends_with(&format!(".{entry}"))
        });
        (!loopback && !bypassed).then_some(proxy)
    }

    /// The candidate the user asked about, which the exit code answers for: TARGET itself
    /// for a URL; for a bare route the canonical `wss://<route>` (or, when `--schemes` or
    /// `--ports` leave it out, the first URL of the matrix).
    pub fn asked(&self) -> usize {
        if self.target.given.is_some() {
            return 0;
        }
        self.candidates
            .iter()
            .position(|c| c.scheme == Scheme::Wss && c.explicit_port.is_none())
            .unwrap_or(0)
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

/// The port apps listen on in Cloud Foundry (`$PORT`): internal routes are dialled there.
pub const APP_PORT: u16 = 8080;

/// A host of Cloud Foundry's internal domain (`<app>.apps.internal`): container-to-container
/// traffic, on the app's port, allowed by network policies, resolvable only inside.
pub fn is_internal_host(host: &str) -> bool {
    host.trim_end_matches('.')
        .to_ascii_lowercase()
        .ends_with(".apps.internal")
}

/// The default matrix: what the article and CF users try.
pub const DEFAULT_MATRIX: [(Scheme, Option<u16>); 8] = [
    (Scheme::Wss, None),
    (Scheme::Wss, Some(443)),
    (Scheme::Ws, None),
    (Scheme::Ws, Some(80)),
    (Scheme::Wss, Some(8080)),
    (Scheme::Ws, Some(8080)),
    (Scheme::Wss, Some(4443)),
    (Scheme::Ws, Some(4443)),
];

/// Parses `http://[user:pass@]host[:port]` (port 1080 when absent, as curl does).
pub fn parse_proxy(raw: &str, source: &str) -> Result<Proxy, Usage> {
    let bad = |reason: &str| Usage::InvalidProxy {
        value: without_userinfo(raw),
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

fn invalid(input: &str, reason: impl Into<String>) -> Usage {
    Usage::InvalidTarget {
        input: without_userinfo(input),
        reason: reason.into(),
    }
}

/// Parses a bare route or a ws/wss/http/https URL.
pub fn parse_target(input: &str) -> Result<Target, Usage> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid(input, "it is empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(input, "it contains spaces or control characters"));
    }
    let (scheme, rest) = split_scheme(input, trimmed)?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(input, "no host"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let explicit_port = explicit_port(input, authority)?;
    let url_scheme = scheme.unwrap_or(Scheme::Wss);
    let url = url::Url::parse(&format!("{}://{rest}", url_scheme.as_str()))
        .map_err(|e| invalid(input, e.to_string()))?;
    let host = url_host(input, &url)?;
    // A password alone (`:secret@`) is a credential too: sent, and never shown.
    let userinfo = (!url.username().is_empty() || url.password().is_some()).then(|| {
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

/// The scheme of a URL (http and https stand for ws and wss) and the rest; none for a
/// bare route.
fn split_scheme<'a>(input: &str, trimmed: &'a str) -> Result<(Option<Scheme>, &'a str), Usage> {
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Ok((None, trimmed));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Scheme::Ws,
        "wss" | "https" => Scheme::Wss,
        other => {
            return Err(invalid(
                input,
                format!("unsupported scheme '{other}' (use ws, wss, http, https, or a bare route)"),
            ));
        }
    };
    Ok((Some(scheme), rest))
}

/// The port written in the authority, if any. The url crate drops a default port
/// (wss://h:443 -> wss://h); whether the user wrote one matters here, so read it ourselves.
fn explicit_port(input: &str, authority: &str) -> Result<Option<u16>, Usage> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    match host_port.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':') && (!host.starts_with('[') || host.ends_with(']')) =>
        {
            let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                invalid(
                    input,
                    format!("port '{port}' is not a number from 1 to 65535"),
                )
            })?;
            Ok(Some(port))
        }
        _ => Ok(None),
    }
}

/// The host as it goes into URLs and Host headers: punycode for IDNs, `[..]` for IPv6.
fn url_host(input: &str, url: &url::Url) -> Result<String, Usage> {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            if d.is_empty() {
                return Err(invalid(input, "no host"));
            }
            if d.split('.').any(str::is_empty) && !d.ends_with('.') {
                return Err(invalid(input, format!("host '{d}' has an empty label")));
            }
            check_dns_lengths(input, d)?;
            Ok(d.to_owned())
        }
        Some(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Ok(format!("[{ip}]")),
        None => Err(invalid(input, "no host")),
    }
}

/// DNS limits (RFC 1035): a name of at most 253 octets, labels of at most 63. Checked on
/// the name as it goes on the wire (punycode for international names).
fn check_dns_lengths(input: &str, host: &str) -> Result<(), Usage> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err(invalid(
            input,
            format!(
                "the host name has {} characters; DNS allows at most 253",
                name.len()
            ),
        ));
    }
    if let Some(label) = name.split('.').find(|l| l.len() > 63) {
        let shown: String = label.chars().take(20).collect();
        return Err(invalid(
            input,
            format!(
                "the label '{shown}…' has {} characters; DNS allows at most 63",
                label.len()
            ),
        ));
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub fn parse_port_item(item: &str) -> Result<Option<u16>, Usage> {
    let item = item.trim();
    if item.eq_ignore_ascii_case("default") || item.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    item.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(Some)
        .ok_or_else(|| Usage::InvalidPort(item.to_owned()))
}

pub fn parse_header(raw: &str) -> Result<(String, String), Usage> {
    // The message names the header, never its value: it may be a credential.
    let shown = || {
        let name = raw.split([':', ' ']).next().unwrap_or_default();
        Usage::InvalidHeader(format!("{name}: …"))
    };
    let (name, value) = raw.split_once(':').ok_or_else(shown)?;
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_name || value.contains(['\r', '\n']) {
        return Err(shown());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// A `--stomp-header NAME:VALUE`: a STOMP header line (no colon in the name, no line
/// break or NUL anywhere). The message names the header, never its value.
pub fn parse_stomp_header(raw: &str) -> Result<(String, String), Usage> {
    let shown = || {
        let name = raw.split(':').next().unwrap_or_default();
        Usage::InvalidStompHeader(format!("{name}:…"))
    };
    let (name, value) = raw.split_once(':').ok_or_else(shown)?;
    let bad = |s: &str| s.contains(['\r', '\n', '\0']);
    if name.is_empty() || bad(name) || bad(value) {
        return Err(shown());
    }
    Ok((name.to_owned(), value.to_owned()))
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

pub fn parse_connect_to(raw: &str) -> Result<ConnectTo, Usage> {
    let bad = || Usage::InvalidConnectTo(raw.to_owned());
    let parts = split_colons(raw);
    let [h1, p1, h2, p2] = parts[..] else {
        return Err(bad());
    };
    let port = |p: &str| -> Result<Option<u16>, Usage> {
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

pub fn parse_resolve(raw: &str) -> Result<Resolve, Usage> {
    let bad = || Usage::InvalidResolve(raw.to_owned());
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
