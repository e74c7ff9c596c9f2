//! The subcommands. Each returns its exit code; errors are printed by `main`.

use std::path::Path;
use std::process::ExitCode;

use flux_reporter_api::constants::SINGLETON_NAME;
use flux_reporter_api::{FluxInstance, FluxReport};
use flux_reporter_report::source::dump::{DumpError, DumpSource};
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::sync::ConfiguredRoot;
use flux_reporter_report::{Options, Outcome};
use kube::Api;

use crate::build_info;
use crate::cli::{ApiArgs, Cli, Command, SourceArgs};
use crate::client::{ApiClient, ClientError};

mod check;
mod report;
mod stats;
mod version;

/// Why a command could not do its work (exit code 2). `main` prints the whole chain on one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "FluxReport {namespace}/{SINGLETON_NAME} not found: is flux-reporter running in \
         {namespace}? (or use --from FILE)"
    )]
    ReportNotFound { namespace: String },
    /// The API server answered with an error status: its message and reason.
    #[error("cannot read FluxReport {namespace}/{SINGLETON_NAME}: {message} ({reason})")]
    ReportRefused {
        namespace: String,
        message: String,
        reason: String,
    },
    #[error("cannot read FluxReport {namespace}/{SINGLETON_NAME}")]
    ReadReport {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("cannot print the report as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
    #[error("cannot print the report as JSON")]
    Json(#[source] serde_json::Error),
    #[error("the report has no reconciler statistics yet")]
    NoStatistics,
    /// Whoever read stdout went away (`flux-reporter report | head`): not an
    /// error worth a message; `main` exits quietly, as Unix tools do.
    #[error("stdout was closed")]
    StdoutClosed,
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    /// The operator (`run`) ended with an error.
    #[error(transparent)]
    Run(anyhow::Error),
}

pub fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Crds => {
            out(&flux_reporter_api::crds::all_yaml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?
            .block_on(crate::run::run(*args))
            .map_err(CliError::Run),
        Command::Report(args) => runtime()?.block_on(report::run(args)),
        Command::Stats(args) => runtime()?.block_on(stats::run(args)),
        Command::Check(args) => runtime()?.block_on(check::run(args)),
        Command::Version(args) => runtime()?.block_on(version::run(args)),
    }
}

/// Print to stdout. A closed pipe is [`CliError::StdoutClosed`], not a panic.
pub fn out(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Stdout(e),
        })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// The clients for `KUBECONFIG` or the in-cluster service account, once the
/// server has answered: a server that does not answer is one clear error
/// (exit 2) after at most the connect timeout plus the request timeout.
pub async fn connect(api: &ApiArgs) -> Result<ApiClient, CliError> {
    let api = ApiClient::new(api.timeouts()).await?;
    api.probe().await?;
    Ok(api)
}

/// The client of [`connect`].
pub async fn client(api: &ApiArgs) -> Result<kube::Client, CliError> {
    Ok(connect(api).await?.client)
}

/// The FluxReport the operator keeps in the cluster. Errors read as one line:
/// not found says what to do, an API error gives the server's message.
pub async fn read_report(api: &ApiArgs, namespace: &str) -> Result<FluxReport, CliError> {
    let reports: Api<FluxReport> = Api::namespaced(client(api).await?, namespace);
    let namespace = namespace.to_string();
    match reports.get(SINGLETON_NAME).await {
        Ok(r) => Ok(r),
        Err(kube::Error::Api(s)) if s.is_not_found() => Err(CliError::ReportNotFound { namespace }),
        Err(kube::Error::Api(s)) => Err(CliError::ReportRefused {
            namespace,
            message: s.message.clone(),
            reason: s.reason.clone(),
        }),
        Err(source) => Err(CliError::ReadReport { namespace, source }),
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
pub async fn compute(args: &SourceArgs) -> Result<Outcome, CliError> {
    Ok(compute_with(args, &options(args), false).await?.0)
}

/// [`compute`] with the given options, and with `instance` the FluxInstance
/// `flux` of the namespace as the dump or the cluster holds it (`None` when
/// there is none or it cannot be read).
pub async fn compute_with(
    args: &SourceArgs,
    opts: &Options,
    instance: bool,
) -> Result<(Outcome, Option<FluxInstance>), CliError> {
    match &args.from {
        Some(path) => {
            let dump = load_dump(path, args.max_dump_size)?;
            let outcome = flux_reporter_report::compute(&dump, opts).await;
            let declared = instance
                .then(|| dump.flux_instance(&args.namespace).cloned())
                .flatten();
            Ok((outcome, declared))
        }
        None => {
            let api = connect(&args.api).await?;
            let source = LiveSource::new(
                api.reads,
                LiveConfig {
                    page_size: args.page_size,
                    list_concurrency: args.list_concurrency,
                    request_timeout: args.api.request_timeout,
                    ..LiveConfig::default()
                },
            );
            let outcome = flux_reporter_report::compute(&source, opts).await;
            let declared = if instance {
                Api::<FluxInstance>::namespaced(api.client, &args.namespace)
                    .get_opt(SINGLETON_NAME)
                    .await
                    .ok()
                    .flatten()
            } else {
                None
            };
            Ok((outcome, declared))
        }
    }
}

fn load_dump(path: &Path, max_bytes: u64) -> Result<DumpSource, CliError> {
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
