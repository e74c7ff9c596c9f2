//! The Flux controller Deployments' status: written by the cluster's Deployment controller where
//! there is one, by the harness (through the status subresource, as that controller would) where
//! there is none: an API server alone such as envtest's.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{Env, condition};
use crate::common::poll::{ensure, eventually};

/// Forces the answer of [`Env::deployment_controller`] on a real cluster: `1` (a controller
/// writes Deployment status) or `0` (none does); unset, the harness finds out.
pub const DEPLOYMENT_CONTROLLER_VAR: &str = "E2E_DEPLOYMENT_CONTROLLER";
/// How long a Deployment controller may take to observe a new Deployment. A running one does it
/// in milliseconds; waiting longer only slows down every test on a cluster without one.
const PROBE_WAIT: Duration = Duration::from_secs(5);
const PROBE_NAME: &str = "e2e-deployment-controller-probe";

impl Env {
    /// Does a controller write the status of Deployments here? [`DEPLOYMENT_CONTROLLER_VAR`]
    /// (`hack/envtest.sh` sets it to 0: an API server alone has none), or else
    /// [`Env::probe_deployment_controller`]. Decided once per test.
    pub async fn deployment_controller(&self) -> bool {
        if let Some(known) = self.controllers.get() {
            return *known;
        }
        let found = match std::env::var(DEPLOYMENT_CONTROLLER_VAR).ok().as_deref() {
            None | Some("") => self.probe_deployment_controller().await,
            Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            Some(other) => panic!(
                "{DEPLOYMENT_CONTROLLER_VAR}={other:?}: want 1 (a controller writes Deployment \
                 status) or 0 (none does), or leave it unset to detect"
            ),
        };
        *self.controllers.get_or_init(|| found)
    }

    /// Creates a Deployment with no replicas and waits [`PROBE_WAIT`] for someone to fill in its
    /// `status.observedGeneration`: a Deployment controller, which a full cluster has and an API
    /// server alone (envtest, the Flux Operator's own controller tests) has not. The probe is
    /// deleted afterwards.
    pub async fn probe_deployment_controller(&self) -> bool {
        self.apply(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": PROBE_NAME},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": PROBE_NAME}},
                "template": {
                    "metadata": {"labels": {"app": PROBE_NAME}},
                    "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        }))
        .await;
        let start = Instant::now();
        let found = loop {
            let probe = self.get("apps/v1", "Deployment", PROBE_NAME).await;
            if probe
                .as_ref()
                .and_then(|d| d.pointer("/status/observedGeneration"))
                .and_then(Value::as_i64)
                .is_some_and(|g| g >= 1)
            {
                break true;
            }
            if start.elapsed() >= PROBE_WAIT {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.api("apps/v1", "Deployment")
            .delete(PROBE_NAME, &DeleteParams::background())
            .await
            .unwrap_or_else(|e| panic!("delete Deployment {PROBE_NAME}: {e}"));
        eprintln!(
            "{}: {} writes Deployment status ({:?} to find out; set {DEPLOYMENT_CONTROLLER_VAR}=0|1 to skip)",
            self.ns,
            if found {
                "a controller"
            } else {
                "no controller: the harness"
            },
            start.elapsed()
        );
        found
    }

    /// Makes a Flux controller ready or not, and waits until its Deployment shows it. Where a
    /// Deployment controller runs, it writes the status: 0 replicas is ready, 1 replica that can
    /// never be scheduled is not (`Available: 0/1`). Where none runs (an API server
    /// alone), the harness writes the status that controller would, through the status
    /// subresource.
    pub async fn set_component_ready(&self, name: &str, ready: bool) {
        let api = self.api("apps/v1", "Deployment");
        if self.deployment_controller().await {
            let replicas = if ready { 0 } else { 1 };
            self.merge(
                "apps/v1",
                "Deployment",
                name,
                json!({"spec": {"replicas": replicas}}),
            )
            .await;
        } else {
            let d = api
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("get Deployment {name}: {e}"));
            let generation = d.metadata.generation.unwrap_or(1);
            let now = "2026-11-21T14:00:00Z";
            let status = if ready {
                json!({
                    "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                    "readyReplicas": 1, "availableReplicas": 1, "unavailableReplicas": null,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                         "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                         "message": format!("ReplicaSet \"{name}-7d9f8c6b5\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now},
                    ],
                })
            } else {
                json!({
                    "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                    "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": 1,
                    "conditions": [
                        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                         "message": "Deployment does not have minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                         "message": format!("ReplicaSet \"{name}-7d9f8c6b5\" is progressing."), "lastUpdateTime": now, "lastTransitionTime": now},
                    ],
                })
            };
            api.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap_or_else(|e| panic!("write the status of Deployment {name}: {e}"));
        }
        let what = format!(
            "Deployment {name} {}",
            if ready { "ready" } else { "not ready" }
        );
        let api = &api;
        eventually(&what, Duration::from_secs(60), || async move {
            let d = serde_json::to_value(api.get(name).await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            let observed = n("/status/observedGeneration") == n("/metadata/generation");
            let spec = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let available = condition(&d, "Available").is_some_and(|c| c["status"] == "True");
            let progressed = condition(&d, "Progressing")
                .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
            let is_ready = observed
                && available
                && progressed
                && n("/status/replicas") == spec
                && n("/status/updatedReplicas") == spec
                && n("/status/availableReplicas") == spec;
            let is_unready =
                observed && n("/status/replicas") == spec && n("/status/availableReplicas") < spec;
            ensure(if ready { is_ready } else { is_unready }, || {
                format!("status: {:#}", d["status"])
            })
        })
        .await;
    }
}
