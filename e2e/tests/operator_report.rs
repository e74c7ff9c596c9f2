//! `flux-reporter run` end to end, the report itself: written and refreshed, `requestedAt`
//! handled and acknowledged, recreated after deletion, paused when disabled, and a forbidden kind
//! giving Ready=False with the other sections intact. The real binary runs against the real API
//! server of `E2E_KUBECONFIG` with the Flux fixtures.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`); the
//! server: see e2e/README.md.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::time::Duration;

use common::env::{COMPONENTS, FIXTURE_FLUX_VERSION, RECONCILE, REQUESTED_AT, unique};
use common::scenario::*;
use common::{Env, OperatorOpts, Stats, ensure, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_is_written_and_refreshed() {
    let env = Env::with_flux("report_is_written_and_refreshed").await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;

    let report = wait_full_report(&env, &[]).await;
    let spec = &report["spec"];
    // The first run writes the report, then publishes its metrics, then turns /readyz 200: a
    // report in the API comes a moment before readiness, never the other way round, so that a
    // scrape routed by readiness never sees an empty flux_resource_info (docs/design.md,
    // "Readiness of the pod").
    let op = &op;
    eventually(
        "/readyz 200 after the first run",
        soon(&env),
        || async move {
            let (code, body) = common::prom::http_get(op.health_addr, "/readyz").await?;
            ensure(code == 200, || format!("/readyz {code}: {body}"))
        },
    )
    .await;

    let distribution = env.expected_distribution().await;
    assert_eq!(distribution["version"], FIXTURE_FLUX_VERSION);
    assert_eq!(distribution["managedBy"], "flux bootstrap");
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
            check_reconcilers(r, &expected)
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
    check_reconcilers(&report, &expected)
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
            check_reconcilers(r, &expected)
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
    // The 403 comes from RBAC: the operator runs as the project's ServiceAccount, and the test
    // takes helmrepositories out of its ClusterRole.
    let mut opts = OperatorOpts::every("1s");
    opts.project_rbac = Some(true);
    let _op = env.start_operator(opts).await;
    let clean = wait_full_report(&env, &[]).await;
    let helm_before = reconciler(&clean, "HelmRepository").unwrap().clone();

    let expected: Vec<_> = expected_reconcilers(&env, &one_more("GitRepository"))
        .await
        .into_iter()
        .filter(|(_, k, _)| k != "HelmRepository")
        .collect();
    let forbidden = env.forbid_helm_repositories().await;
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
    env.allow_helm_repositories(forbidden).await;
    wait_full_report(
        &env,
        &[
            ("GitRepository", Stats::new(1, 0, 0, 0)),
            ("HelmRepository", Stats::new(1, 0, 0, 0)),
        ],
    )
    .await;
}
