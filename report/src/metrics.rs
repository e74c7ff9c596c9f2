//! Metric rows: the label set of `flux_resource_info` for each Flux object
//! (every per-kind rule of the Flux Operator's `internal/reporter/metrics.go`), the legacy `gotk_*` values, and
//! `flux_instance_info` rows. The operator turns rows into series.
//!
//! A run's rows are held compactly, once: [`ResourceRows`] keeps one kind's
//! rows as indices into one string table per kind, each distinct label value
//! stored once (see docs/design.md "Memory"). [`ResourceRow`] is the same row
//! with its own strings, for tests and for reading a single row.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use crate::redact;
use flux_reporter_api::constants::READY_CONDITION;
use hashbrown::HashTable;

use crate::observed::FluxObject;

/// One `flux_resource_info` series, plus what the legacy series need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceRow {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub revision: String,
    pub url: String,
    pub ref_: String,
    pub source_name: String,
    pub path: String,
    /// Values of the propagated object labels, in the configured key order.
    pub extra: Vec<String>,
    /// The Ready condition's own status (`True`, `False`, `Unknown`), before the
    /// per-kind overrides: what `gotk_reconcile_condition` reports.
    pub condition_status: String,
}

fn bool_label(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The label values of one object, borrowed from it: what [`resource_row`]
/// copies and [`ResourceRowsBuilder::push_object`] interns, in
/// [`ResourceRows`] field order.
struct Fields<'a> {
    uid: &'a str,
    name: &'a str,
    namespace: &'a str,
    ready: &'a str,
    reason: &'a str,
    suspended: &'static str,
    revision: &'a str,
    url: Cow<'a, str>,
    ref_: &'a str,
    source_name: &'a str,
    path: &'a str,
    condition: &'a str,
}

impl<'a> Fields<'a> {
    fn of(kind: &str, obj: &'a FluxObject) -> Self {
        let meta = obj.meta();
        let spec = obj.spec();
        let status = obj.status();
        let ready_cond = obj.condition(READY_CONDITION);
        let condition = ready_cond
            .and_then(|c| c.status.get())
            .map_or("Unknown", String::as_str);

        let mut f = Fields {
            uid: meta.map_or("", |m| m.uid.str()),
            name: obj.name(),
            namespace: obj.namespace(),
            ready: condition,
            reason: ready_cond.map_or("", |c| c.reason.str()),
            suspended: bool_label(obj.spec_suspended()),
            revision: "",
            url: Cow::Borrowed(""),
            ref_: "",
            source_name: "",
            path: "",
            condition,
        };

        // Generic rules.
        if let Some(spec) = spec {
            if let Some(r) = spec.source_ref.get() {
                f.source_name = r.name.str();
            }
            f.url = redact::url(spec.url.str());
        }
        if let Some(status) = status {
            if let Some(a) = status.artifact.get() {
                f.revision = a.revision.str();
            }
            if let Some(r) = status.last_attempted_revision.get() {
                f.revision = r.as_str();
            }
        }

        // Kind-specific rules.
        match kind {
            "Kustomization" => {
                f.path = spec.map_or("", |s| s.path.str());
            }
            "GitRepository" | "OCIRepository" => {
                if let Some(r) = spec.and_then(|s| s.ref_.get()) {
                    let order: &[&crate::lenient::LStr] = if kind == "GitRepository" {
                        &[&r.branch, &r.tag, &r.semver, &r.name]
                    } else {
                        &[&r.tag, &r.semver]
                    };
                    for field in order {
                        if let Some(v) = field.get() {
                            f.ref_ = v.as_str();
                        }
                    }
                }
            }
            "Bucket" => {
                if let Some(spec) = spec {
                    f.url = redact::url(spec.endpoint.str());
                    f.ref_ = spec.bucket_name.str();
                }
            }
            "HelmRelease" => {
                if let Some(spec) = spec {
                    if let Some(r) = spec.chart_ref.get() {
                        f.source_name = r.name.str();
                    }
                    if let Some(r) = spec
                        .chart
                        .get()
                        .and_then(|c| c.spec.get())
                        .and_then(|s| s.source_ref.get())
                    {
                        f.source_name = r.name.str();
                    }
                }
            }
            "HelmRepository" if spec.is_some_and(|s| s.type_.str() == "oci") => {
                f.ready = "True";
            }
            "Alert" | "Provider" => f.ready = "True",
            "Receiver" => {
                f.url = Cow::Borrowed(status.map_or("", |s| s.webhook_path.str()));
            }
            "ImageRepository" => {
                f.url = spec.map_or(Cow::Borrowed(""), |s| redact::url(s.image.str()));
            }
            "ImagePolicy" => {
                f.source_name = spec
                    .and_then(|s| s.image_repository_ref.get())
                    .map_or("", |r| r.name.str());
            }
            _ => {}
        }
        f
    }

    fn values(&self) -> [&str; FIELDS] {
        [
            self.uid,
            self.name,
            self.namespace,
            self.ready,
            self.reason,
            self.suspended,
            self.revision,
            &self.url,
            self.ref_,
            self.source_name,
            self.path,
            self.condition,
        ]
    }
}

/// The values of `propagate` among the object's labels, "" when absent.
fn label_values<'a>(
    obj: &'a FluxObject,
    propagate: &'a [String],
) -> impl Iterator<Item = &'a str> + 'a {
    let labels = obj.labels();
    propagate
        .iter()
        .map(move |k| labels.and_then(|l| l.get(k)).map_or("", String::as_str))
}

/// The row for one Flux object of `kind`. `propagate` lists object label
/// keys copied into `extra` (empty string when the object lacks the label).
pub fn resource_row(kind: &str, obj: &FluxObject, propagate: &[String]) -> ResourceRow {
    let f = Fields::of(kind, obj);
    ResourceRow {
        uid: f.uid.into(),
        kind: kind.into(),
        name: f.name.into(),
        exported_namespace: f.namespace.into(),
        ready: f.ready.into(),
        reason: f.reason.into(),
        suspended: f.suspended.into(),
        revision: f.revision.into(),
        url: f.url.into_owned(),
        ref_: f.ref_.into(),
        source_name: f.source_name.into(),
        path: f.path.into(),
        extra: label_values(obj, propagate).map(String::from).collect(),
        condition_status: f.condition.into(),
    }
}

/// A value's index in its [`ResourceRows`]' string table.
type Sym = u32;

/// The label values a row holds, in this order: uid, name,
/// exported_namespace, ready, reason, suspended, revision, url, ref,
/// source_name, path, and the Ready condition's own status.
const FIELDS: usize = 12;

/// Every distinct string of a kind's rows, end to end in one buffer. Index 0
/// is "".
#[derive(Clone)]
struct Strings {
    text: String,
    /// Where each string ends in `text`; string `i` starts where `i - 1` ends.
    ends: Vec<u32>,
}

impl Default for Strings {
    fn default() -> Self {
        Strings {
            text: String::new(),
            ends: vec![0],
        }
    }
}

impl Strings {
    fn get(&self, sym: Sym) -> &str {
        let i = sym as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * size_of::<u32>()
    }
}

/// One kind's `flux_resource_info` rows, compact and immutable: per row,
/// twelve 4-byte indices into the kind's string table (plus one per
/// propagated label), each distinct value (a namespace, a reason, a
/// revision, a URL…) stored once. Cloning shares the rows.
#[derive(Clone, Default)]
pub struct ResourceRows(Arc<Packed>);

#[derive(Default)]
struct Packed {
    kind: String,
    strings: Strings,
    rows: Vec<[Sym; FIELDS]>,
    /// `width` propagated label values per row, row after row.
    extra: Vec<Sym>,
    width: usize,
}

impl ResourceRows {
    pub fn len(&self) -> usize {
        self.0.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.rows.is_empty()
    }

    /// The kind the rows are of.
    pub fn kind(&self) -> &str {
        &self.0.kind
    }

    /// Each row's label values, borrowed: what encoding reads.
    pub fn refs(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        let p = &*self.0;
        (0..p.rows.len()).map(move |i| RowRef {
            values: &p.rows[i],
            extra: &p.extra[i * p.width..(i + 1) * p.width],
            strings: &p.strings,
        })
    }

    /// Each row with its own strings (allocates: for tests and tools).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ResourceRow> + '_ {
        self.refs().map(|r| r.to_row(self.kind()))
    }

    /// Heap bytes held by the rows and their strings.
    pub fn heap_bytes(&self) -> usize {
        let p = &*self.0;
        p.kind.capacity()
            + p.strings.bytes()
            + p.rows.capacity() * size_of::<[Sym; FIELDS]>()
            + p.extra.capacity() * size_of::<Sym>()
    }

    /// Whether both hold the same strings, not copies of them.
    pub fn shares(&self, other: &ResourceRows) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Distinct strings held, "" included.
    pub fn distinct_values(&self) -> usize {
        self.0.strings.ends.len()
    }
}

impl PartialEq for ResourceRows {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ResourceRows {}

impl fmt::Debug for ResourceRows {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Rows given with their own strings, each cut or padded with "" to the
/// longest `extra`; the kind is the first row's.
impl From<Vec<ResourceRow>> for ResourceRows {
    fn from(rows: Vec<ResourceRow>) -> Self {
        let kind = rows.first().map(|r| r.kind.as_str()).unwrap_or_default();
        let width = rows.iter().map(|r| r.extra.len()).max().unwrap_or(0);
        let mut b = ResourceRowsBuilder::new(kind, width);
        for r in &rows {
            b.push_row(r);
        }
        b.finish()
    }
}

impl FromIterator<ResourceRow> for ResourceRows {
    fn from_iter<I: IntoIterator<Item = ResourceRow>>(rows: I) -> Self {
        rows.into_iter().collect::<Vec<_>>().into()
    }
}

/// One row of a [`ResourceRows`], its values borrowed from the string table.
#[derive(Clone, Copy)]
pub struct RowRef<'a> {
    values: &'a [Sym; FIELDS],
    extra: &'a [Sym],
    strings: &'a Strings,
}

impl<'a> RowRef<'a> {
    fn get(&self, field: usize) -> &'a str {
        self.strings.get(self.values[field])
    }
    pub fn uid(&self) -> &'a str {
        self.get(0)
    }
    pub fn name(&self) -> &'a str {
        self.get(1)
    }
    pub fn exported_namespace(&self) -> &'a str {
        self.get(2)
    }
    pub fn ready(&self) -> &'a str {
        self.get(3)
    }
    pub fn reason(&self) -> &'a str {
        self.get(4)
    }
    pub fn suspended(&self) -> &'a str {
        self.get(5)
    }
    pub fn revision(&self) -> &'a str {
        self.get(6)
    }
    pub fn url(&self) -> &'a str {
        self.get(7)
    }
    pub fn ref_(&self) -> &'a str {
        self.get(8)
    }
    pub fn source_name(&self) -> &'a str {
        self.get(9)
    }
    pub fn path(&self) -> &'a str {
        self.get(10)
    }
    pub fn condition_status(&self) -> &'a str {
        self.get(11)
    }
    /// The `n`th propagated label value; "" past the values held.
    pub fn extra(&self, n: usize) -> &'a str {
        self.extra.get(n).map_or("", |s| self.strings.get(*s))
    }

    pub fn to_row(&self, kind: &str) -> ResourceRow {
        ResourceRow {
            uid: self.uid().into(),
            kind: kind.into(),
            name: self.name().into(),
            exported_namespace: self.exported_namespace().into(),
            ready: self.ready().into(),
            reason: self.reason().into(),
            suspended: self.suspended().into(),
            revision: self.revision().into(),
            url: self.url().into(),
            ref_: self.ref_().into(),
            source_name: self.source_name().into(),
            path: self.path().into(),
            extra: (0..self.extra.len())
                .map(|n| self.extra(n).into())
                .collect(),
            condition_status: self.condition_status().into(),
        }
    }
}

/// Builds one kind's [`ResourceRows`] as its objects stream by: each value is
/// looked up in the kind's table and stored only when new. The lookup index
/// is dropped by `finish`.
pub struct ResourceRowsBuilder {
    strings: Strings,
    index: HashTable<Sym>,
    hasher: RandomState,
    rows: Vec<[Sym; FIELDS]>,
    extra: Vec<Sym>,
    width: usize,
    kind: String,
}

impl Default for ResourceRowsBuilder {
    fn default() -> Self {
        ResourceRowsBuilder::new("", 0)
    }
}

impl ResourceRowsBuilder {
    /// Rows of `kind` with `width` propagated label values each.
    pub fn new(kind: &str, width: usize) -> Self {
        ResourceRowsBuilder {
            strings: Strings::default(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            rows: Vec::new(),
            extra: Vec::new(),
            width,
            kind: kind.to_string(),
        }
    }

    /// The row of one object of the builder's kind, as [`resource_row`]
    /// makes it, with `propagate`'s values cut or padded to the width.
    pub fn push_object(&mut self, obj: &FluxObject, propagate: &[String]) {
        let f = Fields::of(&self.kind, obj);
        let row = f.values().map(|v| self.intern(v));
        self.rows.push(row);
        let mut labels = label_values(obj, propagate);
        for _ in 0..self.width {
            let sym = self.intern(labels.next().unwrap_or(""));
            self.extra.push(sym);
        }
    }

    /// A row given with its own strings; `extra` cut or padded to the width.
    pub fn push_row(&mut self, r: &ResourceRow) {
        let values = [
            &r.uid,
            &r.name,
            &r.exported_namespace,
            &r.ready,
            &r.reason,
            &r.suspended,
            &r.revision,
            &r.url,
            &r.ref_,
            &r.source_name,
            &r.path,
            &r.condition_status,
        ];
        let row = values.map(|v| self.intern(v));
        self.rows.push(row);
        for n in 0..self.width {
            let sym = self.intern(r.extra.get(n).map_or("", String::as_str));
            self.extra.push(sym);
        }
    }

    /// Forget the rows pushed (a list restarted), keeping the kind and width.
    pub fn clear(&mut self) {
        *self = ResourceRowsBuilder::new(&self.kind, self.width);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, sized to fit; the lookup index is freed.
    pub fn finish(self) -> ResourceRows {
        let ResourceRowsBuilder {
            mut strings,
            mut rows,
            mut extra,
            width,
            kind,
            ..
        } = self;
        strings.text.shrink_to_fit();
        strings.ends.shrink_to_fit();
        rows.shrink_to_fit();
        extra.shrink_to_fit();
        ResourceRows(Arc::new(Packed {
            kind,
            strings,
            rows,
            extra,
            width,
        }))
    }

    /// The index of `s` in the table, stored now if new. The table holds at
    /// most 4 GiB of text (a `u32` offset); a value that would pass it reads
    /// "" (unreachable in practice: object strings are capped at 32 KiB and
    /// the process would hold gigabytes of label text before).
    fn intern(&mut self, s: &str) -> Sym {
        if s.is_empty() {
            return 0;
        }
        let hash = self.hasher.hash_one(s);
        let ResourceRowsBuilder {
            strings,
            index,
            hasher,
            ..
        } = self;
        if let Some(sym) = index.find(hash, |&sym| strings.get(sym) == s) {
            return *sym;
        }
        let Ok(end) = u32::try_from(strings.text.len() + s.len()) else {
            return 0;
        };
        let sym = strings.ends.len() as Sym;
        strings.text.push_str(s);
        strings.ends.push(end);
        index.insert_unique(hash, sym, |&sym| hasher.hash_one(strings.get(sym)));
        sym
    }
}

/// One `flux_instance_info` series (labels as the Flux Operator's `flux_instance_info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceRow {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub registry: String,
    pub revision: String,
}

pub fn instance_row(obj: &FluxObject) -> InstanceRow {
    let ready_cond = obj.condition(READY_CONDITION);
    InstanceRow {
        uid: obj
            .meta()
            .map(|m| m.uid.str().to_string())
            .unwrap_or_default(),
        kind: flux_reporter_api::constants::FLUX_INSTANCE_KIND.into(),
        name: obj.name().into(),
        exported_namespace: obj.namespace().into(),
        ready: ready_cond
            .and_then(|c| c.status.get().cloned())
            .unwrap_or_else(|| "Unknown".into()),
        reason: ready_cond
            .map(|c| c.reason.str().to_string())
            .unwrap_or_default(),
        suspended: bool_label(obj.reconcile_disabled()).into(),
        registry: obj
            .spec()
            .and_then(|s| s.distribution.get())
            .map(|d| d.registry.str().to_string())
            .unwrap_or_default(),
        revision: obj
            .status()
            .map(|s| s.last_applied_revision.str().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn row(kind: &str, v: Value) -> ResourceRow {
        resource_row(kind, &serde_json::from_value(v).unwrap(), &[])
    }

    fn base(extra: Value) -> Value {
        let mut v = json!({
            "metadata": {"name": "app", "namespace": "apps", "uid": "u-1", "labels": {"team": "a"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]}
        });
        if let Value::Object(m) = extra {
            for (k, val) in m {
                v[k] = val;
            }
        }
        v
    }

    #[test]
    fn common_labels_from_metadata_and_ready_condition() {
        let r = row("GitRepository", base(json!({})));
        assert_eq!(
            (
                r.uid.as_str(),
                r.name.as_str(),
                r.exported_namespace.as_str(),
                r.ready.as_str(),
                r.reason.as_str(),
                r.suspended.as_str()
            ),
            ("u-1", "app", "apps", "True", "Succeeded", "False")
        );
    }

    #[test]
    fn no_ready_condition_reads_unknown_with_empty_reason() {
        let r = row("Kustomization", json!({"metadata": {"name": "a"}}));
        assert_eq!((r.ready.as_str(), r.reason.as_str()), ("Unknown", ""));
    }

    #[test]
    fn revision_prefers_last_attempted_over_artifact() {
        let r = row(
            "GitRepository",
            base(json!({"status": {"artifact": {"revision": "main@sha1:a"}}})),
        );
        assert_eq!(r.revision, "main@sha1:a");
        let r = row(
            "Kustomization",
            base(json!({"status": {"artifact": {"revision": "a"}, "lastAttemptedRevision": "b"}})),
        );
        assert_eq!(r.revision, "b");
    }

    #[test]
    fn kustomization_path_and_source_name() {
        let r = row(
            "Kustomization",
            base(
                json!({"spec": {"path": "./apps", "sourceRef": {"kind": "GitRepository", "name": "fleet"}, "suspend": true}}),
            ),
        );
        assert_eq!(
            (
                r.path.as_str(),
                r.source_name.as_str(),
                r.suspended.as_str()
            ),
            ("./apps", "fleet", "True")
        );
    }

    #[test]
    fn git_ref_last_present_wins() {
        let r = row(
            "GitRepository",
            base(json!({"spec": {"url": "https://x", "ref": {"branch": "main", "tag": "v1"}}})),
        );
        assert_eq!((r.ref_.as_str(), r.url.as_str()), ("v1", "https://x"));
        let r = row(
            "GitRepository",
            base(
                json!({"spec": {"ref": {"branch": "main", "semver": ">=1", "name": "refs/heads/x"}}}),
            ),
        );
        assert_eq!(r.ref_, "refs/heads/x");
    }

    #[test]
    fn oci_ref_is_tag_then_semver_never_digest() {
        let r = row(
            "OCIRepository",
            base(
                json!({"spec": {"ref": {"tag": "latest", "semver": "1.x", "digest": "sha256:x"}}}),
            ),
        );
        assert_eq!(r.ref_, "1.x");
        let r = row(
            "OCIRepository",
            base(json!({"spec": {"ref": {"digest": "sha256:x"}}})),
        );
        assert_eq!(r.ref_, "");
    }

    #[test]
    fn bucket_url_is_endpoint_and_ref_is_bucket_name() {
        let r = row(
            "Bucket",
            base(
                json!({"spec": {"endpoint": "s3.amazonaws.com", "bucketName": "flux", "url": "ignored"}}),
            ),
        );
        assert_eq!(
            (r.url.as_str(), r.ref_.as_str()),
            ("s3.amazonaws.com", "flux")
        );
    }

    #[test]
    fn helmrelease_source_from_chart_spec_over_chart_ref() {
        let r = row(
            "HelmRelease",
            base(json!({"spec": {"chartRef": {"name": "oci-chart"}}})),
        );
        assert_eq!(r.source_name, "oci-chart");
        let r = row(
            "HelmRelease",
            base(
                json!({"spec": {"chartRef": {"name": "a"}, "chart": {"spec": {"sourceRef": {"name": "bitnami"}}}}}),
            ),
        );
        assert_eq!(r.source_name, "bitnami");
    }

    #[test]
    fn oci_helmrepository_alert_and_provider_are_always_ready() {
        let no_cond = json!({"metadata": {"name": "a"}, "spec": {"type": "oci"}});
        assert_eq!(row("HelmRepository", no_cond.clone()).ready, "True");
        assert_eq!(
            row("HelmRepository", json!({"metadata": {"name": "a"}})).ready,
            "Unknown"
        );
        assert_eq!(
            row("Alert", json!({"metadata": {"name": "a"}})).ready,
            "True"
        );
        assert_eq!(
            row("Provider", json!({"metadata": {"name": "a"}})).ready,
            "True"
        );
        // the legacy condition status stays the real one
        assert_eq!(
            row("Alert", json!({"metadata": {"name": "a"}})).condition_status,
            "Unknown"
        );
    }

    #[test]
    fn receiver_url_is_webhook_path() {
        let r = row(
            "Receiver",
            base(json!({"status": {"webhookPath": "/hook/abc"}})),
        );
        assert_eq!(r.url, "/hook/abc");
    }

    #[test]
    fn image_kinds() {
        assert_eq!(
            row(
                "ImageRepository",
                base(json!({"spec": {"image": "ghcr.io/x/y"}}))
            )
            .url,
            "ghcr.io/x/y"
        );
        assert_eq!(
            row(
                "ImagePolicy",
                base(json!({"spec": {"imageRepositoryRef": {"name": "podinfo"}}}))
            )
            .source_name,
            "podinfo"
        );
    }

    #[test]
    fn dependency_not_ready_is_plain_false_in_metrics() {
        let r = row(
            "Kustomization",
            json!({"metadata": {"name": "a"}, "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "DependencyNotReady"}]}}),
        );
        assert_eq!(
            (r.ready.as_str(), r.reason.as_str()),
            ("False", "DependencyNotReady")
        );
    }

    #[test]
    fn propagated_labels_follow_the_configured_keys() {
        let obj: FluxObject = serde_json::from_value(base(json!({}))).unwrap();
        let r = resource_row("Kustomization", &obj, &["team".into(), "owner".into()]);
        assert_eq!(r.extra, ["a", ""]);
    }

    #[test]
    fn instance_row_labels() {
        let obj: FluxObject = serde_json::from_value(json!({
            "metadata": {"name": "flux", "namespace": "flux-system", "uid": "i-1",
                         "annotations": {"fluxcd.controlplane.io/reconcile": "disabled"}},
            "spec": {"distribution": {"registry": "ghcr.io/fluxcd", "version": "2.x"}},
            "status": {"lastAppliedRevision": "v2.7.3@sha256:x",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]}
        })).unwrap();
        let r = instance_row(&obj);
        assert_eq!(
            (
                r.registry.as_str(),
                r.revision.as_str(),
                r.suspended.as_str(),
                r.ready.as_str()
            ),
            ("ghcr.io/fluxcd", "v2.7.3@sha256:x", "True", "True")
        );
    }

    /// A varied sample of rows: repeated and unique values, empty ones,
    /// escapes and non-ASCII text, and `extra` shorter and longer than two.
    fn sample_rows() -> Vec<ResourceRow> {
        (0..300)
            .map(|i| ResourceRow {
                uid: format!("uid-{i}"),
                kind: "Kustomization".into(),
                name: format!("app-{i}"),
                exported_namespace: format!("team-{}", i % 7),
                ready: ["True", "False", "Unknown"][i % 3].into(),
                reason: if i % 5 == 0 { "" } else { "Succeeded" }.into(),
                suspended: if i % 11 == 0 { "True" } else { "False" }.into(),
                revision: format!("main@sha1:{}", i % 4),
                url: if i % 2 == 0 {
                    format!("https://x/{i}.git")
                } else {
                    String::new()
                },
                ref_: "main".into(),
                source_name: "fleet \"quoted\"\nline".into(),
                path: format!("./apps/ünï-{}", i % 3),
                extra: (0..i % 4).map(|n| format!("v{n}")).collect(),
                condition_status: ["True", "False", "maybe"][i % 3].into(),
            })
            .collect()
    }

    #[test]
    fn compact_rows_give_back_every_value_padded_to_the_widest_extra() {
        let rows = sample_rows();
        let compact = ResourceRows::from(rows.clone());
        assert_eq!(compact.len(), rows.len());
        assert_eq!(compact.kind(), "Kustomization");
        for (got, mut want) in compact.iter().zip(rows) {
            want.extra.resize(3, String::new());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn each_distinct_value_is_stored_once() {
        let compact = ResourceRows::from(sample_rows());
        // "", 300 uids, 300 names, 150 URLs; the rest repeat: 7 namespaces,
        // True/False/Unknown (also the suspended values), Succeeded, 4
        // revisions, main, one source name, 3 paths, 3 extras, and "maybe".
        let distinct = 1 + 300 + 300 + 150 + 7 + 3 + 1 + 4 + 1 + 1 + 3 + 3 + 1;
        assert_eq!(compact.distinct_values(), distinct);
        let text: usize = compact.iter().map(|r| r.uid.len() + r.name.len()).sum();
        // Per row: 12 indices and 3 extras of 4 bytes, plus the unique text.
        assert!(
            compact.heap_bytes() < 300 * (15 * 4) + text + 150 * 20 + 4 * distinct + 256,
            "{} bytes",
            compact.heap_bytes()
        );
        // Clones share the rows.
        assert!(compact.clone().shares(&compact));
        assert!(!ResourceRows::from(sample_rows()).shares(&compact));
    }

    #[test]
    fn rows_built_from_objects_are_the_rows_resource_row_makes() {
        let objects = [
            (
                "GitRepository",
                base(json!({"spec": {"url": "https://u:p@x/r.git", "ref": {"tag": "v1"}}})),
            ),
            (
                "Kustomization",
                base(
                    json!({"spec": {"path": "./a", "suspend": true, "sourceRef": {"name": "fleet"}}}),
                ),
            ),
            ("Kustomization", json!({"metadata": {"name": "bare"}})),
            (
                "Kustomization",
                base(json!({"status": {"lastAttemptedRevision": "b"}})),
            ),
        ];
        let keys = ["team".to_string(), "owner".to_string()];
        for (kind, v) in objects {
            let obj: FluxObject = serde_json::from_value(v).unwrap();
            let mut b = ResourceRowsBuilder::new(kind, keys.len());
            b.push_object(&obj, &keys);
            b.push_object(&obj, &keys);
            let rows = b.finish();
            let want = resource_row(kind, &obj, &keys);
            assert_eq!(rows.iter().collect::<Vec<_>>(), [want.clone(), want]);
        }
    }

    #[test]
    fn a_restarted_list_forgets_the_rows_pushed_before() {
        let obj: FluxObject = serde_json::from_value(base(json!({}))).unwrap();
        let mut b = ResourceRowsBuilder::new("GitRepository", 0);
        b.push_object(&obj, &[]);
        b.clear();
        assert!(b.is_empty());
        let mut v = base(json!({}));
        v["metadata"]["name"] = "other".into();
        let other: FluxObject = serde_json::from_value(v).unwrap();
        b.push_object(&other, &[]);
        let rows = b.finish();
        let names: Vec<String> = rows.iter().map(|r| r.name).collect();
        assert_eq!(names, ["other"]);
        // "", u-1, other, apps, True, Succeeded, False: the first object's
        // name is not held any more.
        assert_eq!(rows.distinct_values(), 7);
    }
}
