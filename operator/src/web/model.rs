//! What the status page shows: one report run's [`Snapshot`], published
//! after each run and swapped in whole, and the [`Changes`] this replica
//! emitted. Pages and JSON render from a snapshot they took once; nothing is
//! copied per page view (the object rows are the run's own, shared by `Arc`
//! with the metrics).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::compute::Readiness;
use flux_reporter_report::metrics::{ResourceRows, RowRef};
use flux_reporter_report::{Outcome, Section};

use super::index::Index;

/// Where the snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The operator, as the pod (or host) named.
    Operator { pod: String },
    /// `flux-reporter report -o html`, from a dump (`the dump FILE`) or `the cluster`.
    OneShot { source: String },
}

/// The FluxInstance as the page shows it: the verification this replica
/// wrote, or else the instance's own Ready condition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceView {
    pub namespace: String,
    pub name: String,
    /// `None`: could not tell, or not verified.
    pub ready: Option<bool>,
    pub reason: String,
    pub message: String,
    /// Whether this process verified it this run (else: its status as read).
    pub verified_here: bool,
}

/// One kind's objects.
#[derive(Debug)]
pub struct KindRows {
    pub kind: String,
    pub api_version: String,
    /// A Flux Operator kind (FluxInstance, ResourceSet, …).
    pub operator: bool,
    /// Kept from an earlier run because this run could not list the kind.
    pub stale: bool,
    pub rows: ResourceRows,
}

/// One report run as the pages show it. Immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    pub origin: Origin,
    /// The Flux namespace.
    pub namespace: String,
    /// The published spec (last good values kept).
    pub spec: FluxReportSpec,
    pub ready: bool,
    pub reason: String,
    pub message: String,
    /// When the run finished, Unix seconds.
    pub finished_at: i64,
    pub duration: Duration,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    pub instance: Option<InstanceView>,
    /// Sorted by kind.
    pub kinds: Vec<KindRows>,
    /// The first object id of each kind; an object id is its place in the
    /// kinds' rows, end to end.
    starts: Vec<u32>,
    total: u32,
    index: OnceLock<Index>,
}

/// What one run hands [`Snapshot::next`].
pub struct Input<'a> {
    pub origin: Origin,
    pub namespace: &'a str,
    pub outcome: &'a Outcome,
    pub spec: &'a FluxReportSpec,
    pub readiness: Readiness,
    pub finished_at: i64,
    pub instance: Option<InstanceView>,
}

impl Snapshot {
    /// The snapshot after a run. A kind this run could not list (every kind
    /// when the CRDs could not be listed) keeps `previous`'s rows, shared, as
    /// the metrics do; any other kind not listed is gone.
    pub fn next(previous: Option<&Snapshot>, input: Input<'_>) -> Snapshot {
        let outcome = input.outcome;
        let api_versions: BTreeMap<&str, &str> = input
            .spec
            .reconcilers
            .iter()
            .map(|r| (r.kind.as_str(), r.api_version.as_str()))
            .collect();
        let mut kinds: BTreeMap<String, KindRows> = BTreeMap::new();
        let add = |kinds: &mut BTreeMap<String, KindRows>,
                   kind: &str,
                   rows: &ResourceRows,
                   operator: bool,
                   stale: bool| {
            kinds.insert(
                kind.to_string(),
                KindRows {
                    kind: kind.to_string(),
                    api_version: api_versions.get(kind).copied().unwrap_or("").to_string(),
                    operator,
                    stale,
                    rows: rows.clone(),
                },
            );
        };
        for (kind, rows) in &outcome.resource_rows {
            add(&mut kinds, kind, rows, false, false);
        }
        for (kind, rows) in &outcome.operator_rows {
            add(&mut kinds, kind, rows, true, false);
        }
        if let Some(p) = previous {
            let keep_all = outcome.failed(Section::Crds);
            let failed = outcome.failed_kinds();
            for k in &p.kinds {
                if (keep_all || failed.contains(&k.kind)) && !kinds.contains_key(&k.kind) {
                    add(&mut kinds, &k.kind, &k.rows, k.operator, true);
                }
            }
        }
        let kinds: Vec<KindRows> = kinds.into_values().collect();
        let mut starts = Vec::with_capacity(kinds.len());
        let mut total: u32 = 0;
        for k in &kinds {
            starts.push(total);
            total = total.saturating_add(u32::try_from(k.rows.len()).unwrap_or(u32::MAX));
        }
        Snapshot {
            origin: input.origin,
            namespace: input.namespace.to_string(),
            spec: input.spec.clone(),
            ready: input.readiness.ready,
            reason: input.readiness.reason.to_string(),
            message: input.readiness.message,
            finished_at: input.finished_at,
            duration: outcome.duration,
            failures: outcome.failures.iter().map(ToString::to_string).collect(),
            notes: outcome.notes.clone(),
            instance: input.instance,
            kinds,
            starts,
            total,
            index: OnceLock::new(),
        }
    }

    /// Objects held, all kinds.
    pub fn len(&self) -> usize {
        self.total as usize
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kind and row of object `id` (`id < len()`).
    pub fn object(&self, id: u32) -> (&KindRows, RowRef<'_>) {
        let k = self.starts.partition_point(|s| *s <= id) - 1;
        let kind = &self.kinds[k];
        (kind, kind.rows.row((id - self.starts[k]) as usize))
    }

    /// The ids of kind `k`'s objects.
    pub fn ids_of(&self, k: usize) -> std::ops::Range<u32> {
        let start = self.starts[k];
        start..start + self.kinds[k].rows.len() as u32
    }

    pub fn kind_index(&self, kind: &str) -> Option<usize> {
        self.kinds
            .binary_search_by(|k| k.kind.as_str().cmp(kind))
            .ok()
    }

    /// Lookups and root causes, built on first use (by the first page that
    /// needs them, off the report loop) and kept with the snapshot.
    pub fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::build(self))
    }

    /// Whether a page has needed the index yet: no page view, no work.
    pub fn index_built(&self) -> bool {
        self.index.get().is_some()
    }
}

/// One health transition this replica emitted (an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Unix seconds.
    pub at: i64,
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// `FluxInstance/flux` or `FluxReport/flux`.
    pub object: String,
}

/// How many changes are kept.
pub const MAX_CHANGES: usize = 200;

/// The current snapshot and the changes, as the HTTP server reads them. A
/// reader clones an `Arc` under a lock held for that only; a publish builds
/// the new value first and swaps it in, so neither ever waits on the other's
/// work.
#[derive(Debug, Default)]
pub struct Published {
    current: RwLock<Option<Arc<Snapshot>>>,
    changes: RwLock<Arc<VecDeque<Change>>>,
}

impl Published {
    pub fn new() -> Self {
        Published::default()
    }

    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self, snapshot: Snapshot) {
        let next = Some(Arc::new(snapshot));
        // The old snapshot is dropped after the lock is released.
        let _old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            next,
        );
    }

    /// The changes, newest first.
    pub fn changes(&self) -> Arc<VecDeque<Change>> {
        self.changes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Record a change; the oldest goes past [`MAX_CHANGES`].
    pub fn record(&self, change: Change) {
        let mut current = self.changes.write().unwrap_or_else(PoisonError::into_inner);
        let mut next: VecDeque<Change> = (**current).clone();
        next.push_front(change);
        next.truncate(MAX_CHANGES);
        *current = Arc::new(next);
    }
}
