//! The fault matrix, Kubernetes API side: one test per fault, each against the real
//! `flux-reporter run` with a 1s interval and 2s timeouts. For every row: the process keeps
//! running and ready, the report keeps every section (the spec equals the one before the fault),
//! the Ready condition names what failed, recovery comes by itself within one interval after the
//! fault ends (printed as `fault-matrix row=<name> recovery_ms=<n>`), and the transition made
//! before the fault (helm-controller not ready) is announced once: one Warning event, one POST.
//!
//! Rows that inject a fault with the API server double are skipped, saying so, when
//! `E2E_KUBECONFIG` points at a real cluster; the 403 row runs there through RBAC.
//! Row 10 keeps the API server away for `FAULT_MATRIX_OUTAGE_SECS` (default 60).
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness and the matrix's own helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code, unused_imports)]
mod fault_matrix_common;

use std::time::{Duration, Instant};

use common::env::{REQUESTED_AT, unique};
use common::scenario::*;
use common::{OperatorOpts, Stats, ensure, eventually};
use fault_matrix_common::*;
use flux_reporter_e2e::Fault;
use serde_json::json;

const HELM_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/helmrepositories";
const GIT_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/gitrepositories";
const KUSTOMIZATIONS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations";
const DOUBLE_ONLY: &str = "needs the API server double's fault injection";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_403_on_one_kind() {
    // On a real cluster the 403 comes from RBAC: the operator runs as the project's
    // ServiceAccount and the test takes helmrepositories out of its ClusterRole.
    let mut opts = impatient();
    opts.project_rbac = Some(true);
    let row = Row::unhealthy("fault_403_on_one_kind", opts).await;
    row.env.forbid_helm_repositories().await;
    row.incomplete(&["reconcilers HelmRepository", "forbidden"])
        .await;
    let end = row.fault_ends();
    row.env.allow_helm_repositories().await;
    row.recovered(end).await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_404_for_a_crd_removed_mid_run() {
    let name = "fault_404_for_a_crd_removed_mid_run";
    if skipped_on_a_real_cluster(
        name,
        "removing a CRD between two requests of one run needs the double's latency fault",
    ) {
        return;
    }
    let row = Row::unhealthy(name, impatient()).await;
    let double = row.env.double().expect("the double");
    // The run's list of HelmRepositories waits; the CRD goes meanwhile, and the list then gets
    // the 404 of a resource that no longer exists.
    let held = double.faults().inject(
        Fault::latency(Duration::from_millis(1500))
            .method("GET")
            .path_prefix(HELM_REPOSITORIES)
            .times(1),
    );
    eventually("a run listing HelmRepositories", soon(&row.env), || async {
        ensure(double.faults().hits(held) == 1, || "not yet".into())
    })
    .await;
    row.env
        .delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "helmrepositories.source.toolkit.fluxcd.io",
        )
        .await;
    let end = row.fault_ends();
    row.incomplete(&[
        "reconcilers HelmRepository",
        // The real server's answer is a plain-text `404 page not found`.
        "HTTP 404 Not Found",
    ])
    .await;
    // The next run no longer sees the kind: it is gone from the report, the rest unchanged.
    let mut want = row.before["spec"].clone();
    want["reconcilers"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["kind"] != "HelmRepository");
    row.recovered_with(end, |r| {
        ensure(r["spec"] == want, || {
            "want the spec without HelmRepository".into()
        })
    })
    .await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_410_gone_on_a_continue_token() {
    let name = "fault_410_gone_on_a_continue_token";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    // Two objects a page: the four GitRepositories take two pages.
    let row = Row::unhealthy(name, impatient().arg("--page-size", "2")).await;
    let double = row.env.double().expect("the double");
    let expiry = double.faults().inject(
        Fault::expire_continue()
            .path_prefix(GIT_REPOSITORIES)
            .times(1),
    );
    eventually("the expired token", soon(&row.env), || async {
        ensure(double.faults().hits(expiry) == 1, || "not yet".into())
    })
    .await;
    let end = row.fault_ends();
    // The list starts over in the same run: nothing fails, nothing is counted twice.
    row.recovered(end).await;
    let restarts = row.logged("continue token expired; restarting the list");
    assert_eq!(restarts.len(), 1, "{restarts:#?}");
    assert!(
        restarts[0]["path"]
            .as_str()
            .unwrap()
            .starts_with(GIT_REPOSITORIES),
        "{}",
        restarts[0]
    );
    assert!(
        row.op.runs().iter().all(|r| r["level"] == "INFO"),
        "an incomplete run"
    );
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_429_with_retry_after() {
    let name = "fault_429_with_retry_after";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::unhealthy(name, impatient()).await;
    let double = row.env.double().expect("the double");
    // One 429 is waited out (Retry-After: 1) within the run: nothing fails.
    let once = double.faults().inject(
        Fault::status(429)
            .retry_after(1)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES)
            .times(1),
    );
    eventually("the first 429", soon(&row.env), || async {
        ensure(double.faults().hits(once) == 1, || "not yet".into())
    })
    .await;
    let runs = row.op.runs().len();
    more_runs(&row.env, &row.op, 2).await;
    assert!(
        row.op.runs()[runs..].iter().all(|r| r["level"] == "INFO"),
        "a single 429 failed a run: {:#?}",
        &row.op.runs()[runs..]
    );
    // Throttled for good: HelmRepository fails with the server's message, the rest is kept.
    let throttled = double.faults().inject(
        Fault::status(429)
            .retry_after(1)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES),
    );
    row.incomplete_until_removed(
        &[throttled],
        &[
            "reconcilers HelmRepository",
            "Too many requests, please try again later.",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_burst_of_500_and_503() {
    let name = "fault_a_burst_of_500_and_503";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::unhealthy(name, impatient()).await;
    let double = row.env.double().expect("the double");
    let deployments = format!("/apis/apps/v1/namespaces/{}/deployments", row.env.ns);
    let faults = [
        double
            .faults()
            .inject(Fault::status(500).method("GET").path_prefix(&deployments)),
        double
            .faults()
            .inject(Fault::status(503).method("GET").path_prefix(KUSTOMIZATIONS)),
    ];
    // The components section is kept: helm-controller stays not ready, no new transition.
    row.incomplete_until_removed(
        &faults,
        &[
            "components: failed to list Deployments",
            "an error on the server has prevented the request from succeeding",
            "reconcilers Kustomization",
            "the server is currently unable to handle the request",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_request_that_hangs_past_the_request_timeout() {
    let name = "fault_a_request_that_hangs_past_the_request_timeout";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::unhealthy(name, impatient()).await;
    let double = row.env.double().expect("the double");
    let hang = double
        .faults()
        .inject(Fault::mute().method("GET").path_prefix(KUSTOMIZATIONS));
    // Only that kind (and the sync, found among Kustomizations) fails: /version still answers.
    row.incomplete_until_removed(
        &[hang],
        &[
            "reconcilers Kustomization",
            "no answer within 2s",
            "sync: Kustomizations could not be listed",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_dropped_watch_on_the_flux_report() {
    let name = "fault_a_dropped_watch_on_the_flux_report";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    // An hour: a run after the start-up ones can only come from the watch.
    let row = Row::healthy(name, OperatorOpts::every("1h")).await;
    settle(&row.env, &row.op).await;
    let double = row.env.double().expect("the double");
    // Every watch ends, and new ones are refused for 2s: the change made meanwhile must still
    // be seen once the watch is back.
    double
        .faults()
        .drop_watches_and_refuse_for(Duration::from_secs(2));
    let requested = unique("after-drop");
    row.env
        .annotate_report(REQUESTED_AT, Some(&requested))
        .await;
    let changed = Instant::now();
    row.env
        .wait_report("the request handled", soon(&row.env), |r| {
            ensure(
                r["status"]["lastHandledReconcileAt"] == requested.as_str(),
                || {
                    format!(
                        "lastHandledReconcileAt {}",
                        r["status"]["lastHandledReconcileAt"]
                    )
                },
            )?;
            check_ready(r, "True", "Succeeded")
        })
        .await;
    print_recovery(name, changed.elapsed());
    row.assert_serving().await;
    assert!(instance_events(&row.env, "Warning").await.is_empty());
    assert!(row.op.receiver.posts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_dropped_watch_on_the_flux_instance() {
    let name = "fault_a_dropped_watch_on_the_flux_instance";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::healthy(name, OperatorOpts::every("1h")).await;
    settle(&row.env, &row.op).await;
    let double = row.env.double().expect("the double");
    double
        .faults()
        .drop_watches_and_refuse_for(Duration::from_secs(2));
    // A declared version Flux does not have: seen through the FluxInstance watch only.
    row.env
        .merge(
            "fluxcd.controlplane.io/v1",
            "FluxInstance",
            "flux",
            json!({"spec": {"distribution": {"version": "2.6.x"}}}),
        )
        .await;
    let changed = Instant::now();
    let env = &row.env;
    eventually(
        "the FluxInstance verified VersionMismatch",
        soon(env),
        || async move {
            let i = env.instance().await.ok_or("no FluxInstance")?;
            check_ready(&i, "False", "VersionMismatch")
        },
    )
    .await;
    print_recovery(name, changed.elapsed());
    let warning = first_instance_event(env, "Warning").await;
    assert_eq!(warning["reason"], "VersionMismatch", "{warning}");
    row.assert_serving().await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_409_conflict_on_the_report_write() {
    let name = "fault_409_conflict_on_the_report_write";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::unhealthy(name, impatient()).await;
    let double = row.env.double().expect("the double");
    let message = "Operation cannot be fulfilled on fluxreports.fluxcd.controlplane.io \"flux\": \
                   the object has been modified; please apply your changes to the latest version \
                   and try again";
    let conflict = double.faults().inject(
        Fault::status(409)
            .method("PATCH")
            .path(&format!(
                "/apis/fluxcd.controlplane.io/v1/namespaces/{}/fluxreports/flux",
                row.env.ns
            ))
            .message(message)
            .times(1),
    );
    // A change the refused write carried: the next run must write it.
    row.env.add_git_repository("during-conflict", 0).await;
    eventually("the refused write", soon(&row.env), || async {
        ensure(double.faults().hits(conflict) == 1, || "not yet".into())
    })
    .await;
    let end = row.fault_ends();
    let expected = expected_reconcilers(
        &row.env,
        &[
            ("GitRepository", Stats::new(1, 0, 0, 0)),
            ("FluxInstance", Stats::new(0, 1, 0, 0)),
        ],
    )
    .await;
    let env = &row.env;
    row.recovered_with(end, |r| check_reconcilers(r, &expected))
        .await;
    let failed = row.logged("report run failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot write the FluxReport; the previous report stays: ")
            && error.contains(message),
        "{error}"
    );
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_api_server_unreachable_for_a_minute() {
    let name = "fault_the_api_server_unreachable_for_a_minute";
    if skipped_on_a_real_cluster(name, "stopping the API server needs the double") {
        return;
    }
    let outage = Duration::from_secs(
        std::env::var("FAULT_MATRIX_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let row = Row::unhealthy(name, impatient().leader_elect("fault-matrix-outage")).await;
    let double = row.env.double().expect("the double");
    double.faults().stop_serving().await;
    let stopped = Instant::now();
    let warned = row.op.runs().len();
    let op = &row.op;
    let run = eventually(
        "a run naming the unreachable server",
        soon(&row.env),
        || async move {
            op.assert_alive();
            let runs = op.runs();
            ensure(runs.len() > warned, || "no run yet".into())?;
            let last = runs[runs.len() - 1].clone();
            ensure(last["level"] == "WARN", || format!("{last}"))?;
            Ok(last)
        },
    )
    .await;
    let failures = run["failures"].as_str().unwrap();
    assert!(
        failures.contains("the Kubernetes API server cannot be reached"),
        "{failures}"
    );
    assert!(
        !row.logged("not writing this run: the previous report stays")
            .is_empty()
    );
    // As designed: ready (a report was computed) but not live once no run got through for
    // 3 intervals plus the report timeout.
    eventually("/healthz failing", outage, || async move {
        op.assert_alive();
        let (code, body) = health(op, "/healthz").await;
        ensure(code == 503, || format!("{code} {body}"))
    })
    .await;
    assert_eq!(health(op, "/readyz").await.0, 200);
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    op.assert_alive();
    double.faults().start_serving().expect("serve again");
    let end = row.fault_ends();
    row.recovered(end).await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_sigterm_in_the_middle_of_a_run() {
    let name = "fault_sigterm_in_the_middle_of_a_run";
    if skipped_on_a_real_cluster(name, DOUBLE_ONLY) {
        return;
    }
    let row = Row::unhealthy(name, impatient().leader_elect("fault-matrix-first")).await;
    let double = row.env.double().expect("the double");
    let held = double.faults().inject(
        Fault::latency(Duration::from_secs(3))
            .method("GET")
            .path_prefix(KUSTOMIZATIONS)
            .times(1),
    );
    eventually("a run in progress", soon(&row.env), || async {
        ensure(double.faults().hits(held) == 1, || "not yet".into())
    })
    .await;
    let last = row.env.report().await.expect("the FluxReport");
    row.op.terminate();
    let status = row
        .op
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exited within 10s of SIGTERM");
    assert!(status.success(), "{status:?}");
    let end = row.fault_ends();
    assert!(
        !row.logged("shutting down: the report run in progress is abandoned")
            .is_empty(),
        "the run was abandoned"
    );
    let after = row.env.report().await.expect("the FluxReport stays");
    assert_eq!(after, last, "the abandoned run wrote nothing");
    let lease = row.env.lease().await.expect("the Lease");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );

    // The next replica takes over: a fresh complete report, and the transition it finds in the
    // FluxInstance status is not announced again.
    let next = row
        .env
        .start_operator(impatient().leader_elect("fault-matrix-next"))
        .await;
    let since = ready_of(&last)["lastTransitionTime"].clone();
    let env = &row.env;
    let before = &row.before["spec"];
    let took = eventually(
        "the next replica's report",
        recovery_limit(env) + soon(env),
        || async {
            next.assert_alive();
            let r = env.report().await.ok_or("no FluxReport")?;
            check_ready(&r, "True", "Succeeded")?;
            ensure(ready_of(&r)["lastTransitionTime"] != since, || {
                "not rewritten yet".into()
            })?;
            ensure(r["spec"] == *before, || "another spec".into())?;
            Ok(end.at.elapsed())
        },
    )
    .await;
    print_recovery(name, took);
    assert!(took <= recovery_limit(env), "recovered in {took:?}");
    more_runs(env, &next, 2).await;
    row.nothing_sent_twice().await;
    assert!(
        next.receiver.posts().is_empty(),
        "{:?}",
        next.receiver.posts()
    );
}
