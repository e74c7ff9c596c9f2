//! Leaving the cluster as the test found it, and one test at a time on a real cluster.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, ResourceExt,
};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::json;

use super::kubeconfig::client_from;
use super::{Env, lock, resource};

/// What [`Env::cleanup`] did.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Objects deleted in the namespace (each kind through its preferred version).
    pub deleted: usize,
    /// What could not be deleted, or is still there after the deletion, and why.
    pub problems: Vec<String>,
}

impl Env {
    /// Deletes what the test created, object by object: every namespaced object that discovery
    /// says can be listed and deleted (Flux objects, FluxInstance and FluxReport, Deployments,
    /// events, leases, RBAC...), finalizers removed first, then the cluster-scoped objects, then
    /// the namespace, finalized as the namespace controller would (an API server alone keeps a
    /// deleted namespace `Terminating` forever: its `kubernetes` finalizer is that
    /// controller's). Also run on drop, so a failed test cleans up too.
    pub async fn cleanup(&self) -> Cleanup {
        let cluster_objects = std::mem::take(&mut *lock(&self.cluster_objects));
        clean(&self.client, &self.ns, cluster_objects).await
    }
}

impl Drop for Env {
    /// [`Env::cleanup`] on its own thread and runtime (Drop cannot await), straight to the
    /// server (not through the test's proxy and its faults), bounded in time so a broken
    /// cluster cannot hang the run.
    fn drop(&mut self) {
        // An operator still running would re-create its FluxReport while the namespace goes,
        // and a finalized namespace leaves such an object behind in storage.
        for op in lock(&self.operators).drain(..) {
            if let Some(child) = op.upgrade() {
                let mut child = lock(&child);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let kubeconfig = self.kubeconfig.clone();
        let ns = self.ns.clone();
        let cluster_objects = std::mem::take(&mut *lock(&self.cluster_objects));
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let client = client_from(&kubeconfig).await;
                let work = clean(&client, &ns, cluster_objects);
                match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
                    Ok(done) => {
                        for p in done.problems {
                            eprintln!("cleanup of {ns}: {p}");
                        }
                    }
                    Err(_) => eprintln!("cleanup of {ns}: gave up after {CLEANUP_TIMEOUT:?}"),
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

const CLEANUP_TIMEOUT: Duration = Duration::from_secs(90);

async fn clean(client: &Client, ns: &str, cluster_objects: Vec<(ApiResource, String)>) -> Cleanup {
    let mut out = Cleanup::default();
    // Finalizing a namespace that still holds objects would leave them in storage, out of
    // sight, for a later namespace of the same name or a cluster-wide list to find.
    let mut emptied = false;
    match Discovery::new(client.clone()).run().await {
        Ok(discovery) => {
            let kinds = namespaced_kinds(&discovery);
            for ar in &kinds {
                delete_all(client, ns, ar, &mut out).await;
            }
            // Nothing of Flux's may survive into the next test's report. Other kinds may come
            // back on their own on a full cluster (the `default` ServiceAccount, the
            // `kube-root-ca.crt` ConfigMap): the namespace controller takes them.
            emptied = true;
            for ar in kinds.iter().filter(|ar| ar.group.ends_with("fluxcd.io")) {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
                match api.list(&ListParams::default()).await {
                    Ok(left) if !left.items.is_empty() => {
                        emptied = false;
                        out.problems.push(format!(
                            "{} {:?} still there after deletion",
                            ar.kind,
                            left.items.iter().map(|o| o.name_any()).collect::<Vec<_>>()
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        emptied = false;
                        out.problems.push(format!("list {} again: {e}", ar.kind))
                    }
                }
            }
        }
        Err(e) => out.problems.push(format!("discovery: {e}")),
    }
    for (ar, name) in cluster_objects {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        if let Err(e) = api.delete(&name, &DeleteParams::background()).await
            && !not_found(&e)
        {
            out.problems.push(format!("delete {} {name}: {e}", ar.kind));
        }
    }
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("v1", "Namespace"));
    if let Err(e) = namespaces.delete(ns, &DeleteParams::background()).await
        && !not_found(&e)
    {
        out.problems.push(format!("delete namespace {ns}: {e}"));
    }
    if !emptied {
        out.problems.push(format!(
            "namespace {ns} not finalized: it may still hold objects"
        ));
    } else if let Err(e) = finalize(&namespaces, ns).await {
        out.problems.push(format!("finalize namespace {ns}: {e}"));
    }
    out
}

/// The namespace controller's last step, which an API server alone never takes: with the
/// namespace empty, `PUT .../finalize` with no finalizers lets the server remove it. On a
/// cluster with a namespace controller this only does sooner what it would do.
async fn finalize(namespaces: &Api<DynamicObject>, ns: &str) -> Result<(), kube::Error> {
    let Some(mut namespace) = namespaces.get_opt(ns).await? else {
        return Ok(());
    };
    namespace.data["spec"] = json!({"finalizers": []});
    match namespaces
        .replace_subresource("finalize", ns, &Default::default(), &namespace)
        .await
    {
        Err(e) if !not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Every namespaced resource (preferred version of each group) that can be listed and deleted.
fn namespaced_kinds(discovery: &Discovery) -> Vec<ApiResource> {
    discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
        })
        .map(|(ar, _)| ar)
        .collect()
}

/// Deletes every object of one kind in the namespace, its finalizers removed first: no controller
/// may be there to honour them.
async fn delete_all(client: &Client, ns: &str, ar: &ApiResource, out: &mut Cleanup) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let objects = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            out.problems.push(format!("list {}: {e}", ar.kind));
            return;
        }
    };
    for obj in objects {
        let name = obj.name_any();
        if !obj.finalizers().is_empty() {
            let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
            if let Err(e) = api.patch(&name, &PatchParams::default(), &patch).await
                && !not_found(&e)
            {
                out.problems
                    .push(format!("remove the finalizers of {} {name}: {e}", ar.kind));
            }
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => out.deleted += 1,
            // The same object under another resource (core and events.k8s.io Events), or gone.
            Err(e) if not_found(&e) => {}
            Err(e) => out.problems.push(format!("delete {} {name}: {e}", ar.kind)),
        }
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Serializes the tests that share one real cluster (a lock file per kubeconfig, holding the
/// pid; a lock whose process is gone is stale and taken over).
pub(super) struct ClusterLock {
    path: PathBuf,
}

impl ClusterLock {
    pub(super) async fn acquire(kubeconfig: &Path) -> ClusterLock {
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
