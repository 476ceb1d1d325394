//! The `wscheck` binary: parse the command line, hand it to `wscheck::app::run`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    wscheck::app::run(wscheck::cli::Cli::try_parse())
}
