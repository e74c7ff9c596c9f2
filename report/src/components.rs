//! Components: the Flux controller Deployments in the report namespace,
//! with kstatus readiness (the rules of kstatus's Deployment status,
//! sigs.k8s.io/cli-utils `pkg/kstatus/status`, as the Flux Operator's
//! `internal/reporter/components.go` uses them), sorted by name.

use flux_reporter_api::FluxComponentStatus;

use crate::observed::{Condition, Deployment};

/// kstatus result for one Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KStatus {
    pub status: &'static str,
    pub message: String,
}

impl KStatus {
    fn new(status: &'static str, message: impl Into<String>) -> Self {
        KStatus {
            status,
            message: message.into(),
        }
    }
}

pub const CURRENT: &str = "Current";
pub const IN_PROGRESS: &str = "InProgress";
pub const FAILED: &str = "Failed";
pub const TERMINATING: &str = "Terminating";

fn condition<'a>(conds: impl Iterator<Item = &'a Condition>, type_: &str) -> Option<&'a Condition> {
    conds.into_iter().find(|c| c.type_.str() == type_)
}

/// The kstatus rules for a Deployment, first match wins (fluxcd/cli-utils).
pub fn deployment_status(d: &Deployment) -> Result<KStatus, String> {
    let meta = d.metadata.get().ok_or("metadata is missing or malformed")?;
    if meta.deletion_timestamp.non_empty().is_some() {
        return Ok(KStatus::new(TERMINATING, "Resource scheduled for deletion"));
    }
    let status = d.status.get();
    let spec = d.spec.get();
    if spec.is_none() && d.spec.is_invalid() {
        return Err("spec is malformed".into());
    }
    if let (Some(observed), Some(generation)) = (
        status.and_then(|s| s.observed_generation.value()),
        meta.generation.value(),
    ) && observed != generation
    {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!(
                "Deployment generation is {generation}, but latest observed generation is {observed}"
            ),
        ));
    }
    let conds = || status.into_iter().flat_map(|s| s.conditions.iter());
    if let Some(c) = condition(conds(), "Reconciling")
        && c.status.str() == "True"
    {
        return Ok(KStatus::new(IN_PROGRESS, c.message.str()));
    }
    if let Some(c) = condition(conds(), "Stalled")
        && c.status.str() == "True"
    {
        return Ok(KStatus::new(FAILED, c.message.str()));
    }

    let progressing = condition(conds(), "Progressing");
    if progressing.is_some_and(|c| c.reason.str() == "ProgressDeadlineExceeded") {
        return Ok(KStatus::new(FAILED, "Progress deadline exceeded"));
    }

    let spec_replicas = spec.and_then(|s| s.replicas.value()).unwrap_or(1);
    let count =
        |f: fn(&crate::observed::DeploymentStatus) -> Option<i64>| status.and_then(f).unwrap_or(0);
    let replicas = count(|s| s.replicas.value());
    let updated = count(|s| s.updated_replicas.value());
    let ready = count(|s| s.ready_replicas.value());
    let available = count(|s| s.available_replicas.value());

    if spec_replicas > replicas {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!("Replicas: {replicas}/{spec_replicas}"),
        ));
    }
    if spec_replicas > updated {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!("Updated: {updated}/{spec_replicas}"),
        ));
    }
    if replicas > spec_replicas {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!("Pending termination: {}", replicas - spec_replicas),
        ));
    }
    if updated > available {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!("Available: {available}/{updated}"),
        ));
    }
    if spec_replicas > ready {
        return Ok(KStatus::new(
            IN_PROGRESS,
            format!("Ready: {ready}/{spec_replicas}"),
        ));
    }

    let has_deadline = spec
        .and_then(|s| s.progress_deadline_seconds.value())
        .is_some();
    let is_progressing = !has_deadline
        || progressing.is_some_and(|c| {
            c.status.str() == "True" && c.reason.str() == "NewReplicaSetAvailable"
        });
    if !is_progressing {
        return Ok(KStatus::new(IN_PROGRESS, "ReplicaSet not Available"));
    }
    let is_available = condition(conds(), "Available").is_some_and(|c| c.status.str() == "True");
    if !is_available {
        return Ok(KStatus::new(IN_PROGRESS, "Deployment not Available"));
    }
    Ok(KStatus::new(
        CURRENT,
        format!("Deployment is available. Replicas: {replicas}"),
    ))
}

/// One component entry.
pub fn component(d: &Deployment) -> FluxComponentStatus {
    let name = d
        .metadata
        .get()
        .map(|m| m.name.str().to_string())
        .unwrap_or_default();
    let image = d
        .spec
        .get()
        .and_then(|s| s.template.get())
        .and_then(|t| t.spec.get())
        .and_then(|p| p.containers.iter().next())
        .map(|c| c.image.str().to_string())
        .unwrap_or_default();
    let (ready, status) = match deployment_status(d) {
        Ok(k) => (k.status == CURRENT, format!("{} {}", k.status, k.message)),
        Err(e) => (false, format!("Failed to compute status: {e}")),
    };
    FluxComponentStatus {
        name,
        ready,
        status,
        image,
    }
}

/// Every component, sorted by name.
pub fn components(deployments: &[Deployment]) -> Vec<FluxComponentStatus> {
    let mut out: Vec<_> = deployments.iter().map(component).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deploy(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    fn healthy(name: &str) -> Value {
        json!({
            "metadata": {"name": name, "generation": 2},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 600,
                     "template": {"spec": {"containers": [
                        {"name": "manager", "image": format!("ghcr.io/fluxcd/{name}:v1.0.0@sha256:abc")},
                        {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": 1, "availableReplicas": 1,
                       "conditions": [
                         {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                         {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        })
    }

    fn status_of(v: Value) -> (String, bool) {
        let c = component(&deploy(v));
        (c.status, c.ready)
    }

    #[test]
    fn healthy_deployment_is_current_with_replica_count() {
        assert_eq!(
            status_of(healthy("source-controller")),
            ("Current Deployment is available. Replicas: 1".into(), true)
        );
    }

    #[test]
    fn image_is_the_first_container() {
        let c = component(&deploy(healthy("helm-controller")));
        assert_eq!(c.image, "ghcr.io/fluxcd/helm-controller:v1.0.0@sha256:abc");
    }

    #[test]
    fn deletion_timestamp_means_terminating() {
        let mut v = healthy("x");
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            status_of(v).0,
            "Terminating Resource scheduled for deletion"
        );
    }

    #[test]
    fn stale_observed_generation_is_in_progress() {
        let mut v = healthy("x");
        v["metadata"]["generation"] = json!(3);
        assert_eq!(
            status_of(v),
            (
                "InProgress Deployment generation is 3, but latest observed generation is 2".into(),
                false
            )
        );
    }

    #[test]
    fn stalled_condition_is_failed() {
        let mut v = healthy("x");
        v["status"]["conditions"] =
            json!([{"type": "Stalled", "status": "True", "message": "boom"}]);
        assert_eq!(status_of(v).0, "Failed boom");
    }

    #[test]
    fn progress_deadline_exceeded_is_failed() {
        let mut v = healthy("x");
        v["status"]["conditions"][1]["reason"] = json!("ProgressDeadlineExceeded");
        v["status"]["conditions"][1]["status"] = json!("False");
        assert_eq!(status_of(v).0, "Failed Progress deadline exceeded");
    }

    #[test]
    fn replica_rules_in_order() {
        let cases = [
            (json!({"replicas": 0}), "InProgress Replicas: 0/1"),
            (
                json!({"replicas": 1, "updatedReplicas": 0}),
                "InProgress Updated: 0/1",
            ),
            (
                json!({"replicas": 2, "updatedReplicas": 1}),
                "InProgress Pending termination: 1",
            ),
            (
                json!({"replicas": 1, "updatedReplicas": 1, "availableReplicas": 0}),
                "InProgress Available: 0/1",
            ),
            (
                json!({"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 0}),
                "InProgress Ready: 0/1",
            ),
        ];
        for (status, want) in cases {
            let mut v = healthy("x");
            let conds = v["status"]["conditions"].clone();
            v["status"] = status;
            v["status"]["conditions"] = conds;
            assert_eq!(status_of(v).0, want);
        }
    }

    #[test]
    fn replicas_default_to_one_and_counters_to_zero() {
        let mut v = healthy("x");
        v["spec"].as_object_mut().unwrap().remove("replicas");
        v["status"] = json!({});
        assert_eq!(status_of(v).0, "InProgress Replicas: 0/1");
    }

    #[test]
    fn not_progressing_and_not_available() {
        let mut v = healthy("x");
        v["status"]["conditions"] = json!([{"type": "Available", "status": "True"}]);
        assert_eq!(
            status_of(v.clone()).0,
            "InProgress ReplicaSet not Available"
        );
        // without a progress deadline the Deployment counts as progressing
        v["spec"]
            .as_object_mut()
            .unwrap()
            .remove("progressDeadlineSeconds");
        v["status"]["conditions"] = json!([{"type": "Available", "status": "False"}]);
        assert_eq!(status_of(v).0, "InProgress Deployment not Available");
    }

    #[test]
    fn components_are_sorted_by_name_and_keep_shards() {
        let list = vec![
            deploy(healthy("source-controller")),
            deploy(healthy("helm-controller")),
            deploy(healthy("source-controller-shard1")),
        ];
        let names: Vec<_> = components(&list).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "helm-controller",
                "source-controller",
                "source-controller-shard1"
            ]
        );
    }

    #[test]
    fn malformed_metadata_fails_status_computation() {
        let c = component(&deploy(json!({"metadata": "nope"})));
        assert!(!c.ready);
        assert!(
            c.status.starts_with("Failed to compute status: "),
            "{}",
            c.status
        );
    }
}
