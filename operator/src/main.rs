//! `flux-reporter`: the operator binary and its command-line tools.

use std::process::ExitCode;

use clap::Parser;

mod build_info;
mod cli;
mod client;
mod commands;
mod controller;
mod events;
mod leader;
mod metrics;
mod notifier;
mod run;
mod server;
mod transitions;
mod watchdog;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// One line: the error and its causes, joined by ": ".
fn error_chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
