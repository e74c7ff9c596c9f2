//! Metric rows: the label set of `flux_resource_info` for each Flux object
//! (every per-kind rule of the Flux Operator's `internal/reporter/metrics.go`), the legacy `gotk_*` values, and
//! `flux_instance_info` rows. The operator turns rows into series.

use crate::redact;
use flux_reporter_api::constants::READY_CONDITION;

use crate::observed::FluxObject;

/// One `flux_resource_info` series, plus what the legacy series need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceRow {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub revision: String,
    pub url: String,
    pub ref_: String,
    pub source_name: String,
    pub path: String,
    /// Values of the propagated object labels, in the configured key order.
    pub extra: Vec<String>,
    /// The Ready condition's own status (`True`, `False`, `Unknown`), before the
    /// per-kind overrides: what `gotk_reconcile_condition` reports.
    pub condition_status: String,
}

fn bool_label(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// The row for one Flux object of `kind`. `propagate` lists object label
/// keys copied into `extra` (empty string when the object lacks the label).
pub fn resource_row(kind: &str, obj: &FluxObject, propagate: &[String]) -> ResourceRow {
    let meta = obj.meta();
    let spec = obj.spec();
    let status = obj.status();
    let ready_cond = obj.condition(READY_CONDITION);
    let condition_status = ready_cond
        .and_then(|c| c.status.get().cloned())
        .unwrap_or_else(|| "Unknown".into());

    let mut row = ResourceRow {
        uid: meta.map(|m| m.uid.str().to_string()).unwrap_or_default(),
        kind: kind.to_string(),
        name: obj.name().to_string(),
        exported_namespace: obj.namespace().to_string(),
        ready: condition_status.clone(),
        reason: ready_cond
            .map(|c| c.reason.str().to_string())
            .unwrap_or_default(),
        suspended: bool_label(obj.spec_suspended()),
        condition_status,
        ..Default::default()
    };

    // Generic rules.
    if let Some(spec) = spec {
        if let Some(r) = spec.source_ref.get() {
            row.source_name = r.name.str().to_string();
        }
        row.url = redact::url(spec.url.str()).into_owned();
    }
    if let Some(status) = status {
        if let Some(a) = status.artifact.get() {
            row.revision = a.revision.str().to_string();
        }
        if let Some(r) = status.last_attempted_revision.get() {
            row.revision = r.clone();
        }
    }

    // Kind-specific rules.
    match kind {
        "Kustomization" => {
            row.path = spec.map(|s| s.path.str().to_string()).unwrap_or_default();
        }
        "GitRepository" | "OCIRepository" => {
            if let Some(r) = spec.and_then(|s| s.ref_.get()) {
                let order: &[&crate::lenient::LStr] = if kind == "GitRepository" {
                    &[&r.branch, &r.tag, &r.semver, &r.name]
                } else {
                    &[&r.tag, &r.semver]
                };
                for field in order {
                    if let Some(v) = field.get() {
                        row.ref_ = v.clone();
                    }
                }
            }
        }
        "Bucket" => {
            if let Some(spec) = spec {
                row.url = redact::url(spec.endpoint.str()).into_owned();
                row.ref_ = spec.bucket_name.str().to_string();
            }
        }
        "HelmRelease" => {
            if let Some(spec) = spec {
                if let Some(r) = spec.chart_ref.get() {
                    row.source_name = r.name.str().to_string();
                }
                if let Some(r) = spec
                    .chart
                    .get()
                    .and_then(|c| c.spec.get())
                    .and_then(|s| s.source_ref.get())
                {
                    row.source_name = r.name.str().to_string();
                }
            }
        }
        "HelmRepository" if spec.is_some_and(|s| s.type_.str() == "oci") => {
            row.ready = "True".into();
        }
        "Alert" | "Provider" => row.ready = "True".into(),
        "Receiver" => {
            row.url = status
                .map(|s| s.webhook_path.str().to_string())
                .unwrap_or_default();
        }
        "ImageRepository" => {
            row.url = spec
                .map(|s| redact::url(s.image.str()).into_owned())
                .unwrap_or_default();
        }
        "ImagePolicy" => {
            row.source_name = spec
                .and_then(|s| s.image_repository_ref.get())
                .map(|r| r.name.str().to_string())
                .unwrap_or_default();
        }
        _ => {}
    }

    if !propagate.is_empty() {
        let labels = obj.labels();
        row.extra = propagate
            .iter()
            .map(|k| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default())
            .collect();
    }
    row
}

/// One `flux_instance_info` series (labels as the Flux Operator's `flux_instance_info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceRow {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub registry: String,
    pub revision: String,
}

pub fn instance_row(obj: &FluxObject) -> InstanceRow {
    let ready_cond = obj.condition(READY_CONDITION);
    InstanceRow {
        uid: obj
            .meta()
            .map(|m| m.uid.str().to_string())
            .unwrap_or_default(),
        kind: flux_reporter_api::constants::FLUX_INSTANCE_KIND.into(),
        name: obj.name().into(),
        exported_namespace: obj.namespace().into(),
        ready: ready_cond
            .and_then(|c| c.status.get().cloned())
            .unwrap_or_else(|| "Unknown".into()),
        reason: ready_cond
            .map(|c| c.reason.str().to_string())
            .unwrap_or_default(),
        suspended: bool_label(obj.reconcile_disabled()),
        registry: obj
            .spec()
            .and_then(|s| s.distribution.get())
            .map(|d| d.registry.str().to_string())
            .unwrap_or_default(),
        revision: obj
            .status()
            .map(|s| s.last_applied_revision.str().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn row(kind: &str, v: Value) -> ResourceRow {
        resource_row(kind, &serde_json::from_value(v).unwrap(), &[])
    }

    fn base(extra: Value) -> Value {
        let mut v = json!({
            "metadata": {"name": "app", "namespace": "apps", "uid": "u-1", "labels": {"team": "a"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]}
        });
        if let Value::Object(m) = extra {
            for (k, val) in m {
                v[k] = val;
            }
        }
        v
    }

    #[test]
    fn common_labels_from_metadata_and_ready_condition() {
        let r = row("GitRepository", base(json!({})));
        assert_eq!(
            (
                r.uid.as_str(),
                r.name.as_str(),
                r.exported_namespace.as_str(),
                r.ready.as_str(),
                r.reason.as_str(),
                r.suspended.as_str()
            ),
            ("u-1", "app", "apps", "True", "Succeeded", "False")
        );
    }

    #[test]
    fn no_ready_condition_reads_unknown_with_empty_reason() {
        let r = row("Kustomization", json!({"metadata": {"name": "a"}}));
        assert_eq!((r.ready.as_str(), r.reason.as_str()), ("Unknown", ""));
    }

    #[test]
    fn revision_prefers_last_attempted_over_artifact() {
        let r = row(
            "GitRepository",
            base(json!({"status": {"artifact": {"revision": "main@sha1:a"}}})),
        );
        assert_eq!(r.revision, "main@sha1:a");
        let r = row(
            "Kustomization",
            base(json!({"status": {"artifact": {"revision": "a"}, "lastAttemptedRevision": "b"}})),
        );
        assert_eq!(r.revision, "b");
    }

    #[test]
    fn kustomization_path_and_source_name() {
        let r = row(
            "Kustomization",
            base(
                json!({"spec": {"path": "./apps", "sourceRef": {"kind": "GitRepository", "name": "fleet"}, "suspend": true}}),
            ),
        );
        assert_eq!(
            (
                r.path.as_str(),
                r.source_name.as_str(),
                r.suspended.as_str()
            ),
            ("./apps", "fleet", "True")
        );
    }

    #[test]
    fn git_ref_last_present_wins() {
        let r = row(
            "GitRepository",
            base(json!({"spec": {"url": "https://x", "ref": {"branch": "main", "tag": "v1"}}})),
        );
        assert_eq!((r.ref_.as_str(), r.url.as_str()), ("v1", "https://x"));
        let r = row(
            "GitRepository",
            base(
                json!({"spec": {"ref": {"branch": "main", "semver": ">=1", "name": "refs/heads/x"}}}),
            ),
        );
        assert_eq!(r.ref_, "refs/heads/x");
    }

    #[test]
    fn oci_ref_is_tag_then_semver_never_digest() {
        let r = row(
            "OCIRepository",
            base(
                json!({"spec": {"ref": {"tag": "latest", "semver": "1.x", "digest": "sha256:x"}}}),
            ),
        );
        assert_eq!(r.ref_, "1.x");
        let r = row(
            "OCIRepository",
            base(json!({"spec": {"ref": {"digest": "sha256:x"}}})),
        );
        assert_eq!(r.ref_, "");
    }

    #[test]
    fn bucket_url_is_endpoint_and_ref_is_bucket_name() {
        let r = row(
            "Bucket",
            base(
                json!({"spec": {"endpoint": "s3.amazonaws.com", "bucketName": "flux", "url": "ignored"}}),
            ),
        );
        assert_eq!(
            (r.url.as_str(), r.ref_.as_str()),
            ("s3.amazonaws.com", "flux")
        );
    }

    #[test]
    fn helmrelease_source_from_chart_spec_over_chart_ref() {
        let r = row(
            "HelmRelease",
            base(json!({"spec": {"chartRef": {"name": "oci-chart"}}})),
        );
        assert_eq!(r.source_name, "oci-chart");
        let r = row(
            "HelmRelease",
            base(
                json!({"spec": {"chartRef": {"name": "a"}, "chart": {"spec": {"sourceRef": {"name": "bitnami"}}}}}),
            ),
        );
        assert_eq!(r.source_name, "bitnami");
    }

    #[test]
    fn oci_helmrepository_alert_and_provider_are_always_ready() {
        let no_cond = json!({"metadata": {"name": "a"}, "spec": {"type": "oci"}});
        assert_eq!(row("HelmRepository", no_cond.clone()).ready, "True");
        assert_eq!(
            row("HelmRepository", json!({"metadata": {"name": "a"}})).ready,
            "Unknown"
        );
        assert_eq!(
            row("Alert", json!({"metadata": {"name": "a"}})).ready,
            "True"
        );
        assert_eq!(
            row("Provider", json!({"metadata": {"name": "a"}})).ready,
            "True"
        );
        // the legacy condition status stays the real one
        assert_eq!(
            row("Alert", json!({"metadata": {"name": "a"}})).condition_status,
            "Unknown"
        );
    }

    #[test]
    fn receiver_url_is_webhook_path() {
        let r = row(
            "Receiver",
            base(json!({"status": {"webhookPath": "/hook/abc"}})),
        );
        assert_eq!(r.url, "/hook/abc");
    }

    #[test]
    fn image_kinds() {
        assert_eq!(
            row(
                "ImageRepository",
                base(json!({"spec": {"image": "ghcr.io/x/y"}}))
            )
            .url,
            "ghcr.io/x/y"
        );
        assert_eq!(
            row(
                "ImagePolicy",
                base(json!({"spec": {"imageRepositoryRef": {"name": "podinfo"}}}))
            )
            .source_name,
            "podinfo"
        );
    }

    #[test]
    fn dependency_not_ready_is_plain_false_in_metrics() {
        let r = row(
            "Kustomization",
            json!({"metadata": {"name": "a"}, "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "DependencyNotReady"}]}}),
        );
        assert_eq!(
            (r.ready.as_str(), r.reason.as_str()),
            ("False", "DependencyNotReady")
        );
    }

    #[test]
    fn propagated_labels_follow_the_configured_keys() {
        let obj: FluxObject = serde_json::from_value(base(json!({}))).unwrap();
        let r = resource_row("Kustomization", &obj, &["team".into(), "owner".into()]);
        assert_eq!(r.extra, ["a", ""]);
    }

    #[test]
    fn instance_row_labels() {
        let obj: FluxObject = serde_json::from_value(json!({
            "metadata": {"name": "flux", "namespace": "flux-system", "uid": "i-1",
                         "annotations": {"fluxcd.controlplane.io/reconcile": "disabled"}},
            "spec": {"distribution": {"registry": "ghcr.io/fluxcd", "version": "2.x"}},
            "status": {"lastAppliedRevision": "v2.7.3@sha256:x",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]}
        })).unwrap();
        let r = instance_row(&obj);
        assert_eq!(
            (
                r.registry.as_str(),
                r.revision.as_str(),
                r.suspended.as_str(),
                r.ready.as_str()
            ),
            ("ghcr.io/fluxcd", "v2.7.3@sha256:x", "True", "True")
        );
    }
}
