//! The `wscheck` binary: parse flags, hand over to `wscheck::run`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match wscheck::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and version are successes; every other clap error is a usage error.
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(wscheck::EXIT_ERROR),
            };
        }
    };
    wscheck::run(cli)
}
