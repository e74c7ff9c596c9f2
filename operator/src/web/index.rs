//! Lookups of objects by kind, namespace and name, and the failing objects
//! grouped by root cause (docs/design.md "The status page: root causes").
//!
//! An object that waits on a dependency (`DependencyNotReady`) is put under
//! the first of its `dependsOn` (or, without any, its source) that is not
//! ready; a failing object whose source (`sourceRef`, `chartRef`, the
//! HelmChart of a HelmRelease, `imageRepositoryRef`) is failing is put under
//! that source. Chains are followed to their end, so a Kustomization waiting
//! on one that waits on a broken GitRepository is under the GitRepository. A
//! reference to an object of a listed kind that does not exist ends the
//! chain at that missing object; objects that wait on each other in a circle
//! are one group, the cycle.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use flux_reporter_api::constants::DEPENDENCY_NOT_READY_REASON;
use flux_reporter_report::metrics::{ObjRef, RowRef};

use super::model::Snapshot;

/// Built once per snapshot, on first use.
#[derive(Debug)]
pub struct Index {
    /// `(hash of kind, namespace and name, object id)`, sorted.
    keys: Vec<(u64, u32)>,
    hasher: RandomState,
    pub failing: Failing,
}

/// The failing objects, grouped by root cause.
#[derive(Debug, Default)]
pub struct Failing {
    /// Newest first.
    pub groups: Vec<Group>,
    /// Objects failing as the FluxReport counts them (`Ready=False`, not
    /// suspended, not `DependencyNotReady`; not the Flux Operator's kinds).
    pub failing: usize,
    /// Objects waiting on a dependency (`Ready=False`, `DependencyNotReady`,
    /// not suspended): not counted as failing, shown under their cause.
    pub waiting: usize,
    /// `(object id, group)` of every root and dependant, sorted.
    group_of: Vec<(u32, u32)>,
}

/// A root cause and the objects that fail or wait because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub root: Root,
    /// Failing and waiting objects under the root (not the root itself, nor
    /// the members of a cycle), newest first.
    pub dependants: Vec<u32>,
    /// The newest Ready `lastTransitionTime` in the group (0: none known).
    pub newest: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An object: failing, or not ready with others waiting on it.
    Object(u32),
    /// Referenced, of a kind that was listed, and not there.
    Missing {
        kind: String,
        namespace: String,
        name: String,
    },
    /// Objects that wait on each other, in the order one waits on the next.
    Cycle(Vec<u32>),
}

impl Group {
    /// `Kind/namespace/name` of the root (for a cycle, of the member that
    /// sorts first): what `/objects?cause=` names.
    pub fn key(&self, s: &Snapshot) -> String {
        let (kind, namespace, name) = self.sort_key(s);
        format!("{kind}/{namespace}/{name}")
    }

    /// Kind, namespace and name of the root, as [`Group::key`] names it, borrowed.
    fn sort_key<'a>(&'a self, s: &'a Snapshot) -> (&'a str, &'a str, &'a str) {
        let of = |id: u32| {
            let (kind, row) = s.object(id);
            (kind.kind.as_str(), row.exported_namespace(), row.name())
        };
        match &self.root {
            Root::Object(id) => of(*id),
            Root::Missing {
                kind,
                namespace,
                name,
            } => (kind, namespace, name),
            Root::Cycle(ids) => ids.iter().map(|id| of(*id)).min().unwrap_or_default(),
        }
    }

    /// The objects of the group: the root object or the cycle, then the dependants.
    pub fn members(&self) -> impl Iterator<Item = u32> + '_ {
        let roots: &[u32] = match &self.root {
            Root::Object(id) => std::slice::from_ref(id),
            Root::Missing { .. } => &[],
            Root::Cycle(ids) => ids,
        };
        roots.iter().chain(&self.dependants).copied()
    }
}

/// `Kind/namespace/name`.
pub fn object_key(s: &Snapshot, id: u32) -> String {
    let (kind, row) = s.object(id);
    format!("{}/{}/{}", kind.kind, row.exported_namespace(), row.name())
}

enum Target<'a> {
    Object(u32),
    Missing(ObjRef<'a>),
}

impl Index {
    pub fn build(s: &Snapshot) -> Index {
        let hasher = RandomState::new();
        let mut keys = Vec::with_capacity(s.len());
        for (k, kind) in s.kinds.iter().enumerate() {
            for (id, row) in s.ids_of(k).zip(kind.rows.refs()) {
                let h = hasher.hash_one((kind.kind.as_str(), row.exported_namespace(), row.name()));
                keys.push((h, id));
            }
        }
        keys.sort_unstable();
        let mut index = Index {
            keys,
            hasher,
            failing: Failing::default(),
        };
        index.failing = Failing::build(s, &index);
        index
    }

    /// The id of the object `r` names.
    pub fn lookup(&self, s: &Snapshot, r: ObjRef<'_>) -> Option<u32> {
        let h = self.hasher.hash_one((r.kind, r.namespace, r.name));
        let start = self.keys.partition_point(|(k, _)| *k < h);
        self.keys[start..]
            .iter()
            .take_while(|(k, _)| *k == h)
            .map(|(_, id)| *id)
            .find(|id| {
                let (kind, row) = s.object(*id);
                kind.kind == r.kind
                    && row.exported_namespace() == r.namespace
                    && row.name() == r.name
            })
    }
}

/// Whether the object is failing (`Some(true)`), waiting on a dependency
/// (`Some(false)`), or neither.
pub fn problem(row: &RowRef<'_>) -> Option<bool> {
    let d = row.detail()?;
    if d.failing() {
        Some(true)
    } else if !d.suspended()
        && row.condition_status() == "False"
        && row.reason() == DEPENDENCY_NOT_READY_REASON
    {
        Some(false)
    } else {
        None
    }
}

/// What object `id` fails or waits because of, if anything.
fn cause<'a>(s: &'a Snapshot, ix: &Index, id: u32) -> Option<Target<'a>> {
    let (_, row) = s.object(id);
    let d = row.detail()?;
    if row.ready() == "True" {
        return None;
    }
    let listed = |kind: &str| s.kind_index(kind).is_some();
    if row.reason() == DEPENDENCY_NOT_READY_REASON {
        let mut deps: Vec<ObjRef<'a>> = d.depends_on().collect();
        if deps.is_empty() {
            deps.extend(d.source());
        }
        for dep in deps {
            match ix.lookup(s, dep) {
                Some(t) if s.object(t).1.ready() != "True" => return Some(Target::Object(t)),
                Some(_) => {}
                None if listed(dep.kind) => return Some(Target::Missing(dep)),
                None => {}
            }
        }
        return None;
    }
    if row.condition_status() == "False"
        && let Some(src) = d.source()
    {
        match ix.lookup(s, src) {
            Some(t) if s.object(t).1.condition_status() == "False" => {
                return Some(Target::Object(t));
            }
            None if listed(src.kind) => return Some(Target::Missing(src)),
            _ => {}
        }
    }
    None
}

fn since(s: &Snapshot, id: u32) -> i64 {
    s.object(id).1.detail().and_then(|d| d.since()).unwrap_or(0)
}

impl Failing {
    fn build(s: &Snapshot, ix: &Index) -> Failing {
        let mut out = Failing::default();
        let mut problems = Vec::new();
        for id in 0..s.len() as u32 {
            let (kind, row) = s.object(id);
            // The counts are the FluxReport's, whose reconcilers leave out the Flux Operator's
            // kinds (a failing FluxInstance is listed, and counted on the overview's card).
            let counted = usize::from(!kind.operator);
            match problem(&row) {
                Some(true) => {
                    out.failing += counted;
                    problems.push(id);
                }
                Some(false) => {
                    out.waiting += counted;
                    problems.push(id);
                }
                None => {}
            }
        }
        const NONE: u32 = u32::MAX;
        let mut roots: Vec<Root> = Vec::new();
        // Missing objects are named by several dependants: one root each.
        let mut missing: HashMap<(String, String, String), u32> = HashMap::new();
        // The root (its place in `roots`) of every object walked so far.
        let mut memo: Vec<u32> = vec![NONE; s.len()];
        // A new root: an object or a cycle is reached once (a walk that meets
        // an object walked before takes its root), so it is never there yet.
        let push = |root: Root, roots: &mut Vec<Root>| -> u32 {
            roots.push(root);
            (roots.len() - 1) as u32
        };
        // One path and its positions, reused from walk to walk.
        let mut path: Vec<u32> = Vec::new();
        let mut on_path: HashMap<u32, usize> = HashMap::new();
        for &id in &problems {
            if memo[id as usize] != NONE {
                continue;
            }
            path.clear();
            path.push(id);
            on_path.clear();
            on_path.insert(id, 0);
            let root = loop {
                let cur = *path.last().expect("the path starts with the object");
                match cause(s, ix, cur) {
                    None => break push(Root::Object(cur), &mut roots),
                    Some(Target::Missing(r)) => {
                        let key = (
                            r.kind.to_string(),
                            r.namespace.to_string(),
                            r.name.to_string(),
                        );
                        if let Some(&g) = missing.get(&key) {
                            break g;
                        }
                        let g = push(
                            Root::Missing {
                                kind: key.0.clone(),
                                namespace: key.1.clone(),
                                name: key.2.clone(),
                            },
                            &mut roots,
                        );
                        missing.insert(key, g);
                        break g;
                    }
                    Some(Target::Object(t)) => {
                        if let Some(&at) = on_path.get(&t) {
                            break push(Root::Cycle(path[at..].to_vec()), &mut roots);
                        }
                        if memo[t as usize] != NONE {
                            break memo[t as usize];
                        }
                        on_path.insert(t, path.len());
                        path.push(t);
                    }
                }
            };
            for &x in &path {
                memo[x as usize] = root;
            }
        }
        let mut groups: Vec<Group> = roots
            .into_iter()
            .map(|root| Group {
                root,
                dependants: Vec::new(),
                newest: 0,
            })
            .collect();
        for &id in &problems {
            let g = memo[id as usize] as usize;
            let in_root = match &groups[g].root {
                Root::Object(r) => *r == id,
                Root::Cycle(ids) => ids.contains(&id),
                Root::Missing { .. } => false,
            };
            if !in_root {
                groups[g].dependants.push(id);
            }
        }
        for g in &mut groups {
            g.dependants
                .sort_by_key(|id| (std::cmp::Reverse(since(s, *id)), *id));
            g.newest = g.members().map(|id| since(s, id)).max().unwrap_or(0);
        }
        groups.sort_by(|a, b| {
            b.newest
                .cmp(&a.newest)
                .then_with(|| a.sort_key(s).cmp(&b.sort_key(s)))
        });
        for (n, g) in groups.iter().enumerate() {
            for id in g.members() {
                out.group_of.push((id, n as u32));
            }
        }
        out.group_of.sort_unstable();
        out.groups = groups;
        out
    }

    /// The group object `id` is the root of, or under.
    pub fn group_of(&self, id: u32) -> Option<&Group> {
        let i = self.group_of.binary_search_by_key(&id, |(o, _)| *o).ok()?;
        self.groups.get(self.group_of[i].1 as usize)
    }

    /// The group whose [`Group::key`] is `key`.
    pub fn group_by_key(&self, s: &Snapshot, key: &str) -> Option<&Group> {
        let mut parts = key.splitn(3, '/');
        let want = (parts.next()?, parts.next()?, parts.next()?);
        self.groups.iter().find(|g| g.sort_key(s) == want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::fixture::{Obj, snapshot};

    const T: i64 = 1_800_000_000;

    fn key(s: &Snapshot, id: u32) -> String {
        object_key(s, id)
    }

    /// Each group as `root: dependants`, in page order.
    fn groups(s: &Snapshot) -> Vec<String> {
        s.index()
            .failing
            .groups
            .iter()
            .map(|g| {
                let root = match &g.root {
                    Root::Object(id) => key(s, *id),
                    Root::Missing {
                        kind,
                        namespace,
                        name,
                    } => format!("missing {kind}/{namespace}/{name}"),
                    Root::Cycle(ids) => format!(
                        "cycle {}",
                        ids.iter()
                            .map(|id| key(s, *id))
                            .collect::<Vec<_>>()
                            .join(" > ")
                    ),
                };
                let deps: Vec<String> = g.dependants.iter().map(|id| key(s, *id)).collect();
                format!("{root}: {}", deps.join(", "))
            })
            .collect()
    }

    #[test]
    fn one_broken_source_is_one_entry_with_its_dependants() {
        let mut objects = vec![
            Obj::new("GitRepository", "apps", "fleet")
                .failing("GitOperationFailed", "auth failed")
                .since(T - 600),
        ];
        for i in 0..40 {
            objects.push(
                Obj::new("Kustomization", "apps", &format!("app-{i:02}"))
                    .source("GitRepository", "apps", "fleet")
                    .failing("ArtifactFailed", "no artifact")
                    .since(T - 500 + i),
            );
        }
        let s = snapshot(&objects, T);
        let f = &s.index().failing;
        assert_eq!((f.failing, f.waiting, f.groups.len()), (41, 0, 1));
        let g = &f.groups[0];
        assert_eq!(g.root, Root::Object(0));
        assert_eq!(g.dependants.len(), 40);
        // Newest first.
        assert_eq!(key(&s, g.dependants[0]), "Kustomization/apps/app-39");
        assert_eq!(g.newest, T - 500 + 39);
    }

    #[test]
    fn a_dependency_not_ready_object_is_under_its_dependency_through_chains() {
        let s = snapshot(
            &[
                Obj::new("GitRepository", "flux-system", "fleet")
                    .failing("GitOperationFailed", "x"),
                Obj::new("Kustomization", "flux-system", "infra")
                    .source("GitRepository", "flux-system", "fleet")
                    .failing("ArtifactFailed", "x"),
                Obj::new("Kustomization", "flux-system", "apps")
                    .depends_on("Kustomization", "flux-system", "infra")
                    .waiting(),
                Obj::new("Kustomization", "team-a", "web")
                    .depends_on("Kustomization", "flux-system", "apps")
                    .waiting(),
                Obj::new("HelmRelease", "team-b", "payments")
                    .depends_on("HelmRelease", "team-b", "payments-db")
                    .waiting(),
                Obj::new("HelmRelease", "team-b", "payments-db").failing("UpgradeFailed", "x"),
            ],
            T,
        );
        assert_eq!(
            groups(&s),
            [
                "GitRepository/flux-system/fleet: Kustomization/flux-system/infra, \
                 Kustomization/flux-system/apps, Kustomization/team-a/web",
                "HelmRelease/team-b/payments-db: HelmRelease/team-b/payments",
            ]
        );
        let f = &s.index().failing;
        assert_eq!((f.failing, f.waiting), (3, 3));
    }

    #[test]
    fn a_ready_or_unlisted_dependency_leaves_the_object_its_own_root() {
        let s = snapshot(
            &[
                // Its dependency became ready since: the object is its own entry.
                Obj::new("Kustomization", "a", "ok"),
                Obj::new("Kustomization", "a", "stale")
                    .depends_on("Kustomization", "a", "ok")
                    .waiting(),
                // A source of a kind not listed: cannot tell, its own entry.
                Obj::new("Kustomization", "a", "bucket-app")
                    .source("Bucket", "a", "b")
                    .failing("ArtifactFailed", "x"),
                // A source that is ready: failing for its own reason.
                Obj::new("GitRepository", "a", "repo"),
                Obj::new("Kustomization", "a", "build")
                    .source("GitRepository", "a", "repo")
                    .failing("BuildFailed", "x"),
            ],
            T,
        );
        let mut got = groups(&s);
        got.sort();
        assert_eq!(
            got,
            [
                "Kustomization/a/bucket-app: ",
                "Kustomization/a/build: ",
                "Kustomization/a/stale: ",
            ]
        );
    }

    #[test]
    fn missing_targets_are_a_root_of_their_own() {
        let s = snapshot(
            &[
                Obj::new("GitRepository", "a", "present"),
                Obj::new("Kustomization", "a", "x")
                    .source("GitRepository", "a", "gone")
                    .failing("ArtifactFailed", "GitRepository a/gone not found"),
                Obj::new("Kustomization", "a", "y")
                    .source("GitRepository", "a", "gone")
                    .failing("ArtifactFailed", "GitRepository a/gone not found"),
                Obj::new("Kustomization", "a", "z")
                    .depends_on("Kustomization", "a", "nope")
                    .waiting(),
            ],
            T,
        );
        let mut got = groups(&s);
        got.sort();
        assert_eq!(
            got,
            [
                "missing GitRepository/a/gone: Kustomization/a/x, Kustomization/a/y",
                "missing Kustomization/a/nope: Kustomization/a/z",
            ]
        );
        let g = s
            .index()
            .failing
            .group_by_key(&s, "GitRepository/a/gone")
            .unwrap();
        assert_eq!(g.members().count(), 2);
    }

    #[test]
    fn objects_that_wait_on_each_other_are_one_cycle() {
        let s = snapshot(
            &[
                Obj::new("Kustomization", "a", "one")
                    .depends_on("Kustomization", "a", "two")
                    .waiting(),
                Obj::new("Kustomization", "a", "two")
                    .depends_on("Kustomization", "a", "three")
                    .waiting(),
                Obj::new("Kustomization", "a", "three")
                    .depends_on("Kustomization", "a", "one")
                    .waiting(),
                Obj::new("Kustomization", "a", "tail")
                    .depends_on("Kustomization", "a", "two")
                    .waiting(),
                Obj::new("Kustomization", "b", "self")
                    .depends_on("Kustomization", "b", "self")
                    .waiting(),
            ],
            T,
        );
        let mut got = groups(&s);
        got.sort();
        assert_eq!(
            got,
            [
                "cycle Kustomization/a/one > Kustomization/a/two > Kustomization/a/three: \
                 Kustomization/a/tail",
                "cycle Kustomization/b/self: ",
            ]
        );
        let f = &s.index().failing;
        assert_eq!((f.failing, f.waiting), (0, 5));
        // Every waiting object is listed exactly once.
        let listed: usize = f.groups.iter().map(|g| g.members().count()).sum();
        assert_eq!(listed, 5);
        // The cycle is named by its member that sorts first.
        assert!(f.group_by_key(&s, "Kustomization/a/one").is_some());
    }

    #[test]
    fn an_in_progress_dependency_is_a_root_and_suspended_objects_are_left_out() {
        let mut progressing = Obj::new("HelmRelease", "m", "db");
        progressing.ready = "Unknown".into();
        progressing.reason = "Progressing".into();
        let s = snapshot(
            &[
                progressing,
                Obj::new("HelmRelease", "m", "app")
                    .depends_on("HelmRelease", "m", "db")
                    .waiting(),
                Obj::new("HelmRelease", "m", "paused")
                    .failing("InstallFailed", "x")
                    .suspended(),
            ],
            T,
        );
        assert_eq!(groups(&s), ["HelmRelease/m/db: HelmRelease/m/app"]);
        let f = &s.index().failing;
        assert_eq!((f.failing, f.waiting), (0, 1));
    }

    #[test]
    fn groups_are_newest_first_and_lookups_find_every_object() {
        let objects: Vec<Obj> = (0..50)
            .map(|i| {
                Obj::new("GitRepository", &format!("ns-{}", i % 3), &format!("r-{i}"))
                    .failing("GitOperationFailed", "x")
                    .since(T - 1000 + (i * 37) % 50)
            })
            .collect();
        let s = snapshot(&objects, T);
        let f = &s.index().failing;
        let newest: Vec<i64> = f.groups.iter().map(|g| g.newest).collect();
        let mut sorted = newest.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(newest, sorted);
        for id in 0..s.len() as u32 {
            let (kind, row) = s.object(id);
            let r = ObjRef {
                kind: &kind.kind,
                namespace: row.exported_namespace(),
                name: row.name(),
            };
            assert_eq!(s.index().lookup(&s, r), Some(id));
        }
        let absent = ObjRef {
            kind: "GitRepository",
            namespace: "ns-0",
            name: "r-1",
        };
        assert_eq!(s.index().lookup(&s, absent), None);
    }

    #[test]
    fn the_benchmark_objects_have_chains_of_root_causes() {
        let s = snapshot(&crate::web::fixture::many(600, T), T);
        let f = &s.index().failing;
        assert_eq!((f.failing, f.waiting), (40, 10));
        // 10 GitRepositories each with the Kustomization that fails because
        // of it and the one waiting on that; 20 failing on their own.
        let chains: Vec<&Group> = f
            .groups
            .iter()
            .filter(|g| g.dependants.len() == 2)
            .collect();
        assert_eq!(chains.len(), 10);
        assert_eq!(f.groups.len(), 30);
    }
}
