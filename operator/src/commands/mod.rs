//! The subcommands. Each returns its exit code; errors are printed by `main`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flux_reporter_report::source::dump::DumpSource;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::sync::ConfiguredRoot;
use flux_reporter_report::{Options, Outcome};

use crate::build_info;
use crate::cli::{Cli, Command, SourceArgs};

mod check;
mod report;
mod stats;
mod version;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crds => {
            print!("{}", flux_reporter_api::crds::all_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(crate::run::run(args)),
        Command::Report(args) => runtime()?.block_on(report::run(args)),
        Command::Stats(args) => runtime()?.block_on(stats::run(args)),
        Command::Check(args) => runtime()?.block_on(check::run(args)),
        Command::Version(args) => runtime()?.block_on(version::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A client from `KUBECONFIG` or the in-cluster service account.
pub async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("cannot connect to a cluster (set KUBECONFIG, or use --from FILE)")
}

/// The engine options for a one-shot command.
pub fn options(args: &SourceArgs) -> Options {
    let mut opts = Options::new(&args.namespace, build_info::operator_info());
    opts.metric_rows = false;
    opts.sync_root = args
        .sync_name
        .as_deref()
        .and_then(|n| ConfiguredRoot::parse(n, &args.namespace, "--sync-name"));
    opts
}

/// Compute a report from the dump given with `--from`, or from the cluster.
/// Load warnings are printed to stderr.
pub async fn compute(args: &SourceArgs) -> anyhow::Result<Outcome> {
    let opts = options(args);
    match &args.from {
        Some(path) => {
            let dump = load_dump(path)?;
            Ok(flux_reporter_report::compute(&dump, &opts).await)
        }
        None => {
            let source = LiveSource::new(
                client().await?,
                LiveConfig {
                    page_size: args.page_size,
                    ..LiveConfig::default()
                },
            );
            Ok(flux_reporter_report::compute(&source, &opts).await)
        }
    }
}

fn load_dump(path: &Path) -> anyhow::Result<DumpSource> {
    let dump = DumpSource::load(path)?;
    for w in dump.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(dump)
}

/// Print what failed and what is worth knowing, to stderr.
pub fn print_problems(outcome: &Outcome) {
    for f in &outcome.failures {
        eprintln!("warning: {f}");
    }
    for n in &outcome.notes {
        eprintln!("note: {n}");
    }
}
