//! Managed fields: field sets in the `FieldsV1` encoding, ownership after an update, and the
//! schema hints (`x-kubernetes-list-type`) that decide how lists are owned and merged.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// One step of a field path, as in `f:name`, `k:{"type":"Ready"}` and `v:"value"`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    Field(String),
    /// A list item identified by its key fields (compact JSON object, keys sorted).
    Key(String),
    /// A set item identified by its value (compact JSON).
    Value(String),
}

pub(crate) type FieldPath = Vec<PathElement>;
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Renders a path the way conflict messages do: `.spec.replicas`,
/// `.status.conditions[type="Ready"].status`, `.metadata.finalizers[="x"]`.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(k) => {
                let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push('[');
                s.push_str(&parts.join(","));
                s.push(']');
            }
            PathElement::Value(v) => {
                s.push_str("[=");
                s.push_str(v);
                s.push(']');
            }
        }
    }
    s
}

/// How a list is owned and merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// A position in a CRD's structural schema (or nowhere, for built-ins).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaNode<'a>(pub Option<&'a Value>);

impl<'a> SchemaNode<'a> {
    pub fn child(&self, field: &str) -> SchemaNode<'a> {
        let Some(s) = self.0 else {
            return SchemaNode(None);
        };
        if let Some(p) = s.get("properties").and_then(|p| p.get(field)) {
            return SchemaNode(Some(p));
        }
        match s.get("additionalProperties") {
            Some(ap) if ap.is_object() => SchemaNode(Some(ap)),
            _ => SchemaNode(None),
        }
    }

    pub fn items(&self) -> SchemaNode<'a> {
        SchemaNode(self.0.and_then(|s| s.get("items")))
    }

    pub fn list_type(&self) -> ListType {
        let Some(s) = self.0 else {
            return ListType::Atomic;
        };
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        }
    }
}

/// Which fields a collection walk includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Server-side apply: leaves and keyed list items only.
    Apply,
    /// Other writes: every map node too (the `.` marker).
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole object except system metadata.
    All,
    /// The main resource of a kind with a status subresource: everything but `.status`.
    NoStatus,
    /// Only `.status`.
    StatusOnly,
}

/// The key of a list-map item, if it has all key fields.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    serde_json::to_string(&Value::Object(m)).ok()
}

fn metadata_list_type(field: &str) -> Option<ListType> {
    match field {
        "finalizers" => Some(ListType::Set),
        "ownerReferences" => Some(ListType::Map(vec!["uid".to_string()])),
        _ => None,
    }
}

/// The fields an object sets.
pub(crate) fn collect(obj: &Value, schema: SchemaNode, mode: Mode, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return set;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if scope == Scope::StatusOnly {
                    continue;
                }
                let Some(meta) = v.as_object() else { continue };
                for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    let Some(fv) = meta.get(field) else { continue };
                    let path = vec![
                        PathElement::Field("metadata".into()),
                        PathElement::Field(field.into()),
                    ];
                    match metadata_list_type(field) {
                        Some(lt) => walk_list(&mut set, path, fv, lt, SchemaNode(None), mode),
                        None => walk(&mut set, path, fv, SchemaNode(None), mode),
                    }
                }
            }
            "status" => {
                if scope != Scope::NoStatus {
                    walk(
                        &mut set,
                        vec![PathElement::Field(k.clone())],
                        v,
                        schema.child(k),
                        mode,
                    );
                }
            }
            _ => {
                if scope != Scope::StatusOnly {
                    walk(
                        &mut set,
                        vec![PathElement::Field(k.clone())],
                        v,
                        schema.child(k),
                        mode,
                    );
                }
            }
        }
    }
    set
}

fn walk(set: &mut FieldSet, path: FieldPath, v: &Value, schema: SchemaNode, mode: Mode) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            if mode == Mode::Update {
                set.insert(path.clone());
            }
            for (k, c) in map {
                let mut p = path.clone();
                p.push(PathElement::Field(k.clone()));
                walk(set, p, c, schema.child(k), mode);
            }
        }
        Value::Array(_) => walk_list(set, path, v, schema.list_type(), schema.items(), mode),
        _ => {
            set.insert(path);
        }
    }
}

fn walk_list(
    set: &mut FieldSet,
    path: FieldPath,
    v: &Value,
    lt: ListType,
    items: SchemaNode,
    mode: Mode,
) {
    let Some(list) = v.as_array() else {
        set.insert(path);
        return;
    };
    match lt {
        ListType::Atomic => {
            set.insert(path);
        }
        ListType::Set => {
            if mode == Mode::Update {
                set.insert(path.clone());
            }
            for item in list {
                let mut p = path.clone();
                p.push(PathElement::Value(
                    serde_json::to_string(item).unwrap_or_default(),
                ));
                set.insert(p);
            }
        }
        ListType::Map(keys) => {
            if mode == Mode::Update {
                set.insert(path.clone());
            }
            for item in list {
                let Some(key) = item_key(item, &keys) else {
                    continue;
                };
                let mut p = path.clone();
                p.push(PathElement::Key(key));
                set.insert(p.clone());
                if let Some(m) = item.as_object() {
                    for (k, c) in m {
                        let mut cp = p.clone();
                        cp.push(PathElement::Field(k.clone()));
                        walk(set, cp, c, items.child(k), mode);
                    }
                }
            }
        }
    }
}

/// The value at a path, if the object has one.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut cur = obj;
    for e in path {
        cur = match e {
            PathElement::Field(f) => cur.get(f)?,
            PathElement::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?
                    .iter()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
            }
            PathElement::Value(v) => {
                let val: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|item| **item == val)?
            }
        };
    }
    Some(cur)
}

/// Removes the value at a path (a field, a keyed item or a set item).
pub(crate) fn remove_at(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for e in parent_path {
        let next = match e {
            PathElement::Field(f) => cur.get_mut(f),
            PathElement::Key(k) => {
                let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                    return;
                };
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
                })
            }
            PathElement::Value(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElement::Key(k) => {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            if let Some(a) = cur.as_array_mut() {
                a.retain(|item| !key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
            }
        }
        PathElement::Value(v) => {
            let Ok(val) = serde_json::from_str::<Value>(v) else {
                return;
            };
            if let Some(a) = cur.as_array_mut() {
                a.retain(|item| *item != val);
            }
        }
    }
}

/// Encodes a field set as `fieldsV1`.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn encode(e: &PathElement) -> String {
        match e {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
        }
    }
    fn render(node: &Node) -> Value {
        let mut m = Map::new();
        if node.member && !node.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &node.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut cur = &mut root;
        for e in path {
            cur = cur.children.entry(encode(e)).or_default();
        }
        cur.member = true;
    }
    render(&root)
}

/// Decodes `fieldsV1` into a field set (unknown encodings are skipped).
pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
    fn decode(k: &str) -> Option<PathElement> {
        if let Some(f) = k.strip_prefix("f:") {
            Some(PathElement::Field(f.to_string()))
        } else if let Some(key) = k.strip_prefix("k:") {
            // Normalise the key's JSON so it compares equal to ours.
            let parsed: Value = serde_json::from_str(key).ok()?;
            Some(PathElement::Key(serde_json::to_string(&parsed).ok()?))
        } else if let Some(val) = k.strip_prefix("v:") {
            let parsed: Value = serde_json::from_str(val).ok()?;
            Some(PathElement::Value(serde_json::to_string(&parsed).ok()?))
        } else {
            None
        }
    }
    fn go(set: &mut FieldSet, path: &FieldPath, v: &Value) {
        let Some(m) = v.as_object() else { return };
        for (k, c) in m {
            if k == "." {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
                continue;
            }
            let Some(e) = decode(k) else { continue };
            let mut p = path.clone();
            p.push(e);
            if c.as_object().is_some_and(Map::is_empty) {
                set.insert(p);
            } else {
                go(set, &p, c);
            }
        }
    }
    let mut set = FieldSet::new();
    go(&mut set, &Vec::new(), v);
    set
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    pub fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub(crate) fn parse_entries(obj: &Value) -> Vec<Entry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().map(str::to_string),
                    set: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes entries back into `metadata.managedFields`, sorted as apimachinery sorts them.
pub(crate) fn store_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        let op = |e: &Entry| if e.operation == "Apply" { 0 } else { 1 };
        op(a)
            .cmp(&op(b))
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let meta = crate::apiserver::util::metadata_mut(obj);
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let rendered: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), to_fields_v1(&e.set));
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            if let Some(t) = &e.time {
                m.insert("time".into(), json!(t));
            }
            Value::Object(m)
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(rendered));
}

/// Whether a collected path names a container (a non-empty map, a keyed item or a non-atomic
/// list) rather than a leaf value.
fn is_container(set: &FieldSet, path: &FieldPath) -> bool {
    set.range(path.clone()..)
        .nth(1)
        .is_some_and(|next| next.len() > path.len() && next.starts_with(path))
}

/// Who makes a write and through which endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
}

/// Updates `new`'s managed fields for a non-apply write (create, update, patch): the writer
/// takes the fields it changed, other managers lose them, removed fields leave every set.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer,
    schema: SchemaNode,
) {
    let mut entries = match new.get("metadata").and_then(|m| m.get("managedFields")) {
        Some(Value::Array(_)) => parse_entries(new),
        _ => old.map(parse_entries).unwrap_or_default(),
    };
    let empty = Value::Null;
    let old_obj = old.unwrap_or(&empty);
    let old_set = collect(old_obj, schema, Mode::Update, Scope::All);
    let new_set = collect(new, schema, Mode::Update, Scope::All);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            !old_set.contains(*p)
                || (!is_container(&new_set, p) && value_at(old_obj, p) != value_at(new, p))
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    let mut found = false;
    for e in &mut entries {
        let before = e.set.len();
        e.set.retain(|p| !removed.contains(p));
        if e.same_owner(writer.manager, "Update", writer.subresource) {
            found = true;
            let grown = changed.iter().filter(|p| !e.set.contains(*p)).count();
            e.set.extend(changed.iter().cloned());
            if grown > 0 || e.set.len() != before {
                e.time = Some(writer.now.to_string());
                e.api_version = writer.api_version.to_string();
            }
        } else {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    if !found && !changed.is_empty() {
        entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Update".to_string(),
            subresource: writer.subresource.to_string(),
            api_version: writer.api_version.to_string(),
            time: Some(writer.now.to_string()),
            set: changed,
        });
    }
    store_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_sets_round_trip_through_fields_v1() {
        let obj = json!({
            "apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"app": "x"}},
            "spec": {"interval": "5m", "replicas": 1}
        });
        let set = collect(&obj, SchemaNode(None), Mode::Update, Scope::All);
        let encoded = to_fields_v1(&set);
        assert_eq!(
            encoded,
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {".": {}, "f:interval": {}, "f:replicas": {}}
            })
        );
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn apply_sets_key_list_map_items() {
        let schema = json!({"properties": {"status": {"properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"}
        }}}}});
        let obj = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let set = collect(&obj, SchemaNode(Some(&schema)), Mode::Apply, Scope::All);
        assert_eq!(
            to_fields_v1(&set),
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
        let path = vec![
            PathElement::Field("status".into()),
            PathElement::Field("conditions".into()),
            PathElement::Key("{\"type\":\"Ready\"}".into()),
            PathElement::Field("status".into()),
        ];
        assert_eq!(
            path_string(&path),
            ".status.conditions[type=\"Ready\"].status"
        );
        assert_eq!(value_at(&obj, &path), Some(&json!("True")));
    }
}
