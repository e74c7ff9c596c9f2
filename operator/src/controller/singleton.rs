//! The FluxReport singleton: created when missing (at start, when this
//! replica becomes the leader, after a deletion or a relist without it), and
//! written by server-side apply as the field manager `flux-reporter`.

use std::sync::Arc;

use flux_reporter_api::condition::{Condition, ConditionStatus};
use flux_reporter_api::constants::*;
use flux_reporter_api::{FluxReport, FluxReportSpec};
use flux_reporter_report::Outcome;
use flux_reporter_report::source::error_chain;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

use super::Context;

/// A server-side apply body for our singleton `kind`, carrying only `field`
/// (`spec` or `status`): the fields we own.
pub fn apply_body(
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
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Create the singleton when it does not exist (never overwrite an existing
/// report: its spec is the last good value). True when it was created.
pub async fn ensure(ctx: &Context) -> bool {
    let reports: Api<FluxReport> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match reports.get_opt(SINGLETON_NAME).await {
        Ok(Some(_)) => false,
        Ok(None) => {
            let initial = FluxReportSpec::initial(ctx.options.operator.clone());
            let body = apply_body(FLUX_REPORT_KIND, &ctx.namespace, "spec", &initial);
            match reports
                .patch(SINGLETON_NAME, &apply_params(), &Patch::Apply(&body))
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = %ctx.namespace, "created FluxReport {SINGLETON_NAME}");
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

/// Keeps the singleton in existence: at start and whenever `wake` is
/// notified (leadership gained, the report deleted, a relist), the leader
/// creates it if it is missing. The Controller then sees it and reconciles.
pub async fn keep(ctx: Arc<Context>, wake: Arc<Notify>) {
    loop {
        if *ctx.leader.borrow() {
            ensure(&ctx).await;
        }
        wake.notified().await;
    }
}

/// Server-side apply of the spec, then of the status (Ready condition and
/// the handled request). Returns the written object.
pub async fn write_report(
    ctx: &Context,
    spec: &FluxReportSpec,
    outcome: &Outcome,
    requested: Option<&str>,
) -> Result<FluxReport, kube::Error> {
    let reports: Api<FluxReport> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
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
