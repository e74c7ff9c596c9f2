//! Sync status: the root Kustomization
//! of the cluster and its source.
//!
//! The root is, in order: a configured name (the `--sync-name` flag or the
//! `fluxcd.controlplane.io/syncName` annotation, then FluxInstance
//! `spec.sync.name`), the Kustomization named like the namespace, or the only
//! Kustomization in the namespace. The source is the Kustomization's own
//! `spec.sourceRef`, not an object named like the sync as the Flux Operator's
//! `internal/reporter/sync.go` looks for, which misses a source named
//! otherwise. docs/design.md "The sync lookup" says why.

use crate::redact;
use flux_reporter_api::FluxSyncStatus;
use flux_reporter_api::constants::{READY_CONDITION, SYNC_NAME_ANNOTATION};

use crate::observed::FluxObject;

/// Where a configured root name came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredRoot {
    pub namespace: String,
    pub name: String,
    pub origin: String,
}

impl ConfiguredRoot {
    /// Parse `name` or `namespace/name`; a bare name is in `default_ns`.
    pub fn parse(value: &str, default_ns: &str, origin: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let (namespace, name) = match value.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (default_ns.to_string(), value.to_string()),
        };
        Some(ConfiguredRoot {
            namespace,
            name,
            origin: origin.to_string(),
        })
    }
}

/// Collects root candidates while Kustomizations stream by, keeping only the
/// few objects that can be the root.
#[derive(Debug, Default)]
pub struct RootCandidates {
    namespace: String,
    configured: Option<ConfiguredRoot>,
    configured_match: Option<FluxObject>,
    namespace_named: Option<FluxObject>,
    in_namespace: usize,
    first_in_namespace: Option<FluxObject>,
}

/// Why no sync is reported; rendered into the Ready message.
pub type NoSyncReason = String;

impl RootCandidates {
    pub fn new(namespace: &str, configured: Option<ConfiguredRoot>) -> Self {
        RootCandidates {
            namespace: namespace.to_string(),
            configured,
            ..Default::default()
        }
    }

    pub fn set_configured(&mut self, configured: Option<ConfiguredRoot>) {
        self.configured = configured;
    }

    pub fn observe(&mut self, ks: &FluxObject) {
        let (ns, name) = (ks.namespace(), ks.name());
        if let Some(c) = &self.configured
            && c.namespace == ns
            && c.name == name
        {
            self.configured_match = Some(ks.clone());
        }
        if ns == self.namespace {
            if name == self.namespace {
                self.namespace_named = Some(ks.clone());
            }
            self.in_namespace += 1;
            if self.first_in_namespace.is_none() {
                self.first_in_namespace = Some(ks.clone());
            }
        }
    }

    /// Start over (a list was restarted).
    pub fn reset(&mut self) {
        *self = RootCandidates::new(&self.namespace, self.configured.take());
    }

    /// The root Kustomization, or why there is none.
    pub fn choose(self) -> Result<FluxObject, NoSyncReason> {
        let how = format!(
            "set FluxInstance spec.sync.name, the {SYNC_NAME_ANNOTATION} annotation on the FluxReport, or --sync-name"
        );
        if let Some(c) = self.configured {
            return self.configured_match.ok_or_else(|| {
                format!(
                    "no sync: Kustomization {}/{} named by {} not found",
                    c.namespace, c.name, c.origin
                )
            });
        }
        if let Some(ks) = self.namespace_named {
            return Ok(ks);
        }
        if self.in_namespace == 1
            && let Some(ks) = self.first_in_namespace
        {
            return Ok(ks);
        }
        Err(match self.in_namespace {
            0 => format!(
                "no sync: no Kustomization in namespace {}; {how}",
                self.namespace
            ),
            n => format!(
                "no sync: {n} Kustomizations in namespace {} and none named {}; {how}",
                self.namespace, self.namespace
            ),
        })
    }
}

/// Reference to the root's source: `(kind, namespace, name)`.
pub fn source_ref(ks: &FluxObject) -> Option<(String, String, String)> {
    let r = ks.spec()?.source_ref.get()?;
    let kind = r.kind.non_empty()?.to_string();
    let name = r.name.non_empty()?.to_string();
    let namespace = r
        .namespace
        .non_empty()
        .unwrap_or(ks.namespace())
        .to_string();
    Some((kind, namespace, name))
}

/// The sync status from the root Kustomization and its source, if found.
pub fn sync_status(ks: &FluxObject, source: Option<&FluxObject>) -> FluxSyncStatus {
    let mut sync = FluxSyncStatus {
        id: format!("kustomization/{}", ks.name()),
        path: ks.spec().and_then(|s| s.path.get().cloned()),
        ready: false,
        status: "not initialized".into(),
        source: None,
    };
    if let Some(status) = ks.status() {
        for c in status
            .conditions
            .iter()
            .filter(|c| c.type_.str() == READY_CONDITION)
        {
            sync.ready = c.status.str() != "False";
            sync.status = redact::text(c.message.str()).into_owned();
        }
    }
    if let Some(src) = source {
        let kind = src.kind.str();
        let spec = src.spec();
        sync.source = spec.map(|s| {
            if kind == "Bucket" {
                format!("{}/{}", redact::url(s.endpoint.str()), s.bucket_name.str())
            } else {
                redact::url(s.url.str()).into_owned()
            }
        });
        if let Some(c) = src.condition(READY_CONDITION)
            && c.status.str() == "False"
        {
            sync.ready = false;
            sync.status = format!("{}\n{}", sync.status, redact::text(c.message.str()));
        }
    }
    if ks.spec_suspended() {
        sync.status = format!("Suspended {}", sync.status);
    }
    sync
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj(v: Value) -> FluxObject {
        serde_json::from_value(v).unwrap()
    }

    fn ks(ns: &str, name: &str) -> FluxObject {
        obj(
            json!({"kind": "Kustomization", "metadata": {"name": name, "namespace": ns},
            "spec": {"path": "./clusters/prod", "sourceRef": {"kind": "GitRepository", "name": "fleet-infra"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: main@sha1:abc"}]}}),
        )
    }

    fn git(ready: &str, message: &str) -> FluxObject {
        obj(
            json!({"kind": "GitRepository", "metadata": {"name": "fleet-infra", "namespace": "flux-system"},
            "spec": {"url": "https://github.com/example/fleet-infra.git"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "message": message}]}}),
        )
    }

    #[test]
    fn root_named_like_the_namespace() {
        let mut c = RootCandidates::new("flux-system", None);
        c.observe(&ks("flux-system", "apps"));
        c.observe(&ks("flux-system", "flux-system"));
        c.observe(&ks("apps", "flux-system"));
        let root = c.choose().unwrap();
        assert_eq!(
            (root.namespace(), root.name()),
            ("flux-system", "flux-system")
        );
    }

    #[test]
    fn the_only_kustomization_in_the_namespace_is_the_root() {
        let mut c = RootCandidates::new("flux-system", None);
        c.observe(&ks("flux-system", "cluster-sync"));
        c.observe(&ks("apps", "podinfo"));
        assert_eq!(c.choose().unwrap().name(), "cluster-sync");
    }

    #[test]
    fn configured_name_wins_and_may_name_another_namespace() {
        let configured = ConfiguredRoot::parse("platform/root", "flux-system", "--sync-name");
        let mut c = RootCandidates::new("flux-system", configured);
        c.observe(&ks("flux-system", "flux-system"));
        c.observe(&ks("platform", "root"));
        assert_eq!(c.choose().unwrap().namespace(), "platform");
    }

    #[test]
    fn configured_name_not_found_says_where_it_came_from() {
        let configured =
            ConfiguredRoot::parse("missing", "flux-system", "FluxInstance spec.sync.name");
        let mut c = RootCandidates::new("flux-system", configured);
        c.observe(&ks("flux-system", "flux-system"));
        let err = c.choose().unwrap_err();
        assert!(
            err.contains("flux-system/missing named by FluxInstance spec.sync.name not found"),
            "{err}"
        );
    }

    #[test]
    fn ambiguous_root_explains_how_to_configure() {
        let mut c = RootCandidates::new("flux-system", None);
        c.observe(&ks("flux-system", "a"));
        c.observe(&ks("flux-system", "b"));
        let err = c.choose().unwrap_err();
        assert!(
            err.contains("2 Kustomizations in namespace flux-system"),
            "{err}"
        );
        assert!(err.contains("spec.sync.name"), "{err}");
        assert!(
            RootCandidates::new("flux-system", None)
                .choose()
                .unwrap_err()
                .contains("no Kustomization")
        );
    }

    #[test]
    fn source_is_the_kustomization_source_ref_not_the_sync_name() {
        let root = ks("flux-system", "flux-system");
        assert_eq!(
            source_ref(&root),
            Some((
                "GitRepository".into(),
                "flux-system".into(),
                "fleet-infra".into()
            ))
        );
        let s = sync_status(&root, Some(&git("True", "stored artifact")));
        assert_eq!(s.id, "kustomization/flux-system");
        assert_eq!(s.path.as_deref(), Some("./clusters/prod"));
        assert_eq!(
            s.source.as_deref(),
            Some("https://github.com/example/fleet-infra.git")
        );
        assert!(s.ready);
        assert_eq!(s.status, "Applied revision: main@sha1:abc");
    }

    #[test]
    fn failing_source_makes_sync_not_ready_and_appends_its_message() {
        let s = sync_status(
            &ks("flux-system", "flux-system"),
            Some(&git("False", "auth failed")),
        );
        assert!(!s.ready);
        assert_eq!(s.status, "Applied revision: main@sha1:abc\nauth failed");
    }

    #[test]
    fn suspended_root_is_prefixed() {
        let mut v = json!({"metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {"suspend": true}});
        let s = sync_status(&obj(v.clone()), None);
        assert_eq!(s.status, "Suspended not initialized");
        assert!(!s.ready);
        v["status"] = json!({"conditions": [{"type": "Ready", "status": "Unknown", "message": "Reconciliation in progress"}]});
        let s = sync_status(&obj(v), None);
        assert!(s.ready, "Unknown counts as ready");
    }

    #[test]
    fn bucket_source_is_endpoint_slash_bucket() {
        let b = obj(
            json!({"kind": "Bucket", "metadata": {"name": "b"}, "spec": {"endpoint": "minio:9000", "bucketName": "fleet"}}),
        );
        let s = sync_status(&ks("flux-system", "flux-system"), Some(&b));
        assert_eq!(s.source.as_deref(), Some("minio:9000/fleet"));
    }
}
