//! kube-lease-manager 0.13, the maintained crate for Lease-based leader election on kube 5, held
//! to what this operator needs from leader election. Each `crate_*` test pins a behaviour of the
//! crate that keeps us on our own elector (docs/design.md, "Leader election"): when a release of
//! the crate changes it, the test fails and the choice is worth making again. The `elector_*`
//! tests run the same scenario against [`LeaderElector`].

use std::time::Duration;

use flux_reporter_e2e::Fault;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::tests::{Cluster, wait_for};
use super::{DEFAULT_LEASE_NAME, LeaderConfig, LeaderElector};

/// A crate-managed candidate in its fully automatic mode (`watch`): `duration` is the Lease's
/// `leaseDurationSeconds`, and the holder renews `grace` seconds before it runs out. Its client
/// goes through the test's proxy.
async fn candidate(
    cluster: &Cluster,
    identity: &str,
    duration: u64,
    grace: u64,
) -> (
    watch::Receiver<bool>,
    JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) {
    LeaseManagerBuilder::new(cluster.through_proxy(), DEFAULT_LEASE_NAME)
        .with_namespace(&cluster.ns)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(grace)
        .build()
        .await
        .expect("LeaseManager")
        .watch()
        .await
}

/// Now, as a clock `behind` the real one reads it.
fn slow_now(behind: Duration) -> MicroTime {
    let micros = Timestamp::now().as_microsecond() - behind.as_micros() as i64;
    MicroTime(Timestamp::from_microsecond(micros).expect("time"))
}

/// A live leader whose clock is `behind`: it holds a 15 s Lease and renews it every 200 ms, as
/// long as the Lease still names it. Returns when it finds the Lease taken. Another process:
/// it goes straight to the server.
fn slow_clock_holder(cluster: &Cluster, behind: Duration) -> JoinHandle<()> {
    let api: Api<Lease> = cluster.leases();
    tokio::spawn(async move {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(DEFAULT_LEASE_NAME.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("other-pod_0bee".into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(slow_now(behind)),
                renew_time: Some(slow_now(behind)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        api.create(&PostParams::default(), &lease)
            .await
            .expect("create the Lease");
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(mut l) = api.get(DEFAULT_LEASE_NAME).await else {
                continue;
            };
            let spec = l.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some("other-pod_0bee") {
                return;
            }
            spec.renew_time = Some(slow_now(behind));
            // A 409 means someone wrote since our read: the next read tells who holds it.
            let _ = api
                .replace(DEFAULT_LEASE_NAME, &PostParams::default(), &l)
                .await;
        }
    })
}

/// The crate's follower reads the Lease only when the lease it last saw would run out, so a
/// release on shutdown (client-go's `ReleaseOnCancel`) does not hand over quickly: with our
/// 15 s lease renewed every 2 s, the follower waits 13-15 s. Our elector retries every 2 s and
/// takes a released Lease on its next attempt
/// (`shutdown_releases_and_the_other_takes_over_at_once` in leader/tests.rs;
/// `sigterm_releases_the_lease` in e2e/tests/operator_leader.rs needs it under 8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crate_follower_waits_out_a_released_lease() {
    let cluster = Cluster::new("crate-follower-waits-out-a-released-lease").await;
    let (mut a, a_task) = candidate(&cluster, "pod-a_0001", 15, 13).await;
    wait_for(&mut a, true, Duration::from_secs(5)).await;
    let (mut b, _b_task) = candidate(&cluster, "pod-b_0002", 15, 13).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!*b.borrow(), "b leads while a holds the Lease");

    // The crate releases when every receiver is gone, before its task returns.
    drop(a);
    a_task.await.expect("join").expect("a released the Lease");
    let released = Instant::now();
    let l = cluster.lease().await;
    assert!(l["spec"].get("holderIdentity").is_none(), "{l}");

    wait_for(&mut b, true, Duration::from_secs(20)).await;
    let took = released.elapsed();
    eprintln!("kube-lease-manager follower took over {took:?} after the release");
    assert!(
        took >= Duration::from_secs(8),
        "b took over {took:?} after the release"
    );
}

/// The crate has no renew deadline: a leader whose renewals fail goes on reporting `true` after
/// its Lease has run out, when another replica that can still reach the API server may take it.
/// Our elector steps down once renewals have failed for `renew_deadline`, before the lease runs
/// out (`leader_steps_down_after_renew_deadline_of_500s` in leader/tests.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crate_leader_keeps_leading_after_its_lease_ran_out() {
    let cluster = Cluster::new("crate-leader-keeps-leading-after-its-lease-ran-out").await;
    // A 2 s lease renewed every second.
    let (mut a, _a_task) = candidate(&cluster, "pod-a_0001", 2, 1).await;
    wait_for(&mut a, true, Duration::from_secs(5)).await;

    let fault = cluster
        .proxy
        .faults()
        .inject(Fault::status(500).path(&cluster.lease_object_path()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        cluster.proxy.faults().hits(fault) >= 1,
        "no renewal was attempted"
    );
    let spec = &cluster.lease().await["spec"];
    let renewed: Timestamp = spec["renewTime"]
        .as_str()
        .expect("renewTime")
        .parse()
        .expect("time");
    let ran_out = renewed.as_second() + spec["leaseDurationSeconds"].as_i64().expect("duration");
    assert!(
        ran_out + 2 < Timestamp::now().as_second(),
        "the Lease has not run out: {spec}"
    );
    assert!(
        *a.borrow_and_update(),
        "the crate stepped down (it did not in 0.13)"
    );
}

/// The crate judges expiry by the holder's `renewTime` against its own clock, so a holder whose
/// clock is 20 s behind looks expired although it renews every 200 ms, and loses the Lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crate_takes_a_live_lease_from_a_holder_with_a_slow_clock() {
    let cluster = Cluster::new("crate-takes-a-live-lease-from-a-holder-with-a-slow-clock").await;
    let holder = slow_clock_holder(&cluster, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!holder.is_finished());

    let began = Instant::now();
    let (mut b, _b_task) = candidate(&cluster, "pod-b_0002", 15, 13).await;
    wait_for(&mut b, true, Duration::from_secs(5)).await;
    eprintln!(
        "kube-lease-manager took the live Lease after {:?}",
        began.elapsed()
    );
    assert_eq!(
        cluster.lease().await["spec"]["holderIdentity"],
        "pod-b_0002"
    );
    tokio::time::timeout(Duration::from_secs(2), holder)
        .await
        .expect("the holder saw the Lease taken")
        .expect("holder");
}

/// Our elector times the Lease from when it saw the record change (client-go's rule), so the
/// holder's clock does not matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elector_leaves_a_live_lease_to_a_holder_with_a_slow_clock() {
    let cluster = Cluster::new("elector-leaves-a-live-lease-to-a-holder-with-a-slow-clock").await;
    let holder = slow_clock_holder(&cluster, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let config = LeaderConfig {
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(&cluster.ns, "pod-b_0002")
    };
    let elector = LeaderElector::new(cluster.through_proxy(), config);
    let b = elector.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!*b.borrow(), "the elector took a live Lease");
    assert!(!holder.is_finished(), "the holder lost its Lease");
    assert_eq!(
        cluster.lease().await["spec"]["holderIdentity"],
        "other-pod_0bee"
    );

    holder.abort();
    let _ = stop.send(());
    task.await.expect("elector");
}
