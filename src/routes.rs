//! `--routes-file`: many routes, a few at a time, one summary table, then the details of
//! the failing routes.

use std::io::Write;
use std::process::ExitCode;

use futures_util::StreamExt;
use serde::Serialize;

use crate::cli::{CheckArgs, Format};
use crate::report::{self, Report, table::Style};
use crate::{EXIT_ERROR, EXIT_FAILED, EXIT_OK};

/// Routes probed at once (each runs its whole matrix at once).
pub const ROUTE_CONCURRENCY: usize = 4;

/// One line of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSummary {
    pub route: String,
    pub ok: bool,
    pub healthy: bool,
    pub recommended_url: Option<String>,
    /// The diagnosis of `wss://<route>` (the canonical URL), when it was probed.
    pub canonical_code: Option<String>,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoutesReport {
    pub schema_version: u32,
    pub generated_at: String,
    pub routes: Vec<RouteSummary>,
    /// The full report of every route, in file order.
    pub reports: Vec<Report>,
}

impl RoutesReport {
    pub fn new(reports: Vec<Report>, generated_at: String) -> Self {
        let routes = reports
            .iter()
            .map(|r| RouteSummary {
                route: r.target.input.clone(),
                ok: r.verdict.ok,
                healthy: r.verdict.healthy,
                recommended_url: r.verdict.recommended_url.clone(),
                canonical_code: r
                    .probes
                    .iter()
                    .find(|p| p.candidate.url == r.verdict.canonical_url)
                    .map(|p| p.diagnosis.code.as_str().to_owned()),
                summary: r.verdict.summary.clone(),
            })
            .collect();
        Self {
            schema_version: report::SCHEMA_VERSION,
            generated_at,
            routes,
            reports,
        }
    }

    pub fn all_ok(&self) -> bool {
        self.routes.iter().all(|r| r.ok)
    }
}

/// The routes of a file: one a line, blank lines and `#` comments skipped.
pub fn parse_routes(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            (
                i + 1,
                line.split('#').next().unwrap_or_default().trim().to_owned(),
            )
        })
        .filter(|(_, line)| !line.is_empty())
        .collect()
}

/// Plans every route (a bad line is an error naming it), then checks them a few at a time.
pub async fn check_all(
    args: &CheckArgs,
    routes: &[(usize, String)],
) -> Result<RoutesReport, String> {
    let mut plans = Vec::with_capacity(routes.len());
    for (line, route) in routes {
        let mut route_args = args.clone();
        route_args.target = Some(route.clone());
        route_args.routes_file = None;
        let plan = crate::plan::plan(&route_args)
            .map_err(|e| format!("--routes-file line {line}: {e}"))?;
        plans.push(plan);
    }
    let reports: Vec<Result<Report, String>> =
        futures_util::stream::iter(plans.iter().map(crate::check))
            .buffered(ROUTE_CONCURRENCY)
            .collect()
            .await;
    let reports = reports.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(RoutesReport::new(reports, crate::now_utc()))
}

pub fn run(args: &CheckArgs, runtime: &tokio::runtime::Runtime, style: &Style) -> ExitCode {
    let Some(path) = &args.routes_file else {
        return ExitCode::from(EXIT_ERROR);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("wscheck: --routes-file {}: {error}", path.display());
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let routes = parse_routes(&text);
    if routes.is_empty() {
        eprintln!(
            "wscheck: --routes-file {}: no routes in the file",
            path.display()
        );
        return ExitCode::from(EXIT_ERROR);
    }
    let report = match runtime.block_on(check_all(args, &routes)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("wscheck: {message}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let code = if report.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    crate::write_out(|out| render(&report, args.format, style, out), code)
}

pub fn render(
    report: &RoutesReport,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                .set_header(["Route", "Verdict", "Use", "wss:// (no port)"]);
            for route in &report.routes {
                table.add_row(vec![
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
                env!("CARGO_PKG_VERSION"),
                report.routes.len(),
                failing,
                report.generated_at
            )?;
            writeln!(out, "{table}")?;
            for r in report.reports.iter().filter(|r| !r.verdict.healthy) {
                writeln!(out, "\n── {} ──", r.target.input)?;
                report::table::render(r, style, out)?;
            }
            Ok(())
        }
        Format::Markdown => {
            writeln!(
                out,
                "### WebSocket check of {} routes\n",
                report.routes.len()
            )?;
            writeln!(
                out,
                "- **Tool:** wscheck {}\n- **Time (UTC):** {}\n",
                env!("CARGO_PKG_VERSION"),
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
                report::markdown::render(r, out)?;
            }
            Ok(())
        }
    }
}

fn verdict_word(route: &RouteSummary) -> &'static str {
    match (route.ok, route.healthy) {
        (true, true) => "healthy",
        (true, false) => "works, not on wss://",
        (false, _) => "FAIL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_file_skips_blanks_and_comments() {
        let routes = parse_routes(
            "# prod\napp1.example.com\n\n  app2.example.com  # eu10\n#off.example.com\n",
        );
        assert_eq!(
            routes,
            [
                (2, "app1.example.com".to_owned()),
                (4, "app2.example.com".to_owned())
            ]
        );
    }
}
