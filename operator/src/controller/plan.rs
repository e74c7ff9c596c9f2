//! What a reconcile of the FluxReport is asked to do, decided from the object
//! alone: paused, or a run with its interval, the `requestedAt` it answers and
//! the configured sync root. Pure, so every rule is tested without a server.

use std::time::Duration;

use flux_reporter_api::FluxReport;
use flux_reporter_api::constants::{
    RECONCILE_ANNOTATION, RECONCILE_DISABLED, RECONCILE_EVERY_ANNOTATION, REQUESTED_AT_ANNOTATION,
    SYNC_NAME_ANNOTATION,
};
use flux_reporter_report::sync::ConfiguredRoot;
use kube::ResourceExt;

/// The decision for one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// `fluxcd.controlplane.io/reconcile: disabled`: no run, no requeue; the
    /// next annotation change wakes the reconciler.
    Disabled,
    Run(RunPlan),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Until the next run: `reconcileEvery`, else the global interval.
    pub interval: Duration,
    /// The `requestedAt` value this run answers (acknowledged once written).
    pub requested: Option<String>,
    /// The root Kustomization named by flag, else by the FluxReport annotation.
    pub sync_root: Option<ConfiguredRoot>,
}

/// Decide from the FluxReport, the global interval and the `--sync-name` flag.
pub fn plan(
    report: &FluxReport,
    global_interval: Duration,
    namespace: &str,
    sync_flag: Option<&ConfiguredRoot>,
) -> Plan {
    if is_disabled(report) {
        return Plan::Disabled;
    }
    Plan::Run(RunPlan {
        interval: interval_of(report, global_interval),
        requested: annotation(report, REQUESTED_AT_ANNOTATION).map(str::to_string),
        sync_root: sync_flag.cloned().or_else(|| {
            annotation(report, SYNC_NAME_ANNOTATION).and_then(|v| {
                ConfiguredRoot::parse(v, namespace, "the FluxReport annotation syncName")
            })
        }),
    })
}

pub fn annotation<'a>(obj: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

pub fn is_disabled(report: &FluxReport) -> bool {
    annotation(report, RECONCILE_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case(RECONCILE_DISABLED))
}

/// The per-object interval, or the global one when absent, invalid or below
/// the minimum interval.
pub fn interval_of(report: &FluxReport, global: Duration) -> Duration {
    annotation(report, RECONCILE_EVERY_ANNOTATION)
        .and_then(|v| flux_reporter_report::duration::parse(v).ok())
        .filter(|d| *d >= crate::cli::MIN_INTERVAL)
        .unwrap_or(global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_reporter_api::FluxReportSpec;
    use flux_reporter_api::constants::SINGLETON_NAME;

    const GLOBAL: Duration = Duration::from_secs(300);

    fn report_with(annotations: &[(&str, &str)]) -> FluxReport {
        let mut r = FluxReport::new(SINGLETON_NAME, FluxReportSpec::default());
        r.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r
    }

    fn run_plan(annotations: &[(&str, &str)], flag: Option<&ConfiguredRoot>) -> RunPlan {
        match plan(&report_with(annotations), GLOBAL, "flux-system", flag) {
            Plan::Run(p) => p,
            Plan::Disabled => panic!("disabled"),
        }
    }

    #[test]
    fn reconcile_every_overrides_the_interval_and_garbage_falls_back() {
        let every = |v| run_plan(&[(RECONCILE_EVERY_ANNOTATION, v)], None).interval;
        assert_eq!(every("30s"), Duration::from_secs(30));
        assert_eq!(every("soon"), GLOBAL);
        assert_eq!(every("0s"), GLOBAL);
        assert_eq!(every("10ms"), GLOBAL, "below the 1s minimum");
        assert_eq!(run_plan(&[], None).interval, GLOBAL);
    }

    #[test]
    fn disabled_is_case_insensitive_and_pauses() {
        let p = |v| {
            plan(
                &report_with(&[(RECONCILE_ANNOTATION, v)]),
                GLOBAL,
                "ns",
                None,
            )
        };
        assert_eq!(p("Disabled"), Plan::Disabled);
        assert_eq!(p("disabled"), Plan::Disabled);
        assert!(matches!(p("enabled"), Plan::Run(_)));
    }

    #[test]
    fn requested_at_is_carried_to_be_acknowledged() {
        let p = run_plan(&[(REQUESTED_AT_ANNOTATION, "2026-12-01T10:00:00Z")], None);
        assert_eq!(p.requested.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(run_plan(&[], None).requested, None);
    }

    #[test]
    fn the_sync_flag_wins_over_the_annotation() {
        let from_annotation = run_plan(&[(SYNC_NAME_ANNOTATION, "fleet/root")], None);
        let root = from_annotation.sync_root.expect("annotation root");
        assert_eq!(
            (root.namespace.as_str(), root.name.as_str()),
            ("fleet", "root")
        );

        let flag = ConfiguredRoot::parse("main", "flux-system", "--sync-name").unwrap();
        let p = run_plan(&[(SYNC_NAME_ANNOTATION, "fleet/root")], Some(&flag));
        let root = p.sync_root.expect("flag root");
        assert_eq!(
            (root.namespace.as_str(), root.name.as_str()),
            ("flux-system", "main")
        );
    }
}
