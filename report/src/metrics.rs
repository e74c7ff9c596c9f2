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
    /// What the status page shows beyond the labels, when asked for
    /// ([`ResourceRowsBuilder::with_details`]); in the same string table.
    details: Option<Details>,
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
        (0..self.0.rows.len()).map(move |i| self.row(i))
    }

    /// Row `i` (panics past the end, as indexing does).
    pub fn row(&self, i: usize) -> RowRef<'_> {
        let p = &*self.0;
        RowRef {
            values: &p.rows[i],
            extra: &p.extra[i * p.width..(i + 1) * p.width],
            strings: &p.strings,
            details: p.details.as_ref().map(|d| (d, i)),
        }
    }

    /// Whether the rows carry the status page's details.
    pub fn has_details(&self) -> bool {
        self.0.details.is_some()
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
            + p.details.as_ref().map_or(0, Details::bytes)
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
    details: Option<(&'a Details, usize)>,
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

    /// The status page's details of the object, when the rows keep them.
    pub fn detail(&self) -> Option<Detail<'a>> {
        self.details.map(|(d, i)| Detail {
            d,
            i,
            strings: self.strings,
        })
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
    details: Option<Details>,
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
            details: None,
        }
    }

    /// Keep the status page's details of each object too ([`Detail`]).
    pub fn with_details(mut self) -> Self {
        self.details = Some(Details::default());
        self
    }

    /// The row of one object, as [`push_object`](Self::push_object) makes it,
    /// and its details when kept: `operator_kind` says how the object is
    /// suspended (`reconcilers::is_suspended`).
    pub fn push_object_as(&mut self, obj: &FluxObject, propagate: &[String], operator_kind: bool) {
        self.push_object(obj, propagate);
        if self.details.is_none() {
            return;
        }
        let kind = self.kind.clone();
        let ready = obj.condition(READY_CONDITION);
        let ready_true = ready.is_some_and(|c| c.status.str() == "True");
        let mut row = DetailRow {
            since: ready
                .and_then(|c| since(c.last_transition_time.str()))
                .unwrap_or(0),
            message: 0,
            source: [0; 3],
            deps_end: 0,
            conditions_end: 0,
            flags: 0,
        };
        if crate::reconcilers::is_suspended(obj, operator_kind) {
            row.flags |= SUSPENDED;
        }
        if crate::reconcilers::is_failing(obj, operator_kind) {
            row.flags |= FAILING;
        }
        if !ready_true && let Some(c) = ready {
            row.message = self.intern(&message(c.message.str()));
        }
        if let Some((k, ns, name)) = source_of(&kind, obj) {
            row.source = [self.intern(k), self.intern(ns), self.intern(&name)];
        }
        if let Some(spec) = obj.spec() {
            for d in spec.depends_on.iter() {
                let Some(name) = d.name.non_empty() else {
                    continue;
                };
                let dep = [
                    self.intern(d.kind.non_empty().unwrap_or(&kind)),
                    self.intern(d.namespace.non_empty().unwrap_or(obj.namespace())),
                    self.intern(name),
                ];
                self.details_mut().deps.push(dep);
            }
        }
        if !ready_true && let Some(status) = obj.status() {
            for c in status.conditions.iter() {
                let cond = ConditionRow {
                    type_: self.intern(c.type_.str()),
                    status: self.intern(c.status.str()),
                    reason: self.intern(c.reason.str()),
                    message: self.intern(&message(c.message.str())),
                    since: since(c.last_transition_time.str()).unwrap_or(0),
                };
                self.details_mut().conditions.push(cond);
            }
        }
        let d = self.details_mut();
        row.deps_end = d.deps.len() as u32;
        row.conditions_end = d.conditions.len() as u32;
        d.rows.push(row);
    }

    /// A row given with its own strings and its details (for tests and
    /// benchmarks); the builder keeps details from now on.
    pub fn push_detailed_row(&mut self, r: &ResourceRow, detail: &ObjectDetail) {
        self.push_row(r);
        if self.details.is_none() {
            self.details = Some(Details::default());
        }
        let mut row = DetailRow {
            since: detail.since.unwrap_or(0),
            message: self.intern(&detail.message),
            source: [0; 3],
            deps_end: 0,
            conditions_end: 0,
            flags: 0,
        };
        if detail.suspended {
            row.flags |= SUSPENDED;
        }
        if detail.failing {
            row.flags |= FAILING;
        }
        if let Some(r) = &detail.source {
            row.source = [
                self.intern(&r.kind),
                self.intern(&r.namespace),
                self.intern(&r.name),
            ];
        }
        for r in &detail.depends_on {
            let dep = [
                self.intern(&r.kind),
                self.intern(&r.namespace),
                self.intern(&r.name),
            ];
            self.details_mut().deps.push(dep);
        }
        for c in &detail.conditions {
            let cond = ConditionRow {
                type_: self.intern(&c.type_),
                status: self.intern(&c.status),
                reason: self.intern(&c.reason),
                message: self.intern(&c.message),
                since: c.since.unwrap_or(0),
            };
            self.details_mut().conditions.push(cond);
        }
        let d = self.details_mut();
        row.deps_end = d.deps.len() as u32;
        row.conditions_end = d.conditions.len() as u32;
        d.rows.push(row);
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Details::default)
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

    /// Forget the rows pushed (a list restarted), keeping the kind, width and
    /// whether details are kept.
    pub fn clear(&mut self) {
        let details = self.details.is_some();
        *self = ResourceRowsBuilder::new(&self.kind, self.width);
        if details {
            self.details = Some(Details::default());
        }
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
            mut details,
            ..
        } = self;
        strings.text.shrink_to_fit();
        strings.ends.shrink_to_fit();
        rows.shrink_to_fit();
        extra.shrink_to_fit();
        if let Some(d) = details.as_mut() {
            d.rows.shrink_to_fit();
            d.deps.shrink_to_fit();
            d.conditions.shrink_to_fit();
        }
        ResourceRows(Arc::new(Packed {
            kind,
            strings,
            rows,
            extra,
            width,
            details,
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

/// Longest condition message kept for the status page, in bytes (cut at a
/// character boundary, marked with `…`): a page shows why, not a log.
pub const MAX_MESSAGE: usize = 2048;

const SUSPENDED: u32 = 1;
const FAILING: u32 = 2;

/// The status page's details of each row, in the rows' string table
/// (docs/design.md "The status page"): per object the Ready condition's
/// `lastTransitionTime` (Unix seconds, 0 when unknown), its source and
/// `dependsOn` references, whether it is failing or suspended as the
/// FluxReport counts them, and, for an object whose Ready condition is not
/// `True`, the Ready message and every condition. A ready object's messages
/// are not kept: they repeat its revision, and at 100,000 objects they would
/// be most of the memory.
#[derive(Default)]
struct Details {
    rows: Vec<DetailRow>,
    /// `dependsOn` references (kind, namespace, name), row after row.
    deps: Vec<[Sym; 3]>,
    conditions: Vec<ConditionRow>,
}

impl Details {
    fn bytes(&self) -> usize {
        self.rows.capacity() * size_of::<DetailRow>()
            + self.deps.capacity() * size_of::<[Sym; 3]>()
            + self.conditions.capacity() * size_of::<ConditionRow>()
    }
}

#[derive(Clone, Copy)]
struct DetailRow {
    since: i64,
    message: Sym,
    /// Kind, namespace and name; all 0 when there is none.
    source: [Sym; 3],
    /// Where this row's `dependsOn` and conditions end; they start where the
    /// previous row's end.
    deps_end: u32,
    conditions_end: u32,
    flags: u32,
}

struct ConditionRow {
    type_: Sym,
    status: Sym,
    reason: Sym,
    message: Sym,
    since: i64,
}

/// A reference to an object: kind, namespace and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjRef<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// One condition of an object that is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionRef<'a> {
    pub type_: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    /// `lastTransitionTime` in Unix seconds.
    pub since: Option<i64>,
}

/// The details of one row, borrowed from its [`ResourceRows`].
#[derive(Clone, Copy)]
pub struct Detail<'a> {
    d: &'a Details,
    i: usize,
    strings: &'a Strings,
}

impl<'a> Detail<'a> {
    fn row(&self) -> &'a DetailRow {
        &self.d.rows[self.i]
    }
    /// The Ready condition's `lastTransitionTime`, in Unix seconds.
    pub fn since(&self) -> Option<i64> {
        Some(self.row().since).filter(|s| *s != 0)
    }
    /// The Ready condition's message (redacted, cut to [`MAX_MESSAGE`]);
    /// "" for a ready object.
    pub fn message(&self) -> &'a str {
        self.strings.get(self.row().message)
    }
    pub fn failing(&self) -> bool {
        self.row().flags & FAILING != 0
    }
    pub fn suspended(&self) -> bool {
        self.row().flags & SUSPENDED != 0
    }
    /// The object it takes its artifact from ([`source_of`]).
    pub fn source(&self) -> Option<ObjRef<'a>> {
        let [kind, namespace, name] = self.row().source;
        (name != 0).then(|| ObjRef {
            kind: self.strings.get(kind),
            namespace: self.strings.get(namespace),
            name: self.strings.get(name),
        })
    }
    /// `spec.dependsOn`, the kind filled in.
    pub fn depends_on(&self) -> impl ExactSizeIterator<Item = ObjRef<'a>> + 'a {
        let start = if self.i == 0 {
            0
        } else {
            self.d.rows[self.i - 1].deps_end as usize
        };
        let strings = self.strings;
        self.d.deps[start..self.row().deps_end as usize].iter().map(
            move |[kind, namespace, name]| ObjRef {
                kind: strings.get(*kind),
                namespace: strings.get(*namespace),
                name: strings.get(*name),
            },
        )
    }
    /// Every condition, for an object whose Ready condition is not `True`.
    pub fn conditions(&self) -> impl ExactSizeIterator<Item = ConditionRef<'a>> + 'a {
        let start = if self.i == 0 {
            0
        } else {
            self.d.rows[self.i - 1].conditions_end as usize
        };
        let strings = self.strings;
        self.d.conditions[start..self.row().conditions_end as usize]
            .iter()
            .map(move |c| ConditionRef {
                type_: strings.get(c.type_),
                status: strings.get(c.status),
                reason: strings.get(c.reason),
                message: strings.get(c.message),
                since: Some(c.since).filter(|s| *s != 0),
            })
    }
}

/// The details of a row given with its own strings
/// ([`ResourceRowsBuilder::push_detailed_row`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectDetail {
    pub since: Option<i64>,
    pub message: String,
    pub failing: bool,
    pub suspended: bool,
    pub source: Option<OwnedRef>,
    pub depends_on: Vec<OwnedRef>,
    pub conditions: Vec<OwnedCondition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedCondition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: Option<i64>,
}

/// A `metav1.Time` (RFC 3339) in Unix seconds.
pub fn since(time: &str) -> Option<i64> {
    if time.is_empty() {
        return None;
    }
    time.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// A message as the status page keeps it: URLs redacted, cut to [`MAX_MESSAGE`].
pub fn message(text: &str) -> Cow<'_, str> {
    let text = redact::text(text);
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// The object an object of `kind` takes its artifact from, as (kind,
/// namespace, name), the namespace defaulting to the object's:
/// `spec.sourceRef` (Kustomization, HelmChart, ImageUpdateAutomation, any
/// kind with one), HelmRelease `spec.chartRef`, or the HelmChart that
/// helm-controller makes from `spec.chart` (named `<namespace>-<name>` in the
/// source's namespace: `GetHelmChartName` in fluxcd/helm-controller
/// `api/v2/helmrelease_types.go`), ImagePolicy `spec.imageRepositoryRef`.
pub fn source_of<'a>(kind: &str, obj: &'a FluxObject) -> Option<(&'a str, &'a str, Cow<'a, str>)> {
    let spec = obj.spec()?;
    let ns = obj.namespace();
    let of = |r: &'a crate::observed::Ref, default_kind: &'a str| {
        let name = r.name.non_empty()?;
        Some((
            r.kind.non_empty().unwrap_or(default_kind),
            r.namespace.non_empty().unwrap_or(ns),
            Cow::Borrowed(name),
        ))
    };
    match kind {
        "HelmRelease" => {
            if let Some(r) = spec.chart_ref.get() {
                return of(r, "OCIRepository");
            }
            let r = spec.chart.get()?.spec.get()?.source_ref.get()?;
            r.name.non_empty()?;
            let chart_ns = r.namespace.non_empty().unwrap_or(ns);
            Some((
                "HelmChart",
                chart_ns,
                Cow::Owned(format!("{ns}-{}", obj.name())),
            ))
        }
        "ImagePolicy" => of(spec.image_repository_ref.get()?, "ImageRepository"),
        "ImageUpdateAutomation" => of(spec.source_ref.get()?, "GitRepository"),
        _ => {
            let r = spec.source_ref.get()?;
            r.kind.non_empty()?;
            of(r, "")
        }
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

#[cfg(test)]
mod details_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> FluxObject {
        serde_json::from_value(v).unwrap()
    }

    fn detailed(kind: &str, objects: &[serde_json::Value]) -> ResourceRows {
        let mut b = ResourceRowsBuilder::new(kind, 0).with_details();
        for v in objects {
            b.push_object_as(&obj(v.clone()), &[], false);
        }
        b.finish()
    }

    #[test]
    fn a_failing_object_keeps_its_conditions_source_and_dependencies() {
        let rows = detailed(
            "Kustomization",
            &[json!({
                "metadata": {"name": "apps", "namespace": "flux-system"},
                "spec": {"sourceRef": {"kind": "GitRepository", "name": "fleet"},
                         "dependsOn": [{"name": "infra"}, {"name": "crds", "namespace": "other"}]},
                "status": {"conditions": [
                    {"type": "Ready", "status": "False", "reason": "HealthCheckFailed",
                     "message": "timeout for https://u:p@h/x", "lastTransitionTime": "2026-11-21T14:02:11Z"},
                    {"type": "Healthy", "status": "False", "reason": "HealthCheckFailed", "message": "m"}]}
            })],
        );
        let row = rows.row(0);
        let d = row.detail().expect("details kept");
        assert!(d.failing() && !d.suspended());
        assert_eq!(d.since(), Some(1_795_269_731));
        assert_eq!(d.message(), "timeout for https://***@h/x");
        let src = d.source().unwrap();
        assert_eq!(
            (src.kind, src.namespace, src.name),
            ("GitRepository", "flux-system", "fleet")
        );
        let deps: Vec<_> = d
            .depends_on()
            .map(|r| (r.kind, r.namespace, r.name))
            .collect();
        assert_eq!(
            deps,
            [
                ("Kustomization", "flux-system", "infra"),
                ("Kustomization", "other", "crds")
            ]
        );
        let types: Vec<_> = d
            .conditions()
            .map(|c| (c.type_, c.since.is_some()))
            .collect();
        assert_eq!(types, [("Ready", true), ("Healthy", false)]);
    }

    #[test]
    fn a_ready_object_keeps_no_messages_and_each_row_has_its_own_slices() {
        let rows = detailed(
            "HelmRelease",
            &[
                json!({"metadata": {"name": "a", "namespace": "apps"},
                       "spec": {"chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}},
                                "dependsOn": [{"name": "db"}]},
                       "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded",
                                                  "message": "Helm install succeeded"}]}}),
                json!({"metadata": {"name": "b", "namespace": "apps"},
                       "spec": {"chartRef": {"kind": "OCIRepository", "name": "chart", "namespace": "charts"}, "suspend": true},
                       "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "InstallFailed", "message": "boom"}]}}),
            ],
        );
        let a = rows.row(0).detail().unwrap();
        assert_eq!(a.message(), "");
        assert_eq!(a.conditions().len(), 0);
        assert_eq!(a.depends_on().len(), 1);
        // helm-controller's HelmChart for the release: <namespace>-<name> in the source's namespace.
        let src = a.source().unwrap();
        assert_eq!(
            (src.kind, src.namespace, src.name),
            ("HelmChart", "apps", "apps-a")
        );
        let b = rows.row(1).detail().unwrap();
        assert!(b.suspended() && !b.failing());
        assert_eq!(b.depends_on().len(), 0);
        assert_eq!(b.conditions().len(), 1);
        let src = b.source().unwrap();
        assert_eq!(
            (src.kind, src.namespace, src.name),
            ("OCIRepository", "charts", "chart")
        );
    }

    #[test]
    fn rows_without_details_are_the_metric_rows_as_before() {
        let v = json!({"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "False", "message": "m"}]}});
        let mut b = ResourceRowsBuilder::new("Kustomization", 0);
        b.push_object_as(&obj(v.clone()), &[], false);
        let plain = b.finish();
        assert!(!plain.has_details() && plain.row(0).detail().is_none());
        let with = detailed("Kustomization", &[v]);
        assert_eq!(plain, with, "the same labels either way");
        assert!(with.heap_bytes() > plain.heap_bytes());
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = message(&long);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(since("not a time"), None);
        assert_eq!(since(""), None);
    }
}
