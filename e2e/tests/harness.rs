//! The e2e harness itself, on the real API server of `E2E_KUBECONFIG`: it must work on an API
//! server without controllers (as envtest gives), so it finds out whether a Deployment controller
//! runs, writes the Deployment status such a controller would, and cleans up object by object
//! and finalizes the namespace, without relying on the namespace controller.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code)]
mod live_cluster;

use std::time::{Duration, Instant};

use common::env::{DEPLOYMENT_CONTROLLER_VAR, resource};
use common::{Env, ensure, eventually};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use live_cluster::Created;
use serde_json::json;

const FLUX_KINDS: [(&str, &str); 4] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("fluxcd.controlplane.io/v1", "FluxInstance"),
    ("apps/v1", "Deployment"),
];

/// Has the server's admission refuse the deletion of the test's namespace (a
/// ValidatingAdmissionPolicy and its binding, admissionregistration.k8s.io/v1), and waits until
/// it does: a dry-run deletion goes through admission too. Returns the policy objects, for
/// removal.
async fn refuse_namespace_deletion(env: &Env) -> Created {
    let name = format!("e2e-keep-{}", env.ns);
    let mut created = Created::new(&env.kubeconfig);
    let policy = resource(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
    );
    let binding = resource(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
    );
    let pp = PatchParams::apply(common::env::FIELD_MANAGER).force();
    for (ar, body) in [
        (
            &policy,
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{
                        "apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["DELETE"], "resources": ["namespaces"],
                    }]},
                    "validations": [{
                        "expression": format!("oldObject.metadata.name != '{}'", env.ns),
                        "message": "the e2e test keeps this namespace",
                    }],
                },
            }),
        ),
        (
            &binding,
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {"policyName": name, "validationActions": ["Deny"]},
            }),
        ),
    ] {
        created.push(ar.clone(), &name);
        Api::<DynamicObject>::all_with(env.client.clone(), ar)
            .patch(&name, &pp, &Patch::Apply(body))
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", ar.kind));
    }
    namespace_deletion(env, false).await;
    created
}

/// Waits until a dry-run deletion of the test's namespace is allowed (`true`) or refused.
async fn namespace_deletion(env: &Env, allowed: bool) {
    let namespaces: Api<DynamicObject> =
        Api::all_with(env.client.clone(), &resource("v1", "Namespace"));
    let dry_run = DeleteParams {
        dry_run: true,
        ..DeleteParams::background()
    };
    let (namespaces, dry_run) = (&namespaces, &dry_run);
    let what = if allowed { "allowed" } else { "refused" };
    eventually(
        &format!("the deletion of the namespace {what}"),
        Duration::from_secs(60),
        || async move {
            let answer = namespaces.delete(&env.ns, dry_run).await;
            ensure(answer.is_ok() == allowed, || format!("{answer:?}"))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_every_object_itself_even_with_finalizers_then_the_namespace_goes() {
    let env = Env::new("cleanup_deletes_every_object").await;
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
    // The server refuses to delete the namespace: whatever is gone was deleted by the harness
    // itself, object by object (no namespace controller took it: there is no namespace deletion
    // for one to act on).
    let mut policy = refuse_namespace_deletion(&env).await;

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
    for (api_version, kind) in FLUX_KINDS
        .into_iter()
        .chain([("coordination.k8s.io/v1", "Lease")])
    {
        let items = env.list(api_version, kind).await;
        assert!(items.is_empty(), "{kind} left: {items:?}");
    }
    let namespace = env
        .get("v1", "Namespace", &env.ns)
        .await
        .expect("the namespace itself stays (its deletion was refused)");
    assert!(
        namespace["metadata"]["deletionTimestamp"].is_null(),
        "{namespace}"
    );

    // Allowed again, the namespace is deleted and finalized: gone from the server at once, with
    // nothing left under its name (an API server alone keeps the objects of a namespace it
    // removes: only the namespace controller deletes them).
    let problems = policy.remove(&env.client).await;
    assert!(problems.is_empty(), "{problems:?}");
    namespace_deletion(&env, true).await;
    let done = env.cleanup().await;
    assert!(done.problems.is_empty(), "{:?}", done.problems);
    assert!(
        env.get("v1", "Namespace", &env.ns).await.is_none(),
        "the namespace is gone"
    );
    for (api_version, kind) in FLUX_KINDS
        .into_iter()
        .chain([("coordination.k8s.io/v1", "Lease")])
    {
        let items = env.list(api_version, kind).await;
        assert!(items.is_empty(), "{kind} left: {items:?}");
    }
}

/// Plays a Deployment controller: writes `status.observedGeneration` of every Deployment of the
/// namespace, until aborted.
fn fake_deployment_controller(env: &Env) -> tokio::task::JoinHandle<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &resource("apps/v1", "Deployment"),
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

/// What `E2E_DEPLOYMENT_CONTROLLER` says of the cluster (`hack/envtest.sh` sets 0), if set.
fn declared_deployment_controller() -> Option<bool> {
    match std::env::var(DEPLOYMENT_CONTROLLER_VAR).ok().as_deref() {
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_a_deployment_controller_only_where_one_writes_status() {
    let env = Env::new("the_probe_finds_a_deployment_controller").await;
    let start = Instant::now();
    let found = env.probe_deployment_controller().await;
    let waited = start.elapsed();
    if let Some(declared) = declared_deployment_controller() {
        assert_eq!(
            found, declared,
            "{DEPLOYMENT_CONTROLLER_VAR} says {declared}"
        );
    }
    assert!(
        env.get("apps/v1", "Deployment", "e2e-deployment-controller-probe")
            .await
            .is_none(),
        "the probe is deleted"
    );
    if found {
        // A running controller answers in milliseconds.
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        return;
    }
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(30),
        "waited {waited:?} before deciding"
    );

    // The same server, with something that writes Deployment status.
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
async fn the_deployment_status_is_ready_then_unready_as_the_harness_sets_it() {
    let env = Env::new("the_deployment_status_is_ready_then_unready").await;
    env.install_flux().await;
    let controller = env.deployment_controller().await;
    if let Some(declared) = declared_deployment_controller() {
        assert_eq!(controller, declared);
    }
    let d = env
        .get("apps/v1", "Deployment", "helm-controller")
        .await
        .unwrap();
    let available = |d: &serde_json::Value| d["status"]["availableReplicas"].as_i64().unwrap_or(0);
    if controller {
        // The controller's status: ready with no replicas.
        assert_eq!(d["spec"]["replicas"], 0);
    } else {
        // The harness's status, through the status subresource: 1 replica, as the spec has.
        assert_eq!(
            d["spec"]["replicas"], 1,
            "a status of 1 replica needs 1 in spec"
        );
        assert_eq!(available(&d), 1);
        assert_eq!(
            d["status"]["observedGeneration"],
            d["metadata"]["generation"]
        );
    }
    assert_eq!(
        common::condition(&d, "Available").unwrap()["status"],
        "True"
    );
    env.set_component_ready("helm-controller", false).await;
    let d = env
        .get("apps/v1", "Deployment", "helm-controller")
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(available(&d), 0);
    assert_eq!(
        common::condition(&d, "Available").unwrap()["status"],
        "False"
    );
    env.set_component_ready("helm-controller", true).await;
    let d = env
        .get("apps/v1", "Deployment", "helm-controller")
        .await
        .unwrap();
    assert_eq!(
        common::condition(&d, "Available").unwrap()["status"],
        "True"
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
