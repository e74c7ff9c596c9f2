//! Who owns the FluxInstance: only the Flux Operator (its `fluxcd.controlplane.io/…` finalizer or
//! its field manager `flux-operator`) makes flux-reporter step back to reading. A status written
//! by anyone else (`kubectl patch --subresource=status`, a restore tool, a script) is taken over
//! by flux-reporter's forced server-side apply, and events and notifications flow as usual.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).
//! Real cluster: `E2E_KUBECONFIG=~/.kube/config cargo test -p flux-reporter-e2e --test
//! instance_ownership`; add `E2E_RBAC=1` to run the operator with only `config/rbac`.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::time::Duration;

use common::env::REQUESTED_AT;
use common::scenario::{events_of, first_instance_event, more_runs, ready_of, soon};
use common::{Env, Operator, OperatorOpts, ensure, eventually};
use serde_json::{Value, json};

const INSTANCE: (&str, &str) = ("fluxcd.controlplane.io/v1", "FluxInstance");

/// A Ready condition as a person or a restore tool writes it.
fn ready_true_status() -> Value {
    json!({"conditions": [{
        "type": "Ready",
        "status": "True",
        "reason": "ReconciliationSucceeded",
        "message": "ok",
        "lastTransitionTime": "2026-11-30T10:00:00Z",
    }]})
}

/// The managers that own a field of the object's status.
fn status_managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["subresource"] == "status")
        .filter_map(|e| e["manager"].as_str().map(str::to_string))
        .collect()
}

/// Asks for a run now, as a user would after breaking something.
async fn request_run(env: &Env, value: &str) {
    env.annotate_report(REQUESTED_AT, Some(value)).await;
}

/// The log lines that say flux-reporter steps back for the Flux Operator.
fn stepping_back_lines(op: &Operator) -> Vec<Value> {
    op.log_lines()
        .into_iter()
        .filter(|l| {
            l["level"] == "INFO"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is managed by the Flux Operator"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubectl_patched_instance_status_is_taken_over_and_a_failure_gives_one_warning_and_one_post()
 {
    let env = Env::with_flux("a_kubectl_patched_instance_status_is_taken_over").await;
    let env = &env;
    env.merge_status_as(
        "kubectl-patch",
        INSTANCE.0,
        INSTANCE.1,
        "flux",
        ready_true_status(),
    )
    .await;
    let op = env.start_operator(OperatorOpts::every("1h")).await;

    // The first run takes the status over: Ready written by flux-reporter.
    let instance = eventually(
        "the FluxInstance status written by flux-reporter",
        soon(env),
        || async move {
            let i = env.instance().await.ok_or("no FluxInstance")?;
            let ready = ready_of(&i);
            ensure(ready["message"] != "ok", || format!("Ready still {ready}"))?;
            ensure(
                status_managers(&i).iter().any(|m| m == "flux-reporter"),
                || format!("status managers: {:?}", status_managers(&i)),
            )?;
            Ok(i)
        },
    )
    .await;
    assert_eq!(ready_of(&instance)["status"], "True", "{instance}");
    assert_eq!(
        ready_of(&instance)["reason"],
        "ReconciliationSucceeded",
        "{instance}"
    );
    assert!(
        events_of(env, "FluxInstance", "Warning").await.is_empty(),
        "no Warning while healthy"
    );
    assert!(op.receiver.posts().is_empty(), "{:?}", op.receiver.posts());

    // A component goes unavailable and the user asks for a run.
    env.set_component_ready("helm-controller", false).await;
    request_run(env, "2026-12-01T00:00:01Z").await;
    let warning = first_instance_event(env, "Warning").await;
    assert_eq!(warning["reason"], "ComponentsNotReady", "{warning}");
    assert!(
        warning["note"]
            .as_str()
            .unwrap_or_default()
            .contains("helm-controller"),
        "{warning}"
    );
    let receiver = &op.receiver;
    eventually("the error POST", soon(env), || async move {
        ensure(!receiver.posts().is_empty(), || "no POST yet".into())
    })
    .await;

    // More runs change nothing: one event and one POST per transition.
    request_run(env, "2026-12-01T00:00:02Z").await;
    more_runs(env, &op, 1).await;
    request_run(env, "2026-12-01T00:00:03Z").await;
    more_runs(env, &op, 1).await;
    let warnings = events_of(env, "FluxInstance", "Warning").await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0]["series"].is_null(), "{:#}", warnings[0]);
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0]["severity"], "error", "{}", posts[0]);
    assert_eq!(posts[0]["reason"], "ComponentsNotReady", "{}", posts[0]);
    assert_eq!(
        posts[0]["involvedObject"]["kind"], "FluxInstance",
        "{}",
        posts[0]
    );

    let instance = env.instance().await.expect("FluxInstance");
    assert_eq!(ready_of(&instance)["status"], "False", "{instance}");
    assert_eq!(
        ready_of(&instance)["reason"],
        "ComponentsNotReady",
        "{instance}"
    );
    assert!(
        status_managers(&instance)
            .iter()
            .any(|m| m == "flux-reporter"),
        "{instance}"
    );
    assert!(
        stepping_back_lines(&op).is_empty(),
        "no stepping back for kubectl: {:#?}",
        stepping_back_lines(&op)
    );
}

/// Runs the operator against a FluxInstance the Flux Operator owns and checks that flux-reporter
/// only reads it: no status write, no event, no POST, one info line naming `owner_hint`, and the
/// FluxReport's Ready message carrying the same note.
async fn steps_back_for_the_flux_operator(env: &Env, owner_hint: &str) -> Result<(), String> {
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let op = &op;
    let report = eventually(
        "a FluxReport whose Ready message says the Flux Operator manages the FluxInstance",
        soon(env),
        || async move {
            op.assert_alive();
            let r = env.report().await.ok_or("no FluxReport")?;
            let message = ready_of(&r)["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ensure(message.contains("managed by the Flux Operator"), || {
                format!("Ready message: {message}")
            })?;
            Ok(r)
        },
    )
    .await;
    let message = ready_of(&report)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure(message.contains(owner_hint), || {
        format!("Ready message: {message}")
    })?;
    ensure(message.contains("no status writes, no events"), || {
        format!("Ready message: {message}")
    })?;

    env.set_component_ready("helm-controller", false).await;
    more_runs(env, op, 3).await;

    let instance = env.instance().await.ok_or("no FluxInstance")?;
    ensure(
        !status_managers(&instance)
            .iter()
            .any(|m| m == "flux-reporter"),
        || format!("flux-reporter wrote the status: {instance}"),
    )?;
    for kind in ["FluxInstance", "FluxReport"] {
        for type_ in ["Warning", "Normal"] {
            let events = events_of(env, kind, type_).await;
            ensure(events.is_empty(), || {
                format!("{type_} events on {kind}: {events:#?}")
            })?;
        }
    }
    ensure(op.receiver.posts().is_empty(), || {
        format!("POSTs: {:?}", op.receiver.posts())
    })?;
    let lines = stepping_back_lines(op);
    ensure(lines.len() == 1, || {
        format!("want one info line, got {lines:#?}")
    })?;
    let line = lines[0]["message"].as_str().unwrap_or_default();
    ensure(line.contains(owner_hint), || format!("info line: {line}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flux_operator_finalizer_makes_the_instance_read_only() {
    let env = Env::with_flux("the_flux_operator_finalizer_makes_the_instance_read_only").await;
    let finalizer = "fluxcd.controlplane.io/finalizer";
    env.merge(
        INSTANCE.0,
        INSTANCE.1,
        "flux",
        json!({"metadata": {"finalizers": [finalizer]}}),
    )
    .await;
    let outcome = steps_back_for_the_flux_operator(&env, finalizer).await;
    // Remove the finalizer before judging, so that a real cluster can delete the namespace.
    env.merge(
        INSTANCE.0,
        INSTANCE.1,
        "flux",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_written_by_the_flux_operator_manager_makes_the_instance_read_only() {
    let env = Env::with_flux(
        "a_status_written_by_the_flux_operator_manager_makes_the_instance_read_only",
    )
    .await;
    env.merge_status_as(
        "flux-operator",
        INSTANCE.0,
        INSTANCE.1,
        "flux",
        ready_true_status(),
    )
    .await;
    steps_back_for_the_flux_operator(&env, "field manager flux-operator")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_does_not_run_again_on_its_own_writes() {
    let env = Env::with_flux("the_operator_does_not_run_again_on_its_own_writes").await;
    let env = &env;
    let op = env.start_operator(OperatorOpts::every("1h")).await;
    eventually(
        "the FluxInstance status written by flux-reporter",
        soon(env),
        || async move {
            let i = env.instance().await.ok_or("no FluxInstance")?;
            ensure(
                status_managers(&i).iter().any(|m| m == "flux-reporter"),
                || format!("status managers: {:?}", status_managers(&i)),
            )
        },
    )
    .await;
    // The report, its status and the FluxInstance status are written; none of those writes
    // (nor the watches reopening) may start another run.
    let settled = op.runs().len();
    tokio::time::sleep(Duration::from_secs(20)).await;
    op.assert_alive();
    assert_eq!(op.runs().len(), settled, "{:#?}", op.runs());
    assert_eq!(settled, 1, "one run at start: {:#?}", op.runs());

    // An annotation change is a request: exactly one more run.
    request_run(env, "2026-12-01T00:00:09Z").await;
    more_runs(env, &op, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(op.runs().len(), settled + 1, "{:#?}", op.runs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_instance_info_lags_no_run_behind_the_status_it_wrote() {
    let env = Env::with_flux("flux_instance_info_lags_no_run_behind").await;
    let env = &env;
    env.set_component_ready("helm-controller", false).await;
    let op = env.start_operator(OperatorOpts::every("1h")).await;
    let op = &op;
    eventually("the first run", soon(env), || async move {
        op.assert_alive();
        ensure(!op.runs().is_empty(), || "no run yet".into())
    })
    .await;
    // One run only (1h interval): its metrics show what it wrote to the FluxInstance.
    let series = eventually("flux_instance_info", soon(env), || async move {
        let s = op.metric("flux_instance_info").await?;
        let ours: Vec<_> = s
            .into_iter()
            .filter(|s| s.label("exported_namespace") == env.ns)
            .collect();
        ensure(!ours.is_empty(), || "no series yet".into())?;
        Ok(ours)
    })
    .await;
    assert_eq!(op.runs().len(), 1, "{:#?}", op.runs());
    let instance = env.instance().await.expect("FluxInstance");
    assert_eq!(
        ready_of(&instance)["reason"],
        "ComponentsNotReady",
        "{instance}"
    );
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].label("ready"), "False", "{series:?}");
    assert_eq!(
        series[0].label("reason"),
        "ComponentsNotReady",
        "{series:?}"
    );
}
