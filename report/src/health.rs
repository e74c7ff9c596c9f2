//! Health: is the observed installation healthy, unhealthy, or could we not
//! tell? Used by `flux-reporter check` and the operator's events.

use flux_reporter_api::fluxreport::distribution::INSTALLED;

use crate::compute::{Outcome, Section};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Unhealthy,
    /// Something that matters could not be read, and nothing seen is unhealthy.
    Unknown,
}

/// One finding, named the way a person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `components`, `reconcilers`, `sync`, `distribution`.
    pub area: &'static str,
    /// The failing part: a component, a kind, the sync id.
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub verdict: Verdict,
    pub problems: Vec<Finding>,
    /// What could not be read.
    pub unknowns: Vec<String>,
}

pub fn assess(outcome: &Outcome) -> Health {
    let spec = &outcome.spec;
    let mut problems = Vec::new();
    let mut unknowns: Vec<String> = outcome
        .failures
        .iter()
        .filter(|f| f.section != Section::Cluster)
        .map(ToString::to_string)
        .collect();

    if !outcome.failed(Section::Distribution) && spec.distribution.status != INSTALLED {
        problems.push(Finding {
            area: "distribution",
            subject: "flux".into(),
            message: format!("Flux is {}", spec.distribution.status),
        });
    }
    if !outcome.failed(Section::Components) {
        if spec.components.is_empty() {
            problems.push(Finding {
                area: "components",
                subject: "controllers".into(),
                message: "no Flux controller Deployments found".into(),
            });
        }
        for c in spec.components.iter().filter(|c| !c.ready) {
            problems.push(Finding {
                area: "components",
                subject: c.name.clone(),
                message: c.status.clone(),
            });
        }
    }
    for r in spec.reconcilers.iter().filter(|r| r.stats.failing > 0) {
        problems.push(Finding {
            area: "reconcilers",
            subject: r.kind.clone(),
            message: format!("{} failing", r.stats.failing),
        });
    }
    if let Some(sync) = &spec.sync
        && !sync.ready
    {
        problems.push(Finding {
            area: "sync",
            subject: sync.id.clone(),
            message: sync.status.lines().collect::<Vec<_>>().join(" / "),
        });
    }
    unknowns.dedup();
    let verdict = if !problems.is_empty() {
        Verdict::Unhealthy
    } else if !unknowns.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Healthy
    };
    Health {
        verdict,
        problems,
        unknowns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::Failure;
    use flux_reporter_api::{FluxComponentStatus, FluxReconcilerStatus, FluxSyncStatus};

    fn healthy() -> Outcome {
        let mut o = Outcome::default();
        o.spec.distribution.status = INSTALLED.into();
        o.spec.components = vec![FluxComponentStatus {
            name: "source-controller".into(),
            ready: true,
            status: "Current Deployment is available. Replicas: 1".into(),
            image: "x".into(),
        }];
        o.spec.reconcilers = vec![FluxReconcilerStatus {
            api_version: "source.toolkit.fluxcd.io/v1".into(),
            kind: "GitRepository".into(),
            ..Default::default()
        }];
        o
    }

    #[test]
    fn all_good_is_healthy() {
        assert_eq!(assess(&healthy()).verdict, Verdict::Healthy);
    }

    #[test]
    fn unready_component_failing_kind_and_sync_are_problems() {
        let mut o = healthy();
        o.spec.components[0].ready = false;
        o.spec.reconcilers[0].stats.failing = 2;
        o.spec.sync = Some(FluxSyncStatus {
            id: "kustomization/flux-system".into(),
            ready: false,
            status: "a\nb".into(),
            ..Default::default()
        });
        let h = assess(&o);
        assert_eq!(h.verdict, Verdict::Unhealthy);
        let areas: Vec<_> = h.problems.iter().map(|p| p.area).collect();
        assert_eq!(areas, ["components", "reconcilers", "sync"]);
        assert_eq!(h.problems[2].message, "a / b");
    }

    #[test]
    fn a_failed_section_with_nothing_unhealthy_is_unknown() {
        let mut o = healthy();
        o.failures.push(Failure {
            section: Section::Reconcilers,
            kind: Some("Kustomization".into()),
            error: "forbidden".into(),
        });
        assert_eq!(assess(&o).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_failed_cluster_section_does_not_matter_for_health() {
        let mut o = healthy();
        o.failures.push(Failure {
            section: Section::Cluster,
            kind: None,
            error: "no nodes".into(),
        });
        assert_eq!(assess(&o).verdict, Verdict::Healthy);
    }

    #[test]
    fn not_installed_is_unhealthy() {
        let mut o = healthy();
        o.spec.distribution.status = "Not Installed".into();
        assert_eq!(assess(&o).verdict, Verdict::Unhealthy);
    }
}
