//! Structural-schema checks for custom resources: defaults, pruning of unknown fields, types,
//! `required`, `enum`, bounds, lengths, `pattern`, item counts, then the CEL rules of `cel.rs`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::cel::Rule;
use super::status::{FieldError, FieldErrorKind};
use super::util::json_type_name;

/// What a schema check found.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Paths of fields the schema does not declare (pruned when asked).
    pub unknown: Vec<String>,
    pub errors: Vec<FieldError>,
}

fn regex_for(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

/// A schema bound as Go prints it (`0`, not `0.0`).
fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Checks (and, with `prune`, prunes) a custom object against its version's schema.
pub(crate) fn check(obj: &mut Value, schema: &Value, prune: bool) -> Checked {
    let mut out = Checked::default();
    walk(obj, schema, "", true, prune, &mut out);
    if out.errors.is_empty() {
        cel_walk(obj, schema, "", &mut out.errors);
    } else if has_rules(schema) {
        out.errors.push(FieldError::invalid(
            "<nil>",
            "\"null\"",
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    }
    out
}

/// Fields a server-side apply body sets that the schema does not declare.
pub(crate) fn undeclared_fields(obj: &Value, schema: &Value) -> Vec<String> {
    let mut copy = obj.clone();
    let mut out = Checked::default();
    walk(&mut copy, schema, "", true, false, &mut out);
    out.unknown
}

fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(has_rules),
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

fn type_matches(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn walk(v: &mut Value, schema: &Value, path: &str, root: bool, prune: bool, out: &mut Checked) {
    let render = FieldError::render(v);
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            let actual = json_type_name(v);
            out.errors.push(FieldError {
                kind: FieldErrorKind::TypeInvalid,
                field: path.to_string(),
                value: Some(format!("{actual:?}")),
                detail: format!("{path} in body must be of type integer,string: {actual:?}"),
            });
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(v, t)
    {
        let actual = json_type_name(v);
        out.errors.push(FieldError {
            kind: FieldErrorKind::TypeInvalid,
            field: path.to_string(),
            value: Some(format!("{actual:?}")),
            detail: format!("{path} in body must be of type {t}: {actual:?}"),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(FieldError::render).collect();
        out.errors.push(FieldError {
            kind: FieldErrorKind::NotSupported,
            field: path.to_string(),
            value: Some(render.clone()),
            detail: format!("supported values: {}", list.join(", ")),
        });
    }
    if let Some(n) = v.as_f64() {
        let exclusive_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        let exclusive_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && (n < min || (exclusive_min && n == min))
        {
            let how = if exclusive_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.errors.push(FieldError::invalid(
                path,
                render.clone(),
                format!(
                    "{path} in body should be {how} {}",
                    number(&schema["minimum"])
                ),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && (n > max || (exclusive_max && n == max))
        {
            let how = if exclusive_max {
                "less than"
            } else {
                "less than or equal to"
            };
            out.errors.push(FieldError::invalid(
                path,
                render.clone(),
                format!(
                    "{path} in body should be {how} {}",
                    number(&schema["maximum"])
                ),
            ));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.errors.push(FieldError::invalid(
                path,
                render.clone(),
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.errors.push(FieldError {
                kind: FieldErrorKind::TooLong,
                field: path.to_string(),
                value: None,
                detail: format!("may not be more than {max} bytes"),
            });
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = regex_for(p)
            && !re.is_match(s)
        {
            out.errors.push(FieldError::invalid(
                path,
                render.clone(),
                format!("{path} in body should match '{p}'"),
            ));
        }
    }
    match v {
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                out.errors.push(FieldError {
                    kind: FieldErrorKind::TooMany,
                    field: path.to_string(),
                    value: Some(items.len().to_string()),
                    detail: format!("must have at most {max} items"),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.errors.push(FieldError::invalid(
                    path,
                    "\"array\"",
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(
                        item,
                        item_schema,
                        &format!("{path}[{i}]"),
                        false,
                        prune,
                        out,
                    );
                }
            }
        }
        Value::Object(map) => {
            let embedded = root
                || schema
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            // Structural-schema defaulting: absent fields with a `default` get it.
            for (k, ps) in props.into_iter().flatten() {
                if let Some(d) = ps.get("default")
                    && !map.contains_key(k)
                    && !(embedded && (k == "apiVersion" || k == "kind" || k == "metadata"))
                {
                    map.insert(k.clone(), d.clone());
                }
            }
            let mut unknown = Vec::new();
            for (k, child) in map.iter_mut() {
                if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let child_path = join(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    walk(child, s, &child_path, false, prune, out);
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    walk(child, s, &child_path, false, prune, out);
                } else if preserve
                    || additional.and_then(Value::as_bool) == Some(true)
                    || (props.is_none() && additional.is_none() && schema.get("type").is_none())
                {
                    // Unconstrained: keep as is.
                } else {
                    unknown.push(k.clone());
                    out.unknown.push(child_path);
                }
            }
            if prune {
                for k in unknown {
                    map.remove(&k);
                }
            }
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.errors.push(FieldError::required(join(path, r), ""));
                    }
                }
            }
        }
        _ => {}
    }
}

fn cel_walk(v: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in rules {
            let Some(src) = r.get("rule").and_then(Value::as_str) else {
                continue;
            };
            let Some(rule) = Rule::parse(src) else {
                continue;
            };
            let field = match r.get("fieldPath").and_then(Value::as_str) {
                Some(fp) => join(path, fp.trim_start_matches('.')),
                None if path.is_empty() => "<nil>".to_string(),
                None => path.to_string(),
            };
            let value = format!("{:?}", json_type_name(v));
            match rule.eval(v) {
                Ok(true) => {}
                Ok(false) => {
                    let message = r
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("failed rule: {src}"));
                    let kind = match r.get("reason").and_then(Value::as_str) {
                        Some("FieldValueForbidden") => FieldErrorKind::Forbidden,
                        Some("FieldValueRequired") => FieldErrorKind::Required,
                        _ => FieldErrorKind::Invalid,
                    };
                    let value = if kind == FieldErrorKind::Invalid {
                        Some(value)
                    } else {
                        None
                    };
                    errors.push(FieldError {
                        kind,
                        field,
                        value,
                        detail: message,
                    });
                }
                Err(e) => errors.push(FieldError::invalid(
                    field,
                    value,
                    format!("{e} evaluating rule: {src}"),
                )),
            }
        }
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    cel_walk(child, s, &join(path, k), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    cel_walk(item, s, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widget_schema() -> Value {
        json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.metadata.name == 'flux' || self.metadata.name.startsWith('flux-')", "message": "a Widget must be named 'flux' or 'flux-<suffix>'"}],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "interval": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"},
                    "replicas": {"type": "integer", "minimum": 0},
                    "sourceRef": {"type": "object", "required": ["kind", "name"], "properties": {"kind": {"type": "string"}, "name": {"type": "string"}}}
                }}
            }
        })
    }

    #[test]
    fn schema_errors_come_before_cel_rules() {
        let mut obj = json!({"metadata": {"name": "flux-x"}, "spec": {"interval": "often", "replicas": -1, "sourceRef": {"kind": "GitRepository"}}});
        let checked = check(&mut obj, &widget_schema(), true);
        let strings: Vec<String> = checked
            .errors
            .iter()
            .map(FieldError::error_string)
            .collect();
        assert_eq!(
            strings,
            vec![
                "spec.interval: Invalid value: \"often\": spec.interval in body should match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'",
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                "spec.sourceRef.name: Required value",
                "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ]
        );
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "interval": {"type": "string", "default": "10m"}, "suspend": {"type": "boolean"}
        }}}});
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"suspend": true}});
        assert!(check(&mut obj, &schema, true).errors.is_empty());
        assert_eq!(obj["spec"], json!({"interval": "10m", "suspend": true}));
    }

    #[test]
    fn wrong_type_and_cel_and_pruning() {
        let mut obj = json!({"metadata": {"name": "flux"}, "spec": {"replicas": "three"}});
        let checked = check(&mut obj, &widget_schema(), true);
        assert_eq!(
            checked.errors[0].error_string(),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        let mut obj =
            json!({"metadata": {"name": "other"}, "spec": {"interval": "5m", "colour": "blue"}});
        let checked = check(&mut obj, &widget_schema(), true);
        assert_eq!(checked.unknown, vec!["spec.colour"]);
        assert_eq!(obj["spec"], json!({"interval": "5m"}));
        assert_eq!(
            checked.errors[0].error_string(),
            "<nil>: Invalid value: \"object\": a Widget must be named 'flux' or 'flux-<suffix>'"
        );
    }
}
