//! The subcommands. Each returns its exit code; errors are printed by `main`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flux_reporter_api::FluxReport;
use flux_reporter_api::constants::SINGLETON_NAME;
use flux_reporter_report::source::dump::DumpSource;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::sync::ConfiguredRoot;
use flux_reporter_report::{Options, Outcome};
use kube::Api;

use crate::build_info;
use crate::cli::{ApiArgs, Cli, Command, SourceArgs};
use crate::client::ApiClient;

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

/// A client from `KUBECONFIG` or the in-cluster service account, once the
/// server has answered: a server that does not answer is one clear error
/// (exit 2) after at most the connect timeout plus the request timeout.
pub async fn client(api: &ApiArgs) -> anyhow::Result<kube::Client> {
    let api = ApiClient::new(api.timeouts()).await?;
    api.probe().await?;
    Ok(api.client)
}

/// The FluxReport the operator keeps in the cluster. Errors read as one line:
/// not found says what to do, an API error gives the server's message.
pub async fn read_report(api: &ApiArgs, namespace: &str) -> anyhow::Result<FluxReport> {
    let reports: Api<FluxReport> = Api::namespaced(client(api).await?, namespace);
    match reports.get(SINGLETON_NAME).await {
        Ok(r) => Ok(r),
        Err(kube::Error::Api(s)) if s.is_not_found() => anyhow::bail!(
            "FluxReport {namespace}/{SINGLETON_NAME} not found: is flux-reporter running in \
             {namespace}? (or use --from FILE)"
        ),
        Err(kube::Error::Api(s)) => anyhow::bail!(
            "cannot read FluxReport {namespace}/{SINGLETON_NAME}: {} ({})",
            s.message,
            s.reason
        ),
        Err(e) => anyhow::bail!(
            "cannot read FluxReport {namespace}/{SINGLETON_NAME}: {}",
            flux_reporter_report::source::error_chain(&e)
        ),
    }
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
            let dump = load_dump(path, args.max_dump_size)?;
            Ok(flux_reporter_report::compute(&dump, &opts).await)
        }
        None => {
            let source = LiveSource::new(
                client(&args.api).await?,
                LiveConfig {
                    page_size: args.page_size,
                    request_timeout: args.api.request_timeout,
                    ..LiveConfig::default()
                },
            );
            Ok(flux_reporter_report::compute(&source, &opts).await)
        }
    }
}

fn load_dump(path: &Path, max_bytes: u64) -> anyhow::Result<DumpSource> {
    let limits = flux_reporter_report::source::dump::Limits { max_bytes };
    let dump = DumpSource::load_with(path, limits)?;
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
