//! The FluxReport reconciler: one loop for the singleton `flux`.
//!
//! It recomputes the report every interval (`--reporting-interval`, or the
//! object's `fluxcd.controlplane.io/reconcileEvery`), at once when
//! `reconcile.fluxcd.io/requestedAt` changes or the FluxInstance changes,
//! pauses while `fluxcd.controlplane.io/reconcile: disabled`, and re-creates
//! the object when it is deleted. Every replica computes and serves metrics;
//! only the leader writes the FluxReport, the FluxInstance status and events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flux_reporter_api::condition::{self, Condition, ConditionStatus};
use flux_reporter_api::constants::*;
use flux_reporter_api::fluxinstance::FluxInstanceStatus;
use flux_reporter_api::{FluxInstance, FluxReport, FluxReportSpec};
use flux_reporter_report::health::{self, Verdict};
use flux_reporter_report::instance::{self, Verification};
use flux_reporter_report::merge::keep_last_good;
use flux_reporter_report::source::error_chain;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::sync::ConfiguredRoot;
use flux_reporter_report::{Options, Outcome, Section, compute};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{EventKind, EventSink, Target};
use crate::metrics::Metrics;
use crate::notifier::{self, Notifier, NotifierConfig};
use crate::server::Health;
use crate::transitions::{self, HealthState, Previous, Severity};

/// Everything the loop needs, handed in by `run`.
pub struct Context {
    pub client: Client,
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
}

/// How a write of the report went, for the retry timing.
const RETRY_AFTER_WRITE_ERROR: Duration = Duration::from_secs(30);
/// FluxInstance changes arrive in bursts (spec, then status): wait this long.
const INSTANCE_DEBOUNCE: Duration = Duration::from_secs(2);

struct State {
    /// The newest FluxReport seen by the watch (annotations, spec).
    report: Option<FluxReport>,
    /// The spec last published (or read at start): the last good values.
    previous: Option<FluxReportSpec>,
    /// `requestedAt` value of the last run that was written.
    handled_request: Option<String>,
    next_run: Option<Instant>,
    health: Option<HealthState>,
    notifier: Option<Notifier>,
    events: EventSink,
    /// Generation and annotations of the FluxInstance last seen.
    instance_key: Option<String>,
    /// Who owns the FluxInstance when it is not us (the Flux Operator), as
    /// last logged.
    instance_owner: Option<String>,
    runs: u64,
}

fn annotation<'a>(obj: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

fn is_disabled(report: &FluxReport) -> bool {
    annotation(report, RECONCILE_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case(RECONCILE_DISABLED))
}

/// The per-object interval, or the global one when absent or invalid.
fn interval_of(report: Option<&FluxReport>, global: Duration) -> Duration {
    report
        .and_then(|r| annotation(r, RECONCILE_EVERY_ANNOTATION))
        .and_then(|v| flux_reporter_report::duration::parse(v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(global)
}

/// Run the loop until `shutdown` fires.
pub async fn run(ctx: Context, mut shutdown: watch::Receiver<bool>) {
    let reports: Api<FluxReport> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let instances: Api<FluxInstance> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let selector = format!("metadata.name={SINGLETON_NAME}");
    let watch_config = watcher::Config::default()
        .fields(&selector)
        .timeout(ctx.watch_timeout_secs);
    let mut report_watch = watcher::watcher(reports.clone(), watch_config.clone())
        .default_backoff()
        .boxed();
    let mut instance_watch = watcher::watcher(instances.clone(), watch_config)
        .default_backoff()
        .boxed();
    let mut leader = ctx.leader.clone();

    let mut state = State {
        report: None,
        previous: None,
        handled_request: None,
        next_run: None,
        health: None,
        notifier: None,
        events: EventSink::new(ctx.client.clone(), ctx.reporting_instance.clone(), None),
        instance_key: None,
        instance_owner: None,
        runs: 0,
    };
    if !ctx.events_addr.is_empty() && !ctx.notifications_disabled {
        state.set_notifier(&ctx, ctx.events_addr.clone());
    }

    // Start from the report in the cluster: its spec is the last good value.
    // (When it cannot be read, the first run goes ahead: the watch and the
    // next leader turn create it if it is missing.)
    match reports.get_opt(SINGLETON_NAME).await {
        Ok(Some(r)) => {
            state.handled_request = r
                .status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.clone());
            state.previous = Some(r.spec.clone());
            state.report = Some(r);
        }
        Ok(None) => {
            if *leader.borrow() {
                ensure_report(&ctx, &reports, &mut state).await;
            }
        }
        Err(e) => tracing::warn!(error = %error_chain(&e), "cannot read the FluxReport at start"),
    }
    state.next_run = Some(Instant::now());
    let mut in_init = false;
    let mut seen_in_init = false;
    let mut instance_due: Option<Instant> = None;
    let mut instance_synced = false;
    let mut instance_watch_failing = false;

    loop {
        let next = state.next_run;
        let due = instance_due;
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = sleep_until(next) => {
                if !run_or_stop(&ctx, &reports, &instances, &mut state, &mut shutdown).await {
                    break;
                }
            }
            _ = sleep_until(due) => {
                instance_due = None;
                if !state.report.as_ref().is_some_and(is_disabled)
                    && !run_or_stop(&ctx, &reports, &instances, &mut state, &mut shutdown).await
                {
                    break;
                }
            }
            changed = leader.changed() => {
                if changed.is_err() { break; }
                if *leader.borrow() {
                    tracing::info!("leading: ensuring the FluxReport and running a report");
                    ensure_report(&ctx, &reports, &mut state).await;
                    state.next_run = Some(Instant::now());
                }
            }
            Some(event) = report_watch.next() => match event {
                Ok(Event::Apply(r)) | Ok(Event::InitApply(r)) => {
                    if in_init { seen_in_init = true; }
                    on_report_seen(&ctx, &mut state, r);
                }
                Ok(Event::Delete(_)) => {
                    tracing::info!("the FluxReport was deleted");
                    state.report = None;
                    if *leader.borrow() {
                        ensure_report(&ctx, &reports, &mut state).await;
                    }
                    state.next_run = Some(Instant::now());
                }
                Ok(Event::Init) => { in_init = true; seen_in_init = false; }
                Ok(Event::InitDone) => {
                    in_init = false;
                    // A relist without the report: it may have been deleted
                    // while the watch was down (or created after the list).
                    if !seen_in_init && *leader.borrow() && ensure_report(&ctx, &reports, &mut state).await {
                        state.next_run = Some(Instant::now());
                    }
                }
                Err(e) => tracing::warn!(error = %error_chain(&e), "FluxReport watch failed; retrying"),
            },
            Some(event) = instance_watch.next() => match event {
                Ok(Event::Apply(i)) | Ok(Event::InitApply(i)) => {
                    // Our own status writes come back here too: only spec
                    // (generation) and annotation changes deserve a new run,
                    // and the first list is covered by the run at start.
                    let key = instance_key(&i);
                    if state.instance_key.as_ref() != Some(&key) {
                        if instance_synced {
                            instance_due = Some(Instant::now() + INSTANCE_DEBOUNCE);
                        }
                        state.instance_key = Some(key);
                    }
                }
                Ok(Event::Delete(_)) => {
                    state.instance_key = None;
                    instance_due = Some(Instant::now() + INSTANCE_DEBOUNCE);
                }
                Ok(Event::InitDone) => {
                    instance_synced = true;
                    instance_watch_failing = false;
                }
                Ok(_) => {}
                Err(e) => {
                    // Without the FluxInstance CRD this fails on every retry:
                    // say it once, then keep quiet until it recovers.
                    if instance_watch_failing {
                        tracing::debug!(error = %error_chain(&e), "FluxInstance watch failed; retrying");
                    } else {
                        tracing::warn!(error = %error_chain(&e), "FluxInstance watch failed; retrying (further failures are logged at debug)");
                    }
                    instance_watch_failing = true;
                }
            },
        }
    }
    if let Some(n) = state.notifier.take() {
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
    tracing::info!("report loop stopped");
}

/// One run, abandoned if shutdown comes first (every write is an idempotent
/// server-side apply, so a cut run leaves the previous report in place).
/// False when shutting down.
async fn run_or_stop(
    ctx: &Context,
    reports: &Api<FluxReport>,
    instances: &Api<FluxInstance>,
    state: &mut State,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = run_once(ctx, reports, instances, state) => true,
        _ = shutdown.wait_for(|stop| *stop) => {
            tracing::info!("shutting down: the report run in progress is abandoned");
            false
        }
    }
}

/// A server-side apply body for our singleton `kind`, carrying only `field`
/// (`spec` or `status`): the fields we own.
fn apply_body(
    kind: &str,
    namespace: &str,
    field: &str,
    value: &impl serde::Serialize,
) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": SINGLETON_NAME, "namespace": namespace},
        field: value,
    })
}

/// Server-side apply as the field manager `flux-reporter`, taking over fields
/// another manager set (a user's `kubectl apply` of the sample, for instance).
fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn instance_key(i: &FluxInstance) -> String {
    let annotations: BTreeMap<&String, &String> = i.annotations().iter().collect();
    format!(
        "{}|{}|{:?}",
        i.uid().unwrap_or_default(),
        i.metadata.generation.unwrap_or(0),
        annotations
    )
}

/// A FluxReport came by the watch: react to annotation changes only (our own
/// spec and status writes come back here too).
fn on_report_seen(ctx: &Context, state: &mut State, report: FluxReport) {
    let before = state.report.as_ref();
    let requested = annotation(&report, REQUESTED_AT_ANNOTATION).map(str::to_string);
    let was_disabled = before.is_some_and(is_disabled);
    let now_disabled = is_disabled(&report);
    let interval_changed = before.map(|b| annotation(b, RECONCILE_EVERY_ANNOTATION))
        != Some(annotation(&report, RECONCILE_EVERY_ANNOTATION));
    let sync_changed = before.map(|b| annotation(b, SYNC_NAME_ANNOTATION))
        != Some(annotation(&report, SYNC_NAME_ANNOTATION));
    if !*ctx.leader.borrow() {
        // Followers learn the last good values from what the leader wrote.
        state.previous = Some(report.spec.clone());
    }
    state.report = Some(report);
    if now_disabled {
        if !was_disabled {
            tracing::info!("reporting disabled by the {RECONCILE_ANNOTATION} annotation");
        }
        state.next_run = None;
        return;
    }
    let new_request = requested.is_some() && requested != state.handled_request;
    if was_disabled || new_request || interval_changed || sync_changed || state.next_run.is_none() {
        state.next_run = Some(Instant::now());
    }
}

/// Create the singleton when it does not exist (never overwrite an existing
/// report: its spec is the last good value). True when it was created.
async fn ensure_report(ctx: &Context, reports: &Api<FluxReport>, state: &mut State) -> bool {
    match reports.get_opt(SINGLETON_NAME).await {
        Ok(Some(_)) => false,
        Ok(None) => {
            let initial = FluxReportSpec::initial(ctx.options.operator.clone());
            let body = apply_body(FLUX_REPORT_KIND, &ctx.namespace, "spec", &initial);
            let params = apply_params();
            match reports
                .patch(SINGLETON_NAME, &params, &Patch::Apply(&body))
                .await
            {
                Ok(r) => {
                    tracing::info!(namespace = %ctx.namespace, "created FluxReport {SINGLETON_NAME}");
                    state.report = Some(r);
                    true
                }
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "cannot create the FluxReport");
                    false
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot read the FluxReport");
            false
        }
    }
}

/// One report run: compute, publish metrics, and (leader only) write.
async fn run_once(
    ctx: &Context,
    reports: &Api<FluxReport>,
    instances: &Api<FluxInstance>,
    state: &mut State,
) {
    let report = state.report.clone();
    if report.as_ref().is_some_and(is_disabled) {
        state.next_run = None;
        ctx.health.watchdog.disarm();
        return;
    }
    let interval = interval_of(report.as_ref(), ctx.interval);
    ctx.health.watchdog.arm(interval, ctx.report_timeout);
    let requested = report
        .as_ref()
        .and_then(|r| annotation(r, REQUESTED_AT_ANNOTATION))
        .map(str::to_string);

    let mut options = ctx.options.clone();
    options.sync_root = ctx.sync_name_flag.clone().or_else(|| {
        report
            .as_ref()
            .and_then(|r| annotation(r, SYNC_NAME_ANNOTATION))
            .and_then(|v| {
                ConfiguredRoot::parse(v, &ctx.namespace, "the FluxReport annotation syncName")
            })
    });
    let source =
        LiveSource::new(ctx.client.clone(), ctx.live.clone()).with_deadline(ctx.report_timeout);
    let mut outcome = compute(&source, &options).await;
    let spec = keep_last_good(state.previous.as_ref(), &outcome);
    ctx.metrics.publish(&outcome, &spec);
    state.runs += 1;
    // The loop makes progress when the API server answered this run; a run
    // that only met silence does not feed the liveness watchdog.
    let reached = source.mute_cause().is_none()
        && Section::ALL.iter().any(|section| !outcome.failed(*section));
    if reached {
        ctx.health.watchdog.progress();
    }
    log_run(state.runs, &outcome, *ctx.leader.borrow());
    ctx.health.set_ready();

    let mut next = interval;
    if !reached {
        // No request of this run got through: every write would wait out
        // its timeout too. Keep the previous report; the next run tries again.
        tracing::warn!(
            cause = source
                .mute_cause()
                .unwrap_or_else(|| "every section failed".into()),
            "not writing this run: the previous report stays"
        );
    } else if *ctx.leader.borrow() {
        // Read the FluxInstance first: when the Flux Operator owns it, the
        // report's Ready message says that we step back.
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
            outcome.notes.push(owned_note(owner));
        }
        match write_report(ctx, reports, &spec, &outcome, requested.as_deref()).await {
            Ok(written) => {
                state.handled_request = requested.clone();
                state.report = Some(written);
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "cannot write the FluxReport; the previous report stays");
                next = next.min(RETRY_AFTER_WRITE_ERROR);
            }
        }
        if let Some(instance) = instance {
            handle_instance(
                ctx,
                instances,
                state,
                instance,
                owner.is_some(),
                &spec,
                &outcome,
            )
            .await;
        }
    }
    state.previous = Some(spec);
    state.next_run = Some(Instant::now() + next);
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

/// Server-side apply of the spec, then of the status (Ready condition and
/// the handled request). Returns the written object.
async fn write_report(
    ctx: &Context,
    reports: &Api<FluxReport>,
    spec: &FluxReportSpec,
    outcome: &Outcome,
    requested: Option<&str>,
) -> Result<FluxReport, kube::Error> {
    let params = apply_params();
    let body = apply_body(FLUX_REPORT_KIND, &ctx.namespace, "spec", &spec);
    let written = reports
        .patch(SINGLETON_NAME, &params, &Patch::Apply(&body))
        .await?;

    // The Ready time is renewed on every run, even when the message happens
    // to repeat: it is how `kubectl get fluxreport` (LASTUPDATED) and alerts
    // tell a fresh report from a stale one.
    let readiness = outcome.readiness();
    let conditions = vec![Condition::new(
        READY_CONDITION,
        ConditionStatus::from(readiness.ready),
        readiness.reason,
        &readiness.message,
        written.metadata.generation,
        Time(Timestamp::now()),
    )];
    let mut status = json!({ "conditions": conditions });
    let handled = requested.map(str::to_string).or_else(|| {
        written
            .status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.clone())
    });
    if let Some(h) = handled {
        status["lastHandledReconcileAt"] = json!(h);
    }
    let body = apply_body(FLUX_REPORT_KIND, &ctx.namespace, "status", &status);
    reports
        .patch_status(SINGLETON_NAME, &params, &Patch::Apply(&body))
        .await
}

/// The Flux Operator, when it owns this FluxInstance: its finalizer
/// (`fluxcd.controlplane.io/…`) or a managed-fields entry of its field
/// manager `flux-operator`. Nobody else counts as an owner: a status written by
/// `kubectl patch`, a restore tool or a script is not a controller, and our
/// forced server-side apply takes those fields over.
pub fn flux_operator_owner(instance: &FluxInstance) -> Option<String> {
    if let Some(f) = instance
        .finalizers()
        .iter()
        .find(|f| f.starts_with(FLUX_OPERATOR_FINALIZER_PREFIX))
    {
        return Some(format!("the Flux Operator (finalizer {f})"));
    }
    instance
        .managed_fields()
        .iter()
        .any(|m| m.manager.as_deref() == Some(FLUX_OPERATOR_MANAGER))
        .then(|| format!("the Flux Operator (field manager {FLUX_OPERATOR_MANAGER})"))
}

/// The note carried by the FluxReport's Ready message while the Flux
/// Operator owns the FluxInstance, and logged once at info level.
fn owned_note(owner: &str) -> String {
    format!(
        "FluxInstance {SINGLETON_NAME} is managed by {owner}: flux-reporter only reads it \
         (no status writes, no events, no notifications)"
    )
}

/// Verify the FluxInstance, write its status and emit transition events; with
/// no FluxInstance, events about the installation go to the FluxReport.
async fn handle_instance(
    ctx: &Context,
    instances: &Api<FluxInstance>,
    state: &mut State,
    instance: Option<FluxInstance>,
    owned_by_flux_operator: bool,
    spec: &FluxReportSpec,
    outcome: &Outcome,
) {
    let domain = instance
        .as_ref()
        .and_then(|i| i.spec.cluster.as_ref())
        .and_then(|c| c.domain.clone())
        .unwrap_or_else(|| "cluster.local".into());
    ensure_notifier(ctx, state, spec, &domain);
    let Some(instance) = instance else {
        // No declaration: judge the installation by what the report sees.
        let now = report_health(spec, outcome);
        let previous = state
            .health
            .clone()
            .map(Previous::Seen)
            .unwrap_or(Previous::Unknown);
        if let Some(report) = state.report.clone() {
            let target = Target::from_object(&report);
            emit_transitions(state, &target, &previous, &now).await;
        }
        state.health = Some(now);
        return;
    };
    if owned_by_flux_operator {
        state.health = None;
        return;
    }
    let verification = instance::verify(&instance.spec, spec, outcome);
    let now = instance_health(&verification, spec);
    let previous = match &state.health {
        Some(h) => Previous::Seen(h.clone()),
        None => persisted(&instance),
    };
    if let Err(e) = write_instance_status(ctx, instances, &instance, &verification).await {
        tracing::error!(error = %error_chain(&e), "cannot write the FluxInstance status");
    }
    emit_transitions(state, &Target::from_object(&instance), &previous, &now).await;
    state.health = Some(now);
}

fn ensure_notifier(ctx: &Context, state: &mut State, spec: &FluxReportSpec, domain: &str) {
    if state.notifier.is_some() || ctx.notifications_disabled {
        return;
    }
    let present = spec
        .components
        .iter()
        .any(|c| c.name == "notification-controller");
    if let Some(address) = notifier::derive_address(
        &ctx.namespace,
        domain,
        present,
        &ctx.events_addr,
        ctx.notifications_disabled,
    ) {
        state.set_notifier(ctx, address);
    }
}

impl State {
    /// Log once when the Flux Operator starts or stops owning the FluxInstance.
    fn note_owner(&mut self, owner: Option<&str>) {
        if self.instance_owner.as_deref() == owner {
            return;
        }
        match owner {
            Some(o) => tracing::info!(owner = %o, "{}", owned_note(o)),
            None if self.instance_owner.is_some() => tracing::info!(
                "the Flux Operator no longer manages FluxInstance {SINGLETON_NAME}: \
                 flux-reporter writes its status and events again"
            ),
            None => {}
        }
        self.instance_owner = owner.map(str::to_string);
    }

    fn set_notifier(&mut self, ctx: &Context, address: String) {
        tracing::info!(%address, "forwarding events to notification-controller");
        let n = Notifier::spawn(NotifierConfig::new(address));
        self.events = EventSink::new(
            ctx.client.clone(),
            ctx.reporting_instance.clone(),
            Some(n.clone()),
        );
        self.notifier = Some(n);
    }
}

/// The previous health as the FluxInstance status records it.
fn persisted(instance: &FluxInstance) -> Previous {
    let Some(status) = &instance.status else {
        return Previous::Unknown;
    };
    let Some(ready) = status
        .conditions
        .as_deref()
        .and_then(|c| condition::find(c, READY_CONDITION))
        .filter(|c| c.status != ConditionStatus::Unknown)
    else {
        return Previous::Unknown;
    };
    Previous::Persisted {
        healthy: ready.status == ConditionStatus::True,
        message: ready.message.clone(),
        version: status.last_applied_revision.clone(),
        components: status
            .components
            .as_ref()
            .map(|c| c.iter().map(|c| c.name.clone()).collect()),
    }
}

fn instance_health(v: &Verification, spec: &FluxReportSpec) -> HealthState {
    HealthState {
        healthy: v.ready != Some(false),
        failing: v
            .problems
            .iter()
            .map(|p| (p.subject.clone(), p.message.clone()))
            .collect(),
        reason: v.reason.to_string(),
        message: v.message.clone(),
        version: v.revision.clone(),
        components: spec
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect::<BTreeSet<_>>(),
    }
}

/// Health of the installation when there is no FluxInstance: distribution,
/// components and sync (failing app objects are Flux's own alerts' business).
fn report_health(spec: &FluxReportSpec, outcome: &Outcome) -> HealthState {
    let h = health::assess(outcome);
    let problems: Vec<_> = h
        .problems
        .iter()
        .filter(|p| p.area != "reconcilers")
        .collect();
    let reason = match problems.first().map(|p| p.area) {
        Some("distribution") => instance::reasons::NOT_INSTALLED,
        Some("components") => instance::reasons::COMPONENTS_NOT_READY,
        Some("sync") => instance::reasons::SYNC_FAILED,
        _ => instance::reasons::SUCCEEDED,
    };
    let message = problems
        .iter()
        .map(|p| match p.area {
            "components" => format!("component {} is not ready: {}", p.subject, p.message),
            "sync" => format!("sync {} is not ready: {}", p.subject, p.message),
            _ => p.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let unknown_only = problems.is_empty() && h.verdict == Verdict::Unknown;
    HealthState {
        healthy: problems.is_empty() || unknown_only,
        failing: problems
            .iter()
            .map(|p| (format!("{}/{}", p.area, p.subject), p.message.clone()))
            .collect(),
        reason: reason.into(),
        message: if problems.is_empty() {
            "all components ready".into()
        } else {
            message
        },
        version: spec.distribution.version.clone(),
        components: spec.components.iter().map(|c| c.name.clone()).collect(),
    }
}

async fn emit_transitions(state: &State, target: &Target, previous: &Previous, now: &HealthState) {
    for t in transitions::transitions(previous, now) {
        let kind = match t.severity {
            Severity::Normal => EventKind::Normal,
            Severity::Warning => EventKind::Warning,
        };
        let mut metadata = BTreeMap::new();
        if let Some(v) = &now.version {
            metadata.insert(REVISION_ANNOTATION.to_string(), v.clone());
        }
        tracing::info!(reason = %t.reason, kind = ?t.severity, object = %format!("{}/{}", target.kind, target.name), "event: {}", t.message);
        state
            .events
            .emit(target, kind, &t.reason, &t.message, metadata)
            .await;
    }
}

/// Server-side apply of the verification into the FluxInstance status.
async fn write_instance_status(
    ctx: &Context,
    instances: &Api<FluxInstance>,
    instance: &FluxInstance,
    v: &Verification,
) -> Result<(), kube::Error> {
    let old = instance.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let status = match v.ready {
        Some(true) => ConditionStatus::True,
        Some(false) => ConditionStatus::False,
        None => ConditionStatus::Unknown,
    };
    condition::set(
        &mut conditions,
        Condition::new(
            READY_CONDITION,
            status,
            v.reason,
            &v.message,
            instance.metadata.generation,
            Time(Timestamp::now()),
        ),
    );
    conditions.retain(|c| c.type_ == READY_CONDITION);
    let new = FluxInstanceStatus {
        conditions: Some(conditions),
        components: Some(v.components.clone()),
        last_applied_revision: v.revision.clone().or(old.last_applied_revision),
        last_attempted_revision: v.revision.clone().or(old.last_attempted_revision),
        last_handled_reconcile_at: annotation(instance, REQUESTED_AT_ANNOTATION)
            .map(str::to_string)
            .or(old.last_handled_reconcile_at),
        ..Default::default()
    };
    let body = apply_body(FLUX_INSTANCE_KIND, &ctx.namespace, "status", &new);
    let params = apply_params();
    instances
        .patch_status(SINGLETON_NAME, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn report_with(annotations: &[(&str, &str)]) -> FluxReport {
        let mut r = FluxReport::new(SINGLETON_NAME, FluxReportSpec::default());
        r.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r
    }

    #[test]
    fn reconcile_every_overrides_the_interval_and_garbage_falls_back() {
        let global = Duration::from_secs(300);
        assert_eq!(
            interval_of(
                Some(&report_with(&[(RECONCILE_EVERY_ANNOTATION, "30s")])),
                global
            ),
            Duration::from_secs(30)
        );
        assert_eq!(
            interval_of(
                Some(&report_with(&[(RECONCILE_EVERY_ANNOTATION, "soon")])),
                global
            ),
            global
        );
        assert_eq!(
            interval_of(
                Some(&report_with(&[(RECONCILE_EVERY_ANNOTATION, "0s")])),
                global
            ),
            global
        );
        assert_eq!(interval_of(None, global), global);
    }

    #[test]
    fn disabled_is_case_insensitive() {
        assert!(is_disabled(&report_with(&[(
            RECONCILE_ANNOTATION,
            "Disabled"
        )])));
        assert!(!is_disabled(&report_with(&[(
            RECONCILE_ANNOTATION,
            "enabled"
        )])));
    }

    fn managed_by(manager: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            subresource: subresource.map(str::to_string),
            operation: Some("Update".into()),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_flux_operator_owns_the_instance() {
        let mut i = FluxInstance::new(SINGLETON_NAME, Default::default());
        assert_eq!(flux_operator_owner(&i), None);

        i.metadata.finalizers = Some(vec!["fluxcd.controlplane.io/finalizer".into()]);
        let owner = flux_operator_owner(&i).expect("finalizer makes it owned");
        assert!(
            owner.contains("fluxcd.controlplane.io/finalizer"),
            "{owner}"
        );

        i.metadata.finalizers = None;
        i.metadata.managed_fields = Some(vec![managed_by("flux-operator", Some("status"))]);
        let owner = flux_operator_owner(&i).expect("flux-operator manager makes it owned");
        assert!(owner.contains("field manager flux-operator"), "{owner}");
        // Any of its entries counts, spec or status.
        i.metadata.managed_fields = Some(vec![managed_by("flux-operator", None)]);
        assert!(flux_operator_owner(&i).is_some());
    }

    #[test]
    fn a_status_written_by_kubectl_or_a_restore_tool_is_not_an_owner() {
        let mut i = FluxInstance::new(SINGLETON_NAME, Default::default());
        for manager in [
            "kubectl-patch",
            "kubectl-edit",
            "velero-server",
            "kubectl",
            "migrate.sh",
        ] {
            i.metadata.managed_fields = Some(vec![
                managed_by("kubectl-create", None),
                managed_by(manager, Some("status")),
                managed_by(FIELD_MANAGER, Some("status")),
            ]);
            assert_eq!(flux_operator_owner(&i), None, "{manager}");
        }
        // Someone else's finalizer is not the Flux Operator's.
        i.metadata.finalizers = Some(vec!["example.com/protect".into()]);
        assert_eq!(flux_operator_owner(&i), None);
    }

    #[test]
    fn the_owned_note_names_the_owner_and_what_we_do_not_do() {
        let note = owned_note("the Flux Operator (field manager flux-operator)");
        assert!(note.contains("flux-operator"), "{note}");
        assert!(note.contains("no status writes, no events"), "{note}");
    }
}
