//! The report's data: probe results with their diagnoses, the verdict, what reached the
//! app and the deep checks; built (and redacted) once, then rendered by any format.

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

/// Terminal styling of the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Colour the result column (only on a terminal and without NO_COLOR).
    pub colour: bool,
    /// Print each handshake request and response.
    pub verbose: bool,
}

/// Now, UTC, RFC 3339 to the second: every report's `generated_at`.
pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}

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
    pub deep: Option<DeepReport>,
    pub notes: Vec<String>,
}

/// Which program wrote a report.
#[derive(Debug, Clone, Serialize)]
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
    /// `recommended` indexes the result to recommend (`check::recommended`).
    pub fn build(
        plan: &Plan,
        results: Vec<ProbeResult>,
        recommended: Option<usize>,
        app: Option<AppView>,
        deep: Option<DeepReport>,
        generated_at: String,
    ) -> Self {
        let probes: Vec<ProbeView> = results.into_iter().map(ProbeView::from_result).collect();
        let verdict = Verdict::new(plan, &probes, recommended.map(|i| &probes[i]));
        let notes = notes(plan, &probes, verdict.ok);
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool::THIS,
            generated_at,
            target: TargetView {
                input: plan.target.input.clone(),
                host: plan.target.host.clone(),
                path: plan.target.path.clone(),
            },
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

impl Verdict {
    /// The verdict on `probes`, `recommended` being the one to use.
    fn new(plan: &Plan, probes: &[ProbeView], recommended: Option<&ProbeView>) -> Self {
        let canonical_url = format!("wss://{}{}", plan.target.host, plan.target.path);
        let canonical = probes.iter().find(|p| {
            p.result.candidate.scheme == Scheme::Wss && p.result.candidate.explicit_port.is_none()
        });
        let healthy = match canonical {
            Some(c) => c.diagnosis.code.is_ok(),
            None => recommended.is_some(),
        };
        let summary = match (recommended, canonical) {
            (Some(r), _) if healthy => format!(
                "use {} — the route is healthy ({})",
                r.result.candidate.url,
                match &r.result.echo {
                    Some(e) if e.verified => format!(
                        "WebSocket opened, echo verified in {:.1} ms",
                        e.rtt_ms.unwrap_or_default()
                    ),
                    _ => "WebSocket opened; echo not verified".to_owned(),
                }
            ),
            (Some(r), Some(c)) => format!(
                "use {} — but the canonical {} fails ({}): on Cloud Foundry it should work",
                r.result.candidate.url,
                c.result.candidate.url,
                c.diagnosis.code.as_str()
            ),
            (Some(r), None) => format!("use {}", r.result.candidate.url),
            (None, Some(c)) => format!(
                "no URL works; start with {}: {} ({})",
                c.result.candidate.url,
                c.diagnosis.summary,
                c.diagnosis.code.as_str()
            ),
            (None, None) => "no URL works".to_owned(),
        };
        Self {
            ok: recommended.is_some(),
            healthy,
            recommended_url: recommended.map(|r| r.result.candidate.url.clone()),
            canonical_url,
            summary,
        }
    }
}

/// Notes on how the run went: credentials held back, deep checks skipped, `-k`.
fn notes(plan: &Plan, probes: &[ProbeView], ok: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if probes.iter().any(|p| p.result.credentials_held_back) {
        notes.push(
            "Credentials (Authorization, Cookie, user:pass@) were held back on plaintext ws:// URLs; \
             --allow-plaintext-credentials sends them anyway."
                .to_owned(),
        );
    }
    if plan.deep.any() && !ok {
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

/// Human-friendly duration of milliseconds.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}
