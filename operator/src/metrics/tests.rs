//! The metric set as a scrape sees it: names, labels, values and the
//! keep/swap rules, checked on the encoded text.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flux_reporter_api::{
    FluxComponentStatus, FluxReconcilerStats, FluxReconcilerStatus, FluxSyncStatus,
};
use flux_reporter_report::metrics::{InstanceRow, ResourceRow, ResourceRows};
use flux_reporter_report::{Failure, Section};

use super::rows::label_names;
use super::snapshot::{DURATION_BUCKETS, LEGACY_STATUSES};
use super::*;

impl Metrics {
    /// What Prometheus gets.
    fn render(&self) -> String {
        self.encode(Format::OpenMetrics).expect("encode")
    }
}

fn row(kind: &str, name: &str) -> ResourceRow {
    ResourceRow {
        uid: format!("uid-{kind}-{name}"),
        kind: kind.into(),
        name: name.into(),
        exported_namespace: "flux-system".into(),
        ready: "True".into(),
        reason: "ReconciliationSucceeded".into(),
        suspended: "False".into(),
        revision: "refs/heads/main@sha1:abc".into(),
        condition_status: "True".into(),
        ..Default::default()
    }
}

fn instance(name: &str) -> InstanceRow {
    InstanceRow {
        uid: format!("uid-{name}"),
        kind: "FluxInstance".into(),
        name: name.into(),
        exported_namespace: "flux-system".into(),
        ready: "True".into(),
        reason: "ReconciliationSucceeded".into(),
        suspended: "False".into(),
        registry: "ghcr.io/fluxcd".into(),
        revision: "v2.7.3@sha256:x".into(),
    }
}

fn outcome(rows: &[(&str, &[&str])]) -> Outcome {
    let mut o = Outcome {
        instance_rows: Some(vec![instance("flux")]),
        duration: Duration::from_millis(30),
        ..Default::default()
    };
    for (kind, names) in rows {
        o.resource_rows.insert(
            kind.to_string(),
            names.iter().map(|n| row(kind, n)).collect(),
        );
    }
    o.objects = o.resource_rows.values().map(ResourceRows::len).sum();
    o
}

fn fail_kind(o: &mut Outcome, kind: &str) {
    o.resource_rows.remove(kind);
    o.failures.push(Failure {
        section: Section::Reconcilers,
        kind: Some(kind.into()),
        error: "forbidden".into(),
    });
}

fn fail_section(o: &mut Outcome, section: Section) {
    o.failures.push(Failure {
        section,
        kind: None,
        error: "boom".into(),
    });
}

fn metrics(legacy: bool, labels: &[&str]) -> Metrics {
    Metrics::new(MetricsConfig {
        legacy,
        propagate_labels: labels.iter().map(|s| s.to_string()).collect(),
        namespace: "flux-system".into(),
        interval: Duration::from_secs(300),
    })
}

/// Sample lines of one metric (by sample name).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

fn names_of(text: &str, metric: &str) -> BTreeSet<String> {
    samples(text, metric)
        .iter()
        .map(|l| {
            let kind = label(l, "kind");
            let name = label(l, "name");
            format!("{kind}/{name}")
        })
        .collect()
}

fn label(line: &str, key: &str) -> String {
    let pat = format!("{key}=\"");
    let at = line
        .find(&format!("{{{pat}"))
        .or_else(|| line.find(&format!(",{pat}")))
        .unwrap_or_else(|| panic!("no label {key} in {line}"));
    let rest = &line[at + 1 + pat.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn value(line: &str) -> &str {
    line.rsplit(' ').next().unwrap()
}

#[test]
fn before_the_first_publish_only_build_info() {
    let m = metrics(true, &[]);
    let text = m.render();
    let info = build_info::operator_info();
    assert_eq!(
        *text,
        format!(
            "# HELP flux_reporter_info The version information of flux-reporter.\n\
             # TYPE flux_reporter_info gauge\n\
             flux_reporter_info{{version=\"{}\",api_version=\"{}\",platform=\"{}\"}} 1\n\
             # EOF\n",
            info.version, info.api_version, info.platform
        )
    );
}

#[test]
fn resource_info_has_the_twelve_labels() {
    let m = metrics(false, &[]);
    let mut o = outcome(&[]);
    o.resource_rows.insert(
        "GitRepository".into(),
        vec![ResourceRow {
            uid: "u-1".into(),
            kind: "GitRepository".into(),
            name: "podinfo".into(),
            exported_namespace: "apps".into(),
            ready: "False".into(),
            reason: "GitOperationFailed".into(),
            suspended: "True".into(),
            revision: "main@sha1:1".into(),
            url: "https://github.com/x/y".into(),
            ref_: "main".into(),
            source_name: "src".into(),
            path: "./p".into(),
            ..Default::default()
        }]
        .into(),
    );
    m.publish(&o, &FluxReportSpec::default());
    let text = m.render();
    let lines = samples(&text, "flux_resource_info");
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0],
        "flux_resource_info{uid=\"u-1\",kind=\"GitRepository\",name=\"podinfo\",\
         exported_namespace=\"apps\",ready=\"False\",reason=\"GitOperationFailed\",\
         suspended=\"True\",revision=\"main@sha1:1\",url=\"https://github.com/x/y\",\
         ref=\"main\",source_name=\"src\",path=\"./p\"} 1"
    );
    assert!(text.contains(
        "# HELP flux_resource_info The current status of a Flux resource reconciliation.\n\
         # TYPE flux_resource_info gauge\n"
    ));
}

#[test]
fn label_values_are_escaped() {
    let m = metrics(false, &[]);
    let mut o = outcome(&[]);
    let mut r = row("Kustomization", "a");
    r.reason = "back\\slash \"quoted\"\nnext".into();
    o.resource_rows
        .insert("Kustomization".into(), vec![r].into());
    m.publish(&o, &FluxReportSpec::default());
    assert!(
        m.render()
            .contains(r#"reason="back\\slash \"quoted\"\nnext""#)
    );
}

#[test]
fn propagated_labels_are_named_like_kube_state_metrics_and_empty_when_absent() {
    assert_eq!(
        label_names(&[
            "team".into(),
            "app.kubernetes.io/name".into(),
            "a-b".into(),
            "a.b".into(),
            "a_b".into(),
        ]),
        [
            "label_team",
            "label_app_kubernetes_io_name",
            "label_a_b_conflict1",
            "label_a_b_conflict2",
            "label_a_b_conflict3",
        ]
    );
    let m = metrics(false, &["team", "app.kubernetes.io/name"]);
    let mut o = outcome(&[]);
    let mut with = row("Kustomization", "a");
    with.extra = vec!["platform".into(), "".into()];
    let without = row("Kustomization", "b"); // no extra values at all
    o.resource_rows
        .insert("Kustomization".into(), vec![with, without].into());
    m.publish(&o, &FluxReportSpec::default());
    let text = m.render();
    let lines = samples(&text, "flux_resource_info");
    assert!(
        lines[0]
            .ends_with(",path=\"\",label_team=\"platform\",label_app_kubernetes_io_name=\"\"} 1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(",path=\"\",label_team=\"\",label_app_kubernetes_io_name=\"\"} 1"),
        "{}",
        lines[1]
    );
}

#[test]
fn legacy_series_four_statuses_with_exactly_one_set() {
    let m = metrics(true, &[]);
    let mut o = outcome(&[]);
    let mut rows = Vec::new();
    for (name, status, suspended) in [
        ("t", "True", "False"),
        ("f", "False", "True"),
        ("u", "Unknown", "False"),
        ("odd", "maybe", "False"),
    ] {
        let mut r = row("Kustomization", name);
        r.exported_namespace = "apps".into();
        r.condition_status = status.into();
        r.suspended = suspended.into();
        rows.push(r);
    }
    o.resource_rows.insert("Kustomization".into(), rows.into());
    m.publish(&o, &FluxReportSpec::default());
    let text = m.render();
    let cond = samples(&text, "gotk_reconcile_condition");
    assert_eq!(cond.len(), 16);
    for (name, expected) in [
        ("t", "True"),
        ("f", "False"),
        ("u", "Unknown"),
        ("odd", "Unknown"),
    ] {
        let mine: Vec<&&str> = cond.iter().filter(|l| label(l, "name") == name).collect();
        let statuses: Vec<String> = mine.iter().map(|l| label(l, "status")).collect();
        assert_eq!(statuses, LEGACY_STATUSES, "{name}");
        let ones: Vec<String> = mine
            .iter()
            .filter(|l| value(l) == "1")
            .map(|l| label(l, "status"))
            .collect();
        assert_eq!(ones, [expected], "{name}");
        assert!(mine.iter().all(|l| label(l, "type") == "Ready"
            && label(l, "namespace") == "apps"
            && label(l, "kind") == "Kustomization"));
    }
    assert!(cond.contains(
        &"gotk_reconcile_condition{kind=\"Kustomization\",name=\"t\",namespace=\"apps\",type=\"Ready\",status=\"True\"} 1"
    ));
    let suspend = samples(&text, "gotk_suspend_status");
    assert_eq!(
        suspend,
        [
            "gotk_suspend_status{kind=\"Kustomization\",name=\"t\",namespace=\"apps\"} 0",
            "gotk_suspend_status{kind=\"Kustomization\",name=\"f\",namespace=\"apps\"} 1",
            "gotk_suspend_status{kind=\"Kustomization\",name=\"u\",namespace=\"apps\"} 0",
            "gotk_suspend_status{kind=\"Kustomization\",name=\"odd\",namespace=\"apps\"} 0",
        ]
    );
}

#[test]
fn legacy_series_only_when_asked() {
    let m = metrics(false, &[]);
    m.publish(
        &outcome(&[("Kustomization", &["a"])]),
        &FluxReportSpec::default(),
    );
    assert!(!m.render().contains("gotk_"));
}

#[test]
fn failed_kind_keeps_its_last_rows_while_other_kinds_update() {
    let m = metrics(true, &[]);
    let spec = FluxReportSpec::default();
    m.publish(
        &outcome(&[("Kustomization", &["k1", "k2"]), ("GitRepository", &["g1"])]),
        &spec,
    );

    // Kustomizations cannot be listed; g1 was deleted, g2 created.
    let mut o = outcome(&[("Kustomization", &["k3"]), ("GitRepository", &["g2"])]);
    fail_kind(&mut o, "Kustomization");
    m.publish(&o, &spec);
    let text = m.render();
    let expected: BTreeSet<String> = ["GitRepository/g2", "Kustomization/k1", "Kustomization/k2"]
        .map(String::from)
        .into();
    assert_eq!(names_of(&text, "flux_resource_info"), expected);
    assert_eq!(names_of(&text, "gotk_suspend_status"), expected);
    assert_eq!(names_of(&text, "gotk_reconcile_condition"), expected);
    assert_eq!(samples(&text, "gotk_reconcile_condition").len(), 12);

    // The CRDs cannot be listed: every kind keeps its rows.
    let mut o = outcome(&[]);
    fail_section(&mut o, Section::Crds);
    m.publish(&o, &spec);
    let text = m.render();
    assert_eq!(names_of(&text, "flux_resource_info"), expected);
    assert_eq!(names_of(&text, "gotk_reconcile_condition"), expected);

    // A clean run: deleted objects and uninstalled kinds disappear.
    m.publish(&outcome(&[("Kustomization", &["k1"])]), &spec);
    let text = m.render();
    let expected: BTreeSet<String> = ["Kustomization/k1".to_string()].into();
    assert_eq!(names_of(&text, "flux_resource_info"), expected);
    assert_eq!(names_of(&text, "gotk_suspend_status"), expected);

    // No objects at all: no family, not an empty one.
    m.publish(&outcome(&[("Kustomization", &[])]), &spec);
    let text = m.render();
    assert!(!text.contains("flux_resource_info"));
    assert!(!text.contains("gotk_"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn failed_kind_without_previous_rows_has_none() {
    let m = metrics(false, &[]);
    let mut o = outcome(&[("GitRepository", &["g1"])]);
    fail_kind(&mut o, "Kustomization");
    m.publish(&o, &FluxReportSpec::default());
    assert_eq!(
        names_of(&m.render(), "flux_resource_info"),
        ["GitRepository/g1".to_string()].into()
    );
}

#[test]
fn instance_rows_kept_when_not_listed() {
    let m = metrics(false, &[]);
    let spec = FluxReportSpec::default();
    m.publish(&outcome(&[]), &spec);
    let first = samples(&m.render(), "flux_instance_info")
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with(
        "flux_instance_info{uid=\"uid-flux\",kind=\"FluxInstance\",name=\"flux\",\
         exported_namespace=\"flux-system\",ready=\"True\",reason=\"ReconciliationSucceeded\",\
         suspended=\"False\",registry=\"ghcr.io/fluxcd\",revision=\"v2.7.3@sha256:x\"}"
    ));

    let mut o = outcome(&[("Kustomization", &["a"])]);
    o.instance_rows = None;
    m.publish(&o, &spec);
    m.publish(&o, &spec);
    assert_eq!(samples(&m.render(), "flux_instance_info"), first);

    // Listed and gone: the series goes.
    let mut o = outcome(&[]);
    o.instance_rows = Some(Vec::new());
    m.publish(&o, &spec);
    assert!(!m.render().contains("flux_instance_info"));
}

#[test]
fn scrapes_never_see_an_empty_or_partial_resource_family() {
    const N: usize = 2_000;
    let m = Arc::new(metrics(true, &["team"]));
    let names: Vec<String> = (0..N).map(|i| format!("obj-{i}")).collect();
    let half: Vec<&str> = names[..N / 2].iter().map(String::as_str).collect();
    let rest: Vec<&str> = names[N / 2..].iter().map(String::as_str).collect();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (m, done) = (m.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut before, mut full) = (0, 0);
            while !done.load(Ordering::Acquire) {
                let text = m.render();
                assert!(text.ends_with("# EOF\n"));
                let rows = text
                    .lines()
                    .filter(|l| l.starts_with("flux_resource_info{"))
                    .count();
                if text.contains("flux_resource_info") {
                    assert_eq!(rows, N);
                    assert_eq!(
                        text.lines()
                            .filter(|l| l.starts_with("gotk_reconcile_condition{"))
                            .count(),
                        4 * N
                    );
                    full += 1;
                } else {
                    assert!(
                        !text.contains("flux_report_"),
                        "published text without rows"
                    );
                    before += 1;
                }
            }
            (before, full)
        })
    };
    let spec = FluxReportSpec::default();
    for i in 0..60 {
        let mut o = outcome(&[("Kustomization", &half), ("GitRepository", &rest)]);
        match i % 3 {
            1 => fail_kind(&mut o, "Kustomization"),
            2 => fail_section(&mut o, Section::Crds),
            _ => {}
        }
        if i % 3 == 2 {
            o.resource_rows.clear();
        }
        m.publish(&o, &spec);
    }
    done.store(true, Ordering::Release);
    let (_before, full) = reader.join().expect("reader");
    assert!(full > 0);
    assert_eq!(samples(&m.render(), "flux_resource_info").len(), N);
}

#[test]
fn section_errors_count_each_failed_section_or_kind_per_run() {
    let m = metrics(false, &[]);
    let spec = FluxReportSpec::default();
    m.publish(&outcome(&[]), &spec);
    let text = m.render();
    let errors = samples(&text, "flux_report_section_errors_total");
    assert_eq!(errors.len(), Section::ALL.len());
    assert!(errors.iter().all(|l| value(l) == "0"));
    assert!(text.contains("# TYPE flux_report_section_errors counter\n"));

    let mut o = outcome(&[]);
    fail_kind(&mut o, "Kustomization");
    fail_kind(&mut o, "Kustomization"); // the same kind twice: one
    fail_kind(&mut o, "Bucket");
    fail_section(&mut o, Section::Components);
    m.publish(&o, &spec);
    let mut o = outcome(&[]);
    fail_section(&mut o, Section::Components);
    m.publish(&o, &spec);
    m.publish(&outcome(&[]), &spec);

    let text = m.render();
    let get = |s: &str| {
        samples(&text, "flux_report_section_errors_total")
            .into_iter()
            .find(|l| label(l, "section") == s)
            .map(|l| value(l).to_string())
    };
    assert_eq!(get("reconcilers").as_deref(), Some("2"));
    assert_eq!(get("components").as_deref(), Some("2"));
    assert_eq!(get("crds").as_deref(), Some("0"));
}

#[test]
fn last_success_timestamp_only_after_a_clean_run() {
    let m = metrics(false, &[]);
    let spec = FluxReportSpec::default();
    let mut failing = outcome(&[]);
    fail_section(&mut failing, Section::Cluster);

    m.publish_at(&failing, &spec, 1000.5);
    let text = m.render();
    assert!(!text.contains("flux_report_last_success_timestamp_seconds"));
    assert_eq!(
        samples(&text, "flux_report_last_run_timestamp_seconds"),
        ["flux_report_last_run_timestamp_seconds{exported_namespace=\"flux-system\"} 1000.5"]
    );

    m.publish_at(&outcome(&[]), &spec, 2000.0);
    m.publish_at(&failing, &spec, 3000.0);
    let text = m.render();
    assert_eq!(
        samples(&text, "flux_report_last_success_timestamp_seconds"),
        ["flux_report_last_success_timestamp_seconds{exported_namespace=\"flux-system\"} 2000.0"]
    );
    assert_eq!(
        samples(&text, "flux_report_last_run_timestamp_seconds"),
        ["flux_report_last_run_timestamp_seconds{exported_namespace=\"flux-system\"} 3000.0"]
    );
}

/// The series the alerts aggregate name the Flux namespace themselves, and the
/// interval is the one in effect at each publish (a FluxReport's
/// `reconcileEvery` changes it).
#[test]
fn report_series_carry_the_flux_namespace_and_the_interval() {
    let m = Metrics::new(MetricsConfig {
        namespace: "flux-prod".into(),
        interval: Duration::from_secs(300),
        ..MetricsConfig::default()
    });
    let spec = FluxReportSpec {
        components: vec![FluxComponentStatus {
            name: "source-watcher".into(),
            ready: false,
            ..Default::default()
        }],
        sync: Some(FluxSyncStatus {
            id: "kustomization/flux-prod".into(),
            ready: false,
            ..Default::default()
        }),
        ..Default::default()
    };
    m.publish_at(&outcome(&[]), &spec, 1000.0);
    let text = m.render();
    assert_eq!(
        samples(&text, "flux_report_interval_seconds"),
        ["flux_report_interval_seconds{exported_namespace=\"flux-prod\"} 300.0"]
    );
    for series in [
        "flux_report_component_ready",
        "flux_report_sync_ready",
        "flux_report_interval_seconds",
        "flux_report_last_run_timestamp_seconds",
        "flux_report_last_success_timestamp_seconds",
    ] {
        let lines = samples(&text, series);
        assert_eq!(lines.len(), 1, "{series}: {lines:?}");
        assert_eq!(
            label(lines[0], "exported_namespace"),
            "flux-prod",
            "{series}"
        );
    }
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("# TYPE flux_report_interval_seconds "))
            .collect::<Vec<_>>(),
        ["# TYPE flux_report_interval_seconds gauge"]
    );

    // Taken at the next publish, not before.
    m.set_interval(Duration::from_secs(3600));
    assert!(
        m.render()
            .contains("flux_report_interval_seconds{exported_namespace=\"flux-prod\"} 300.0")
    );
    m.publish_at(&outcome(&[]), &spec, 2000.0);
    assert_eq!(
        samples(&m.render(), "flux_report_interval_seconds"),
        ["flux_report_interval_seconds{exported_namespace=\"flux-prod\"} 3600.0"]
    );
}

#[test]
fn report_gauges_follow_the_published_spec() {
    let m = metrics(false, &[]);
    let spec = FluxReportSpec {
        reconcilers: vec![FluxReconcilerStatus {
            api_version: "source.toolkit.fluxcd.io/v1".into(),
            kind: "GitRepository".into(),
            stats: FluxReconcilerStats {
                running: 5,
                failing: 2,
                suspended: 1,
                total_size: Some("1.5 KiB".into()),
            },
        }],
        components: vec![
            FluxComponentStatus {
                name: "source-controller".into(),
                ready: true,
                ..Default::default()
            },
            FluxComponentStatus {
                name: "helm-controller".into(),
                ready: false,
                ..Default::default()
            },
        ],
        sync: Some(FluxSyncStatus {
            id: "kustomization/flux-system".into(),
            ready: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut o = outcome(&[("GitRepository", &["a", "b"])]);
    o.artifact_bytes.insert("GitRepository".into(), 1536);
    o.artifact_bytes.insert("Bucket".into(), 10);
    o.malformed_total = 3;
    m.publish(&o, &spec);
    let text = m.render();
    assert_eq!(
        samples(&text, "flux_report_reconcilers"),
        [
            "flux_report_reconcilers{kind=\"GitRepository\",state=\"running\"} 5",
            "flux_report_reconcilers{kind=\"GitRepository\",state=\"failing\"} 2",
            "flux_report_reconcilers{kind=\"GitRepository\",state=\"suspended\"} 1",
        ]
    );
    assert_eq!(
        samples(&text, "flux_report_artifact_bytes"),
        [
            "flux_report_artifact_bytes{kind=\"Bucket\"} 10",
            "flux_report_artifact_bytes{kind=\"GitRepository\"} 1536",
        ]
    );
    assert_eq!(
        samples(&text, "flux_report_component_ready"),
        [
            "flux_report_component_ready{name=\"source-controller\",exported_namespace=\"flux-system\"} 1",
            "flux_report_component_ready{name=\"helm-controller\",exported_namespace=\"flux-system\"} 0",
        ]
    );
    assert_eq!(
        samples(&text, "flux_report_sync_ready"),
        [
            "flux_report_sync_ready{id=\"kustomization/flux-system\",exported_namespace=\"flux-system\"} 1"
        ]
    );
    assert_eq!(
        samples(&text, "flux_report_objects"),
        ["flux_report_objects 2"]
    );
    assert_eq!(
        samples(&text, "flux_report_malformed_objects"),
        ["flux_report_malformed_objects 3"]
    );

    // Artifact bytes of a failed kind stay; of a vanished kind go.
    let mut o = outcome(&[]);
    fail_kind(&mut o, "GitRepository");
    m.publish(&o, &FluxReportSpec::default());
    let text = m.render();
    assert_eq!(
        samples(&text, "flux_report_artifact_bytes"),
        ["flux_report_artifact_bytes{kind=\"GitRepository\"} 1536"]
    );
    assert!(!text.contains("flux_report_sync_ready"));
    assert!(!text.contains("flux_report_component_ready"));
}

#[test]
fn duration_histogram_counts_every_run() {
    let m = metrics(false, &[]);
    for ms in [2, 700, 200_000] {
        let mut o = outcome(&[]);
        o.duration = Duration::from_millis(ms);
        m.publish(&o, &FluxReportSpec::default());
    }
    let text = m.render();
    let count = samples(&text, "flux_report_duration_seconds_count");
    assert_eq!(count, ["flux_report_duration_seconds_count 3"]);
    let buckets = samples(&text, "flux_report_duration_seconds_bucket");
    assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);
    assert!(buckets.contains(&"flux_report_duration_seconds_bucket{le=\"0.001\"} 0"));
    assert!(buckets.contains(&"flux_report_duration_seconds_bucket{le=\"0.0025\"} 1"));
    assert!(buckets.contains(&"flux_report_duration_seconds_bucket{le=\"1.0\"} 2"));
    assert!(buckets.contains(&"flux_report_duration_seconds_bucket{le=\"120.0\"} 2"));
    assert!(buckets.contains(&"flux_report_duration_seconds_bucket{le=\"+Inf\"} 3"));
}

#[test]
fn every_family_once_with_help_and_type_and_eof_last() {
    let m = metrics(true, &["team"]);
    let mut o = outcome(&[("Kustomization", &["a", "b"]), ("GitRepository", &["c"])]);
    o.artifact_bytes.insert("GitRepository".into(), 1);
    m.publish(&o, &FluxReportSpec::default());
    let text = m.render();
    let mut seen = BTreeSet::new();
    let mut current = String::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"));
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(seen.insert(name.to_string()), "{name} twice");
            assert!(rest.ends_with('.'));
            assert!(lines[i + 1].starts_with(&format!("# TYPE {name} ")));
            current = name.to_string();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&current), "{line} outside its family");
        }
    }
    assert!(seen.contains("flux_resource_info") && seen.contains("gotk_suspend_status"));
}

/// The `flux_resource_info` labels of `r`, in the order the exposition has them (written out
/// here, independently of `rows.rs`), before the propagated ones.
fn resource_labels(r: &ResourceRow, kind: &str) -> Vec<(String, String)> {
    [
        ("uid", r.uid.as_str()),
        ("kind", kind),
        ("name", &r.name),
        ("exported_namespace", &r.exported_namespace),
        ("ready", &r.ready),
        ("reason", &r.reason),
        ("suspended", &r.suspended),
        ("revision", &r.revision),
        ("url", &r.url),
        ("ref", &r.ref_),
        ("source_name", &r.source_name),
        ("path", &r.path),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// The collector writes what prometheus-client's own `Family` and
/// `Histogram` write for the same series.
#[test]
fn same_text_as_prometheus_client() {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram as PcHistogram;
    use prometheus_client::registry::Registry;

    let m = metrics(false, &["team"]);
    let mut o = outcome(&[]);
    let mut r = row("Kustomization", "a\"b");
    r.url = "c:\\path\nx".into();
    r.extra = vec!["t".into()];
    o.resource_rows
        .insert("Kustomization".into(), vec![r.clone()].into());
    let durations = [0.0004, 0.03, 7.0, 500.0];
    for d in durations {
        o.duration = Duration::from_secs_f64(d);
        m.publish(&o, &FluxReportSpec::default());
    }
    fail_section(&mut o, Section::Sync);
    m.publish(&o, &FluxReportSpec::default());
    let ours = m.render();

    let mut reg = Registry::default();
    let info = Family::<Vec<(String, String)>, Gauge>::default();
    reg.register(
        "flux_resource_info",
        "The current status of a Flux resource reconciliation",
        info.clone(),
    );
    let mut labels = resource_labels(&r, &r.kind);
    labels.push(("label_team".into(), r.extra[0].clone()));
    info.get_or_create(&labels).set(1);
    let errors = Family::<Vec<(String, String)>, Counter>::default();
    reg.register(
        "flux_report_section_errors",
        "Report sections (or kinds of the reconcilers section) that could not be computed, one per failed run",
        errors.clone(),
    );
    errors
        .get_or_create(&vec![("section".into(), "sync".into())])
        .inc();
    let h = PcHistogram::new(DURATION_BUCKETS);
    reg.register(
        "flux_report_duration_seconds",
        "Duration of the report runs in seconds",
        h.clone(),
    );
    for d in durations {
        h.observe(Duration::from_secs_f64(d).as_secs_f64());
    }
    h.observe(Duration::from_secs_f64(500.0).as_secs_f64());
    let mut theirs = String::new();
    encode(&mut theirs, &reg).unwrap();

    let family = |text: &str, name: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("# HELP {name} "))
                    || l.starts_with(&format!("# TYPE {name} "))
                    || l.starts_with(name)
            })
            .filter(|l| !l.contains("section=") || l.contains("section=\"sync\""))
            .map(String::from)
            .collect()
    };
    for (name, lines) in [
        ("flux_resource_info", 3),
        ("flux_report_section_errors", 3),
        (
            "flux_report_duration_seconds",
            4 + DURATION_BUCKETS.len() + 1,
        ),
    ] {
        assert_eq!(family(&ours, name).len(), lines, "{name}");
        assert_eq!(family(&ours, name), family(&theirs, name), "{name}");
    }
}

/// Every scrape shows one run: the rows, the legacy series and the report
/// gauges of the same publish, whatever publish runs beside it.
#[test]
fn a_scrape_during_publish_sees_one_run_never_a_mix() {
    const N: usize = 500;
    let m = Arc::new(metrics(true, &[]));
    let names: Vec<String> = (0..N).map(|i| format!("obj-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let generation = |g: usize| {
        let mut o = outcome(&[
            ("Kustomization", &names[..N / 2]),
            ("Bucket", &names[N / 2..]),
        ]);
        for rows in o.resource_rows.values_mut() {
            *rows = rows
                .iter()
                .map(|mut row| {
                    row.revision = format!("gen-{g}");
                    row.suspended = if g.is_multiple_of(2) { "True" } else { "False" }.into();
                    row
                })
                .collect();
        }
        o.objects = g;
        o
    };
    m.publish(&generation(1), &FluxReportSpec::default());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (m, done) = (m.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::Acquire) {
                let text = m.render();
                let objects = samples(&text, "flux_report_objects");
                let g: usize = value(objects[0]).parse().unwrap();
                let revisions: BTreeSet<String> = samples(&text, "flux_resource_info")
                    .iter()
                    .map(|l| label(l, "revision"))
                    .collect();
                assert_eq!(revisions, [format!("gen-{g}")].into(), "objects {g}");
                let suspended = samples(&text, "gotk_suspend_status");
                assert_eq!(suspended.len(), N);
                let want = if g.is_multiple_of(2) { "1" } else { "0" };
                assert!(suspended.iter().all(|l| value(l) == want), "objects {g}");
                seen.insert(g);
            }
            seen
        })
    };
    for g in 2..200 {
        m.publish(&generation(g), &FluxReportSpec::default());
    }
    std::thread::sleep(Duration::from_millis(20));
    done.store(true, Ordering::Release);
    let seen = reader.join().expect("reader");
    assert!(seen.len() > 1, "the reader saw a single run: {seen:?}");
}

/// The text 0.0.4 body: the same samples, and every sample typed by the
/// `# TYPE` line a 0.0.4 parser matches it to.
#[test]
fn text_004_body_types_every_sample_as_openmetrics_does() {
    let m = metrics(true, &["team"]);
    let mut o = outcome(&[("Kustomization", &["a", "b"])]);
    o.artifact_bytes.insert("Kustomization".into(), 1);
    fail_section(&mut o, Section::Sync);
    m.publish(&o, &FluxReportSpec::default());
    let om = m.render();
    let text = m.encode(Format::Text).unwrap();
    let sample_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    assert_eq!(sample_lines(&text), sample_lines(&om));
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));

    // name → type, from each format's own rules.
    let types = |t: &str| -> Vec<(String, String)> {
        t.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (n, k) = l.split_once(' ').unwrap();
                (n.to_string(), k.to_string())
            })
            .collect()
    };
    let typed = types(&text);
    for line in sample_lines(&text) {
        let name = line.split(['{', ' ']).next().unwrap();
        // 0.0.4: a sample belongs to the family of its own name, or of its
        // name less `_bucket`/`_sum`/`_count` for a histogram.
        let family = typed.iter().find(|(n, k)| {
            n == name
                || (k == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n)))
        });
        let Some((_, kind)) = family else {
            panic!("{name} untyped in text 0.0.4:\n{text}");
        };
        let om_kind = &types(&om)
            .into_iter()
            .find(|(n, _)| name.starts_with(n.as_str()))
            .unwrap()
            .1;
        assert_eq!(kind, om_kind, "{name}");
    }
    assert!(text.contains(
        "# HELP flux_report_section_errors_total Report sections (or kinds of the reconcilers section) that could not be computed, one per failed run.\n\
         # TYPE flux_report_section_errors_total counter\n"
    ));
}

/// The compact rows encode exactly as prometheus-client's own `Family`
/// encodes each plain row's labels as strings (what the rows held before
/// they were compact), in the same order, for a varied sample: repeated and
/// unique values, empty ones, escapes, non-ASCII text, and rows with fewer
/// or more propagated values than keys.
#[test]
fn compact_rows_encode_as_prometheus_client_encodes_the_plain_rows() {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    let keys = ["team", "app.kubernetes.io/name"];
    let names = label_names(&keys.map(String::from));
    let m = metrics(true, &keys);
    let mut o = outcome(&[]);
    let mut all = Vec::new();
    for kind in ["Kustomization", "GitRepository"] {
        let rows: Vec<ResourceRow> = (0..120)
            .map(|i| {
                let mut r = row(kind, &format!("app-{i}"));
                r.exported_namespace = format!("team-{}", i % 7);
                r.ready = ["True", "False", "Unknown"][i % 3].into();
                r.reason = if i % 5 == 0 { "" } else { "Succeeded" }.into();
                r.url = if i % 2 == 0 {
                    format!("https://x/ü{i}.git")
                } else {
                    String::new()
                };
                r.source_name = "fleet \"q\"\\\nline".into();
                r.path = format!("./apps/{}", i % 3);
                r.extra = (0..i % 4).map(|n| format!("v{n}")).collect();
                r
            })
            .collect();
        all.push((kind, rows.clone()));
        o.resource_rows.insert(kind.into(), rows.into());
    }
    m.publish(&o, &FluxReportSpec::default());
    let ours: Vec<String> = samples(&m.render(), "flux_resource_info")
        .into_iter()
        .map(String::from)
        .collect();

    // The map orders kinds by name.
    all.sort_by_key(|(kind, _)| *kind);
    let mut theirs = Vec::new();
    for (kind, rows) in &all {
        for r in rows {
            let mut labels = resource_labels(r, kind);
            for (n, name) in names.iter().enumerate() {
                labels.push((name.clone(), r.extra.get(n).cloned().unwrap_or_default()));
            }
            let mut reg = Registry::default();
            let info = Family::<Vec<(String, String)>, Gauge>::default();
            reg.register("flux_resource_info", "h", info.clone());
            info.get_or_create(&labels).set(1);
            let mut text = String::new();
            encode(&mut text, &reg).unwrap();
            theirs.extend(
                samples(&text, "flux_resource_info")
                    .into_iter()
                    .map(String::from),
            );
        }
    }
    assert_eq!(ours.len(), 240);
    assert_eq!(ours, theirs);
}
