//! The `--routes-file` report: one summary line per route, then the full report of every
//! route that is not healthy (JSON goes through the one JSON writer).

use std::io::Write;

use super::model::{Format, Style, Tool};
use super::{json, markdown, table};
use crate::routes::{RouteSummary, RoutesReport};

/// Writes a routes report in `format`.
pub fn render(
    report: &RoutesReport,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => json::write(report, out),
        Format::Table => render_table(report, style, out),
        Format::Markdown => render_markdown(report, out),
    }
}

fn render_table(report: &RoutesReport, style: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut summary = comfy_table::Table::new();
    summary
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["Route", "Verdict", "Use", "wss:// (no port)"]);
    for route in &report.routes {
        summary.add_row(vec![
            route.route.clone(),
            verdict_word(route).to_owned(),
            route
                .recommended_url
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            route
                .canonical_code
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let failing = report.routes.iter().filter(|r| !r.healthy).count();
    writeln!(
        out,
        "wscheck {} · {} routes · {} not healthy · {}",
        Tool::THIS.version,
        report.routes.len(),
        failing,
        report.generated_at
    )?;
    writeln!(out, "{summary}")?;
    for r in report.reports.iter().filter(|r| !r.verdict.healthy) {
        writeln!(out, "\n── {} ──", r.target.input)?;
        table::render(r, style, out)?;
    }
    Ok(())
}

fn render_markdown(report: &RoutesReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "### WebSocket check of {} routes\n",
        report.routes.len()
    )?;
    writeln!(
        out,
        "- **Tool:** wscheck {}\n- **Time (UTC):** {}\n",
        Tool::THIS.version,
        report.generated_at
    )?;
    writeln!(
        out,
        "| Route | Verdict | Use | wss:// (no port) |\n|---|---|---|---|"
    )?;
    for route in &report.routes {
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            route.route,
            verdict_word(route),
            route
                .recommended_url
                .as_deref()
                .map_or_else(|| "-".to_owned(), |u| format!("`{u}`")),
            route
                .canonical_code
                .as_deref()
                .map_or_else(|| "-".to_owned(), |c| format!("`{c}`"))
        )?;
    }
    for r in report.reports.iter().filter(|r| !r.verdict.healthy) {
        writeln!(out)?;
        markdown::render(r, out)?;
    }
    Ok(())
}

fn verdict_word(route: &RouteSummary) -> &'static str {
    match (route.ok, route.healthy) {
        (true, true) => "healthy",
        (true, false) => "works, not on wss://",
        (false, _) => "FAIL",
    }
}
