//! The report run: asks the source each section's questions in turn, and
//! assembles the answers. Each section succeeds or fails on its own; a
//! failure is recorded with its section (and kind) and never removes another
//! section.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use flux_reporter_api::constants::{DISTRIBUTION_PROBE_CRD, FLUX_INSTANCE_KIND, READY_CONDITION};
use flux_reporter_api::{FluxReportSpec, OperatorInfo};

use crate::crds::{self, FluxKind};
use crate::metrics::{self, InstanceRow, ResourceRows, ResourceRowsBuilder};
use crate::observed::FluxObject;
use crate::reconcilers::{self, KindStats};
use crate::source::{ObjectSink, Source, SourceError};
use crate::sync::{self, ConfiguredRoot, RootCandidates};
use crate::{cluster, components, distribution};

/// The report sections, in the order they are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    Distribution,
    Cluster,
    Crds,
    Components,
    Reconcilers,
    Sync,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Distribution => "distribution",
            Section::Cluster => "cluster",
            Section::Crds => "crds",
            Section::Components => "components",
            Section::Reconcilers => "reconcilers",
            Section::Sync => "sync",
        }
    }
    pub const ALL: [Section; 6] = [
        Section::Distribution,
        Section::Cluster,
        Section::Crds,
        Section::Components,
        Section::Reconcilers,
        Section::Sync,
    ];
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One section (or one kind of the reconcilers section) that could not be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub section: Section,
    pub kind: Option<String>,
    pub error: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(kind) => write!(f, "{} {kind}: {}", self.section, self.error),
            None => write!(f, "{}: {}", self.section, self.error),
        }
    }
}

/// An object read with fields of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub invalid_fields: u32,
}

/// A failing object, for summaries (`flux-reporter check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub message: String,
}

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Flux namespace: components, the root Kustomization, the FluxInstance.
    pub namespace: String,
    /// A root Kustomization named by flag or annotation.
    pub sync_root: Option<ConfiguredRoot>,
    /// Object label keys copied onto `flux_resource_info`.
    pub propagate_labels: Vec<String>,
    /// Our own build info, set as `spec.operator`.
    pub operator: OperatorInfo,
    /// How many failing objects to keep for summaries.
    pub max_failing_objects: usize,
    /// How many malformed objects to name.
    pub max_malformed: usize,
    /// Build the per-object metric rows (the operator does; one-shot
    /// commands do not need them, and then memory does not grow with objects).
    pub metric_rows: bool,
    /// Keep the status page's details with the rows (`metrics::Detail`), and
    /// rows for the operator kinds: the operator with `--web-addr`, `report -o html`.
    pub object_details: bool,
}

impl Options {
    pub fn new(namespace: &str, operator: OperatorInfo) -> Self {
        Options {
            namespace: namespace.to_string(),
            sync_root: None,
            propagate_labels: Vec::new(),
            operator,
            max_failing_objects: 20,
            max_malformed: 20,
            metric_rows: true,
            object_details: false,
        }
    }
}

/// The result of one run: the spec of every section that succeeded, and what failed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub spec: FluxReportSpec,
    pub failures: Vec<Failure>,
    /// Not failures, but worth telling: no sync found and why, malformed objects.
    pub notes: Vec<String>,
    /// `flux_resource_info` rows per kind, for every kind listed successfully.
    pub resource_rows: BTreeMap<String, ResourceRows>,
    /// The rows of the operator kinds (FluxInstance, ResourceSet, …), with
    /// details, when [`Options::object_details`] asks for them: the status
    /// page lists them, `flux_resource_info` does not.
    pub operator_rows: BTreeMap<String, ResourceRows>,
    /// `flux_instance_info` rows; `None` when FluxInstances could not be listed.
    pub instance_rows: Option<Vec<InstanceRow>>,
    pub failing_objects: Vec<FailingObject>,
    pub malformed: Vec<Malformed>,
    pub malformed_total: usize,
    /// Total artifact size in bytes per Flux kind listed (`flux_report_artifact_bytes`).
    pub artifact_bytes: BTreeMap<String, i64>,
    /// Objects read, all kinds.
    pub objects: usize,
    /// The kinds discovered (Flux CRDs, then installed operator kinds).
    pub kinds: Vec<FluxKind>,
    /// The ref of the sync's source (branch, tag, semver, bucket), for verification.
    pub sync_source_ref: Option<String>,
    pub duration: Duration,
}

impl Outcome {
    pub fn failed(&self, section: Section) -> bool {
        self.failures
            .iter()
            .any(|f| f.section == section && f.kind.is_none())
    }
    /// Kinds of the reconcilers section whose list failed.
    pub fn failed_kinds(&self) -> BTreeSet<String> {
        self.failures
            .iter()
            .filter(|f| f.section == Section::Reconcilers)
            .filter_map(|f| f.kind.clone())
            .collect()
    }
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Everything one kind's scan collects.
struct KindScan<'a> {
    kind: &'a FluxKind,
    opts: &'a Options,
    stats: KindStats,
    rows: ResourceRowsBuilder,
    instances: Vec<InstanceRow>,
    instance_sync_name: Option<String>,
    roots: Option<&'a mut RootCandidates>,
    failing: Vec<FailingObject>,
    malformed: Vec<Malformed>,
    malformed_total: usize,
    not_objects: usize,
}

impl<'a> KindScan<'a> {
    fn new(kind: &'a FluxKind, opts: &'a Options, roots: Option<&'a mut RootCandidates>) -> Self {
        let mut rows = ResourceRowsBuilder::new(&kind.kind, opts.propagate_labels.len());
        if opts.object_details {
            rows = rows.with_details();
        }
        KindScan {
            kind,
            opts,
            stats: KindStats::default(),
            rows,
            instances: Vec::new(),
            instance_sync_name: None,
            roots,
            failing: Vec::new(),
            malformed: Vec::new(),
            malformed_total: 0,
            not_objects: 0,
        }
    }
}

impl ObjectSink for KindScan<'_> {
    fn reset(&mut self) {
        self.stats = KindStats::default();
        self.rows.clear();
        self.instances.clear();
        self.instance_sync_name = None;
        self.failing.clear();
        self.malformed.clear();
        self.malformed_total = 0;
        self.not_objects = 0;
        if let Some(roots) = self.roots.as_deref_mut() {
            roots.reset();
        }
    }

    fn push(&mut self, obj: Option<FluxObject>, invalid_fields: u32) {
        let Some(obj) = obj else {
            self.not_objects += 1;
            return;
        };
        let kind = &self.kind.kind;
        if invalid_fields > 0 || obj.meta().is_none() {
            self.malformed_total += 1;
            if self.malformed.len() < self.opts.max_malformed {
                self.malformed.push(Malformed {
                    kind: kind.clone(),
                    namespace: obj.namespace().to_string(),
                    name: obj.name().to_string(),
                    invalid_fields: invalid_fields.max(1),
                });
            }
        }
        if obj.name().is_empty() {
            // Without a name the object cannot be counted or shown.
            return;
        }
        let operator_kind = self.kind.operator_kind;
        self.stats.add(&obj, operator_kind);
        if reconcilers::is_failing(&obj, operator_kind)
            && self.failing.len() < self.opts.max_failing_objects
            && let Some(c) = obj.condition(READY_CONDITION)
        {
            self.failing.push(FailingObject {
                kind: kind.clone(),
                namespace: obj.namespace().to_string(),
                name: obj.name().to_string(),
                reason: c.reason.str().to_string(),
                message: first_line(&crate::redact::text(c.message.str()), 300),
            });
        }
        if operator_kind {
            if kind == FLUX_INSTANCE_KIND {
                self.instances.push(metrics::instance_row(&obj));
                if obj.namespace() == self.opts.namespace
                    && self.instance_sync_name.is_none()
                    && let Some(name) = obj
                        .spec()
                        .and_then(|s| s.sync.get())
                        .and_then(|s| s.name.non_empty())
                {
                    self.instance_sync_name = Some(name.to_string());
                }
            }
            if self.opts.object_details {
                self.rows.push_object_as(&obj, &[], true);
            }
        } else if self.opts.metric_rows || self.opts.object_details {
            self.rows
                .push_object_as(&obj, &self.opts.propagate_labels, false);
        }
        if let Some(roots) = self.roots.as_deref_mut() {
            roots.observe(&obj);
        }
    }
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// Run every section against `source`.
pub async fn compute<S: Source>(source: &S, opts: &Options) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    let fail = |out: &mut Outcome, section: Section, kind: Option<&str>, error: String| {
        out.failures.push(Failure {
            section,
            kind: kind.map(str::to_string),
            error,
        })
    };

    // 1. Distribution: a missing probe CRD means "Not Installed"; any other
    // error means we cannot tell, which is a failure, not "Not Installed".
    match source.crd_labels(DISTRIBUTION_PROBE_CRD).await {
        Ok(labels) => out.spec.distribution = distribution::distribution(labels.as_ref()),
        Err(e) => fail(
            &mut out,
            Section::Distribution,
            None,
            format!("failed to get CRD {DISTRIBUTION_PROBE_CRD}: {e}"),
        ),
    }

    // 2. Cluster.
    match source.server_version().await {
        Ok(version) => match source.node_count().await {
            Ok(nodes) => out.spec.cluster = Some(cluster::cluster(&version, nodes)),
            Err(e) => fail(
                &mut out,
                Section::Cluster,
                None,
                format!("failed to list nodes: {e}"),
            ),
        },
        Err(e) => fail(
            &mut out,
            Section::Cluster,
            None,
            format!("failed to get server version: {e}"),
        ),
    }

    // 3. Flux CRDs.
    let mut flux_kinds = Vec::new();
    match source.flux_crds().await {
        Ok(list) if list.is_empty() => {
            fail(&mut out, Section::Crds, None, "no Flux CRDs found".into());
        }
        Ok(list) => {
            let (kinds, problems) = crds::discover(&list);
            for p in problems {
                let kind = p.kind.clone().unwrap_or_else(|| p.crd.clone());
                fail(&mut out, Section::Reconcilers, Some(&kind), p.error);
            }
            flux_kinds = kinds;
        }
        Err(e) => fail(
            &mut out,
            Section::Crds,
            None,
            format!("failed to list CRDs: {e}"),
        ),
    }

    // 4. Components.
    match source.deployments(&opts.namespace).await {
        Ok(list) => {
            for d in list.iter().filter(|d| d.invalid_fields > 0) {
                out.malformed_total += 1;
                if out.malformed.len() < opts.max_malformed {
                    let meta = d.metadata.get();
                    out.malformed.push(Malformed {
                        kind: "Deployment".into(),
                        namespace: meta
                            .map(|m| m.namespace.str().to_string())
                            .unwrap_or_default(),
                        name: meta.map(|m| m.name.str().to_string()).unwrap_or_default(),
                        invalid_fields: d.invalid_fields,
                    });
                }
            }
            out.spec.components = components::components(&list);
        }
        Err(e) => fail(
            &mut out,
            Section::Components,
            None,
            format!("failed to list Deployments in {}: {e}", opts.namespace),
        ),
    }

    // 5. Operator kinds first: the FluxInstance may name the sync root.
    let mut entries = Vec::new();
    let mut instance_sync_name = None;
    let mut instances_listed = false;
    let mut instances = Vec::new();
    let operator_kinds = crds::operator_kinds();
    for (mut scan, result) in scan_kinds(source, &operator_kinds, opts, None).await {
        let kind = scan.kind;
        match result {
            Ok(()) => {
                entries.push(scan.stats.entry(kind));
                if kind.kind == FLUX_INSTANCE_KIND {
                    instances_listed = true;
                    instances = std::mem::take(&mut scan.instances);
                    instance_sync_name = scan.instance_sync_name.take();
                }
                if opts.object_details {
                    let rows = std::mem::take(&mut scan.rows).finish();
                    out.operator_rows.insert(kind.kind.clone(), rows);
                }
                absorb(
                    &mut out,
                    scan.failing,
                    scan.malformed,
                    scan.malformed_total,
                    scan.stats.total,
                );
                out.kinds.push(kind.clone());
            }
            Err(e) if e.is_not_found() => {
                // Not installed: not counted, not a failure.
                if kind.kind == FLUX_INSTANCE_KIND {
                    instances_listed = true;
                }
            }
            Err(e) => fail(
                &mut out,
                Section::Reconcilers,
                Some(&kind.kind),
                format!("failed to list {}: {e}", kind.plural),
            ),
        }
    }
    out.instance_rows = instances_listed.then_some(instances);

    // 6. Flux kinds, with the root Kustomization candidates on the way.
    let configured = opts.sync_root.clone().or_else(|| {
        instance_sync_name
            .as_deref()
            .and_then(|n| ConfiguredRoot::parse(n, &opts.namespace, "FluxInstance spec.sync.name"))
    });
    let mut roots = RootCandidates::new(&opts.namespace, configured);
    let mut kustomizations_listed = false;
    for (mut scan, result) in scan_kinds(source, &flux_kinds, opts, Some(&mut roots)).await {
        let kind = scan.kind;
        let is_ks = kind.kind == "Kustomization";
        match result {
            Ok(()) => {
                if scan.not_objects > 0 {
                    out.notes.push(format!(
                        "{}: {} list items were not objects and were skipped",
                        kind.kind, scan.not_objects
                    ));
                }
                entries.push(scan.stats.entry(kind));
                out.artifact_bytes
                    .insert(kind.kind.clone(), scan.stats.total_size);
                let rows = std::mem::take(&mut scan.rows).finish();
                let total = scan.stats.total;
                absorb(
                    &mut out,
                    scan.failing,
                    scan.malformed,
                    scan.malformed_total,
                    total,
                );
                out.resource_rows.insert(kind.kind.clone(), rows);
                kustomizations_listed |= is_ks;
            }
            Err(e) => fail(
                &mut out,
                Section::Reconcilers,
                Some(&kind.kind),
                format!("failed to list {}.{}: {e}", kind.plural, kind.group),
            ),
        }
    }
    reconcilers::sort_entries(&mut entries);
    out.spec.reconcilers = entries;
    out.kinds.splice(0..0, flux_kinds.iter().cloned());

    // 7. Sync.
    if out.failed(Section::Crds) {
        fail(
            &mut out,
            Section::Sync,
            None,
            "Flux CRDs could not be listed".into(),
        );
    } else if !flux_kinds.iter().any(|k| k.kind == "Kustomization") {
        out.notes
            .push("no sync: the Kustomization kind is not installed".into());
    } else if !kustomizations_listed {
        fail(
            &mut out,
            Section::Sync,
            None,
            "Kustomizations could not be listed".into(),
        );
    } else {
        match roots.choose() {
            Ok(root) => match sync_source(source, &flux_kinds, &root).await {
                Ok(src) => {
                    out.sync_source_ref = src
                        .as_ref()
                        .map(|s| metrics::resource_row(s.kind.str(), s, &[]).ref_)
                        .filter(|r| !r.is_empty());
                    out.spec.sync = Some(sync::sync_status(&root, src.as_ref()));
                }
                Err(e) => fail(&mut out, Section::Sync, None, e),
            },
            Err(why) => out.notes.push(why),
        }
    }

    if out.malformed_total > 0 {
        let named: Vec<String> = out
            .malformed
            .iter()
            .map(|m| format!("{} {}/{}", m.kind, m.namespace, m.name))
            .collect();
        out.notes.push(format!(
            "{} malformed objects read with fields of unexpected types: {}",
            out.malformed_total,
            named.join(", ")
        ));
    }
    out.spec.operator = Some(opts.operator.clone());
    out.duration = started.elapsed();
    out
}

/// Lists `kinds`, up to [`Source::list_concurrency`] at a time, and returns
/// each kind's scan with its result in the order of `kinds`, whatever order
/// the lists finished in: the outcome is the same as when they are listed one
/// after the other. Each kind fails or succeeds on its own. The (one)
/// Kustomization kind gets `roots`. At most that many lists run at once and
/// each reads its pages one by one, so at most that many pages are held.
async fn scan_kinds<'a, S: Source>(
    source: &S,
    kinds: &'a [FluxKind],
    opts: &'a Options,
    mut roots: Option<&'a mut RootCandidates>,
) -> Vec<(KindScan<'a>, Result<(), SourceError>)> {
    let scans: Vec<KindScan<'a>> = kinds
        .iter()
        .map(|kind| {
            let roots = if kind.kind == "Kustomization" {
                roots.take()
            } else {
                None
            };
            KindScan::new(kind, opts, roots)
        })
        .collect();
    // The futures are built in a loop rather than by a closure given to
    // `StreamExt::map`: an async block made in a closure trips rustc's
    // "implementation of `Send` is not general enough" in the operator.
    let mut lists = Vec::with_capacity(scans.len());
    for (i, scan) in scans.into_iter().enumerate() {
        lists.push(list_kind(source, i, scan));
    }
    let mut done: Vec<(usize, KindScan<'a>, Result<(), SourceError>)> = stream::iter(lists)
        .buffer_unordered(source.list_concurrency().max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _, _)| *i);
    done.into_iter()
        .map(|(_, scan, result)| (scan, result))
        .collect()
}

/// One kind's list into its scan; `i` keeps its place in the kind order.
async fn list_kind<'a, S: Source>(
    source: &S,
    i: usize,
    mut scan: KindScan<'a>,
) -> (usize, KindScan<'a>, Result<(), SourceError>) {
    let kind = scan.kind;
    let result = source.list_objects(kind, &mut scan).await;
    (i, scan, result)
}

fn absorb(
    out: &mut Outcome,
    failing: Vec<FailingObject>,
    malformed: Vec<Malformed>,
    malformed_total: usize,
    total: i64,
) {
    out.failing_objects.extend(failing);
    out.malformed.extend(malformed);
    out.malformed_total += malformed_total;
    out.objects += usize::try_from(total).unwrap_or(0);
}

/// Fetch the root's source from its own `spec.sourceRef`. A missing source is
/// not an error (the sync is reported without it); an unknown source kind is.
async fn sync_source<S: Source>(
    source: &S,
    kinds: &[FluxKind],
    root: &FluxObject,
) -> Result<Option<FluxObject>, String> {
    let Some((kind_name, namespace, name)) = sync::source_ref(root) else {
        return Ok(None);
    };
    let Some(kind) = kinds.iter().find(|k| k.kind == kind_name) else {
        return Err(format!("source kind {kind_name} not found"));
    };
    match source.get_object(kind, &namespace, &name).await {
        Ok(Some(mut obj)) => {
            // Lists carry the kind per item; a GET of one object does too,
            // but a dump item may not: the kind we asked for is the truth.
            obj.kind = crate::lenient::Lenient::Valid(kind.kind.clone());
            Ok(Some(obj))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(format!("failed to get {kind_name} {namespace}/{name}: {e}")),
    }
}

/// The Ready condition a run earns: `True/Succeeded` with "Reporting
/// finished in <dur>" when every section succeeded (notes appended after a
/// semicolon), else `False/ReportIncomplete` naming each failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Outcome {
    pub fn readiness(&self) -> Readiness {
        self.readiness_given(true)
    }

    /// The Ready condition of a one-shot report, which has no earlier values
    /// to keep: an incomplete one names what could not be read.
    pub fn readiness_one_shot(&self) -> Readiness {
        self.readiness_given(false)
    }

    fn readiness_given(&self, last_good_kept: bool) -> Readiness {
        use flux_reporter_api::constants::{REPORT_INCOMPLETE_REASON, SUCCEEDED_REASON};
        let mut message = format!(
            "Reporting finished in {}",
            crate::duration::format_run(self.duration)
        );
        if self.failures.is_empty() {
            for note in &self.notes {
                message.push_str("; ");
                message.push_str(note);
            }
            return Readiness {
                ready: true,
                reason: SUCCEEDED_REASON,
                message,
            };
        }
        // A server message often ends with its own full stop; the list is followed by one.
        let failed: Vec<String> = self
            .failures
            .iter()
            .map(|f| f.to_string().trim_end_matches('.').to_owned())
            .collect();
        message = if last_good_kept {
            format!(
                "Report incomplete, last good values kept for: {}. {message}",
                failed.join("; ")
            )
        } else {
            format!(
                "Report incomplete, could not read: {}. {message}",
                failed.join("; ")
            )
        };
        for note in &self.notes {
            message.push_str("; ");
            message.push_str(note);
        }
        Readiness {
            ready: false,
            reason: REPORT_INCOMPLETE_REASON,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_message_ending_in_a_full_stop_is_not_followed_by_a_second_one() {
        let outcome = Outcome {
            failures: vec![Failure {
                section: Section::Reconcilers,
                kind: Some("HelmRepository".into()),
                error: "Too many requests, please try again later.".into(),
            }],
            duration: Duration::from_secs(2),
            ..Outcome::default()
        };
        assert_eq!(
            outcome.readiness().message,
            "Report incomplete, last good values kept for: reconcilers HelmRepository: \
             Too many requests, please try again later. Reporting finished in 2s"
        );
    }
}
