//! `flux-reporter run` end to end, the events: no POST while healthy; an unready component gives
//! one Warning event on the FluxInstance and one POST to notification-controller (a local
//! receiver), however many runs follow; healthy again, one Normal event and one info POST.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`). The
//! server: see e2e/README.md.

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

/// A controller that goes down while every component is already flagged for another reason (its
/// image is not from the declared registry, as with an undeclared mirror) is news: one more
/// Warning whose first words name it, and one more `error` POST with the same message; back up,
/// one `PartiallyRecovered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_component_that_goes_down_gives_one_new_warning_naming_it_first() {
    let env = Env::with_flux("a_flagged_component_that_goes_down_gives_one_new_warning").await;
    // The fixtures' images are from ghcr.io/fluxcd: every component is flagged.
    env.merge(
        "fluxcd.controlplane.io/v1",
        "FluxInstance",
        "flux",
        serde_json::json!({"spec": {"distribution": {"registry": "docker.io/fluxcd"}}}),
    )
    .await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let env = &env;
    let receiver = &op.receiver;

    let flagged = first_instance_event(env, "Warning").await;
    assert_eq!(flagged["reason"], "RegistryMismatch", "{flagged}");
    eventually("the registry POST", soon(env), || async move {
        ensure(receiver.posts().len() == 1, || {
            format!("{:#?}", receiver.posts())
        })
    })
    .await;
    more_runs(env, &op, 2).await;
    assert_eq!(instance_events(env, "Warning").await.len(), 1);
    assert_eq!(receiver.posts().len(), 1, "{:#?}", receiver.posts());

    // helm-controller goes down: one new Warning, leading with it.
    env.set_component_ready("helm-controller", false).await;
    let down = eventually("a second Warning", soon(env), || async move {
        let events = instance_events(env, "Warning").await;
        let instance = env.instance().await.unwrap_or_default();
        ensure(events.len() >= 2, || {
            format!(
                "Ready: {:#}\nhistory: {:#}\nevents: {events:#?}",
                ready_of(&instance),
                instance["status"]["history"]
            )
        })?;
        Ok(events
            .into_iter()
            .find(|e| e["reason"] != "RegistryMismatch")
            .ok_or("no new Warning")?)
    })
    .await;
    let note = down["note"].as_str().expect("a note");
    assert_eq!(down["reason"], "ComponentsNotReady", "{down}");
    assert!(
        note.starts_with("component helm-controller is not ready"),
        "the news comes first: {note}"
    );
    assert!(
        note.contains("; also failing: component helm-controller image"),
        "{note}"
    );
    eventually("the error POST", soon(env), || async move {
        ensure(receiver.posts().len() == 2, || {
            format!("{:#?}", receiver.posts())
        })
    })
    .await;
    more_runs(env, &op, 3).await;
    assert_eq!(instance_events(env, "Warning").await.len(), 2);
    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert_eq!(posts[1]["severity"], "error", "{}", posts[1]);
    assert_eq!(posts[1]["reason"], "ComponentsNotReady", "{}", posts[1]);
    assert_eq!(
        posts[1]["message"], note,
        "the POST says what the event says"
    );

    // Back up: one PartiallyRecovered, still flagged for the registry.
    env.set_component_ready("helm-controller", true).await;
    let recovered = first_instance_event(env, "Normal").await;
    assert_eq!(recovered["reason"], "PartiallyRecovered", "{recovered}");
    assert!(
        recovered["note"]
            .as_str()
            .expect("a note")
            .contains("recovered: component/helm-controller (not ready)"),
        "{recovered}"
    );
    eventually("the info POST", soon(env), || async move {
        ensure(receiver.posts().len() == 3, || {
            format!("{:#?}", receiver.posts())
        })
    })
    .await;
    more_runs(env, &op, 3).await;
    assert_eq!(instance_events(env, "Normal").await.len(), 1);
    assert_eq!(instance_events(env, "Warning").await.len(), 2);
    let posts = receiver.posts();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert_eq!(posts[2]["severity"], "info", "{}", posts[2]);
    assert_eq!(posts[2]["reason"], "PartiallyRecovered", "{}", posts[2]);
    let instance = env.instance().await.expect("the FluxInstance");
    check_ready(&instance, "False", "RegistryMismatch").unwrap();
    let history = &instance["status"]["history"];
    assert_eq!(
        history[0]["metadata"]["failing"],
        "component/helm-controller=registry-mismatch,\
         component/kustomize-controller=registry-mismatch,\
         component/notification-controller=registry-mismatch,\
         component/source-controller=registry-mismatch",
        "{history:#}"
    );
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history:#}");
}
