//! Server-side apply: conflicts with other managers, `force`, merging the applied intent and
//! removing the fields a manager stopped applying.

use serde_json::{Map, Value, json};

use super::fields::{self, Entry, FieldPath, FieldSet, ListType, Mode, SchemaNode, Scope, Writer};
use super::status::ApiError;

struct Conflict {
    manager: String,
    path: FieldPath,
}

/// How conflict messages name a manager (k8s fieldmanager `printManager`).
fn print_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s = format!("{s} with subresource {:?}", e.subresource);
    }
    if e.operation == "Update" {
        return match &e.time {
            Some(t) => format!("{s} using {} at {t}", e.api_version),
            None => format!("{s} using {}", e.api_version),
        };
    }
    s
}

fn conflict_error(mut conflicts: Vec<Conflict>) -> ApiError {
    conflicts.sort_by(|a, b| a.manager.cmp(&b.manager).then_with(|| a.path.cmp(&b.path)));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.manager),
                "field": fields::path_string(&c.path),
            })
        })
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].manager,
            fields::path_string(&conflicts[0].path)
        )
    } else {
        let mut lines = Vec::new();
        let mut last: Option<&str> = None;
        for c in &conflicts {
            if last != Some(c.manager.as_str()) {
                lines.push(format!("conflicts with {}:", c.manager));
                last = Some(c.manager.as_str());
            }
            lines.push(format!("- {}", fields::path_string(&c.path)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::new(
        409,
        message,
        Some("Conflict"),
        Some(json!({ "causes": causes })),
    )
}

/// Applies `applied` (the manager's full intent) to `live` and returns the new object with its
/// managed fields. `live` is a skeleton (apiVersion, kind, name) when the object is new.
pub(crate) fn apply(
    live: &Value,
    applied: &Value,
    writer: &Writer,
    force: bool,
    schema: SchemaNode,
    scope: Scope,
) -> Result<Value, ApiError> {
    let mut entries = fields::parse_entries(live);
    let applied_set = fields::collect(applied, schema, Mode::Apply, scope);
    let is_leaf = |p: &FieldPath| {
        !applied_set
            .range(p.clone()..)
            .nth(1)
            .is_some_and(|n| n.len() > p.len() && n.starts_with(p))
    };

    let mut conflicts = Vec::new();
    for e in &entries {
        if e.same_owner(writer.manager, "Apply", writer.subresource) {
            continue;
        }
        for p in e.set.intersection(&applied_set) {
            if !is_leaf(p) {
                continue;
            }
            let live_value = fields::value_at(live, p);
            if live_value.is_some() && live_value != fields::value_at(applied, p) {
                conflicts.push((
                    print_manager(e),
                    e.manager.clone(),
                    e.operation.clone(),
                    e.subresource.clone(),
                    p.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(
                conflicts
                    .into_iter()
                    .map(|(manager, _, _, _, path)| Conflict { manager, path })
                    .collect(),
            ));
        }
        for (_, manager, operation, subresource, path) in &conflicts {
            if let Some(e) = entries
                .iter_mut()
                .find(|e| e.same_owner(manager, operation, subresource))
            {
                e.set.remove(path);
            }
        }
    }

    let mut new = live.clone();
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.same_owner(writer.manager, "Apply", writer.subresource))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut dropped: Vec<&FieldPath> = previous
        .difference(&applied_set)
        .filter(|p| {
            !entries.iter().any(|e| {
                !e.same_owner(writer.manager, "Apply", writer.subresource)
                    && e.set.iter().any(|q| q.starts_with(p))
            })
        })
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        fields::remove_at(&mut new, p);
    }

    merge_root(&mut new, applied, schema, scope);

    match entries
        .iter_mut()
        .find(|e| e.same_owner(writer.manager, "Apply", writer.subresource))
    {
        Some(e) => {
            if e.set != applied_set {
                e.time = Some(writer.now.to_string());
            }
            e.set = applied_set;
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".to_string(),
            subresource: writer.subresource.to_string(),
            api_version: writer.api_version.to_string(),
            time: Some(writer.now.to_string()),
            set: applied_set,
        }),
    }
    fields::store_entries(&mut new, entries);
    Ok(new)
}

fn merge_root(target: &mut Value, applied: &Value, schema: SchemaNode, scope: Scope) {
    let Some(src) = applied.as_object() else {
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in src {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if scope == Scope::StatusOnly {
                    continue;
                }
                let Some(meta) = v.as_object() else { continue };
                let tmeta = crate::apiserver::util::metadata_mut(target);
                for field in ["labels", "annotations"] {
                    if let Some(src) = meta.get(field) {
                        let t = tmeta.entry(field).or_insert_with(|| json!({}));
                        merge_value(t, src, SchemaNode(None));
                    }
                }
                if let Some(src) = meta.get("finalizers") {
                    let t = tmeta.entry("finalizers").or_insert_with(|| json!([]));
                    merge_list(t, src, ListType::Set, SchemaNode(None));
                }
                if let Some(src) = meta.get("ownerReferences") {
                    let t = tmeta.entry("ownerReferences").or_insert_with(|| json!([]));
                    merge_list(t, src, ListType::Map(vec!["uid".into()]), SchemaNode(None));
                }
            }
            "status" if scope == Scope::NoStatus => {}
            _ if scope == Scope::StatusOnly && k != "status" => {}
            _ => {
                if v.is_null() {
                    continue;
                }
                let t = target
                    .as_object_mut()
                    .expect("made an object above")
                    .entry(k.clone())
                    .or_insert(Value::Null);
                merge_value(t, v, schema.child(k));
            }
        }
    }
}

fn merge_value(target: &mut Value, src: &Value, schema: SchemaNode) {
    match (target.is_object(), src) {
        (true, Value::Object(sm)) => {
            let tm = target.as_object_mut().expect("checked");
            for (k, v) in sm {
                if v.is_null() {
                    continue;
                }
                let t = tm.entry(k.clone()).or_insert(Value::Null);
                merge_value(t, v, schema.child(k));
            }
        }
        (_, Value::Array(_)) if target.is_array() => {
            merge_list(target, src, schema.list_type(), schema.items())
        }
        _ => *target = src.clone(),
    }
}

fn merge_list(target: &mut Value, src: &Value, lt: ListType, items: SchemaNode) {
    let (Some(t), Some(s)) = (target.as_array_mut(), src.as_array()) else {
        *target = src.clone();
        return;
    };
    match lt {
        ListType::Atomic => *target = src.clone(),
        ListType::Set => {
            for item in s {
                if !t.contains(item) {
                    t.push(item.clone());
                }
            }
        }
        ListType::Map(keys) => {
            for item in s {
                let key = fields::item_key(item, &keys);
                let existing = key.as_ref().and_then(|k| {
                    t.iter_mut()
                        .find(|ti| fields::item_key(ti, &keys).as_ref() == Some(k))
                });
                match existing {
                    Some(ti) => merge_value(ti, item, items),
                    None => t.push(item.clone()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            subresource: "",
            api_version: "example.io/v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn second_manager_conflicts_unless_forced_and_shares_equal_values() {
        let skeleton =
            json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}});
        let a = json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"interval": "5m", "replicas": 1}});
        let live = apply(
            &skeleton,
            &a,
            &writer("a"),
            false,
            SchemaNode(None),
            Scope::NoStatus,
        )
        .unwrap();
        assert_eq!(live["spec"]["replicas"], 1);

        let b = json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"replicas": 7, "suspend": true}});
        let err = apply(
            &live,
            &b,
            &writer("b"),
            false,
            SchemaNode(None),
            Scope::NoStatus,
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.status_value()["message"],
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );

        let forced = apply(
            &live,
            &b,
            &writer("b"),
            true,
            SchemaNode(None),
            Scope::NoStatus,
        )
        .unwrap();
        assert_eq!(
            forced["spec"],
            json!({"interval": "5m", "replicas": 7, "suspend": true})
        );

        let same = json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"interval": "5m"}});
        assert!(
            apply(
                &forced,
                &same,
                &writer("c"),
                false,
                SchemaNode(None),
                Scope::NoStatus
            )
            .is_ok()
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let skeleton =
            json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}});
        let first = json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}});
        let live = apply(
            &skeleton,
            &first,
            &writer("m"),
            false,
            SchemaNode(None),
            Scope::All,
        )
        .unwrap();
        let second = json!({"apiVersion": "example.io/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {"a": 1}});
        let live = apply(
            &live,
            &second,
            &writer("m"),
            false,
            SchemaNode(None),
            Scope::All,
        )
        .unwrap();
        assert_eq!(live["spec"], json!({"a": 1}));
    }
}
