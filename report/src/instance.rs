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

/// Failure classes: what kind of wrong a problem is. A subject (`component/x`) can fail in
/// several ways at once (its image from another registry *and* not ready); each is a failing
/// part of its own, so a controller that goes down while it is flagged for its registry is news.
pub mod classes {
    pub const NOT_INSTALLED: &str = "not-installed";
    pub const VERSION_MISMATCH: &str = "version-mismatch";
    pub const VERSION_UNKNOWN: &str = "version-unknown";
    pub const MISSING: &str = "missing";
    pub const NOT_READY: &str = "not-ready";
    pub const REGISTRY_MISMATCH: &str = "registry-mismatch";
    pub const SOURCE_MISMATCH: &str = "source-mismatch";
    pub const PATH_MISMATCH: &str = "path-mismatch";
    pub const REF_MISMATCH: &str = "ref-mismatch";
}

/// One way the observed installation differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    /// What is wrong: `version`, `distribution`, `component/<name>`, `sync`.
    pub subject: String,
    /// How it is wrong: one of [`classes`].
    pub class: &'static str,
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
            class: classes::NOT_INSTALLED,
            message: format!("Flux is {}", report.distribution.status),
        });
    } else {
        match &version {
            Some(v) if !version_matches(&declared.distribution.version, v) => {
                problems.push(Problem {
                    reason: reasons::VERSION_MISMATCH,
                    subject: "version".into(),
                    class: classes::VERSION_MISMATCH,
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
                class: classes::VERSION_UNKNOWN,
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
                    class: classes::MISSING,
                    message: format!("component {name} is not installed"),
                }),
                Some(c) if !c.ready => problems.push(Problem {
                    reason: reasons::COMPONENTS_NOT_READY,
                    subject: format!("component/{name}"),
                    class: classes::NOT_READY,
                    message: format!("component {name} is not ready: {}", c.status),
                }),
                Some(_) => {}
            }
        }
        let registry = declared.distribution.registry.trim_end_matches('/');
        for c in &report.components {
            if !registry.is_empty() && !from_registry(&c.image, registry) {
                problems.push(Problem {
                    reason: reasons::REGISTRY_MISMATCH,
                    subject: format!("component/{}", c.name),
                    class: classes::REGISTRY_MISMATCH,
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
                    class: classes::MISSING,
                    message: "the declared sync was not found".into(),
                }),
                Some(observed) => {
                    let mut diffs: Vec<(&'static str, String)> = Vec::new();
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
                        diffs.push((
                            classes::SOURCE_MISMATCH,
                            format!("source {url} is not the declared {want_url}"),
                        ));
                    }
                    let path = observed.path.as_deref().unwrap_or("");
                    if normalize_path(path) != normalize_path(&sync.path) {
                        diffs.push((
                            classes::PATH_MISMATCH,
                            format!("path {path} is not the declared {}", sync.path),
                        ));
                    }
                    if sync.kind != "Bucket"
                        && let Some(observed_ref) = outcome.sync_source_ref.as_deref()
                        && !ref_matches(&sync.ref_, observed_ref)
                    {
                        diffs.push((
                            classes::REF_MISMATCH,
                            format!("ref {observed_ref} is not the declared {}", sync.ref_),
                        ));
                    }
                    if !observed.ready {
                        let status = observed.status.lines().collect::<Vec<_>>().join(" / ");
                        diffs.push((
                            classes::NOT_READY,
                            format!("{} is not ready: {status}", observed.id),
                        ));
                    }
                    // One problem per way the sync is wrong, so that a sync flagged for its
                    // path that then fails to apply is a new failure.
                    problems.extend(diffs.into_iter().map(|(class, diff)| Problem {
                        reason: reasons::SYNC_FAILED,
                        subject: "sync".into(),
                        class,
                        message: format!("sync {diff}"),
                    }));
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

/// Is `image` (a container image reference) from `registry` (a registry host with an optional
/// path, `ghcr.io/fluxcd`, `docker.io/fluxcd`, `fluxcd`, `registry.local:5000/mirror/`)?
///
/// Both are compared in the normalized form of the container reference grammar, as
/// distribution/reference's `ParseNormalizedNamed` gives it
/// (<https://github.com/distribution/reference/blob/main/normalize.go>):
/// - the first path component is a registry host only when it contains a `.` or a `:`, or is
///   `localhost` (or has upper case letters, which repository paths cannot have); otherwise the
///   registry is Docker Hub, `docker.io`;
/// - `index.docker.io` is the old name of `docker.io`;
/// - a Docker Hub repository of a single component lives under `library/` (`alpine` is
///   `docker.io/library/alpine`);
/// - registry hosts are compared without regard to case (DNS names), and a trailing `/` of the
///   declared registry does not matter.
///
/// So `registry: docker.io/fluxcd` matches `fluxcd/helm-controller:v1`, and
/// `registry: ghcr.io/fluxcd` does not match `ghcr.io/fluxcd-mirror/helm-controller`.
pub fn from_registry(image: &str, registry: &str) -> bool {
    let repository = normalize_name(&parse_image(image).repository, true);
    let registry = normalize_name(registry.trim_end_matches('/'), false);
    if registry.is_empty() {
        return true;
    }
    repository
        .strip_prefix(&registry)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// `domain/path` of a repository name (`image` true) or a registry prefix, normalized as
/// [`from_registry`] says.
fn normalize_name(name: &str, image: bool) -> String {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let is_host = |c: &str| {
        c.contains(['.', ':']) || c == "localhost" || c.chars().any(|ch| ch.is_ascii_uppercase())
    };
    // A registry written without a path (`ghcr.io`, `localhost:5000`) is a host; a lone name
    // of an image (`alpine`) is a repository on Docker Hub.
    let (domain, path) = match rest {
        Some(rest) if is_host(first) => (first.to_ascii_lowercase(), rest.to_string()),
        None if !image && is_host(first) => (first.to_ascii_lowercase(), String::new()),
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if image && domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if path.is_empty() {
        domain
    } else {
        format!("{domain}/{path}")
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
    fn registries_compare_as_container_references() {
        for (image, registry, want) in [
            (
                "ghcr.io/fluxcd/helm-controller:v1.4.0",
                "ghcr.io/fluxcd",
                true,
            ),
            (
                "ghcr.io/fluxcd/helm-controller:v1.4.0",
                "ghcr.io/fluxcd/",
                true,
            ),
            (
                "ghcr.io/fluxcd/helm-controller:v1.4.0",
                "GHCR.io/fluxcd",
                true,
            ),
            ("GHCR.IO/fluxcd/helm-controller", "ghcr.io/fluxcd", true),
            ("ghcr.io/fluxcd/helm-controller", "ghcr.io", true),
            // Docker Hub: written with or without its host, or with its old name.
            ("fluxcd/helm-controller:v1.4.0", "docker.io/fluxcd", true),
            (
                "docker.io/fluxcd/helm-controller:v1.4.0",
                "docker.io/fluxcd",
                true,
            ),
            (
                "index.docker.io/fluxcd/helm-controller",
                "docker.io/fluxcd",
                true,
            ),
            (
                "fluxcd/helm-controller@sha256:abc",
                "index.docker.io/fluxcd/",
                true,
            ),
            ("docker.io/fluxcd/helm-controller", "fluxcd", true),
            ("fluxcd/helm-controller", "docker.io", true),
            // Single names are official images under library/.
            ("alpine:3", "docker.io/library", true),
            ("alpine:3", "docker.io/fluxcd", false),
            // Hosts with ports, localhost.
            (
                "localhost:5000/fluxcd/helm-controller",
                "localhost:5000/fluxcd",
                true,
            ),
            ("localhost/fluxcd/helm-controller", "localhost/fluxcd", true),
            (
                "registry.local:5000/mirror/fluxcd/x:v1",
                "registry.local:5000/mirror",
                true,
            ),
            // Real mismatches stay flagged.
            (
                "ghcr.io/fluxcd/helm-controller:v1.4.0",
                "docker.io/fluxcd",
                false,
            ),
            ("fluxcd/helm-controller:v1.4.0", "ghcr.io/fluxcd", false),
            (
                "ghcr.io/fluxcd-mirror/helm-controller",
                "ghcr.io/fluxcd",
                false,
            ),
            (
                "ghcr.io/fluxcd/helm-controller",
                "ghcr.io/fluxcd/helm",
                false,
            ),
            (
                "evil.io/ghcr.io/fluxcd/helm-controller",
                "ghcr.io/fluxcd",
                false,
            ),
            ("localhost:5001/fluxcd/x", "localhost:5000/fluxcd", false),
            (
                "docker.io/evil/helm-controller:v1",
                "docker.io/fluxcd",
                false,
            ),
        ] {
            assert_eq!(
                from_registry(image, registry),
                want,
                "{image} from {registry}"
            );
        }
    }

    #[test]
    fn a_component_from_a_docker_hub_mirror_written_short_is_not_flagged() {
        let mut d = declared("2.x");
        d.distribution.registry = "docker.io/fluxcd".into();
        let mut report = observed();
        for c in &mut report.components {
            c.image = format!("fluxcd/{}:v1.7.3", c.name);
        }
        assert_eq!(verify(&d, &report, &Outcome::default()).ready, Some(true));
    }

    #[test]
    fn a_subject_failing_two_ways_is_two_problems() {
        let mut report = observed();
        report.components[0].image = "docker.io/mirror/helm-controller:v1".into();
        report.components[0].ready = false;
        let v = verify(&declared("2.x"), &report, &Outcome::default());
        let parts: Vec<(&str, &str)> = v
            .problems
            .iter()
            .map(|p| (p.subject.as_str(), p.class))
            .collect();
        assert_eq!(
            parts,
            [
                ("component/helm-controller", classes::NOT_READY),
                ("component/helm-controller", classes::REGISTRY_MISMATCH)
            ]
        );
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
