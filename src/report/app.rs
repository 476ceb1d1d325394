//! The `wscheck app` report as text: the manifest read, the process, CF's health check, the
//! WebSocket on $PORT and through the router (that route's full report embedded), shutdown,
//! memory, findings and the verdict (JSON goes through the one JSON writer).

use std::io::Write;

use super::model::{Format, Style};
use super::table::put;
use super::{json, markdown, table};
use crate::preflight::AppReport;
use crate::preflight::health::describe;

/// Writes an app report in `format`.
pub fn render(
    report: &AppReport,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => json::write(report, out),
        Format::Table => render_text(report, style, out),
        Format::Markdown => render_markdown(report, out),
    }
}

/// The report's lines, label and text.
fn lines(report: &AppReport) -> Vec<(&'static str, String)> {
    let h = &report.health_check;
    let mut lines = vec![
        ("manifest", manifest_line(report)),
        ("process", process_line(report)),
        (
            "health check",
            format!(
                "{} after {:.1} s: {}",
                if h.ok { "passed" } else { "FAILED" },
                h.after_ms / 1000.0,
                h.detail
            ),
        ),
    ];
    let ws = &report.websocket;
    if let Some(probe) = ws.direct.as_ref().and_then(|d| d.probes.first()) {
        // On $PORT the app speaks plain HTTP by design: say what happened, not the verdict
        // on a route (which would warn about plaintext).
        let d = &probe.diagnosis;
        let text = match d.detail.is_empty() {
            true => format!("{} — {}", d.code.as_str(), d.summary),
            false => format!("{} — {} ({})", d.code.as_str(), d.summary, d.detail),
        };
        lines.push(("on $PORT", text));
    }
    if let Some(other) = ws.other_port {
        lines.push(("other port", format!("the upgrade works on {other}")));
    }
    let s = &report.shutdown;
    lines.push((
        "shutdown",
        match s.exited_after_ms {
            Some(ms) => format!("SIGTERM, exited after {:.1} s", ms / 1000.0),
            None => "SIGTERM, still running after 10 s: killed".to_owned(),
        },
    ));
    let mem = &report.memory;
    if let Some(peak) = mem.peak_rss_mib {
        let limit = mem
            .limit_mib
            .map(|l| format!(" of {l} MiB"))
            .unwrap_or_default();
        lines.push(("memory", format!("peak {peak:.1} MiB{limit}")));
    }
    lines
}

fn manifest_line(report: &AppReport) -> String {
    let m = &report.manifest;
    format!(
        "{} · command `{}` (from {}) · health check {} · timeout {} s{}{}",
        m.file
            .as_ref()
            .map_or_else(|| "none".to_owned(), |f| f.display().to_string()),
        m.command,
        m.command_source,
        report.health_check.kind.as_str(),
        m.timeout_s,
        m.memory_mib
            .map(|mb| format!(" · memory {mb} MiB"))
            .unwrap_or_default(),
        m.routes
            .first()
            .map(|r| format!(" · route {r}"))
            .unwrap_or_default(),
    )
}

fn process_line(report: &AppReport) -> String {
    let p = &report.process;
    let bound = match p.bound.is_empty() {
        true => "nothing".to_owned(),
        false => p
            .bound
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let exit = p
        .exit
        .map(|e| format!(" · exited: {}", describe(e)))
        .unwrap_or_default();
    format!(
        "pid {} · $PORT {} · listened on {bound}{exit}",
        p.pid, p.port
    )
}

fn verdict(report: &AppReport) -> String {
    if report.ok {
        format!(
            "ok — {} would pass Cloud Foundry's health check, and its WebSocket works through the router",
            report.manifest.name
        )
    } else {
        format!(
            "FAIL — {} would not work on Cloud Foundry as it is: see the findings",
            report.manifest.name
        )
    }
}

fn render_text(report: &AppReport, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let width = style.width;
    let title = format!(
        "wscheck app · {} · {} · {}",
        report.manifest.name,
        report.manifest.dir.display(),
        report.generated_at
    );
    put(out, "", &title, 2, width)?;
    for (label, value) in lines(report) {
        put(out, &format!("  {label:<13}"), &value, 15, width)?;
    }
    if let Some(route) = &report.websocket.via_router {
        writeln!(out)?;
        let heading = format!(
            "Through a local gorouter stand-in (what `wscheck {}` shows after `cf push`):",
            route.target.input
        );
        put(out, "", &heading, 2, width)?;
        writeln!(out)?;
        table::render(route, style, out)?;
    }
    if !report.findings.is_empty() {
        writeln!(out, "\nFindings:")?;
        for f in &report.findings {
            put(
                out,
                "  ",
                &format!("{} — {}", f.code.as_str(), f.summary),
                4,
                width,
            )?;
            put(out, "    detail: ", &f.detail, 12, width)?;
            put(out, "    fix:    ", f.fix, 12, width)?;
        }
    }
    if report.process.exit.is_some() && !report.process.output_tail.is_empty() {
        writeln!(out, "\nThe app's last lines:")?;
        for line in &report.process.output_tail {
            writeln!(out, "  | {line}")?;
        }
    }
    writeln!(out)?;
    put(out, "Verdict: ", &verdict(report), 9, width)
}

fn render_markdown(report: &AppReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "### App check: `{}`\n", report.manifest.name)?;
    writeln!(out, "- **Tool:** wscheck {}", report.tool.version)?;
    writeln!(out, "- **Time (UTC):** {}", report.generated_at)?;
    for (label, value) in lines(report) {
        writeln!(out, "- **{label}:** {}", value.replace('|', "\\|"))?;
    }
    writeln!(
        out,
        "- **Verdict:** {} {}",
        if report.ok { "✅" } else { "❌" },
        verdict(report)
    )?;
    if !report.findings.is_empty() {
        writeln!(out, "\n#### Findings\n")?;
        for f in &report.findings {
            writeln!(out, "- **`{}`** — {}", f.code.as_str(), f.summary)?;
            writeln!(out, "  - detail: {}", f.detail)?;
            writeln!(out, "  - fix: {}", f.fix)?;
        }
    }
    if report.process.exit.is_some() && !report.process.output_tail.is_empty() {
        writeln!(out, "\n#### The app's last lines\n\n```text")?;
        for line in &report.process.output_tail {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```")?;
    }
    if let Some(route) = &report.websocket.via_router {
        writeln!(out, "\n#### Through a local gorouter stand-in\n")?;
        markdown::render(route, out)?;
    }
    Ok(())
}
