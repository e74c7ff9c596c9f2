//! The live source (`report/src/source/live.rs`) against a real API server seeded with the sample
//! dump (`live_cluster`), its client going through the test's fault-injecting proxy: pagination,
//! a forbidden kind, an expired continue token, throttling, an unreachable server, a mute path or
//! server, the run deadline, kinds listed at once, and the same report as from a dump of the same
//! objects.
//!
//! The sample's objects are all in the test's namespace, which plays the Flux namespace. The
//! report counts the Flux objects of every namespace: expected counts are the sample's plus
//! whatever the cluster holds elsewhere (nothing, when the tests have the cluster to themselves).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code)]
mod live_cluster;

use std::time::{Duration, Instant};

use common::Env;
use common::env::{Stats, resource};
use flux_reporter_api::OperatorInfo;
use flux_reporter_e2e::{Fault, MuteProxy};
use flux_reporter_report::source::dump::DumpSource;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::{Options, Outcome, Section, compute};
use kube::api::{Api, DynamicObject, ListParams};
use live_cluster::{SAMPLE_FLUX_OBJECTS, Sample, crd_resource, is_flux};
use serde_json::{Value, json};

const HELM_REPOSITORIES: &str = "/apis/source.toolkit.fluxcd.io/v1/helmrepositories";
const HELM_RELEASES: &str = "/apis/helm.toolkit.fluxcd.io/v2/helmreleases";
const KUSTOMIZATIONS: &str = "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations";

/// A test's environment with the sample in its namespace.
async fn seeded(test: &str) -> (Env, Sample) {
    let env = Env::new(test).await;
    let sample = live_cluster::seed_sample(&env).await;
    (env, sample)
}

fn operator() -> OperatorInfo {
    OperatorInfo {
        api_version: "fluxcd.controlplane.io/v1".into(),
        version: "v0.0.0-test".into(),
        platform: "linux/amd64".into(),
    }
}

fn opts(env: &Env) -> Options {
    Options::new(&env.ns, operator())
}

/// The client config of the admin kubeconfig through the test's proxy, as the operator makes
/// the live source's (`operator/src/client.rs`, `ApiClient::reads`): without kube's own retry of
/// 429, 503 and 504, which the live source does itself.
async fn reads_config(env: &Env) -> kube::Config {
    let kc = kube::config::Kubeconfig::read_from(env.proxied_kubeconfig(&env.kubeconfig).await)
        .expect("the proxied kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("a client config");
    config.default_retry = false;
    config
}

/// A live source through the test's proxy.
async fn live_with(env: &Env, config: LiveConfig) -> LiveSource {
    let client = kube::Client::try_from(reads_config(env).await).expect("a client");
    LiveSource::new(client, config)
}

async fn live(env: &Env, page_size: u32) -> LiveSource {
    live_with(
        env,
        LiveConfig {
            page_size,
            backoff: Duration::from_millis(20),
            ..LiveConfig::default()
        },
    )
    .await
}

async fn run_live(env: &Env, page_size: u32) -> Outcome {
    compute(&live(env, page_size).await, &opts(env)).await
}

/// Two-second request and probe timeouts, so that silence costs little (and a loaded machine's
/// real API server still answers in time).
fn impatient() -> LiveConfig {
    LiveConfig {
        request_timeout: Duration::from_secs(2),
        probe_timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(20),
        ..LiveConfig::default()
    }
}

/// What the failure of a timed-out request says with [`impatient`].
const NO_ANSWER: &str = "no answer within 2s";

fn entry(o: &Outcome, kind: &str) -> (i64, i64, i64) {
    let e = o
        .spec
        .reconcilers
        .iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"));
    (e.stats.running, e.stats.failing, e.stats.suspended)
}

/// The (running, failing, suspended) the report must show for `kind`: `ours`, the sample's in the
/// test's namespace, plus those of the other namespaces.
async fn expected(
    env: &Env,
    api_version: &str,
    kind: &str,
    ours: (i64, i64, i64),
) -> (i64, i64, i64) {
    let stats = env
        .expected_stats(api_version, kind, Stats::new(ours.0, ours.1, ours.2, 0))
        .await;
    let n = |k: &str| stats[k].as_i64().unwrap_or(0);
    (n("running"), n("failing"), n("suspended"))
}

/// What the cluster holds of what the report reads, as `kubectl get -o json` gives it (each
/// item with its apiVersion and kind, without managedFields): every CRD, every Node, the
/// Deployments of the test's namespace and the objects of every Flux kind in every namespace.
async fn server_objects(env: &Env) -> Vec<Value> {
    async fn list(api: Api<DynamicObject>, api_version: &str, kind: &str) -> Vec<Value> {
        api.list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"))
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).expect("object as JSON");
                v["apiVersion"] = json!(api_version);
                v["kind"] = json!(kind);
                if let Some(meta) = v["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
                v
            })
            .collect()
    }
    let client = &env.client;
    let (crd_version, crd_kind) = ("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    let crds = list(
        Api::all_with(client.clone(), &resource(crd_version, crd_kind)),
        crd_version,
        crd_kind,
    )
    .await;
    let mut out = Vec::new();
    for crd in &crds {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        if group.ends_with(".fluxcd.io") || group == "fluxcd.controlplane.io" {
            let ar = crd_resource(crd);
            out.extend(
                list(
                    Api::all_with(client.clone(), &ar),
                    &ar.api_version,
                    &ar.kind,
                )
                .await,
            );
        }
    }
    out.extend(
        list(
            Api::all_with(client.clone(), &resource("v1", "Node")),
            "v1",
            "Node",
        )
        .await,
    );
    out.extend(
        list(
            Api::namespaced_with(client.clone(), &env.ns, &resource("apps/v1", "Deployment")),
            "apps/v1",
            "Deployment",
        )
        .await,
    );
    out.splice(0..0, crds);
    out
}

/// A dump of the cluster (see [`server_objects`]), with the `kubectl version` document of the
/// same server: two JSON documents, one after the other, as `kubectl get -o json` and
/// `kubectl version -o json` print them.
async fn server_dump(env: &Env) -> DumpSource {
    let items = server_objects(env).await;
    let version = env.client.apiserver_version().await.expect("GET /version");
    let text = format!(
        "{}\n{}\n",
        json!({"apiVersion": "v1", "kind": "List", "items": items}),
        json!({"serverVersion": version}),
    );
    DumpSource::from_bytes("the cluster", text.as_bytes()).expect("the cluster's dump loads")
}

/// The Flux objects of other namespaces than the test's.
async fn flux_objects_elsewhere(env: &Env) -> usize {
    server_objects(env)
        .await
        .iter()
        .filter(|o| is_flux(o) && o["metadata"]["namespace"].as_str() != Some(env.ns.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_report_equals_the_dump_report_of_the_same_objects() {
    let (env, sample) = seeded("live_report_equals_the_dump_report").await;
    let live = run_live(&env, 7).await;
    assert!(live.failures.is_empty(), "{:?}", live.failures);
    let dump = server_dump(&env).await;
    let from_dump = compute(&dump, &opts(&env)).await;
    assert!(from_dump.failures.is_empty(), "{:?}", from_dump.failures);

    // Both read the same server: its version too.
    let cluster = live.spec.cluster.as_ref().expect("the cluster section");
    assert_eq!(
        cluster.nodes, sample.nodes,
        "the sample's Nodes and the cluster's own"
    );
    assert_eq!(live.spec, from_dump.spec);
    assert_eq!(live.resource_rows, from_dump.resource_rows);
    assert_eq!(live.instance_rows, from_dump.instance_rows);
    assert_eq!(
        live.objects,
        SAMPLE_FLUX_OBJECTS + flux_objects_elsewhere(&env).await
    );
    let sync = live.spec.sync.as_ref().expect("the sync of the sample");
    assert_eq!(
        sync.source.as_deref(),
        Some("https://github.com/example-org/fleet-infra.git")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paginated_with_limit_and_continue() {
    let (env, _sample) = seeded("lists_are_paginated").await;
    let proxy = env.proxy().await;
    proxy.clear_requests();
    let o = run_live(&env, 2).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    let ks_api = "kustomize.toolkit.fluxcd.io/v1";
    assert_eq!(
        entry(&o, "Kustomization"),
        expected(&env, ks_api, "Kustomization", (11, 2, 1)).await
    );
    let all =
        Api::<DynamicObject>::all_with(env.client.clone(), &resource(ks_api, "Kustomization"))
            .list(&ListParams::default())
            .await
            .expect("list Kustomizations")
            .items
            .len();
    assert!(all >= 12, "the sample's 12 Kustomizations, {all} in all");
    let ks: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.path == KUSTOMIZATIONS)
        .collect();
    assert_eq!(
        ks.len(),
        all.div_ceil(2),
        "{all} Kustomizations in pages of 2"
    );
    assert!(
        ks.iter()
            .all(|r| r.query_param("limit").as_deref() == Some("2") && r.status == 200),
        "{ks:#?}"
    );
    assert!(ks[0].query_param("continue").is_none());
    assert!(ks[1..].iter().all(|r| r.query_param("continue").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_kind_fails_that_kind_only() {
    let (env, _sample) = seeded("a_forbidden_kind_fails_that_kind_only").await;
    // The answer the RBAC authorizer gives a ServiceAccount without `list` on the kind.
    let message = format!(
        "helmrepositories.source.toolkit.fluxcd.io is forbidden: User \
         \"system:serviceaccount:{}:flux-reporter\" cannot list resource \"helmrepositories\" in \
         API group \"source.toolkit.fluxcd.io\" at the cluster scope",
        env.ns
    );
    env.proxy().await.faults().inject(
        Fault::status(403)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES)
            .message(&message),
    );
    let o = run_live(&env, 500).await;
    assert_eq!(o.failures.len(), 1, "{:?}", o.failures);
    let f = &o.failures[0];
    assert_eq!(
        (f.section, f.kind.as_deref()),
        (Section::Reconcilers, Some("HelmRepository"))
    );
    assert!(f.error.contains("forbidden"), "{f}");
    assert!(
        o.spec
            .reconcilers
            .iter()
            .all(|r| r.kind != "HelmRepository")
    );
    assert_eq!(
        entry(&o, "GitRepository"),
        expected(
            &env,
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            (4, 1, 2)
        )
        .await
    );
    assert!(
        o.spec.sync.is_some(),
        "sync does not depend on HelmRepositories"
    );
    assert!(!o.resource_rows.contains_key("HelmRepository"));
    let r = o.readiness();
    assert!(!r.ready);
    assert_eq!(r.reason, "ReportIncomplete");
    assert!(
        r.message.contains("reconcilers HelmRepository"),
        "{}",
        r.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_continue_token_restarts_the_list_without_double_counting() {
    let (env, _sample) = seeded("an_expired_continue_token_restarts_the_list").await;
    let proxy = env.proxy().await;
    proxy.faults().expire_next_continue();
    let o = run_live(&env, 3).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    let expired: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.status == 410)
        .collect();
    assert_eq!(expired.len(), 1, "one continue token expired: {expired:#?}");
    assert!(expired[0].query_param("continue").is_some());
    assert_eq!(
        o.objects,
        SAMPLE_FLUX_OBJECTS + flux_objects_elsewhere(&env).await
    );
    let from_dump = compute(&server_dump(&env).await, &opts(&env)).await;
    assert_eq!(o.objects, from_dump.objects);
    assert_eq!(o.spec.reconcilers, from_dump.spec.reconcilers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried() {
    let (env, _sample) = seeded("throttling_and_server_errors_are_retried").await;
    let faults = env.proxy().await.faults();
    let throttle = faults.inject(
        Fault::status(429)
            .path_prefix("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .retry_after(0)
            .times(1),
    );
    let deployments = format!("/apis/apps/v1/namespaces/{}/deployments", env.ns);
    let unavailable = faults.inject(Fault::status(503).path_prefix(&deployments).times(1));
    let proxy = env.proxy().await;
    proxy.clear_requests();
    let o = run_live(&env, 500).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(faults.hits(throttle), 1);
    assert_eq!(faults.hits(unavailable), 1);
    assert_eq!(o.spec.components.len(), 6);
    // Retried by the live source itself (its client has no retry of its own): the failed
    // request, then the same one answered.
    let requests = proxy.requests();
    for code in [429, 503] {
        let failed = requests
            .iter()
            .position(|r| r.status == code)
            .unwrap_or_else(|| panic!("no {code}: {requests:#?}"));
        let (path, query) = (&requests[failed].path, &requests[failed].query);
        let again: Vec<u16> = requests[failed + 1..]
            .iter()
            .filter(|r| &r.path == path && &r.query == query)
            .map(|r| r.status)
            .collect();
        assert_eq!(
            again,
            [200],
            "{path}?{query} after its {code}: {requests:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_crd_fails_its_kind_and_keeps_the_rest() {
    let (env, _sample) = seeded("a_vanished_crd_fails_its_kind").await;
    // What the server answers for the objects of a CRD deleted after the CRDs were listed.
    env.proxy()
        .await
        .faults()
        .inject(Fault::status(404).path_prefix("/apis/image.toolkit.fluxcd.io/v1/imagepolicies"));
    let o = run_live(&env, 500).await;
    assert_eq!(
        o.failed_kinds().into_iter().collect::<Vec<_>>(),
        ["ImagePolicy"],
        "{:?}",
        o.failures
    );
    assert_eq!(o.spec.components.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_every_section_and_says_why() {
    let env = Env::new("an_unreachable_server_fails_every_section").await;
    let source = live(&env, 500).await;
    // The proxy closes its port: every connection is refused.
    env.proxy().await.faults().stop_serving().await;
    let started = Instant::now();
    let o = compute(&source, &opts(&env)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for section in [
        Section::Distribution,
        Section::Cluster,
        Section::Crds,
        Section::Components,
    ] {
        assert!(o.failed(section), "{section} should fail: {:?}", o.failures);
    }
    let msg = o.failures[0].to_string();
    assert!(msg.contains("Connection refused"), "{msg}");
    assert_eq!(o.readiness().reason, "ReportIncomplete");
    assert!(!source.got_through());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_path_fails_only_its_kind_after_the_request_timeout() {
    let (env, _sample) = seeded("a_mute_path_fails_only_its_kind").await;
    let faults = env.proxy().await.faults();
    let mute = faults.inject(Fault::mute().path_prefix(HELM_RELEASES));
    let source = live_with(&env, impatient()).await;
    let started = Instant::now();
    let o = compute(&source, &opts(&env)).await;
    let took = started.elapsed();
    assert_eq!(
        o.failed_kinds().into_iter().collect::<Vec<_>>(),
        ["HelmRelease"],
        "{:?}",
        o.failures
    );
    let msg = o.failures[0].to_string();
    assert!(msg.contains(NO_ANSWER), "{msg}");
    // Not retried: one timeout, then /version tells a slow path from a mute server.
    assert_eq!(faults.hits(mute), 1);
    assert_eq!(source.mute_cause(), None);
    assert!(source.got_through());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(o.spec.components.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_server_fails_the_whole_run_after_one_timeout_and_one_probe() {
    let (env, _sample) = seeded("a_mute_server_fails_the_whole_run").await;
    let faults = env.proxy().await.faults();
    let mute = faults.inject(Fault::mute());
    let source = live_with(&env, impatient()).await;
    let started = Instant::now();
    let o = compute(&source, &opts(&env)).await;
    let took = started.elapsed();
    // The first request and the /version probe; everything after is not tried.
    assert_eq!(faults.hits(mute), 2);
    assert!(took < Duration::from_secs(10), "{took:?}");
    for section in [
        Section::Distribution,
        Section::Cluster,
        Section::Crds,
        Section::Components,
        Section::Sync,
    ] {
        assert!(o.failed(section), "{section} should fail: {:?}", o.failures);
    }
    assert!(!source.got_through());
    let cause = source.mute_cause().expect("the server is found mute");
    assert!(
        cause.starts_with("the Kubernetes API server does not answer"),
        "{cause}"
    );
    let cluster = o
        .failures
        .iter()
        .find(|f| f.section == Section::Cluster)
        .unwrap()
        .to_string();
    assert!(
        cluster.contains("not tried: the Kubernetes API server does not answer"),
        "{cluster}"
    );
    assert!(o.readiness().message.contains("does not answer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_deadline_fails_what_did_not_finish_and_keeps_what_did() {
    let (env, _sample) = seeded("the_run_deadline_fails_what_did_not_finish").await;
    // Every Flux kind's list takes 1.5 s; the sections before them do not wait. Without a
    // deadline the run takes at least 6 s (some 16 kinds, 4 at a time).
    env.proxy()
        .await
        .faults()
        .inject(Fault::latency(Duration::from_millis(1500)).path_contains(".toolkit.fluxcd.io/"));
    let source = live_with(
        &env,
        LiveConfig {
            request_timeout: Duration::from_secs(10),
            ..impatient()
        },
    )
    .await
    .with_deadline(Duration::from_secs(2));
    let started = Instant::now();
    let o = compute(&source, &opts(&env)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!o.failed(Section::Cluster), "{:?}", o.failures);
    assert!(!o.failed(Section::Components), "{:?}", o.failures);
    assert!(!o.failed_kinds().is_empty(), "{:?}", o.failures);
    // Each cut kind names the deadline (the sync then fails for want of the
    // Kustomizations, which its own message says).
    let messages: Vec<String> = o
        .failures
        .iter()
        .filter(|f| f.kind.is_some())
        .map(|f| f.to_string())
        .collect();
    assert!(
        messages
            .iter()
            .all(|m| m.contains("report run deadline of 2s")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("not tried")),
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_every_request_outlives_the_deadline_did_not_get_through() {
    let (env, _sample) = seeded("a_run_whose_every_request_outlives").await;
    env.proxy()
        .await
        .faults()
        .inject(Fault::latency(Duration::from_secs(3)));
    let source = live_with(&env, impatient())
        .await
        .with_deadline(Duration::from_millis(500));
    let o = compute(&source, &opts(&env)).await;
    assert!(o.failed(Section::Cluster), "{:?}", o.failures);
    // Slow, not mute: nothing answered, and nothing says the server is dead.
    assert_eq!(source.mute_cause(), None);
    assert!(!source.got_through());
}

/// The sample, plus 24 more of each of its Flux objects' kinds: failing, suspended and malformed
/// (a wrong-typed `spec.suspend`, which the sample's CRDs, open schemas, let through) ones among
/// them, so that with small pages every kind spans several pages.
async fn seeded_many(test: &str) -> (Env, Sample) {
    let (env, sample) = seeded(test).await;
    let mut extra = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for obj in flux_reporter_e2e::fixtures::sample_dump_objects() {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        if !api_version.contains(".fluxcd.io/") || !seen.insert(kind.clone()) {
            continue;
        }
        for i in 0..24 {
            let mut copy = obj.clone();
            copy["metadata"]["name"] = json!(format!("{}-copy-{i}", kind.to_lowercase()));
            if i % 4 == 1 {
                copy["spec"]["suspend"] = true.into();
            }
            if i % 11 == 5 {
                copy["spec"]["suspend"] = "yes".into();
            }
            if i % 5 == 2
                && let Some(conds) = copy["status"]["conditions"].as_array_mut()
            {
                for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                    c["status"] = "False".into();
                    c["reason"] = format!("Failure{i}").into();
                    c["message"] = format!("copy {i} of {kind} fails").into();
                }
            }
            extra.push(live_cluster::relocate(copy, &env.ns));
        }
    }
    assert_eq!(extra.len(), 14 * 24, "24 copies of each of the 14 kinds");
    live_cluster::apply_all(&env, extra).await;
    (env, sample)
}

async fn concurrent(env: &Env, page_size: u32, list_concurrency: usize) -> LiveSource {
    live_with(
        env,
        LiveConfig {
            page_size,
            list_concurrency,
            backoff: Duration::from_millis(20),
            ..LiveConfig::default()
        },
    )
    .await
}

/// Everything a run produced but its duration, as bytes: the spec as JSON,
/// the rest as their debug text, the Ready message with the duration cut out.
fn outcome_bytes(o: &Outcome) -> Vec<u8> {
    let mut out = serde_json::to_vec(&o.spec).unwrap();
    let readiness = o.readiness();
    let message = readiness.message.replace(
        &flux_reporter_report::duration::format_run(o.duration),
        "<duration>",
    );
    out.extend(
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}\n{}",
            o.failures,
            o.notes,
            o.resource_rows,
            o.instance_rows,
            o.failing_objects,
            o.malformed,
            o.malformed_total,
            o.artifact_bytes,
            o.objects,
            o.kinds,
            o.sync_source_ref,
            readiness.reason,
            message
        )
        .into_bytes(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_listed_four_at_a_time_give_byte_for_byte_the_sequential_report() {
    let (env, _sample) = seeded_many("kinds_listed_four_at_a_time").await;
    let proxy = env.proxy().await;
    let sequential = compute(&concurrent(&env, 7, 1).await, &opts(&env)).await;
    proxy.clear_requests();
    let at_four = compute(&concurrent(&env, 7, 4).await, &opts(&env)).await;
    // Many pages: every kind of the sample has 25 or more objects in pages of 7.
    let pages = proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains(".toolkit.fluxcd.io/") && r.query_param("limit").is_some())
        .count();
    assert!(pages >= 40, "{pages} list pages");
    assert!(sequential.failures.is_empty(), "{:?}", sequential.failures);
    assert!(sequential.malformed_total > 0 && !sequential.failing_objects.is_empty());
    assert!(sequential.spec.sync.is_some());
    assert_eq!(
        String::from_utf8_lossy(&outcome_bytes(&at_four)),
        String::from_utf8_lossy(&outcome_bytes(&sequential))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_slow_lists_the_server_sees_as_many_at_once_as_the_concurrency() {
    let (env, _sample) = seeded_many("with_slow_lists_the_server_sees").await;
    let proxy = env.proxy().await;
    // Every Flux kind's page takes 150 ms to answer, so lists that run at the same time are in
    // the proxy at the same time.
    proxy
        .faults()
        .inject(Fault::latency(Duration::from_millis(150)).path_contains(".toolkit.fluxcd.io/"));
    let mut reports = Vec::new();
    for concurrency in [1, 3, 4] {
        let source = concurrent(&env, 50, concurrency).await;
        proxy.reset_peak_in_flight();
        let o = compute(&source, &opts(&env)).await;
        assert!(o.failures.is_empty(), "{:?}", o.failures);
        assert_eq!(
            proxy.serving().peak_in_flight,
            concurrency as u64,
            "at most {concurrency} lists at once, and that many"
        );
        reports.push(outcome_bytes(&o));
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrency_a_forbidden_kind_and_a_mute_kind_fail_alone() {
    let (env, _sample) = seeded_many("under_concurrency_a_forbidden_kind").await;
    let clean = compute(&concurrent(&env, 7, 1).await, &opts(&env)).await;
    assert!(clean.failures.is_empty(), "{:?}", clean.failures);
    let faults = env.proxy().await.faults();
    faults.inject(
        Fault::status(403)
            .method("GET")
            .path_prefix(HELM_REPOSITORIES),
    );
    let mute = faults.inject(Fault::mute().path_prefix(HELM_RELEASES));
    let source = live_with(
        &env,
        LiveConfig {
            page_size: 7,
            list_concurrency: 4,
            ..impatient()
        },
    )
    .await;
    let o = compute(&source, &opts(&env)).await;
    assert_eq!(
        o.failed_kinds().into_iter().collect::<Vec<_>>(),
        ["HelmRelease", "HelmRepository"],
        "{:?}",
        o.failures
    );
    let failures: Vec<String> = o.failures.iter().map(|f| f.to_string()).collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("HelmRepository") && f.contains("forbidden")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("HelmRelease") && f.contains(NO_ANSWER)),
        "{failures:?}"
    );
    // A slow path, not a mute server: one timed-out request, and the rest of the run went on.
    assert_eq!(faults.hits(mute), 1);
    assert_eq!(source.mute_cause(), None);
    assert!(source.got_through());
    // Every other kind is exactly what a clean sequential run read.
    let others = |o: &Outcome| -> Vec<String> {
        o.spec
            .reconcilers
            .iter()
            .filter(|r| r.kind != "HelmRelease" && r.kind != "HelmRepository")
            .map(|r| format!("{r:?}"))
            .collect()
    };
    assert_eq!(others(&o), others(&clean));
    assert_eq!(o.spec.sync, clean.spec.sync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_gone_mute_while_kinds_are_listed_fails_the_rest_of_the_run() {
    let (env, _sample) = seeded_many("a_server_gone_mute_while_kinds_are_listed").await;
    let proxy = env.proxy().await;
    proxy
        .faults()
        .inject(Fault::latency(Duration::from_millis(300)).path_contains(".toolkit.fluxcd.io/"));
    // The source reaches the fault-injecting proxy through a TCP proxy that can go mute (TLS
    // passes through it; both listen on 127.0.0.1, which the proxy's certificate names).
    let mute = MuteProxy::start(&proxy.addr().to_string()).await.unwrap();
    let mut config = reads_config(&env).await;
    config.cluster_url = format!("https://{}", mute.addr()).parse().unwrap();
    let source = LiveSource::new(
        kube::Client::try_from(config).expect("a client"),
        LiveConfig {
            page_size: 7,
            list_concurrency: 4,
            ..impatient()
        },
    );
    let opts = opts(&env);
    let run = compute(&source, &opts);
    // Mute the TCP proxy once four Flux lists are in the fault-injecting proxy's hands (lists
    // one by one never get there: then it mutes after 10 s and the check below fails).
    let mute_when_busy = async {
        let mut seen = 0;
        for _ in 0..2000 {
            seen = proxy.serving().in_flight;
            if seen >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        mute.set_muted(true);
        seen
    };
    let (o, seen) = tokio::join!(run, mute_when_busy);
    assert_eq!(seen, 4, "four lists in flight when the server went mute");
    let cause = source.mute_cause().expect("the server is found mute");
    assert!(
        cause.starts_with("the Kubernetes API server does not answer"),
        "{cause}"
    );
    assert!(!source.got_through());
    let kinds: Vec<&flux_reporter_report::Failure> =
        o.failures.iter().filter(|f| f.kind.is_some()).collect();
    assert!(!kinds.is_empty(), "{:?}", o.failures);
    // The lists in flight timed out (or were abandoned once another found the
    // server mute); every kind after them was not tried.
    for f in &kinds {
        assert!(
            f.error.contains(NO_ANSWER)
                || f.error
                    .contains("abandoned: the Kubernetes API server does not answer")
                || f.error
                    .contains("not tried: the Kubernetes API server does not answer"),
            "{f}"
        );
    }
    assert!(
        kinds.iter().any(|f| f.error.contains("not tried")),
        "{kinds:?}"
    );
    assert!(o.failed(Section::Sync), "{:?}", o.failures);
}
