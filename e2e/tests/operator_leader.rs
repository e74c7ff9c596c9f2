//! `flux-reporter run` end to end, leader election: of two replicas only the leader writes (both
//! serve the metrics), and SIGTERM releases the Lease so the other takes over well before it
//! would have expired.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`). The
//! server: see e2e/README.md.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::env::LEASE_NAME;
use common::scenario::*;
use common::{Env, Operator, OperatorOpts, ensure, eventually};
use serde_json::Value;

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
