//! FluxInstance verification: the declared installation (`spec`) against the
//! observed one (the report), on every run. Pure: the operator writes the
//! result into the FluxInstance status and turns changes into events.

use flux_reporter_api::fluxinstance::{ComponentImage, FluxInstanceSpec};
use flux_reporter_api::fluxreport::distribution::INSTALLED;
use flux_reporter_api::{FluxComponentStatus, FluxReportSpec};

use crate::compute::{Outcome, Section};

/// Ready reasons, one per failure class, most fundamental first.
pub mod reasons {
    pub const SUCCEEDED: &str = "ReconciliationSucceeded";
    pub const NOT_INSTALLED: &str = "FluxNotInstalled";
    pub const VERSION_MISMATCH: &str = "VersionMismatch";
    pub const COMPONENTS_NOT_READY: &str = "ComponentsNotReady";
    pub const REGISTRY_MISMATCH: &str = "RegistryMismatch";
    pub const SYNC_FAILED: &str = "SyncFailed";
    pub const INCOMPLETE: &str = "VerificationIncomplete";
}

/// One way the observed installation differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    /// What is wrong: `version`, `component/<name>`, `sync`.
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `Some(true)` healthy, `Some(false)` not, `None` could not tell.
    pub ready: Option<bool>,
    pub reason: &'static str,
    pub message: String,
    pub problems: Vec<Problem>,
    /// The observed Flux version, e.g. `v2.7.3`.
    pub revision: Option<String>,
    /// The observed components' images.
    pub components: Vec<ComponentImage>,
}

/// Verify `declared` against `report` (the spec published this run, last
/// good values merged) and `outcome` (what failed this run).
pub fn verify(
    declared: &FluxInstanceSpec,
    report: &FluxReportSpec,
    outcome: &Outcome,
) -> Verification {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let version = report.distribution.version.clone();

    if outcome.failed(Section::Distribution) {
        unknown.push("distribution");
    } else if report.distribution.status != INSTALLED {
        problems.push(Problem {
            reason: reasons::NOT_INSTALLED,
            subject: "distribution".into(),
            message: format!("Flux is {}", report.distribution.status),
        });
    } else {
        match &version {
            Some(v) if !version_matches(&declared.distribution.version, v) => {
                problems.push(Problem {
                    reason: reasons::VERSION_MISMATCH,
                    subject: "version".into(),
                    message: format!(
                        "Flux {v} does not match the declared version {}",
                        declared.distribution.version
                    ),
                })
            }
            Some(_) => {}
            None => problems.push(Problem {
                reason: reasons::VERSION_MISMATCH,
                subject: "version".into(),
                message:
                    "the installed Flux version is unknown (no app.kubernetes.io/version label)"
                        .into(),
            }),
        }
    }

    if outcome.failed(Section::Components) {
        unknown.push("components");
    } else {
        for name in declared.component_names() {
            match report.components.iter().find(|c| c.name == name) {
                None => problems.push(Problem {
                    reason: reasons::COMPONENTS_NOT_READY,
                    subject: format!("component/{name}"),
                    message: format!("component {name} is not installed"),
                }),
                Some(c) if !c.ready => problems.push(Problem {
                    reason: reasons::COMPONENTS_NOT_READY,
                    subject: format!("component/{name}"),
                    message: format!("component {name} is not ready: {}", c.status),
                }),
                Some(_) => {}
            }
        }
        let registry = declared.distribution.registry.trim_end_matches('/');
        for c in &report.components {
            let image = parse_image(&c.image);
            if !registry.is_empty() && !image.repository.starts_with(&format!("{registry}/")) {
                problems.push(Problem {
                    reason: reasons::REGISTRY_MISMATCH,
                    subject: format!("component/{}", c.name),
                    message: format!(
                        "component {} image {} is not from registry {registry}",
                        c.name, c.image
                    ),
                });
            }
        }
    }

    if let Some(sync) = &declared.sync {
        if outcome.failed(Section::Sync) {
            unknown.push("sync");
        } else {
            match &report.sync {
                None => problems.push(Problem {
                    reason: reasons::SYNC_FAILED,
                    subject: "sync".into(),
                    message: "the declared sync was not found".into(),
                }),
                Some(observed) => {
                    let mut diffs = Vec::new();
                    let url = observed.source.as_deref().unwrap_or("");
                    // The observed source is reported without credentials:
                    // compare (and name) the declared one the same way.
                    let want_url = if sync.kind == "Bucket" {
                        format!("{}/{}", crate::redact::url(&sync.url), sync.ref_)
                    } else {
                        crate::redact::url(&sync.url).into_owned()
                    };
                    if !url.is_empty()
                        && url.trim_end_matches('/') != want_url.trim_end_matches('/')
                    {
                        diffs.push(format!("source {url} is not the declared {want_url}"));
                    }
                    let path = observed.path.as_deref().unwrap_or("");
                    if normalize_path(path) != normalize_path(&sync.path) {
                        diffs.push(format!("path {path} is not the declared {}", sync.path));
                    }
                    if sync.kind != "Bucket"
                        && let Some(observed_ref) = outcome.sync_source_ref.as_deref()
                        && !ref_matches(&sync.ref_, observed_ref)
                    {
                        diffs.push(format!(
                            "ref {observed_ref} is not the declared {}",
                            sync.ref_
                        ));
                    }
                    if !observed.ready {
                        let status = observed.status.lines().collect::<Vec<_>>().join(" / ");
                        diffs.push(format!("{} is not ready: {status}", observed.id));
                    }
                    if !diffs.is_empty() {
                        problems.push(Problem {
                            reason: reasons::SYNC_FAILED,
                            subject: "sync".into(),
                            message: format!("sync {}", diffs.join("; ")),
                        });
                    }
                }
            }
        }
    }

    let components = report.components.iter().map(component_image).collect();
    let revision = version
        .clone()
        .filter(|_| report.distribution.status == INSTALLED);
    let (ready, reason, message) = if let Some(first) = first_by_priority(&problems) {
        let parts: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        (Some(false), first, parts.join("; "))
    } else if !unknown.is_empty() {
        (
            None,
            reasons::INCOMPLETE,
            format!(
                "could not verify {}: the report could not read them",
                unknown.join(", ")
            ),
        )
    } else {
        let v = version.as_deref().unwrap_or("");
        let n = declared.component_names().len();
        let sync = if declared.sync.is_some() {
            ", sync ready"
        } else {
            ""
        };
        (
            Some(true),
            reasons::SUCCEEDED,
            format!("Flux {v} verified: {n} components ready{sync}"),
        )
    };
    Verification {
        ready,
        reason,
        message,
        problems,
        revision,
        components,
    }
}

fn first_by_priority(problems: &[Problem]) -> Option<&'static str> {
    use reasons::*;
    [
        NOT_INSTALLED,
        VERSION_MISMATCH,
        COMPONENTS_NOT_READY,
        REGISTRY_MISMATCH,
        SYNC_FAILED,
    ]
    .into_iter()
    .find(|r| problems.iter().any(|p| p.reason == *r))
}

fn normalize_path(p: &str) -> &str {
    let p = p.trim();
    let p = p.strip_prefix("./").unwrap_or(p);
    let p = p.trim_end_matches('/');
    if p == "." { "" } else { p }
}

/// A declared ref (`refs/heads/main`, `refs/tags/v1`, `main`, `latest`)
/// against the source's observed ref (branch, tag, semver or name).
fn ref_matches(declared: &str, observed: &str) -> bool {
    declared == observed
        || declared.strip_prefix("refs/heads/") == Some(observed)
        || declared.strip_prefix("refs/tags/") == Some(observed)
        || observed.strip_prefix("refs/heads/") == Some(declared)
        || observed.strip_prefix("refs/tags/") == Some(declared)
}

/// An image reference split into repository, tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
}

pub fn parse_image(image: &str) -> ImageRef {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repository, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], &rest[last_slash + i + 1..]),
        None => (rest, ""),
    };
    ImageRef {
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest,
    }
}

fn component_image(c: &FluxComponentStatus) -> ComponentImage {
    let i = parse_image(&c.image);
    ComponentImage {
        name: c.name.clone(),
        repository: i.repository,
        tag: i.tag,
        digest: i.digest,
    }
}

/// Does `version` (e.g. `v2.7.3`) satisfy `constraint` (`2.x`, `2.7.x`,
/// `2.7.3`, `*`, `>=2.5.0 <3.0.0`, `>=2.5, <2.8`, `~2.7`, `^2.6`, `a || b`)?
pub fn version_matches(constraint: &str, version: &str) -> bool {
    let Some(v) = parse_version(version) else {
        return false;
    };
    constraint.split("||").any(|alt| {
        alt.split([',', ' '])
            .filter(|c| !c.trim().is_empty())
            .all(|c| term_matches(c.trim(), v))
    })
}

type Version = (u64, u64, u64);

fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim().trim_start_matches('v');
    let core = s.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((major, minor, patch))
}

fn term_matches(term: &str, v: Version) -> bool {
    for (op, f) in [
        (">=", (|a, b| a >= b) as fn(Version, Version) -> bool),
        ("<=", |a, b| a <= b),
        ("!=", |a, b| a != b),
        (">", |a, b| a > b),
        ("<", |a, b| a < b),
        ("=", |a, b| a == b),
    ] {
        if let Some(rest) = term.strip_prefix(op) {
            return parse_version(rest).is_some_and(|c| f(v, c));
        }
    }
    if let Some(rest) = term.strip_prefix('~') {
        // ~2.7 and ~2.7.1: same major and minor, at least the given patch.
        return parse_version(rest).is_some_and(|c| v.0 == c.0 && v.1 == c.1 && v >= c);
    }
    if let Some(rest) = term.strip_prefix('^') {
        return parse_version(rest).is_some_and(|c| v.0 == c.0 && v >= c);
    }
    // Wildcards and exact versions: 2.x, 2.7.*, 2.7.3, *.
    let parts: Vec<&str> = term.trim_start_matches('v').split('.').collect();
    let have = [v.0, v.1, v.2];
    for (i, p) in parts.iter().enumerate().take(3) {
        if matches!(*p, "x" | "X" | "*") {
            return true;
        }
        match p
            .split(['-', '+'])
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if n == have[i] => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_reporter_api::fluxinstance::{Distribution, Sync};
    use flux_reporter_api::{FluxDistributionStatus, FluxSyncStatus};

    fn declared(version: &str) -> FluxInstanceSpec {
        FluxInstanceSpec {
            distribution: Distribution {
                version: version.into(),
                registry: "ghcr.io/fluxcd".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn component(name: &str, ready: bool) -> FluxComponentStatus {
        FluxComponentStatus {
            name: name.into(),
            ready,
            status: if ready {
                "Current Deployment is available. Replicas: 1"
            } else {
                "InProgress Available: 0/1"
            }
            .into(),
            image: format!("ghcr.io/fluxcd/{name}:v1.7.3@sha256:abc"),
        }
    }

    fn observed() -> FluxReportSpec {
        FluxReportSpec {
            distribution: FluxDistributionStatus {
                entitlement: "Unknown".into(),
                status: "Installed".into(),
                version: Some("v2.7.3".into()),
                managed_by: None,
            },
            components: [
                "helm-controller",
                "kustomize-controller",
                "notification-controller",
                "source-controller",
            ]
            .iter()
            .map(|n| component(n, true))
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn version_constraints() {
        for (c, v, want) in [
            ("2.x", "v2.7.3", true),
            ("2.7.x", "v2.7.3", true),
            ("2.6.x", "v2.7.3", false),
            ("2.7.3", "v2.7.3", true),
            ("v2.7.3", "v2.7.3", true),
            ("2.7.2", "v2.7.3", false),
            ("*", "v2.7.3", true),
            (">=2.5.0 <3.0.0", "v2.7.3", true),
            (">=2.5, <2.7", "v2.7.3", false),
            ("~2.7", "v2.7.3", true),
            ("^2.8", "v2.7.3", false),
            ("1.x || 2.x", "v2.7.3", true),
            ("2.x", "not-a-version", false),
        ] {
            assert_eq!(version_matches(c, v), want, "{c} vs {v}");
        }
    }

    #[test]
    fn images_split_into_repository_tag_and_digest() {
        assert_eq!(
            parse_image("ghcr.io/fluxcd/source-controller:v1.7.3@sha256:abc"),
            ImageRef {
                repository: "ghcr.io/fluxcd/source-controller".into(),
                tag: "v1.7.3".into(),
                digest: Some("sha256:abc".into())
            }
        );
        let i = parse_image("localhost:5000/fluxcd/helm-controller");
        assert_eq!(
            (i.repository.as_str(), i.tag.as_str()),
            ("localhost:5000/fluxcd/helm-controller", "")
        );
    }

    #[test]
    fn a_matching_installation_is_ready() {
        let v = verify(&declared("2.x"), &observed(), &Outcome::default());
        assert_eq!(v.ready, Some(true), "{v:?}");
        assert_eq!(v.reason, "ReconciliationSucceeded");
        assert_eq!(v.revision.as_deref(), Some("v2.7.3"));
        assert_eq!(v.components[0].tag, "v1.7.3");
    }

    #[test]
    fn version_outside_the_range_is_a_mismatch() {
        let v = verify(&declared("2.6.x"), &observed(), &Outcome::default());
        assert_eq!((v.ready, v.reason), (Some(false), "VersionMismatch"));
        assert!(
            v.message
                .contains("Flux v2.7.3 does not match the declared version 2.6.x"),
            "{}",
            v.message
        );
    }

    #[test]
    fn missing_or_unready_components_are_named() {
        let mut report = observed();
        report.components.retain(|c| c.name != "helm-controller");
        report.components[0].ready = false;
        let v = verify(&declared("2.x"), &report, &Outcome::default());
        assert_eq!(v.reason, "ComponentsNotReady");
        assert!(
            v.message
                .contains("component helm-controller is not installed"),
            "{}",
            v.message
        );
        assert!(
            v.message
                .contains("component kustomize-controller is not ready: "),
            "{}",
            v.message
        );
    }

    #[test]
    fn images_from_another_registry_are_flagged() {
        let mut report = observed();
        report.components[0].image = "docker.io/evil/helm-controller:v1".into();
        let v = verify(&declared("2.x"), &report, &Outcome::default());
        assert_eq!(v.reason, "RegistryMismatch");
    }

    #[test]
    fn declared_sync_must_match_and_be_ready() {
        let mut d = declared("2.x");
        d.sync = Some(Sync {
            kind: "GitRepository".into(),
            url: "https://github.com/example/fleet.git".into(),
            ref_: "refs/heads/main".into(),
            path: "clusters/prod".into(),
            ..Default::default()
        });
        let mut report = observed();
        report.sync = Some(FluxSyncStatus {
            id: "kustomization/flux-system".into(),
            path: Some("./clusters/prod".into()),
            ready: true,
            status: "Applied".into(),
            source: Some("https://github.com/example/fleet.git".into()),
        });
        let mut outcome = Outcome {
            sync_source_ref: Some("main".into()),
            ..Default::default()
        };
        assert_eq!(verify(&d, &report, &outcome).ready, Some(true));
        outcome.sync_source_ref = Some("develop".into());
        let v = verify(&d, &report, &outcome);
        assert_eq!(v.reason, "SyncFailed");
        assert!(
            v.message
                .contains("ref develop is not the declared refs/heads/main"),
            "{}",
            v.message
        );
        report.sync.as_mut().unwrap().ready = false;
        outcome.sync_source_ref = Some("main".into());
        assert!(
            verify(&d, &report, &outcome)
                .message
                .contains("kustomization/flux-system is not ready")
        );
        report.sync = None;
        assert_eq!(verify(&d, &report, &outcome).reason, "SyncFailed");
    }

    #[test]
    fn unreadable_sections_make_verification_unknown_not_false() {
        let outcome = Outcome {
            failures: vec![crate::Failure {
                section: Section::Components,
                kind: None,
                error: "forbidden".into(),
            }],
            ..Default::default()
        };
        let v = verify(&declared("2.x"), &observed(), &outcome);
        assert_eq!((v.ready, v.reason), (None, "VerificationIncomplete"));
    }

    #[test]
    fn not_installed() {
        let mut report = observed();
        report.distribution.status = "Not Installed".into();
        let v = verify(&declared("2.x"), &report, &Outcome::default());
        assert_eq!(v.reason, "FluxNotInstalled");
        assert_eq!(v.revision, None);
    }
}
