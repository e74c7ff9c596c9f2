//! The object store: one collection per resource (keyed by namespace and name, so lists page in
//! key order), one global resourceVersion counter, and a bounded history of changes that
//! watches resume from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::{CRD_STORAGE_KEY, NAMESPACE_STORAGE_KEY, Registry};
use super::util::{metadata_mut, new_uid, now_rfc3339};

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as watches replay it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub storage_key: Arc<str>,
    pub kind: ChangeType,
    pub object: Arc<Value>,
    /// The state before the change (for selectors: leaving a selection is a DELETED event).
    pub prev: Option<Arc<Value>>,
}

/// The first resourceVersion handed out; everything below is "too old".
const FIRST_RESOURCE_VERSION: u64 = 1000;
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 200_000;

pub(crate) struct State {
    pub rv: u64,
    pub collections: HashMap<String, BTreeMap<ObjKey, Arc<Value>>>,
    pub history: VecDeque<Arc<Change>>,
    pub history_limit: usize,
    /// Changes at or below this resourceVersion are no longer in the history.
    pub compacted_rv: u64,
    pub registry: Arc<Registry>,
    notify: tokio::sync::watch::Sender<u64>,
}

impl State {
    pub fn new(notify: tokio::sync::watch::Sender<u64>) -> Self {
        let mut s = State {
            rv: FIRST_RESOURCE_VERSION,
            collections: HashMap::new(),
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            compacted_rv: FIRST_RESOURCE_VERSION,
            registry: Arc::new(Registry::new(&[])),
            notify,
        };
        for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": new_uid(),
                    "creationTimestamp": now_rfc3339(),
                    "labels": {"kubernetes.io/metadata.name": ns}
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}
            });
            s.put(NAMESPACE_STORAGE_KEY, (String::new(), ns.to_string()), obj);
        }
        // Like a real server, the resourceVersions from before start are already compacted.
        s.compact();
        s
    }

    pub fn get(&self, storage_key: &str, key: &ObjKey) -> Option<Arc<Value>> {
        self.collections.get(storage_key)?.get(key).cloned()
    }

    fn push_history(&mut self, change: Change) {
        self.history.push_back(Arc::new(change));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        self.notify.send_replace(self.rv);
    }

    /// Stores an object under a new resourceVersion (ADDED or MODIFIED).
    pub fn put(&mut self, storage_key: &str, key: ObjKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let obj = Arc::new(obj);
        let prev = self
            .collections
            .entry(storage_key.to_string())
            .or_default()
            .insert(key, obj.clone());
        let kind = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.push_history(Change {
            rv: self.rv,
            storage_key: storage_key.into(),
            kind,
            object: obj.clone(),
            prev,
        });
        if storage_key == CRD_STORAGE_KEY {
            self.rebuild_registry();
        }
        obj
    }

    /// Removes an object; the DELETED event carries its last state under a new resourceVersion.
    pub fn remove(
        &mut self,
        storage_key: &str,
        key: &ObjKey,
        last_state: Option<Value>,
    ) -> Option<Arc<Value>> {
        let prev = self.collections.get_mut(storage_key)?.remove(key)?;
        self.rv += 1;
        let mut last = last_state.unwrap_or_else(|| (*prev).clone());
        metadata_mut(&mut last).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let last = Arc::new(last);
        self.push_history(Change {
            rv: self.rv,
            storage_key: storage_key.into(),
            kind: ChangeType::Deleted,
            object: last.clone(),
            prev: Some(prev),
        });
        if storage_key == CRD_STORAGE_KEY {
            self.rebuild_registry();
        }
        Some(last)
    }

    /// Recomputes the served resources from the stored CRDs.
    pub fn rebuild_registry(&mut self) {
        let crds: Vec<Arc<Value>> = self
            .collections
            .get(CRD_STORAGE_KEY)
            .map(|c| {
                c.values()
                    .filter(|crd| crd_is_established(crd))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.registry = Arc::new(Registry::new(&crds));
    }

    /// Forgets the whole history: every resourceVersion older than the current one becomes too
    /// old to watch from or to continue a list at (what etcd compaction does).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// The changes after `rv`, or `None` if some of them were compacted away.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted_rv {
            return None;
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Some(self.history.range(start..).cloned().collect())
    }
}

pub(crate) fn crd_is_established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}
