//! Which events a run deserves: health *transitions* only (healthy to
//! unhealthy and back, new failing parts, recovered parts, version changed,
//! components appeared or disappeared), never one event per run.

use std::collections::BTreeSet;

/// One failing part: a subject (`component/helm-controller`, `sync`, `version`) and how it
/// fails (`not-ready`, `registry-mismatch`, ...: `flux_reporter_report::instance::classes`).
/// A subject that fails in a new way is a new failure: a controller flagged for its registry
/// that then goes down is news, as Alertmanager and Flux's notification-controller tell alerts
/// apart by cause, not only by object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    pub subject: String,
    pub class: String,
}

impl Part {
    pub fn new(subject: impl Into<String>, class: impl Into<String>) -> Part {
        Part {
            subject: subject.into(),
            class: class.into(),
        }
    }

    /// `subject=class`, the form kept in the FluxInstance's `status.history`.
    pub fn key(&self) -> String {
        format!("{}={}", self.subject, self.class)
    }

    /// Parts from a list of [`Part::key`]s separated by commas; `None` when one is malformed.
    pub fn parse_keys(keys: &str) -> Option<BTreeSet<Part>> {
        keys.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let (subject, class) = k.rsplit_once('=')?;
                (!subject.is_empty() && !class.is_empty()).then(|| Part::new(subject, class))
            })
            .collect()
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.subject, self.class.replace('-', " "))
    }
}

/// The health of the installation as one run saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthState {
    pub healthy: bool,
    /// Failing parts with their message, in the order the message names them.
    pub failing: Vec<(Part, String)>,
    /// The Ready reason when unhealthy (the first failure class).
    pub reason: String,
    /// The whole human message when unhealthy.
    pub message: String,
    pub version: Option<String>,
    pub components: BTreeSet<String>,
}

impl HealthState {
    pub fn parts(&self) -> BTreeSet<Part> {
        self.failing.iter().map(|(p, _)| p.clone()).collect()
    }

    pub fn is_failing(&self, part: &Part) -> bool {
        self.failing.iter().any(|(p, _)| p == part)
    }
}

/// What we know of the previous state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nothing: the first run of a fresh operator with no persisted state.
    Unknown,
    /// Persisted in the FluxInstance status by an earlier run (maybe of another
    /// process): readiness, the message, the failing parts (from `status.history`; `None` when
    /// an older version wrote the status), the version and components.
    Persisted {
        healthy: bool,
        message: String,
        failing: Option<BTreeSet<Part>>,
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
pub const PARTIALLY_RECOVERED_REASON: &str = "PartiallyRecovered";
pub const VERSION_CHANGED_REASON: &str = "VersionChanged";
pub const COMPONENTS_CHANGED_REASON: &str = "ComponentsChanged";

/// The Warning for `now`, given the parts that were failing `before`: the new failures first,
/// then the others after "also failing:", so that a note cut at 1024 bytes never hides the
/// news behind a list of parts that were failing already.
fn warning(now: &HealthState, before: &BTreeSet<Part>) -> Transition {
    let (new, old): (Vec<_>, Vec<_>) = now.failing.iter().partition(|(p, _)| !before.contains(p));
    let message = if new.is_empty() || old.is_empty() {
        now.message.clone()
    } else {
        let join = |parts: &[&(Part, String)]| {
            parts
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        format!("{}; also failing: {}", join(&new), join(&old))
    };
    Transition {
        severity: Severity::Warning,
        reason: now.reason.clone(),
        message,
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
                out.push(warning(now, &BTreeSet::new()));
            }
        }
        Previous::Persisted {
            healthy,
            failing: Some(before),
            ..
        } => out.extend(health_change(*healthy, before, now)),
        // A status written before the failing parts were recorded: its message is all we have.
        Previous::Persisted {
            healthy,
            message,
            failing: None,
            ..
        } => match (*healthy, now.healthy) {
            (true, false) => out.push(warning(now, &BTreeSet::new())),
            (false, false) if *message != now.message => out.push(warning(now, &BTreeSet::new())),
            (false, true) => out.push(recovered(now)),
            _ => {}
        },
        Previous::Seen(p) => out.extend(health_change(p.healthy, &p.parts(), now)),
    }
    out
}

/// The health event, if any, from a state with `before` failing to `now`. Both the state this
/// process saw and the one a restarted process reads back from the FluxInstance decide here,
/// so a restart never changes which events fire.
fn health_change(
    was_healthy: bool,
    before: &BTreeSet<Part>,
    now: &HealthState,
) -> Option<Transition> {
    match (was_healthy, now.healthy) {
        (true, false) => Some(warning(now, &BTreeSet::new())),
        (false, true) => Some(recovered(now)),
        (true, true) => None,
        (false, false) => {
            if now.failing.iter().any(|(p, _)| !before.contains(p)) {
                return Some(warning(now, before));
            }
            let fixed: Vec<String> = before
                .iter()
                .filter(|p| !now.is_failing(p))
                .map(Part::to_string)
                .collect();
            (!fixed.is_empty()).then(|| Transition {
                severity: Severity::Normal,
                reason: PARTIALLY_RECOVERED_REASON.into(),
                message: format!(
                    "{} recovered: {}; still failing: {}",
                    flux(&now.version),
                    fixed.join(", "),
                    now.message
                ),
            })
        }
    }
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

    /// Unhealthy with `(subject, class, message)` failing, the message naming them in order.
    fn failing(parts: &[(&str, &str, &str)]) -> HealthState {
        let failing: Vec<(Part, String)> = parts
            .iter()
            .map(|(s, c, m)| (Part::new(*s, *c), m.to_string()))
            .collect();
        HealthState {
            healthy: false,
            message: failing
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            reason: "ComponentsNotReady".into(),
            failing,
            ..healthy()
        }
    }

    fn unhealthy(subjects: &[&str]) -> HealthState {
        let parts: Vec<(&str, &str, String)> = subjects
            .iter()
            .map(|s| (*s, "not-ready", format!("{s} is not ready")))
            .collect();
        let parts: Vec<(&str, &str, &str)> =
            parts.iter().map(|(s, c, m)| (*s, *c, m.as_str())).collect();
        failing(&parts)
    }

    /// What a restarted process reads back of `h` from the FluxInstance status.
    fn restarted(h: &HealthState) -> Previous {
        Previous::Persisted {
            healthy: h.healthy,
            message: h.message.clone(),
            failing: Some(h.parts()),
            version: h.version.clone(),
            components: Some(h.components.clone()),
        }
    }

    const REGISTRY: &str = "registry-mismatch";

    /// Every component flagged for its registry (a mirror the FluxInstance does not declare).
    fn flagged() -> HealthState {
        let mut h = failing(&[
            (
                "component/helm-controller",
                REGISTRY,
                "component helm-controller image mirror.local/fluxcd/helm-controller:v1 is not \
                 from registry ghcr.io/fluxcd",
            ),
            (
                "component/source-controller",
                REGISTRY,
                "component source-controller image mirror.local/fluxcd/source-controller:v1 is \
                 not from registry ghcr.io/fluxcd",
            ),
        ]);
        h.reason = "RegistryMismatch".into();
        h
    }

    /// [`flagged`], and helm-controller down too.
    fn flagged_and_down() -> HealthState {
        let f = flagged();
        let mut h = failing(&[
            (
                "component/helm-controller",
                "not-ready",
                "component helm-controller is not ready: InProgress Available: 0/1",
            ),
            ("component/helm-controller", REGISTRY, &f.failing[0].1),
            ("component/source-controller", REGISTRY, &f.failing[1].1),
        ]);
        h.reason = "ComponentsNotReady".into();
        h
    }

    fn summary(t: &[Transition]) -> Vec<(Severity, &str)> {
        t.iter().map(|t| (t.severity, t.reason.as_str())).collect()
    }

    #[test]
    fn steady_health_emits_nothing_run_after_run() {
        assert!(transitions(&Previous::Seen(healthy()), &healthy()).is_empty());
        let bad = unhealthy(&["component/helm-controller"]);
        assert!(transitions(&Previous::Seen(bad.clone()), &bad).is_empty());
        assert!(transitions(&restarted(&bad), &bad).is_empty());
    }

    #[test]
    fn a_flagged_component_that_goes_down_warns_and_leads_with_the_news() {
        let t = transitions(&Previous::Seen(flagged()), &flagged_and_down());
        assert_eq!(
            summary(&t),
            [(Severity::Warning, "ComponentsNotReady")],
            "{t:?}"
        );
        assert!(
            t[0].message.starts_with(
                "component helm-controller is not ready: InProgress Available: 0/1; also \
                 failing: component helm-controller image"
            ),
            "{}",
            t[0].message
        );
        // Back up: only the registry is still wrong.
        let t = transitions(&Previous::Seen(flagged_and_down()), &flagged());
        assert_eq!(
            summary(&t),
            [(Severity::Normal, PARTIALLY_RECOVERED_REASON)],
            "{t:?}"
        );
        assert!(
            t[0].message
                .contains("recovered: component/helm-controller (not ready); still failing:"),
            "{}",
            t[0].message
        );
    }

    /// The transition table: healthy, flagged for the registry, also down, flagged again,
    /// healthy. Each step gives the same events whether the previous state was seen by this
    /// process or read back after a restart.
    #[test]
    fn a_restart_between_any_two_states_gives_the_same_events() {
        let steps = [
            (
                healthy(),
                flagged(),
                vec![(Severity::Warning, "RegistryMismatch")],
            ),
            (flagged(), flagged(), vec![]),
            (
                flagged(),
                flagged_and_down(),
                vec![(Severity::Warning, "ComponentsNotReady")],
            ),
            (flagged_and_down(), flagged_and_down(), vec![]),
            (
                flagged_and_down(),
                flagged(),
                vec![(Severity::Normal, PARTIALLY_RECOVERED_REASON)],
            ),
            (
                flagged(),
                healthy(),
                vec![(Severity::Normal, RECOVERED_REASON)],
            ),
            (
                healthy(),
                flagged_and_down(),
                vec![(Severity::Warning, "ComponentsNotReady")],
            ),
        ];
        for (i, (before, after, want)) in steps.iter().enumerate() {
            let seen = transitions(&Previous::Seen(before.clone()), after);
            let persisted = transitions(&restarted(before), after);
            assert_eq!(summary(&seen), *want, "step {i}, seen: {seen:?}");
            assert_eq!(seen, persisted, "step {i}: a restart changed the events");
        }
    }

    #[test]
    fn the_same_subject_failing_the_same_way_with_another_message_is_not_news() {
        let before = failing(&[(
            "component/helm-controller",
            "not-ready",
            "component helm-controller is not ready: InProgress Available: 0/1",
        )]);
        let now = failing(&[(
            "component/helm-controller",
            "not-ready",
            "component helm-controller is not ready: Failed ProgressDeadlineExceeded",
        )]);
        assert!(transitions(&Previous::Seen(before.clone()), &now).is_empty());
        assert!(transitions(&restarted(&before), &now).is_empty());
    }

    #[test]
    fn parts_round_trip_through_their_keys() {
        let h = flagged_and_down();
        let keys = h
            .parts()
            .iter()
            .map(Part::key)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Part::parse_keys(&keys), Some(h.parts()));
        assert_eq!(Part::parse_keys(""), Some(BTreeSet::new()));
        assert_eq!(Part::parse_keys("sync=not-ready,broken"), None);
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
        assert_eq!(summary(&t), [(Severity::Normal, "ReconciliationSucceeded")]);
    }

    #[test]
    fn a_new_failing_part_warns_again_and_a_partial_recovery_is_normal() {
        let one = unhealthy(&["component/helm-controller"]);
        let two = unhealthy(&["component/helm-controller", "sync"]);
        let t = transitions(&Previous::Seen(one.clone()), &two);
        assert_eq!(t[0].severity, Severity::Warning);
        assert_eq!(
            t[0].message,
            "sync is not ready; also failing: component/helm-controller is not ready"
        );
        let t = transitions(&Previous::Seen(two), &one);
        assert_eq!(summary(&t), [(Severity::Normal, "PartiallyRecovered")]);
        assert!(
            t[0].message.contains("recovered: sync (not ready)"),
            "{}",
            t[0].message
        );
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
    fn a_status_without_failing_parts_is_compared_by_its_message() {
        let bad = unhealthy(&["sync"]);
        let persisted = Previous::Persisted {
            healthy: false,
            message: bad.message.clone(),
            failing: None,
            version: bad.version.clone(),
            components: Some(bad.components.clone()),
        };
        assert!(transitions(&persisted, &bad).is_empty());
        let recovered = transitions(&persisted, &healthy());
        assert_eq!(recovered[0].reason, "ReconciliationSucceeded");
        let worse = unhealthy(&["sync", "version"]);
        assert_eq!(
            summary(&transitions(&persisted, &worse)),
            [(Severity::Warning, "ComponentsNotReady")]
        );
    }
}
