//! The one-shot commands against a live API server (the double): `report`,
//! `check`, `stats` and `version` read the cluster the way a user's kubectl does.

use std::path::PathBuf;
use std::process::{Command, Output};

use flux_reporter_e2e::apiserver::ApiServer;
use serde_json::{Value, json};

struct Cluster {
    server: ApiServer,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn cluster() -> Cluster {
    let server = ApiServer::start().await.unwrap();
    for crd in flux_reporter_api::crds::all() {
        server
            .insert(serde_json::to_value(&crd.crd).unwrap())
            .unwrap();
    }
    server
        .insert_many(flux_reporter_e2e::fixtures::sample_dump_objects())
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "flux-reporter-cli-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    Cluster {
        server,
        kubeconfig,
        _dir: TempDir(dir),
    }
}

/// Run the binary off the async runtime (the double answers on it).
async fn run(c: &Cluster, args: &[&str]) -> Output {
    let (bin, kubeconfig) = (
        flux_reporter_e2e::fixtures::flux_reporter_bin(),
        c.kubeconfig.clone(),
    );
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUNTIME_NAMESPACE")
            .output()
            .expect("flux-reporter runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn report_reads_the_live_cluster_and_writes_nothing() {
    let c = cluster().await;
    let before = c.server.resource_version();
    let out = run(&c, &["report", "-o", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["spec"]["distribution"]["version"], "v2.7.3");
    assert_eq!(report["spec"]["cluster"]["nodes"], 3);
    assert_eq!(
        report["spec"]["sync"]["source"],
        "https://github.com/example-org/fleet-infra.git"
    );
    assert_eq!(report["status"]["conditions"][0]["reason"], "Succeeded");
    assert_eq!(c.server.resource_version(), before, "report must not write");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_against_the_cluster_exits_1_and_names_the_unready_component() {
    let c = cluster().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn check_names_what_it_could_not_read() {
    let c = cluster().await;
    c.server.faults().inject(
        flux_reporter_e2e::apiserver::Fault::status(403)
            .path_prefix("/apis/apps/v1/namespaces/flux-system/deployments"),
    );
    let out = run(&c, &["check"]).await;
    // Failing reconcilers in the sample still make it unhealthy; the
    // unreadable components are listed as such.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("? could not read components"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_and_version_read_the_fluxreport_in_the_cluster() {
    let c = cluster().await;
    for command in ["stats", "version"] {
        let out = run(&c, &[command]).await;
        assert_eq!(out.status.code(), Some(2), "{command}: no FluxReport yet");
        assert_eq!(
            text(&out.stderr),
            "error: FluxReport flux-system/flux not found: is flux-reporter running in \
             flux-system? (or use --from FILE)\n",
            "{command}"
        );
    }

    // A report as the operator writes it.
    let report = run(&c, &["report", "-o", "json"]).await;
    let mut obj: Value = serde_json::from_slice(&report.stdout).unwrap();
    obj["metadata"] = json!({"name": "flux", "namespace": "flux-system"});
    c.server.insert(obj).unwrap();

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

#[tokio::test(flavor = "multi_thread")]
async fn an_incomplete_report_is_printed_and_exits_1_naming_what_could_not_be_read() {
    let c = cluster().await;
    c.server.faults().inject(
        flux_reporter_e2e::apiserver::Fault::status(403)
            .path_prefix("/apis/apps/v1/namespaces/flux-system/deployments"),
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn report_with_list_concurrency_1_and_4_prints_the_same_bytes() {
    let c = cluster().await;
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
}
