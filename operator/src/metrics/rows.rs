//! The rows the info series are encoded from, held once and compactly: a
//! row keeps its label values, never rendered text, and values that many
//! objects repeat (namespace, ready, reason, revision, source, propagated
//! label values…) are one shared `Arc<str>` per distinct value of a run.
//! Only `uid` and `name`, unique per object, are owned per row.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use flux_reporter_report::metrics::{InstanceRow, ResourceRow};
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// One string per distinct value during a publish.
#[derive(Default)]
pub(super) struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub(super) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(shared.clone());
        shared
    }
}

/// One Flux object: the labels of `flux_resource_info` (its kind is the
/// kind its rows are held under) and what the legacy series need.
#[derive(Debug)]
pub(super) struct Resource {
    uid: Box<str>,
    name: Box<str>,
    namespace: Arc<str>,
    ready: Arc<str>,
    reason: Arc<str>,
    suspended: Arc<str>,
    revision: Arc<str>,
    url: Arc<str>,
    ref_: Arc<str>,
    source_name: Arc<str>,
    path: Arc<str>,
    /// The Ready condition's own status, for `gotk_reconcile_condition`.
    condition: Arc<str>,
    /// Propagated label values, in configured key order; missing ones are "".
    extra: Box<[Arc<str>]>,
}

impl Resource {
    /// `labels` is the number of propagated keys: `extra` is padded with ""
    /// or cut to it, so encoding never has to check.
    pub(super) fn new(row: &ResourceRow, labels: usize, i: &mut Interner) -> Self {
        let extra = (0..labels)
            .map(|n| i.get(row.extra.get(n).map_or("", String::as_str)))
            .collect();
        Resource {
            uid: row.uid.as_str().into(),
            name: row.name.as_str().into(),
            namespace: i.get(&row.exported_namespace),
            ready: i.get(&row.ready),
            reason: i.get(&row.reason),
            suspended: i.get(&row.suspended),
            revision: i.get(&row.revision),
            url: i.get(&row.url),
            ref_: i.get(&row.ref_),
            source_name: i.get(&row.source_name),
            path: i.get(&row.path),
            condition: i.get(&row.condition_status),
            extra,
        }
    }

    pub(super) fn suspended(&self) -> bool {
        &*self.suspended == "True"
    }

    /// What `gotk_reconcile_condition` calls the Ready status: anything but
    /// True/False reads Unknown.
    pub(super) fn condition(&self) -> &str {
        match &*self.condition {
            s @ ("True" | "False") => s,
            _ => "Unknown",
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// The label set of one `flux_resource_info` series.
pub(super) struct ResourceLabels<'a> {
    pub kind: &'a str,
    pub row: &'a Resource,
    /// `label_<key>` per propagated key, as long as `row.extra`.
    pub label_names: &'a [String],
}

impl EncodeLabelSet for ResourceLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        let r = self.row;
        let fixed: [(&str, &str); 12] = [
            ("uid", &r.uid),
            ("kind", self.kind),
            ("name", &r.name),
            ("exported_namespace", &r.namespace),
            ("ready", &r.ready),
            ("reason", &r.reason),
            ("suspended", &r.suspended),
            ("revision", &r.revision),
            ("url", &r.url),
            ("ref", &r.ref_),
            ("source_name", &r.source_name),
            ("path", &r.path),
        ];
        for label in fixed {
            label.encode(encoder.encode_label())?;
        }
        for (name, value) in self.label_names.iter().zip(r.extra.iter()) {
            (name.as_str(), &**value).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// One FluxInstance: the labels of `flux_instance_info`, in order.
#[derive(Debug)]
pub(super) struct Instance([(&'static str, Arc<str>); 9]);

impl Instance {
    pub(super) fn new(row: &InstanceRow, i: &mut Interner) -> Self {
        Instance([
            ("uid", i.get(&row.uid)),
            ("kind", i.get(&row.kind)),
            ("name", i.get(&row.name)),
            ("exported_namespace", i.get(&row.exported_namespace)),
            ("ready", i.get(&row.ready)),
            ("reason", i.get(&row.reason)),
            ("suspended", i.get(&row.suspended)),
            ("registry", i.get(&row.registry)),
            ("revision", i.get(&row.revision)),
        ])
    }
}

impl EncodeLabelSet for Instance {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.0.encode(encoder)
    }
}

/// `label_<key>` names for the propagated keys, as kube-state-metrics names
/// them: every character outside `[a-zA-Z0-9_]` becomes `_`, and keys that
/// end up with the same name are all suffixed `_conflict1`, `_conflict2`, …
/// in configured order.
pub(super) fn label_names(keys: &[String]) -> Vec<String> {
    let base: Vec<String> = keys
        .iter()
        .map(|k| {
            let sanitized: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("label_{sanitized}")
        })
        .collect();
    let mut used = HashSet::new();
    base.iter()
        .map(|b| {
            let clash = base.iter().filter(|x| *x == b).count() > 1;
            let mut n = 1;
            let mut name = if clash {
                format!("{b}_conflict{n}")
            } else {
                b.clone()
            };
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{b}_conflict{n}");
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_are_one_string_and_extra_fits_the_keys() {
        let mut i = Interner::default();
        let row = |name: &str, extra: &[&str]| ResourceRow {
            name: name.into(),
            exported_namespace: "apps".into(),
            ready: "True".into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let a = Resource::new(&row("a", &["platform"]), 2, &mut i);
        let b = Resource::new(&row("b", &["platform", "x", "cut"]), 2, &mut i);
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(&a.ready, &b.ready));
        assert!(Arc::ptr_eq(&a.extra[0], &b.extra[0]));
        assert!(Arc::ptr_eq(&a.url, &a.path), "one empty string");
        let extra = |r: &Resource| r.extra.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(extra(&a), ["platform", ""]);
        assert_eq!(extra(&b), ["platform", "x"]);
        assert_eq!((a.name(), b.name()), ("a", "b"));
    }
}
