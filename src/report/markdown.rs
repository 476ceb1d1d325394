//! `--format markdown`: a block to paste into a support ticket (version, UTC time, target,
//! table, explanations); everything already redacted by `Report::build`.

use std::io::Write;

use super::model::{AppView, Report, format_ms};

/// Escapes what would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn render(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "### WebSocket check: `{}`\n", report.target.input)?;
    writeln!(out, "- **Tool:** wscheck {}", report.tool.version)?;
    writeln!(out, "- **Time (UTC):** {}", report.generated_at)?;
    writeln!(
        out,
        "- **Target:** `{}` (host `{}`, path `{}`)",
        report.target.input, report.target.host, report.target.path
    )?;
    writeln!(
        out,
        "- **Verdict:** {} {}\n",
        if report.verdict.ok { "✅" } else { "❌" },
        cell(&report.verdict.summary)
    )?;
    writeln!(out, "| URL | Result | Stage | HTTP | Time | Code |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for probe in &report.probes {
        writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | `{}` |",
            cell(&probe.result.candidate.url),
            probe.result_word(),
            probe.result.stage.as_str(),
            probe
                .http_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            format_ms(probe.result.timings.total),
            probe.diagnosis.code.as_str()
        )?;
    }
    render_why(report, out)?;
    if let Some(app) = &report.app {
        render_app(app, out)?;
    }
    if let Some(deep) = &report.deep {
        writeln!(out, "\n#### Deep checks (over `{}`)\n\n```text", deep.url)?;
        let mut text = Vec::new();
        super::table::render_deep(deep, &mut text)?;
        out.write_all(&text)?;
        writeln!(out, "```")?;
    }
    for note in &report.notes {
        writeln!(out, "\n> {note}")?;
    }
    render_handshakes(report, out)
}

/// Each distinct failure once, as a list.
fn render_why(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let failures = report.failures();
    if !failures.is_empty() {
        writeln!(out, "\n#### Why\n")?;
        for (code, probes) in &failures {
            let first = probes[0];
            let urls: Vec<String> = probes
                .iter()
                .map(|p| format!("`{}`", p.result.candidate.url))
                .collect();
            writeln!(out, "- **`{}`** — {}", code.as_str(), code.summary())?;
            writeln!(out, "  - seen at: {}", urls.join(", "))?;
            writeln!(
                out,
                "  - answered by: {}",
                first.diagnosis.answered_by.describe()
            )?;
            if !first.diagnosis.detail.is_empty() {
                writeln!(out, "  - detail: {}", cell(&first.diagnosis.detail))?;
            }
            writeln!(out, "  - fix: {}", code.fix())?;
        }
    }
    Ok(())
}

fn render_app(app: &AppView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\n#### What reached the app (via `{}`)\n", app.via_url)?;
    writeln!(
        out,
        "- app `{}`, instance `{}`, `$PORT` `{}`, connection from `{}`",
        app.application_name.as_deref().unwrap_or("-"),
        app.instance_index.as_deref().unwrap_or("-"),
        app.port.as_deref().unwrap_or("-"),
        app.peer
    )?;
    for header in &app.forwarded_headers {
        writeln!(out, "- `{}: {}`", header.name, header.value)?;
    }
    for who in &app.added_by {
        writeln!(out, "- added by: {who}")?;
    }
    Ok(())
}

/// The handshakes, folded away.
fn render_handshakes(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let with_requests: Vec<_> = report
        .probes
        .iter()
        .filter(|p| !p.result.request.is_empty())
        .collect();
    if !with_requests.is_empty() {
        writeln!(out, "\n<details><summary>Handshakes</summary>\n")?;
        for probe in with_requests {
            writeln!(out, "`{}`\n\n```http", probe.result.candidate.url)?;
            for line in &probe.result.request {
                writeln!(out, "{line}")?;
            }
            if let Some(response) = &probe.result.response {
                writeln!(out, "\nHTTP/1.1 {} {}", response.status, response.reason)?;
                for (name, value) in &response.headers {
                    writeln!(out, "{name}: {value}")?;
                }
            }
            writeln!(out, "```\n")?;
        }
        writeln!(out, "</details>")?;
    }
    Ok(())
}
