//! `--routes-file`: the routes of a file (one a line), checked a few at a time, and the
//! report that sums them up (rendered by `report::routes`).

use futures_util::StreamExt;
use serde::Serialize;

use crate::check::check;
use crate::error::Error;
use crate::plan::Plan;
use crate::report::{Report, SCHEMA_VERSION, now_utc};

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
                    .find(|p| p.result.candidate.url == r.verdict.canonical_url)
                    .map(|p| p.diagnosis.code.as_str().to_owned()),
                summary: r.verdict.summary.clone(),
            })
            .collect();
        Self {
            schema_version: SCHEMA_VERSION,
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

/// Checks every planned route, a few at a time, in file order.
pub async fn check_all(plans: &[Plan]) -> Result<RoutesReport, Error> {
    let reports: Vec<Result<Report, Error>> = futures_util::stream::iter(plans.iter().map(check))
        .buffered(ROUTE_CONCURRENCY)
        .collect()
        .await;
    let reports = reports.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(RoutesReport::new(reports, now_utc()))
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
