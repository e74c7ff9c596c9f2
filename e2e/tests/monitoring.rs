//! The monitoring kustomization (`config/monitoring`) checked with the real programs: promtool
//! (rule syntax and the unit tests of every alert), amtool (the example Alertmanager
//! configuration and its routes), kubectl kustomize (the render) and the real API server of
//! `E2E_KUBECONFIG` with the Prometheus Operator CRDs (the rendered objects are accepted, strict
//! field validation; `hack/envtest.sh start` gives a server).
//! The scrape, dashboards and alert delivery through a running Prometheus and Alertmanager are in
//! `monitoring_live.rs`.
//!
//! Needs Debian's `prometheus` (promtool) and `prometheus-alertmanager` (amtool), and kubectl:
//! `.ci/run` installs them.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;
mod server_validation;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;
use serde_json::{Value, json};
use server_validation::{ensure_prometheus_operator_crds, strict_apply, strict_apply_all};

const RUNBOOKS: &str = "https://github.com/flux-reporter/flux-reporter/blob/main/docs/runbooks.md#";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn monitoring(rel: &str) -> PathBuf {
    root().join("config/monitoring").join(rel)
}

/// A program from a Debian package; a missing one fails the test with how to install it.
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: apt-get install prometheus prometheus-alertmanager kubectl \
         (.ci/run does it)"
    )
}

/// Runs a command; its stdout and stderr, or a panic with both.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn rules_file() -> PathBuf {
    monitoring("prometheus/flux-reporter.rules.yaml")
}

/// Every alerting rule of the rules file.
fn alerts() -> Vec<Value> {
    yaml(&rules_file())["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

/// `prometheusrule.yaml` as generated from the rules file: a fixed head, then the file from its
/// `groups:` line on, indented under `spec:` (comments and block scalars kept as written).
fn prometheus_rule_text() -> String {
    let rules = std::fs::read_to_string(rules_file()).expect("read the rules file");
    let start = rules
        .find("\ngroups:")
        .expect("the rules file has a top-level `groups:`")
        + 1;
    let mut out = String::from(
        "# Generated from prometheus/flux-reporter.rules.yaml by hack/generate-monitoring.sh:\n\
         # edit that file, then regenerate. e2e/tests/monitoring.rs fails when they drift.\n\
         apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  \
         name: flux-reporter\n  namespace: flux-system\n  labels:\n    \
         app.kubernetes.io/name: flux-reporter\n    app.kubernetes.io/component: monitoring\n\
         spec:\n",
    );
    for line in rules[start..].lines() {
        if !line.is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn prometheus_rule_is_generated_from_the_rules_file() {
    let path = monitoring("prometheusrule.yaml");
    let want = prometheus_rule_text();
    if std::env::var("UPDATE_GENERATED").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("write prometheusrule.yaml");
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} differs from the rules file: run hack/generate-monitoring.sh",
        path.display()
    );
    // Parsed, the PrometheusRule holds the very same groups.
    assert_eq!(yaml(&path)["spec"]["groups"], yaml(&rules_file())["groups"]);
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let promtool = tool("promtool");
    let out = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(rules_file()));
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run(Command::new(&promtool)
        .current_dir(monitoring("prometheus"))
        .args(["test", "rules", "flux-reporter.rules.test.yaml"]));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = yaml(&monitoring("prometheus/flux-reporter.rules.test.yaml"));
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in tests["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = a["alertname"].as_str().expect("alertname").to_string();
            let fires = a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty());
            let entry = cases.entry(name).or_default();
            if fires {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let (firing, quiet) = cases.get(name).copied().unwrap_or_default();
        assert!(
            firing > 0 && quiet > 0,
            "{name}: {firing} firing and {quiet} quiet cases"
        );
    }
}

/// The runbook sections: `## Name` heading to the text up to the next heading.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("docs/runbooks.md")).expect("docs/runbooks.md");
    let mut out = BTreeMap::new();
    for part in text.split("\n## ").skip(1) {
        let (head, body) = part.split_once('\n').unwrap_or((part, ""));
        out.insert(head.trim().to_string(), body.to_string());
    }
    out
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_section() {
    let sections = runbook_sections();
    let mut names = BTreeSet::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "{name} twice");
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let a = &alert["annotations"];
        for key in ["summary", "description"] {
            let text = a[key].as_str().unwrap_or_default();
            assert!(!text.is_empty(), "{name}: no {key}");
        }
        assert!(
            a["description"].as_str().unwrap().contains("reason"),
            "{name}: the description names no reason"
        );
        let url = a["runbook_url"].as_str().unwrap_or_default();
        assert_eq!(
            url,
            format!("{RUNBOOKS}{}", name.to_lowercase()),
            "{name}: runbook_url"
        );
        let section = sections
            .get(name)
            .unwrap_or_else(|| panic!("docs/runbooks.md has no `## {name}`"));
        for must in [
            "**Means**",
            "**Check**",
            "**Fix**",
            "**Silence**",
            "kubectl",
            "flux-reporter check",
        ] {
            assert!(section.contains(must), "runbook of {name} lacks {must:?}");
        }
    }
    let extra: Vec<&String> = sections.keys().filter(|s| !names.contains(*s)).collect();
    assert!(extra.is_empty(), "runbooks of no alert: {extra:?}");
}

#[test]
fn alertmanager_example_is_valid_and_routes_by_severity() {
    let amtool = tool("amtool");
    let config = monitoring("alertmanager/alertmanager.yaml");
    run(Command::new(&amtool).arg("check-config").arg(&config));
    for (labels, receiver) in [
        (
            ["alertname=FluxSyncFailed", "severity=critical"],
            "flux-pager",
        ),
        (
            ["alertname=FluxObjectNotReady", "severity=warning"],
            "flux-chat",
        ),
        (
            ["alertname=FluxObjectSuspended", "severity=info"],
            "default",
        ),
    ] {
        let out = run(Command::new(&amtool)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .args(labels));
        // stdout is the receiver; amtool adds a warning on stderr.
        let first = out.lines().next().unwrap_or_default();
        assert_eq!(first.trim(), receiver, "{labels:?}: {out}");
    }
}

fn dashboards() -> Vec<(String, Value)> {
    ["flux-overview.json", "flux-kind.json"]
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(monitoring(&format!("dashboards/{f}")))
                .expect("read a dashboard");
            (f.to_string(), serde_json::from_str(&text).expect(f))
        })
        .collect()
}

#[test]
fn dashboards_have_a_datasource_variable_uid_tags_and_links_to_each_other() {
    let boards = dashboards();
    let uids: BTreeSet<&str> = boards
        .iter()
        .map(|(_, d)| d["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), boards.len(), "dashboard uids are unique");
    for (file, d) in &boards {
        assert!(
            d["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "flux")),
            "{file}: tags"
        );
        let vars = d["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{file}: no datasource variable"
        );
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        for p in panels {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: {}",
                p["title"]
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {} has no query", p["title"]);
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}");
                assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
        // Each links to the others.
        let text = d.to_string();
        for other in uids.iter().filter(|u| **u != d["uid"]) {
            assert!(
                text.contains(&format!("/d/{other}/")),
                "{file} does not link {other}"
            );
        }
    }
}

fn rendered() -> Vec<Value> {
    let out = Command::new(tool("kubectl"))
        .arg("kustomize")
        .arg(monitoring(""))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize config/monitoring: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("parse the render")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_renders_objects_the_api_server_accepts_with_the_prometheus_operator_crds() {
    let docs = rendered();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "PodMonitor",
            "PrometheusRule",
            "ServiceMonitor"
        ])
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "flux-system", "{}", d["kind"]);
    }
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["name"], "flux-reporter-dashboards");
    for (file, board) in dashboards() {
        let data: Value = serde_json::from_str(cm["data"][&file].as_str().expect(&file)).unwrap();
        assert_eq!(data, board, "{file} in the ConfigMap");
    }
    let sm = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-prom");

    // The real API server of E2E_KUBECONFIG validates them against the Prometheus Operator's
    // CRD schemas (types, enums, patterns, formats, required fields), unknown fields being
    // errors (strict field validation), and stores them as sent.
    let env = Env::new("monitoring_kustomize_render").await;
    ensure_prometheus_operator_crds(&env).await;
    let applied = strict_apply_all(&env, "config/monitoring", &docs, false).await;
    for (d, applied) in docs.iter().zip(&applied) {
        let (kind, name) = (&d["kind"], &d["metadata"]["name"]);
        let body = if kind == "ConfigMap" { "data" } else { "spec" };
        assert_eq!(applied[body], d[body], "{kind} {name} was changed");
    }
    // The checks are the server's own: a misspelt field and a value outside the schema's enum
    // are refused, with the field's path. (Server-side apply refuses a field outside the schema
    // as "field not declared in schema", with a 500 for now:
    // https://github.com/kubernetes/kubernetes/issues/139253.)
    let mut misspelt = sm.clone();
    misspelt["spec"]["endpoints"][0]["honourLabels"] = json!(true);
    let e = strict_apply(&env, &misspelt, true).await.unwrap_err();
    assert!(
        e.contains("field not declared in schema") && e.contains(".spec.endpoints[0].honourLabels"),
        "{e}"
    );
    let mut scheme = sm.clone();
    scheme["spec"]["endpoints"][0]["scheme"] = json!("ftp");
    let e = strict_apply(&env, &scheme, true).await.unwrap_err();
    assert!(e.contains("spec.endpoints[0].scheme"), "{e}");
}
