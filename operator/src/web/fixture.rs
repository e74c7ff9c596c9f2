//! Synthetic snapshots for the tests and `examples/bench_web.rs`: objects
//! described by hand, turned into the same compact rows a run builds.

use std::collections::BTreeMap;
use std::time::Duration;

use flux_reporter_api::constants::DEPENDENCY_NOT_READY_REASON;
use flux_reporter_api::{FluxReconcilerStats, FluxReconcilerStatus, FluxReportSpec};
use flux_reporter_report::Outcome;
use flux_reporter_report::compute::Readiness;
use flux_reporter_report::metrics::{
    ObjectDetail, OwnedCondition, OwnedRef, ResourceRow, ResourceRowsBuilder,
};

use super::model::{Input, Origin, Snapshot};

/// One object.
#[derive(Debug, Clone, Default)]
pub struct Obj {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `True`, `False` or `Unknown`.
    pub ready: String,
    pub reason: String,
    pub message: String,
    pub suspended: bool,
    /// Unix seconds.
    pub since: i64,
    pub revision: String,
    pub url: String,
    pub source: Option<(String, String, String)>,
    pub depends_on: Vec<(String, String, String)>,
}

impl Obj {
    /// A ready object.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Obj {
        Obj {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            ready: "True".into(),
            reason: "Succeeded".into(),
            ..Obj::default()
        }
    }

    /// Not ready, with `reason` and `message`.
    pub fn failing(mut self, reason: &str, message: &str) -> Obj {
        self.ready = "False".into();
        self.reason = reason.into();
        self.message = message.into();
        self
    }

    /// Waiting on its dependencies.
    pub fn waiting(self) -> Obj {
        self.failing(DEPENDENCY_NOT_READY_REASON, "dependency is not ready")
    }

    pub fn since(mut self, since: i64) -> Obj {
        self.since = since;
        self
    }

    pub fn source(mut self, kind: &str, namespace: &str, name: &str) -> Obj {
        self.source = Some((kind.into(), namespace.into(), name.into()));
        self
    }

    pub fn depends_on(mut self, kind: &str, namespace: &str, name: &str) -> Obj {
        self.depends_on
            .push((kind.into(), namespace.into(), name.into()));
        self
    }

    pub fn suspended(mut self) -> Obj {
        self.suspended = true;
        self
    }

    /// Its `flux_resource_info` row.
    pub fn row(&self) -> ResourceRow {
        ResourceRow {
            uid: format!("uid-{}-{}-{}", self.kind, self.namespace, self.name),
            kind: self.kind.clone(),
            name: self.name.clone(),
            exported_namespace: self.namespace.clone(),
            ready: self.ready.clone(),
            reason: self.reason.clone(),
            suspended: if self.suspended { "True" } else { "False" }.into(),
            revision: self.revision.clone(),
            url: self.url.clone(),
            source_name: self
                .source
                .as_ref()
                .map(|s| s.2.clone())
                .unwrap_or_default(),
            condition_status: self.ready.clone(),
            ..ResourceRow::default()
        }
    }

    /// Its details, as a run keeps them.
    pub fn detail(&self) -> ObjectDetail {
        let owned = |(kind, namespace, name): &(String, String, String)| OwnedRef {
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let not_ready = self.ready != "True";
        ObjectDetail {
            since: Some(self.since).filter(|s| *s != 0),
            message: if not_ready {
                self.message.clone()
            } else {
                String::new()
            },
            failing: !self.suspended
                && self.ready == "False"
                && self.reason != DEPENDENCY_NOT_READY_REASON,
            suspended: self.suspended,
            source: self.source.as_ref().map(owned),
            depends_on: self.depends_on.iter().map(owned).collect(),
            conditions: if not_ready {
                vec![OwnedCondition {
                    type_: "Ready".into(),
                    status: self.ready.clone(),
                    reason: self.reason.clone(),
                    message: self.message.clone(),
                    since: Some(self.since).filter(|s| *s != 0),
                }]
            } else {
                Vec::new()
            },
        }
    }
}

/// The snapshot of a run that saw `objects` (and nothing else), finished at `at`.
pub fn snapshot(objects: &[Obj], at: i64) -> Snapshot {
    let mut builders: BTreeMap<&str, ResourceRowsBuilder> = BTreeMap::new();
    let mut stats: BTreeMap<&str, FluxReconcilerStats> = BTreeMap::new();
    for o in objects {
        let d = o.detail();
        let s = stats.entry(&o.kind).or_default();
        if o.suspended {
            s.suspended += 1;
        } else {
            s.running += 1;
        }
        if d.failing {
            s.failing += 1;
        }
        builders
            .entry(&o.kind)
            .or_insert_with(|| ResourceRowsBuilder::new(&o.kind, 0).with_details())
            .push_detailed_row(&o.row(), &d);
    }
    let mut outcome = Outcome {
        duration: Duration::from_millis(42),
        ..Outcome::default()
    };
    for (kind, b) in builders {
        outcome.resource_rows.insert(kind.to_string(), b.finish());
    }
    let spec = FluxReportSpec {
        reconcilers: stats
            .into_iter()
            .map(|(kind, stats)| FluxReconcilerStatus {
                api_version: "test.toolkit.fluxcd.io/v1".into(),
                kind: kind.into(),
                stats,
            })
            .collect(),
        ..FluxReportSpec::default()
    };
    Snapshot::next(
        None,
        Input {
            origin: Origin::Operator {
                pod: "flux-reporter-0".into(),
            },
            namespace: "flux-system",
            outcome: &outcome,
            spec: &spec,
            readiness: Readiness {
                ready: true,
                reason: "Succeeded",
                message: "Reporting finished in 42ms".into(),
            },
            finished_at: at,
            instance: None,
        },
    )
}

/// `n` objects over six Flux kinds and 50 namespaces: about 5% failing, some
/// of them because their source fails, 1.7% waiting on a failing
/// Kustomization, 1% suspended: what `bench_web` renders.
pub fn many(n: usize, at: i64) -> Vec<Obj> {
    const KINDS: [&str; 6] = [
        "GitRepository",
        "HelmRelease",
        "HelmRepository",
        "Kustomization",
        "OCIRepository",
        "ImagePolicy",
    ];
    (0..n)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let ns = format!("team-{:02}", (i / KINDS.len()) % 50);
            let name = format!("app-{i:06}");
            let mut o = Obj::new(kind, &ns, &name).since(at - (i as i64 % 86_400));
            o.revision = format!("main@sha1:{:040x}", i * 7919);
            o.url = format!("https://github.com/example-org/app-{}.git", i % 1000);
            if kind == "Kustomization" {
                o = o.source("GitRepository", &ns, &format!("app-{:06}", i - 3));
            }
            // Every 60th a broken GitRepository: the Kustomization three
            // objects on takes its artifact from it and fails too, and the
            // one six on waits on that Kustomization.
            if i % 20 == 3 || (kind == "GitRepository" && i % 60 == 0) {
                o = o.failing(
                    "GitOperationFailed",
                    "failed to checkout and determine revision: unable to clone \
                     'https://github.com/example-org/app.git': authentication required",
                );
            } else if i % 20 == 9 && kind == "Kustomization" {
                // The failing Kustomization six objects before, in its namespace.
                let dep_ns = format!("team-{:02}", ((i - 6) / KINDS.len()) % 50);
                o = o
                    .depends_on("Kustomization", &dep_ns, &format!("app-{:06}", i - 6))
                    .waiting();
            } else if i % 97 == 0 {
                o = o.suspended();
            }
            o
        })
        .collect()
}
