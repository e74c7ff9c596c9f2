//! The rules a real API server applies to a CRD schema before it accepts it
//! (structural schemas, defaults, integer formats), checked on what we ship:
//! the project's tests run against a double that does not enforce them all.

use serde_json::Value;

fn schemas() -> Vec<(String, Value)> {
    flux_reporter_api::crds::all()
        .into_iter()
        .map(|g| {
            let v = serde_json::to_value(&g.crd).unwrap();
            let s = v
                .pointer("/spec/versions/0/schema/openAPIV3Schema")
                .unwrap()
                .clone();
            (g.crd.spec.names.kind.clone(), s)
        })
        .collect()
}

/// Every node has a type; arrays have items; objects do not mix properties
/// with additionalProperties; no unions; integer formats are int32/int64.
fn check(path: &str, node: &Value, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    for key in ["anyOf", "oneOf", "allOf", "not", "$ref", "nullable"] {
        if map.contains_key(key) {
            problems.push(format!("{path}: has {key}"));
        }
    }
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = map.get("type").and_then(Value::as_str);
    if ty.is_none() && !preserve {
        problems.push(format!("{path}: no type"));
    }
    if ty == Some("integer") {
        match map.get("format").and_then(Value::as_str) {
            None | Some("int32") | Some("int64") => {}
            Some(f) => problems.push(format!("{path}: integer format {f}")),
        }
    }
    if ty == Some("array") {
        match map.get("items") {
            Some(items) => check(&format!("{path}[]"), items, problems),
            None => problems.push(format!("{path}: array without items")),
        }
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check(&format!("{path}.{k}"), v, problems);
        }
        if let Some(req) = map.get("required").and_then(Value::as_array) {
            for r in req {
                if !props.contains_key(r.as_str().unwrap_or("")) {
                    problems.push(format!("{path}: required {r} is not a property"));
                }
            }
        }
    }
    if let Some(extra) = map.get("additionalProperties").filter(|v| v.is_object()) {
        check(&format!("{path}.*"), extra, problems);
    }
    if let Some(default) = map.get("default") {
        if let Some(e) = map.get("enum").and_then(Value::as_array)
            && !e.contains(default)
        {
            problems.push(format!("{path}: default {default} not in enum"));
        }
        let ok = match ty {
            Some("string") => default.is_string(),
            Some("boolean") => default.is_boolean(),
            Some("integer") => default.is_i64(),
            Some("object") => default.is_object(),
            Some("array") => default.is_array(),
            _ => true,
        };
        if !ok {
            problems.push(format!(
                "{path}: default {default} is not a {}",
                ty.unwrap_or("?")
            ));
        }
    }
}

#[test]
fn shipped_crd_schemas_are_structural() {
    for (kind, schema) in schemas() {
        let mut problems = Vec::new();
        check(kind.as_str(), &schema, &mut problems);
        assert!(problems.is_empty(), "{kind}: {problems:#?}");
    }
}

#[test]
fn root_metadata_is_not_constrained() {
    // A real server only allows name/generateName constraints under metadata.
    for (kind, schema) in schemas() {
        if let Some(meta) = schema.pointer("/properties/metadata") {
            assert!(
                meta.get("properties").is_none(),
                "{kind}: metadata has properties"
            );
        }
    }
}

#[test]
fn the_check_catches_what_a_real_server_rejects() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"description": "no type"},
            "b": {"type": "array"},
            "c": {"type": "integer", "format": "uint32"},
            "d": {"type": "string", "enum": ["x"], "default": "y"},
            "e": {"anyOf": [{"type": "string"}], "type": "string"}
        },
        "required": ["z"]
    });
    let mut problems = Vec::new();
    check("bad", &bad, &mut problems);
    assert_eq!(problems.len(), 6, "{problems:#?}");
}
