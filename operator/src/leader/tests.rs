use super::*;

use std::path::{Path, PathBuf};

use flux_reporter_e2e::{Fault, Proxy};
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec};
use kube::api::{DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The cluster of the tests: `E2E_KUBECONFIG`, an admin kubeconfig of a real API server. A test
/// without one fails saying how to get one.
fn cluster_kubeconfig() -> PathBuf {
    std::env::var_os("E2E_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "E2E_KUBECONFIG is not set: the leader-election tests need a real API server. \
                 Start one with `eval \"$(hack/envtest.sh start)\"` (KUBEBUILDER_ASSETS names \
                 kube-apiserver, etcd and kubectl: setup-envtest use 1.36.x -p path)"
            )
        })
}

async fn config_from(kubeconfig: &Path) -> Config {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()))
}

/// How long the cleanup of a test's namespace may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's share of the real API server: a fresh namespace, and a fault-injecting proxy
/// (`flux_reporter_e2e::Proxy`) in front of the server for the candidates under test. The test's
/// own reads and writes (seeding a Lease, playing another holder, checking the result) go
/// straight to the server, past the proxy's faults and out of its request log. Dropping it
/// deletes the namespace and its Leases.
pub(super) struct Cluster {
    pub(super) ns: String,
    /// Straight to the server.
    pub(super) client: Client,
    pub(super) proxy: Proxy,
    direct: Config,
    proxied: Config,
    dir: PathBuf,
}

impl Cluster {
    pub(super) async fn new(test: &str) -> Cluster {
        let kubeconfig = cluster_kubeconfig();
        let short: String = test.replace('_', "-").chars().take(40).collect();
        let ns = format!(
            "leader-{}-{:06x}",
            short.trim_end_matches('-'),
            fastrand::u32(..0x100_0000)
        );
        let direct = config_from(&kubeconfig).await;
        let client = Client::try_from(direct.clone()).expect("a client");
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {ns} (E2E_KUBECONFIG): {e}"));
        let dir = std::env::temp_dir().join(format!("flux-reporter-{ns}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        // From here on, dropping `cluster` removes the namespace and the directory.
        let proxy = Proxy::start(&kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("start the proxy: {e}"));
        let proxied_path = dir.join("kubeconfig");
        proxy
            .kubeconfig(&kubeconfig, &proxied_path)
            .unwrap_or_else(|e| panic!("write the proxied kubeconfig: {e}"));
        let proxied = config_from(&proxied_path).await;
        Cluster {
            ns,
            client,
            proxy,
            direct,
            proxied,
            dir,
        }
    }

    /// A client of its own (as another process has) that goes through the proxy.
    pub(super) fn through_proxy(&self) -> Client {
        Client::try_from(self.proxied.clone()).expect("a client")
    }

    pub(super) fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The collection path of the test's Leases.
    fn lease_path(&self) -> String {
        format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", self.ns)
    }

    /// The path of the Lease the candidates compete for.
    pub(super) fn lease_object_path(&self) -> String {
        format!("{}/{DEFAULT_LEASE_NAME}", self.lease_path())
    }

    /// Shared with `vs_kube_lease_manager`: the Lease as the API server holds it, its JSON as
    /// the server sends it.
    pub(super) async fn lease(&self) -> Value {
        let req = http::Request::get(self.lease_object_path())
            .body(Vec::new())
            .expect("a request");
        self.client
            .request::<Value>(req)
            .await
            .unwrap_or_else(|e| panic!("get the Lease: {e}"))
    }

    /// Short durations in the test's namespace: lease 1 s, renew deadline 700 ms, retry 200 ms.
    fn short(&self, identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_duration: Duration::from_secs(1),
            renew_deadline: Duration::from_millis(700),
            retry_period: Duration::from_millis(200),
            ..LeaderConfig::new(&self.ns, identity)
        }
    }

    /// A candidate under test: its client goes through the proxy.
    fn elector(&self, config: LeaderConfig) -> LeaderElector {
        LeaderElector::new(self.through_proxy(), config)
    }
}

impl Drop for Cluster {
    /// Deletes the namespace, its Leases, and finalizes it: an API server alone (envtest) has no
    /// namespace controller, and keeps a deleted namespace `Terminating` until its `kubernetes`
    /// finalizer is removed through `PUT /api/v1/namespaces/<ns>/finalize`, which removes the
    /// namespace at once and leaves what is still in it behind; hence the Leases first. The
    /// namespace is deleted before them, so nothing still running can create one again. On its
    /// own thread and runtime (Drop cannot await), bounded in time; a failure fails the test.
    fn drop(&mut self) {
        let config = self.direct.clone();
        let ns = self.ns.clone();
        let cleaned = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let client = Client::try_from(config).map_err(|e| e.to_string())?;
                tokio::time::timeout(CLEANUP_TIMEOUT, remove_namespace(client, &ns))
                    .await
                    .map_err(|_| format!("gave up after {CLEANUP_TIMEOUT:?}"))?
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup panicked".to_string()));
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Err(e) = cleaned {
            if std::thread::panicking() {
                eprintln!("cleanup of namespace {}: {e}", self.ns);
            } else {
                panic!("cleanup of namespace {}: {e}", self.ns);
            }
        }
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

async fn remove_namespace(client: Client, ns: &str) -> Result<(), String> {
    let namespaces = Api::<Namespace>::all(client.clone());
    match namespaces.delete(ns, &DeleteParams::background()).await {
        Err(e) if !not_found(&e) => return Err(format!("delete: {e}")),
        _ => {}
    }
    let leases = Api::<Lease>::namespaced(client, ns);
    leases
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .map_err(|e| format!("delete the Leases: {e}"))?;
    let left = leases
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("list the Leases: {e}"))?;
    if !left.items.is_empty() {
        return Err(format!("{} Leases left after deletion", left.items.len()));
    }
    let Some(mut namespace) = namespaces
        .get_opt(ns)
        .await
        .map_err(|e| format!("get: {e}"))?
    else {
        return Ok(());
    };
    namespace.spec = Some(NamespaceSpec {
        finalizers: Some(Vec::new()),
    });
    match namespaces
        .replace_subresource("finalize", ns, &PostParams::default(), &namespace)
        .await
    {
        Err(e) if !not_found(&e) => return Err(format!("finalize: {e}")),
        _ => {}
    }
    match namespaces.get_opt(ns).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err("still there after finalize".to_string()),
        Err(e) => Err(format!("get after finalize: {e}")),
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
async fn seed_lease(cluster: &Cluster, holder: Option<&str>, transitions: i32) -> Lease {
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
    cluster
        .leases()
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
    let mut c = LeaderConfig::new("default", "me");
    assert_eq!(c.lease_duration_seconds(), 15);
    c.lease_duration = Duration::from_millis(1500);
    assert_eq!(c.lease_duration_seconds(), 2);
    c.lease_duration = Duration::from_millis(300);
    assert_eq!(c.lease_duration_seconds(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_elector_becomes_leader_and_creates_the_lease() {
    let cluster = Cluster::new("single-elector").await;
    let config = LeaderConfig {
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(&cluster.ns, "pod-a_0001")
    };
    let mut a = start(cluster.elector(config));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;

    // The server's own JSON: MicroTime as it serializes it (RFC 3339, six fraction digits, UTC).
    let l = cluster.lease().await;
    let spec = &l["spec"];
    assert_eq!(spec["holderIdentity"], "pod-a_0001");
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
    assert!(is_micro_time(&spec["acquireTime"]), "{spec}");
    assert!(is_micro_time(&spec["renewTime"]), "{spec}");
    let lease_path = cluster.lease_path();
    let writes: Vec<(String, u16)> = cluster
        .proxy
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

    // Renewals (every 200 ms) move renewTime and keep acquireTime.
    let began = Instant::now();
    let renewed = loop {
        let renewed = cluster.lease().await;
        if renewed["spec"]["renewTime"] != spec["renewTime"] {
            break renewed;
        }
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "renewTime did not move: {renewed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(renewed["spec"]["acquireTime"], spec["acquireTime"]);
    assert!(is_micro_time(&renewed["spec"]["renewTime"]));

    let mut leading = a.leading.clone();
    a.stop().await;
    assert!(!*leading.borrow_and_update());
    let released = cluster.lease().await;
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released}"
    );
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(released["spec"]["leaseTransitions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_never_lead_at_once() {
    let cluster = Cluster::new("two-electors").await;
    let a = start(cluster.elector(cluster.short("pod-a_0001")));
    let b = start(cluster.elector(cluster.short("pod-b_0002")));
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
    let cluster = Cluster::new("shutdown-releases").await;
    // A long lease: without the release, b would wait 10 s.
    let long = |id: &str| LeaderConfig {
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(5),
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new(&cluster.ns, id)
    };
    let mut a = start(cluster.elector(long("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;
    let mut b = start(cluster.elector(long("pod-b_0002")));
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

    let l = cluster.lease().await;
    assert_eq!(l["spec"]["holderIdentity"], "pod-b_0002");
    assert_eq!(l["spec"]["leaseDurationSeconds"], 10);
    assert_eq!(l["spec"]["leaseTransitions"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_of_a_dead_holder_is_taken_over() {
    let cluster = Cluster::new("expired-lease").await;
    let seeded = seed_lease(&cluster, Some("dead-pod_dead"), 3).await;
    let began = Instant::now();
    let mut a = start(cluster.elector(cluster.short("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(3)).await;
    // Expiry counts from when we first saw the record, not from its (hour-old) renewTime.
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "took over after {:?}",
        began.elapsed()
    );

    let l = cluster.lease().await;
    assert_eq!(l["spec"]["holderIdentity"], "pod-a_0001");
    assert_eq!(l["spec"]["leaseTransitions"], 4);
    let old_acquire = serde_json::to_value(&seeded.spec.expect("spec").acquire_time).expect("json");
    assert_ne!(l["spec"]["acquireTime"], old_acquire);
    assert!(is_micro_time(&l["spec"]["acquireTime"]));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_takeover_leaves_exactly_one_leader() {
    let cluster = Cluster::new("conflicting-takeover").await;
    seed_lease(&cluster, None, 2).await;
    let mut a = cluster.elector(cluster.short("pod-a_0001"));
    let mut b = cluster.elector(cluster.short("pod-b_0002"));

    // Both read the same resourceVersion, then both write: the second gets a 409.
    let deadline = Instant::now() + Duration::from_secs(2);
    let seen_a = a.read(deadline).await.expect("read");
    let seen_b = b.read(deadline).await.expect("read");
    cluster.proxy.clear_requests();
    assert_eq!(a.write(seen_a, deadline).await, Attempt::Holding);
    assert_eq!(b.write(seen_b, deadline).await, Attempt::Failed);
    let puts: Vec<u16> = cluster
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [200, 409]);
    assert_eq!(cluster.lease().await["spec"]["leaseTransitions"], 3);

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
    let l = cluster.lease().await;
    assert_eq!(l["spec"]["holderIdentity"], "pod-a_0001");
    assert_eq!(l["spec"]["leaseTransitions"], 3);
    a.stop().await;
    b.stop().await;
}

async fn steps_down_when_renewals_fail(code: u16) {
    let cluster = Cluster::new(&format!("steps-down-{code}")).await;
    let mut a = start(cluster.elector(cluster.short("pod-a_0001")));
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;

    let fault = cluster.proxy.faults().inject(
        Fault::status(code)
            .method("PUT")
            .path(&cluster.lease_object_path()),
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
    assert!(cluster.proxy.faults().hits(fault) >= 2);

    // Once the API answers again it competes again, and wins: nobody else took the Lease.
    cluster.proxy.faults().remove(fault);
    wait_for(&mut a.leading, true, Duration::from_secs(2)).await;
    assert_eq!(
        cluster.lease().await["spec"]["holderIdentity"],
        "pod-a_0001"
    );
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
    let cluster = Cluster::new("live-holder").await;
    seed_lease(&cluster, Some("other-pod_0bee"), 0).await;
    // The other holder renews every 200 ms, as a live leader does.
    let renewer = {
        let api = cluster.leases();
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
    let a = start(cluster.elector(cluster.short("pod-a_0001")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !a.leading.has_changed().expect("elector alive"),
        "pod-a became leader"
    );
    assert!(
        !renewer.is_finished(),
        "the renewer failed: the Lease was taken"
    );
    assert_eq!(
        cluster.lease().await["spec"]["holderIdentity"],
        "other-pod_0bee"
    );

    // When the holder stops renewing, the Lease expires and is taken over.
    renewer.abort();
    let mut leading = a.leading.clone();
    wait_for(&mut leading, true, Duration::from_secs(3)).await;
    assert_eq!(cluster.lease().await["spec"]["leaseTransitions"], 1);
    a.stop().await;
}
