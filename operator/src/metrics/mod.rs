//! The Prometheus metrics: `flux_resource_info`, `flux_instance_info`, build
//! info, the report gauges and the opt-in legacy `gotk_*` series, all in one
//! prometheus-client `Registry` and written by its text encoder.
//!
//! Build info is a constant registered family. Everything a report run
//! produces comes from one registered collector ([`snapshot::Published`])
//! that encodes the run's [`snapshot::Snapshot`]: the info rows per kind,
//! held once as `Arc<[…]>`, and the report values. `publish` builds the next
//! snapshot beside the current one and swaps it in whole, so a scrape sees
//! either the previous run or the new one, never a half-built set, and a
//! kind whose list failed keeps its previous rows by sharing them. Before
//! the first run only build info is served.
//!
//! Propagated object labels (`--metrics-labels`) appear as `label_<key>` as
//! kube-state-metrics names them: every character of the key outside
//! `[a-zA-Z0-9_]` becomes `_` (`app.kubernetes.io/name` →
//! `label_app_kubernetes_io_name`), an object without the label gets `""`,
//! and keys that end up with the same name are all suffixed `_conflict1`,
//! `_conflict2`, … in configured order.
//!
//! The report series the alerts aggregate (`flux_report_component_ready`,
//! `flux_report_sync_ready`, `flux_report_interval_seconds` and the
//! `flux_report_last_*_timestamp_seconds` gauges) carry the Flux namespace
//! the operator reports on as `exported_namespace`, as `flux_resource_info`
//! carries each object's: a Prometheus without the Prometheus Operator adds no
//! `namespace` target label, and the one it adds is flux-reporter's own,
//! not necessarily Flux's (docs/design.md, "Metrics: the Flux namespace").

mod format;
mod rows;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::Outcome;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::build_info;
pub use format::Format;
use format::Text004;
use snapshot::{Published, Snapshot};

/// What to export besides the series the Flux Operator exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Also export `gotk_reconcile_condition` and `gotk_suspend_status`.
    pub legacy: bool,
    /// Object label keys copied onto `flux_resource_info` as `label_<key>`,
    /// in the order of `ResourceRow::extra`.
    pub propagate_labels: Vec<String>,
    /// The Flux namespace (`--namespace`): `exported_namespace` of the
    /// report series.
    pub namespace: String,
    /// `--reporting-interval`: `flux_report_interval_seconds` until
    /// [`Metrics::set_interval`] says otherwise.
    pub interval: Duration,
}

/// The metric set, shared by the report loop (`publish`) and the HTTP
/// server (`encode`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    published: Arc<Published>,
    /// Serialises publishers, so none builds on a snapshot another replaces.
    publishing: Mutex<()>,
    /// The reporting interval in effect, in milliseconds: published with
    /// the next run.
    interval_ms: AtomicU64,
}

type BuildInfoLabels = [(&'static str, String); 3];

impl Metrics {
    pub fn new(config: MetricsConfig) -> Self {
        let mut registry = Registry::default();
        let info = build_info::operator_info();
        let build = Family::<BuildInfoLabels, Gauge>::default();
        build
            .get_or_create(&[
                ("version", info.version),
                ("api_version", info.api_version),
                ("platform", info.platform),
            ])
            .set(1);
        // The registry adds the full stop.
        registry.register(
            "flux_reporter_info",
            "The version information of flux-reporter",
            build,
        );
        let published = Arc::new(Published::new(
            config.legacy,
            rows::label_names(&config.propagate_labels),
            config.namespace,
        ));
        registry.register_collector(Box::new(published.clone()));
        let metrics = Metrics {
            registry,
            published,
            publishing: Mutex::new(()),
            interval_ms: AtomicU64::new(0),
        };
        metrics.set_interval(config.interval);
        metrics
    }

    /// The reporting interval the loop runs with (`--reporting-interval`,
    /// or the FluxReport's `reconcileEvery`), exported from the next
    /// publish on as `flux_report_interval_seconds`.
    pub fn set_interval(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.interval_ms.store(ms, Ordering::Relaxed);
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

    fn publish_at(&self, outcome: &Outcome, spec: &FluxReportSpec, now: f64) {
        let _serial = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = self.published.load();
        let interval = self.interval_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let next = Snapshot::next(previous.as_deref(), outcome, spec, now, interval);
        // Scrapes that took `previous` finish with it; it is freed after.
        drop(previous);
        self.published.store(next);
        // The run's buffers are freed by now: give their pages back.
        crate::allocator::trim();
    }

    /// The exposition of the current metric set in `format`. The error is
    /// prometheus-client's (a collector or writer failing), not expected
    /// from the in-memory writers used here.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        self.encode_to(format, &mut out)?;
        Ok(out)
    }

    /// The exposition written to `out` as it is encoded: `/metrics` sends it
    /// in chunks, so a body of 100,000 series is never held whole.
    pub fn encode_to(&self, format: Format, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(out, &self.registry),
            Format::Text => {
                let mut text = Text004::new(out);
                prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
                text.finish()
            }
        }
    }
}
