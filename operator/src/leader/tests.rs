use super::*;

use flux_reporter_e2e::{ApiServer, Fault};
use kube::{Client, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NS: &str = "default";

fn client(server: &ApiServer) -> Client {
    Client::try_from(Config::new(server.url().parse().expect("server url"))).expect("client")
}

/// Short durations: lease 1 s, renew deadline 700 ms, retry 200 ms.
fn short(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(700),
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(NS, identity)
    }
}

struct Running {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Sends the shutdown signal and waits for `run` to return.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("run returns")
            .expect("run");
    }
}

fn start(elector: LeaderElector) -> Running {
    let leading = elector.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(elector.run(async move {
        let _ = stopped.await;
    }));
    Running {
        leading,
        stop: Some(stop),
        task,
    }
}

/// Shared with `vs_kube_lease_manager`: waits for a candidate's leadership.
pub(super) async fn wait_for(rx: &mut watch::Receiver<bool>, want: bool, within: Duration) {
    tokio::time::timeout(within, rx.wait_for(|v| *v == want))
        .await
        .unwrap_or_else(|_| panic!("leading did not become {want} within {within:?}"))
        .expect("the candidate is alive");
}

/// Shared with `vs_kube_lease_manager`: the Lease as the API server holds it.
pub(super) fn lease(server: &ApiServer) -> Value {
    server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some(NS),
            DEFAULT_LEASE_NAME,
        )
        .expect("the Lease exists")
}

fn is_micro_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    // 2026-11-22T05:25:24.459934Z
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A Lease seeded through the API, as another process would have written it.
async fn seed_lease(server: &ApiServer, holder: Option<&str>, transitions: i32) -> Lease {
    let then =
        MicroTime(Timestamp::from_second(Timestamp::now().as_second() - 3600).expect("time"));
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(DEFAULT_LEASE_NAME.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(1),
            acquire_time: Some(then.clone()),
            renew_time: Some(then),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    };
    Api::<Lease>::namespaced(client(server), NS)
        .create(&PostParams::default(), &lease)
        .await
        .expect("seed Lease")
}

#[test]
fn micro_time_has_six_fraction_digits_and_z() {
    let whole = MicroTime("2026-11-22T05:25:24Z".parse().expect("time"));
    assert_eq!(
        serde_json::to_value(&whole).expect("json"),
        json!("2026-11-22T05:25:24.000000Z")
    );
    let t = now();
    assert_eq!(t.0.subsec_nanosecond() % 1000, 0);
    assert!(is_micro_time(&serde_json::to_value(&t).expect("json")));
}

#[test]
fn default_identity_is_a_name_and_a_suffix() {
    let id = default_identity();
    let (base, suffix) = id.rsplit_once('_').expect("an underscore");
    assert!(!base.is_empty());
    assert_eq!(suffix.len(), 4);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn lease_duration_seconds_rounds_up_to_at_least_one() {
    let mut c = LeaderConfig::new(NS, "me");
    assert_eq!(c.lease_duration_seconds(), 15);
    c.lease_duration = Duration::from_millis(1500);
    assert_eq!(c.lease_duration_seconds(), 2);
    c.lease_duration = Duration::from_millis(300);
    assert_eq!(c.lease_duration_seconds(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_elector_becomes_leader_and_creates_the_lease() {
    let server = ApiServer::start().await.expect("server");
    let config = LeaderConfig {
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(NS, "pod-a_0001")
    };
    let mut a = start(LeaderElector::new(client(&server), config));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;

    let l = lease(&server);
    let spec = &l["spec"];
    assert_eq!(spec["holderIdentity"], "pod-a_0001");
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
    assert!(is_micro_time(&spec["acquireTime"]), "{spec}");
    assert!(is_micro_time(&spec["renewTime"]), "{spec}");
    let lease_path = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases");
    let writes: Vec<(String, u16)> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&lease_path))
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        writes[..2],
        [("GET".to_string(), 404), ("POST".to_string(), 201)],
        "{writes:?}"
    );

    // Renewals move renewTime and keep acquireTime.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let renewed = lease(&server);
    assert_eq!(renewed["spec"]["acquireTime"], spec["acquireTime"]);
    assert_ne!(renewed["spec"]["renewTime"], spec["renewTime"]);
    assert!(is_micro_time(&renewed["spec"]["renewTime"]));

    let mut leading = a.leading.clone();
    a.stop().await;
    assert!(!*leading.borrow_and_update());
    let released = lease(&server);
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released}"
    );
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(released["spec"]["leaseTransitions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_never_lead_at_once() {
    let server = ApiServer::start().await.expect("server");
    let a = start(LeaderElector::new(client(&server), short("pod-a_0001")));
    let b = start(LeaderElector::new(client(&server), short("pod-b_0002")));
    let began = Instant::now();
    let mut first_leader = None;
    let mut samples = 0;
    while began.elapsed() < Duration::from_secs(3) {
        let (la, lb) = (a.is_leading(), b.is_leading());
        assert!(!(la && lb), "both lead after {:?}", began.elapsed());
        if la || lb {
            let who = if la { "a" } else { "b" };
            assert_eq!(
                *first_leader.get_or_insert(who),
                who,
                "leadership moved without cause"
            );
        } else if first_leader.is_some() {
            panic!("nobody leads after {:?}", began.elapsed());
        } else {
            assert!(
                began.elapsed() < Duration::from_secs(1),
                "nobody became leader"
            );
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(samples > 100);
    assert!(first_leader.is_some());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_and_the_other_takes_over_at_once() {
    let server = ApiServer::start().await.expect("server");
    // A long lease: without the release, b would wait 10 s.
    let long = |id: &str| LeaderConfig {
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(5),
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(NS, id)
    };
    let mut a = start(LeaderElector::new(client(&server), long("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;
    let mut b = start(LeaderElector::new(client(&server), long("pod-b_0002")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.is_leading());

    let released_at = Instant::now();
    a.stop().await;
    wait_for(&mut b.leading, true, Duration::from_secs(2)).await;
    let took = released_at.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "b took over after {took:?}"
    );

    let l = lease(&server);
    assert_eq!(l["spec"]["holderIdentity"], "pod-b_0002");
    assert_eq!(l["spec"]["leaseDurationSeconds"], 10);
    assert_eq!(l["spec"]["leaseTransitions"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_of_a_dead_holder_is_taken_over() {
    let server = ApiServer::start().await.expect("server");
    let seeded = seed_lease(&server, Some("dead-pod_dead"), 3).await;
    let began = Instant::now();
    let mut a = start(LeaderElector::new(client(&server), short("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(3)).await;
    // Expiry counts from when we first saw the record, not from its (hour-old) renewTime.
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "took over after {:?}",
        began.elapsed()
    );

    let l = lease(&server);
    assert_eq!(l["spec"]["holderIdentity"], "pod-a_0001");
    assert_eq!(l["spec"]["leaseTransitions"], 4);
    let old_acquire = serde_json::to_value(&seeded.spec.expect("spec").acquire_time).expect("json");
    assert_ne!(l["spec"]["acquireTime"], old_acquire);
    assert!(is_micro_time(&l["spec"]["acquireTime"]));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_takeover_leaves_exactly_one_leader() {
    let server = ApiServer::start().await.expect("server");
    seed_lease(&server, None, 2).await;
    let mut a = LeaderElector::new(client(&server), short("pod-a_0001"));
    let mut b = LeaderElector::new(client(&server), short("pod-b_0002"));

    // Both read the same resourceVersion, then both write: the second gets a 409.
    let deadline = Instant::now() + Duration::from_secs(2);
    let seen_a = a.read(deadline).await.expect("read");
    let seen_b = b.read(deadline).await.expect("read");
    server.clear_requests();
    assert_eq!(a.write(seen_a, deadline).await, Attempt::Holding);
    assert_eq!(b.write(seen_b, deadline).await, Attempt::Failed);
    let puts: Vec<u16> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [200, 409]);
    assert_eq!(lease(&server)["spec"]["leaseTransitions"], 3);

    // Running on, a keeps the Lease and b never gets it.
    let a = start(a);
    let b = start(b);
    let began = Instant::now();
    while began.elapsed() < Duration::from_millis(1500) {
        assert!(!b.is_leading(), "b leads after {:?}", began.elapsed());
        if began.elapsed() > Duration::from_millis(300) {
            assert!(
                a.is_leading(),
                "a does not lead after {:?}",
                began.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(lease(&server)["spec"]["holderIdentity"], "pod-a_0001");
    assert_eq!(lease(&server)["spec"]["leaseTransitions"], 3);
    a.stop().await;
    b.stop().await;
}

async fn steps_down_when_renewals_fail(code: u16) {
    let server = ApiServer::start().await.expect("server");
    let mut a = start(LeaderElector::new(client(&server), short("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;

    let fault = server.faults().inject(
        Fault::status(code)
            .method("PUT")
            .path_contains(&format!("/leases/{DEFAULT_LEASE_NAME}")),
    );
    let failing_since = Instant::now();
    wait_for(&mut a.leading, false, Duration::from_secs(2)).await;
    let took = failing_since.elapsed();
    // Renewals are every 200 ms and a failing one is retried for 700 ms: the step-down comes
    // 700-900 ms after the fault, before the 1 s lease runs out for the others (the upper
    // bound leaves room for a loaded machine).
    assert!(
        took >= Duration::from_millis(600),
        "stepped down after {took:?}"
    );
    assert!(
        took < Duration::from_millis(1200),
        "stepped down after {took:?}"
    );
    assert!(server.faults().hits(fault) >= 2);

    // Once the API answers again it competes again, and wins: nobody else took the Lease.
    server.faults().remove(fault);
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;
    assert_eq!(lease(&server)["spec"]["holderIdentity"], "pod-a_0001");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_after_renew_deadline_of_500s() {
    steps_down_when_renewals_fail(500).await;
}

/// kube retries 503 with backoff inside the call; the deadline still bounds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_after_renew_deadline_of_503s() {
    steps_down_when_renewals_fail(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_a_live_holder_is_never_taken() {
    let server = ApiServer::start().await.expect("server");
    seed_lease(&server, Some("other-pod_0bee"), 0).await;
    // The other holder renews every 200 ms, as a live leader does.
    let renewer = {
        let api = Api::<Lease>::namespaced(client(&server), NS);
        tokio::spawn(async move {
            loop {
                let mut l = api.get(DEFAULT_LEASE_NAME).await.expect("get");
                let spec = l.spec.as_mut().expect("spec");
                assert_eq!(
                    spec.holder_identity.as_deref(),
                    Some("other-pod_0bee"),
                    "the Lease was taken"
                );
                spec.renew_time = Some(now());
                api.replace(DEFAULT_LEASE_NAME, &PostParams::default(), &l)
                    .await
                    .expect("renew");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let a = start(LeaderElector::new(client(&server), short("pod-a_0001")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !a.leading.has_changed().expect("elector alive"),
        "pod-a became leader"
    );
    assert!(
        !renewer.is_finished(),
        "the renewer failed: the Lease was taken"
    );
    assert_eq!(lease(&server)["spec"]["holderIdentity"], "other-pod_0bee");

    // When the holder stops renewing, the Lease expires and is taken over.
    renewer.abort();
    let mut leading = a.leading.clone();
    wait_for(&mut leading, true, Duration::from_secs(3)).await;
    assert_eq!(lease(&server)["spec"]["leaseTransitions"], 1);
    a.stop().await;
}
