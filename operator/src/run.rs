//! `flux-reporter run`: the operator. Wires the report loop, the metrics and
//! health servers, leader election and graceful shutdown.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use flux_reporter_report::Options;
use flux_reporter_report::source::live::LiveConfig;
use flux_reporter_report::sync::ConfiguredRoot;
use tokio::sync::watch;

use crate::build_info;
use crate::cli::{LogArgs, LogFormat, RunArgs};
use crate::client::ApiClient;
use crate::controller::{self, Context};
use crate::leader::{LeaderConfig, LeaderElector};
use crate::metrics::{Metrics, MetricsConfig};
use crate::metrics_secure::{self, Secure};
use crate::server::{self, Health};
use crate::web;

/// How long SIGTERM waits for the report loop, then for the lease release:
/// together well inside Kubernetes' default 30 s grace period.
const LOOP_GRACE: Duration = Duration::from_secs(5);
const LEASE_RELEASE_GRACE: Duration = Duration::from_secs(3);

pub fn init_logging(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(match log.log_level.as_str() {
        // A bare level applies to our crates and, one step quieter, to the rest.
        lvl @ ("error" | "warn" | "info" | "debug" | "trace") => {
            format!("warn,flux_reporter={lvl},flux_reporter_report={lvl}")
        }
        filter => filter.to_string(),
    })
    .with_context(|| format!("invalid --log-level {:?}", log.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// The name this replica reports as (events, the lease).
fn pod_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(hostname)
        .unwrap_or_else(|| "flux-reporter".into())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging(&args.log)?;
    // No reachability probe here: the operator starts, serves its endpoints
    // and keeps trying whatever the API server does; the timeouts bound each
    // request and the watchdog turns a loop that never gets through into a
    // failing /healthz.
    let api = ApiClient::new(args.api.timeouts()).await?;
    let client = api.client.clone();
    tracing::info!(
        version = %build_info::version(),
        namespace = %args.namespace,
        interval = ?args.reporting_interval,
        server = %api.server,
        connect_timeout = ?args.api.connect_timeout,
        request_timeout = ?args.api.request_timeout,
        report_timeout = ?args.report_timeout,
        leader_elect = args.leader_elect,
        "starting flux-reporter"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    let signal_tx = shutdown_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = signal_tx.send(true);
    });
    let shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let propagate: Vec<String> = args
        .metrics_labels
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let metrics = Arc::new(Metrics::new(MetricsConfig {
        legacy: args.legacy_metrics,
        propagate_labels: propagate.clone(),
        namespace: args.namespace.clone(),
        interval: args.reporting_interval,
    }));
    let health = Arc::new(Health::new());
    health.set_not_ready("no report computed yet");
    health
        .watchdog
        .arm(args.reporting_interval, args.report_timeout);
    // Bind before anything else, so a taken port is a clear error at start.
    let metrics_listener = server::bind(&args.metrics_addr).await?;
    let health_listener = server::bind(&args.health_addr).await?;
    // The status page is optional: a taken port turns it off, loudly, rather
    // than stopping the report (two operators on one host, e.g. the e2e
    // tests, would otherwise not both start on the default address).
    let web_listener = match args.web_addr.trim() {
        "" => None,
        addr => match server::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "the status page is off: set --web-addr to a free address, or to \"\" to turn it off"
                );
                None
            }
        },
    };
    let metrics_server = if args.metrics_secure.metrics_secure {
        let secure = Secure::new(&args.metrics_secure, client.clone(), &args.namespace)
            .context("--metrics-secure")?;
        tracing::info!(
            certificate = %metrics_secure::cert_files(&args.metrics_secure)
                .map(|(cert, _)| cert.display().to_string())
                .unwrap_or_else(|| "self-signed".into()),
            "serving metrics over HTTPS to authorized bearer tokens"
        );
        tokio::spawn(
            secure
                .certs
                .clone()
                .watch(metrics_secure::CERT_RELOAD_INTERVAL),
        );
        let metrics = metrics.clone();
        let stop = shutdown(shutdown_rx.clone());
        tokio::spawn(async move {
            server::serve_metrics_secure(metrics_listener, metrics, &secure, stop).await
        })
    } else {
        if args.metrics_secure.metrics_cert_path.is_some() {
            anyhow::bail!("--metrics-cert-path needs --metrics-secure (METRICS_SECURE=true)");
        }
        tokio::spawn(server::serve_metrics(
            metrics_listener,
            metrics.clone(),
            shutdown(shutdown_rx.clone()),
        ))
    };
    let health_server = tokio::spawn(server::serve_health(
        health_listener,
        health.clone(),
        shutdown(shutdown_rx.clone()),
    ));
    let web = web_listener
        .as_ref()
        .map(|_| Arc::new(web::Published::new()));
    let web_server = match (web_listener, &web) {
        (Some(listener), Some(published)) => {
            tracing::info!(address = %args.web_addr.trim(), "serving the status page");
            tokio::spawn(web::server::serve(
                listener,
                published.clone(),
                web::server::Limits::default(),
                shutdown(shutdown_rx.clone()),
            ))
        }
        // Disabled: a task that ends only with the others.
        _ => {
            let stop = shutdown(shutdown_rx.clone());
            tokio::spawn(async move {
                stop.await;
                Ok(())
            })
        }
    };

    let (leader_rx, elector) = if args.leader_elect {
        let elector = LeaderElector::new(
            client.clone(),
            LeaderConfig::new(args.namespace.clone(), crate::leader::default_identity()),
        );
        let rx = elector.subscribe();
        let handle = tokio::spawn(elector.run(shutdown(shutdown_rx.clone())));
        (rx, Some(handle))
    } else {
        let (tx, rx) = watch::channel(true);
        // Keep the sender alive for the life of the process.
        std::mem::forget(tx);
        (rx, None)
    };

    let mut options = Options::new(&args.namespace, build_info::operator_info());
    options.propagate_labels = propagate;
    // The status page needs each object's details; without it they cost nothing.
    options.object_details = web.is_some();
    let ctx = Context {
        client,
        reads: api.reads.clone(),
        namespace: args.namespace.clone(),
        interval: args.reporting_interval,
        report_timeout: args.report_timeout,
        watch_timeout_secs: api.watch_timeout_secs(),
        live: LiveConfig {
            page_size: args.page_size,
            list_concurrency: args.list_concurrency,
            request_timeout: args.api.request_timeout,
            ..LiveConfig::default()
        },
        options,
        sync_name_flag: args
            .sync_name
            .as_deref()
            .and_then(|n| ConfiguredRoot::parse(n, &args.namespace, "--sync-name")),
        metrics,
        health: health.clone(),
        events_addr: args.events_addr.clone(),
        notifications_disabled: args.notifications_disabled,
        reporting_instance: pod_name(),
        leader: leader_rx,
        shutdown: shutdown_rx.clone(),
        web,
    };

    let mut loop_task = tokio::spawn(controller::run(ctx));
    let mut metrics_server = metrics_server;
    let mut health_server = health_server;
    let mut web_server = web_server;
    // A server that stops (it cannot serve) ends the process with its error.
    enum First {
        Loop,
        Server(anyhow::Result<()>),
    }
    let first = tokio::select! {
        r = &mut metrics_server => First::Server(flatten(r).context(format!("metrics server on {}", args.metrics_addr))),
        r = &mut health_server => First::Server(flatten(r).context(format!("health server on {}", args.health_addr))),
        r = &mut web_server => First::Server(flatten(r).context(format!("status page on {}", args.web_addr))),
        _ = &mut loop_task => First::Loop,
    };
    health.set_not_ready("shutting down");
    match first {
        First::Server(result) => {
            let _ = shutdown_tx.send(true);
            if let Err(e) = result {
                tracing::error!(error = format!("{e:#}"), "stopping");
                return Err(e);
            }
            // The loop stops at once between requests; a request that hangs
            // is not waited for (every write is an idempotent apply).
            if tokio::time::timeout(LOOP_GRACE, &mut loop_task)
                .await
                .is_err()
            {
                tracing::warn!("the report loop did not stop within {LOOP_GRACE:?}; abandoning it");
                loop_task.abort();
            }
        }
        First::Loop => {
            let _ = tokio::time::timeout(Duration::from_secs(2), metrics_server).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), health_server).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), web_server).await;
        }
    }
    if let Some(elector) = elector {
        // The elector releases the lease when it sees the shutdown; against
        // a server that does not answer, the lease simply expires.
        let _ = tokio::time::timeout(LEASE_RELEASE_GRACE, elector).await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn flatten(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
