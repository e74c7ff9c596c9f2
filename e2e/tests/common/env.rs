//! One test's world: a Kubernetes API (a fresh API server double, or the real cluster of
//! `E2E_KUBECONFIG`), a fresh namespace that plays the Flux namespace, the CRDs, the Flux
//! controller Deployments, the Flux objects and the FluxInstance.
//!
//! The same code runs in both environments; the few places that must differ (who writes a
//! Deployment's status, how a kind becomes forbidden, the operator's credentials) are single
//! functions here. On a real cluster the tests take a lock per kubeconfig, so they run one at a
//! time: the report counts Flux objects in every namespace, and two tests' objects must not mix.
//! The cluster must not run Flux controllers (they would reconcile the fixtures).

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use flux_reporter_e2e::MuteProxy;
use flux_reporter_e2e::apiserver::{ApiServer, Fault, FaultId};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};

use super::poll::{ensure, eventually};
use super::process::{Operator, OperatorOpts};

/// Field manager of everything the harness writes.
pub const FIELD_MANAGER: &str = "flux-reporter-e2e";
/// The controllers the fixtures install, as the FluxInstance declares them.
pub const COMPONENTS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];
/// The Flux version of the fixture CRDs.
pub const FIXTURE_FLUX_VERSION: &str = "v2.7.3";
/// Annotations of the FluxReport.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
pub const RECONCILE: &str = "fluxcd.controlplane.io/reconcile";
pub const LEASE_NAME: &str = "flux-reporter-leader";

const CLUSTER_SCOPED: [&str; 4] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];
const HELM_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/helmrepositories";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Is `E2E_KUBECONFIG` set (a real cluster)?
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Is `E2E_RBAC=1`?
pub fn rbac_requested() -> bool {
    std::env::var("E2E_RBAC").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The API resource for an apiVersion and kind (the plural is the usual English one, right for
/// every kind the harness touches).
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// The YAML documents of a file, `${NAMESPACE}` (and the other variables) replaced.
pub fn documents(path: &Path, vars: &[(&str, &str)]) -> Vec<Value> {
    let mut text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    docs.into_iter()
        .filter(|d| d.get("kind").is_some())
        .collect()
}

pub fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures").join(name)
}

fn random_hex(len: usize) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())[..len].to_string()
}

/// A unique value, e.g. for `requestedAt`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(10))
}

async fn client_from(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("a Kubernetes client")
}

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

    /// As the report writes `stats` (anchor §2.7: `totalSize` omitted when 0).
    pub fn to_json(self) -> Value {
        let mut v =
            json!({"running": self.running, "failing": self.failing, "suspended": self.suspended});
        if self.bytes > 0 {
            v["totalSize"] = json!(format_size(self.bytes));
        }
        v
    }
}

/// Anchor §2.7 formatSize.
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

/// The project RBAC applied for this test (real cluster only).
struct Rbac {
    kubeconfig: PathBuf,
    cluster_role: Value,
}

pub struct Env {
    /// The test's namespace: the Flux namespace the operator runs for.
    pub ns: String,
    pub client: Client,
    /// A real cluster (`E2E_KUBECONFIG`), not the double.
    pub real: bool,
    /// A directory for kubeconfigs and operator logs.
    pub dir: PathBuf,
    kubeconfig: PathBuf,
    rbac: tokio::sync::Mutex<Option<Rbac>>,
    /// Cluster-scoped objects this test created (RBAC), deleted at the end.
    cluster_objects: Mutex<Vec<(ApiResource, String)>>,
    faults: Mutex<Vec<FaultId>>,
    double: Option<ApiServer>,
    _lock: Option<ClusterLock>,
}

impl Env {
    /// A fresh environment for `test`: the API, the CRDs and an empty namespace.
    pub async fn new(test: &str) -> Env {
        let short: String = test.replace('_', "-").chars().take(40).collect();
        let ns = format!("e2e-{}-{}", short.trim_end_matches('-'), random_hex(6));
        let dir = std::env::temp_dir().join(format!("flux-reporter-{ns}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let (real, kubeconfig, double, lock) = match real_cluster() {
            Some(kubeconfig) => {
                let lock = ClusterLock::acquire(&kubeconfig).await;
                (true, kubeconfig, None, Some(lock))
            }
            None => {
                let server = ApiServer::start()
                    .await
                    .expect("start the API server double");
                let kubeconfig = dir.join("kubeconfig");
                server
                    .write_kubeconfig(&kubeconfig)
                    .expect("write the kubeconfig");
                (false, kubeconfig, Some(server), None)
            }
        };
        let client = client_from(&kubeconfig).await;
        let env = Env {
            ns,
            client,
            real,
            dir,
            kubeconfig,
            rbac: tokio::sync::Mutex::new(None),
            cluster_objects: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            double,
            _lock: lock,
        };
        env.ensure_crds().await;
        env.apply(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": env.ns, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        }))
        .await;
        env
    }

    /// [`Env::new`] with the whole Flux installation: ready controllers, the Flux objects with
    /// their statuses, and the FluxInstance.
    pub async fn with_flux(test: &str) -> Env {
        let env = Env::new(test).await;
        env.install_flux().await;
        env
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NAMESPACE", self.ns.clone()),
            ("REPLICAS", if self.real { "0" } else { "1" }.into()),
        ]
    }

    fn fixture_documents(&self, name: &str) -> Vec<Value> {
        let vars = self.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        documents(&fixture(name), &vars)
    }

    /// The project's CRDs (`config/crd/bases`) and the Flux CRDs of the fixtures, each applied
    /// only when absent (a real cluster keeps its CRDs: they are never deleted), then
    /// established.
    async fn ensure_crds(&self) {
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

    fn api(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        let ar = resource(api_version, kind);
        if CLUSTER_SCOPED.contains(&kind) {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &self.ns, &ar)
        }
    }

    /// Server-side applies `obj` (namespaced objects land in the test namespace), then writes
    /// its `status`, if it has one, through the status subresource. Returns the object.
    pub async fn apply(&self, mut obj: Value) -> Value {
        let status = obj.as_object_mut().and_then(|m| m.remove("status"));
        let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        if !CLUSTER_SCOPED.contains(&kind.as_str()) {
            obj["metadata"]["namespace"] = json!(self.ns);
        }
        let api = self.api(&api_version, &kind);
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        let applied = match status {
            Some(status) => api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .unwrap_or_else(|e| panic!("write the status of {kind} {name}: {e}")),
            None => applied,
        };
        serde_json::to_value(applied).expect("object as JSON")
    }

    /// Merge-patches the status of an object through the status subresource as the field
    /// manager `manager`, as `kubectl patch --subresource=status` (manager `kubectl-patch`), a
    /// restore tool or another controller would.
    pub async fn merge_status_as(
        &self,
        manager: &str,
        api_version: &str,
        kind: &str,
        name: &str,
        status: Value,
    ) -> Value {
        let params = PatchParams {
            field_manager: Some(manager.to_string()),
            ..PatchParams::default()
        };
        let obj = self
            .api(api_version, kind)
            .patch_status(name, &params, &Patch::Merge(json!({ "status": status })))
            .await
            .unwrap_or_else(|e| panic!("patch the status of {kind} {name} as {manager}: {e}"));
        serde_json::to_value(obj).expect("object as JSON")
    }

    /// Merge-patches an object (metadata or spec).
    pub async fn merge(&self, api_version: &str, kind: &str, name: &str, patch: Value) -> Value {
        let obj = self
            .api(api_version, kind)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("patch {kind} {name}: {e}"));
        serde_json::to_value(obj).expect("object as JSON")
    }

    pub async fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        self.api(api_version, kind)
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get {kind} {name}: {e}"))
            .map(|o| serde_json::to_value(o).expect("object as JSON"))
    }

    pub async fn delete(&self, api_version: &str, kind: &str, name: &str) {
        self.api(api_version, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind} {name}: {e}"));
    }

    /// Every object of a kind in the namespace.
    pub async fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.api(api_version, kind)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"))
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).expect("object as JSON"))
            .collect()
    }

    /// The FluxReport `flux` of the namespace.
    pub async fn report(&self) -> Option<Value> {
        self.get("fluxcd.controlplane.io/v1", "FluxReport", "flux")
            .await
    }

    /// The FluxInstance `flux` of the namespace.
    pub async fn instance(&self) -> Option<Value> {
        self.get("fluxcd.controlplane.io/v1", "FluxInstance", "flux")
            .await
    }

    /// Sets (or, with `None`, removes) an annotation of the FluxReport.
    pub async fn annotate_report(&self, key: &str, value: Option<&str>) {
        self.merge(
            "fluxcd.controlplane.io/v1",
            "FluxReport",
            "flux",
            json!({"metadata": {"annotations": {key: value}}}),
        )
        .await;
    }

    /// Waits until the FluxReport passes `check`, and returns it.
    pub async fn wait_report<F>(&self, what: &str, timeout: Duration, check: F) -> Value
    where
        F: Fn(&Value) -> Result<(), String>,
    {
        let check = &check;
        eventually(what, timeout, || async move {
            let report = self.report().await.ok_or("no FluxReport yet")?;
            check(&report).map_err(|e| format!("{e}\nreport: {report:#}"))?;
            Ok(report)
        })
        .await
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

    /// Makes a Flux controller ready or not, and waits until its Deployment shows it. On the
    /// double the harness writes the status a Deployment controller would; on a real cluster the
    /// Deployment controller does: 0 replicas is ready, 1 replica that can never be scheduled is
    /// not (`Available: 0/1`).
    pub async fn set_component_ready(&self, name: &str, ready: bool) {
        let api = self.api("apps/v1", "Deployment");
        if self.real {
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
    /// (none on the double; on a real cluster whatever else is there), counted by anchor §2.7.
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
    /// fixture's on the double; a real cluster may already have its own).
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

    /// Makes listing HelmRepositories fail with 403 for the operator: a fault on the double; on a
    /// real cluster, the project ClusterRole without `helmrepositories` (the operator must run
    /// with the project RBAC: [`OperatorOpts::project_rbac`]).
    pub async fn forbid_helm_repositories(&self) {
        if let Some(double) = &self.double {
            let message = format!(
                "helmrepositories.source.toolkit.fluxcd.io is forbidden: User \"system:serviceaccount:{}:flux-reporter\" cannot list resource \"helmrepositories\" in API group \"source.toolkit.fluxcd.io\" at the cluster scope",
                self.ns
            );
            let id = double.faults().inject(
                Fault::status(403)
                    .method("GET")
                    .path_prefix(HELM_REPOSITORIES)
                    .message(&message),
            );
            lock(&self.faults).push(id);
            return;
        }
        let rbac = self.rbac.lock().await;
        let rbac = rbac.as_ref().expect(
            "forbid_helm_repositories on a real cluster needs the operator under the project RBAC",
        );
        let mut role = rbac.cluster_role.clone();
        for rule in role["rules"].as_array_mut().into_iter().flatten() {
            if let Some(resources) = rule["resources"].as_array_mut() {
                resources.retain(|r| r != "helmrepositories");
            }
        }
        self.apply(role).await;
    }

    /// Undoes [`Env::forbid_helm_repositories`].
    pub async fn allow_helm_repositories(&self) {
        if let Some(double) = &self.double {
            for id in lock(&self.faults).drain(..) {
                double.faults().remove(id);
            }
            return;
        }
        let role = self
            .rbac
            .lock()
            .await
            .as_ref()
            .map(|r| r.cluster_role.clone());
        if let Some(role) = role {
            self.apply(role).await;
        }
    }

    /// Starts a replica of the operator for the namespace. On a real cluster with the project
    /// RBAC (`E2E_RBAC=1` or `opts.project_rbac`), it runs as the ServiceAccount of
    /// `config/rbac`, with a token from the TokenRequest API.
    pub async fn start_operator(&self, opts: OperatorOpts) -> Operator {
        let kubeconfig = if self.real && opts.project_rbac.unwrap_or_else(rbac_requested) {
            self.project_rbac_kubeconfig().await
        } else {
            self.kubeconfig.clone()
        };
        Operator::start(&kubeconfig, &self.ns, &self.dir, &opts).await
    }

    /// Starts a replica that reaches the API server through `proxy` (which forwards to
    /// [`Env::api_upstream`]), with the kubeconfig [`Env::start_operator`] would use.
    pub async fn start_operator_through(&self, proxy: &MuteProxy, opts: OperatorOpts) -> Operator {
        let kubeconfig = if self.real && opts.project_rbac.unwrap_or_else(rbac_requested) {
            self.project_rbac_kubeconfig().await
        } else {
            self.kubeconfig.clone()
        };
        let through = self
            .dir
            .join(format!("kubeconfig-via-{}", proxy.addr().port()));
        write_proxied_kubeconfig(&kubeconfig, &through, proxy.addr());
        Operator::start(&through, &self.ns, &self.dir, &opts).await
    }

    /// `host:port` of the API server the tests talk to.
    pub fn api_upstream(&self) -> String {
        let server = kubeconfig_server(&self.kubeconfig);
        let uri: http::Uri = server
            .parse()
            .unwrap_or_else(|e| panic!("server URL {server}: {e}"));
        let host = uri.host().expect("server host");
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        format!("{host}:{port}")
    }

    /// Applies `config/rbac` for the test namespace (cluster-scoped names suffixed with it) and
    /// returns a kubeconfig that authenticates as its ServiceAccount.
    async fn project_rbac_kubeconfig(&self) -> PathBuf {
        let mut rbac = self.rbac.lock().await;
        if let Some(r) = rbac.as_ref() {
            return r.kubeconfig.clone();
        }
        let dir = manifest_dir().join("../config/rbac");
        let kustomization = documents(&dir.join("kustomization.yaml"), &[]);
        let files: Vec<String> = kustomization[0]["resources"]
            .as_array()
            .expect("config/rbac/kustomization.yaml resources")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let suffix = format!("-{}", self.ns);
        let mut service_account = None;
        let mut cluster_role = None;
        for file in files {
            for mut doc in documents(&dir.join(&file), &[]) {
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                if CLUSTER_SCOPED.contains(&kind.as_str()) {
                    let name = format!(
                        "{}{suffix}",
                        doc["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    doc["metadata"]["name"] = json!(name);
                } else {
                    doc["metadata"]["namespace"] = json!(self.ns);
                }
                if doc["roleRef"]["kind"] == "ClusterRole" {
                    let name = format!(
                        "{}{suffix}",
                        doc["roleRef"]["name"].as_str().unwrap_or_default()
                    );
                    doc["roleRef"]["name"] = json!(name);
                }
                for s in doc["subjects"].as_array_mut().into_iter().flatten() {
                    if s["kind"] == "ServiceAccount" {
                        s["namespace"] = json!(self.ns);
                    }
                }
                match kind.as_str() {
                    "ServiceAccount" => {
                        service_account = doc["metadata"]["name"].as_str().map(str::to_string)
                    }
                    // The operator's own ClusterRole: the one bound to its ServiceAccount.
                    "ClusterRole"
                        if doc["metadata"]["name"] == format!("flux-reporter{suffix}") =>
                    {
                        cluster_role = Some(doc.clone())
                    }
                    _ => {}
                }
                if CLUSTER_SCOPED.contains(&kind.as_str()) {
                    let ar = resource(doc["apiVersion"].as_str().unwrap_or_default(), &kind);
                    let name = doc["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    lock(&self.cluster_objects).push((ar, name));
                }
                self.apply(doc).await;
            }
        }
        let service_account = service_account.expect("config/rbac has a ServiceAccount");
        let cluster_role = cluster_role.expect("config/rbac has the ClusterRole flux-reporter");
        let token = self.token_for(&service_account).await;
        let kubeconfig = self.dir.join("kubeconfig-project-rbac");
        write_token_kubeconfig(&self.kubeconfig, &kubeconfig, &token, &self.ns);
        *rbac = Some(Rbac {
            kubeconfig: kubeconfig.clone(),
            cluster_role,
        });
        kubeconfig
    }

    /// A token for a ServiceAccount of the namespace (TokenRequest API).
    async fn token_for(&self, service_account: &str) -> String {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let request = http::Request::post(format!(
            "/api/v1/namespaces/{}/serviceaccounts/{service_account}/token",
            self.ns
        ))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).expect("TokenRequest JSON"))
        .expect("a TokenRequest");
        let answer: Value = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {service_account}: {e}"));
        answer["status"]["token"]
            .as_str()
            .expect("a token in the TokenRequest status")
            .to_string()
    }
}

/// Writes a kubeconfig for the current cluster of `admin` that authenticates with `token`.
fn write_token_kubeconfig(admin: &Path, out: &Path, token: &str, namespace: &str) {
    let text =
        std::fs::read_to_string(admin).unwrap_or_else(|e| panic!("read {}: {e}", admin.display()));
    let config: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", admin.display()));
    let current = config["current-context"]
        .as_str()
        .expect("current-context in the kubeconfig");
    let named = |list: &str, name: &str| {
        config[list]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {list} entry {name:?} in {}", admin.display()))
    };
    let context = named("contexts", current);
    let cluster_name = context["context"]["cluster"]
        .as_str()
        .expect("context.cluster");
    let mut cluster = named("clusters", cluster_name)["cluster"].clone();
    if let Some(ca) = cluster["certificate-authority"].as_str() {
        let ca = Path::new(ca);
        if ca.is_relative() {
            let base = admin.parent().unwrap_or(Path::new("."));
            cluster["certificate-authority"] = json!(base.join(ca).to_string_lossy());
        }
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "flux-reporter", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "flux-reporter", "namespace": namespace}}],
        "current-context": "e2e",
    });
    std::fs::write(
        out,
        serde_json::to_string_pretty(&config).expect("kubeconfig JSON"),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// The condition of this type in `obj.status.conditions`.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Env {
    /// Deletes the namespace and the cluster-scoped objects of the test, also when it failed. On
    /// a real cluster, waits until the namespace is gone, so its Flux objects do not count in the
    /// next test's report. Runs on its own thread and runtime: Drop cannot await.
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let ns = self.ns.clone();
        let real = self.real;
        let cluster_objects = std::mem::take(&mut *lock(&self.cluster_objects));
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let client = client_from(&kubeconfig).await;
                for (ar, name) in cluster_objects {
                    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                        eprintln!("cleanup: cannot delete {} {name}: {e}", ar.kind);
                    }
                }
                let namespaces: Api<DynamicObject> =
                    Api::all_with(client, &resource("v1", "Namespace"));
                if let Err(e) = namespaces.delete(&ns, &DeleteParams::background()).await {
                    eprintln!("cleanup: cannot delete namespace {ns}: {e}");
                    return;
                }
                if real {
                    let gone = async {
                        while let Ok(Some(_)) = namespaces.get_opt(&ns).await {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(90), gone)
                        .await
                        .is_err()
                    {
                        eprintln!("cleanup: namespace {ns} still terminating after 90s");
                    }
                }
            });
        });
        let _ = cleanup.join();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test files kept in {}", self.dir.display());
        }
    }
}

/// Serializes the tests that share one real cluster (a lock file per kubeconfig, holding the
/// pid; a lock whose process is gone is stale and taken over).
struct ClusterLock {
    path: PathBuf,
}

impl ClusterLock {
    async fn acquire(kubeconfig: &Path) -> ClusterLock {
        let mut h = std::hash::DefaultHasher::new();
        h.write(
            kubeconfig
                .canonicalize()
                .unwrap_or(kubeconfig.to_path_buf())
                .to_string_lossy()
                .as_bytes(),
        );
        let path = std::env::temp_dir().join(format!("flux-reporter-e2e-{:016x}.lock", h.finish()));
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    use std::io::Write;
                    let mut f = f;
                    let _ = write!(f, "{}", std::process::id());
                    return ClusterLock { path };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    if let Some(pid) = holder
                        && !Path::new(&format!("/proc/{pid}")).exists()
                    {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("lock file {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The labels of a `flux_resource_info` series, as the anchor defines them (§4.2, §4.3).
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

/// The server URL of the kubeconfig's current context.
fn kubeconfig_server(path: &Path) -> String {
    let kc = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", path.display()));
    let context = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    kc.clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| panic!("no server in kubeconfig {}", path.display()))
}

/// Copies a kubeconfig with every cluster's server replaced by `proxy`, keeping the scheme; for
/// TLS, the certificate is still checked against the original host (`tls-server-name`).
fn write_proxied_kubeconfig(from: &Path, to: &Path, proxy: std::net::SocketAddr) {
    let mut kc = kube::config::Kubeconfig::read_from(from)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", from.display()));
    for named in &mut kc.clusters {
        let Some(cluster) = named.cluster.as_mut() else {
            continue;
        };
        let Some(server) = cluster.server.clone() else {
            continue;
        };
        let uri: http::Uri = server
            .parse()
            .unwrap_or_else(|e| panic!("server URL {server}: {e}"));
        let scheme = uri.scheme_str().unwrap_or("https");
        if scheme == "https" && cluster.tls_server_name.is_none() {
            cluster.tls_server_name = uri.host().map(str::to_string);
        }
        cluster.server = Some(format!("{scheme}://{proxy}"));
    }
    let yaml = serde_saphyr::to_string(&kc).expect("kubeconfig as YAML");
    std::fs::write(to, yaml).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
}
