//! The Flux installation of a test: CRDs, Flux objects, the FluxInstance, and what the report
//! must say about them.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};

use super::{
    COMPONENTS, Env, LEASE_NAME, RECONCILE, condition, documents, fixture, manifest_dir, resource,
};
use crate::common::poll::{ensure, eventually};

/// Expected reconciler statistics of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub running: i64,
    pub failing: i64,
    pub suspended: i64,
    /// Sum of `status.artifact.size`.
    pub bytes: i64,
}

impl Stats {
    pub fn new(running: i64, failing: i64, suspended: i64, bytes: i64) -> Stats {
        Stats {
            running,
            failing,
            suspended,
            bytes,
        }
    }

    pub fn add(self, o: Stats) -> Stats {
        Stats::new(
            self.running + o.running,
            self.failing + o.failing,
            self.suspended + o.suspended,
            self.bytes + o.bytes,
        )
    }

    /// As the report writes `stats` (`totalSize` omitted when 0, as the Flux Operator's reporter does).
    pub fn to_json(self) -> Value {
        let mut v =
            json!({"running": self.running, "failing": self.failing, "suspended": self.suspended});
        if self.bytes > 0 {
            v["totalSize"] = json!(format_size(self.bytes));
        }
        v
    }
}

/// The size format of the Flux Operator's reporter: bytes below 1 KiB, else one decimal in
/// binary units.
fn format_size(bytes: i64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

impl Env {
    /// The project's CRDs (`config/crd/bases`) and the Flux CRDs of the fixtures, each applied
    /// only when absent (a real cluster keeps its CRDs: they are never deleted), then
    /// established.
    pub(super) async fn ensure_crds(&self) {
        let bases = manifest_dir().join("../config/crd/bases");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&bases)
            .unwrap_or_else(|e| panic!("read {}: {e}", bases.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        files.push(fixture("flux-crds.yaml"));
        let crds: Vec<Value> = files.iter().flat_map(|f| documents(f, &[])).collect();
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        );
        for crd in &crds {
            let name = crd["metadata"]["name"].as_str().expect("CRD name");
            if api
                .get_opt(name)
                .await
                .unwrap_or_else(|e| panic!("get CRD {name}: {e}"))
                .is_none()
            {
                self.apply(crd.clone()).await;
            }
        }
        for crd in &crds {
            let name = crd["metadata"]["name"]
                .as_str()
                .expect("CRD name")
                .to_string();
            let api = &api;
            eventually(
                &format!("CRD {name} established"),
                Duration::from_secs(30),
                || {
                    let name = name.clone();
                    async move {
                        let crd = api.get(&name).await.map_err(|e| e.to_string())?;
                        let crd = serde_json::to_value(crd).map_err(|e| e.to_string())?;
                        ensure(
                            condition(&crd, "Established").is_some_and(|c| c["status"] == "True"),
                            || format!("{name} is not established yet"),
                        )
                    }
                },
            )
            .await;
        }
    }

    /// The controllers (all ready), the Flux objects and the FluxInstance.
    pub async fn install_flux(&self) {
        // Decided before the Deployments are written: it sets their replicas.
        self.deployment_controller().await;
        for deployment in self.fixture_documents("flux-controllers.yaml") {
            self.apply(deployment).await;
        }
        for name in COMPONENTS {
            self.set_component_ready(name, true).await;
        }
        for obj in self.fixture_documents("flux-objects.yaml") {
            self.apply(obj).await;
        }
        for obj in self.fixture_documents("flux-instance.yaml") {
            self.apply(obj).await;
        }
    }

    /// A GitRepository in the namespace, ready, with an artifact of `size` bytes.
    pub async fn add_git_repository(&self, name: &str, size: i64) -> Value {
        self.apply(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name},
            "spec": {"interval": "5m0s", "url": format!("https://github.com/example/{name}.git"), "ref": {"branch": "main"}},
            "status": {
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Succeeded",
                    "message": "stored artifact for revision 'refs/heads/main@sha1:0123456789abcdef0123456789abcdef01234567'",
                    "lastTransitionTime": "2026-11-21T14:00:00Z", "observedGeneration": 1,
                }],
                "artifact": {
                    "path": format!("gitrepository/{}/{name}/01234567.tar.gz", self.ns),
                    "url": format!("http://source-controller.{}.svc.cluster.local./gitrepository/{}/{name}/01234567.tar.gz", self.ns, self.ns),
                    "revision": "refs/heads/main@sha1:0123456789abcdef0123456789abcdef01234567",
                    "digest": "sha256:89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567",
                    "lastUpdateTime": "2026-11-21T14:00:00Z",
                    "size": size,
                },
            },
        }))
        .await
    }

    /// A HelmRepository in the namespace, ready.
    pub async fn add_helm_repository(&self, name: &str) -> Value {
        self.apply(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": name},
            "spec": {"interval": "1h0m0s", "url": format!("https://charts.example.com/{name}")},
            "status": {
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact",
                    "lastTransitionTime": "2026-11-21T14:00:00Z", "observedGeneration": 1,
                }],
            },
        }))
        .await
    }

    /// Events (events.k8s.io/v1) in the namespace regarding `kind`/`name`, oldest first.
    pub async fn events_about(&self, kind: &str, name: &str) -> Vec<Value> {
        let mut events: Vec<Value> = self
            .list("events.k8s.io/v1", "Event")
            .await
            .into_iter()
            .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
            .collect();
        events.sort_by_key(|e| e["eventTime"].as_str().unwrap_or_default().to_string());
        events
    }

    /// The leader election Lease.
    pub async fn lease(&self) -> Option<Value> {
        self.get("coordination.k8s.io/v1", "Lease", LEASE_NAME)
            .await
    }

    /// What the report must say for `kind`: our objects (`ours`) plus those of other namespaces
    /// (whatever else the cluster holds), counted as the Flux Operator's reporter counts them
    /// (suspended ones are not running; `DependencyNotReady` is not a failure).
    pub async fn expected_stats(&self, api_version: &str, kind: &str, ours: Stats) -> Value {
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &resource(api_version, kind));
        let others = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        let mut foreign = Stats::default();
        for o in others.items {
            if o.metadata.namespace.as_deref() == Some(self.ns.as_str()) {
                continue;
            }
            let o = serde_json::to_value(o).expect("object as JSON");
            let suspended = if api_version.starts_with("fluxcd.controlplane.io/") {
                ["labels", "annotations"].iter().any(|m| {
                    o["metadata"][m][RECONCILE]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
                })
            } else {
                o["spec"]["suspend"] == true
            };
            let failing = !suspended
                && o["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "False"
                            && c["reason"] != "DependencyNotReady"
                    })
                });
            foreign = foreign.add(Stats::new(
                i64::from(!suspended),
                i64::from(failing),
                i64::from(suspended),
                if api_version.starts_with("fluxcd.controlplane.io/") {
                    0
                } else {
                    o["status"]["artifact"]["size"].as_i64().unwrap_or(0)
                },
            ));
        }
        ours.add(foreign).to_json()
    }

    /// The distribution the report must show: from the labels of the GitRepository CRD (the
    /// fixture's, unless the cluster already had its own).
    pub async fn expected_distribution(&self) -> Value {
        let crd = self
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "gitrepositories.source.toolkit.fluxcd.io",
            )
            .await
            .expect("the GitRepository CRD");
        let labels = &crd["metadata"]["labels"];
        let managed_by = match labels["app.kubernetes.io/managed-by"].as_str() {
            Some(m) => json!(m),
            None if labels["kustomize.toolkit.fluxcd.io/name"].is_string() => {
                json!("flux bootstrap")
            }
            None => Value::Null,
        };
        let mut d = json!({"status": "Installed", "entitlement": "Unknown", "version": labels["app.kubernetes.io/version"]});
        if !managed_by.is_null() {
            d["managedBy"] = managed_by;
        }
        d
    }
}

/// The labels of a `flux_resource_info` series, as the Flux Operator exports them.
pub const RESOURCE_INFO_LABELS: [&str; 12] = [
    "exported_namespace",
    "kind",
    "name",
    "path",
    "ready",
    "reason",
    "ref",
    "revision",
    "source_name",
    "suspended",
    "uid",
    "url",
];
