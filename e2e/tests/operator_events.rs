//! `flux-reporter run` end to end, the events: no POST while healthy; an unready component gives
//! one Warning event on the FluxInstance and one POST to notification-controller (a local
//! receiver), however many runs follow; healthy again, one Normal event and one info POST.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`). Real
//! cluster: see e2e/README.md ("Against a real cluster").

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use common::scenario::*;
use common::{Env, OperatorOpts, ensure, eventually};

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
    let warning = first_instance_event(env, "Warning").await;
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
    let normal = first_instance_event(env, "Normal").await;
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
