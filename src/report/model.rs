//! The report's data: probe results with their diagnoses, the verdict, what reached the
//! app and the deep checks; built (and redacted) once, then rendered by any format.

use schemars::JsonSchema;
use serde::Serialize;
use wscheck_server::info::{Header, Info};

use super::redact::{head_line, header_value, text_with_query};
use crate::deep::DeepReport;
use crate::diagnose::{Code, Diagnosis, diagnose};
use crate::plan::{Plan, Scheme};
use crate::probe::ProbeResult;

/// Version of the JSON document's shape; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table, explanations and a verdict, for people.
    Table,
    /// One JSON document (a stable contract, see `SCHEMA_VERSION`).
    Json,
    /// A Markdown block to paste into a support ticket, secrets redacted.
    Markdown,
}

/// The width the table report is laid out for when nothing tells another: a terminal's
/// classic width, and what a report pasted into a ticket is read at.
pub const DEFAULT_WIDTH: usize = 80;

/// Terminal styling of the table.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Colour the result column (only on a terminal and without NO_COLOR).
    pub colour: bool,
    /// Print each handshake request and response.
    pub verbose: bool,
    /// Columns to fit in (`COLUMNS`, else the terminal's, else [`DEFAULT_WIDTH`]): the table
    /// drops columns and the explanations wrap so that the terminal never wraps a line.
    pub width: usize,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            colour: false,
            verbose: false,
            width: DEFAULT_WIDTH,
        }
    }
}

/// Now, UTC, RFC 3339 to the second: every report's `generated_at`.
pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    /// UTC, RFC 3339.
    pub generated_at: String,
    pub target: TargetView,
    /// The command line that made the report, redacted (`redact::command_line`); `None`
    /// when the report was built in-process without one (the demo, tests).
    pub command: Option<String>,
    /// The options that change the network path (`--connect-to`, `--resolve`, `--cacert`,
    /// a proxy and where it came from, `-k`), as options; never credentials.
    pub path_options: Vec<String>,
    pub verdict: Verdict,
    pub probes: Vec<ProbeView>,
    /// What reached the app, when the peer is the bundled server.
    pub app: Option<AppView>,
    /// Deep checks over the recommended URL (`--hold`, `--sizes`, `--count`, `--connections`).
    pub deep: Option<DeepReport>,
    pub notes: Vec<String>,
}

/// Which program wrote a report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Tool {
    /// This program.
    pub const THIS: Tool = Tool {
        name: "wscheck",
        version: env!("CARGO_PKG_VERSION"),
    };
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TargetView {
    pub input: String,
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Verdict {
    /// The URL asked about works end to end (exit code 0): TARGET itself for a URL, the
    /// canonical `wss://<route><path>` for a bare route.
    pub ok: bool,
    /// The URL the verdict answers for.
    pub asked_url: String,
    /// The canonical URL (`wss://<route>`, no port) works.
    pub healthy: bool,
    /// The URL to use: the one asked about when it works, else a working fallback; `null`
    /// when none works.
    pub recommended_url: Option<String>,
    /// `recommended_url` is a fallback, not the URL asked about.
    pub fallback: bool,
    /// `wss://<route><path>`: what a CF route should answer on.
    pub canonical_url: String,
    pub summary: String,
}

/// One probe as reported: what it saw, plus its diagnosis.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProbeView {
    #[serde(flatten)]
    pub result: ProbeResult,
    pub http_status: Option<u16>,
    pub diagnosis: Diagnosis,
}

impl ProbeView {
    fn from_result(result: ProbeResult) -> Self {
        Self {
            http_status: result.response.as_ref().map(|r| r.status),
            diagnosis: diagnose(&result),
            result,
        }
    }

    /// "ok", "ok (no echo)" or "FAIL".
    pub fn result_word(&self) -> &'static str {
        match self.diagnosis.code {
            Code::Ok | Code::OkProtocol | Code::SocketioPath => "ok",
            Code::OkUnverifiedEcho => "ok (no echo)",
            _ => "FAIL",
        }
    }
}

/// What the bundled server saw of the probe's upgrade request.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AppView {
    /// The URL whose `/.wscheck/ws` was read.
    pub via_url: String,
    pub application_name: Option<String>,
    pub instance_index: Option<String>,
    pub instance_guid: Option<String>,
    /// `$PORT` of the app and the port the connection arrived on.
    pub port: Option<String>,
    pub listen_port: u16,
    /// The TCP peer the app saw (the router, behind one).
    pub peer: String,
    /// Headers added on the way (X-Forwarded-*, X-Vcap-*, X-Cf-*, Via, ...).
    pub forwarded_headers: Vec<Header>,
    /// Who added them, as far as the headers tell.
    pub added_by: Vec<String>,
    pub info: Info,
}

const FORWARDING_PREFIXES: [&str; 10] = [
    "x-forwarded-",
    "forwarded",
    "x-vcap-",
    "x-cf-",
    "x-request-start",
    "via",
    "x-real-ip",
    "x-b3-",
    "traceparent",
    "x-correlation",
];

impl AppView {
    pub fn new(via_url: String, info: Info) -> Self {
        let forwarded_headers: Vec<Header> = info
            .request
            .headers
            .iter()
            .filter(|h| {
                let name = h.name.to_ascii_lowercase();
                FORWARDING_PREFIXES.iter().any(|p| name.starts_with(p))
            })
            .cloned()
            .collect();
        let has = |name: &str| info.request.header(name).is_some();
        let mut added_by = Vec::new();
        if has("x-vcap-request-id") || has("x-cf-applicationid") || has("x-cf-instanceindex") {
            added_by.push("Cloud Foundry gorouter (X-Vcap-Request-Id / X-CF-* headers)".to_owned());
        }
        if let Some(via) = info.request.header("via") {
            added_by.push(format!("a proxy that says Via: {via}"));
        }
        if let Some(chain) = info.request.header("x-forwarded-for") {
            let hops = chain.split(',').filter(|h| !h.trim().is_empty()).count();
            added_by.push(format!(
                "X-Forwarded-For lists {hops} address{}: {chain}",
                if hops == 1 { "" } else { "es" }
            ));
        }
        if forwarded_headers.is_empty() {
            added_by.push(
                "nothing: the request reached the app directly, with no proxy headers".to_owned(),
            );
        }
        Self {
            via_url,
            application_name: info.environment.application_name.clone(),
            instance_index: info.environment.instance_index.clone(),
            instance_guid: info.environment.instance_guid.clone(),
            port: info.environment.port.clone(),
            listen_port: info.listen_port,
            peer: info.peer.clone(),
            forwarded_headers,
            added_by,
            info,
        }
    }
}

impl Report {
    /// Assembles the report (diagnoses, verdict), redacted and ready to render.
    /// `choice` says which result was asked about and which to recommend (`check`).
    pub fn build(
        plan: &Plan,
        results: Vec<ProbeResult>,
        choice: Choice,
        app: Option<AppView>,
        deep: Option<DeepReport>,
        generated_at: String,
    ) -> Self {
        let probes: Vec<ProbeView> = results.into_iter().map(ProbeView::from_result).collect();
        let verdict = Verdict::new(plan, &probes, choice);
        let notes = notes(plan, &probes, choice.recommended.is_some());
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool::THIS,
            generated_at,
            target: TargetView {
                input: plan.target.input.clone(),
                host: plan.target.host.clone(),
                path: plan.target.path.clone(),
            },
            command: None,
            path_options: path_options(plan),
            verdict,
            probes,
            app,
            deep,
            notes,
        };
        report.redact();
        report
    }

    /// Redacts every place of the report that can carry user secrets.
    fn redact(&mut self) {
        let report = self;
        report.target.input = text_with_query(&report.target.input);
        report.target.path = text_with_query(&report.target.path);
        report.verdict.canonical_url = text_with_query(&report.verdict.canonical_url);
        report.verdict.asked_url = text_with_query(&report.verdict.asked_url);
        report.verdict.summary = text_with_query(&report.verdict.summary);
        if let Some(url) = &mut report.verdict.recommended_url {
            *url = text_with_query(url);
        }
        for probe in &mut report.probes {
            probe.result.candidate.url = text_with_query(&probe.result.candidate.url);
            probe.result.request = probe.result.request.iter().map(|l| head_line(l)).collect();
            if let Some(response) = &mut probe.result.response {
                for (name, value) in &mut response.headers {
                    *value = header_value(name, value);
                }
                if let Some(location) = response
                    .headers
                    .iter_mut()
                    .find(|(n, _)| n.eq_ignore_ascii_case("location"))
                {
                    location.1 = text_with_query(&location.1);
                }
            }
            probe.diagnosis.detail = text_with_query(&probe.diagnosis.detail);
        }
        if let Some(deep) = &mut report.deep {
            deep.url = text_with_query(&deep.url);
        }
        if let Some(app) = &mut report.app {
            app.via_url = text_with_query(&app.via_url);
            for header in app
                .info
                .request
                .headers
                .iter_mut()
                .chain(app.forwarded_headers.iter_mut())
            {
                header.value = header_value(&header.name, &header.value);
            }
            app.info.request.line = text_with_query(&app.info.request.line);
            app.info.request.target = text_with_query(&app.info.request.target);
        }
    }

    /// The distinct failure codes, each with the probes that showed it, in first-seen order.
    pub fn failures(&self) -> Vec<(Code, Vec<&ProbeView>)> {
        let mut groups: Vec<(Code, Vec<&ProbeView>)> = Vec::new();
        for probe in self.probes.iter().filter(|p| !p.diagnosis.code.is_ok()) {
            match groups.iter_mut().find(|(c, _)| *c == probe.diagnosis.code) {
                Some((_, list)) => list.push(probe),
                None => groups.push((probe.diagnosis.code, vec![probe])),
            }
        }
        groups
    }
}

/// Which probe the verdict answers for and which it recommends, as indexes.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub asked: usize,
    pub recommended: Option<usize>,
}

impl Verdict {
    /// The verdict on `probes`: whether the one asked about works, and what to use.
    fn new(plan: &Plan, probes: &[ProbeView], choice: Choice) -> Self {
        let asked = &probes[choice.asked];
        let recommended = choice.recommended.map(|i| &probes[i]);
        let canonical = probes.iter().find(|p| {
            p.result.candidate.scheme == Scheme::Wss && p.result.candidate.explicit_port.is_none()
        });
        let ok = asked.diagnosis.code.is_ok();
        let healthy = match canonical {
            Some(c) => c.diagnosis.code.is_ok(),
            None => ok,
        };
        let summary = match recommended {
            Some(r) if ok => works(r, canonical, probes),
            Some(fallback) => format!(
                "{} fails: {} ({}); fallback: {} works{}",
                asked.result.candidate.url,
                asked.diagnosis.summary,
                asked.diagnosis.code.as_str(),
                fallback.result.candidate.url,
                plaintext_warning(fallback)
            ),
            None if probes.len() == 1 => format!(
                "{} fails: {} ({})",
                asked.result.candidate.url,
                asked.diagnosis.summary,
                asked.diagnosis.code.as_str()
            ),
            None => format!(
                "no URL works; start with {}: {} ({})",
                asked.result.candidate.url,
                asked.diagnosis.summary,
                asked.diagnosis.code.as_str()
            ),
        };
        Self {
            ok,
            asked_url: asked.result.candidate.url.clone(),
            healthy,
            recommended_url: recommended.map(|r| r.result.candidate.url.clone()),
            fallback: recommended.is_some() && !ok,
            canonical_url: format!("wss://{}{}", plan.target.host, plan.target.path),
            summary,
        }
    }
}

/// The summary when the URL asked about works: how, and what else the user should know
/// (a canonical URL that fails, or that plaintext was asked for while TLS works too).
fn works(asked: &ProbeView, canonical: Option<&ProbeView>, probes: &[ProbeView]) -> String {
    let how = match &asked.result.echo {
        // A protocol peer: its opening, not an echo (the detail says how it went).
        _ if matches!(asked.diagnosis.code, Code::OkProtocol | Code::SocketioPath) => {
            asked.diagnosis.detail.clone()
        }
        Some(e) if e.verified => format!(
            "WebSocket opened, echo verified in {:.1} ms",
            e.rtt_ms.unwrap_or_default()
        ),
        _ => "WebSocket opened; echo not verified".to_owned(),
    };
    let url = &asked.result.candidate.url;
    let is_canonical = canonical.is_some_and(|c| std::ptr::eq(c, asked));
    if is_canonical {
        return format!("use {url} — the route is healthy ({how})");
    }
    let mut summary = format!("use {url} — it works{} ({how})", plaintext_warning(asked));
    if let Some(c) = canonical.filter(|c| !c.diagnosis.code.is_ok()) {
        summary.push_str(&format!(
            "; but the canonical {} fails ({}): on Cloud Foundry it should work",
            c.result.candidate.url,
            c.diagnosis.code.as_str()
        ));
    } else if asked.result.candidate.scheme == Scheme::Ws
        && let Some(tls) = probes
            .iter()
            .find(|p| p.result.candidate.scheme == Scheme::Wss && p.diagnosis.code.is_ok())
    {
        summary.push_str(&format!(
            "; {} works too, encrypted: prefer it",
            tls.result.candidate.url
        ));
    }
    summary
}

/// `, but unencrypted (plaintext ws://)` for a ws:// URL: never recommended silently.
fn plaintext_warning(probe: &ProbeView) -> &'static str {
    if probe.result.candidate.scheme == Scheme::Ws && !probe.result.candidate.is_internal() {
        ", but unencrypted (plaintext ws://)"
    } else {
        ""
    }
}

/// Notes on how the run went: credentials held back, deep checks skipped, `-k`.
fn notes(plan: &Plan, probes: &[ProbeView], any_works: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if probes.iter().any(|p| p.result.credentials_held_back) {
        notes.push(
            "Credentials (Authorization, Cookie, user:pass@) were held back on plaintext ws:// URLs; \
             --allow-plaintext-credentials sends them anyway."
                .to_owned(),
        );
    }
    if plan.deep.any() && !any_works {
        notes.push("Deep checks were skipped: no URL works.".to_owned());
    }
    if plan.insecure {
        notes.push(
            "TLS certificates were not verified (-k); see each probe's tls.verification_error."
                .to_owned(),
        );
    }
    notes
}

/// The options of `plan` that change where and how connections go, as a reader of a
/// ticket would type them; a proxy says where it came from and whether this route uses it.
fn path_options(plan: &Plan) -> Vec<String> {
    let mut options: Vec<String> = plan
        .connect_to
        .iter()
        .map(|rule| {
            let host = |h: &Option<String>| h.as_deref().map(bracketed).unwrap_or_default();
            let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
            format!(
                "--connect-to {}:{}:{}:{}",
                host(&rule.from_host),
                port(rule.from_port),
                host(&rule.to_host),
                port(rule.to_port)
            )
        })
        .collect();
    for rule in &plan.resolve {
        let addrs: Vec<String> = rule
            .addrs
            .iter()
            .map(|a| bracketed(&a.to_string()))
            .collect();
        options.push(format!(
            "--resolve {}:{}:{}",
            bracketed(&rule.host),
            rule.port,
            addrs.join(",")
        ));
    }
    if let Some(cacert) = &plan.cacert {
        options.push(format!("--cacert {}", cacert.display()));
    }
    options.extend(proxy_options(plan));
    if plan.insecure {
        options.push("-k".to_owned());
    }
    options
}

/// `-x host:port (from https_proxy, with credentials; wss:// only)`: one entry when ws://
/// and wss:// share the proxy (`-x`), else one each; the bypass list when there is one.
fn proxy_options(plan: &Plan) -> Vec<String> {
    let (wss, ws) = (plan.proxies.wss.as_ref(), plan.proxies.ws.as_ref());
    let shared = wss.is_some() && wss == ws;
    let mut options = Vec::new();
    for (scheme, proxy) in [(Scheme::Wss, wss), (Scheme::Ws, ws.filter(|_| !shared))] {
        let Some(proxy) = proxy else { continue };
        let mut about = Vec::new();
        if proxy.source != "--proxy" {
            about.push(format!("from {}", proxy.source));
        }
        if proxy.credentials.is_some() {
            about.push("with credentials".to_owned());
        }
        if !shared {
            about.push(format!("{}:// only", scheme.as_str()));
        }
        let used = plan
            .candidates
            .iter()
            .any(|c| (shared || c.scheme == scheme) && plan.proxy_for(c).is_some());
        if !used {
            about.push("not used: the host is loopback or in no_proxy".to_owned());
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        options.push(format!("-x {}{about}", proxy.display()));
    }
    if (wss.is_some() || ws.is_some()) && !plan.proxies.no_proxy.is_empty() {
        options.push(format!(
            "--noproxy {} (or no_proxy)",
            plan.proxies.no_proxy.join(",")
        ));
    }
    options
}

/// An IPv6 address in brackets, as the options take it; anything else as it is.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Human-friendly duration of milliseconds.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}
