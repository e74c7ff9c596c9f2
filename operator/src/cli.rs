//! The command-line contract (the README's "Commands" and "Configuration"
//! tables; `operator/tests/cli.rs` holds it). Every flag also
//! reads an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flux_reporter_report::source::live::DEFAULT_LIST_CONCURRENCY;

#[derive(Parser, Debug)]
#[command(
    name = "flux-reporter",
    version,
    about = "A live, truthful health report of a Flux CD installation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: keep the FluxReport, metrics and events up to date.
    Run(Box<RunArgs>),
    /// Compute the report once and print the FluxReport; writes nothing.
    Report(ReportArgs),
    /// Print reconciler statistics as `flux stats` does.
    Stats(SourceArgs),
    /// One-screen health summary; exit 0 healthy, 1 unhealthy, 2 could not tell.
    Check(SourceArgs),
    /// Print the YAML of every CRD the project ships.
    Crds,
    /// Print the client version and, with a cluster, the operator and Flux versions.
    Version(VersionArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace of the Flux installation and of the FluxReport.
    #[arg(
        long,
        short = 'n',
        env = "RUNTIME_NAMESPACE",
        default_value = "flux-system",
        value_parser = parse_namespace
    )]
    pub namespace: String,
    /// How often the report is recomputed (e.g. 30s, 5m, 1h; at least 1s).
    #[arg(long, env = "REPORTING_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub reporting_interval: Duration,
    /// Address of the Prometheus metrics endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: String,
    /// Address of the status page (read-only HTML and JSON from the last
    /// report run); empty disables it. Loopback by default: reach it with
    /// `kubectl port-forward`.
    #[arg(long, env = "WEB_ADDR", default_value = "127.0.0.1:9080")]
    pub web_addr: String,
    /// Address of notification-controller's event receiver; empty = derived
    /// from the notification-controller Deployment in the namespace.
    #[arg(long, env = "NOTIFICATION_CONTROLLER_ADDRESS", default_value = "")]
    pub events_addr: String,
    /// Turn forwarding of events to notification-controller off.
    #[arg(long, env = "NOTIFICATIONS_DISABLED", default_value_t = false, value_parser = parse_flag)]
    pub notifications_disabled: bool,
    /// Elect a leader with a coordination.k8s.io Lease before writing.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false, value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Objects per page when listing Flux kinds.
    #[arg(long, env = "PAGE_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Flux kinds listed at once (pages of one kind are still read one by one).
    #[arg(long, env = "LIST_CONCURRENCY", default_value_t = DEFAULT_LIST_CONCURRENCY, value_parser = parse_concurrency)]
    pub list_concurrency: usize,
    /// Also export gotk_reconcile_condition and gotk_suspend_status.
    #[arg(long, env = "LEGACY_METRICS", default_value_t = false, value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true")]
    pub legacy_metrics: bool,
    /// Object labels copied onto flux_resource_info (comma-separated keys),
    /// as `label_<key>` labels.
    #[arg(long, env = "METRICS_LABELS", value_delimiter = ',')]
    pub metrics_labels: Vec<String>,
    /// Name of the root Kustomization of the cluster sync (`name` or
    /// `namespace/name`); overrides the FluxReport annotation and the FluxInstance.
    #[arg(long, env = "SYNC_NAME")]
    pub sync_name: Option<String>,
    /// Time allowed for one report run; what has not finished by then fails
    /// its section (the last good values are kept).
    #[arg(long, env = "REPORT_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub report_timeout: Duration,
    #[command(flatten)]
    pub metrics_secure: MetricsSecureArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `--metrics-secure` and its certificate (see `metrics_secure`).
#[derive(Args, Debug, Clone)]
pub struct MetricsSecureArgs {
    /// Serve /metrics over HTTPS to bearer tokens that the API server authenticates
    /// (TokenReview) and authorizes for `get` on the path (SubjectAccessReview).
    #[arg(long, env = "METRICS_SECURE", default_value_t = false, value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_secure: bool,
    /// Directory of the metrics server's certificate and key (e.g. a mounted
    /// kubernetes.io/tls Secret; re-read when they change). Unset: a self-signed certificate
    /// generated at start.
    #[arg(long, env = "METRICS_CERT_PATH", value_name = "DIR")]
    pub metrics_cert_path: Option<PathBuf>,
    /// File name of the certificate (PEM, leaf first) in --metrics-cert-path.
    #[arg(long, env = "METRICS_CERT_NAME", default_value = "tls.crt")]
    pub metrics_cert_name: String,
    /// File name of the private key (PEM) in --metrics-cert-path.
    #[arg(long, env = "METRICS_CERT_KEY", default_value = "tls.key")]
    pub metrics_cert_key: String,
}

/// Time limits of the requests to the Kubernetes API server.
#[derive(Args, Debug, Clone, Copy)]
pub struct ApiArgs {
    /// Time allowed to connect to the Kubernetes API server (TCP and TLS handshake).
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time allowed for one Kubernetes API request, from sending it to the end of its answer.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

impl ApiArgs {
    pub fn timeouts(&self) -> crate::client::Timeouts {
        crate::client::Timeouts {
            connect: self.connect_timeout,
            request: self.request_timeout,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Read objects from a dump file (`kubectl get … -o yaml|json` output; `-` = stdin)
    /// instead of the cluster.
    #[arg(long = "from", env = "DUMP_FILE", value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Refuse a dump larger than this many bytes.
    #[arg(long, env = "MAX_DUMP_SIZE", value_name = "BYTES",
          default_value_t = flux_reporter_report::source::dump::DEFAULT_MAX_DUMP_SIZE)]
    pub max_dump_size: u64,
    /// Namespace of the Flux installation.
    #[arg(
        long,
        short = 'n',
        env = "RUNTIME_NAMESPACE",
        default_value = "flux-system",
        value_parser = parse_namespace
    )]
    pub namespace: String,
    /// Name of the root Kustomization of the cluster sync (default: from the
    /// FluxInstance, the namespace name, or the only Kustomization in the namespace).
    #[arg(long, env = "SYNC_NAME")]
    pub sync_name: Option<String>,
    /// Objects per page when listing Flux kinds from a cluster.
    #[arg(long, env = "PAGE_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Flux kinds listed at once from a cluster (pages of one kind are still read one by one).
    #[arg(long, env = "LIST_CONCURRENCY", default_value_t = DEFAULT_LIST_CONCURRENCY, value_parser = parse_concurrency)]
    pub list_concurrency: usize,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(long, short = 'o', env = "OUTPUT_FORMAT", default_value = "yaml")]
    pub output: OutputFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Json,
    /// The status page as one self-contained HTML file (inline CSS, no script, no network).
    Html,
}

#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Print only the client version; do not contact the cluster.
    #[arg(long, env = "CLIENT_ONLY")]
    pub client: bool,
    /// Namespace of the FluxReport.
    #[arg(
        long,
        short = 'n',
        env = "RUNTIME_NAMESPACE",
        default_value = "flux-system",
        value_parser = parse_namespace
    )]
    pub namespace: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// The shortest reporting interval: a report run lists every Flux object, so
/// anything faster only loads the API server (and a typo such as `1ms` would
/// spin).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A reporting interval: a duration of at least [`MIN_INTERVAL`].
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "interval {s:?} is shorter than the minimum of {}s",
            MIN_INTERVAL.as_secs()
        ));
    }
    Ok(d)
}

/// A namespace name: a DNS-1123 label (lower-case letters, digits and `-`,
/// starting and ending with a letter or digit, at most 63 characters).
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if valid {
        Ok(s.to_string())
    } else if s.is_empty() {
        Err("the namespace must not be empty".into())
    } else {
        Err(format!(
            "{s:?} is not a namespace name (lower-case letters, digits and '-', \
             at most 63 characters)"
        ))
    }
}

/// A number of kinds listed at once: a whole number, at least 1.
pub fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("the list concurrency must be at least 1 (1 lists one kind at a time)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{s:?} is not a number of kinds to list at once (a whole number, at least 1)"
        )),
    }
}

/// A Go-style duration: `300ms`, `30s`, `5m`, `1h30m`, `1.5h`. Must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    flux_reporter_report::duration::parse(s).and_then(|d| {
        if d.is_zero() {
            Err(format!("duration {s:?} must be greater than zero"))
        } else {
            Ok(d)
        }
    })
}

/// Booleans as environment variables are written: true/false, yes/no, 1/0, on/off.
fn parse_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" | "off" => Ok(false),
        "true" | "yes" | "1" | "on" => Ok(true),
        other => Err(format!(
            "{other:?} is not a boolean (true/false, yes/no, 1/0)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn notifications_disabled_reads_yes() {
        assert_eq!(parse_flag("yes"), Ok(true));
        assert_eq!(parse_flag(""), Ok(false));
        assert!(parse_flag("maybe").is_err());
    }

    #[test]
    fn the_interval_has_a_floor_of_one_second() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        let err = parse_interval("1ms").unwrap_err();
        assert!(err.contains("shorter than the minimum of 1s"), "{err}");
        assert!(parse_interval("999ms").is_err());
    }

    #[test]
    fn an_empty_or_invalid_namespace_is_rejected() {
        assert_eq!(parse_namespace("flux-system").as_deref(), Ok("flux-system"));
        assert_eq!(
            parse_namespace(""),
            Err("the namespace must not be empty".to_string())
        );
        for bad in [
            "Flux",
            "flux_system",
            "-flux",
            "flux-",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(parse_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_list_concurrency_is_a_whole_number_of_at_least_one() {
        assert_eq!(parse_concurrency("1"), Ok(1));
        assert_eq!(parse_concurrency("4"), Ok(4));
        assert!(parse_concurrency("0").unwrap_err().contains("at least 1"));
        for bad in ["-1", "two", "1.5", ""] {
            assert!(parse_concurrency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reporting_interval_rejects_garbage_and_zero() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("five minutes").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
