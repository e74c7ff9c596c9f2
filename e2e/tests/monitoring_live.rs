//! Monitoring proven with the real programs: the operator runs against the real API server of
//! `E2E_KUBECONFIG` (`hack/envtest.sh start` gives one) with the e2e fixtures (and
//! `--legacy-metrics`); a real Prometheus on loopback scrapes it with
//! the shipped ServiceMonitor's settings in a plain `scrape_configs` job (no `namespace` or `pod`
//! target label, as without the Prometheus Operator) and loads the shipped rules (a test copy
//! with `for:` shortened); every PromQL expression of every dashboard panel is evaluated through the HTTP
//! API, the key panels give the fixture's values; the not-ready alert fires for the failing
//! Kustomization, a real Alertmanager with the example route delivers it to a local webhook, and
//! the resolved notification follows once the Kustomization recovers; with kustomize-controller
//! down, the controller's alert pages, named by the Flux namespace, and the Kustomization's is
//! inhibited. The queries people write
//! today (`fixtures/seed-queries.yaml`) are evaluated too. Every inhibition of the example is
//! checked in a real Alertmanager on alerts posted to its API: each controller's alert holds back
//! the alerts of the kinds it reconciles, and only those (and the sync's, for the controllers a
//! sync depends on).
//!
//! Needs `prometheus` and `prometheus-alertmanager` (Debian; `.ci/run` installs them) and the
//! binary (`cargo build -p flux-reporter`).

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::env::{documents, fixture, unique};
use common::process::free_addr;
use common::prom::{http_get, http_get_accepting, http_post_json};
use common::{Env, OperatorOpts, ensure, eventually};
use flux_reporter_e2e::Receiver;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
/// How long a state that is not yet as expected may take to become so.
const SETTLE: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn program(name: &str) -> PathBuf {
    let p = Path::new("/usr/bin").join(name);
    assert!(
        p.exists(),
        "{} is not installed: apt-get install prometheus prometheus-alertmanager (.ci/run does it)",
        p.display()
    );
    p
}

/// A child process killed on drop; its log is printed when the test panics.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create a log");
        let err = out.try_clone().expect("clone the log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name, child, log }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("----- {} log -----\n{}\n-----", self.name, tail.join("\n"));
        }
    }
}

async fn wait_ready(addr: std::net::SocketAddr, what: &str) {
    eventually(what, WAIT, || async move {
        let (code, body) = http_get(addr, "/-/ready").await?;
        ensure(code == 200, || format!("{code} {body}"))
    })
    .await;
}

/// An instant query: the result vector, or the API's error (a parse error, for instance).
async fn query(prom: std::net::SocketAddr, expr: &str) -> Result<Vec<Value>, String> {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={q}")).await?;
    let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{code}: {e}: {body}"))?;
    if doc["status"] != "success" {
        return Err(format!("{expr}: {code} {}", doc["error"]));
    }
    Ok(doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A dashboard expression with Grafana's variables set as a person viewing the fixture would.
fn substitute(expr: &str, ns: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$kind", "Kustomization")
        .replace("$namespace", ns);
    assert!(
        !out.contains('$'),
        "a variable the test does not set: {expr}"
    );
    out
}

/// `label_values(selector, label)` (a Grafana function, not PromQL) as the query Grafana runs.
fn label_values_query(def: &str) -> String {
    let inner = def
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(...): {def}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    format!("group by ({}) ({})", label.trim(), selector.trim())
}

/// The alert rules with every `for:` shortened to 2s (the test copy).
fn fast_rules() -> Value {
    let mut rules = yaml(&root().join("config/monitoring/prometheus/flux-reporter.rules.yaml"));
    for g in rules["groups"].as_array_mut().expect("groups") {
        for r in g["rules"].as_array_mut().expect("rules") {
            if r.get("for").is_some() {
                r["for"] = json!("2s");
            }
        }
    }
    rules
}

/// The example Alertmanager configuration, unchanged but for the receivers (each a webhook to
/// the local receiver; the payload names the receiver) and the timers (seconds, not minutes).
fn test_alertmanager_config(webhook: &str) -> Value {
    let mut am = yaml(&root().join("config/monitoring/alertmanager/alertmanager.yaml"));
    am["route"]["group_wait"] = json!("1s");
    am["route"]["group_interval"] = json!("1s");
    for r in am["receivers"].as_array_mut().expect("receivers") {
        let name = r["name"].clone();
        *r = json!({"name": name, "webhook_configs": [{"url": webhook, "send_resolved": true}]});
    }
    am
}

/// The webhook deliveries of `alertname` for the object `name` with this status.
fn deliveries<'a>(posts: &'a [Value], alertname: &str, name: &str, status: &str) -> Vec<&'a Value> {
    posts
        .iter()
        .filter(|p| {
            p["status"] == status
                && p["alerts"].as_array().into_iter().flatten().any(|a| {
                    a["labels"]["alertname"] == alertname
                        && a["labels"]["name"] == name
                        && a["status"] == status
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_dashboards_draw_and_an_alert_is_delivered_then_resolved() {
    let env = Env::with_flux("monitoring_live").await;
    let ns = env.ns.clone();
    let mut opts = OperatorOpts::every("1s");
    opts.args.push("--legacy-metrics".into());
    let op = env.start_operator(opts).await;
    let webhook = Receiver::start().await.expect("start the webhook receiver");

    // Alertmanager with the example route.
    let am_addr = free_addr();
    let am_config = env.dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        test_alertmanager_config(&webhook.url()).to_string(),
    )
    .unwrap();
    let _am = Daemon::spawn(
        "alertmanager",
        Command::new(program("prometheus-alertmanager"))
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", env.dir.join("am").display()))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address="),
        &env.dir,
    );

    // A plain Prometheus: the rules of config/monitoring/prometheus and a `scrape_configs` job
    // with the ServiceMonitor's endpoint settings (interval shortened), the target and nothing
    // else: none of the `namespace` and `pod` target labels the Prometheus Operator's discovery
    // adds, which no alert may depend on.
    let sm = yaml(&root().join("config/monitoring/servicemonitor.yaml"));
    let endpoint = &sm["spec"]["endpoints"][0];
    let rules = env.dir.join("rules.yml");
    std::fs::write(&rules, fast_rules().to_string()).unwrap();
    let prom_config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_addr.to_string()]}]}]},
        "scrape_configs": [{
            // The job name the Prometheus Operator gives it (the Service's) and the README's.
            "job_name": sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            "metrics_path": endpoint["path"],
            "honor_labels": endpoint["honorLabels"],
            "scrape_timeout": "1s",
            "static_configs": [{"targets": [op.metrics_addr.to_string()]}],
        }],
    });
    let prom_file = env.dir.join("prometheus.yml");
    std::fs::write(&prom_file, prom_config.to_string()).unwrap();
    let prom = free_addr();
    let _prometheus = Daemon::spawn(
        "prometheus",
        Command::new(program("prometheus"))
            .arg(format!("--config.file={}", prom_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                env.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom}")),
        &env.dir,
    );
    wait_ready(am_addr, "Alertmanager ready").await;
    wait_ready(prom, "Prometheus ready").await;

    // Scraped, with the fixture's twelve objects and the legacy series keeping `namespace`.
    eventually("the scrape of the fixtures", WAIT, || async {
        op.assert_alive();
        let up = query(prom, r#"up{job="flux-reporter"} == 1"#).await?;
        ensure(up.len() == 1, || format!("up: {up:?}"))?;
        ensure(
            up[0]["metric"].get("namespace").is_none() && up[0]["metric"].get("pod").is_none(),
            || format!("target labels: {up:?}"),
        )?;
        let objects = query(
            prom,
            &format!(r#"flux_resource_info{{exported_namespace="{ns}"}}"#),
        )
        .await?;
        ensure(objects.len() == 12, || format!("{} objects", objects.len()))?;
        let legacy = query(
            prom,
            &format!(r#"gotk_suspend_status{{namespace="{ns}"}} == 1"#),
        )
        .await?;
        ensure(legacy.len() == 2, || format!("suspended: {legacy:?}"))
    })
    .await;

    check_dashboards(prom, &ns).await;
    check_seed_queries(prom).await;

    // The failing Kustomization `infra`: firing in Prometheus, then delivered to the chat route.
    eventually("FluxObjectNotReady firing for infra", WAIT, || async {
        let firing = query(
            prom,
            r#"ALERTS{alertname="FluxObjectNotReady", alertstate="firing", name="infra"}"#,
        )
        .await?;
        ensure(firing.len() == 1, || format!("{firing:?}"))
    })
    .await;
    let webhook = &webhook;
    let post = eventually("the firing notification", WAIT, || async move {
        let posts = webhook.posts();
        let found = deliveries(&posts, "FluxObjectNotReady", "infra", "firing");
        ensure(!found.is_empty(), || {
            format!("{} posts: {posts:#?}", posts.len())
        })?;
        Ok(found[0].clone())
    })
    .await;
    assert_eq!(
        post["receiver"], "flux-chat",
        "a warning goes to the chat route"
    );
    assert_eq!(
        post["groupLabels"],
        json!({"alertname": "FluxObjectNotReady", "namespace": ns})
    );
    let alert = &post["alerts"][0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "FluxObjectNotReady", "severity": "warning", "kind": "Kustomization",
               "name": "infra", "namespace": ns, "exported_namespace": ns,
               "reason": "ReconciliationFailed"})
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://github.com/flux-reporter/flux-reporter/blob/main/docs/runbooks.md#fluxobjectnotready"
    );
    assert_eq!(
        alert["annotations"]["summary"],
        format!("Kustomization {ns}/infra is not ready (ReconciliationFailed)")
    );
    // Waiting on a dependency and suspended objects raise nothing.
    let quiet = query(
        prom,
        r#"ALERTS{alertname="FluxObjectNotReady", name=~"apps|redis"}"#,
    )
    .await
    .unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");

    // infra recovers: the alert resolves and the resolved notification follows.
    let broken_infra = documents(&fixture("flux-objects.yaml"), &[("NAMESPACE", &ns)])
        .into_iter()
        .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == "infra")
        .expect("infra in the fixtures");
    let mut infra = broken_infra.clone();
    infra["status"]["conditions"] = json!([{
        "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
        "message": "Applied revision: refs/heads/main@sha1:4b1d9c0a2f3e5d6c7b8a9f0e1d2c3b4a5f6e7d8c",
        "lastTransitionTime": "2026-11-21T15:00:00Z", "observedGeneration": 1,
    }]);
    env.apply(infra).await;
    eventually("the resolved notification", WAIT, || async move {
        let posts = webhook.posts();
        let found = deliveries(&posts, "FluxObjectNotReady", "infra", "resolved");
        ensure(!found.is_empty(), || format!("{} posts", posts.len()))?;
        ensure(found[0]["receiver"] == "flux-chat", || {
            format!("{:#}", found[0])
        })
    })
    .await;
    let firing = query(
        prom,
        r#"ALERTS{alertname="FluxObjectNotReady", name="infra"}"#,
    )
    .await
    .unwrap();
    assert!(firing.is_empty(), "still pending or firing: {firing:?}");

    // kustomize-controller down, then infra failing again: the controller pages, and the
    // Kustomization's alert is held back by the example's inhibition. (The controller alert is
    // waited for first: the two rule groups are evaluated independently, so breaking both at
    // once would race the inhibition source against its target.)
    env.set_component_ready("kustomize-controller", false).await;
    let post = eventually("the component alert paged", WAIT, || async move {
        let posts = webhook.posts();
        let found = deliveries(
            &posts,
            "FluxComponentNotReady",
            "kustomize-controller",
            "firing",
        );
        ensure(!found.is_empty(), || format!("{} posts", posts.len()))?;
        Ok(found[0].clone())
    })
    .await;
    assert_eq!(
        post["receiver"], "flux-pager",
        "a critical alert goes to the pager"
    );
    // Named by the Flux namespace, with no target label to take it from.
    assert_eq!(
        post["groupLabels"],
        json!({"alertname": "FluxComponentNotReady", "namespace": ns})
    );
    let alert = &post["alerts"][0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "FluxComponentNotReady", "severity": "critical",
               "name": "kustomize-controller", "namespace": ns, "exported_namespace": ns})
    );
    assert_eq!(
        alert["annotations"]["summary"],
        format!("Flux component Deployment {ns}/kustomize-controller is not ready")
    );
    env.apply(broken_infra).await;
    eventually(
        "infra's alert inhibited in Alertmanager",
        WAIT,
        || async move {
            let (code, body) =
                http_get_accepting(am_addr, "/api/v2/alerts", "application/json").await?;
            let alerts: Value = serde_json::from_str(&body).map_err(|e| format!("{code}: {e}"))?;
            let infra = alerts
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| {
                    a["labels"]["alertname"] == "FluxObjectNotReady"
                        && a["labels"]["name"] == "infra"
                })
                .ok_or_else(|| {
                    format!("no FluxObjectNotReady for infra in Alertmanager yet: {alerts:#}")
                })?;
            ensure(
                infra["status"]["state"] == "suppressed"
                    && infra["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|v| !v.is_empty()),
                || format!("{:#}", infra["status"]),
            )
        },
    )
    .await;
    let posts = webhook.posts();
    let refired = deliveries(&posts, "FluxObjectNotReady", "infra", "firing");
    assert_eq!(
        refired.len(),
        1,
        "only the first firing was delivered: {refired:#?}"
    );

    // The report series FluxReportStale and FluxReportIncomplete use, as scraped: the Flux
    // namespace on each, the interval of this run (1s), and a fresh complete report.
    for series in [
        "flux_report_interval_seconds",
        "flux_report_last_run_timestamp_seconds",
        "flux_report_last_success_timestamp_seconds",
        "flux_report_component_ready",
        "flux_report_sync_ready",
    ] {
        let rows = query(prom, series).await.unwrap();
        assert!(!rows.is_empty(), "{series}: none");
        for r in &rows {
            assert_eq!(r["metric"]["exported_namespace"], ns, "{series}: {r}");
        }
    }
    let interval = query(prom, "flux_report_interval_seconds").await.unwrap();
    assert_eq!(value(&interval[0]), 1.0, "{interval:?}");
    let stale = query(
        prom,
        r#"ALERTS{alertname=~"FluxReportStale|FluxReportIncomplete"}"#,
    )
    .await
    .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
}

/// The Flux controllers (their Deployment names) and the kinds each reconciles, after
/// https://fluxcd.io/flux/components/ and https://fluxcd.io/flux/components/source/externalartifacts/
/// (ExternalArtifacts are produced by source-watcher's ArtifactGenerators).
const CONTROLLERS: [(&str, &[&str]); 7] = [
    (
        "source-controller",
        &[
            "GitRepository",
            "OCIRepository",
            "Bucket",
            "HelmRepository",
            "HelmChart",
        ],
    ),
    ("kustomize-controller", &["Kustomization"]),
    ("helm-controller", &["HelmRelease"]),
    (
        "notification-controller",
        &["Alert", "Provider", "Receiver"],
    ),
    (
        "image-reflector-controller",
        &["ImageRepository", "ImagePolicy"],
    ),
    ("image-automation-controller", &["ImageUpdateAutomation"]),
    ("source-watcher", &["ArtifactGenerator", "ExternalArtifact"]),
];

/// The controllers whose outage makes the cluster sync (a Kustomization on a GitRepository or
/// OCIRepository) fail.
const SYNC_CONTROLLERS: [&str; 2] = ["source-controller", "kustomize-controller"];

/// The alerts of one Alertmanager, keyed by their `case` label: the state (`active` or
/// `suppressed`).
async fn alert_states(am: std::net::SocketAddr) -> Result<BTreeMap<String, String>, String> {
    let (code, body) = http_get_accepting(am, "/api/v2/alerts", "application/json").await?;
    let alerts: Value = serde_json::from_str(&body).map_err(|e| format!("{code}: {e}: {body}"))?;
    Ok(alerts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["labels"]["case"].as_str().unwrap_or_default().to_string(),
                a["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

/// The example's inhibitions in a real Alertmanager, on alerts posted to its API as Prometheus
/// would send them. One `cluster` per controller outage (`equal: [cluster]` keeps them apart):
/// its FluxComponentNotReady, then the not-ready alert of an object of every kind, the sync's
/// alert in the same Flux namespace and in another one. An object alert is held back exactly
/// when the controller down reconciles its kind; the sync's exactly when the controller is one
/// the sync depends on and runs in the sync's namespace. flux-reporter down holds back the
/// stale-report alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_inhibits_each_alert_by_the_controller_it_depends_on_only() {
    let dir = std::env::temp_dir().join(unique("flux-reporter-inhibitions"));
    std::fs::create_dir_all(&dir).unwrap();
    let webhook = Receiver::start().await.expect("start the webhook receiver");
    let am_addr = free_addr();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        test_alertmanager_config(&webhook.url()).to_string(),
    )
    .unwrap();
    let am = Daemon::spawn(
        "alertmanager",
        Command::new(program("prometheus-alertmanager"))
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address="),
        &dir,
    );
    wait_ready(am_addr, "Alertmanager ready").await;

    let alert = |case: String, labels: Value| {
        let mut labels = labels;
        labels["case"] = json!(case);
        json!({"labels": labels, "annotations": {"summary": case}})
    };
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    let mut want = BTreeMap::new();
    for (down, _) in CONTROLLERS {
        sources.push(alert(
            format!("{down} down"),
            json!({"alertname": "FluxComponentNotReady", "severity": "critical",
                   "cluster": down, "namespace": "flux-system",
                   "exported_namespace": "flux-system", "name": down}),
        ));
        for (controller, kinds) in CONTROLLERS {
            for kind in kinds {
                let alertname = if controller == "source-controller" {
                    "FluxSourceFetchFailed"
                } else {
                    "FluxObjectNotReady"
                };
                let case = format!("{down} down: {alertname} {kind}");
                targets.push(alert(
                    case.clone(),
                    json!({"alertname": alertname, "severity": "warning", "cluster": down,
                           "kind": kind, "namespace": "apps", "exported_namespace": "apps",
                           "name": "app", "reason": "Failed"}),
                ));
                want.insert(case, held_back(controller == down));
            }
        }
        for ns in ["flux-system", "flux-staging"] {
            let case = format!("{down} down: FluxSyncFailed in {ns}");
            targets.push(alert(
                case.clone(),
                json!({"alertname": "FluxSyncFailed", "severity": "critical", "cluster": down,
                       "namespace": ns, "exported_namespace": ns,
                       "id": format!("kustomization/{ns}")}),
            ));
            want.insert(
                case,
                held_back(SYNC_CONTROLLERS.contains(&down) && ns == "flux-system"),
            );
        }
    }
    sources.push(alert(
        "flux-reporter down".into(),
        json!({"alertname": "FluxReporterDown", "severity": "warning", "cluster": "reporter",
               "job": "flux-reporter", "namespace": "flux-system", "pod": "flux-reporter-a",
               "instance": "10.0.0.7:8080"}),
    ));
    for (alertname, inhibited) in [("FluxReportStale", true), ("FluxReportIncomplete", false)] {
        let case = format!("flux-reporter down: {alertname}");
        targets.push(alert(
            case.clone(),
            json!({"alertname": alertname, "severity": "warning", "cluster": "reporter",
                   "namespace": "flux-system", "exported_namespace": "flux-system"}),
        ));
        want.insert(case, held_back(inhibited));
    }

    // The sources first: the inhibitor learns of alerts asynchronously, and Alertmanager's API
    // works out each alert's state from the inhibitions (and silences) when it is asked.
    let (code, body) = http_post_json(am_addr, "/api/v2/alerts", &json!(sources))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let n = sources.len();
    eventually("the controller alerts", WAIT, || async move {
        let states = alert_states(am_addr).await?;
        let active = states.values().filter(|s| *s == "active").count();
        ensure(active == n, || format!("{states:#?}"))
    })
    .await;
    let (code, body) = http_post_json(am_addr, "/api/v2/alerts", &json!(targets))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let want = &want;
    eventually(
        "each alert held back or not as expected",
        SETTLE,
        || async move {
            let states = alert_states(am_addr).await?;
            let wrong: Vec<String> = want
                .iter()
                .filter(|(case, state)| states.get(*case) != Some(*state))
                .map(|(case, state)| format!("{case}: {:?} (want {state})", states.get(case)))
                .collect();
            ensure(wrong.is_empty(), || {
                format!("{} wrong:\n{}", wrong.len(), wrong.join("\n"))
            })
        },
    )
    .await;
    // Kept when the test fails (the log is printed then).
    drop(am);
    let _ = std::fs::remove_dir_all(&dir);
}

fn held_back(inhibited: bool) -> String {
    if inhibited { "suppressed" } else { "active" }.to_string()
}

/// Every panel expression and variable query of both dashboards parses and runs; the key panels
/// show the fixture.
async fn check_dashboards(prom: std::net::SocketAddr, ns: &str) {
    let mut results = BTreeMap::new();
    for file in ["flux-overview.json", "flux-kind.json"] {
        let path = root().join("config/monitoring/dashboards").join(file);
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for v in board["templating"]["list"].as_array().unwrap() {
            if let Some(def) = v["definition"].as_str() {
                let rows = query(prom, &substitute(&label_values_query(def), ns))
                    .await
                    .unwrap_or_else(|e| panic!("{file} variable {}: {e}", v["name"]));
                assert!(
                    !rows.is_empty(),
                    "{file} variable {} has no values",
                    v["name"]
                );
            }
        }
        for panel in board["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                let expr = substitute(t["expr"].as_str().unwrap(), ns);
                let rows = query(prom, &expr)
                    .await
                    .unwrap_or_else(|e| panic!("{file} panel {}: {e}", panel["title"]));
                let key = format!(
                    "{}/{}",
                    panel["title"].as_str().unwrap(),
                    t["refId"].as_str().unwrap()
                );
                results.insert(key, rows);
            }
        }
    }
    let one = |key: &str| -> f64 {
        let rows = &results[key];
        assert_eq!(rows.len(), 1, "{key}: {rows:?}");
        value(&rows[0])
    };
    let by = |key: &str, label: &str| -> Vec<(String, f64)> {
        results[key]
            .iter()
            .map(|r| {
                (
                    r["metric"][label].as_str().unwrap_or_default().to_string(),
                    value(r),
                )
            })
            .collect()
    };
    // See fixtures/flux-objects.yaml: broken GitRepository and infra Kustomization fail.
    assert_eq!(one("Failing Flux objects/A"), 2.0);
    assert_eq!(one("Components not ready/A"), 0.0);
    assert_eq!(one("Cluster sync ready/A"), 1.0);
    assert_eq!(one("FluxInstance ready/A"), 1.0);
    assert!(one("Report age/A") < 30.0, "{:?}", results["Report age/A"]);
    let running = by("Reconcilers per kind/A", "kind");
    assert!(
        running.contains(&("Kustomization".into(), 3.0)),
        "{running:?}"
    );
    assert!(
        running.contains(&("GitRepository".into(), 3.0)),
        "{running:?}"
    );
    let failing: BTreeSet<(String, String)> = results["Failing resources/A"]
        .iter()
        .map(|r| {
            let m = &r["metric"];
            (
                m["kind"].as_str().unwrap().into(),
                m["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        failing,
        BTreeSet::from([
            ("GitRepository".into(), "broken".into()),
            ("Kustomization".into(), "infra".into())
        ])
    );
    let storage = by("Artifact storage/A", "kind");
    assert!(
        storage.contains(&("GitRepository".into(), 3072.0)),
        "{storage:?}"
    );
    assert!(
        storage.contains(&("OCIRepository".into(), 512.0)),
        "{storage:?}"
    );
    assert_eq!(results["Components/A"].len(), 4);
    assert_eq!(
        by("Cluster sync/A", "id"),
        vec![(format!("kustomization/{ns}"), 1.0)]
    );
    assert_eq!(
        results["$kind objects/A"].len(),
        3,
        "the three Kustomizations"
    );
    assert_eq!(one("Failing/A"), 1.0);
}

/// The queries of `fixtures/seed-queries.yaml`: those said to work give what they say on the
/// fixture; the replacements too, and the README shows each replacement and each dead end.
async fn check_seed_queries(prom: std::net::SocketAddr) {
    let list = yaml(&root().join("e2e/tests/fixtures/seed-queries.yaml"));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for q in list["queries"].as_array().unwrap() {
        let text = q["query"].as_str().unwrap();
        let status = q["status"].as_str().unwrap();
        let expr = match status {
            "works" => text,
            "controllers" => {
                query(prom, text)
                    .await
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                continue;
            }
            "replaced" => {
                let r = q["replacement"].as_str().unwrap();
                assert!(readme.contains(r), "README lacks the replacement {r}");
                r
            }
            "none" => {
                assert!(q["why"].as_str().is_some_and(|w| !w.is_empty()), "{text}");
                assert!(readme.contains(text), "README lacks {text}");
                continue;
            }
            other => panic!("{text}: status {other}"),
        };
        let rows = query(prom, expr)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        match q["fixture"].as_str() {
            Some("nonempty") => assert!(!rows.is_empty(), "{expr} gives nothing"),
            Some("empty") => assert!(rows.is_empty(), "{expr} gives {rows:?}"),
            other => panic!("{text}: fixture {other:?}"),
        }
    }
}
