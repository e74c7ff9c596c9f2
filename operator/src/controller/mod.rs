//! The FluxReport reconciler for the singleton `flux`, driven by
//! kube-runtime's `Controller`.
//!
//! - It runs a report every interval (`--reporting-interval`, or the object's
//!   `fluxcd.controlplane.io/reconcileEvery`): `reconcile` returns
//!   `Action::requeue` for the interval, less the debounce the Controller adds.
//! - It runs at once when the FluxReport's annotations change
//!   (`reconcile.fluxcd.io/requestedAt`, `reconcile: disabled`,
//!   `reconcileEvery`, `syncName`): the FluxReport stream is filtered by
//!   `predicates::annotations`, so our own spec and status writes never
//!   trigger a run.
//! - It runs when the FluxInstance's spec or annotations change (generation
//!   and annotations predicates; our own status writes do not pass), mapped
//!   to the singleton by `watches_stream` and debounced by the Controller,
//!   and when the FluxInstance is deleted (`reconcile_all_on`).
//! - While `reconcile: disabled`, `reconcile` returns `await_change`.
//! - The leader creates the singleton when it is missing (at start, when it
//!   becomes the leader, after a deletion): `singleton::keep`.
//!
//! Every replica computes and serves metrics; only the leader writes the
//! FluxReport, the FluxInstance status and events.

mod instance;
mod plan;
mod singleton;

use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flux_reporter_api::constants::*;
use flux_reporter_api::{FluxInstance, FluxReport, FluxReportSpec};
use flux_reporter_report::merge::keep_last_good;
use flux_reporter_report::source::error_chain;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::sync::ConfiguredRoot;
use flux_reporter_report::{Options, Outcome, compute};
use futures::StreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Predicate;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Api, Client};
use tokio::sync::{Mutex, Notify, watch};

use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::server::Health;
use crate::transitions::HealthState;

pub use instance::flux_operator_owner;
use plan::Plan;

/// Everything the reconciler needs, handed in by `run`.
pub struct Context {
    pub client: Client,
    /// For the report's reads: no kube-level retry (see `ApiClient::reads`).
    pub reads: Client,
    pub namespace: String,
    pub interval: Duration,
    /// Time allowed for one report run.
    pub report_timeout: Duration,
    /// Server-side timeout of the watches (below the request timeout).
    pub watch_timeout_secs: u32,
    pub live: LiveConfig,
    pub options: Options,
    pub sync_name_flag: Option<ConfiguredRoot>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub events_addr: String,
    pub notifications_disabled: bool,
    pub reporting_instance: String,
    pub leader: watch::Receiver<bool>,
    /// True once the process is shutting down: a run in progress is abandoned.
    pub shutdown: watch::Receiver<bool>,
    /// The status page's snapshot and changes (`--web-addr`), when served.
    pub web: Option<Arc<crate::web::Published>>,
}

/// What one run hands the next. The Controller never reconciles the
/// singleton twice at once, so the lock is never contended.
pub struct State {
    /// The spec last published (or read from the cluster): the last good values.
    previous: Option<FluxReportSpec>,
    health: Option<HealthState>,
    notifier: Option<Notifier>,
    events: EventSink,
    /// Who owns the FluxInstance when it is not us (the Flux Operator), as last logged.
    instance_owner: Option<String>,
    /// Where the status page records the transitions emitted.
    web: Option<Arc<crate::web::Published>>,
    disabled: bool,
    runs: u64,
}

/// Why a reconcile failed; the report itself never fails a reconcile (its
/// failures are recorded in it), only writing it can.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the FluxReport; the previous report stays")]
    WriteReport(#[source] kube::Error),
}

/// How soon a run is retried after a failed write.
const RETRY_AFTER_WRITE_ERROR: Duration = Duration::from_secs(30);
/// Triggers closer together than this make one run (a FluxInstance edited
/// twice, an annotation set twice). Every trigger waits this long first,
/// `requestedAt` included, so it is kept short: bursts come from one client's
/// writes, milliseconds apart.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The action for a run `after` from now. kube-runtime's scheduler adds the
/// debounce to every request, the reconciler's own requeues included
/// (`scheduler.rs`, `schedule_message`), so a plain `Action::requeue(interval)`
/// would run every interval plus the debounce.
fn requeue_in(after: Duration) -> Action {
    Action::requeue(after.saturating_sub(DEBOUNCE))
}

/// Run the Controller until the shutdown signal.
pub async fn run(ctx: Context) {
    let mut state = State {
        previous: None,
        health: None,
        notifier: None,
        events: EventSink::new(ctx.client.clone(), ctx.reporting_instance.clone(), None),
        instance_owner: None,
        web: ctx.web.clone(),
        disabled: false,
        runs: 0,
    };
    if !ctx.events_addr.is_empty() && !ctx.notifications_disabled {
        state.set_notifier(&ctx, ctx.events_addr.clone());
    }
    let state = Arc::new(Mutex::new(state));
    let ctx = Arc::new(ctx);
    let reports: Api<FluxReport> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let instances: Api<FluxInstance> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let selector = format!("metadata.name={SINGLETON_NAME}");
    let watch_config = watcher::Config::default()
        .fields(&selector)
        .timeout(ctx.watch_timeout_secs);

    // The FluxReport: every event feeds the store; deletions and relists wake
    // the keeper of the singleton; only annotation changes trigger a run.
    let wake = Arc::new(Notify::new());
    let (reader, writer) = reflector::store();
    let on_event = wake.clone();
    let report_stream = watcher::watcher(reports, watch_config.clone())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| match event {
            Ok(Event::Delete(_)) => {
                tracing::info!("the FluxReport was deleted");
                on_event.notify_one();
            }
            Ok(Event::InitDone) => on_event.notify_one(),
            Err(e) => tracing::warn!(error = %error_chain(e), "FluxReport watch failed; retrying"),
            Ok(_) => {}
        })
        .applied_objects()
        .predicate_filter(predicates::annotations, Default::default());

    // The FluxInstance: spec and annotation changes, and its deletion (events
    // then go to the FluxReport). Without its CRD the watch fails on every
    // retry: say it once, then keep quiet until it works.
    let failing = AtomicBool::new(false);
    let (instance_deleted, instance_deletions) = futures::channel::mpsc::unbounded();
    let instance_stream = watcher::watcher(instances, watch_config)
        .default_backoff()
        .inspect(move |event| match event {
            Err(e) if failing.swap(true, Ordering::Relaxed) => {
                tracing::debug!(error = %error_chain(e), "FluxInstance watch failed; retrying");
            }
            Err(e) => tracing::warn!(
                error = %error_chain(e),
                "FluxInstance watch failed; retrying (further failures are logged at debug)"
            ),
            Ok(Event::InitDone) => failing.store(false, Ordering::Relaxed),
            Ok(Event::Delete(_)) => {
                let _ = instance_deleted.unbounded_send(());
            }
            Ok(_) => {}
        })
        .applied_objects()
        .filter(|r| ready(r.is_ok()))
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    let singleton = ObjectRef::<FluxReport>::new(SINGLETON_NAME).within(&ctx.namespace);

    let keeper = tokio::spawn(singleton::keep(ctx.clone(), wake.clone()));
    let last_state = state.clone();
    let mut shutdown = ctx.shutdown.clone();
    Controller::for_stream(report_stream, reader)
        .watches_stream(instance_stream, move |_| Some(singleton.clone()))
        .reconcile_all_on(instance_deletions)
        .reconcile_all_on(leadership_gained(ctx.leader.clone(), wake))
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run(
            move |report, ctx| reconcile(report, ctx, state.clone()),
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                // Reconcile errors are logged by `error_policy`; the rest
                // (a requeue for a report just deleted, a watch error
                // already logged) matter only when debugging.
                tracing::debug!(error = %error_chain(&e), "controller");
            }
        })
        .await;
    keeper.abort();
    if let Ok(mut state) = last_state.try_lock() {
        state.shutdown().await;
    }
    tracing::info!("report loop stopped");
}

/// Emits once each time this replica becomes the leader, after waking the
/// keeper of the singleton.
fn leadership_gained(
    leader: watch::Receiver<bool>,
    wake: Arc<Notify>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((leader, wake), |(mut leader, wake)| async move {
        loop {
            leader.changed().await.ok()?;
            if *leader.borrow() {
                tracing::info!("leading: ensuring the FluxReport and running a report");
                wake.notify_one();
                return Some(((), (leader, wake)));
            }
        }
    })
}

/// One reconcile: a report run, abandoned if shutdown comes first (every
/// write is an idempotent server-side apply, so a cut run leaves the
/// previous report in place).
async fn reconcile(
    report: Arc<FluxReport>,
    ctx: Arc<Context>,
    state: Arc<Mutex<State>>,
) -> Result<Action, Error> {
    let mut shutdown = ctx.shutdown.clone();
    if *shutdown.borrow() {
        return Ok(Action::await_change());
    }
    let mut state = state.lock().await;
    tokio::select! {
        result = run_once(&ctx, &mut state, &report) => result,
        _ = shutdown.wait_for(|stop| *stop) => {
            tracing::info!("shutting down: the report run in progress is abandoned");
            Ok(Action::await_change())
        }
    }
}

fn error_policy(report: Arc<FluxReport>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::error!(error = %error_chain(error), "report run failed");
    let interval = plan::interval_of(&report, ctx.interval);
    requeue_in(interval.min(RETRY_AFTER_WRITE_ERROR))
}

/// Compute, publish metrics, and (leader only) write the report, the
/// FluxInstance status and the events.
async fn run_once(ctx: &Context, state: &mut State, report: &FluxReport) -> Result<Action, Error> {
    let leader = *ctx.leader.borrow();
    let plan = match plan::plan(
        report,
        ctx.interval,
        &ctx.namespace,
        ctx.sync_name_flag.as_ref(),
    ) {
        Plan::Disabled => {
            if !state.disabled {
                tracing::info!("reporting disabled by the {RECONCILE_ANNOTATION} annotation");
                state.disabled = true;
            }
            ctx.health.watchdog.disarm();
            return Ok(Action::await_change());
        }
        Plan::Run(plan) => plan,
    };
    state.disabled = false;
    ctx.health.watchdog.arm(plan.interval, ctx.report_timeout);
    ctx.metrics.set_interval(plan.interval);
    // The last good values: what this process published; at start, and on
    // followers always, what the report in the cluster holds.
    if state.previous.is_none() || !leader {
        state.previous = Some(report.spec.clone());
    }

    let mut options = ctx.options.clone();
    options.sync_root = plan.sync_root.clone();
    let source =
        LiveSource::new(ctx.reads.clone(), ctx.live.clone()).with_deadline(ctx.report_timeout);
    let mut outcome = compute(&source, &options).await;
    let spec = keep_last_good(state.previous.as_ref(), &outcome);
    state.runs += 1;
    // The loop makes progress when the API server answered this run; a run
    // that only met silence does not feed the liveness watchdog.
    let reached = source.got_through();
    if reached {
        ctx.health.watchdog.progress();
    }
    log_run(state.runs, &outcome, leader);

    let mut result = Ok(requeue_in(plan.interval));
    let mut verified = None;
    if !reached {
        // No request of this run got through: every write would wait out
        // its timeout too. Keep the previous report; the next run tries again.
        tracing::warn!(
            cause = source
                .mute_cause()
                .unwrap_or_else(|| "no request was answered before the report run deadline".into()),
            "not writing this run: the previous report stays"
        );
    } else if leader {
        // Read the FluxInstance first: when the Flux Operator owns it, the
        // report's Ready message says that we step back.
        let instances: Api<FluxInstance> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        let instance = match instances.get_opt(SINGLETON_NAME).await {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot read the FluxInstance");
                None
            }
        };
        let owner = match &instance {
            Some(i) => {
                let owner = i.as_ref().and_then(flux_operator_owner);
                state.note_owner(owner.as_deref());
                owner
            }
            // Unreadable this run: keep what we last knew.
            None => state.instance_owner.clone(),
        };
        if let Some(owner) = &owner {
            outcome.notes.push(instance::owned_note(owner));
        }
        if let Err(e) =
            singleton::write_report(ctx, &spec, &outcome, plan.requested.as_deref()).await
        {
            result = Err(Error::WriteReport(e));
        }
        if let Some(instance) = instance
            && let Some((uid, verification)) = instance::handle_instance(
                ctx,
                state,
                report,
                instance,
                owner.is_some(),
                &spec,
                &outcome,
            )
            .await
        {
            if let Some(rows) = outcome.instance_rows.as_mut() {
                instance::show_written(rows, &uid, &verification);
            }
            verified = Some(verification);
        }
    }
    // Published after the writes, so that `flux_instance_info` shows the
    // FluxInstance as this run left it.
    // The page first: the rows the old page held are then freed with the old
    // metric set, before `publish` hands the freed memory back (`allocator::trim`).
    if let Some(web) = &ctx.web {
        publish_page(ctx, web, &outcome, &spec, verified);
    }
    ctx.metrics.publish(&outcome, &spec);
    ctx.health.set_ready();
    state.previous = Some(spec);
    result
}

/// The status page's snapshot of this run, swapped in whole: the run's own
/// rows (shared with the metrics, not copied), the published spec, and the
/// FluxInstance as this run verified it, or else as its status says.
fn publish_page(
    ctx: &Context,
    web: &crate::web::Published,
    outcome: &Outcome,
    spec: &FluxReportSpec,
    verified: Option<flux_reporter_report::instance::Verification>,
) {
    use crate::web::{InstanceView, Origin, Snapshot, model::Input};
    let instance = match verified {
        Some(v) => Some(InstanceView {
            namespace: ctx.namespace.clone(),
            name: SINGLETON_NAME.into(),
            ready: v.ready,
            reason: v.reason.into(),
            message: v.message,
            verified_here: true,
        }),
        None => outcome
            .instance_rows
            .iter()
            .flatten()
            .find(|r| r.name == SINGLETON_NAME && r.exported_namespace == ctx.namespace)
            .map(|r| InstanceView {
                namespace: r.exported_namespace.clone(),
                name: r.name.clone(),
                ready: match r.ready.as_str() {
                    "True" => Some(true),
                    "False" => Some(false),
                    _ => None,
                },
                reason: r.reason.clone(),
                message: instance_message(outcome, &r.exported_namespace, &r.name),
                verified_here: false,
            }),
    };
    let previous = web.load();
    let finished_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    web.store(Snapshot::next(
        previous.as_deref(),
        Input {
            origin: Origin::Operator {
                pod: ctx.reporting_instance.clone(),
            },
            namespace: &ctx.namespace,
            outcome,
            spec,
            readiness: outcome.readiness(),
            finished_at,
            instance,
        },
    ));
}

/// The Ready message of a FluxInstance as listed (kept for one not ready).
fn instance_message(outcome: &Outcome, namespace: &str, name: &str) -> String {
    outcome
        .operator_rows
        .get(FLUX_INSTANCE_KIND)
        .and_then(|rows| {
            rows.refs()
                .find(|r| r.exported_namespace() == namespace && r.name() == name)
                .and_then(|r| r.detail().map(|d| d.message().to_string()))
        })
        .unwrap_or_default()
}

/// One line per run: info when complete, warn with the causes when not.
fn log_run(run: u64, outcome: &Outcome, leader: bool) {
    let failed: Vec<String> = outcome.failures.iter().map(|f| f.to_string()).collect();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                run,
                duration_ms = outcome.duration.as_millis() as u64,
                objects = outcome.objects,
                kinds = outcome.kinds.len(),
                failed_sections = failed.len(),
                failures = %failed.join("; "),
                leader,
                "report computed"
            )
        };
    }
    if failed.is_empty() {
        line!(info);
    } else {
        line!(warn);
    }
}

impl State {
    /// Stop forwarding, reporting what was delivered.
    pub async fn shutdown(&mut self) {
        if let Some(n) = self.notifier.take() {
            let stats = n.stats();
            tracing::info!(
                delivered = stats.delivered,
                duplicates = stats.duplicates,
                failed = stats.failed,
                dropped = stats.dropped,
                "stopping event forwarding"
            );
            n.shutdown(Duration::from_secs(3)).await;
        }
    }
}
