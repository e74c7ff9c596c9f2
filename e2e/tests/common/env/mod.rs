//! One test's world: the real API server of `E2E_KUBECONFIG` (the envtest server that
//! `hack/envtest.sh` starts, or any throwaway cluster), a fresh namespace that plays the Flux
//! namespace, the CRDs, the Flux controller Deployments, the Flux objects and the FluxInstance;
//! and, on demand, a fault-injecting proxy in front of the server ([`Env::proxy`]).
//!
//! The few places where clusters differ are single functions: who writes a Deployment's status
//! (`deployments.rs`: a controller where the cluster has one, else the harness), the operator's
//! credentials (`rbac.rs`), and the cleanup (`cleanup.rs`: object by object, so that a cluster
//! without a namespace controller is left clean too). The tests take a lock per kubeconfig, so
//! they run one at a time: the report counts Flux objects in every namespace, and two tests'
//! objects must not mix. The cluster must not run Flux controllers (they would reconcile the
//! fixtures).

mod cleanup;
mod deployments;
mod flux;
mod kubeconfig;
mod rbac;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use flux_reporter_e2e::Proxy;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};

use super::poll::eventually;
use cleanup::ClusterLock;
use rbac::Rbac;

pub use cleanup::Cleanup;
pub use deployments::DEPLOYMENT_CONTROLLER_VAR;
pub use flux::{RESOURCE_INFO_LABELS, Stats};
pub use kubeconfig::{client_from, write_token_kubeconfig};

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

/// The cluster of the tests: `E2E_KUBECONFIG`, an admin kubeconfig. A test without one fails
/// saying how to get one: there is no fallback.
pub fn cluster_kubeconfig() -> PathBuf {
    std::env::var_os("E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "E2E_KUBECONFIG is not set: the e2e tests need a real API server. Start one with \
                 `eval \"$(hack/envtest.sh start)\"` (KUBEBUILDER_ASSETS names kube-apiserver, \
                 etcd and kubectl: setup-envtest use 1.36.x -p path), or run hack/test.sh"
            )
        })
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

pub struct Env {
    /// The test's namespace: the Flux namespace the operator runs for.
    pub ns: String,
    pub client: Client,
    /// A directory for kubeconfigs and operator logs.
    pub dir: PathBuf,
    /// The admin kubeconfig (`E2E_KUBECONFIG`).
    pub kubeconfig: PathBuf,
    rbac: tokio::sync::Mutex<Option<Rbac>>,
    /// Cluster-scoped objects this test created (RBAC), deleted at the end.
    cluster_objects: Mutex<Vec<(ApiResource, String)>>,
    proxy: tokio::sync::OnceCell<Proxy>,
    /// The operators started for this test, stopped before the cleanup.
    operators: Mutex<Vec<std::sync::Weak<Mutex<std::process::Child>>>>,
    /// Does a controller write Deployment status here? Known once the Flux Deployments are
    /// about to be installed ([`Env::deployment_controller`]).
    controllers: OnceLock<bool>,
    _lock: ClusterLock,
}

impl Env {
    /// A fresh environment for `test`: the API, the CRDs and an empty namespace.
    pub async fn new(test: &str) -> Env {
        let kubeconfig = cluster_kubeconfig();
        let short: String = test.replace('_', "-").chars().take(40).collect();
        let ns = format!("e2e-{}-{}", short.trim_end_matches('-'), random_hex(6));
        let dir = std::env::temp_dir().join(format!("flux-reporter-{ns}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let lock = ClusterLock::acquire(&kubeconfig).await;
        let client = client_from(&kubeconfig).await;
        let env = Env {
            ns,
            client,
            dir,
            kubeconfig,
            rbac: tokio::sync::Mutex::new(None),
            cluster_objects: Mutex::new(Vec::new()),
            proxy: tokio::sync::OnceCell::new(),
            operators: Mutex::new(Vec::new()),
            controllers: OnceLock::new(),
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

    /// The fault-injecting proxy in front of the API server, started on first use. Operators
    /// started with [`OperatorOpts::through_proxy`](super::OperatorOpts::through_proxy) reach
    /// the server through it; [`Env::proxied_kubeconfig`] gives other clients the way in.
    pub async fn proxy(&self) -> &Proxy {
        self.proxy
            .get_or_init(|| async {
                Proxy::start(&self.kubeconfig)
                    .await
                    .unwrap_or_else(|e| panic!("start the proxy: {e}"))
            })
            .await
    }

    /// A copy of `kubeconfig` (its user kept) that reaches the server through [`Env::proxy`].
    pub async fn proxied_kubeconfig(&self, kubeconfig: &Path) -> PathBuf {
        let proxy = self.proxy().await;
        let name = kubeconfig
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kubeconfig".into());
        let out = self.dir.join(format!("{name}-via-proxy"));
        proxy
            .kubeconfig(kubeconfig, &out)
            .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
        out
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NAMESPACE", self.ns.clone()),
            // With a Deployment controller, a ready component has no replicas (see
            // `set_component_ready`); without one, the harness writes a 1-replica status.
            (
                "REPLICAS",
                if self.controllers.get() == Some(&true) {
                    "0"
                } else {
                    "1"
                }
                .into(),
            ),
        ]
    }

    fn fixture_documents(&self, name: &str) -> Vec<Value> {
        let vars = self.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        documents(&fixture(name), &vars)
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
