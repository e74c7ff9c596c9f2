//! A real API server holding the sample dump (`examples/flux-cluster-dump.yaml`), for the tests
//! of the live source and of the one-shot commands; and the cluster-scoped objects a test
//! creates, removed at its end ([`Created`]).
//!
//! The sample's objects live in five namespaces; here they all go into the test's namespace (its
//! [`Env`] cleans that one up), under their own names (no kind of the sample has a name twice),
//! but for the root Kustomization `flux-system`, which takes the namespace's name so that the
//! report finds the sync the way it does in the sample (`report/src/sync.rs`: the Kustomization
//! named like the Flux namespace). Each object is written by server-side apply, then its status
//! through the status subresource. The server gives a new object generation 1, so the status's
//! `observedGeneration`s are moved by as much as the object's generation moved: a controller that
//! had caught up with the dumped object has caught up with the seeded one (the report compares
//! the two for Deployments, `report/src/components.rs`). Finalizers are left out: no controller
//! runs to remove them, and a CRD is only deleted once its objects are gone.
//!
//! The sample's Nodes (a kubelet registers its Node through the API; an API server alone has
//! none) are created under names of the test's own, and the sample's CRDs that the server did not
//! serve yet are created too; both are deleted at the end of the test: the report lists every
//! Flux CRD of the cluster, and a CRD left behind would be a kind in the next test's report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use flux_reporter_e2e::seed;

use crate::common::env::{FIELD_MANAGER, client_from, resource};
use crate::common::{Env, condition, ensure, eventually};

/// The Flux objects of the sample (its CRDs, Nodes and Deployments left out).
pub const SAMPLE_FLUX_OBJECTS: usize = 61;
/// The Nodes of the sample.
pub const SAMPLE_NODES: usize = 3;
/// Objects written at once while seeding.
const SEED_CONCURRENCY: usize = 8;
/// How long removing a test's cluster-scoped objects may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(90);

/// The admin's client through the test's fault-injecting proxy.
pub async fn proxied_client(env: &Env) -> Client {
    client_from(&env.proxied_kubeconfig(&env.kubeconfig).await).await
}

/// The sample seeded into a test's namespace.
pub struct Sample {
    /// The Nodes of the cluster, the sample's included.
    pub nodes: i64,
    /// The sample's Flux objects written ([`SAMPLE_FLUX_OBJECTS`]).
    pub flux_objects: usize,
    /// The sample's CRDs this test created, and its Nodes.
    pub created: Created,
}

fn kind_of(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// A Flux object the report counts (not a CRD, a Node or a Deployment, nor a FluxReport: the
/// report does not count itself).
pub fn is_flux(obj: &Value) -> bool {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    (api_version.contains(".fluxcd.io/") || api_version.starts_with("fluxcd.controlplane.io/"))
        && kind_of(obj) != "FluxReport"
}

/// The sample's object as the test's namespace holds it (see the module documentation).
pub fn relocate(mut obj: Value, ns: &str) -> Value {
    let root = kind_of(&obj) == "Kustomization" && name_of(&obj) == "flux-system";
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.insert("namespace".into(), json!(ns));
        if root {
            meta.insert("name".into(), json!(ns));
        }
    }
    obj
}

/// Writes one namespaced object into the test's namespace: server-side apply, then its status
/// through the status subresource.
async fn apply_with_status(env: &Env, obj: Value) {
    let status = obj.get("status").filter(|s| !s.is_null()).cloned();
    let dumped = obj["metadata"]["generation"].as_i64();
    let applied = env.apply(seed::for_apply(&obj)).await;
    if let Some(mut status) = status {
        seed::rebase_generations(
            &mut status,
            dumped,
            applied["metadata"]["generation"].as_i64(),
        );
        env.merge_status_as(
            FIELD_MANAGER,
            applied["apiVersion"].as_str().unwrap_or_default(),
            kind_of(&applied),
            name_of(&applied),
            status,
        )
        .await;
    }
}

/// Writes namespaced objects (with their statuses) into the test's namespace, several at once.
pub async fn apply_all(env: &Env, objects: Vec<Value>) {
    stream::iter(objects)
        .map(|o| apply_with_status(env, o))
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// The API resource of a CRD's storage version.
pub fn crd_resource(crd: &Value) -> ApiResource {
    let spec = &crd["spec"];
    let version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default();
    let group = spec["group"].as_str().unwrap_or_default();
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: format!("{group}/{version}"),
        kind: spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        plural: spec["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Creates the sample's CRDs the server does not serve yet (a CRD it serves is kept: the
/// project's, or the Flux CRDs of the fixtures), waits until each is established and its
/// objects can be listed, and registers them for deletion.
async fn ensure_sample_crds(env: &Env, objects: &[Value], created: &mut Created) {
    let crd_ar = resource("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    let crds: Api<DynamicObject> = Api::all_with(env.client.clone(), &crd_ar);
    for crd in objects
        .iter()
        .filter(|o| kind_of(o) == "CustomResourceDefinition")
    {
        let name = name_of(crd).to_string();
        if crds
            .get_opt(&name)
            .await
            .unwrap_or_else(|e| panic!("get CRD {name}: {e}"))
            .is_some()
        {
            continue;
        }
        created.push(crd_ar.clone(), &name);
        env.apply(seed::for_apply(crd)).await;
        let served: Api<DynamicObject> = Api::all_with(env.client.clone(), &crd_resource(crd));
        let (crds, served, name) = (&crds, &served, &name);
        eventually(
            &format!("CRD {name} established and served"),
            Duration::from_secs(60),
            || async move {
                let crd = crds.get(name).await.map_err(|e| e.to_string())?;
                let crd = serde_json::to_value(crd).map_err(|e| e.to_string())?;
                ensure(
                    condition(&crd, "Established").is_some_and(|c| c["status"] == "True"),
                    || "not established yet".into(),
                )?;
                served
                    .list(&ListParams::default().limit(1))
                    .await
                    .map_err(|e| format!("list: {e}"))?;
                Ok(())
            },
        )
        .await;
    }
}

/// Seeds the sample into the test's namespace (see the module documentation).
pub async fn seed_sample(env: &Env) -> Sample {
    let objects = flux_reporter_e2e::fixtures::sample_dump_objects();
    let mut created = Created::new(&env.kubeconfig);
    ensure_sample_crds(env, &objects, &mut created).await;

    let node_ar = resource("v1", "Node");
    let nodes: Api<DynamicObject> = Api::all_with(env.client.clone(), &node_ar);
    for node in objects.iter().filter(|o| kind_of(o) == "Node") {
        let name = format!("{}-{}", name_of(node), env.ns);
        created.push(node_ar.clone(), &name);
        let body = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": node["metadata"]["labels"]},
        });
        nodes
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .unwrap_or_else(|e| panic!("create Node {name}: {e}"));
    }
    let node_count = nodes
        .list(&ListParams::default())
        .await
        .expect("list Nodes")
        .items
        .len();

    let namespaced: Vec<Value> = objects
        .into_iter()
        .filter(|o| o["metadata"]["namespace"].is_string())
        .map(|o| relocate(o, &env.ns))
        .collect();
    let flux_objects = namespaced.iter().filter(|o| is_flux(o)).count();
    assert_eq!(
        flux_objects, SAMPLE_FLUX_OBJECTS,
        "the sample's Flux objects"
    );
    apply_all(env, namespaced).await;
    Sample {
        nodes: node_count as i64,
        flux_objects,
        created,
    }
}

/// Cluster-scoped objects a test created (CRDs, Nodes, admission policies), deleted at its end,
/// also when it fails, and waited for until they are gone, before the next test takes the
/// cluster: what one test leaves would be in the next one's report or in its way.
pub struct Created {
    kubeconfig: PathBuf,
    objects: Vec<(ApiResource, String)>,
}

impl Created {
    pub fn new(kubeconfig: &Path) -> Created {
        Created {
            kubeconfig: kubeconfig.to_path_buf(),
            objects: Vec::new(),
        }
    }

    /// Deletes `name` at the end (register it before creating it).
    pub fn push(&mut self, ar: ApiResource, name: &str) {
        self.objects.push((ar, name.to_string()));
    }

    /// Deletes every registered object now and waits until they are gone; returns what went
    /// wrong.
    pub async fn remove(&mut self, client: &Client) -> Vec<String> {
        let objects = std::mem::take(&mut self.objects);
        match tokio::time::timeout(REMOVE_TIMEOUT, delete_and_wait(client, &objects)).await {
            Ok(problems) => problems,
            Err(_) => vec![format!(
                "{objects:?} not gone after {REMOVE_TIMEOUT:?}",
                objects = objects.iter().map(|(_, n)| n).collect::<Vec<_>>()
            )],
        }
    }
}

async fn delete_and_wait(client: &Client, objects: &[(ApiResource, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (ar, name) in objects {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => problems.push(format!("delete {} {name}: {e}", ar.kind)),
        }
    }
    for (ar, name) in objects {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        loop {
            match api.get_opt(name).await {
                Ok(None) => break,
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => {
                    problems.push(format!("get {} {name}: {e}", ar.kind));
                    break;
                }
            }
        }
    }
    problems
}

impl Drop for Created {
    /// [`Created::remove`] on a thread and runtime of its own (Drop cannot await).
    fn drop(&mut self) {
        if self.objects.is_empty() {
            return;
        }
        let kubeconfig = self.kubeconfig.clone();
        let mut objects = Created {
            kubeconfig: kubeconfig.clone(),
            objects: std::mem::take(&mut self.objects),
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let client = client_from(&kubeconfig).await;
                for p in objects.remove(&client).await {
                    eprintln!("removing the test's cluster-scoped objects: {p}");
                }
            });
        })
        .join();
    }
}
