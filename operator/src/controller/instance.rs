//! The declared installation: who owns the FluxInstance, its verification
//! against the report, its status, and the events (and notifications) on
//! health transitions. With no FluxInstance, events about the installation go
//! to the FluxReport.

use std::collections::{BTreeMap, BTreeSet};

use flux_reporter_api::condition::{self, Condition, ConditionStatus};
use flux_reporter_api::constants::*;
use flux_reporter_api::fluxinstance::{FluxInstanceStatus, Snapshot};
use flux_reporter_api::{FluxInstance, FluxReport, FluxReportSpec};
use flux_reporter_report::Outcome;
use flux_reporter_report::compute::Section;
use flux_reporter_report::health;
use flux_reporter_report::instance::{self, Verification, classes};
use flux_reporter_report::metrics::InstanceRow;
use flux_reporter_report::source::error_chain;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::{Api, ResourceExt};

use super::plan::annotation;
use super::singleton::{apply_body, apply_params};
use super::{Context, State};
use crate::events::{EventKind, EventSink, Target};
use crate::notifier::{self, Notifier, NotifierConfig};
use crate::transitions::{self, HealthState, Part, Previous, Severity};

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
pub fn owned_note(owner: &str) -> String {
    format!(
        "FluxInstance {SINGLETON_NAME} is managed by {owner}: flux-reporter only reads it \
         (no status writes, no events, no notifications)"
    )
}

/// Verify the FluxInstance, write its status and emit transition events; with
/// no FluxInstance, events about the installation go to the FluxReport.
/// Returns the verification when it was written, so the same run's
/// `flux_instance_info` can show it.
pub async fn handle_instance(
    ctx: &Context,
    state: &mut State,
    report: &FluxReport,
    instance: Option<FluxInstance>,
    owned_by_flux_operator: bool,
    spec: &FluxReportSpec,
    outcome: &Outcome,
) -> Option<(String, Verification)> {
    let domain = instance
        .as_ref()
        .and_then(|i| i.spec.cluster.as_ref())
        .and_then(|c| c.domain.clone())
        .unwrap_or_else(|| "cluster.local".into());
    ensure_notifier(ctx, state, spec, &domain);
    let Some(instance) = instance else {
        // No declaration: judge the installation by what the report sees.
        if let Some(mut now) = report_health(spec, outcome) {
            let previous = state
                .health
                .clone()
                .map(Previous::Seen)
                .unwrap_or(Previous::Unknown);
            carry_unread(&mut now, &previous, outcome);
            emit_transitions(state, &Target::from_object(report), &previous, &now).await;
            state.health = Some(now);
        }
        return None;
    };
    if owned_by_flux_operator {
        state.health = None;
        return None;
    }
    let verification = instance::verify(&instance.spec, spec, outcome);
    let previous = match &state.health {
        Some(h) => Previous::Seen(h.clone()),
        None => persisted(&instance),
    };
    let now = instance_health(&verification, spec).map(|mut now| {
        carry_unread(&mut now, &previous, outcome);
        now
    });
    let old_history = instance
        .status
        .as_ref()
        .and_then(|s| s.history.clone())
        .unwrap_or_default();
    let history = match &now {
        Some(now) => record_history(&old_history, now, outcome.duration, Timestamp::now()),
        // Could not tell: the history stays as it was.
        None => old_history,
    };
    let written = match write_instance_status(ctx, &instance, &verification, history).await {
        Ok(()) => Some((instance.uid().unwrap_or_default(), verification)),
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "cannot write the FluxInstance status");
            None
        }
    };
    if let Some(now) = now {
        emit_transitions(state, &Target::from_object(&instance), &previous, &now).await;
        state.health = Some(now);
    }
    written
}

/// `flux_instance_info` as the FluxInstance stands after this run wrote its
/// status: the row listed at the start of the run still carries the previous
/// verdict.
pub fn show_written(rows: &mut [InstanceRow], uid: &str, v: &Verification) {
    for row in rows.iter_mut().filter(|r| r.uid == uid) {
        row.ready = match v.ready {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
        .into();
        row.reason = v.reason.into();
        if let Some(revision) = &v.revision {
            row.revision = revision.clone();
        }
    }
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
    pub(super) fn note_owner(&mut self, owner: Option<&str>) {
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

    pub(super) fn set_notifier(&mut self, ctx: &Context, address: String) {
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
        failing: status
            .history
            .as_deref()
            .and_then(|h| h.first())
            .and_then(|s| s.metadata.as_ref()?.get(HISTORY_FAILING))
            .and_then(|keys| Part::parse_keys(keys)),
        version: status.last_applied_revision.clone(),
        components: status
            .components
            .as_ref()
            .map(|c| c.iter().map(|c| c.name.clone()).collect()),
    }
}

/// The health the verification found, `None` when it could not tell (a section it needs could
/// not be read): that is neither a recovery nor a new failure, so no event, and the next run
/// compares with the last health that was known.
fn instance_health(v: &Verification, spec: &FluxReportSpec) -> Option<HealthState> {
    v.ready?;
    Some(HealthState {
        healthy: v.ready != Some(false),
        failing: v
            .problems
            .iter()
            .map(|p| (Part::new(&p.subject, p.class), p.message.clone()))
            .collect(),
        reason: v.reason.to_string(),
        message: v.message.clone(),
        version: v.revision.clone(),
        components: spec
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect::<BTreeSet<_>>(),
    })
}

/// Health of the installation when there is no FluxInstance: distribution,
/// components and sync (failing app objects are Flux's own alerts' business).
/// `None` when nothing seen is unhealthy but one of those could not be read,
/// as for [`instance_health`].
fn report_health(spec: &FluxReportSpec, outcome: &Outcome) -> Option<HealthState> {
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
    let unknown = [Section::Distribution, Section::Components, Section::Sync]
        .into_iter()
        .any(|s| outcome.failed(s));
    if problems.is_empty() && unknown {
        return None;
    }
    Some(HealthState {
        healthy: problems.is_empty(),
        failing: problems
            .iter()
            .map(|p| {
                let class = match (p.area, p.subject.as_str()) {
                    ("distribution", _) => classes::NOT_INSTALLED,
                    ("components", "controllers") => classes::MISSING,
                    _ => classes::NOT_READY,
                };
                (
                    Part::new(format!("{}/{}", p.area, p.subject), class),
                    p.message.clone(),
                )
            })
            .collect(),
        reason: reason.into(),
        message: if problems.is_empty() {
            "all components ready".into()
        } else {
            message
        },
        version: spec.distribution.version.clone(),
        components: spec.components.iter().map(|c| c.name.clone()).collect(),
    })
}

/// Whether a failing part named `subject` (`component/x`, `sync`, `version` from the
/// verification; `components/x`, `sync/…`, `distribution/…` from the report's health) lies in a
/// section this run could not read.
fn unread(subject: &str, outcome: &Outcome) -> bool {
    let area = subject.split('/').next().unwrap_or(subject);
    match area {
        "component" | "components" => outcome.failed(Section::Components),
        "sync" => outcome.failed(Section::Sync),
        "distribution" => outcome.failed(Section::Distribution),
        "version" => outcome.failed(Section::Distribution) || outcome.failed(Section::Components),
        _ => false,
    }
}

/// A part that was failing and lies in a section this run could not read is still failing as
/// far as we know: it is carried over, so that it is neither announced as recovered now nor as a
/// new failure when the section is read again.
fn carry_unread(now: &mut HealthState, previous: &Previous, outcome: &Outcome) {
    if now.healthy {
        return;
    }
    let before: Vec<(Part, String)> = match previous {
        Previous::Seen(before) => before.failing.clone(),
        // Read back after a restart: the parts without their messages.
        Previous::Persisted {
            failing: Some(parts),
            ..
        } => parts.iter().map(|p| (p.clone(), p.to_string())).collect(),
        _ => return,
    };
    for (part, message) in before {
        if !now.is_failing(&part) && unread(&part.subject, outcome) {
            now.failing.push((part, message));
        }
    }
}

/// The metadata key of a `status.history` snapshot that lists its failing parts.
const HISTORY_FAILING: &str = "failing";
/// The metadata key of a `status.history` snapshot that holds the Flux version, as the Flux
/// Operator's history has it.
const HISTORY_FLUX: &str = "flux";
/// Snapshots kept in `status.history`, as the Flux Operator keeps.
const HISTORY_LEN: usize = 5;

/// `status.history` after a run that saw `now`: one snapshot per distinct health (its digest is
/// that of the failing parts, so each state of the installation is one entry, newest first,
/// counting the runs that saw it), the way the Flux Operator keeps one per applied revision.
/// The newest snapshot's `metadata.failing` is what a restarted or newly elected replica
/// compares its first run with ([`persisted`]), so a restart never changes which events fire.
fn record_history(
    old: &[Snapshot],
    now: &HealthState,
    duration: std::time::Duration,
    at: Timestamp,
) -> Vec<Snapshot> {
    let keys = now
        .parts()
        .iter()
        .map(Part::key)
        .collect::<Vec<_>>()
        .join(",");
    let digest = ring::digest::digest(&ring::digest::SHA256, keys.as_bytes());
    let digest = format!(
        "sha256:{}",
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let at = Timestamp::from_second(at.as_second())
        .unwrap_or(at)
        .to_string();
    let mut history = old.to_vec();
    let mut snapshot = match history.iter().position(|s| s.digest == digest) {
        // The same health as the newest snapshot: the same entry, one run more. An older
        // entry with this digest is a state the installation came back to: a new entry.
        Some(0) => history.remove(0),
        _ => Snapshot {
            digest,
            first_reconciled: at.clone(),
            total_reconciliations: 0,
            ..Default::default()
        },
    };
    snapshot.last_reconciled = at;
    snapshot.last_reconciled_duration = format!("{duration:?}");
    snapshot.last_reconciled_status = now.reason.clone();
    snapshot.total_reconciliations += 1;
    let mut metadata = BTreeMap::new();
    if let Some(v) = &now.version {
        metadata.insert(HISTORY_FLUX.to_string(), v.clone());
    }
    metadata.insert(HISTORY_FAILING.to_string(), keys);
    snapshot.metadata = Some(metadata);
    history.insert(0, snapshot);
    history.truncate(HISTORY_LEN);
    history
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
        if let Some(web) = &state.web {
            web.record(crate::web::Change {
                at: Timestamp::now().as_second(),
                warning: t.severity == Severity::Warning,
                reason: t.reason.clone(),
                message: crate::events::truncate_note(&t.message).into_owned(),
                object: format!("{}/{}", target.kind, target.name),
            });
        }
        state
            .events
            .emit(target, kind, &t.reason, &t.message, metadata)
            .await;
    }
}

/// Server-side apply of the verification into the FluxInstance status.
async fn write_instance_status(
    ctx: &Context,
    instance: &FluxInstance,
    v: &Verification,
    history: Vec<Snapshot>,
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
        history: (!history.is_empty()).then_some(history),
        last_applied_revision: v.revision.clone().or(old.last_applied_revision),
        last_attempted_revision: v.revision.clone().or(old.last_attempted_revision),
        last_handled_reconcile_at: annotation(instance, REQUESTED_AT_ANNOTATION)
            .map(str::to_string)
            .or(old.last_handled_reconcile_at),
        ..Default::default()
    };
    let body = apply_body(FLUX_INSTANCE_KIND, &ctx.namespace, "status", &new);
    let params = apply_params();
    let instances: Api<FluxInstance> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    instances
        .patch_status(SINGLETON_NAME, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

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
    fn flux_instance_info_shows_the_verification_written_by_the_same_run() {
        let row = |uid: &str| InstanceRow {
            uid: uid.into(),
            ready: "Unknown".into(),
            revision: "v2.7.2".into(),
            ..Default::default()
        };
        let mut rows = vec![row("a"), row("b")];
        let v = Verification {
            ready: Some(false),
            reason: instance::reasons::COMPONENTS_NOT_READY,
            message: "component helm-controller is not ready".into(),
            problems: Vec::new(),
            revision: Some("v2.7.3".into()),
            components: Vec::new(),
        };
        show_written(&mut rows, "a", &v);
        assert_eq!(
            (
                rows[0].ready.as_str(),
                rows[0].reason.as_str(),
                rows[0].revision.as_str()
            ),
            ("False", "ComponentsNotReady", "v2.7.3")
        );
        assert_eq!(rows[1], row("b"), "another FluxInstance is left alone");
    }

    #[test]
    fn health_the_verification_could_not_tell_is_no_health_at_all() {
        let v = Verification {
            ready: None,
            reason: instance::reasons::INCOMPLETE,
            message: "could not verify components: the report could not read them".into(),
            problems: Vec::new(),
            revision: Some("v2.7.3".into()),
            components: Vec::new(),
        };
        assert_eq!(instance_health(&v, &FluxReportSpec::default()), None);
    }

    #[test]
    fn a_failing_part_in_a_section_not_read_this_run_is_not_announced_as_recovered() {
        let failing = |parts: &[&str]| HealthState {
            healthy: false,
            failing: parts
                .iter()
                .map(|p| {
                    (
                        Part::new(*p, classes::NOT_READY),
                        format!("{p} is not ready"),
                    )
                })
                .collect(),
            reason: "ComponentsNotReady".into(),
            message: parts.join("; "),
            ..Default::default()
        };
        let previous = Previous::Seen(failing(&["component/helm-controller", "sync"]));
        // This run could not read the components; the sync still fails.
        let outcome = Outcome {
            failures: vec![flux_reporter_report::compute::Failure {
                section: Section::Components,
                kind: None,
                error: "the server is currently unable to handle the request".into(),
            }],
            ..Outcome::default()
        };
        let mut now = failing(&["sync"]);
        carry_unread(&mut now, &previous, &outcome);
        assert!(now.is_failing(&Part::new("component/helm-controller", classes::NOT_READY)));
        assert_eq!(transitions::transitions(&previous, &now), Vec::new());

        // Read again and still failing: nothing new either.
        let again = failing(&["component/helm-controller", "sync"]);
        assert_eq!(
            transitions::transitions(&Previous::Seen(now), &again),
            Vec::new()
        );

        // Read and fixed: that is a recovery.
        let mut fixed = failing(&["sync"]);
        carry_unread(&mut fixed, &previous, &Outcome::default());
        let t = transitions::transitions(&previous, &fixed);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].reason, "PartiallyRecovered");
    }

    fn instance_with_history(healthy: bool, message: &str, history: Vec<Snapshot>) -> FluxInstance {
        let mut i = FluxInstance::new(SINGLETON_NAME, Default::default());
        i.status = Some(FluxInstanceStatus {
            conditions: Some(vec![Condition::new(
                READY_CONDITION,
                if healthy {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                "ComponentsNotReady",
                message,
                None,
                Time(Timestamp::UNIX_EPOCH),
            )]),
            history: Some(history),
            last_applied_revision: Some("v2.7.3".into()),
            ..Default::default()
        });
        i
    }

    fn health(parts: &[(&str, &str)]) -> HealthState {
        HealthState {
            healthy: parts.is_empty(),
            failing: parts
                .iter()
                .map(|(s, c)| (Part::new(*s, *c), format!("{s} is {c}")))
                .collect(),
            reason: if parts.is_empty() {
                "ReconciliationSucceeded"
            } else {
                "RegistryMismatch"
            }
            .into(),
            message: "m".into(),
            version: Some("v2.7.3".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_history_keeps_one_snapshot_per_health_newest_first() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("a time");
        let d = std::time::Duration::from_millis(1250);
        let flagged = health(&[("component/helm-controller", classes::REGISTRY_MISMATCH)]);
        let down = health(&[
            ("component/helm-controller", classes::REGISTRY_MISMATCH),
            ("component/helm-controller", classes::NOT_READY),
        ]);
        let h = record_history(&[], &flagged, d, t(0));
        let h = record_history(&h, &flagged, d, t(60));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].total_reconciliations, 2);
        assert_eq!(h[0].first_reconciled, "2027-01-15T08:00:00Z");
        assert_eq!(h[0].last_reconciled, "2027-01-15T08:01:00Z");
        assert_eq!(h[0].last_reconciled_status, "RegistryMismatch");
        assert_eq!(h[0].last_reconciled_duration, "1.25s");
        let h = record_history(&h, &down, d, t(120));
        let h = record_history(&h, &flagged, d, t(180));
        assert_eq!(h.len(), 3, "back to an earlier health is a new entry");
        assert_eq!(h[0].total_reconciliations, 1);
        assert_eq!(h[0].digest, h[2].digest);
        let meta = h[0].metadata.as_ref().expect("metadata");
        assert_eq!(
            meta["failing"],
            "component/helm-controller=registry-mismatch"
        );
        assert_eq!(meta["flux"], "v2.7.3");
        let mut h = h;
        for i in 0..10 {
            let other = health(&[("sync", if i % 2 == 0 { "not-ready" } else { "missing" })]);
            h = record_history(&h, &other, d, t(200 + i));
        }
        assert_eq!(h.len(), HISTORY_LEN);
    }

    #[test]
    fn a_restart_reads_the_failing_parts_back_from_the_history() {
        let down = health(&[
            ("component/helm-controller", classes::REGISTRY_MISMATCH),
            ("component/helm-controller", classes::NOT_READY),
        ]);
        let history = record_history(&[], &down, Default::default(), Timestamp::UNIX_EPOCH);
        match persisted(&instance_with_history(false, "m", history)) {
            Previous::Persisted { failing, .. } => assert_eq!(failing, Some(down.parts())),
            other => panic!("{other:?}"),
        }
        // Written by a version without the history: compared by message.
        match persisted(&instance_with_history(false, "m", Vec::new())) {
            Previous::Persisted { failing, .. } => assert_eq!(failing, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_owned_note_names_the_owner_and_what_we_do_not_do() {
        let note = owned_note("the Flux Operator (field manager flux-operator)");
        assert!(note.contains("flux-operator"), "{note}");
        assert!(note.contains("no status writes, no events"), "{note}");
    }
}
