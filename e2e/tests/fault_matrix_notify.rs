//! The fault matrix, notification side: the receiver standing in for notification-controller is
//! down, slow (longer than the 5s POST timeout) or answers 429. For every row: the report is not
//! delayed nor changed by it (every run complete), each transition makes one Kubernetes event
//! and at most one POST (none repeated, none sent again later), what could not be delivered is
//! logged, and once the receiver is well again the next transition's POST arrives (printed as
//! `fault-matrix row=<name> recovery_ms=<n>`, from the end of the fault to that POST).
//!
//! The receiver is local to the test; the operator reaches the real API server of
//! `E2E_KUBECONFIG` directly (no API fault here).
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness and the matrix's own helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code, unused_imports)]
mod fault_matrix_common;

use std::time::{Duration, Instant};

use common::scenario::*;
use common::{ensure, eventually};
use fault_matrix_common::*;

/// With the receiver well again, helm-controller becomes ready: the recovery's POST (the second)
/// arrives within the recovery limit, which is printed, and each transition made one event.
async fn recovery_is_delivered(row: &Row) {
    let end = Instant::now();
    row.env.set_component_ready("helm-controller", true).await;
    let delivered = posts_reach(row, 2).await;
    print_recovery(row.name, delivered - end);
    assert!(delivered - end <= recovery_limit(), "{:?}", delivered - end);
    one_event_per_transition(row).await;
}

/// Waits until the receiver has `n` POSTs; returns when.
async fn posts_reach(row: &Row, n: usize) -> Instant {
    let receiver = &row.op.receiver;
    eventually(&format!("{n} POSTs"), soon(&row.env), || async move {
        row.op.assert_alive();
        let got = receiver.posts().len();
        ensure(got >= n, || format!("{got} POSTs"))
    })
    .await;
    Instant::now()
}

/// The one Warning and the one Normal event of the two transitions, never repeated; every run
/// complete; the report written and ready.
async fn one_event_per_transition(row: &Row) {
    more_runs(&row.env, &row.op, 2).await;
    for type_ in ["Warning", "Normal"] {
        let events = instance_events(&row.env, type_).await;
        assert_eq!(events.len(), 1, "one {type_} event: {events:#?}");
        assert!(events[0]["series"].is_null(), "repeated: {:#}", events[0]);
    }
    let incomplete: Vec<_> = row
        .op
        .runs()
        .into_iter()
        .filter(|r| r["level"] != "INFO")
        .collect();
    assert!(incomplete.is_empty(), "{incomplete:#?}");
    check_ready(&row.env.report().await.unwrap(), "True", "Succeeded").unwrap();
    row.assert_serving().await;
}

/// The `cannot forward event` warnings, by event reason.
fn forwarding_failures(row: &Row, reason: &str) -> Vec<serde_json::Value> {
    row.logged("cannot forward event to notification-controller")
        .into_iter()
        .filter(|l| l["reason"] == reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_notification_receiver_down() {
    let row = Row::healthy("fault_the_notification_receiver_down", impatient()).await;
    let (env, receiver) = (&row.env, &row.op.receiver);

    // Down for a moment: the POST is retried (1s, then 2s later) and delivered once.
    receiver.stop().await;
    env.set_component_ready("helm-controller", false).await;
    first_instance_event(env, "Warning").await;
    receiver.start_again().await.expect("the receiver back");
    let end = Instant::now();
    let delivered = posts_reach(&row, 1).await;
    print_recovery(row.name, delivered - end);
    assert!(
        delivered - end <= Duration::from_secs(3),
        "{:?}",
        delivered - end
    );

    // Down for longer than the retries: given up, logged, and not sent later.
    receiver.stop().await;
    env.set_component_ready("helm-controller", true).await;
    first_instance_event(env, "Normal").await;
    let failed = eventually("the give-up", soon(env), || async {
        let failed = forwarding_failures(&row, "ReconciliationSucceeded");
        ensure(!failed.is_empty(), || "not yet".into())?;
        Ok(failed)
    })
    .await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["attempts"], 3, "{}", failed[0]);
    receiver.start_again().await.expect("the receiver back");
    one_event_per_transition(&row).await;
    let posts = receiver.requests();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].body["reason"], "ComponentsNotReady");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_notification_receiver_slower_than_the_post_timeout() {
    let row = Row::healthy(
        "fault_the_notification_receiver_slower_than_the_post_timeout",
        impatient(),
    )
    .await;
    let (env, receiver) = (&row.env, &row.op.receiver);
    receiver.answer_after(Duration::from_secs(7));
    env.set_component_ready("helm-controller", false).await;
    let first = posts_reach(&row, 1).await;
    let failed = eventually("the timeout", Duration::from_secs(10), || async {
        let failed = forwarding_failures(&row, "ComponentsNotReady");
        ensure(!failed.is_empty(), || "not yet".into())?;
        Ok(failed)
    })
    .await;
    assert_eq!(failed[0]["error"], "no answer within 5s", "{}", failed[0]);
    // A retry would have come 5s (the timeout) plus 1s (the backoff) after the first POST: the
    // receiver has the event already, so there is none.
    tokio::time::sleep((first + Duration::from_secs(8)).saturating_duration_since(Instant::now()))
        .await;
    assert_eq!(receiver.posts().len(), 1, "{:#?}", receiver.posts());
    assert_eq!(failed[0]["attempts"], 1, "{}", failed[0]);

    receiver.answer_after(Duration::ZERO);
    recovery_is_delivered(&row).await;
    assert_eq!(receiver.posts().len(), 2, "{:#?}", receiver.posts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_notification_receiver_answering_429() {
    let row = Row::healthy("fault_the_notification_receiver_answering_429", impatient()).await;
    let (env, receiver) = (&row.env, &row.op.receiver);
    // notification-controller's answer to an event it already has.
    receiver.answer_with(429);
    env.set_component_ready("helm-controller", false).await;
    let first = posts_reach(&row, 1).await;
    // Retries would come 1s and 3s later: there are none.
    tokio::time::sleep(
        (first + Duration::from_millis(3500)).saturating_duration_since(Instant::now()),
    )
    .await;
    assert_eq!(receiver.posts().len(), 1, "{:#?}", receiver.posts());
    assert!(forwarding_failures(&row, "ComponentsNotReady").is_empty());

    receiver.answer_with(202);
    recovery_is_delivered(&row).await;
    let statuses: Vec<u16> = receiver.requests().iter().map(|p| p.status).collect();
    assert_eq!(statuses, [429, 202]);
}
