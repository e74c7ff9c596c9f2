//! The Prometheus metrics: `flux_resource_info`, `flux_instance_info`, build
//! info, the report gauges and the opt-in legacy `gotk_*` series, rebuilt as
//! one OpenMetrics text after each report run and swapped in whole, so a
//! scrape sees either the previous run or the new one, never a half-built set.
//!
//! The text is written here rather than through a prometheus-client
//! `Registry`: info series are only label sets, and writing them straight from
//! the rows lets a kind whose list failed keep the series of the last good run
//! by copying its slice of the previous text, without cloning rows or
//! rebuilding 10,000-entry hash maps each run. The output is checked against
//! prometheus-client's encoder in the tests (`same_text_as_prometheus_client`).
//!
//! Propagated object labels (`--metrics-labels`) appear as
//! `label_<key>` as kube-state-metrics names them: every character of the key
//! outside `[a-zA-Z0-9_]` becomes `_` (`app.kubernetes.io/name` →
//! `label_app_kubernetes_io_name`), an object without the label gets `""`, and
//! keys that end up with the same name are all suffixed `_conflict1`,
//! `_conflict2`, … in configured order.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::metrics::{InstanceRow, ResourceRow};
use flux_reporter_report::{Outcome, Section};

use crate::build_info;

/// What to export besides the anchor's series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Also export `gotk_reconcile_condition` and `gotk_suspend_status`.
    pub legacy: bool,
    /// Object label keys copied onto `flux_resource_info` as `label_<key>`,
    /// in the order of `ResourceRow::extra`.
    pub propagate_labels: Vec<String>,
}

/// The metric set, shared by the report loop (`publish`) and the HTTP
/// server (`render`).
#[derive(Debug)]
pub struct Metrics {
    legacy: bool,
    /// `label_<key>` per propagated key, in configured order.
    label_names: Vec<String>,
    /// `flux_reporter_info`, written once.
    build_info: String,
    /// What a scrape gets.
    text: RwLock<Arc<String>>,
    /// What one publish hands the next; the lock also serialises publishers.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The text last published; the spans below index into it.
    last: Arc<String>,
    kinds: BTreeMap<String, KindSpans>,
    instances: Range<usize>,
    artifact_bytes: BTreeMap<String, i64>,
    section_errors: BTreeMap<&'static str, u64>,
    durations: Histogram,
    last_success: Option<f64>,
}

/// Where one kind's series sit in the last text, per family.
#[derive(Debug, Clone, Default)]
struct KindSpans {
    info: Range<usize>,
    condition: Range<usize>,
    suspend: Range<usize>,
}

/// Upper bounds of `flux_report_duration_seconds`, 1 ms to 2 min, written as
/// prometheus-client writes them.
const DURATION_BUCKETS: [(f64, &str); 16] = [
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1.0"),
    (2.5, "2.5"),
    (5.0, "5.0"),
    (10.0, "10.0"),
    (30.0, "30.0"),
    (60.0, "60.0"),
    (120.0, "120.0"),
];

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        let i = DURATION_BUCKETS
            .iter()
            .position(|(le, _)| v <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

const LEGACY_STATUSES: [&str; 4] = ["True", "False", "Unknown", "Deleted"];

impl Metrics {
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn new(config: MetricsConfig) -> Self {
        let mut t = Text::default();
        t.family(
            "flux_reporter_info",
            "The version information of flux-reporter.",
            "gauge",
        );
        let info = build_info::operator_info();
        t.open("flux_reporter_info");
        t.label("version", &info.version);
        t.label("api_version", &info.api_version);
        t.label("platform", &info.platform);
        t.close_int(1);
        let build_info = t.out;
        let initial = Arc::new(format!("{build_info}# EOF\n"));
        Metrics {
            legacy: config.legacy,
            label_names: label_names(&config.propagate_labels),
            build_info,
            text: RwLock::new(initial),
            state: Mutex::new(State {
                section_errors: Section::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
                ..State::default()
            }),
        }
    }

    /// After each report run. `spec` is the published spec (last good values
    /// already merged).
    pub fn publish(&self, outcome: &Outcome, spec: &FluxReportSpec) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as f64 / 1000.0)
            .unwrap_or(0.0);
        self.publish_at(outcome, spec, now);
    }

    /// The exposition text, ready to serve.
    pub fn render(&self) -> Arc<String> {
        self.text
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish_at(&self, outcome: &Outcome, spec: &FluxReportSpec, now: f64) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;

        // Counters count runs, whatever the rows.
        let failed: BTreeSet<(Section, Option<&str>)> = outcome
            .failures
            .iter()
            .map(|f| (f.section, f.kind.as_deref()))
            .collect();
        for (section, _) in &failed {
            *state.section_errors.entry(section.as_str()).or_default() += 1;
        }
        state.durations.observe(outcome.duration.as_secs_f64());
        if outcome.is_complete() {
            state.last_success = Some(now);
        }

        // A kind listed now gets its new rows; a kind whose list failed (all
        // kinds when the CRDs could not be listed) keeps its last good rows;
        // any other kind is gone.
        let keep_all = outcome.failed(Section::Crds);
        let failed_kinds = outcome.failed_kinds();
        let kept = |kind: &str| keep_all || failed_kinds.contains(kind);
        let mut kinds: BTreeMap<&str, Rows> = outcome
            .resource_rows
            .iter()
            .map(|(k, rows)| (k.as_str(), Rows::New(rows)))
            .collect();
        for (kind, spans) in &state.kinds {
            if kept(kind) && !kinds.contains_key(kind.as_str()) {
                kinds.insert(kind, Rows::Kept(spans));
            }
        }
        let mut artifact_bytes = outcome.artifact_bytes.clone();
        for (kind, bytes) in &state.artifact_bytes {
            if kept(kind) {
                artifact_bytes.entry(kind.clone()).or_insert(*bytes);
            }
        }

        let last = state.last.as_str();
        let mut t = Text {
            out: String::with_capacity(last.len() + last.len() / 8 + 4096),
            header: None,
        };
        t.out.push_str(&self.build_info);

        t.family(
            "flux_instance_info",
            "The current status of a Flux instance.",
            "gauge",
        );
        let instances = match &outcome.instance_rows {
            Some(rows) => t.span(!rows.is_empty(), |t| {
                for row in rows {
                    instance_info(t, row);
                }
            }),
            None => t.copy(&last[state.instances.clone()]),
        };

        let mut spans: BTreeMap<String, KindSpans> = kinds
            .keys()
            .map(|k| (k.to_string(), KindSpans::default()))
            .collect();
        t.family(
            "flux_resource_info",
            "The current status of a Flux resource reconciliation.",
            "gauge",
        );
        let label_names = &self.label_names;
        write_kind_rows(
            &mut t,
            &kinds,
            last,
            &mut spans,
            |s| &mut s.info,
            |t, row| resource_info(t, row, label_names),
        );

        self.report_series(&mut t, state, outcome, spec, &artifact_bytes, now);

        if self.legacy {
            t.family(
                "gotk_reconcile_condition",
                "The current condition status of a GitOps Toolkit resource reconciliation.",
                "gauge",
            );
            write_kind_rows(
                &mut t,
                &kinds,
                last,
                &mut spans,
                |s| &mut s.condition,
                reconcile_condition,
            );
            t.family(
                "gotk_suspend_status",
                "The current value of suspend field of a GitOps Toolkit resource.",
                "gauge",
            );
            write_kind_rows(
                &mut t,
                &kinds,
                last,
                &mut spans,
                |s| &mut s.suspend,
                suspend_status,
            );
        }
        t.out.push_str("# EOF\n");

        let text = Arc::new(t.out);
        state.last = text.clone();
        state.kinds = spans;
        state.instances = instances;
        state.artifact_bytes = artifact_bytes;
        *self.text.write().unwrap_or_else(PoisonError::into_inner) = text;
    }

    fn report_series(
        &self,
        t: &mut Text,
        state: &State,
        outcome: &Outcome,
        spec: &FluxReportSpec,
        artifact_bytes: &BTreeMap<String, i64>,
        now: f64,
    ) {
        t.family(
            "flux_report_reconcilers",
            "Flux objects per kind in the running (failing included), failing and suspended states, as in the FluxReport.",
            "gauge",
        );
        for r in &spec.reconcilers {
            for (state, n) in [
                ("running", r.stats.running),
                ("failing", r.stats.failing),
                ("suspended", r.stats.suspended),
            ] {
                t.open("flux_report_reconcilers");
                t.label("kind", &r.kind);
                t.label("state", state);
                t.close_int(n);
            }
        }

        t.family(
            "flux_report_artifact_bytes",
            "Total size in bytes of the artifacts of the Flux objects of each kind.",
            "gauge",
        );
        for (kind, bytes) in artifact_bytes {
            t.open("flux_report_artifact_bytes");
            t.label("kind", kind);
            t.close_int(*bytes);
        }

        t.family(
            "flux_report_component_ready",
            "Whether a Flux controller Deployment is ready (1) or not (0).",
            "gauge",
        );
        for c in &spec.components {
            t.open("flux_report_component_ready");
            t.label("name", &c.name);
            t.close_int(i64::from(c.ready));
        }

        t.family(
            "flux_report_sync_ready",
            "Whether the cluster sync is ready (1) or not (0).",
            "gauge",
        );
        if let Some(sync) = &spec.sync {
            t.open("flux_report_sync_ready");
            t.label("id", &sync.id);
            t.close_int(i64::from(sync.ready));
        }

        t.family(
            "flux_report_duration_seconds",
            "Duration of the report runs in seconds.",
            "histogram",
        );
        let h = &state.durations;
        t.open("flux_report_duration_seconds_sum");
        t.close_f64(h.sum);
        t.open("flux_report_duration_seconds_count");
        t.close_u64(h.count);
        let mut cumulative = 0;
        for (i, n) in h.buckets.iter().enumerate() {
            cumulative += n;
            t.open("flux_report_duration_seconds_bucket");
            t.label("le", DURATION_BUCKETS.get(i).map_or("+Inf", |b| b.1));
            t.close_u64(cumulative);
        }

        t.family(
            "flux_report_section_errors",
            "Report sections (or kinds of the reconcilers section) that could not be computed, one per failed run.",
            "counter",
        );
        for (section, n) in &state.section_errors {
            t.open("flux_report_section_errors_total");
            t.label("section", section);
            t.close_u64(*n);
        }

        t.family(
            "flux_report_last_success_timestamp_seconds",
            "Unix time of the last report run in which every section succeeded.",
            "gauge",
        );
        if let Some(ts) = state.last_success {
            t.open("flux_report_last_success_timestamp_seconds");
            t.close_f64(ts);
        }
        t.family(
            "flux_report_last_run_timestamp_seconds",
            "Unix time of the last report run.",
            "gauge",
        );
        t.open("flux_report_last_run_timestamp_seconds");
        t.close_f64(now);

        t.family(
            "flux_report_objects",
            "Flux objects read by the last report run.",
            "gauge",
        );
        t.open("flux_report_objects");
        t.close_u64(outcome.objects as u64);
        t.family(
            "flux_report_malformed_objects",
            "Objects read by the last report run with fields of unexpected types.",
            "gauge",
        );
        t.open("flux_report_malformed_objects");
        t.close_u64(outcome.malformed_total as u64);
    }
}

/// Where a kind's series come from in this publish.
enum Rows<'a> {
    New(&'a [ResourceRow]),
    Kept(&'a KindSpans),
}

/// One family's series for every kind: new rows written by `write`, kept
/// kinds copied from the previous text; where each kind's slice lands is
/// recorded in the `slot` of its spans, for the next publish to copy.
fn write_kind_rows(
    t: &mut Text,
    kinds: &BTreeMap<&str, Rows>,
    last: &str,
    spans: &mut BTreeMap<String, KindSpans>,
    slot: fn(&mut KindSpans) -> &mut Range<usize>,
    write: impl Fn(&mut Text, &ResourceRow),
) {
    for (kind, rows) in kinds {
        let span = match rows {
            Rows::New(rows) => t.span(!rows.is_empty(), |t| {
                for row in *rows {
                    write(t, row);
                }
            }),
            Rows::Kept(previous) => {
                let range = slot(&mut (*previous).clone()).clone();
                t.copy(&last[range])
            }
        };
        if let Some(s) = spans.get_mut(*kind) {
            *slot(s) = span;
        }
    }
}

fn resource_info(t: &mut Text, row: &ResourceRow, label_names: &[String]) {
    t.open("flux_resource_info");
    t.label("uid", &row.uid);
    t.label("kind", &row.kind);
    t.label("name", &row.name);
    t.label("exported_namespace", &row.exported_namespace);
    t.label("ready", &row.ready);
    t.label("reason", &row.reason);
    t.label("suspended", &row.suspended);
    t.label("revision", &row.revision);
    t.label("url", &row.url);
    t.label("ref", &row.ref_);
    t.label("source_name", &row.source_name);
    t.label("path", &row.path);
    for (i, name) in label_names.iter().enumerate() {
        t.label(name, row.extra.get(i).map_or("", String::as_str));
    }
    t.close_int(1);
}

fn instance_info(t: &mut Text, row: &InstanceRow) {
    t.open("flux_instance_info");
    t.label("uid", &row.uid);
    t.label("kind", &row.kind);
    t.label("name", &row.name);
    t.label("exported_namespace", &row.exported_namespace);
    t.label("ready", &row.ready);
    t.label("reason", &row.reason);
    t.label("suspended", &row.suspended);
    t.label("registry", &row.registry);
    t.label("revision", &row.revision);
    t.close_int(1);
}

/// Four series per object, as Flux's controllers exported them: 1 for the
/// Ready condition's status (anything but True/False reads Unknown), 0 for the
/// others; `Deleted` is always 0 because deleted objects simply disappear.
fn reconcile_condition(t: &mut Text, row: &ResourceRow) {
    let current = match row.condition_status.as_str() {
        s @ ("True" | "False") => s,
        _ => "Unknown",
    };
    for status in LEGACY_STATUSES {
        t.open("gotk_reconcile_condition");
        t.label("kind", &row.kind);
        t.label("name", &row.name);
        t.label("namespace", &row.exported_namespace);
        t.label("type", "Ready");
        t.label("status", status);
        t.close_int(i64::from(status == current));
    }
}

fn suspend_status(t: &mut Text, row: &ResourceRow) {
    t.open("gotk_suspend_status");
    t.label("kind", &row.kind);
    t.label("name", &row.name);
    t.label("namespace", &row.exported_namespace);
    t.close_int(i64::from(row.suspended == "True"));
}

/// `label_<key>` names for the propagated keys (see the module docs).
fn label_names(keys: &[String]) -> Vec<String> {
    let base: Vec<String> = keys
        .iter()
        .map(|k| {
            let sanitized: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("label_{sanitized}")
        })
        .collect();
    let mut used = HashSet::new();
    base.iter()
        .map(|b| {
            let clash = base.iter().filter(|x| *x == b).count() > 1;
            let mut n = 1;
            let mut name = if clash {
                format!("{b}_conflict{n}")
            } else {
                b.clone()
            };
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{b}_conflict{n}");
            }
            name
        })
        .collect()
}

/// An OpenMetrics text under construction. A family's `# HELP`/`# TYPE`
/// lines are written with its first series, so a family without series is
/// left out.
#[derive(Default)]
struct Text {
    out: String,
    header: Option<(&'static str, &'static str, &'static str)>,
}

impl Text {
    fn family(&mut self, name: &'static str, help: &'static str, kind: &'static str) {
        self.header = Some((name, help, kind));
    }

    fn write_header(&mut self) {
        if let Some((name, help, kind)) = self.header.take() {
            let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        }
    }

    /// Series written by `f`, and where they sit; `any` says whether `f`
    /// writes anything, so the header goes before the span.
    fn span(&mut self, any: bool, f: impl FnOnce(&mut Text)) -> Range<usize> {
        if any {
            self.write_header();
        }
        let start = self.out.len();
        f(self);
        start..self.out.len()
    }

    /// Series copied from the previous text.
    fn copy(&mut self, series: &str) -> Range<usize> {
        self.span(!series.is_empty(), |t| t.out.push_str(series))
    }

    fn open(&mut self, name: &str) {
        self.write_header();
        self.out.push_str(name);
        self.out.push('{');
    }

    fn label(&mut self, key: &str, value: &str) {
        if !self.out.ends_with('{') {
            self.out.push(',');
        }
        self.out.push_str(key);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value);
        self.out.push('"');
    }

    fn end_labels(&mut self) {
        if self.out.ends_with('{') {
            self.out.pop();
        } else {
            self.out.push('}');
        }
    }

    fn close_int(&mut self, v: i64) {
        self.end_labels();
        let _ = writeln!(self.out, " {v}");
    }

    fn close_u64(&mut self, v: u64) {
        self.end_labels();
        let _ = writeln!(self.out, " {v}");
    }

    /// Floats always with a decimal point or exponent (`1.0`, `0.25`).
    fn close_f64(&mut self, v: f64) {
        self.end_labels();
        let _ = writeln!(self.out, " {v:?}");
    }
}

/// Label value escaping of the exposition formats: `\`, `"` and newline.
fn escape_into(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_reporter_api::{
        FluxComponentStatus, FluxReconcilerStats, FluxReconcilerStatus, FluxSyncStatus,
    };
    use flux_reporter_report::Failure;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

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
        o.objects = o.resource_rows.values().map(Vec::len).sum();
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
            }],
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
        o.resource_rows.insert("Kustomization".into(), vec![r]);
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
            .insert("Kustomization".into(), vec![with, without]);
        m.publish(&o, &FluxReportSpec::default());
        let text = m.render();
        let lines = samples(&text, "flux_resource_info");
        assert!(
            lines[0].ends_with(
                ",path=\"\",label_team=\"platform\",label_app_kubernetes_io_name=\"\"} 1"
            ),
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
        o.resource_rows.insert("Kustomization".into(), rows);
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
        let expected: BTreeSet<String> =
            ["GitRepository/g2", "Kustomization/k1", "Kustomization/k2"]
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
            ["flux_report_last_run_timestamp_seconds 1000.5"]
        );

        m.publish_at(&outcome(&[]), &spec, 2000.0);
        m.publish_at(&failing, &spec, 3000.0);
        let text = m.render();
        assert_eq!(
            samples(&text, "flux_report_last_success_timestamp_seconds"),
            ["flux_report_last_success_timestamp_seconds 2000.0"]
        );
        assert_eq!(
            samples(&text, "flux_report_last_run_timestamp_seconds"),
            ["flux_report_last_run_timestamp_seconds 3000.0"]
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
                "flux_report_component_ready{name=\"source-controller\"} 1",
                "flux_report_component_ready{name=\"helm-controller\"} 0",
            ]
        );
        assert_eq!(
            samples(&text, "flux_report_sync_ready"),
            ["flux_report_sync_ready{id=\"kustomization/flux-system\"} 1"]
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

    /// The same families encoded by prometheus-client give the same lines.
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
            .insert("Kustomization".into(), vec![r.clone()]);
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
        let labels = [
            ("uid", &r.uid),
            ("kind", &r.kind),
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
            ("label_team", &r.extra[0]),
        ]
        .map(|(k, v)| (k.to_string(), v.clone()))
        .to_vec();
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
        let h = PcHistogram::new(DURATION_BUCKETS.map(|b| b.0));
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
}
