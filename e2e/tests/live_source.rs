//! The live source against the API server double: pagination, a forbidden
//! kind, an expired continue token, throttling, an unreachable server, a mute
//! path or server, the run deadline, and the same report as from a dump of the
//! same objects.

use std::time::{Duration, Instant};

use flux_reporter_api::OperatorInfo;
use flux_reporter_e2e::MuteProxy;
use flux_reporter_e2e::apiserver::{ApiServer, Fault};
use flux_reporter_report::source::dump::DumpSource;
use flux_reporter_report::source::live::{LiveConfig, LiveSource};
use flux_reporter_report::{Options, Outcome, Section, compute};

async fn seeded() -> ApiServer {
    let server = ApiServer::start().await.unwrap();
    for obj in flux_reporter_e2e::fixtures::sample_dump_objects() {
        server.insert(obj).unwrap();
    }
    server
}

fn operator() -> OperatorInfo {
    OperatorInfo {
        api_version: "fluxcd.controlplane.io/v1".into(),
        version: "v0.0.0-test".into(),
        platform: "linux/amd64".into(),
    }
}

fn live(server_url: &str, page_size: u32) -> LiveSource {
    live_with(
        server_url,
        LiveConfig {
            page_size,
            backoff: Duration::from_millis(20),
            ..LiveConfig::default()
        },
    )
}

fn live_with(server_url: &str, config: LiveConfig) -> LiveSource {
    let kube_config = kube::Config::new(server_url.parse().unwrap());
    let client = kube::Client::try_from(kube_config).unwrap();
    LiveSource::new(client, config)
}

/// One-second request and probe timeouts, so that silence costs little.
fn impatient() -> LiveConfig {
    LiveConfig {
        request_timeout: Duration::from_secs(1),
        probe_timeout: Duration::from_secs(1),
        backoff: Duration::from_millis(20),
        ..LiveConfig::default()
    }
}

async fn run_live(server: &ApiServer, page_size: u32) -> Outcome {
    compute(
        &live(&server.url(), page_size),
        &Options::new("flux-system", operator()),
    )
    .await
}

fn entry(o: &Outcome, kind: &str) -> (i64, i64, i64) {
    let e = o
        .spec
        .reconcilers
        .iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"));
    (e.stats.running, e.stats.failing, e.stats.suspended)
}

#[tokio::test]
async fn live_report_equals_the_dump_report_of_the_same_objects() {
    let server = seeded().await;
    let live = run_live(&server, 7).await;
    assert!(live.failures.is_empty(), "{:?}", live.failures);
    let dump = DumpSource::load(&flux_reporter_e2e::fixtures::sample_dump_path()).unwrap();
    let from_dump = compute(&dump, &Options::new("flux-system", operator())).await;

    let (mut a, mut b) = (live.spec.clone(), from_dump.spec.clone());
    // The server version is the double's own; the node count must agree.
    assert_eq!(
        a.cluster.as_ref().unwrap().nodes,
        b.cluster.as_ref().unwrap().nodes
    );
    a.cluster = None;
    b.cluster = None;
    assert_eq!(a, b);
    assert_eq!(live.resource_rows, from_dump.resource_rows);
    assert_eq!(live.instance_rows, from_dump.instance_rows);
}

#[tokio::test]
async fn lists_are_paginated_with_limit_and_continue() {
    let server = seeded().await;
    server.clear_requests();
    let o = run_live(&server, 2).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(entry(&o, "Kustomization"), (11, 2, 1));
    let ks: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations")
        .collect();
    assert_eq!(ks.len(), 6, "12 Kustomizations in pages of 2");
    assert!(
        ks.iter()
            .all(|r| r.query_param("limit").as_deref() == Some("2"))
    );
    assert!(ks[0].query_param("continue").is_none());
    assert!(ks[1..].iter().all(|r| r.query_param("continue").is_some()));
}

#[tokio::test]
async fn a_forbidden_kind_fails_that_kind_only() {
    let server = seeded().await;
    server.faults().inject(
        Fault::status(403)
            .method("GET")
            .path_prefix("/apis/source.toolkit.fluxcd.io/v1/helmrepositories"),
    );
    let o = run_live(&server, 500).await;
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
    assert_eq!(entry(&o, "GitRepository"), (4, 1, 2));
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

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list_without_double_counting() {
    let server = seeded().await;
    server.faults().expire_next_continue();
    let o = run_live(&server, 3).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    let expired = server.requests().iter().filter(|r| r.status == 410).count();
    assert_eq!(expired, 1, "one continue token expired");
    assert_eq!(o.objects, 61);
    let dump = DumpSource::load(&flux_reporter_e2e::fixtures::sample_dump_path()).unwrap();
    let from_dump = compute(&dump, &Options::new("flux-system", operator())).await;
    assert_eq!(o.spec.reconcilers, from_dump.spec.reconcilers);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let server = seeded().await;
    let throttle = server.faults().inject(
        Fault::status(429)
            .path_prefix("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .retry_after(0)
            .times(1),
    );
    let unavailable = server.faults().inject(
        Fault::status(503)
            .path_prefix("/apis/apps/v1/namespaces/flux-system/deployments")
            .times(1),
    );
    let o = run_live(&server, 500).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(server.faults().hits(throttle), 1);
    assert_eq!(server.faults().hits(unavailable), 1);
    assert_eq!(o.spec.components.len(), 6);
}

#[tokio::test]
async fn a_vanished_crd_fails_its_kind_and_keeps_the_rest() {
    let server = seeded().await;
    server
        .faults()
        .inject(Fault::status(404).path_prefix("/apis/image.toolkit.fluxcd.io/v1/imagepolicies"));
    let o = run_live(&server, 500).await;
    assert_eq!(
        o.failed_kinds().into_iter().collect::<Vec<_>>(),
        ["ImagePolicy"]
    );
    assert_eq!(o.spec.components.len(), 6);
}

#[tokio::test]
async fn an_unreachable_server_fails_every_section_and_says_why() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let o = compute(
        &live(&format!("http://127.0.0.1:{port}"), 500),
        &Options::new("flux-system", operator()),
    )
    .await;
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
}

#[tokio::test]
async fn a_mute_path_fails_only_its_kind_after_the_request_timeout() {
    let server = seeded().await;
    let mute = server
        .faults()
        .inject(Fault::mute().path_prefix("/apis/helm.toolkit.fluxcd.io/v2/helmreleases"));
    let started = Instant::now();
    let source = live_with(&server.url(), impatient());
    let o = compute(&source, &Options::new("flux-system", operator())).await;
    let took = started.elapsed();
    assert_eq!(
        o.failed_kinds().into_iter().collect::<Vec<_>>(),
        ["HelmRelease"],
        "{:?}",
        o.failures
    );
    let msg = o.failures[0].to_string();
    assert!(msg.contains("no answer within 1s"), "{msg}");
    // Not retried: one timeout, then /version tells a slow path from a mute server.
    assert_eq!(server.faults().hits(mute), 1);
    assert_eq!(source.mute_cause(), None);
    assert!(source.got_through());
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(o.spec.components.len(), 6);
}

#[tokio::test]
async fn a_mute_server_fails_the_whole_run_after_one_timeout_and_one_probe() {
    let server = seeded().await;
    let mute = server.faults().inject(Fault::mute());
    let started = Instant::now();
    let source = live_with(&server.url(), impatient());
    let o = compute(&source, &Options::new("flux-system", operator())).await;
    let took = started.elapsed();
    // The first request and the /version probe; everything after is not tried.
    assert_eq!(server.faults().hits(mute), 2);
    assert!(took < Duration::from_secs(4), "{took:?}");
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

#[tokio::test]
async fn the_run_deadline_fails_what_did_not_finish_and_keeps_what_did() {
    let server = seeded().await;
    // Every Flux kind's list is slow; the sections before them are not.
    server
        .faults()
        .inject(Fault::latency(Duration::from_millis(400)).path_contains(".toolkit.fluxcd.io/"));
    let started = Instant::now();
    let source = live_with(&server.url(), impatient()).with_deadline(Duration::from_secs(1));
    let o = compute(&source, &Options::new("flux-system", operator())).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1800), "{took:?}");
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
            .all(|m| m.contains("report run deadline of 1s")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("not tried")),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn a_run_whose_every_request_outlives_the_deadline_did_not_get_through() {
    let server = seeded().await;
    server
        .faults()
        .inject(Fault::latency(Duration::from_secs(3)));
    let source = live_with(&server.url(), impatient()).with_deadline(Duration::from_millis(500));
    let o = compute(&source, &Options::new("flux-system", operator())).await;
    assert!(o.failed(Section::Cluster), "{:?}", o.failures);
    // Slow, not mute: nothing answered, and nothing says the server is dead.
    assert_eq!(source.mute_cause(), None);
    assert!(!source.got_through());
}

/// The sample dump, plus 24 more of each of its Flux objects' kinds: failing,
/// suspended and malformed (a wrong-typed `spec.suspend`) ones among them, so
/// that with small pages every kind spans several pages.
async fn seeded_many() -> ApiServer {
    let server = seeded().await;
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
            let meta = copy["metadata"].as_object_mut().unwrap();
            meta.remove("uid");
            meta.insert(
                "name".into(),
                format!("{}-copy-{i}", kind.to_lowercase()).into(),
            );
            meta.insert("namespace".into(), format!("team-{}", i % 3).into());
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
            extra.push(copy);
        }
    }
    server.insert_many(extra).unwrap();
    server
}

fn concurrent(server: &ApiServer, page_size: u32, list_concurrency: usize) -> LiveSource {
    live_with(
        &server.url(),
        LiveConfig {
            page_size,
            list_concurrency,
            backoff: Duration::from_millis(20),
            ..LiveConfig::default()
        },
    )
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

#[tokio::test]
async fn kinds_listed_four_at_a_time_give_byte_for_byte_the_sequential_report() {
    let server = seeded_many().await;
    let opts = Options::new("flux-system", operator());
    let sequential = compute(&concurrent(&server, 7, 1), &opts).await;
    server.reset_peak_in_flight();
    server.clear_requests();
    let at_four = compute(&concurrent(&server, 7, 4), &opts).await;
    // Many pages: every kind of the sample has 25 or more objects in pages of 7.
    let pages = server
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

#[tokio::test]
async fn with_slow_lists_the_double_sees_as_many_at_once_as_the_concurrency() {
    let server = seeded_many().await;
    // Every Flux kind's page takes 150 ms to answer, so lists that run at the
    // same time are in the double's handlers at the same time.
    server
        .faults()
        .inject(Fault::latency(Duration::from_millis(150)).path_contains(".toolkit.fluxcd.io/"));
    let opts = Options::new("flux-system", operator());
    let mut reports = Vec::new();
    for concurrency in [1, 3, 4] {
        server.reset_peak_in_flight();
        let o = compute(&concurrent(&server, 50, concurrency), &opts).await;
        assert!(o.failures.is_empty(), "{:?}", o.failures);
        assert_eq!(
            server.serving().peak_in_flight,
            concurrency as u64,
            "at most {concurrency} lists at once, and that many"
        );
        reports.push(outcome_bytes(&o));
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn under_concurrency_a_forbidden_kind_and_a_mute_kind_fail_alone() {
    let server = seeded_many().await;
    let clean = compute(
        &concurrent(&server, 7, 1),
        &Options::new("flux-system", operator()),
    )
    .await;
    server.faults().inject(
        Fault::status(403)
            .method("GET")
            .path_prefix("/apis/source.toolkit.fluxcd.io/v1/helmrepositories"),
    );
    let mute = server
        .faults()
        .inject(Fault::mute().path_prefix("/apis/helm.toolkit.fluxcd.io/v2/helmreleases"));
    let source = live_with(
        &server.url(),
        LiveConfig {
            page_size: 7,
            list_concurrency: 4,
            ..impatient()
        },
    );
    let o = compute(&source, &Options::new("flux-system", operator())).await;
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
            .any(|f| f.contains("HelmRelease") && f.contains("no answer within 1s")),
        "{failures:?}"
    );
    // A slow path, not a mute server: one timed-out request, and the rest of the run went on.
    assert_eq!(server.faults().hits(mute), 1);
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
    let server = seeded_many().await;
    server
        .faults()
        .inject(Fault::latency(Duration::from_millis(300)).path_contains(".toolkit.fluxcd.io/"));
    let proxy = MuteProxy::start(&server.addr().to_string()).await.unwrap();
    let source = live_with(
        &format!("http://{}", proxy.addr()),
        LiveConfig {
            page_size: 7,
            list_concurrency: 4,
            ..impatient()
        },
    );
    let opts = Options::new("flux-system", operator());
    let run = compute(&source, &opts);
    // Mute the proxy once four Flux lists are in the double's hands (lists
    // one by one never get there: then it mutes after 10 s and the check
    // below fails).
    let mute_when_busy = async {
        let mut seen = 0;
        for _ in 0..2000 {
            seen = server.serving().in_flight;
            if seen >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.set_muted(true);
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
            f.error.contains("no answer within 1s")
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
