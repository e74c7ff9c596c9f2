//! The e2e harness itself, on the double: it must work on an API server without controllers
//! (as envtest gives), so it finds out whether a Deployment controller runs, and it cleans up
//! object by object without relying on the namespace controller.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::Env;
use flux_reporter_e2e::Fault;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

const FLUX_KINDS: [(&str, &str); 4] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("fluxcd.controlplane.io/v1", "FluxInstance"),
    ("apps/v1", "Deployment"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_every_object_even_with_finalizers_and_without_namespace_deletion() {
    let env = Env::on_double("cleanup_deletes_every_object").await;
    env.install_flux().await;
    // Finalizers nobody will ever remove: no controller runs.
    for (api_version, kind, name) in [
        ("source.toolkit.fluxcd.io/v1", "GitRepository", "podinfo"),
        ("fluxcd.controlplane.io/v1", "FluxInstance", "flux"),
    ] {
        env.merge(
            api_version,
            kind,
            name,
            json!({"metadata": {"finalizers": ["finalizers.fluxcd.io"]}}),
        )
        .await;
    }
    env.apply(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "held"}, "spec": {"holderIdentity": "someone"},
    }))
    .await;
    let mut before = 0;
    for (api_version, kind) in FLUX_KINDS {
        let n = env.list(api_version, kind).await.len();
        assert!(n > 0, "the fixtures have {kind} objects");
        before += n;
    }
    // The namespace cannot be deleted: whatever is gone was deleted by the harness itself.
    let double = env.double().expect("the double");
    double.faults().inject(
        Fault::status(500)
            .method("DELETE")
            .path(&format!("/api/v1/namespaces/{}", env.ns)),
    );

    let done = env.cleanup().await;

    assert!(
        done.deleted > before,
        "{done:?}, {before} objects before and a Lease"
    );
    assert_eq!(done.problems.len(), 1, "{:?}", done.problems);
    assert!(
        done.problems[0].contains(&format!("delete namespace {}", env.ns)),
        "{:?}",
        done.problems
    );
    let patches: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/gitrepositories/podinfo"))
        .collect();
    assert!(
        !patches.is_empty(),
        "the finalizers were removed by a patch"
    );
    for (api_version, kind) in FLUX_KINDS
        .into_iter()
        .chain([("coordination.k8s.io/v1", "Lease")])
    {
        let items = env.list(api_version, kind).await;
        assert!(items.is_empty(), "{kind} left: {items:?}");
    }
    assert!(
        env.get("v1", "Namespace", &env.ns).await.is_some(),
        "the namespace itself stays (its deletion failed)"
    );
}

/// Plays a Deployment controller: writes `status.observedGeneration` of every Deployment of the
/// namespace, until aborted.
fn fake_deployment_controller(env: &Env) -> tokio::task::JoinHandle<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &common::env::resource("apps/v1", "Deployment"),
    );
    tokio::spawn(async move {
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await {
                for d in list.items {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    let generation = d.metadata.generation.unwrap_or(1);
                    let status = json!({"status": {"observedGeneration": generation}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_a_deployment_controller_only_where_one_writes_status() {
    let env = Env::on_double("the_probe_finds_a_deployment_controller").await;
    let start = Instant::now();
    assert!(
        !env.probe_deployment_controller().await,
        "the double has none"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(15),
        "waited {waited:?} before deciding"
    );
    assert!(
        env.get("apps/v1", "Deployment", "e2e-deployment-controller-probe")
            .await
            .is_none(),
        "the probe is deleted"
    );

    let controller = fake_deployment_controller(&env);
    let start = Instant::now();
    let found = env.probe_deployment_controller().await;
    controller.abort();
    assert!(found, "the fake controller wrote observedGeneration");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_deployment_controller_the_harness_writes_ready_and_unready_status() {
    let env = Env::on_double("without_a_deployment_controller").await;
    env.install_flux().await;
    assert!(!env.deployment_controller().await);
    let d = env
        .get("apps/v1", "Deployment", "helm-controller")
        .await
        .unwrap();
    assert_eq!(
        d["spec"]["replicas"], 1,
        "a status of 1 replica needs 1 in spec"
    );
    assert_eq!(d["status"]["availableReplicas"], 1);
    env.set_component_ready("helm-controller", false).await;
    let d = env
        .get("apps/v1", "Deployment", "helm-controller")
        .await
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 0);
    assert_eq!(
        common::condition(&d, "Available").unwrap()["status"],
        "False"
    );
}

// Here rather than in `common/prom.rs`, so that it runs once, not in every test binary.
#[test]
fn parses_labels_with_escapes_and_no_labels() {
    let s = common::prom::parse(
        "# HELP x y\nflux_resource_info{kind=\"Git\",name=\"a\\\"b\",url=\"\"} 1\nup 0\n",
    )
    .unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].label("name"), "a\"b");
    assert_eq!(s[0].label("url"), "");
    assert_eq!(s[1].name, "up");
}
