//! The report: probe results plus diagnoses, the verdict and what reached the app, with
//! secrets redacted, rendered as a table, JSON or Markdown into any `io::Write`.

pub mod json;
pub mod markdown;
pub mod redact;
pub mod table;

use serde::Serialize;
use wscheck_server::info::{Header, Info};

use crate::cli::Format;
use crate::diagnose::{Code, Diagnosis, diagnose};
use crate::plan::{Plan, Scheme};
use crate::probe::ProbeResult;

/// Version of the JSON document's shape; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    /// UTC, RFC 3339.
    pub generated_at: String,
    pub target: TargetView,
    pub verdict: Verdict,
    pub probes: Vec<ProbeView>,
    /// What reached the app, when the peer is the bundled server.
    pub app: Option<AppView>,
    /// Deep checks over the recommended URL (`--hold`, `--sizes`, `--count`, `--connections`).
    pub deep: Option<crate::deep::DeepReport>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub input: String,
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The recommended URL works end to end.
    pub ok: bool,
    /// The canonical URL (`wss://<route>`, no port) works.
    pub healthy: bool,
    /// The URL to use; `null` when none works.
    pub recommended_url: Option<String>,
    /// `wss://<route><path>`: what a CF route should answer on.
    pub canonical_url: String,
    pub summary: String,
}

/// One probe as reported: what it saw, plus its diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    #[serde(flatten)]
    pub result: ProbeResult,
    pub http_status: Option<u16>,
    pub diagnosis: Diagnosis,
}

impl std::ops::Deref for ProbeView {
    type Target = ProbeResult;
    fn deref(&self) -> &ProbeResult {
        &self.result
    }
}

impl std::ops::DerefMut for ProbeView {
    fn deref_mut(&mut self) -> &mut ProbeResult {
        &mut self.result
    }
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
            Code::Ok => "ok",
            Code::OkUnverifiedEcho => "ok (no echo)",
            _ => "FAIL",
        }
    }
}

/// What the bundled server saw of the probe's upgrade request.
#[derive(Debug, Clone, Serialize)]
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
    pub fn build(
        plan: &Plan,
        results: Vec<ProbeResult>,
        app: Option<AppView>,
        deep: Option<crate::deep::DeepReport>,
        generated_at: String,
    ) -> Self {
        let probes: Vec<ProbeView> = results.into_iter().map(ProbeView::from_result).collect();
        let canonical_url = format!("wss://{}{}", plan.target.host, plan.target.path);
        let recommended = probes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.diagnosis.code.is_ok())
            .min_by_key(|(i, p)| (p.candidate.preference(), *i))
            .map(|(_, p)| p);
        let canonical = probes
            .iter()
            .find(|p| p.candidate.scheme == Scheme::Wss && p.candidate.explicit_port.is_none());
        let healthy = match canonical {
            Some(c) => c.diagnosis.code.is_ok(),
            None => recommended.is_some(),
        };
        let summary = match (recommended, canonical) {
            (Some(r), _) if healthy => format!(
                "use {} — the route is healthy ({})",
                r.candidate.url,
                match &r.echo {
                    Some(e) if e.verified => format!(
                        "WebSocket opened, echo verified in {:.1} ms",
                        e.rtt_ms.unwrap_or_default()
                    ),
                    _ => "WebSocket opened; echo not verified".to_owned(),
                }
            ),
            (Some(r), Some(c)) => format!(
                "use {} — but the canonical {} fails ({}): on Cloud Foundry it should work",
                r.candidate.url,
                c.candidate.url,
                c.diagnosis.code.as_str()
            ),
            (Some(r), None) => format!("use {}", r.candidate.url),
            (None, Some(c)) => format!(
                "no URL works; start with {}: {} ({})",
                c.candidate.url,
                c.diagnosis.summary,
                c.diagnosis.code.as_str()
            ),
            (None, None) => "no URL works".to_owned(),
        };
        let mut notes = Vec::new();
        if probes.iter().any(|p| p.credentials_held_back) {
            notes.push(
                "Credentials (Authorization, Cookie, user:pass@) were held back on plaintext ws:// URLs; \
                 --allow-plaintext-credentials sends them anyway."
                    .to_owned(),
            );
        }
        if plan.deep.any() && recommended.is_none() {
            notes.push("Deep checks were skipped: no URL works.".to_owned());
        }
        if plan.insecure {
            notes.push(
                "TLS certificates were not verified (-k); see each probe's tls.verification_error."
                    .to_owned(),
            );
        }
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "wscheck",
                version: env!("CARGO_PKG_VERSION"),
            },
            generated_at,
            target: TargetView {
                input: plan.target.input.clone(),
                host: plan.target.host.clone(),
                path: plan.target.path.clone(),
            },
            verdict: Verdict {
                ok: recommended.is_some(),
                healthy,
                recommended_url: recommended.map(|r| r.candidate.url.clone()),
                canonical_url,
                summary,
            },
            probes,
            app,
            deep,
            notes,
        };
        redact::report(&mut report);
        report
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

/// Human-friendly duration of milliseconds.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Writes `report` in `format`.
pub fn render(
    report: &Report,
    format: Format,
    style: &table::Style,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => table::render(report, style, out),
        Format::Json => json::render(report, out),
        Format::Markdown => markdown::render(report, out),
    }
}
