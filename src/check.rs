//! Checking a route: probe every URL of the plan at once, pick the URL to recommend (the
//! one rule for it), read what reached the app, run the deep checks, and build the report.
//! A spinner shows progress on a terminal.

use std::io::IsTerminal;

use crate::deep;
use crate::error::Error;
use crate::plan::Plan;
use crate::probe::echo::PeerKind;
use crate::probe::tls::TlsSetup;
use crate::probe::{self, ProbeResult};
use crate::report::{AppView, Choice, Report, now_utc};

/// Runs a plan: every probe at once, then (for the bundled server) what reached the app.
/// Errors are setup problems (an unreadable `--cacert`), never probe failures.
pub async fn check(plan: &Plan) -> Result<Report, Error> {
    let tls = TlsSetup::new(plan.cacert.as_deref(), plan.insecure).map_err(Error::Setup)?;
    Ok(check_with(plan, &tls).await)
}

/// `check` with trust settings made by the caller (the demo trusts its own CA).
pub async fn check_with(plan: &Plan, tls: &TlsSetup) -> Report {
    let spinner = Spinner::start(plan.candidates.len());
    let results = probe::probe_all(plan, tls).await;
    spinner.say("reading what reached the app…");
    let app = app_view(plan, tls, &results).await;
    let recommended = recommended(&results, plan.asked());
    let deep = match recommended {
        Some(best) if plan.deep.any() => {
            spinner.say(&match plan.deep.hold {
                Some(hold) => format!(
                    "deep checks (holding the connection idle for {})…",
                    humantime::format_duration(hold)
                ),
                None => "deep checks…".to_owned(),
            });
            Some(deep::run(plan, tls, &results[best].candidate).await)
        }
        _ => None,
    };
    spinner.finish();
    let verdict = Choice {
        asked: plan.asked(),
        recommended,
    };
    Report::build(plan, results, verdict, app, deep, now_utc())
}

/// The URL to recommend, as an index into `results`: the one asked about when it works;
/// otherwise, as a fallback, the most preferred working one (the canonical port-less
/// wss:// first, plaintext last), the first of equals.
pub fn recommended(results: &[ProbeResult], asked: usize) -> Option<usize> {
    if results.get(asked).is_some_and(|r| r.ok) {
        return Some(asked);
    }
    results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ok)
        .min_by_key(|(i, r)| (r.candidate.preference(), *i))
        .map(|(i, _)| i)
}

/// Reads `/.wscheck/ws` over the best working URL when the peer may be the bundled server
/// (its mark on the 101, or the article's greeting when a proxy such as the approuter
/// answered the upgrade itself).
async fn app_view(plan: &Plan, tls: &TlsSetup, results: &[ProbeResult]) -> Option<AppView> {
    let best = results
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.ok && matches!(
                r.peer,
                PeerKind::WscheckServer | PeerKind::ArticleEchoServer
            )
        })
        .min_by_key(|(i, r)| {
            (
                r.peer != PeerKind::WscheckServer,
                r.candidate.preference(),
                *i,
            )
        })
        .map(|(_, r)| r)?;
    let info = probe::fetch_info(plan, tls, &best.candidate).await?;
    Some(AppView::new(best.candidate.url.clone(), info))
}

/// A spinner on stderr, only when stderr is a terminal.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn start(count: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(format!(
            "probing {count} URL{}…",
            if count == 1 { "" } else { "s" }
        ));
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        Self(Some(spinner))
    }

    fn say(&self, message: &str) {
        if let Some(spinner) = &self.0 {
            spinner.set_message(message.to_owned());
        }
    }

    fn finish(self) {
        if let Some(spinner) = self.0 {
            spinner.finish_and_clear();
        }
    }
}
