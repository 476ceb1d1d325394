//! The default output: a table, one row per URL, then each distinct failure explained once,
//! what reached the app, and the verdict.

use std::io::Write;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

use super::{ProbeView, Report, format_ms};

/// Terminal styling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Colour the result column (only on a terminal and without NO_COLOR).
    pub colour: bool,
    /// Print each handshake request and response.
    pub verbose: bool,
}

fn http_cell(probe: &ProbeView) -> String {
    probe
        .http_status
        .map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// The table of probes (also used by the demo and the Markdown renderer's sibling).
pub fn probe_table(report: &Report, style: &Style) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["URL", "Result", "Stage", "HTTP", "Time", "Code"]);
    if style.colour {
        table.enforce_styling();
    }
    for probe in &report.probes {
        let mut result = Cell::new(probe.result_word());
        if style.colour {
            result = result.fg(if probe.ok { Color::Green } else { Color::Red });
        }
        table.add_row(vec![
            Cell::new(&probe.url),
            result,
            Cell::new(probe.stage.as_str()),
            Cell::new(http_cell(probe)),
            Cell::new(format_ms(probe.timings_ms.total)),
            Cell::new(probe.diagnosis.code.as_str()),
        ]);
    }
    table
}

pub fn render(report: &Report, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "wscheck {} · {} · {} URL{} · {}",
        report.tool.version,
        report.target.input,
        report.probes.len(),
        if report.probes.len() == 1 { "" } else { "s" },
        report.generated_at
    )?;
    writeln!(out, "{}", probe_table(report, style))?;

    let failures = report.failures();
    if !failures.is_empty() {
        writeln!(out, "\nWhy:")?;
        for (code, probes) in &failures {
            let first = probes[0];
            writeln!(out, "  {} — {}", code.as_str(), code.summary())?;
            let urls: Vec<&str> = probes.iter().map(|p| p.url.as_str()).collect();
            writeln!(out, "    seen at:  {}", urls.join(", "))?;
            writeln!(
                out,
                "    answered: {}",
                first.diagnosis.answered_by.describe()
            )?;
            if !first.diagnosis.detail.is_empty() {
                writeln!(out, "    detail:   {}", first.diagnosis.detail)?;
            }
            writeln!(out, "    fix:      {}", code.fix())?;
        }
    }

    if let Some(app) = &report.app {
        writeln!(out, "\nWhat reached the app (via {}):", app.via_url)?;
        writeln!(
            out,
            "  app {} · instance {} · $PORT {} · connection from {}",
            app.application_name
                .as_deref()
                .unwrap_or("(no VCAP_APPLICATION)"),
            app.instance_index.as_deref().unwrap_or("-"),
            app.port.as_deref().unwrap_or("-"),
            app.peer
        )?;
        for header in &app.forwarded_headers {
            writeln!(out, "  {}: {}", header.name, header.value)?;
        }
        for who in &app.added_by {
            writeln!(out, "  added by: {who}")?;
        }
    }

    for note in &report.notes {
        writeln!(out, "\nNote: {note}")?;
    }

    if style.verbose {
        writeln!(out, "\nHandshakes:")?;
        for probe in report.probes.iter().filter(|p| !p.request.is_empty()) {
            writeln!(out, "  {}", probe.url)?;
            for line in &probe.request {
                writeln!(out, "    > {line}")?;
            }
            if let Some(response) = &probe.response {
                writeln!(
                    out,
                    "    < HTTP/1.1 {} {}",
                    response.status, response.reason
                )?;
                for (name, value) in &response.headers {
                    writeln!(out, "    < {name}: {value}")?;
                }
                for line in response.body.lines().take(20) {
                    writeln!(out, "    < {line}")?;
                }
            }
        }
    }

    writeln!(
        out,
        "\nVerdict: {}{}",
        if report.verdict.ok { "" } else { "FAIL — " },
        report.verdict.summary
    )
}
