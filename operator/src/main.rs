//! `flux-reporter`: the operator binary and its command-line tools. Everything
//! lives in the library (`lib.rs`); this parses the command line and turns an
//! error into one line on stderr and exit code 2.

use std::process::ExitCode;

use clap::Parser;
use flux_reporter::{cli, commands};
use flux_reporter_report::source::error_chain;

fn main() -> ExitCode {
    flux_reporter::allocator::configure();
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        // The reader of stdout went away: nothing to say, as Unix tools do.
        Err(commands::CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}
