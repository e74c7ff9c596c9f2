//! `flux-reporter run` end to end, `/metrics`: one `flux_resource_info` series per Flux object,
//! with the labels the Flux Operator exports, and none left for deleted objects.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`). The
//! server: see e2e/README.md.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::collections::BTreeSet;

use common::env::RESOURCE_INFO_LABELS;
use common::scenario::*;
use common::{Env, OperatorOpts, ensure, eventually};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_each_object_and_lose_deleted_ones() {
    let env = Env::with_flux("metrics_show_each_object_and_lose_deleted_ones").await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let objects = 12;
    let (env, op) = (&env, &op);

    let series = eventually(
        "a flux_resource_info series per object",
        soon(env),
        || async move {
            let series = resource_series(&op.metric("flux_resource_info").await?, &env.ns);
            ensure(series.len() == objects, || {
                format!("{} series: {series:#?}", series.len())
            })?;
            Ok(series)
        },
    )
    .await;
    let want_labels: BTreeSet<&str> = RESOURCE_INFO_LABELS.into_iter().collect();
    for s in &series {
        let labels: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(labels, want_labels, "{s:?}");
        assert_eq!(s.value, 1.0, "{s:?}");
    }

    let uid = |obj: Option<Value>| {
        obj.unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let podinfo_uid = uid(env.get(GIT.0, GIT.1, "podinfo").await);
    let podinfo = find(&series, "GitRepository", "podinfo").unwrap();
    let want = json!({
        "uid": podinfo_uid, "kind": "GitRepository", "name": "podinfo", "exported_namespace": env.ns,
        "ready": "True", "reason": "Succeeded", "suspended": "False",
        "revision": "6.7.0@sha1:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
        "url": "https://github.com/stefanprodan/podinfo", "ref": "6.7.0", "source_name": "", "path": "",
    });
    assert_eq!(json!(podinfo.labels), want);

    let apps_uid = uid(env
        .get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps")
        .await);
    let apps = find(&series, "Kustomization", "apps").unwrap();
    let want = json!({
        "uid": apps_uid, "kind": "Kustomization", "name": "apps", "exported_namespace": env.ns,
        "ready": "False", "reason": "DependencyNotReady", "suspended": "False",
        "revision": "refs/heads/main@sha1:4b1d9c0a2f3e5d6c7b8a9f0e1d2c3b4a5f6e7d8c",
        "url": "", "ref": "", "source_name": env.ns, "path": "./apps/production",
    });
    assert_eq!(json!(apps.labels), want);

    let paused = find(&series, "GitRepository", "paused").unwrap();
    assert_eq!(
        (
            paused.label("suspended"),
            paused.label("ready"),
            paused.label("ref")
        ),
        ("True", "False", "release")
    );
    let oci_chart_repo = find(&series, "HelmRepository", "podinfo-oci").unwrap();
    assert_eq!(
        oci_chart_repo.label("ready"),
        "True",
        "an OCI HelmRepository is ready: {oci_chart_repo:?}"
    );
    let redis = find(&series, "HelmRelease", "redis").unwrap();
    assert_eq!(
        (
            redis.label("source_name"),
            redis.label("suspended"),
            redis.label("revision")
        ),
        ("bitnami", "True", "20.1.0")
    );

    let instance = eventually(
        "flux_instance_info of the FluxInstance",
        soon(env),
        || async move {
            let series = resource_series(&op.metric("flux_instance_info").await?, &env.ns);
            ensure(
                series.len() == 1 && series[0].label("ready") == "True",
                || format!("{series:#?}"),
            )?;
            Ok(series[0].clone())
        },
    )
    .await;
    assert_eq!(
        (instance.label("kind"), instance.label("name")),
        ("FluxInstance", "flux")
    );
    assert_eq!(instance.label("registry"), "ghcr.io/fluxcd");
    assert_eq!(instance.label("uid"), uid(env.instance().await));

    // Deleted: gone at the next run, the others stay.
    env.delete(GIT.0, GIT.1, "podinfo").await;
    eventually(
        "the deleted GitRepository's series to go",
        soon(env),
        || async move {
            let series = resource_series(&op.metric("flux_resource_info").await?, &env.ns);
            ensure(find(&series, "GitRepository", "podinfo").is_none(), || {
                "still there".into()
            })?;
            ensure(series.len() == objects - 1, || {
                format!("{} series: {series:#?}", series.len())
            })
        },
    )
    .await;
}
