//! Reconciler statistics (the Flux Operator's `internal/reporter/reconcilers.go`,
//! https://github.com/controlplaneio-fluxcd/flux-operator): per kind, running/failing/suspended
//! counts and artifact storage, accumulated object by object so that memory
//! does not grow with the number of objects.

use flux_reporter_api::constants::{DEPENDENCY_NOT_READY_REASON, READY_CONDITION};
use flux_reporter_api::{FluxReconcilerStats, FluxReconcilerStatus};

use crate::crds::FluxKind;
use crate::observed::FluxObject;

/// Counters for one kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KindStats {
    pub total: i64,
    pub suspended: i64,
    pub failing: i64,
    pub total_size: i64,
}

/// Is the object suspended? Flux kinds: `spec.suspend`; operator kinds: the
/// `fluxcd.controlplane.io/reconcile: disabled` label or annotation.
pub fn is_suspended(obj: &FluxObject, operator_kind: bool) -> bool {
    if operator_kind {
        obj.reconcile_disabled()
    } else {
        obj.spec_suspended()
    }
}

/// Is the object failing? Not suspended, and a Ready condition is False with
/// a reason other than `DependencyNotReady`.
pub fn is_failing(obj: &FluxObject, operator_kind: bool) -> bool {
    if is_suspended(obj, operator_kind) {
        return false;
    }
    obj.status().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_.str() == READY_CONDITION
                && c.status.str() == "False"
                && c.reason.str() != DEPENDENCY_NOT_READY_REASON
        })
    })
}

impl KindStats {
    /// Count one object.
    pub fn add(&mut self, obj: &FluxObject, operator_kind: bool) {
        self.total += 1;
        if is_suspended(obj, operator_kind) {
            self.suspended += 1;
        } else if is_failing(obj, operator_kind) {
            self.failing += 1;
        }
        if !operator_kind
            && let Some(size) = obj
                .status()
                .and_then(|s| s.artifact.get())
                .and_then(|a| a.size.value())
        {
            self.total_size = self.total_size.saturating_add(size.max(0));
        }
    }

    /// The report entry for the kind.
    pub fn entry(&self, kind: &FluxKind) -> FluxReconcilerStatus {
        let size = format_size(self.total_size);
        FluxReconcilerStatus {
            api_version: kind.api_version(),
            kind: kind.kind.clone(),
            stats: FluxReconcilerStats {
                running: self.total - self.suspended,
                failing: self.failing,
                suspended: self.suspended,
                total_size: (!size.is_empty()).then_some(size),
            },
        }
    }
}

/// Sort entries by `apiVersion + kind`, byte order, as the Flux Operator sorts them.
/// The key is the concatenation, not the pair: `a/v1` + `Z` sorts after
/// `a/v1beta1` + `A` only when compared as one string, as the Flux Operator does.
pub fn sort_entries(entries: &mut [FluxReconcilerStatus]) {
    entries.sort_by_cached_key(|e| format!("{}{}", e.api_version, e.kind));
}

/// Binary units with one decimal; empty for zero (the Flux Operator's `formatSize`).
pub fn format_size(bytes: i64) -> String {
    if bytes <= 0 {
        return String::new();
    }
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj(v: Value) -> FluxObject {
        serde_json::from_value(v).unwrap()
    }

    fn ready(status: &str, reason: &str) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns"},
               "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason}]}})
    }

    fn kind(name: &str) -> FluxKind {
        FluxKind {
            group: "source.toolkit.fluxcd.io".into(),
            kind: name.into(),
            version: "v1".into(),
            list_version: "v1".into(),
            plural: "x".into(),
            namespaced: true,
            operator_kind: false,
        }
    }

    #[test]
    fn format_size_matches_the_flux_operator_table() {
        for (n, want) in [
            (0, ""),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (1048576, "1.0 MiB"),
            (5242880, "5.0 MiB"),
            (1073741824, "1.0 GiB"),
        ] {
            assert_eq!(format_size(n), want, "{n}");
        }
    }

    #[test]
    fn running_is_total_minus_suspended_and_includes_failing() {
        let mut s = KindStats::default();
        s.add(&obj(ready("True", "Succeeded")), false);
        s.add(&obj(ready("False", "BuildFailed")), false);
        let mut suspended = ready("True", "Succeeded");
        suspended["spec"] = json!({"suspend": true});
        s.add(&obj(suspended), false);
        let e = s.entry(&kind("GitRepository"));
        assert_eq!(
            (e.stats.running, e.stats.failing, e.stats.suspended),
            (2, 1, 1)
        );
    }

    #[test]
    fn dependency_not_ready_is_not_failing() {
        let mut s = KindStats::default();
        s.add(&obj(ready("False", "DependencyNotReady")), false);
        assert_eq!(s.failing, 0);
    }

    #[test]
    fn suspended_and_failing_counts_as_suspended_only() {
        let mut v = ready("False", "BuildFailed");
        v["spec"] = json!({"suspend": true});
        let mut s = KindStats::default();
        s.add(&obj(v), false);
        assert_eq!((s.suspended, s.failing), (1, 0));
    }

    #[test]
    fn unknown_ready_is_not_failing() {
        let mut s = KindStats::default();
        s.add(&obj(ready("Unknown", "Progressing")), false);
        s.add(&obj(json!({"metadata": {"name": "new"}})), false);
        assert_eq!((s.total, s.failing), (2, 0));
    }

    #[test]
    fn operator_kinds_suspend_by_annotation_or_label_not_spec() {
        let by_annotation = obj(json!({"metadata": {"name": "a",
            "annotations": {"fluxcd.controlplane.io/reconcile": "Disabled"}}}));
        let by_label = obj(json!({"metadata": {"name": "b",
            "labels": {"fluxcd.controlplane.io/reconcile": "disabled"}}}));
        let by_spec = obj(json!({"metadata": {"name": "c"}, "spec": {"suspend": true}}));
        assert!(is_suspended(&by_annotation, true));
        assert!(is_suspended(&by_label, true));
        assert!(!is_suspended(&by_spec, true));
        assert!(is_suspended(&by_spec, false));
    }

    #[test]
    fn artifact_sizes_are_summed_and_wrong_types_ignored() {
        let mut s = KindStats::default();
        for size in [json!(1024), json!(512), json!("big")] {
            s.add(
                &obj(json!({"metadata": {"name": "a"}, "status": {"artifact": {"size": size}}})),
                false,
            );
        }
        assert_eq!(
            s.entry(&kind("Bucket")).stats.total_size.as_deref(),
            Some("1.5 KiB")
        );
        assert_eq!(
            KindStats::default().entry(&kind("Bucket")).stats.total_size,
            None
        );
    }

    #[test]
    fn entries_sort_by_api_version_and_kind() {
        let mk = |av: &str, k: &str| FluxReconcilerStatus {
            api_version: av.into(),
            kind: k.into(),
            ..Default::default()
        };
        let mut e = vec![
            mk("source.toolkit.fluxcd.io/v1", "OCIRepository"),
            mk("fluxcd.controlplane.io/v1", "FluxInstance"),
            mk("source.toolkit.fluxcd.io/v1", "Bucket"),
            mk("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ];
        sort_entries(&mut e);
        let kinds: Vec<_> = e.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["FluxInstance", "HelmRelease", "Bucket", "OCIRepository"]
        );
    }
}
