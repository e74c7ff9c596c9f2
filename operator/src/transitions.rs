//! Which events a run deserves: health *transitions* only (healthy to
//! unhealthy and back, new failing parts, recovered parts, version changed,
//! components appeared or disappeared), never one event per run.

use std::collections::{BTreeMap, BTreeSet};

/// The health of the installation as one run saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthState {
    pub healthy: bool,
    /// Failing parts by subject (`component/x`, `sync`, `version`), with their message.
    pub failing: BTreeMap<String, String>,
    /// The Ready reason when unhealthy (the first failure class).
    pub reason: String,
    /// The whole human message when unhealthy.
    pub message: String,
    pub version: Option<String>,
    pub components: BTreeSet<String>,
}

/// What we know of the previous state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nothing: the first run of a fresh operator with no persisted state.
    Unknown,
    /// Persisted in the FluxInstance status by an earlier run (maybe of another
    /// process): readiness, the message, the version and components.
    Persisted {
        healthy: bool,
        message: String,
        version: Option<String>,
        components: Option<BTreeSet<String>>,
    },
    /// Seen by this process.
    Seen(HealthState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub severity: Severity,
    pub reason: String,
    pub message: String,
}

pub const RECOVERED_REASON: &str = "ReconciliationSucceeded";
pub const VERSION_CHANGED_REASON: &str = "VersionChanged";
pub const COMPONENTS_CHANGED_REASON: &str = "ComponentsChanged";

fn warning(now: &HealthState) -> Transition {
    Transition {
        severity: Severity::Warning,
        reason: now.reason.clone(),
        message: now.message.clone(),
    }
}

fn flux(version: &Option<String>) -> String {
    match version {
        Some(v) => format!("Flux {v}"),
        None => "Flux".into(),
    }
}

/// The events to emit for going from `previous` to `now`.
pub fn transitions(previous: &Previous, now: &HealthState) -> Vec<Transition> {
    let mut out = Vec::new();
    let (prev_version, prev_components) = match previous {
        Previous::Unknown => (None, None),
        Previous::Persisted {
            version,
            components,
            ..
        } => (version.clone(), components.clone()),
        Previous::Seen(p) => (p.version.clone(), Some(p.components.clone())),
    };

    if let (Some(old), Some(new)) = (&prev_version, &now.version)
        && old != new
    {
        out.push(Transition {
            severity: Severity::Normal,
            reason: VERSION_CHANGED_REASON.into(),
            message: format!("Flux version changed from {old} to {new}"),
        });
    }
    if let Some(old) = &prev_components
        && !old.is_empty()
    {
        let added: Vec<&str> = now.components.difference(old).map(String::as_str).collect();
        let removed: Vec<&str> = old
            .difference(&now.components)
            .map(String::as_str)
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("appeared: {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("disappeared: {}", removed.join(", ")));
            }
            out.push(Transition {
                severity: Severity::Normal,
                reason: COMPONENTS_CHANGED_REASON.into(),
                message: format!("Flux components changed: {}", parts.join("; ")),
            });
        }
    }

    match previous {
        Previous::Unknown => {
            if !now.healthy {
                out.push(warning(now));
            }
        }
        Previous::Persisted {
            healthy, message, ..
        } => match (*healthy, now.healthy) {
            (true, false) => out.push(warning(now)),
            (false, false) if *message != now.message => out.push(warning(now)),
            (false, true) => out.push(recovered(now)),
            _ => {}
        },
        Previous::Seen(p) => match (p.healthy, now.healthy) {
            (true, false) => out.push(warning(now)),
            (false, true) => out.push(recovered(now)),
            (false, false) => {
                let new: Vec<&String> = now
                    .failing
                    .keys()
                    .filter(|k| !p.failing.contains_key(*k))
                    .collect();
                let fixed: Vec<&String> = p
                    .failing
                    .keys()
                    .filter(|k| !now.failing.contains_key(*k))
                    .collect();
                if !new.is_empty() {
                    out.push(warning(now));
                } else if !fixed.is_empty() {
                    let fixed: Vec<&str> = fixed.iter().map(|s| s.as_str()).collect();
                    out.push(Transition {
                        severity: Severity::Normal,
                        reason: "PartiallyRecovered".into(),
                        message: format!(
                            "{} recovered: {}; still failing: {}",
                            flux(&now.version),
                            fixed.join(", "),
                            now.message
                        ),
                    });
                }
            }
            (true, true) => {}
        },
    }
    out
}

fn recovered(now: &HealthState) -> Transition {
    Transition {
        severity: Severity::Normal,
        reason: RECOVERED_REASON.into(),
        message: format!("{} is healthy again: {}", flux(&now.version), now.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> HealthState {
        HealthState {
            healthy: true,
            message: "Flux v2.7.3 verified: 4 components ready".into(),
            reason: "ReconciliationSucceeded".into(),
            version: Some("v2.7.3".into()),
            components: ["helm-controller", "source-controller"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        }
    }

    fn unhealthy(parts: &[&str]) -> HealthState {
        let failing: BTreeMap<String, String> = parts
            .iter()
            .map(|p| (p.to_string(), format!("{p} is not ready")))
            .collect();
        HealthState {
            healthy: false,
            message: failing.values().cloned().collect::<Vec<_>>().join("; "),
            reason: "ComponentsNotReady".into(),
            failing,
            ..healthy()
        }
    }

    #[test]
    fn steady_health_emits_nothing_run_after_run() {
        assert!(transitions(&Previous::Seen(healthy()), &healthy()).is_empty());
        let bad = unhealthy(&["component/helm-controller"]);
        assert!(transitions(&Previous::Seen(bad.clone()), &bad).is_empty());
    }

    #[test]
    fn going_unhealthy_is_one_warning_naming_the_parts() {
        let t = transitions(
            &Previous::Seen(healthy()),
            &unhealthy(&["component/helm-controller"]),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].severity, Severity::Warning);
        assert_eq!(t[0].reason, "ComponentsNotReady");
        assert!(
            t[0].message
                .contains("component/helm-controller is not ready")
        );
    }

    #[test]
    fn recovery_is_one_normal_event() {
        let t = transitions(&Previous::Seen(unhealthy(&["sync"])), &healthy());
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].severity, t[0].reason.as_str()),
            (Severity::Normal, "ReconciliationSucceeded")
        );
    }

    #[test]
    fn a_new_failing_part_warns_again_and_a_partial_recovery_is_normal() {
        let one = unhealthy(&["component/helm-controller"]);
        let two = unhealthy(&["component/helm-controller", "sync"]);
        assert_eq!(
            transitions(&Previous::Seen(one.clone()), &two)[0].severity,
            Severity::Warning
        );
        let t = transitions(&Previous::Seen(two), &one);
        assert_eq!(
            (t[0].severity, t[0].reason.as_str()),
            (Severity::Normal, "PartiallyRecovered")
        );
        assert!(t[0].message.contains("recovered: sync"), "{}", t[0].message);
    }

    #[test]
    fn version_and_component_changes_are_normal_events() {
        let mut now = healthy();
        now.version = Some("v2.7.4".into());
        now.components.insert("image-reflector-controller".into());
        now.components.remove("helm-controller");
        let t = transitions(&Previous::Seen(healthy()), &now);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].message, "Flux version changed from v2.7.3 to v2.7.4");
        assert_eq!(
            t[1].message,
            "Flux components changed: appeared: image-reflector-controller; disappeared: helm-controller"
        );
    }

    #[test]
    fn first_run_warns_only_when_unhealthy() {
        assert!(transitions(&Previous::Unknown, &healthy()).is_empty());
        assert_eq!(
            transitions(&Previous::Unknown, &unhealthy(&["sync"])).len(),
            1
        );
    }

    #[test]
    fn persisted_state_avoids_repeating_the_warning_after_a_restart() {
        let bad = unhealthy(&["sync"]);
        let persisted = Previous::Persisted {
            healthy: false,
            message: bad.message.clone(),
            version: bad.version.clone(),
            components: Some(bad.components.clone()),
        };
        assert!(transitions(&persisted, &bad).is_empty());
        let recovered = transitions(&persisted, &healthy());
        assert_eq!(recovered[0].reason, "ReconciliationSucceeded");
    }
}
