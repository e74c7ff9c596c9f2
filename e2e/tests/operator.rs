//! End-to-end scenarios of `flux-reporter run`: the real binary against a Kubernetes API (the API
//! server double, or the cluster of `E2E_KUBECONFIG`), with Flux CRDs, controller Deployments,
//! Flux objects and a FluxInstance written by the harness, a local notification receiver, and
//! assertions on the FluxReport, the FluxInstance status, the events, the POSTs, `/metrics`, the
//! Lease and the operator's log.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).
//! Real cluster: `E2E_KUBECONFIG=~/.kube/config cargo test -p flux-reporter-e2e --test operator`;
//! add `E2E_RBAC=1` to run the operator with only `config/rbac`.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::env::{
    COMPONENTS, FIXTURE_FLUX_VERSION, LEASE_NAME, RECONCILE, REQUESTED_AT, RESOURCE_INFO_LABELS,
    rbac_requested, real_cluster, unique,
};
use common::prom::Sample;
use common::{Env, Operator, OperatorOpts, Stats, condition, ensure, eventually};
use serde_json::{Value, json};

/// How long a report may take to show up or change, on the double (a real cluster gets more).
fn soon(env: &Env) -> Duration {
    if env.real {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

const GIT: (&str, &str) = ("source.toolkit.fluxcd.io/v1", "GitRepository");
const HELM_REPO: (&str, &str) = ("source.toolkit.fluxcd.io/v1", "HelmRepository");

/// What the fixtures hold, per kind (see `fixtures/flux-objects.yaml`).
fn fixture_stats() -> Vec<(&'static str, &'static str, Stats)> {
    vec![
        (
            "fluxcd.controlplane.io/v1",
            "FluxInstance",
            Stats::new(1, 0, 0, 0),
        ),
        (
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            Stats::new(1, 0, 1, 0),
        ),
        (
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Stats::new(3, 1, 0, 0),
        ),
        (GIT.0, GIT.1, Stats::new(3, 1, 1, 3072)),
        (HELM_REPO.0, HELM_REPO.1, Stats::new(2, 0, 0, 0)),
        (
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            Stats::new(1, 0, 0, 512),
        ),
    ]
}

/// The `reconcilers` entries the report must have, as (apiVersion, kind, stats), with `extra`
/// objects added by the test on top of the fixtures.
async fn expected_reconcilers(env: &Env, extra: &[(&str, Stats)]) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (api_version, kind, mut ours) in fixture_stats() {
        for (k, more) in extra {
            if *k == kind {
                ours = ours.add(*more);
            }
        }
        let stats = env.expected_stats(api_version, kind, ours).await;
        out.push((api_version.to_string(), kind.to_string(), stats));
    }
    out
}

fn reconciler<'a>(report: &'a Value, kind: &str) -> Option<&'a Value> {
    report["spec"]["reconcilers"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind)
}

/// The report's `reconcilers` hold these entries (and, on the double, only these kinds).
fn check_reconcilers(
    env: &Env,
    report: &Value,
    expected: &[(String, String, Value)],
) -> Result<(), String> {
    for (api_version, kind, stats) in expected {
        let entry =
            reconciler(report, kind).ok_or_else(|| format!("no reconcilers entry for {kind}"))?;
        ensure(
            entry["apiVersion"] == *api_version && entry["stats"] == *stats,
            || format!("{kind}: want {api_version} {stats}, got {entry}"),
        )?;
    }
    if !env.real {
        let kinds: BTreeSet<&str> = report["spec"]["reconcilers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["kind"].as_str())
            .collect();
        let want: BTreeSet<&str> = expected.iter().map(|(_, k, _)| k.as_str()).collect();
        ensure(kinds == want, || {
            format!("reconciler kinds {kinds:?}, want {want:?}")
        })?;
    }
    Ok(())
}

fn ready_of(obj: &Value) -> Value {
    condition(obj, "Ready").cloned().unwrap_or(Value::Null)
}

fn check_ready(obj: &Value, status: &str, reason: &str) -> Result<(), String> {
    let ready = ready_of(obj);
    ensure(
        ready["status"] == status && ready["reason"] == reason,
        || format!("want Ready {status}/{reason}, got {ready}"),
    )
}

/// A complete, healthy report of the fixtures (plus `extra`).
async fn wait_full_report(env: &Env, extra: &[(&str, Stats)]) -> Value {
    let expected = expected_reconcilers(env, extra).await;
    env.wait_report("a complete report with Ready=True", soon(env), |r| {
        check_ready(r, "True", "Succeeded")?;
        check_reconcilers(env, r, &expected)
    })
    .await
}

/// Waits until the start-up runs are over (the operator also runs once on its first sight of the
/// FluxInstance, after a 2 s debounce), so that with a long interval any later run has a cause
/// the test controls.
async fn settle(env: &Env, op: &Operator) {
    let quiet = Duration::from_millis(2500);
    let mut last = (op.runs().len(), Instant::now());
    eventually("the start-up runs to end", soon(env) + quiet, || {
        let runs = op.runs().len();
        if runs != last.0 {
            last = (runs, Instant::now());
        }
        let since = last.1.elapsed();
        async move {
            op.assert_alive();
            ensure(since >= quiet, || format!("a run {since:?} ago"))
        }
    })
    .await;
}

fn one_more(kind: &'static str) -> [(&'static str, Stats); 1] {
    [(kind, Stats::new(1, 0, 0, 0))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_is_written_and_refreshed() {
    let env = Env::with_flux("report_is_written_and_refreshed").await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;

    let report = wait_full_report(&env, &[]).await;
    let spec = &report["spec"];
    let (code, body) = common::prom::http_get(op.health_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(code, 200, "/readyz after a report: {body}");

    let distribution = env.expected_distribution().await;
    if !env.real {
        assert_eq!(distribution["version"], FIXTURE_FLUX_VERSION);
        assert_eq!(distribution["managedBy"], "flux bootstrap");
    }
    assert_eq!(spec["distribution"], distribution);

    let names: Vec<&str> = spec["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut want = COMPONENTS.to_vec();
    want.sort();
    assert_eq!(names, want, "components, sorted by name");
    for c in spec["components"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["ready"], true, "{c}");
        assert!(
            c["status"]
                .as_str()
                .unwrap()
                .starts_with("Current Deployment is available."),
            "{c}"
        );
        assert!(
            c["image"]
                .as_str()
                .unwrap()
                .starts_with(&format!("ghcr.io/fluxcd/{name}:v1.")),
            "{c}"
        );
    }

    let sync = &spec["sync"];
    assert_eq!(sync["id"], format!("kustomization/{}", env.ns));
    assert_eq!(sync["path"], "./clusters/e2e");
    assert_eq!(sync["ready"], true);
    assert_eq!(sync["source"], "https://github.com/example/fleet.git");
    assert_eq!(
        sync["status"],
        "Applied revision: refs/heads/main@sha1:4b1d9c0a2f3e5d6c7b8a9f0e1d2c3b4a5f6e7d8c"
    );

    assert_eq!(spec["operator"]["apiVersion"], "fluxcd.controlplane.io/v1");
    assert_eq!(
        spec["operator"]["version"],
        concat!("v", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        spec["operator"]["platform"]
            .as_str()
            .is_some_and(|p| p.contains('/')),
        "{}",
        spec["operator"]
    );
    assert!(
        spec["cluster"]["serverVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with('v')),
        "{}",
        spec["cluster"]
    );

    let ready = ready_of(&report);
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .starts_with("Reporting finished in "),
        "{ready}"
    );
    let conditions = report["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "only Ready: {conditions:?}");

    // Refreshed on the interval, with no request: a new object is counted, and the Ready
    // condition of a later run is a new one.
    env.add_git_repository("refreshed", 100).await;
    let expected = expected_reconcilers(&env, &[("GitRepository", Stats::new(1, 0, 0, 100))]).await;
    env.wait_report(
        "a later run counting the new GitRepository",
        soon(&env),
        |r| {
            check_ready(r, "True", "Succeeded")?;
            check_reconcilers(&env, r, &expected)
        },
    )
    .await;
    env.wait_report("a later run with a new Ready condition", soon(&env), |r| {
        let now = ready_of(r);
        ensure(
            now["lastTransitionTime"] != ready["lastTransitionTime"]
                || now["message"] != ready["message"],
            || format!("Ready is still {now}"),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_at_is_handled_and_acknowledged() {
    let env = Env::with_flux("requested_at_is_handled_and_acknowledged").await;
    // An hour: any run after the first is the request's.
    let op = env.start_operator(OperatorOpts::every("1h")).await;
    wait_full_report(&env, &[]).await;
    settle(&env, &op).await;
    let runs_before = op.runs().len();

    env.add_git_repository("requested", 0).await;
    let requested = unique("e2e");
    env.annotate_report(REQUESTED_AT, Some(&requested)).await;
    let report = env
        .wait_report(
            "lastHandledReconcileAt to acknowledge the request",
            soon(&env),
            |r| {
                ensure(
                    r["status"]["lastHandledReconcileAt"] == requested.as_str(),
                    || {
                        format!(
                            "lastHandledReconcileAt is {}",
                            r["status"]["lastHandledReconcileAt"]
                        )
                    },
                )
            },
        )
        .await;
    // Acknowledged once the run the request caused was written: that run saw the new object.
    let expected = expected_reconcilers(&env, &one_more("GitRepository")).await;
    check_reconcilers(&env, &report, &expected)
        .unwrap_or_else(|e| panic!("the acknowledged report: {e}"));
    check_ready(&report, "True", "Succeeded").unwrap();
    assert_eq!(
        op.runs().len(),
        runs_before + 1,
        "exactly one run for the request"
    );

    // A second request is handled too.
    let again = unique("e2e");
    env.annotate_report(REQUESTED_AT, Some(&again)).await;
    env.wait_report("the second request", soon(&env), |r| {
        ensure(
            r["status"]["lastHandledReconcileAt"] == again.as_str(),
            || {
                format!(
                    "lastHandledReconcileAt is {}",
                    r["status"]["lastHandledReconcileAt"]
                )
            },
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_recreates_the_report() {
    let env = Env::with_flux("deletion_recreates_the_report").await;
    let op = env.start_operator(OperatorOpts::every("1h")).await;
    let first = wait_full_report(&env, &[]).await;
    let uid = first["metadata"]["uid"].clone();
    settle(&env, &op).await;

    env.add_git_repository("after-deletion", 0).await;
    env.delete("fluxcd.controlplane.io/v1", "FluxReport", "flux")
        .await;
    let expected = expected_reconcilers(&env, &one_more("GitRepository")).await;
    let second = env
        .wait_report("a new, complete FluxReport", soon(&env), |r| {
            ensure(r["metadata"]["uid"] != uid, || {
                "still the old object".into()
            })?;
            check_ready(r, "True", "Succeeded")?;
            check_reconcilers(&env, r, &expected)
        })
        .await;
    assert_eq!(second["spec"]["distribution"]["status"], "Installed");
    assert_eq!(
        second["spec"]["components"].as_array().unwrap().len(),
        COMPONENTS.len()
    );
    assert_eq!(second["spec"]["sync"]["ready"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_pauses_reporting() {
    let env = Env::with_flux("disabled_pauses_reporting").await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    wait_full_report(&env, &[]).await;

    env.annotate_report(RECONCILE, Some("disabled")).await;
    let op = &op;
    eventually(
        "the operator to see the annotation",
        soon(&env),
        || async move {
            op.assert_alive();
            ensure(
                !op.logged("reporting disabled by the fluxcd.controlplane.io/reconcile annotation")
                    .is_empty(),
                || "not logged yet".into(),
            )
        },
    )
    .await;
    let paused = env.report().await.unwrap();
    let runs = op.runs().len();

    env.add_git_repository("while-disabled", 0).await;
    // More than two intervals.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = env.report().await.unwrap();
    assert_eq!(
        still["spec"], paused["spec"],
        "the report changed while disabled"
    );
    assert_eq!(
        still["status"], paused["status"],
        "the report status changed while disabled"
    );
    assert_eq!(op.runs().len(), runs, "report runs while disabled");

    env.annotate_report(RECONCILE, Some("enabled")).await;
    wait_full_report(&env, &one_more("GitRepository")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_kind_gives_ready_false_with_the_others_intact() {
    let env = Env::with_flux("forbidden_kind_gives_ready_false_with_the_others_intact").await;
    // On a real cluster the 403 comes from RBAC: the operator runs as the project's
    // ServiceAccount, and the test takes helmrepositories out of its ClusterRole.
    let mut opts = OperatorOpts::every("1s");
    opts.project_rbac = Some(true);
    let _op = env.start_operator(opts).await;
    let clean = wait_full_report(&env, &[]).await;
    let helm_before = reconciler(&clean, "HelmRepository").unwrap().clone();

    // Computed first: on the double the fault forbids the harness's own list too.
    let expected: Vec<_> = expected_reconcilers(&env, &one_more("GitRepository"))
        .await
        .into_iter()
        .filter(|(_, k, _)| k != "HelmRepository")
        .collect();
    env.forbid_helm_repositories().await;
    // Change the world: the other kinds must follow it, HelmRepository must not.
    env.add_git_repository("while-forbidden", 0).await;
    env.add_helm_repository("while-forbidden").await;
    let report = env
        .wait_report(
            "Ready=False ReportIncomplete with the other kinds fresh",
            soon(&env),
            |r| {
                check_ready(r, "False", "ReportIncomplete")?;
                for (api_version, kind, stats) in &expected {
                    let entry = reconciler(r, kind)
                        .ok_or_else(|| format!("no reconcilers entry for {kind}"))?;
                    ensure(
                        entry["apiVersion"] == *api_version && entry["stats"] == *stats,
                        || format!("{kind}: want {stats}, got {entry}"),
                    )?;
                }
                Ok(())
            },
        )
        .await;
    let message = ready_of(&report)["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("HelmRepository"),
        "the message names the kind: {message}"
    );
    assert_eq!(
        reconciler(&report, "HelmRepository"),
        Some(&helm_before),
        "HelmRepository keeps its last good value"
    );
    let spec = &report["spec"];
    assert_eq!(spec["distribution"], clean["spec"]["distribution"]);
    assert_eq!(spec["components"], clean["spec"]["components"]);
    assert_eq!(spec["sync"], clean["spec"]["sync"]);
    assert_eq!(
        spec["reconcilers"].as_array().unwrap().len(),
        clean["spec"]["reconcilers"].as_array().unwrap().len()
    );

    // Allowed again: complete, with the HelmRepository added meanwhile.
    env.allow_helm_repositories().await;
    wait_full_report(
        &env,
        &[
            ("GitRepository", Stats::new(1, 0, 0, 0)),
            ("HelmRepository", Stats::new(1, 0, 0, 0)),
        ],
    )
    .await;
}

/// Events of this type regarding FluxInstance/flux.
async fn instance_events(env: &Env, type_: &str) -> Vec<Value> {
    env.events_about("FluxInstance", "flux")
        .await
        .into_iter()
        .filter(|e| e["type"] == type_)
        .collect()
}

/// Waits for `n` more report runs of `op` than it has now.
async fn more_runs(env: &Env, op: &Operator, n: usize) {
    let target = op.runs().len() + n;
    eventually(&format!("{n} more report runs"), soon(env), || async move {
        op.assert_alive();
        ensure(op.runs().len() >= target, || {
            format!("{} runs so far", op.runs().len())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_component_gives_one_warning_and_one_post_then_recovery_is_normal() {
    let env =
        Env::with_flux("unready_component_gives_one_warning_and_one_post_then_recovery_is_normal")
            .await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let version = env.expected_distribution().await["version"].clone();
    let env = &env;

    eventually(
        "the FluxInstance verified Ready=True",
        soon(env),
        || async move {
            let i = env.instance().await.ok_or("no FluxInstance")?;
            check_ready(&i, "True", "ReconciliationSucceeded")
        },
    )
    .await;
    more_runs(env, &op, 2).await;
    assert!(
        instance_events(env, "Warning").await.is_empty(),
        "no Warning while healthy"
    );
    assert!(
        op.receiver.posts().is_empty(),
        "no POST while healthy: {:?}",
        op.receiver.posts()
    );

    // Unhealthy: one Warning, one POST, however many runs follow.
    env.set_component_ready("helm-controller", false).await;
    let warning = eventually(
        "a Warning event on FluxInstance/flux",
        soon(env),
        || async move {
            let events = instance_events(env, "Warning").await;
            ensure(!events.is_empty(), || "none yet".into())?;
            Ok(events[0].clone())
        },
    )
    .await;
    assert_eq!(warning["reason"], "ComponentsNotReady", "{warning}");
    assert!(
        warning["note"]
            .as_str()
            .unwrap()
            .contains("helm-controller"),
        "{warning}"
    );
    assert_eq!(warning["reportingController"], "flux-reporter", "{warning}");
    assert_eq!(
        warning["regarding"]["namespace"],
        env.ns.as_str(),
        "{warning}"
    );
    let receiver = &op.receiver;
    eventually("the error POST", soon(env), || async move {
        ensure(!receiver.posts().is_empty(), || "no POST yet".into())
    })
    .await;
    more_runs(env, &op, 3).await;
    let warnings = instance_events(env, "Warning").await;
    assert_eq!(
        warnings.len(),
        1,
        "one Warning, not one per run: {warnings:#?}"
    );
    assert!(
        warnings[0]["series"].is_null(),
        "the Warning was emitted again: {:#}",
        warnings[0]
    );
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1, "one POST, not one per run: {posts:#?}");
    let post = &posts[0];
    assert_eq!(post["severity"], "error", "{post}");
    assert_eq!(post["reason"], "ComponentsNotReady", "{post}");
    assert!(
        post["message"]
            .as_str()
            .unwrap()
            .contains("helm-controller"),
        "{post}"
    );
    assert_eq!(post["involvedObject"]["kind"], "FluxInstance", "{post}");
    assert_eq!(post["involvedObject"]["name"], "flux", "{post}");
    assert_eq!(
        post["involvedObject"]["namespace"],
        env.ns.as_str(),
        "{post}"
    );
    assert_eq!(
        post["involvedObject"]["apiVersion"], "fluxcd.controlplane.io/v1",
        "{post}"
    );
    assert_eq!(post["reportingController"], "flux-reporter", "{post}");
    assert_eq!(
        post["metadata"]["fluxcd.controlplane.io/revision"], version,
        "{post}"
    );
    assert_eq!(
        post["metadata"]["event.toolkit.fluxcd.io/cluster"], "e2e",
        "{post}"
    );
    assert!(post["timestamp"].is_string(), "{post}");
    let instance = env.instance().await.unwrap();
    check_ready(&instance, "False", "ComponentsNotReady").unwrap();
    assert!(
        ready_of(&instance)["message"]
            .as_str()
            .unwrap()
            .contains("helm-controller"),
        "{instance}"
    );

    // Healthy again: one Normal event and one info POST.
    env.set_component_ready("helm-controller", true).await;
    let normal = eventually(
        "a Normal event on FluxInstance/flux",
        soon(env),
        || async move {
            let events = instance_events(env, "Normal").await;
            ensure(!events.is_empty(), || "none yet".into())?;
            Ok(events[0].clone())
        },
    )
    .await;
    assert_eq!(normal["reportingController"], "flux-reporter", "{normal}");
    eventually("the info POST", soon(env), || async move {
        ensure(receiver.posts().len() >= 2, || {
            format!("{} POSTs", receiver.posts().len())
        })
    })
    .await;
    more_runs(env, &op, 3).await;
    let normals = instance_events(env, "Normal").await;
    assert_eq!(
        normals.len(),
        1,
        "one Normal event on recovery: {normals:#?}"
    );
    assert_eq!(
        instance_events(env, "Warning").await.len(),
        1,
        "no new Warning on recovery"
    );
    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "one more POST on recovery: {posts:#?}");
    assert_eq!(posts[1]["severity"], "info", "{}", posts[1]);
    assert_eq!(posts[1]["reason"], normal["reason"], "{}", posts[1]);
    assert_eq!(
        posts[1]["involvedObject"]["kind"], "FluxInstance",
        "{}",
        posts[1]
    );
    let instance = env.instance().await.unwrap();
    check_ready(&instance, "True", "ReconciliationSucceeded").unwrap();
}

/// `flux_resource_info` series of the test namespace, by (kind, name).
fn resource_series(samples: &[Sample], ns: &str) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.label("exported_namespace") == ns)
        .cloned()
        .collect()
}

fn find<'a>(series: &'a [Sample], kind: &str, name: &str) -> Option<&'a Sample> {
    series
        .iter()
        .find(|s| s.label("kind") == kind && s.label("name") == name)
}

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

/// The identity a replica logged when it became leader.
fn leader_identity(op: &Operator) -> Option<String> {
    op.logged("became leader")
        .first()
        .and_then(|l| l["identity"].as_str())
        .map(str::to_string)
}

fn holder(lease: &Option<Value>) -> String {
    lease
        .as_ref()
        .and_then(|l| l["spec"]["holderIdentity"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn led_a_run(op: &Operator) -> bool {
    op.runs().iter().any(|r| r["leader"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_leader_election_write_from_one_only() {
    let env = Env::with_flux("two_replicas_with_leader_election_write_from_one_only").await;
    let a = env
        .start_operator(OperatorOpts::every("1s").leader_elect("replica-a"))
        .await;
    let b = env
        .start_operator(OperatorOpts::every("1s").leader_elect("replica-b"))
        .await;
    let (env, a_ref, b_ref) = (&env, &a, &b);

    eventually(
        "one replica to lead a report run",
        soon(env),
        || async move {
            a_ref.assert_alive();
            b_ref.assert_alive();
            ensure(led_a_run(a_ref) || led_a_run(b_ref), || {
                "no leader yet".into()
            })
        },
    )
    .await;
    more_runs(env, a_ref, 3).await;
    more_runs(env, b_ref, 3).await;
    wait_full_report(env, &[]).await;

    let (leader, follower) = if led_a_run(&a) { (&a, &b) } else { (&b, &a) };
    assert!(
        !led_a_run(follower),
        "both replicas led a run: {} and {}",
        leader.name,
        follower.name
    );
    assert!(
        follower.runs().iter().all(|r| r["leader"] == false),
        "{} runs: {:?}",
        follower.name,
        follower.runs()
    );
    assert!(
        leader_identity(follower).is_none(),
        "{} became leader too",
        follower.name
    );
    assert!(
        follower.logged("created FluxReport flux").is_empty(),
        "{} wrote the FluxReport",
        follower.name
    );
    let identity = leader_identity(leader).expect("the leader logged its identity");
    assert!(
        identity.starts_with(&format!("{}_", leader.name)),
        "{identity}"
    );
    let lease = env.lease().await;
    assert_eq!(holder(&lease), identity, "{LEASE_NAME}: {lease:?}");
    assert_eq!(
        leader.logged("became leader").len(),
        1,
        "{} lost and regained the lease",
        leader.name
    );

    // Every replica serves the instance and resource series.
    for op in [leader, follower] {
        let instance = resource_series(&op.metric("flux_instance_info").await.unwrap(), &env.ns);
        assert_eq!(
            instance.len(),
            1,
            "{} serves flux_instance_info: {instance:?}",
            op.name
        );
        let resources = resource_series(&op.metric("flux_resource_info").await.unwrap(), &env.ns);
        assert_eq!(resources.len(), 12, "{} serves flux_resource_info", op.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease() {
    let env = Env::with_flux("sigterm_releases_the_lease").await;
    let a = env
        .start_operator(OperatorOpts::every("1s").leader_elect("replica-a"))
        .await;
    let env = &env;
    let a_ref = &a;
    let a_id = eventually("replica-a to lead", soon(env), || async move {
        a_ref.assert_alive();
        let id = leader_identity(a_ref).ok_or("not yet")?;
        ensure(holder(&env.lease().await) == id, || {
            "the Lease does not name it yet".into()
        })?;
        ensure(led_a_run(a_ref), || "no run as leader yet".into())?;
        Ok(id)
    })
    .await;
    let b = env
        .start_operator(OperatorOpts::every("1s").leader_elect("replica-b"))
        .await;
    more_runs(env, &b, 2).await;
    assert!(
        !led_a_run(&b),
        "replica-b leads while replica-a holds the lease"
    );

    a.terminate();
    let sent = Instant::now();
    let status = a
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("replica-a exits after SIGTERM");
    let exited = Instant::now();
    assert!(status.success(), "replica-a exit status {status}");
    assert!(
        exited - sent < Duration::from_secs(5),
        "replica-a took {:?} to stop",
        exited - sent
    );
    assert!(
        a.log_text().contains("released the lease"),
        "replica-a did not log the release"
    );
    let lease = env.lease().await;
    let after = holder(&lease);
    assert!(
        after != a_id,
        "the Lease still names replica-a after it exited: {lease:?}"
    );
    assert!(
        after.is_empty() || after.starts_with("replica-b_"),
        "unexpected holder {after:?}"
    );

    // The follower takes over well before the 15 s lease would have expired.
    let b_ref = &b;
    let b_id = eventually(
        "replica-b to take over",
        Duration::from_secs(10),
        || async move {
            let id = leader_identity(b_ref).ok_or("not yet")?;
            ensure(holder(&env.lease().await) == id, || {
                "the Lease does not name it yet".into()
            })?;
            Ok(id)
        },
    )
    .await;
    let took = exited.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "replica-b took {took:?} to take over"
    );
    assert!(b_id.starts_with("replica-b_"), "{b_id}");
    eventually("replica-b to run as leader", soon(env), || async move {
        ensure(led_a_run(b_ref), || "not yet".into())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_with_only_the_project_rbac() {
    if real_cluster().is_none() || !rbac_requested() {
        eprintln!(
            "skipped: needs a real cluster (E2E_KUBECONFIG) and E2E_RBAC=1; the double authorizes everything"
        );
        return;
    }
    let env = Env::with_flux("operator_runs_with_only_the_project_rbac").await;
    let mut opts = OperatorOpts::every("1s").leader_elect("rbac");
    opts.project_rbac = Some(true);
    let op = env.start_operator(opts).await;
    let env = &env;
    wait_full_report(env, &[]).await;
    // Every kind of write: the report, the instance status, events, the lease.
    env.set_component_ready("helm-controller", false).await;
    eventually("a Warning event", soon(env), || async move {
        ensure(!instance_events(env, "Warning").await.is_empty(), || {
            "none yet".into()
        })
    })
    .await;
    env.set_component_ready("helm-controller", true).await;
    eventually("a Normal event", soon(env), || async move {
        ensure(!instance_events(env, "Normal").await.is_empty(), || {
            "none yet".into()
        })
    })
    .await;
    more_runs(env, &op, 3).await;
    assert!(env.lease().await.is_some(), "the Lease was written");
    let log = op.log_text();
    let forbidden: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden under config/rbac:\n{}",
        forbidden.join("\n")
    );
}
