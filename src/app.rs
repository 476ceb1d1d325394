//! The program around the library: one async runtime, one dispatch over the command, one
//! map from errors to exit codes, and the report written to stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::check::check;
use crate::cli::to_plan::{Command, Output, command, plan_from_argv};
use crate::cli::{Cli, env_proxy};
use crate::error::Error;
use crate::probe::tls::TlsSetup;
use crate::report::{self, Style};
use crate::{demo, load, preflight, routes};

/// Exit code: what was asked about works end to end.
pub const EXIT_OK: u8 = 0;
/// Exit code: it does not.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage or internal error.
pub const EXIT_ERROR: u8 = 2;

/// Runs a command line as clap parsed it: the report to stdout, errors to stderr.
pub fn run(parsed: Result<Cli, clap::Error>) -> ExitCode {
    match parsed.map_err(Error::from).and_then(execute) {
        Ok(code) => ExitCode::from(code),
        Err(error) => ExitCode::from(exit_code(&error)),
    }
}

/// The one place an error becomes a message on stderr and an exit code.
fn exit_code(error: &Error) -> u8 {
    use clap::error::ErrorKind;
    match error {
        // clap prints help and version to stdout; they are successes.
        Error::Cli(clap_error) => {
            let _ = clap_error.print();
            match clap_error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_ERROR,
            }
        }
        Error::Usage(_) | Error::Setup(_) | Error::Output(_) => {
            eprintln!("wscheck: {error}");
            EXIT_ERROR
        }
    }
}

/// Runs the command; the exit code says whether what was asked about works.
fn execute(cli: Cli) -> Result<u8, Error> {
    let command = command(cli, &env_proxy())?;
    // A probe (or a routes file, a few probes at a time) waits on the network: one thread
    // starts faster and holds all of its I/O. Load, app and demo run servers or many
    // connections beside it, and get a worker per core.
    let runtime = match command {
        Command::Check { .. } | Command::Routes { .. } => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
    .map_err(|e| Error::Setup(format!("cannot start the async runtime: {e}")))?;
    match command {
        Command::Check { plan, output } => {
            let mut report = runtime.block_on(check(&plan))?;
            report.command = Some(command_line());
            write_out(|out| report::render(&report, output.format, &style(output), out))?;
            Ok(verdict_code(report.verdict.ok))
        }
        Command::Routes { plans, output } => {
            let mut report = runtime.block_on(routes::check_all(&plans))?;
            let line = command_line();
            for route in &mut report.reports {
                route.command = Some(line.clone());
            }
            let style = style(output);
            write_out(|out| report::routes::render(&report, output.format, &style, out))?;
            Ok(verdict_code(report.all_ok()))
        }
        Command::Load {
            plan,
            settings,
            format,
        } => {
            let tls = TlsSetup::new(plan.cacert.as_deref(), plan.insecure).map_err(Error::Setup)?;
            let report = runtime.block_on(load::run_load(plan, tls, settings));
            write_out(|out| report::load::render(&report, format, out))?;
            Ok(verdict_code(report.ok))
        }
        Command::App { plan, output } => {
            let report = runtime.block_on(preflight::run(&plan, plan_from_argv))?;
            write_out(|out| report::app::render(&report, output.format, &style(output), out))?;
            Ok(verdict_code(report.ok))
        }
        Command::Demo { output, scenario } => {
            let report = runtime.block_on(demo::run(scenario, plan_from_argv))?;
            write_out(|out| report::render(&report, output.format, &style(output), out))?;
            Ok(verdict_code(report.verdict.ok))
        }
    }
}

fn verdict_code(ok: bool) -> u8 {
    if ok { EXIT_OK } else { EXIT_FAILED }
}

/// This process's command line, redacted, for the report. Lossy rather than
/// `std::env::args()`, which panics on an argument that is not UTF-8.
fn command_line() -> String {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    report::redact::command_line(&args)
}

/// Colour only on a terminal, and not with `NO_COLOR` set; the width to fit in: `COLUMNS`
/// when it is a number, else the terminal's (only when stdout is one), else 80.
fn style(output: Output) -> Style {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
        .or_else(|| comfy_table::Table::new().width().map(usize::from))
        .filter(|w| *w > 0)
        .unwrap_or(report::DEFAULT_WIDTH);
    Style {
        colour: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        verbose: output.verbose,
        width,
    }
}

/// Writes to stdout with `render`. A closed pipe is no error: `wscheck ... | head` is the
/// reader's choice, not our failure.
fn write_out(render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), Error> {
    // One write for the whole report, not one per line (stdout is line-buffered).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    match render(&mut out).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(error)),
        _ => Ok(()),
    }
}
