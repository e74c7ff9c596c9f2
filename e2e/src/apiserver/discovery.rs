//! Discovery (`/api`, `/apis`, group and group-version documents, aggregated v2/v2beta1 with
//! Etags) and the OpenAPI v3 documents kubectl reads before `apply`/`create`.

use std::sync::Arc;

use http::HeaderValue;
use serde_json::{Map, Value, json};

use super::Shared;
use super::http::{Req, Resp, error_resp, text_resp, value_resp};
use super::registry::{Registry, ResourceType};
use super::status::ApiError;
use super::util::digest_hex;

/// Which aggregated discovery version the Accept header asks for, if any.
fn aggregated(req: &Req) -> Option<&'static str> {
    let accept = req.header("accept")?;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if media != "application/json" {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match (get("as"), get("g"), get("v")) {
            (None, _, _) => return None,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return Some("v2");
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return Some("v2beta1");
            }
            _ => continue,
        }
    }
    None
}

fn registry(shared: &Arc<Shared>) -> Arc<Registry> {
    shared.state().registry.clone()
}

fn group_versions_json(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| {
        if group.is_empty() {
            v.clone()
        } else {
            format!("{group}/{v}")
        }
    };
    json!({
        "name": group,
        "versions": versions.iter().map(|v| json!({"groupVersion": gv(v), "version": v})).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| json!({"groupVersion": gv(v), "version": v})).unwrap_or(Value::Null),
    })
}

fn storage_version_hash(rt: &ResourceType) -> String {
    use base64::Engine;
    let hex = digest_hex(format!("{}/{}", rt.storage_api_version, rt.kind).as_bytes());
    let bytes: Vec<u8> = (0..8)
        .filter_map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn legacy_resources(reg: &Registry, group: &str, version: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for rt in reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let mut r = Map::new();
        r.insert("name".into(), json!(rt.plural));
        r.insert("singularName".into(), json!(rt.singular));
        r.insert("namespaced".into(), json!(rt.namespaced));
        r.insert("kind".into(), json!(rt.kind));
        r.insert("verbs".into(), json!(rt.verbs()));
        if !rt.short_names.is_empty() {
            r.insert("shortNames".into(), json!(rt.short_names));
        }
        if !rt.categories.is_empty() {
            r.insert("categories".into(), json!(rt.categories));
        }
        r.insert("storageVersionHash".into(), json!(storage_version_hash(rt)));
        out.push(Value::Object(r));
        if rt.status_subresource {
            out.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    out
}

fn aggregated_resources(reg: &Registry, group: &str, version: &str) -> Vec<Value> {
    reg.all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .map(|rt| {
            let response_kind = if rt.custom {
                json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
            } else {
                json!({"group": "", "version": "", "kind": rt.kind})
            };
            let mut r = Map::new();
            r.insert("resource".into(), json!(rt.plural));
            r.insert("responseKind".into(), response_kind.clone());
            r.insert("scope".into(), json!(if rt.namespaced { "Namespaced" } else { "Cluster" }));
            r.insert("singularResource".into(), json!(rt.singular));
            r.insert("verbs".into(), json!(rt.verbs()));
            if !rt.short_names.is_empty() {
                r.insert("shortNames".into(), json!(rt.short_names));
            }
            if !rt.categories.is_empty() {
                r.insert("categories".into(), json!(rt.categories));
            }
            if rt.status_subresource {
                r.insert(
                    "subresources".into(),
                    json!([{"subresource": "status", "responseKind": response_kind, "verbs": ["get", "patch", "update"]}]),
                );
            }
            Value::Object(r)
        })
        .collect()
}

fn aggregated_group(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = reg
        .group_versions(group)
        .iter()
        .map(|v| json!({"version": v, "resources": aggregated_resources(reg, group, v), "freshness": "Current"}))
        .collect();
    let mut meta = Map::new();
    if !group.is_empty() {
        meta.insert("name".into(), json!(group));
    }
    meta.insert("creationTimestamp".into(), Value::Null);
    json!({"metadata": meta, "versions": versions})
}

fn aggregated_resp(req: &Req, version: &str, items: Vec<Value>) -> Resp {
    let doc = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    body.push(b'\n');
    let etag = format!("\"{}\"", digest_hex(&body));
    let not_modified = req.header("if-none-match") == Some(etag.as_str());
    let mut resp = if not_modified {
        let mut r = text_resp(304, "application/json", String::new());
        r.headers_mut().remove("content-type");
        r
    } else {
        super::http::bytes_resp(200, body)
    };
    let h = resp.headers_mut();
    if !not_modified
        && let Ok(v) = HeaderValue::from_str(&format!(
            "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        ))
    {
        h.insert("content-type", v);
    }
    h.insert("cache-control", HeaderValue::from_static("public"));
    h.insert("vary", HeaderValue::from_static("Accept"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    resp
}

pub(crate) fn api(shared: &Arc<Shared>, req: &Req) -> Resp {
    if let Some(v) = aggregated(req) {
        let reg = registry(shared);
        return aggregated_resp(req, v, vec![aggregated_group(&reg, "")]);
    }
    value_resp(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}],
        }),
    )
}

pub(crate) fn apis(shared: &Arc<Shared>, req: &Req) -> Resp {
    let reg = registry(shared);
    if let Some(v) = aggregated(req) {
        let items = reg
            .groups()
            .iter()
            .map(|g| aggregated_group(&reg, g))
            .collect();
        return aggregated_resp(req, v, items);
    }
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|g| group_versions_json(g, &reg.group_versions(g)))
        .collect();
    value_resp(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

pub(crate) fn group(shared: &Arc<Shared>, _req: &Req, group: &str) -> Resp {
    let reg = registry(shared);
    let versions = reg.group_versions(group);
    if versions.is_empty() {
        return error_resp(ApiError::page_not_found());
    }
    let mut doc = group_versions_json(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    value_resp(200, &doc)
}

pub(crate) fn group_version(shared: &Arc<Shared>, _req: &Req, group: &str, version: &str) -> Resp {
    let reg = registry(shared);
    if !reg.has_group_version(group, version) {
        return error_resp(ApiError::page_not_found());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    value_resp(
        200,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": legacy_resources(&reg, group, version),
        }),
    )
}

// ---------------------------------------------------------------- OpenAPI v3

fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn schema_name(rt: &ResourceType) -> String {
    if rt.custom {
        let reversed: Vec<&str> = rt.group.split('.').rev().collect();
        format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
    } else {
        let g = if rt.group.is_empty() {
            "core"
        } else {
            rt.group.split('.').next().unwrap_or_default()
        };
        format!("io.k8s.api.{g}.{}.{}", rt.version, rt.kind)
    }
}

fn query_param(name: &str, type_: &str) -> Value {
    json!({"name": name, "in": "query", "description": "", "schema": {"type": type_, "uniqueItems": true}})
}

fn operation(
    rt: &ResourceType,
    action: &str,
    id: &str,
    params: Vec<Value>,
    body: Option<Value>,
) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!([rt.api_version()]));
    op.insert("description".into(), json!(format!("{action} {}", rt.kind)));
    op.insert("operationId".into(), json!(id));
    op.insert("parameters".into(), Value::Array(params));
    if let Some(b) = body {
        op.insert("requestBody".into(), b);
    }
    op.insert(
        "responses".into(),
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(rt))}}}}}),
    );
    op.insert("x-kubernetes-action".into(), json!(action));
    op.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({"group": rt.group, "version": rt.version, "kind": rt.kind}),
    );
    Value::Object(op)
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", "string"),
        query_param("fieldManager", "string"),
        query_param("fieldValidation", "string"),
    ]
}

fn gv_document(reg: &Registry, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for rt in reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let id = |verb: &str| format!("{verb}{}{}", rt.version, rt.kind);
        let collection = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        let item = format!("{collection}/{{name}}");
        let patch_body = json!({"content": {
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        }, "required": true});
        let mut patch_params = write_params();
        patch_params.push(query_param("force", "boolean"));
        let object_body = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(rt))}}}, "required": true});
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(rt, "list", &id("list"), vec![query_param("labelSelector", "string"), query_param("limit", "integer")], None),
                "post": operation(rt, "post", &id("create"), write_params(), Some(object_body.clone())),
                "delete": operation(rt, "deletecollection", &id("deletecollection"), vec![], None),
            }),
        );
        paths.insert(
            item.clone(),
            json!({
                "get": operation(rt, "get", &id("read"), vec![], None),
                "put": operation(rt, "put", &id("replace"), write_params(), Some(object_body.clone())),
                "patch": operation(rt, "patch", &id("patch"), patch_params.clone(), Some(patch_body.clone())),
                "delete": operation(rt, "delete", &id("delete"), vec![], None),
            }),
        );
        if rt.status_subresource {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": operation(rt, "get", &id("readStatus"), vec![], None),
                    "put": operation(rt, "put", &id("replaceStatus"), write_params(), Some(object_body)),
                    "patch": operation(rt, "patch", &id("patchStatus"), patch_params, Some(patch_body)),
                }),
            );
        }
        if rt.namespaced {
            paths.insert(
                format!("{prefix}/{}", rt.plural),
                json!({"get": operation(rt, "list", &id("listForAllNamespaces"), vec![], None)}),
            );
        }
        let mut schema = rt
            .schema
            .as_deref()
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
        schemas.insert(schema_name(rt), schema);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.13"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn gv_document_bytes(reg: &Registry, group: &str, version: &str) -> Vec<u8> {
    serde_json::to_vec(&gv_document(reg, group, version)).unwrap_or_default()
}

pub(crate) fn openapi_index(shared: &Arc<Shared>, _req: &Req) -> Resp {
    let reg = registry(shared);
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let hash = digest_hex(&gv_document_bytes(&reg, &g, &v));
        let key = openapi_key(&g, &v);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    let body = serde_json::to_string(&json!({ "paths": paths })).unwrap_or_default();
    text_resp(200, "text/plain; charset=utf-8", body)
}

pub(crate) fn openapi_document(shared: &Arc<Shared>, req: &Req, segs: &[&str]) -> Resp {
    let reg = registry(shared);
    let (group, version) = match segs {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return error_resp(ApiError::page_not_found()),
    };
    if !reg.has_group_version(group, version) {
        return error_resp(ApiError::page_not_found());
    }
    let body = gv_document_bytes(&reg, group, version);
    let etag = format!("\"{}\"", digest_hex(&body));
    let mut resp = super::http::bytes_resp(200, body);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("vary", HeaderValue::from_static("Accept"));
    if req.param("hash").is_some() {
        h.insert(
            "cache-control",
            HeaderValue::from_static("public, immutable"),
        );
    }
    resp
}
