//! wscheck: finds out why a WebSocket route (on Cloud Foundry above all) does not connect.
//!
//! `run` is the whole program minus process concerns: flags in, report out, exit code back.
//! The layers below it are separate and pure where they can be: `plan` (flags to probes),
//! `probe` (staged network work), `diagnose` (outcome to code), `report` (rendering).

pub mod cli;
pub mod deep;
pub mod demo;
pub mod diagnose;
pub mod load;
pub mod plan;
pub mod probe;
pub mod report;
pub mod routes;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use cli::{Cli, Command};
use plan::Plan;
use probe::tls::TlsSetup;
use report::{AppView, Report};

/// Exit code: the recommended URL works end to end.
pub const EXIT_OK: u8 = 0;
/// Exit code: it does not.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage or internal error.
pub const EXIT_ERROR: u8 = 2;

/// Runs a parsed command line, writing the report to stdout and errors to stderr.
pub fn run(mut cli: Cli) -> ExitCode {
    cli.check.conn.env_proxy = plan::EnvProxy::from_lookup(|name| std::env::var(name).ok());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wscheck: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let stdout = std::io::stdout();
    let style = report::table::Style {
        colour: stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        verbose: cli.check.verbose,
    };
    let outcome = match cli.command {
        Some(Command::Load(mut args)) => {
            args.conn.env_proxy = cli.check.conn.env_proxy.clone();
            return run_load(&args, &runtime);
        }
        None if cli.check.routes_file.is_some() => {
            return routes::run(&cli.check, &runtime, &style);
        }
        Some(Command::Demo(args)) => runtime.block_on(demo::run(args.format, &style)),
        None => match plan::plan(&cli.check) {
            Ok(plan) => runtime
                .block_on(check(&plan))
                .map(|report| (report, plan.format)),
            Err(error) => Err(error.to_string()),
        },
    };
    let (report, format) = match outcome {
        Ok(done) => done,
        Err(message) => {
            eprintln!("wscheck: {message}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    write_out(
        |out| report::render(&report, format, &style, out),
        exit_code(&report),
    )
}

fn run_load(args: &cli::LoadArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let prepared = load::plan_load(args).and_then(|(plan, settings)| {
        let tls = TlsSetup::new(plan.cacert.as_deref(), plan.insecure)?;
        Ok((plan, tls, settings))
    });
    let (plan, tls, settings) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("wscheck: {message}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let report = runtime.block_on(load::run_load(plan, tls, settings));
    let code = if report.ok { EXIT_OK } else { EXIT_FAILED };
    write_out(|out| load::render(&report, args.format, out), code)
}

/// Writes to stdout with `render`, then exits with `code` (2 when stdout fails, except a
/// closed pipe: `wscheck ... | head` is the reader's choice, not our failure).
pub(crate) fn write_out(
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    code: u8,
) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match render(&mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(code),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(code),
        Err(error) => {
            eprintln!("wscheck: cannot write the report: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The exit code a report stands for.
pub fn exit_code(report: &Report) -> u8 {
    if report.verdict.ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Runs a plan: every probe at once, then (for the bundled server) what reached the app.
/// Errors are setup problems (an unreadable `--cacert`), never probe failures.
pub async fn check(plan: &Plan) -> Result<Report, String> {
    let tls = TlsSetup::new(plan.cacert.as_deref(), plan.insecure)?;
    check_with(plan, &tls).await
}

/// `check` with trust settings made by the caller (the demo trusts its own CA).
pub async fn check_with(plan: &Plan, tls: &TlsSetup) -> Result<Report, String> {
    let spinner = spinner(plan.candidates.len());
    let results = probe::probe_all(plan, tls).await;
    if let Some(spinner) = &spinner {
        spinner.set_message("reading what reached the app…");
    }
    let app = app_view(plan, tls, &results).await;
    let deep = match recommended(&results) {
        Some(best) if plan.deep.any() => {
            if let Some(spinner) = &spinner {
                spinner.set_message(match plan.deep.hold {
                    Some(hold) => format!(
                        "deep checks (holding the connection idle for {})…",
                        humantime::format_duration(hold)
                    ),
                    None => "deep checks…".to_owned(),
                });
            }
            Some(deep::run(plan, tls, &best.candidate).await)
        }
        _ => None,
    };
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    Ok(Report::build(plan, results, app, deep, now_utc()))
}

/// The working result to recommend (and to run deep checks over).
fn recommended(results: &[probe::ProbeResult]) -> Option<&probe::ProbeResult> {
    results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ok)
        .min_by_key(|(i, r)| (r.candidate.preference(), *i))
        .map(|(_, r)| r)
}

/// Reads `/.wscheck/ws` over the best working URL when the peer may be the bundled server
/// (its mark on the 101, or the article's greeting when a proxy such as the approuter
/// answered the upgrade itself).
async fn app_view(plan: &Plan, tls: &TlsSetup, results: &[probe::ProbeResult]) -> Option<AppView> {
    use probe::echo::PeerKind;
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
fn spinner(count: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!(
        "probing {count} URL{}…",
        if count == 1 { "" } else { "s" }
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(spinner)
}

/// Now, UTC, RFC 3339 to the second.
pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}
