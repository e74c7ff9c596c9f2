//! The label sets the info series are encoded from. The `flux_resource_info`
//! rows are the run's own compact [`ResourceRows`] (one string table per
//! kind, 4-byte indices per row; see `flux_reporter_report::metrics`), shared
//! by `Arc`, never copied or rendered ahead of a scrape. The few FluxInstance
//! rows share their repeated values as one `Arc<str>` per distinct value.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use flux_reporter_report::metrics::{InstanceRow, RowRef};
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

/// What `gotk_reconcile_condition` calls a row's Ready status: anything but
/// True/False reads Unknown.
pub(super) fn condition<'a>(row: &RowRef<'a>) -> &'a str {
    match row.condition_status() {
        s @ ("True" | "False") => s,
        _ => "Unknown",
    }
}

/// The label set of one `flux_resource_info` series.
pub(super) struct ResourceLabels<'a> {
    pub kind: &'a str,
    pub row: RowRef<'a>,
    /// `label_<key>` per propagated key; a row holding fewer values gets ""
    /// for the others, one holding more is cut.
    pub label_names: &'a [String],
}

impl EncodeLabelSet for ResourceLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        let r = &self.row;
        let fixed: [(&str, &str); 12] = [
            ("uid", r.uid()),
            ("kind", self.kind),
            ("name", r.name()),
            ("exported_namespace", r.exported_namespace()),
            ("ready", r.ready()),
            ("reason", r.reason()),
            ("suspended", r.suspended()),
            ("revision", r.revision()),
            ("url", r.url()),
            ("ref", r.ref_()),
            ("source_name", r.source_name()),
            ("path", r.path()),
        ];
        for label in fixed {
            label.encode(encoder.encode_label())?;
        }
        for (n, name) in self.label_names.iter().enumerate() {
            (name.as_str(), r.extra(n)).encode(encoder.encode_label())?;
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
