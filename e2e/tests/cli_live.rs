//! The one-shot commands against a real API server seeded with the sample dump (`live_cluster`):
//! `report`, `check`, `stats` and `version` read the cluster the way a user's kubectl does. They
//! run with the test's namespace as the Flux namespace (`RUNTIME_NAMESPACE`) and a kubeconfig
//! through the test's fault-injecting proxy, which injects the faults and logs every request.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;
#[allow(dead_code)]
mod live_cluster;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::Env;
use flux_reporter_e2e::Fault;
use live_cluster::Sample;
use serde_json::{Value, json};

struct Cluster {
    env: Env,
    /// The admin kubeconfig through the proxy.
    kubeconfig: PathBuf,
    sample: Sample,
}

async fn cluster(test: &str) -> Cluster {
    let env = Env::new(test).await;
    let sample = live_cluster::seed_sample(&env).await;
    let kubeconfig = env.proxied_kubeconfig(&env.kubeconfig).await;
    Cluster {
        env,
        kubeconfig,
        sample,
    }
}

impl Cluster {
    /// The path of the sample's Deployments: the components.
    fn deployments(&self) -> String {
        format!("/apis/apps/v1/namespaces/{}/deployments", self.env.ns)
    }
}

/// Runs the binary off the async runtime (the proxy answers on it).
async fn run(c: &Cluster, args: &[&str]) -> Output {
    let (bin, kubeconfig, ns) = (
        flux_reporter_e2e::fixtures::flux_reporter_bin(),
        c.kubeconfig.clone(),
        c.env.ns.clone(),
    );
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUNTIME_NAMESPACE", ns)
            .env_remove("SYNC_NAME")
            .env_remove("PAGE_SIZE")
            .env_remove("LIST_CONCURRENCY")
            .output()
            .expect("flux-reporter runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_the_live_cluster_and_writes_nothing() {
    let c = cluster("report_reads_the_live_cluster").await;
    let proxy = c.env.proxy().await;
    proxy.clear_requests();
    let out = run(&c, &["report", "-o", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["spec"]["distribution"]["version"], "v2.7.3");
    assert_eq!(report["spec"]["cluster"]["nodes"], c.sample.nodes);
    assert_eq!(
        report["spec"]["sync"]["source"],
        "https://github.com/example-org/fleet-infra.git"
    );
    assert_eq!(report["status"]["conditions"][0]["reason"], "Succeeded");
    // Every request it made went through the proxy, and none of them writes.
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.path == c.deployments()),
        "{requests:#?}"
    );
    let writes: Vec<_> = requests.iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "report must not write: {writes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_against_the_cluster_exits_1_and_names_the_unready_component() {
    let c = cluster("check_against_the_cluster_exits_1").await;
    let out = run(&c, &["check"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("image-automation-controller"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_what_it_could_not_read() {
    let c = cluster("check_names_what_it_could_not_read").await;
    let faults = c.env.proxy().await.faults();
    let forbidden = faults.inject(Fault::status(403).path_prefix(&c.deployments()));
    let out = run(&c, &["check"]).await;
    assert!(faults.hits(forbidden) > 0);
    // Failing reconcilers in the sample still make it unhealthy; the
    // unreadable components are listed as such.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("? could not read components"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_version_read_the_fluxreport_in_the_cluster() {
    let c = cluster("stats_and_version_read_the_fluxreport").await;
    let ns = &c.env.ns;
    for command in ["stats", "version"] {
        let out = run(&c, &[command]).await;
        assert_eq!(out.status.code(), Some(2), "{command}: no FluxReport yet");
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: FluxReport {ns}/flux not found: is flux-reporter running in {ns}? (or \
                 use --from FILE)\n"
            ),
            "{command}"
        );
    }

    // A report as the operator writes it: the object, then its status through the status
    // subresource.
    let report = run(&c, &["report", "-o", "json"]).await;
    assert!(report.status.success(), "{}", text(&report.stderr));
    let mut obj: Value = serde_json::from_slice(&report.stdout).unwrap();
    obj["metadata"] = json!({"name": "flux"});
    c.env.apply(obj).await;

    let out = run(&c, &["stats"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = text(&out.stdout);
    assert!(stats.starts_with("RECONCILERS"), "{stats}");
    assert!(
        stats.lines().any(|l| l.starts_with("GitRepository")),
        "{stats}"
    );

    let out = run(&c, &["version"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = text(&out.stdout);
    assert!(
        v.contains("server: v0.1.0") && v.contains("distribution: v2.7.3"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_report_is_printed_and_exits_1_naming_what_could_not_be_read() {
    let c = cluster("an_incomplete_report_is_printed").await;
    c.env
        .proxy()
        .await
        .faults()
        .inject(Fault::status(403).path_prefix(&c.deployments()));
    let out = run(&c, &["report", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is printed");
    let ready = report["status"]["conditions"][0].clone();
    assert_eq!(ready["reason"], "ReportIncomplete", "{ready}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Report incomplete, could not read: components: "),
        "{message}"
    );
    assert!(!message.contains("last good values"), "{message}");
    assert!(
        text(&out.stderr).contains("warning: components: "),
        "{}",
        text(&out.stderr)
    );
}

/// A printed report with what differs from run to run (the run's duration and
/// the condition's transition time) masked, every other byte kept.
fn masked(stdout: &[u8]) -> String {
    text(stdout)
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("lastTransitionTime:") {
                return "lastTransitionTime: <masked>".to_string();
            }
            match line.split_once("Reporting finished in ") {
                Some((head, tail)) => {
                    let rest = tail.trim_start_matches(|c: char| {
                        c.is_ascii_alphanumeric() || c == '.' || c == 'µ'
                    });
                    format!("{head}Reporting finished in <duration>{rest}")
                }
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_with_list_concurrency_1_and_4_prints_the_same_bytes() {
    let c = cluster("report_with_list_concurrency_1_and_4").await;
    let proxy = c.env.proxy().await;
    // Pages of 2: every kind of the sample spans several pages.
    let one = run(
        &c,
        &["report", "--page-size", "2", "--list-concurrency", "1"],
    )
    .await;
    let four = run(
        &c,
        &["report", "--page-size", "2", "--list-concurrency", "4"],
    )
    .await;
    assert!(one.status.success(), "{}", text(&one.stderr));
    assert!(four.status.success(), "{}", text(&four.stderr));
    assert!(text(&one.stdout).contains("Reporting finished in "));
    assert_eq!(masked(&four.stdout), masked(&one.stdout));
    assert_eq!(text(&four.stderr), text(&one.stderr));
    let continued = proxy
        .requests()
        .iter()
        .filter(|r| {
            r.query_param("limit").as_deref() == Some("2") && r.query_param("continue").is_some()
        })
        .count();
    assert!(continued > 0, "the lists were read page by page");
}
