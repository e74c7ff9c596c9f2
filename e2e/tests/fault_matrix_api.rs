//! The fault matrix, Kubernetes API side: one test per fault, each against the real
//! `flux-reporter run` with a 1s interval and 2s timeouts. For every row: the process keeps
//! running and ready, the report keeps every section (the spec equals the one before the fault),
//! the Ready condition names what failed, recovery comes by itself within the recovery limit
//! after the fault ends (one interval, the run in progress, a margin: `recovery_limit`; printed as
//! `fault-matrix row=<name> recovery_ms=<n>`), and the transition made
//! before the fault (helm-controller not ready) is announced once: one Warning event, one POST.
//!
//! Every row runs against the real API server of `E2E_KUBECONFIG` (`hack/envtest.sh start`), the
//! operator reaching it through the test's fault-injecting proxy (`e2e/src/proxy`), where the
//! faults are injected: error statuses, latency, a mute request, an expired continue token,
//! dropped watches, refused connections. The 403 comes from RBAC (the operator runs as the
//! project's ServiceAccount); the 404 from a CRD really deleted while a run lists its kind.
//! `fault_the_api_server_unreachable_for_a_minute` keeps the server away for
//! `FAULT_MATRIX_OUTAGE_SECS` (default 60).
//!
//! `fault_404_for_a_crd_removed_mid_run` deletes and re-creates the HelmRepository CRD, a
//! cluster-scoped object every test reads: it must run alone (its nextest test group).
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness and the matrix's own helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code, unused_imports)]
mod fault_matrix_common;

use std::time::{Duration, Instant};

use common::env::{REQUESTED_AT, documents, fixture, resource, unique};
use common::scenario::*;
use common::{Env, OperatorOpts, Stats, condition, ensure, eventually};
use fault_matrix_common::*;
use flux_reporter_e2e::Fault;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

const HELM_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/helmrepositories";
const GIT_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/gitrepositories";
const KUSTOMIZATIONS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations";
const CRD: &str = "apiextensions.k8s.io/v1";
const HELM_REPOSITORY_CRD: &str = "helmrepositories.source.toolkit.fluxcd.io";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_403_on_one_kind() {
    // The 403 comes from RBAC: the operator runs as the project's ServiceAccount (its token
    // goes through the proxy, so the server authorizes the operator, not the proxy) and the test
    // takes helmrepositories out of its ClusterRole.
    let mut opts = proxied();
    opts.project_rbac = Some(true);
    let row = Row::unhealthy("fault_403_on_one_kind", opts).await;
    let forbidden = row.env.forbid_helm_repositories().await;
    assert!(forbidden.is_none(), "forbidden by RBAC, not by the proxy");
    row.incomplete(&["reconcilers HelmRepository", "forbidden"])
        .await;
    let end = row.fault_ends();
    row.env.allow_helm_repositories(forbidden).await;
    row.recovered(end).await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_404_for_a_crd_removed_mid_run() {
    let name = "fault_404_for_a_crd_removed_mid_run";
    let row = Row::unhealthy(name, proxied()).await;
    // Deleting a CRD deletes every object of its kind in the cluster: only the test's own may be
    // there.
    let elsewhere = helm_repositories_outside(&row.env).await;
    assert!(
        elsewhere.is_empty(),
        "deleting {HELM_REPOSITORY_CRD} would delete HelmRepositories of other namespaces: \
         {elsewhere:?}"
    );
    let crd = row
        .env
        .get(CRD, "CustomResourceDefinition", HELM_REPOSITORY_CRD)
        .await
        .expect("the HelmRepository CRD");
    // The run's list of HelmRepositories waits in the proxy (less than the 2s request
    // timeout); the CRD goes meanwhile, and the list then gets the 404 of a resource that no
    // longer exists.
    let hold = Duration::from_millis(1500);
    let held = row.faults().await.inject(
        Fault::latency(hold)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES)
            .times(1),
    );
    row.hit(held, 1, "a run listing HelmRepositories").await;
    let held_at = Instant::now();
    row.env
        .delete(CRD, "CustomResourceDefinition", HELM_REPOSITORY_CRD)
        .await;
    // Gone once the server answers its collection with 404: the CRD's finalizer has deleted the
    // objects and the CRD, and the server stopped serving the kind. This takes about 150ms on
    // envtest; the held list must still be held by then.
    let helm_repositories: Api<DynamicObject> = Api::all_with(
        row.env.client.clone(),
        &resource("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    );
    let helm_repositories = &helm_repositories;
    eventually(
        "the HelmRepository kind gone",
        soon(&row.env),
        || async move {
            match helm_repositories
                .list(&ListParams::default().limit(1))
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                other => Err(format!("still served: {:?}", other.map(|l| l.items.len()))),
            }
        },
    )
    .await;
    let gone_after = held_at.elapsed();
    assert!(
        gone_after < hold,
        "the CRD took {gone_after:?} to go, more than the list was held ({hold:?}): the list \
         was answered before"
    );
    row.incomplete(&[
        "reconcilers HelmRepository",
        // The real server answers a kind it does not serve with a plain-text `404 page not
        // found`: no Status to quote, so the operator names the HTTP status.
        "HTTP 404 Not Found",
    ])
    .await;
    let proxy = row.env.proxy().await;
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.path.starts_with(HELM_REPOSITORIES) && r.status == 404),
        "the held list was answered 404 by the server"
    );
    // The next run no longer sees the kind: it is gone from the report, the rest unchanged.
    let mut without = row.before["spec"].clone();
    without["reconcilers"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["kind"] != "HelmRepository");
    row.env
        .wait_report("the report without HelmRepository", soon(&row.env), |r| {
            row.op.assert_alive();
            check_ready(r, "True", "Succeeded")?;
            ensure(r["spec"] == without, || {
                "want the spec without HelmRepository".into()
            })
        })
        .await;

    // The CRD comes back (as it was, less what the server sets) with the fixture's
    // HelmRepositories, which went with it: the report is the one before the fault again.
    let mut again = json!({
        "apiVersion": CRD,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": HELM_REPOSITORY_CRD},
        "spec": crd["spec"],
    });
    for meta in ["labels", "annotations"] {
        if crd["metadata"][meta].is_object() {
            again["metadata"][meta] = crd["metadata"][meta].clone();
        }
    }
    row.env.apply(again).await;
    let env = &row.env;
    eventually("the CRD established again", soon(env), || async move {
        let crd = env
            .get(CRD, "CustomResourceDefinition", HELM_REPOSITORY_CRD)
            .await
            .ok_or("no CRD")?;
        ensure(
            condition(&crd, "Established").is_some_and(|c| c["status"] == "True"),
            || "not established yet".into(),
        )
    })
    .await;
    let vars = [("NAMESPACE", env.ns.as_str())];
    for obj in documents(&fixture("flux-objects.yaml"), &vars) {
        if obj["kind"] == "HelmRepository" {
            env.apply(obj).await;
        }
    }
    let end = row.fault_ends();
    row.recovered(end).await;
    row.nothing_sent_twice().await;
}

/// The HelmRepositories of other namespaces than the test's, as `namespace/name`.
async fn helm_repositories_outside(env: &Env) -> Vec<String> {
    let api: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &resource("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    );
    api.list(&ListParams::default())
        .await
        .expect("list HelmRepositories")
        .items
        .into_iter()
        .filter(|o| o.metadata.namespace.as_deref() != Some(env.ns.as_str()))
        .map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_410_gone_on_a_continue_token() {
    let name = "fault_410_gone_on_a_continue_token";
    // Two objects a page: the four GitRepositories take two pages, the second one asked for with
    // the real server's continue token, which the proxy answers 410 `Expired` once.
    let row = Row::unhealthy(name, proxied().arg("--page-size", "2")).await;
    let expiry = row.faults().await.inject(
        Fault::expire_continue()
            .path_prefix(GIT_REPOSITORIES)
            .times(1),
    );
    row.hit(expiry, 1, "the expired token").await;
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
    let expired: Vec<_> = row
        .env
        .proxy()
        .await
        .requests()
        .into_iter()
        .filter(|r| r.status == 410)
        .collect();
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert!(
        expired[0].path.starts_with(GIT_REPOSITORIES)
            && expired[0].query_param("continue").is_some(),
        "{expired:#?}"
    );
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_429_with_retry_after() {
    let name = "fault_429_with_retry_after";
    let row = Row::unhealthy(name, proxied()).await;
    // One 429 is waited out (Retry-After: 1) within the run: nothing fails.
    let once = row.faults().await.inject(
        Fault::status(429)
            .retry_after(1)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES)
            .times(1),
    );
    row.hit(once, 1, "the first 429").await;
    let runs = row.op.runs().len();
    more_runs(&row.env, &row.op, 2).await;
    assert!(
        row.op.runs()[runs..].iter().all(|r| r["level"] == "INFO"),
        "a single 429 failed a run: {:#?}",
        &row.op.runs()[runs..]
    );
    // Throttled for good: HelmRepository fails with the server's message, the rest is kept.
    let throttled = row.faults().await.inject(
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
    let row = Row::unhealthy(name, proxied()).await;
    let proxy = row.faults().await;
    let deployments = format!("/apis/apps/v1/namespaces/{}/deployments", row.env.ns);
    let faults = [
        proxy.inject(Fault::status(500).method("GET").path_prefix(&deployments)),
        proxy.inject(Fault::status(503).method("GET").path_prefix(KUSTOMIZATIONS)),
    ];
    // The components section is kept: helm-controller stays not ready, no new transition.
    row.incomplete_until_removed(
        &faults,
        &[
            "components: failed to list Deployments",
            // The real server's InternalError `Status` message (`NewInternalError` of
            // k8s.io/apimachinery/pkg/api/errors): "Internal error occurred: <cause>".
            "Internal error occurred",
            "reconcilers Kustomization",
            "the server is currently unable to handle the request",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_request_that_hangs_past_the_request_timeout() {
    let name = "fault_a_request_that_hangs_past_the_request_timeout";
    let row = Row::unhealthy(name, proxied()).await;
    let hang = row
        .faults()
        .await
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
    // An hour: a run after the start-up ones can only come from the watch.
    let row = Row::healthy(name, OperatorOpts::every("1h").through_proxy()).await;
    settle(&row.env, &row.op).await;
    // Every watch ends, and new ones are refused for 2s: the change made meanwhile must still
    // be seen once the watch is back.
    row.faults()
        .await
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
    watches_were_refused(&row).await;
}

/// The operator's watches came back after [`flux_reporter_e2e::Faults::drop_watches_and_refuse_for`]
/// and were refused (503) at least once meanwhile: the fault really happened to them.
async fn watches_were_refused(row: &Row) {
    let watches: Vec<_> = row
        .env
        .proxy()
        .await
        .requests()
        .into_iter()
        .filter(|r| r.watch)
        .collect();
    assert!(
        watches.iter().any(|r| r.status == 503),
        "no watch was refused: {watches:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_dropped_watch_on_the_flux_instance() {
    let name = "fault_a_dropped_watch_on_the_flux_instance";
    let row = Row::healthy(name, OperatorOpts::every("1h").through_proxy()).await;
    settle(&row.env, &row.op).await;
    row.faults()
        .await
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
    watches_were_refused(&row).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_409_conflict_on_the_report_write() {
    let name = "fault_409_conflict_on_the_report_write";
    let row = Row::unhealthy(name, proxied()).await;
    let message = "Operation cannot be fulfilled on fluxreports.fluxcd.controlplane.io \"flux\": \
                   the object has been modified; please apply your changes to the latest version \
                   and try again";
    let conflict = row.faults().await.inject(
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
    row.hit(conflict, 1, "the refused write").await;
    let end = row.fault_ends();
    let expected = expected_reconcilers(
        &row.env,
        &[
            ("GitRepository", Stats::new(1, 0, 0, 0)),
            ("FluxInstance", Stats::new(0, 1, 0, 0)),
        ],
    )
    .await;
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
    let outage = Duration::from_secs(
        std::env::var("FAULT_MATRIX_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let row = Row::unhealthy(name, proxied().leader_elect("fault-matrix-outage")).await;
    // The proxy stops listening and closes every connection: to the operator, the API server
    // refuses connections.
    let faults = row.faults().await;
    faults.stop_serving().await;
    assert!(!faults.is_serving());
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
    faults.start_serving().expect("serve again");
    let end = row.fault_ends();
    row.recovered(end).await;
    row.nothing_sent_twice().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_sigterm_in_the_middle_of_a_run() {
    let name = "fault_sigterm_in_the_middle_of_a_run";
    let row = Row::unhealthy(name, proxied().leader_elect("fault-matrix-first")).await;
    let held = row.faults().await.inject(
        Fault::latency(Duration::from_secs(3))
            .method("GET")
            .path_prefix(KUSTOMIZATIONS)
            .times(1),
    );
    row.hit(held, 1, "a run in progress").await;
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
        .start_operator(proxied().leader_elect("fault-matrix-next"))
        .await;
    let since = ready_of(&last)["lastTransitionTime"].clone();
    let env = &row.env;
    let before = &row.before["spec"];
    let took = eventually(
        "the next replica's report",
        recovery_limit() + soon(env),
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
    assert!(took <= recovery_limit(), "recovered in {took:?}");
    more_runs(env, &next, 2).await;
    row.nothing_sent_twice().await;
    assert!(
        next.receiver.posts().is_empty(),
        "{:?}",
        next.receiver.posts()
    );
}
