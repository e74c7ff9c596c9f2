//! `as=Table` output: printer columns from the CRD (a JSONPath subset) or hand-written ones for
//! built-ins, dates rendered as ages by the server, rows carrying `PartialObjectMetadata`.

use serde_json::{Map, Value, json};

use super::registry::{PrinterColumn, ResourceType, Special};
use super::util::{human_duration, seconds_since};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<String>,
        op: Option<(String, Value)>,
    },
}

/// A parsed JSONPath of the subset printer columns use.
#[derive(Debug, Clone)]
pub(crate) struct JsonPath(Vec<Seg>);

impl JsonPath {
    pub fn parse(src: &str) -> Option<JsonPath> {
        let s = src.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(s);
        let s = s.strip_prefix('$').unwrap_or(s);
        let chars: Vec<char> = s.chars().collect();
        let mut segs = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let mut name = String::new();
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        name.push(chars[i]);
                        i += 1;
                    }
                    if name == "*" {
                        segs.push(Seg::All);
                    } else if !name.is_empty() {
                        segs.push(Seg::Field(name));
                    }
                }
                '[' => {
                    let close = find_close(&chars, i)?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    segs.push(parse_bracket(inner.trim())?);
                    i = close + 1;
                }
                _ => return None,
            }
        }
        Some(JsonPath(segs))
    }

    pub fn find<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![v];
        for seg in &self.0 {
            let mut next = Vec::new();
            for c in cur {
                match seg {
                    Seg::Field(f) => {
                        if let Some(x) = c.get(f) {
                            next.push(x);
                        }
                    }
                    Seg::Index(i) => {
                        if let Some(a) = c.as_array() {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                                next.push(x);
                            }
                        }
                    }
                    Seg::All => match c {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Seg::Filter { path, op } => {
                        if let Some(a) = c.as_array() {
                            for item in a {
                                let mut x = Some(item);
                                for p in path {
                                    x = x.and_then(|x| x.get(p));
                                }
                                let keep = match (op, x) {
                                    (None, x) => x.is_some(),
                                    (Some((o, want)), Some(got)) => {
                                        let eq = got == want
                                            || (got.as_str().is_some()
                                                && got.as_str() == want.as_str());
                                        if o == "==" { eq } else { !eq }
                                    }
                                    (Some((o, _)), None) => o == "!=",
                                };
                                if keep {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, c) in chars.iter().enumerate().skip(open + 1) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"') | (None, '\'') => quote = Some(*c),
            (None, ']') => return Some(j),
            _ => {}
        }
    }
    None
}

fn parse_literal(s: &str) -> Value {
    let s = s.trim();
    if (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''))
        && s.len() >= 2
    {
        return Value::String(s[1..s.len() - 1].to_string());
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn parse_bracket(inner: &str) -> Option<Seg> {
    if inner == "*" {
        return Some(Seg::All);
    }
    if let Ok(i) = inner.parse::<i64>() {
        return Some(Seg::Index(i));
    }
    if (inner.starts_with('\'') || inner.starts_with('"')) && inner.len() >= 2 {
        return Some(Seg::Field(inner[1..inner.len() - 1].to_string()));
    }
    let filter = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let rest = filter.strip_prefix("@.")?;
    for op in ["==", "!="] {
        if let Some((lhs, rhs)) = rest.split_once(op) {
            let path = lhs.trim().split('.').map(str::to_string).collect();
            return Some(Seg::Filter {
                path,
                op: Some((op.to_string(), parse_literal(rhs))),
            });
        }
    }
    Some(Seg::Filter {
        path: rest.split('.').map(str::to_string).collect(),
        op: None,
    })
}

/// A column and how to compute its cell.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub def: PrinterColumn,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Name,
    Path(Option<JsonPath>),
    Age,
    Builtin(fn(&Value) -> Value),
}

fn col(name: &str, type_: &str, description: &str, source: Source) -> Column {
    Column {
        def: PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: if name == "Name" {
                "name".into()
            } else {
                String::new()
            },
            description: description.into(),
            priority: 0,
            json_path: String::new(),
        },
        source,
    }
}

fn text(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => json!(s),
        Some(Value::Null) | None => json!("<none>"),
        Some(other) => json!(other.to_string()),
    }
}

fn count(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_object).map(|m| m.len()).unwrap_or(0))
}

/// The columns for a resource type.
pub(crate) fn columns(rt: &ResourceType) -> Vec<Column> {
    let name = col("Name", "string", NAME_DESCRIPTION, Source::Name);
    let age = || col("Age", "string", AGE_DESCRIPTION, Source::Age);
    if rt.custom {
        let mut cols = vec![name];
        let defs = if rt.columns.is_empty() {
            vec![PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp".into(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            }]
        } else {
            rt.columns.clone()
        };
        for def in defs {
            let path = JsonPath::parse(&def.json_path);
            cols.push(Column {
                def,
                source: Source::Path(path),
            });
        }
        return cols;
    }
    let mut cols = vec![name];
    match (rt.special, rt.plural.as_str()) {
        (Special::Lease, _) => cols.push(col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
            Source::Builtin(|o| text(o.pointer("/spec/holderIdentity"))),
        )),
        (Special::Namespace, _) => cols.push(col(
            "Status",
            "string",
            "The status of the namespace",
            Source::Builtin(|o| text(o.pointer("/status/phase"))),
        )),
        (Special::Crd, _) => {
            cols.push(col(
                "Created At",
                "date",
                "",
                Source::Builtin(|o| text(o.pointer("/metadata/creationTimestamp"))),
            ));
            return cols;
        }
        (Special::Event | Special::CoreEvent, _) => {
            cols.push(col(
                "Type",
                "string",
                "",
                Source::Builtin(|o| text(o.get("type"))),
            ));
            cols.push(col(
                "Reason",
                "string",
                "",
                Source::Builtin(|o| text(o.get("reason"))),
            ));
            cols.push(col(
                "Object",
                "string",
                "",
                Source::Builtin(|o| {
                    let r = o.get("regarding").or_else(|| o.get("involvedObject"));
                    let kind = r
                        .and_then(|r| r.get("kind"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_lowercase();
                    let name = r
                        .and_then(|r| r.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    json!(format!("{kind}/{name}"))
                }),
            ));
            cols.push(col(
                "Message",
                "string",
                "",
                Source::Builtin(|o| text(o.get("note").or_else(|| o.get("message")))),
            ));
        }
        (_, "configmaps") => cols.push(col(
            "Data",
            "integer",
            "",
            Source::Builtin(|o| {
                let n = count(o.get("data")).as_u64().unwrap_or(0)
                    + count(o.get("binaryData")).as_u64().unwrap_or(0);
                json!(n)
            }),
        )),
        (_, "secrets") => {
            cols.push(col(
                "Type",
                "string",
                "",
                Source::Builtin(|o| text(o.get("type"))),
            ));
            cols.push(col(
                "Data",
                "integer",
                "",
                Source::Builtin(|o| count(o.get("data"))),
            ));
        }
        (_, "deployments") => {
            cols.push(col(
                "Ready",
                "string",
                "",
                Source::Builtin(|o| {
                    let ready = o
                        .pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let want = o
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    json!(format!("{ready}/{want}"))
                }),
            ));
            cols.push(col(
                "Up-to-date",
                "integer",
                "",
                Source::Builtin(|o| {
                    json!(
                        o.pointer("/status/updatedReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                }),
            ));
            cols.push(col(
                "Available",
                "integer",
                "",
                Source::Builtin(|o| {
                    json!(
                        o.pointer("/status/availableReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                }),
            ));
        }
        _ => {}
    }
    cols.push(age());
    cols
}

fn age_of(obj: &Value) -> Value {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(seconds_since)
        .map(|s| json!(human_duration(s)))
        .unwrap_or_else(|| json!("<unknown>"))
}

fn cell(column: &Column, obj: &Value) -> Value {
    match &column.source {
        Source::Name => obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
        Source::Age => age_of(obj),
        Source::Builtin(f) if column.def.type_ == "date" => {
            // "Created At" shows the timestamp itself.
            f(obj)
        }
        Source::Builtin(f) => f(obj),
        Source::Path(None) => Value::Null,
        Source::Path(Some(path)) => {
            let found = path.find(obj);
            let Some(v) = found.first() else {
                return Value::Null;
            };
            match column.def.type_.as_str() {
                "date" => v
                    .as_str()
                    .and_then(seconds_since)
                    .map(|s| json!(human_duration(s)))
                    .unwrap_or(Value::Null),
                "integer" => v
                    .as_i64()
                    .map(Value::from)
                    .or_else(|| v.as_f64().map(|f| json!(f as i64)))
                    .unwrap_or(Value::Null),
                "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
                "boolean" => v.as_bool().map(Value::Bool).unwrap_or(Value::Null),
                _ => match v {
                    Value::String(s) => json!(s),
                    Value::Null => Value::Null,
                    other => json!(other.to_string()),
                },
            }
        }
    }
}

/// What `includeObject` asks to put in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// `PartialObjectMetadata` for an object.
pub(crate) fn partial_metadata(obj: &Value, meta_api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": meta_api_version,
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One row.
pub(crate) fn row(
    columns: &[Column],
    obj: &Value,
    include: IncludeObject,
    table_version: &str,
) -> Value {
    let cells: Vec<Value> = columns.iter().map(|c| cell(c, obj)).collect();
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_metadata(obj, &format!("meta.k8s.io/{table_version}")),
        IncludeObject::Object => obj.clone(),
    };
    json!({ "cells": cells, "object": object })
}

pub(crate) fn column_definitions(columns: &[Column]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.def.name,
                    "type": c.def.type_,
                    "format": c.def.format,
                    "description": c.def.description,
                    "priority": c.def.priority,
                })
            })
            .collect(),
    )
}

/// A whole Table.
pub(crate) fn table(
    columns: &[Column],
    with_definitions: bool,
    rows: Vec<Value>,
    list_meta: Map<String, Value>,
    table_version: &str,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": Value::Object(list_meta),
        "columnDefinitions": if with_definitions { column_definitions(columns) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_paths_find_the_ready_condition() {
        let obj = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "True"},
            {"type": "Ready", "status": "False", "message": "boom"}
        ]}});
        let p = JsonPath::parse(".status.conditions[?(@.type==\"Ready\")].status").unwrap();
        assert_eq!(p.find(&obj), vec![&json!("False")]);
        let p = JsonPath::parse("{.status.conditions[?(@.type=='Ready')].message}").unwrap();
        assert_eq!(p.find(&obj), vec![&json!("boom")]);
        let p = JsonPath::parse(".metadata.labels.app\\.kubernetes\\.io/name").unwrap();
        let obj = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}});
        assert_eq!(p.find(&obj), vec![&json!("x")]);
    }
}
