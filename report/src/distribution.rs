//! Distribution: from the labels of the gitrepositories CRD, as the Flux
//! Operator's reporter reads them (`internal/reporter/distribution.go` in
//! https://github.com/controlplaneio-fluxcd/flux-operator).

use std::collections::BTreeMap;

use flux_reporter_api::FluxDistributionStatus;
use flux_reporter_api::constants::{KUSTOMIZE_NAME_LABEL, MANAGED_BY_LABEL, VERSION_LABEL};
use flux_reporter_api::fluxreport::distribution::{
    INSTALLED, MANAGED_BY_BOOTSTRAP, NOT_INSTALLED, UNKNOWN,
};

/// `labels` are those of the probe CRD, or `None` when it does not exist.
/// The entitlement is the Flux Operator's vendor feature; we report `Unknown`.
pub fn distribution(labels: Option<&BTreeMap<String, String>>) -> FluxDistributionStatus {
    let mut d = FluxDistributionStatus {
        entitlement: UNKNOWN.into(),
        status: NOT_INSTALLED.into(),
        version: None,
        managed_by: None,
    };
    if let Some(labels) = labels {
        d.status = INSTALLED.into();
        d.version = labels.get(VERSION_LABEL).filter(|v| !v.is_empty()).cloned();
        d.managed_by = labels
            .get(MANAGED_BY_LABEL)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| {
                labels
                    .contains_key(KUSTOMIZE_NAME_LABEL)
                    .then(|| MANAGED_BY_BOOTSTRAP.to_string())
            });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn installed_with_version_and_managed_by() {
        let d = distribution(Some(&labels(&[
            ("app.kubernetes.io/version", "v2.7.3"),
            ("app.kubernetes.io/managed-by", "flux-operator"),
        ])));
        assert_eq!(d.status, "Installed");
        assert_eq!(d.version.as_deref(), Some("v2.7.3"));
        assert_eq!(d.managed_by.as_deref(), Some("flux-operator"));
        assert_eq!(d.entitlement, "Unknown");
    }

    #[test]
    fn bootstrap_is_inferred_from_the_kustomize_label() {
        let d = distribution(Some(&labels(&[(
            "kustomize.toolkit.fluxcd.io/name",
            "flux-system",
        )])));
        assert_eq!(d.managed_by.as_deref(), Some("flux bootstrap"));
    }

    #[test]
    fn managed_by_label_wins_over_bootstrap() {
        let d = distribution(Some(&labels(&[
            ("app.kubernetes.io/managed-by", "Helm"),
            ("kustomize.toolkit.fluxcd.io/name", "flux-system"),
        ])));
        assert_eq!(d.managed_by.as_deref(), Some("Helm"));
    }

    #[test]
    fn missing_probe_crd_is_not_installed() {
        let d = distribution(None);
        assert_eq!(d.status, "Not Installed");
        assert_eq!(d.version, None);
    }
}
