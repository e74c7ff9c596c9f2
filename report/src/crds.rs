//! Flux CRD discovery (the Flux Operator's `internal/reporter/crds.go`): every CRD labelled
//! `app.kubernetes.io/part-of=flux`, at the last of its stored versions.

use flux_reporter_api::constants::{
    FLUX_INSTANCE_KIND, GROUP, RESOURCE_SET_INPUT_PROVIDER_KIND, RESOURCE_SET_KIND, VERSION,
};

use kube::Resource;
use kube::core::{ApiResource, DynamicObject};

use crate::observed::Crd;

/// A kind the report counts, and where to list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxKind {
    pub group: String,
    pub kind: String,
    /// The last entry of the CRD's `status.storedVersions`: what the report shows.
    pub version: String,
    /// A served version to list with: `version` when served, else the storage version.
    pub list_version: String,
    pub plural: String,
    pub namespaced: bool,
    /// FluxInstance, ResourceSet and ResourceSetInputProvider: suspended by
    /// annotation, no `flux_resource_info` series.
    pub operator_kind: bool,
}

impl FluxKind {
    /// `group/version` as the report shows it.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
    /// The kind as kube describes it, at the version it is listed with.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.list_version.clone(),
            api_version: format!("{}/{}", self.group, self.list_version),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
    /// The collection path, from kube's [`Resource::url_path`]: every object of
    /// the kind with `None`, those of one namespace with `Some`.
    pub fn collection(&self, namespace: Option<&str>) -> String {
        DynamicObject::url_path(&self.api_resource(), namespace)
    }
}

/// The Flux Operator kinds, always counted when their CRDs exist (as the Flux Operator's
/// `internal/reporter/reconcilers.go` adds them after the discovered kinds).
pub fn operator_kinds() -> Vec<FluxKind> {
    [
        (FLUX_INSTANCE_KIND, "fluxinstances"),
        (RESOURCE_SET_KIND, "resourcesets"),
        (
            RESOURCE_SET_INPUT_PROVIDER_KIND,
            "resourcesetinputproviders",
        ),
    ]
    .into_iter()
    .map(|(kind, plural)| FluxKind {
        group: GROUP.into(),
        kind: kind.into(),
        version: VERSION.into(),
        list_version: VERSION.into(),
        plural: plural.into(),
        namespaced: true,
        operator_kind: true,
    })
    .collect()
}

/// A CRD that could not be turned into a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdProblem {
    pub crd: String,
    pub kind: Option<String>,
    pub error: String,
}

/// Turn listed CRDs into kinds. A CRD without stored versions or names is a
/// problem for that CRD only.
pub fn discover(crds: &[Crd]) -> (Vec<FluxKind>, Vec<CrdProblem>) {
    let mut kinds = Vec::new();
    let mut problems = Vec::new();
    for crd in crds {
        let name = crd
            .metadata
            .get()
            .map(|m| m.name.str().to_string())
            .unwrap_or_default();
        let spec = crd.spec.get();
        let group = spec.map(|s| s.group.str().to_string()).unwrap_or_default();
        let names = spec.and_then(|s| s.names.get());
        let kind = names.map(|n| n.kind.str().to_string()).unwrap_or_default();
        let plural = names
            .map(|n| n.plural.str().to_string())
            .unwrap_or_default();
        if group.is_empty() || kind.is_empty() || plural.is_empty() {
            problems.push(CrdProblem {
                crd: name,
                kind: (!kind.is_empty()).then_some(kind),
                error: "CRD has no group, kind or plural name".into(),
            });
            continue;
        }
        let stored: Vec<&String> = crd
            .status
            .get()
            .map(|s| s.stored_versions.iter().collect())
            .unwrap_or_default();
        let Some(version) = stored.last().copied().cloned() else {
            problems.push(CrdProblem {
                error: format!("no stored versions found for CRD {name}"),
                crd: name,
                kind: Some(kind),
            });
            continue;
        };
        let versions: Vec<_> = spec
            .map(|s| s.versions.iter().collect())
            .unwrap_or_default();
        let served = |v: &str| {
            versions
                .iter()
                .any(|cv| cv.name.str() == v && cv.served.is_true())
        };
        let list_version = if versions.is_empty() || served(&version) {
            version.clone()
        } else {
            versions
                .iter()
                .find(|cv| cv.storage.is_true())
                .or_else(|| versions.iter().find(|cv| cv.served.is_true()))
                .map(|cv| cv.name.str().to_string())
                .unwrap_or_else(|| version.clone())
        };
        let namespaced = spec.is_none_or(|s| s.scope.str() != "Cluster");
        kinds.push(FluxKind {
            group,
            kind,
            version,
            list_version,
            plural,
            namespaced,
            operator_kind: false,
        });
    }
    (kinds, problems)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn crd(group: &str, kind: &str, plural: &str, stored: &[&str]) -> Crd {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{plural}.{group}"),
                         "labels": {"app.kubernetes.io/part-of": "flux"}},
            "spec": {"group": group, "names": {"kind": kind, "plural": plural}, "scope": "Namespaced",
                     "versions": stored.iter().map(|v| json!({"name": v, "served": true, "storage": false})).collect::<Vec<_>>()},
            "status": {"storedVersions": stored}
        }))
        .unwrap()
    }

    #[test]
    fn last_stored_version_is_used() {
        let (kinds, problems) = discover(&[crd(
            "source.toolkit.fluxcd.io",
            "OCIRepository",
            "ocirepositories",
            &["v1beta2", "v1"],
        )]);
        assert!(problems.is_empty());
        assert_eq!(kinds[0].api_version(), "source.toolkit.fluxcd.io/v1");
        assert_eq!(
            kinds[0].collection(None),
            "/apis/source.toolkit.fluxcd.io/v1/ocirepositories"
        );
        assert_eq!(
            kinds[0].collection(Some("apps")),
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/apps/ocirepositories"
        );
    }

    #[test]
    fn no_stored_versions_is_a_problem_for_that_crd_only() {
        let (kinds, problems) = discover(&[
            crd("source.toolkit.fluxcd.io", "Bucket", "buckets", &[]),
            crd(
                "kustomize.toolkit.fluxcd.io",
                "Kustomization",
                "kustomizations",
                &["v1"],
            ),
        ]);
        assert_eq!(kinds.len(), 1);
        assert_eq!(
            problems[0].error,
            "no stored versions found for CRD buckets.source.toolkit.fluxcd.io"
        );
        assert_eq!(problems[0].kind.as_deref(), Some("Bucket"));
    }

    #[test]
    fn an_unserved_stored_version_is_listed_at_the_storage_version() {
        let c: Crd = serde_json::from_value(json!({
            "metadata": {"name": "alerts.notification.toolkit.fluxcd.io"},
            "spec": {"group": "notification.toolkit.fluxcd.io", "names": {"kind": "Alert", "plural": "alerts"},
                     "versions": [{"name": "v1beta2", "served": false, "storage": false},
                                  {"name": "v1beta3", "served": true, "storage": true}]},
            "status": {"storedVersions": ["v1beta3", "v1beta2"]}
        }))
        .unwrap();
        let (kinds, _) = discover(&[c]);
        assert_eq!(kinds[0].version, "v1beta2");
        assert_eq!(kinds[0].list_version, "v1beta3");
    }
}
