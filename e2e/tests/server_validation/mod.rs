//! Rendered manifests checked by the real API server of the test's [`Env`]: server-side apply
//! with `fieldValidation=Strict` (an unknown or duplicated field is an error, not a warning;
//! https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation), so the CRD
//! schemas (types, enums, patterns, formats, CEL rules, required fields) and the built-in types
//! decide. The Prometheus Operator CRDs of `fixtures/prometheus-operator-crds` are created when
//! the cluster has none (and never deleted: other tests and users may read them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{self, Scope};
use serde_json::Value;

use crate::common::env::FIELD_MANAGER;
use crate::common::{Env, condition, ensure, eventually};

/// The CRDs of the Prometheus Operator that the monitoring manifests use.
pub const PROMETHEUS_OPERATOR_CRDS: [&str; 3] =
    ["servicemonitors", "podmonitors", "prometheusrules"];

fn crd_file(plural: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prometheus-operator-crds")
        .join(format!("monitoring.coreos.com_{plural}.yaml"))
}

fn crds(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
    ));
    Api::all_with(client.clone(), &ar)
}

/// Creates the Prometheus Operator CRDs the cluster does not have yet (a cluster that has them,
/// from a Prometheus Operator install, keeps its own), and waits until all three are
/// established.
pub async fn ensure_prometheus_operator_crds(env: &Env) {
    let api = crds(&env.client);
    for plural in PROMETHEUS_OPERATOR_CRDS {
        let name = format!("{plural}.monitoring.coreos.com");
        let present = api
            .get_opt(&name)
            .await
            .unwrap_or_else(|e| panic!("get CRD {name}: {e}"));
        if present.is_some() {
            continue;
        }
        let path = crd_file(plural);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let crd: DynamicObject = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            // Created meanwhile by someone else: as good.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create CRD {name}: {e}"),
        }
    }
    let api = &api;
    eventually(
        "the Prometheus Operator CRDs established",
        Duration::from_secs(60),
        || async move {
            for plural in PROMETHEUS_OPERATOR_CRDS {
                let name = format!("{plural}.monitoring.coreos.com");
                let crd = api.get(&name).await.map_err(|e| format!("{name}: {e}"))?;
                let crd = serde_json::to_value(crd).map_err(|e| e.to_string())?;
                let established = condition(&crd, "Established").cloned();
                ensure(
                    established.as_ref().is_some_and(|c| c["status"] == "True"),
                    || format!("{name}: Established is {established:?}"),
                )?;
            }
            Ok(())
        },
    )
    .await;
}

/// Server-side applies `doc` with strict field validation, as the field manager of the harness
/// (`force`: the shipped manifests own their fields). A namespaced object lands in the test's
/// namespace whatever its manifest says (its own, `flux-system`, need not exist); with `dry_run`
/// the server validates, defaults and admits it, and stores nothing. Returns the object the
/// server answered, or its error.
pub async fn strict_apply(env: &Env, doc: &Value, dry_run: bool) -> Result<Value, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    // A CRD created a moment ago may not be in discovery yet: a bound, not a wait.
    let client = &env.client;
    let gvk = &gvk;
    let (ar, caps) = eventually(
        &format!("{api_version} {kind} served"),
        Duration::from_secs(30),
        || async move {
            discovery::pinned_kind(client, gvk)
                .await
                .map_err(|e| format!("{api_version} {kind}: {e}"))
        },
    )
    .await;
    let mut doc = doc.clone();
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            doc["metadata"]["namespace"] = Value::from(env.ns.as_str());
            Api::namespaced_with(env.client.clone(), &env.ns, &ar)
        }
        Scope::Cluster => Api::all_with(env.client.clone(), &ar),
    };
    let mut params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(&doc))
        .await
        .map(|o| serde_json::to_value(o).expect("object as JSON"))
        .map_err(|e| format!("{kind} {name}: {e}"))
}

/// [`strict_apply`] of every document, failing with every rejection at once.
pub async fn strict_apply_all(env: &Env, what: &str, docs: &[Value], dry_run: bool) -> Vec<Value> {
    let mut applied = Vec::new();
    let mut errors = Vec::new();
    for d in docs {
        match strict_apply(env, d, dry_run).await {
            Ok(v) => applied.push(v),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "the API server rejects {} of the {} objects of {what} (strict field validation):\n{}",
        errors.len(),
        docs.len(),
        errors.join("\n")
    );
    applied
}
