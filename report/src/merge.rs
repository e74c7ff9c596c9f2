//! Keeping the last good values: a section (or one kind) that failed in this
//! run keeps what the previous report said, so a transient API error never
//! empties the report.

use flux_reporter_api::FluxReportSpec;

use crate::compute::{Outcome, Section};
use crate::reconcilers;

/// The spec to publish: this run's sections where they succeeded, the
/// previous report's where they failed.
pub fn keep_last_good(previous: Option<&FluxReportSpec>, outcome: &Outcome) -> FluxReportSpec {
    let mut spec = outcome.spec.clone();
    let Some(prev) = previous else {
        return spec;
    };
    if outcome.failed(Section::Distribution) {
        spec.distribution = prev.distribution.clone();
    }
    if outcome.failed(Section::Cluster) {
        spec.cluster = prev.cluster.clone();
    }
    if outcome.failed(Section::Components) {
        spec.components = prev.components.clone();
    }
    if outcome.failed(Section::Sync) {
        spec.sync = prev.sync.clone();
    }

    // Reconcilers: when discovery failed, every Flux kind of the previous
    // report is kept; otherwise only the kinds whose list failed.
    let failed_kinds = outcome.failed_kinds();
    let discovery_failed = outcome.failed(Section::Crds);
    let computed: std::collections::BTreeSet<&str> =
        spec.reconcilers.iter().map(|e| e.kind.as_str()).collect();
    let keep: Vec<_> = prev
        .reconcilers
        .iter()
        .filter(|e| !computed.contains(e.kind.as_str()))
        .filter(|e| {
            failed_kinds.contains(&e.kind)
                || (discovery_failed && !e.api_version.starts_with("fluxcd.controlplane.io/"))
        })
        .cloned()
        .collect();
    if !keep.is_empty() {
        spec.reconcilers.extend(keep);
        reconcilers::sort_entries(&mut spec.reconcilers);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::Failure;
    use flux_reporter_api::{
        ClusterInfo, FluxComponentStatus, FluxReconcilerStatus, FluxSyncStatus,
    };

    fn entry(api: &str, kind: &str, running: i64) -> FluxReconcilerStatus {
        let mut e = FluxReconcilerStatus {
            api_version: api.into(),
            kind: kind.into(),
            ..Default::default()
        };
        e.stats.running = running;
        e
    }

    fn previous() -> FluxReportSpec {
        FluxReportSpec {
            cluster: Some(ClusterInfo {
                server_version: "v1.33.0".into(),
                platform: "linux/amd64".into(),
                nodes: 3,
            }),
            components: vec![FluxComponentStatus {
                name: "source-controller".into(),
                ..Default::default()
            }],
            reconcilers: vec![
                entry("fluxcd.controlplane.io/v1", "FluxInstance", 1),
                entry("source.toolkit.fluxcd.io/v1", "GitRepository", 7),
                entry("kustomize.toolkit.fluxcd.io/v1", "Kustomization", 9),
            ],
            sync: Some(FluxSyncStatus {
                id: "kustomization/flux-system".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn failure(section: Section, kind: Option<&str>) -> Failure {
        Failure {
            section,
            kind: kind.map(Into::into),
            error: "forbidden".into(),
        }
    }

    #[test]
    fn no_previous_report_publishes_what_was_computed() {
        let outcome = Outcome {
            failures: vec![failure(Section::Cluster, None)],
            ..Default::default()
        };
        assert_eq!(keep_last_good(None, &outcome).cluster, None);
    }

    #[test]
    fn failed_sections_keep_their_previous_values_and_others_update() {
        let mut outcome = Outcome {
            failures: vec![
                failure(Section::Cluster, None),
                failure(Section::Sync, None),
            ],
            ..Default::default()
        };
        outcome.spec.components = vec![];
        let spec = keep_last_good(Some(&previous()), &outcome);
        assert_eq!(spec.cluster.unwrap().nodes, 3);
        assert_eq!(spec.sync.unwrap().id, "kustomization/flux-system");
        assert!(
            spec.components.is_empty(),
            "components succeeded: the new (empty) value wins"
        );
    }

    #[test]
    fn one_forbidden_kind_keeps_its_entry_and_the_others_update() {
        let mut outcome = Outcome {
            failures: vec![failure(Section::Reconcilers, Some("GitRepository"))],
            ..Default::default()
        };
        outcome.spec.reconcilers = vec![
            entry("fluxcd.controlplane.io/v1", "FluxInstance", 1),
            entry("kustomize.toolkit.fluxcd.io/v1", "Kustomization", 10),
        ];
        let spec = keep_last_good(Some(&previous()), &outcome);
        let got: Vec<_> = spec
            .reconcilers
            .iter()
            .map(|e| (e.kind.as_str(), e.stats.running))
            .collect();
        assert_eq!(
            got,
            [
                ("FluxInstance", 1),
                ("Kustomization", 10),
                ("GitRepository", 7)
            ]
        );
    }

    #[test]
    fn failed_discovery_keeps_every_previous_flux_kind() {
        let mut outcome = Outcome {
            failures: vec![failure(Section::Crds, None)],
            ..Default::default()
        };
        outcome.spec.reconcilers = vec![entry("fluxcd.controlplane.io/v1", "FluxInstance", 2)];
        let spec = keep_last_good(Some(&previous()), &outcome);
        let got: Vec<_> = spec
            .reconcilers
            .iter()
            .map(|e| (e.kind.as_str(), e.stats.running))
            .collect();
        assert_eq!(
            got,
            [
                ("FluxInstance", 2),
                ("Kustomization", 9),
                ("GitRepository", 7)
            ]
        );
    }
}
