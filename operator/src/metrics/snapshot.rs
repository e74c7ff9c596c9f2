//! One report run's metric values, built whole by `Metrics::publish` and
//! encoded on each scrape by the [`Published`] collector.
//!
//! A snapshot is never changed after it is built: the next run builds a new
//! one, reusing (by `Arc`) the rows of the kinds it keeps, and swaps it in. A
//! scrape takes the current snapshot once and encodes only it, so it sees
//! one run's values, never a mix and never a half-built set.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::{Outcome, Section};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use flux_reporter_report::metrics::ResourceRows;

use super::rows::{Instance, Interner, ResourceLabels, condition};

/// Upper bounds of `flux_report_duration_seconds`, 1 ms to 2 min.
pub(super) const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub(super) const LEGACY_STATUSES: [&str; 4] = ["True", "False", "Unknown", "Deleted"];

#[derive(Debug, Default)]
pub(super) struct Snapshot {
    instances: Arc<[Instance]>,
    /// Rows per kind, shared with the run that listed them (never copied);
    /// a kind listed with no objects has an empty entry.
    kinds: BTreeMap<Arc<str>, ResourceRows>,
    artifact_bytes: BTreeMap<Arc<str>, i64>,
    /// Kind and running/failing/suspended, as in the published spec.
    reconcilers: Vec<(String, [i64; 3])>,
    components: Vec<(String, bool)>,
    sync: Option<(String, bool)>,
    /// Counted over every run since start.
    section_errors: BTreeMap<&'static str, u64>,
    durations: Durations,
    last_success: Option<f64>,
    last_run: f64,
    /// The reporting interval of this run, in seconds.
    interval: f64,
    objects: u64,
    malformed: u64,
}

#[derive(Debug, Default, Clone)]
struct Durations {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Durations {
    fn observe(&mut self, v: f64) {
        let i = DURATION_BUCKETS
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

impl Snapshot {
    /// The snapshot after `outcome`, carrying over from `previous` the
    /// counters and the rows of every kind (and the FluxInstances) this run
    /// could not list. The rows are the outcome's own, shared, not copied:
    /// once the run's outcome is dropped the snapshot holds the only copy.
    pub(super) fn next(
        previous: Option<&Snapshot>,
        outcome: &Outcome,
        spec: &FluxReportSpec,
        now: f64,
        interval: f64,
    ) -> Snapshot {
        let mut interner = Interner::default();

        // A kind listed now gets its new rows; a kind whose list failed (all
        // kinds when the CRDs could not be listed) keeps its last good rows;
        // any other kind is gone.
        let keep_all = outcome.failed(Section::Crds);
        let failed_kinds = outcome.failed_kinds();
        let kept = |kind: &str| keep_all || failed_kinds.contains(kind);
        let mut kinds: BTreeMap<Arc<str>, ResourceRows> = outcome
            .resource_rows
            .iter()
            .map(|(kind, rows)| (interner.get(kind), rows.clone()))
            .collect();
        let mut artifact_bytes: BTreeMap<Arc<str>, i64> = outcome
            .artifact_bytes
            .iter()
            .map(|(kind, bytes)| (interner.get(kind), *bytes))
            .collect();
        let instances = match (&outcome.instance_rows, previous) {
            (Some(rows), _) => rows
                .iter()
                .map(|r| Instance::new(r, &mut interner))
                .collect(),
            (None, Some(p)) => p.instances.clone(),
            (None, None) => Arc::default(),
        };

        let mut section_errors = Section::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let mut durations = Durations::default();
        let mut last_success = None;
        if let Some(p) = previous {
            for (kind, rows) in &p.kinds {
                if kept(kind) && !kinds.contains_key(kind) {
                    kinds.insert(kind.clone(), rows.clone());
                }
            }
            for (kind, bytes) in &p.artifact_bytes {
                if kept(kind) {
                    artifact_bytes.entry(kind.clone()).or_insert(*bytes);
                }
            }
            section_errors = p.section_errors.clone();
            durations = p.durations.clone();
            last_success = p.last_success;
        }

        // Counters count runs: per run, one for each failed section, or kind of
        // the reconcilers section, however many errors it had.
        let mut failed: Vec<(Section, Option<&str>)> = outcome
            .failures
            .iter()
            .map(|f| (f.section, f.kind.as_deref()))
            .collect();
        failed.sort();
        failed.dedup();
        for (section, _) in failed {
            *section_errors.entry(section.as_str()).or_default() += 1;
        }
        durations.observe(outcome.duration.as_secs_f64());
        if outcome.is_complete() {
            last_success = Some(now);
        }

        Snapshot {
            instances,
            kinds,
            artifact_bytes,
            reconcilers: spec
                .reconcilers
                .iter()
                .map(|r| {
                    let s = &r.stats;
                    (r.kind.clone(), [s.running, s.failing, s.suspended])
                })
                .collect(),
            components: spec
                .components
                .iter()
                .map(|c| (c.name.clone(), c.ready))
                .collect(),
            sync: spec.sync.as_ref().map(|s| (s.id.clone(), s.ready)),
            section_errors,
            durations,
            last_success,
            last_run: now,
            interval,
            objects: outcome.objects as u64,
            malformed: outcome.malformed_total as u64,
        }
    }
}

/// The collector registered for everything a report run produces. Before
/// the first run it encodes nothing, so a scrape then gets only the build
/// info, never zeroed report series.
#[derive(Debug)]
pub(super) struct Published {
    current: RwLock<Option<Arc<Snapshot>>>,
    legacy: bool,
    /// `label_<key>` per propagated key.
    label_names: Vec<String>,
    /// The Flux namespace: `exported_namespace` of the report series.
    namespace: String,
}

impl Published {
    pub(super) fn new(legacy: bool, label_names: Vec<String>, namespace: String) -> Self {
        Published {
            current: RwLock::new(None),
            legacy,
            label_names,
            namespace,
        }
    }

    /// The snapshot scrapes see now.
    pub(super) fn load(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn store(&self, snapshot: Snapshot) {
        let snapshot = Some(Arc::new(snapshot));
        // The old snapshot is dropped after the lock is released.
        let _old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            snapshot,
        );
    }
}

impl Collector for Published {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        // One snapshot for the whole scrape; no lock is held while encoding.
        let Some(s) = self.load() else {
            return Ok(());
        };

        if !s.instances.is_empty() {
            let mut m = e.encode_descriptor(
                "flux_instance_info",
                "The current status of a Flux instance.",
                None,
                MetricType::Gauge,
            )?;
            for row in s.instances.iter() {
                m.encode_family(row)?.encode_gauge(&1i64)?;
            }
        }

        if s.kinds.values().any(|rows| !rows.is_empty()) {
            let mut m = e.encode_descriptor(
                "flux_resource_info",
                "The current status of a Flux resource reconciliation.",
                None,
                MetricType::Gauge,
            )?;
            for (kind, rows) in &s.kinds {
                for row in rows.refs() {
                    let labels = ResourceLabels {
                        kind,
                        row,
                        label_names: &self.label_names,
                    };
                    m.encode_family(&labels)?.encode_gauge(&1i64)?;
                }
            }
        }

        report_series(&mut e, &s, &self.namespace)?;
        if self.legacy {
            legacy_series(&mut e, &s)?;
        }
        Ok(())
    }
}

/// The report's own series. Those the alerts aggregate by namespace carry
/// `ns`, the Flux namespace, as `exported_namespace`.
fn report_series(e: &mut DescriptorEncoder, s: &Snapshot, ns: &str) -> fmt::Result {
    let flux_ns = [("exported_namespace", ns)];
    if !s.reconcilers.is_empty() {
        let mut m = e.encode_descriptor(
            "flux_report_reconcilers",
            "Flux objects per kind in the running (failing included), failing and suspended states, as in the FluxReport.",
            None,
            MetricType::Gauge,
        )?;
        for (kind, counts) in &s.reconcilers {
            for (state, n) in ["running", "failing", "suspended"].into_iter().zip(counts) {
                m.encode_family(&[("kind", kind.as_str()), ("state", state)])?
                    .encode_gauge(n)?;
            }
        }
    }

    if !s.artifact_bytes.is_empty() {
        let mut m = e.encode_descriptor(
            "flux_report_artifact_bytes",
            "Total size in bytes of the artifacts of the Flux objects of each kind.",
            None,
            MetricType::Gauge,
        )?;
        for (kind, bytes) in &s.artifact_bytes {
            m.encode_family(&[("kind", &**kind)])?.encode_gauge(bytes)?;
        }
    }

    if !s.components.is_empty() {
        let mut m = e.encode_descriptor(
            "flux_report_component_ready",
            "Whether a Flux controller Deployment is ready (1) or not (0).",
            None,
            MetricType::Gauge,
        )?;
        for (name, ready) in &s.components {
            m.encode_family(&[("name", name.as_str()), flux_ns[0]])?
                .encode_gauge(&i64::from(*ready))?;
        }
    }

    if let Some((id, ready)) = &s.sync {
        e.encode_descriptor(
            "flux_report_sync_ready",
            "Whether the cluster sync is ready (1) or not (0).",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[("id", id.as_str()), flux_ns[0]])?
        .encode_gauge(&i64::from(*ready))?;
    }

    let d = &s.durations;
    let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
        .into_iter()
        .chain([f64::INFINITY])
        .zip(d.buckets)
        .collect();
    e.encode_descriptor(
        "flux_report_duration_seconds",
        "Duration of the report runs in seconds.",
        None,
        MetricType::Histogram,
    )?
    .encode_histogram::<NoLabelSet>(d.sum, d.count, &buckets, None)?;

    let mut m = e.encode_descriptor(
        "flux_report_section_errors",
        "Report sections (or kinds of the reconcilers section) that could not be computed, one per failed run.",
        None,
        MetricType::Counter,
    )?;
    for (section, n) in &s.section_errors {
        m.encode_family(&[("section", *section)])?
            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
    }

    if let Some(ts) = s.last_success {
        e.encode_descriptor(
            "flux_report_last_success_timestamp_seconds",
            "Unix time of the last report run in which every section succeeded.",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&flux_ns)?
        .encode_gauge(&ts)?;
    }
    e.encode_descriptor(
        "flux_report_last_run_timestamp_seconds",
        "Unix time of the last report run.",
        None,
        MetricType::Gauge,
    )?
    .encode_family(&flux_ns)?
    .encode_gauge(&s.last_run)?;
    e.encode_descriptor(
        "flux_report_interval_seconds",
        "The interval between report runs in seconds (--reporting-interval, or the FluxReport's reconcileEvery annotation).",
        None,
        MetricType::Gauge,
    )?
    .encode_family(&flux_ns)?
    .encode_gauge(&s.interval)?;
    e.encode_descriptor(
        "flux_report_objects",
        "Flux objects read by the last report run.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&s.objects)?;
    e.encode_descriptor(
        "flux_report_malformed_objects",
        "Objects read by the last report run with fields of unexpected types.",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&s.malformed)
}

/// `gotk_reconcile_condition` and `gotk_suspend_status` as Flux's
/// controllers exported them: four condition series per object, 1 for the
/// Ready condition's status and 0 for the others; `Deleted` is always 0
/// because deleted objects simply disappear.
fn legacy_series(e: &mut DescriptorEncoder, s: &Snapshot) -> fmt::Result {
    if s.kinds.values().all(|rows| rows.is_empty()) {
        return Ok(());
    }
    let mut m = e.encode_descriptor(
        "gotk_reconcile_condition",
        "The current condition status of a GitOps Toolkit resource reconciliation.",
        None,
        MetricType::Gauge,
    )?;
    for (kind, rows) in &s.kinds {
        for row in rows.refs() {
            let current = condition(&row);
            for status in LEGACY_STATUSES {
                let labels = [
                    ("kind", &**kind),
                    ("name", row.name()),
                    ("namespace", row.exported_namespace()),
                    ("type", "Ready"),
                    ("status", status),
                ];
                m.encode_family(&labels)?
                    .encode_gauge(&i64::from(status == current))?;
            }
        }
    }

    let mut m = e.encode_descriptor(
        "gotk_suspend_status",
        "The current value of suspend field of a GitOps Toolkit resource.",
        None,
        MetricType::Gauge,
    )?;
    for (kind, rows) in &s.kinds {
        for row in rows.refs() {
            let labels = [
                ("kind", &**kind),
                ("name", row.name()),
                ("namespace", row.exported_namespace()),
            ];
            m.encode_family(&labels)?
                .encode_gauge(&i64::from(row.suspended() == "True"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_reporter_report::Failure;
    use flux_reporter_report::metrics::ResourceRow;

    fn outcome(kinds: &[(&str, usize)]) -> Outcome {
        let mut o = Outcome::default();
        for (kind, n) in kinds {
            let rows = (0..*n)
                .map(|i| ResourceRow {
                    kind: kind.to_string(),
                    name: format!("{kind}-{i}"),
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            o.resource_rows.insert(kind.to_string(), rows.into());
        }
        o
    }

    fn next(previous: Option<&Snapshot>, o: &Outcome) -> Snapshot {
        Snapshot::next(previous, o, &FluxReportSpec::default(), 0.0, 300.0)
    }

    #[test]
    fn a_failed_kind_shares_its_previous_rows_and_a_vanished_kind_goes() {
        let first = next(
            None,
            &outcome(&[("Kustomization", 3), ("Bucket", 1), ("HelmRelease", 2)]),
        );

        let mut o = outcome(&[("HelmRelease", 1)]);
        o.failures.push(Failure {
            section: Section::Reconcilers,
            kind: Some("Kustomization".into()),
            error: "forbidden".into(),
        });
        let second = next(Some(&first), &o);
        let kinds: Vec<&str> = second.kinds.keys().map(|k| &**k).collect();
        assert_eq!(kinds, ["HelmRelease", "Kustomization"]);
        // Kept by reference, not copied.
        assert!(first.kinds["Kustomization"].shares(&second.kinds["Kustomization"]));
        assert_eq!(second.kinds["HelmRelease"].len(), 1);
        // The earlier snapshot, which a scrape may still hold, is untouched.
        assert_eq!(first.kinds["HelmRelease"].len(), 2);
        assert_eq!(first.kinds.len(), 3);

        // The CRDs unreadable: every kind is kept, even without new rows.
        let mut o = Outcome::default();
        o.failures.push(Failure {
            section: Section::Crds,
            kind: None,
            error: "boom".into(),
        });
        let third = next(Some(&second), &o);
        assert!(second.kinds["HelmRelease"].shares(&third.kinds["HelmRelease"]));
        assert_eq!(third.kinds.len(), 2);

        // A clean run with no kinds: nothing is kept.
        assert!(next(Some(&third), &Outcome::default()).kinds.is_empty());
    }

    #[test]
    fn the_snapshot_holds_the_run_s_rows_not_a_copy_and_lets_the_old_ones_go() {
        let o = outcome(&[("Kustomization", 3)]);
        let first = next(None, &o);
        // The very rows the run built: one copy once the outcome is dropped.
        assert!(first.kinds["Kustomization"].shares(&o.resource_rows["Kustomization"]));
        drop(o);

        // An object deleted: the next run's rows replace the old ones whole.
        let mut o = outcome(&[("Kustomization", 3)]);
        let rows: Vec<_> = o.resource_rows["Kustomization"]
            .iter()
            .filter(|r| r.name != "Kustomization-1")
            .collect();
        o.resource_rows.insert("Kustomization".into(), rows.into());
        let second = next(Some(&first), &o);
        let names: Vec<String> = second.kinds["Kustomization"]
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["Kustomization-0", "Kustomization-2"]);
        assert!(!second.kinds["Kustomization"].shares(&first.kinds["Kustomization"]));
    }
}
