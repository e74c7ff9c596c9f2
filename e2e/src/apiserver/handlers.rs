//! The verbs on resources: get, list, watch, create, update, patch, delete, deletecollection.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::http::{
    Output, Req, Resp, Target, add_warnings, bytes_resp, error_resp, negotiate, value_resp,
};
use super::list::{self, FieldSelector, LabelSelector, PageRequest};
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult, FieldError};
use super::table::{self, IncludeObject};
use super::write::{
    self, DeleteOptions, Deleted, FieldValidation, Outcome, PatchKind, WriteOptions, to_view,
};
use super::{Shared, watch};

pub(crate) fn dispatch(shared: &Arc<Shared>, req: &Req, t: Target) -> Resp {
    let result = match (req.method.as_str(), t.name.is_some()) {
        ("GET", true) => get(shared, req, &t),
        ("GET", false) if req.flag("watch") => return watch::start(shared, req, &t),
        ("GET", false) => list_objects(shared, req, &t),
        ("POST", false) => create(shared, req, &t),
        ("PUT", true) => update(shared, req, &t),
        ("PATCH", true) => patch(shared, req, &t),
        ("DELETE", true) => delete(shared, req, &t),
        ("DELETE", false) => delete_collection(shared, req, &t),
        _ => Err(ApiError::method_not_allowed()),
    };
    result.unwrap_or_else(error_resp)
}

fn include_object(req: &Req) -> IncludeObject {
    match req.param("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

fn rv_string(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One object in the representation the client asked for.
fn render_object(req: &Req, rt: &ResourceType, obj: &Value, code: u16) -> Resp {
    let view = to_view(rt, obj);
    match negotiate(req.header("accept")) {
        Output::Json => value_resp(code, &view),
        Output::Metadata(v) => value_resp(
            code,
            &table::partial_metadata(&view, &format!("meta.k8s.io/{v}")),
        ),
        Output::Table(v) => {
            let columns = table::columns(rt);
            let row = table::row(&columns, &view, include_object(req), v);
            let mut meta = Map::new();
            meta.insert("resourceVersion".into(), json!(rv_string(&view)));
            value_resp(code, &table::table(&columns, true, vec![row], meta, v))
        }
    }
}

fn get(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    let name = t.name.as_deref().unwrap_or_default();
    let key = (t.namespace.clone().unwrap_or_default(), name.to_string());
    let obj = shared
        .state()
        .get(&t.rt.storage_key, &key)
        .ok_or_else(|| ApiError::not_found(&t.rt.plural, &t.rt.group, name))?;
    Ok(render_object(req, &t.rt, &obj, 200))
}

/// Serializes a list without building one big `Value`: `{"apiVersion":..,"items":[..],..}`.
pub(crate) fn render_list(
    req: &Req,
    rt: &ResourceType,
    items: &[Arc<Value>],
    rv: &str,
    next: Option<String>,
    remaining: Option<u64>,
) -> Resp {
    let output = negotiate(req.header("accept"));
    let mut meta = Map::new();
    match (&next, output, rt.custom) {
        (Some(c), _, _) => {
            meta.insert("continue".into(), json!(c));
        }
        (None, Output::Json, true) => {
            meta.insert("continue".into(), json!(""));
        }
        _ => {}
    }
    if let Some(n) = remaining {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    meta.insert("resourceVersion".into(), json!(rv));
    match output {
        Output::Table(v) => {
            let columns = table::columns(rt);
            let include = include_object(req);
            let rows = items
                .iter()
                .map(|o| table::row(&columns, &to_view(rt, o), include, v))
                .collect();
            value_resp(200, &table::table(&columns, true, rows, meta, v))
        }
        Output::Metadata(v) => {
            let api_version = format!("meta.k8s.io/{v}");
            let items: Vec<Value> = items
                .iter()
                .map(|o| table::partial_metadata(&to_view(rt, o), &api_version))
                .collect();
            value_resp(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": api_version, "metadata": meta, "items": items}),
            )
        }
        Output::Json => {
            let mut out = Vec::with_capacity(256 + items.len() * 512);
            out.extend_from_slice(b"{\"apiVersion\":");
            let _ = serde_json::to_writer(&mut out, &rt.api_version());
            out.extend_from_slice(b",\"items\":[");
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut out, &*to_view(rt, o));
            }
            out.extend_from_slice(b"],\"kind\":");
            let _ = serde_json::to_writer(&mut out, &rt.list_kind);
            out.extend_from_slice(b",\"metadata\":");
            let _ = serde_json::to_writer(&mut out, &Value::Object(meta));
            out.extend_from_slice(b"}\n");
            bytes_resp(200, out)
        }
    }
}

/// The selectors of a list or watch request.
pub(crate) fn selectors(req: &Req, rt: &ResourceType) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), rt)?;
    Ok((labels, fields))
}

/// Parses a resourceVersion parameter the way the real server does (500 on garbage).
pub(crate) fn parse_rv(rv: &str) -> ApiResult<u64> {
    rv.parse::<u64>().map_err(|_| {
        ApiError::internal(format!("resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"))
    })
}

fn list_objects(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    let rt = &t.rt;
    let limit = match req.param("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
        ),
        None => None,
    };
    let cont = req.param("continue").filter(|c| !c.is_empty());
    let rv = req.param("resourceVersion").filter(|r| !r.is_empty());
    let rv_match = req.param("resourceVersionMatch").filter(|r| !r.is_empty());
    if rv_match.is_some() && rv.is_none() {
        return Err(ApiError::new(
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            Some("Invalid"),
            Some(json!({
                "group": "meta.k8s.io",
                "kind": "ListOptions",
                "causes": [FieldError::forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided").cause()]
            })),
        ));
    }
    if cont.is_some() && rv.is_some_and(|r| r != "0") {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let (labels, fields) = selectors(req, rt)?;
    let rv_num = rv.map(parse_rv).transpose()?;
    let state = shared.state();
    let (start, token_rv) = match cont {
        Some(c) => {
            let (token_rv, start) = list::decode_continue(c)?;
            if shared.faults.take_continue_expiry(&req.path)
                || (token_rv >= 0 && (token_rv as u64) < state.compacted_rv)
            {
                return Err(list::expired_continue(&start));
            }
            (Some(start), Some(token_rv))
        }
        None => (None, None),
    };
    if rv_match == Some("Exact") && rv_num.is_some_and(|r| r < state.compacted_rv) {
        return Err(ApiError::new(
            410,
            "The resourceVersion for the provided list is too old.",
            Some("Expired"),
            None,
        ));
    }
    // resourceVersion=0 is served from the watch cache, which ignores limit.
    let limit = if rv == Some("0") && cont.is_none() {
        None
    } else {
        limit
    };
    let namespace = t.namespace.as_deref().filter(|_| rt.namespaced);
    let page = list::page(
        state.collections.get(&rt.storage_key),
        &PageRequest {
            namespace,
            namespaced_type: rt.namespaced,
            labels: &labels,
            fields: &fields,
            limit,
            start: start.as_deref(),
        },
    );
    let list_rv = match token_rv {
        Some(r) if r > 0 => r as u64,
        _ => state.rv,
    };
    drop(state);
    let next = page
        .next_start
        .map(|s| list::encode_continue(list_rv as i64, &s));
    Ok(render_list(
        req,
        rt,
        &page.items,
        &list_rv.to_string(),
        next,
        page.remaining,
    ))
}

/// The object in a request body (JSON, YAML or protobuf), as the API server reads it.
pub(super) fn parse_body(req: &Req) -> ApiResult<Value> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let ct = req.content_type();
    if ct == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(&req.body).map_err(ApiError::bad_request);
    }
    if ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ]));
    }
    let parsed: Result<Value, String> = if ct.contains("yaml") {
        std::str::from_utf8(&req.body)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_saphyr::from_str::<Value>(s).map_err(|e| e.to_string()))
    } else {
        serde_json::from_slice(&req.body).map_err(|e| e.to_string())
    };
    let v = parsed.map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the body is not a JSON object",
        ));
    }
    Ok(v)
}

/// The identity checks a body must pass against the URL.
fn check_identity(
    rt: &ResourceType,
    body: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ApiResult<()> {
    let text = || serde_json::to_string(body).unwrap_or_default();
    let Some(api_version) = body.get("apiVersion").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{}'",
            text()
        )));
    };
    if api_version != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    let Some(kind) = body.get("kind").and_then(Value::as_str).map(str::to_string) else {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            text()
        )));
    };
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind != rt.kind {
        return Err(ApiError::invalid(
            &kind,
            &rt.group,
            &body_name,
            &[FieldError::invalid(
                "kind",
                format!("{kind:?}"),
                format!("must be {}", rt.kind),
            )],
        ));
    }
    if let Some(url_name) = name
        && !body_name.is_empty()
        && body_name != url_name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    if rt.namespaced {
        let url_ns = namespace.unwrap_or_default();
        let body_ns = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_ns.is_empty() && body_ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

fn write_options(req: &Req, t: &Target) -> WriteOptions {
    WriteOptions {
        manager: req.manager(),
        subresource: t.subresource.clone().unwrap_or_default(),
        field_validation: match req.param("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        },
        dry_run: req.param("dryRun").is_some_and(|d| d == "All"),
    }
}

fn written(req: &Req, t: &Target, outcome: Outcome, code: u16) -> Resp {
    let mut resp = render_object(req, &t.rt, &outcome.object, code);
    add_warnings(&mut resp, &outcome.warnings);
    resp
}

fn create(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let mut body = parse_body(req)?;
    check_identity(&t.rt, &mut body, t.namespace.as_deref(), None)?;
    if t.rt.namespaced && t.namespace.is_none() {
        return Err(ApiError::resource_not_found());
    }
    let opts = write_options(req, t);
    let outcome = write::create(
        &mut shared.state(),
        &t.rt,
        t.namespace.as_deref().unwrap_or_default(),
        body,
        &opts,
    )?;
    Ok(written(req, t, outcome, 201))
}

fn update(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    let mut body = parse_body(req)?;
    let name = t.name.as_deref().unwrap_or_default();
    check_identity(&t.rt, &mut body, t.namespace.as_deref(), Some(name))?;
    let opts = write_options(req, t);
    let outcome = write::update(
        &mut shared.state(),
        &t.rt,
        t.namespace.as_deref().unwrap_or_default(),
        name,
        body,
        &opts,
    )?;
    Ok(written(req, t, outcome, 200))
}

fn patch(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    let rt = &t.rt;
    let ct = req.content_type();
    let mut accepted = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if !rt.custom {
        accepted.push("application/strategic-merge-patch+json");
    }
    let kind = match ct.as_str() {
        "application/json-patch+json" => PatchKind::Json,
        "application/merge-patch+json" => PatchKind::Merge,
        // Built-ins get a plain merge patch (no patch strategies).
        "application/strategic-merge-patch+json" if !rt.custom => PatchKind::Merge,
        "application/apply-patch+yaml" => PatchKind::Apply {
            force: req.flag("force"),
        },
        _ => return Err(ApiError::unsupported_media_type(&accepted)),
    };
    let patch_options_invalid = |err: FieldError| {
        ApiError::new(
            422,
            format!(
                "PatchOptions.meta.k8s.io \"\" is invalid: {}",
                err.error_string()
            ),
            Some("Invalid"),
            Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [err.cause()]})),
        )
    };
    match kind {
        PatchKind::Apply { .. } => {
            if req.param("fieldManager").is_none_or(str::is_empty) {
                return Err(patch_options_invalid(FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )));
            }
        }
        _ => {
            if req.param("force").is_some() {
                return Err(patch_options_invalid(FieldError::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )));
            }
        }
    }
    let name = t.name.as_deref().unwrap_or_default();
    let body: Value = match kind {
        PatchKind::Apply { .. } => {
            let text =
                std::str::from_utf8(&req.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let v: Value = serde_json::from_str(text)
                .or_else(|_| serde_saphyr::from_str::<Value>(text))
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::bad_request("the apply body must be an object"));
            }
            let mut v = v;
            check_identity(rt, &mut v, t.namespace.as_deref(), Some(name))?;
            v
        }
        _ => serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let opts = write_options(req, t);
    let outcome = write::patch(
        &mut shared.state(),
        rt,
        t.namespace.as_deref().unwrap_or_default(),
        name,
        kind,
        body,
        &opts,
    )?;
    let code = if outcome.created { 201 } else { 200 };
    Ok(written(req, t, outcome, code))
}

fn delete_options(req: &Req) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: req.param("dryRun").is_some_and(|d| d == "All"),
        ..Default::default()
    };
    if !req.body.is_empty() {
        let body: Value =
            serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        opts.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            opts.dry_run = true;
        }
    }
    Ok(opts)
}

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut details = Map::new();
    details.insert(
        "name".into(),
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    );
    if !rt.group.is_empty() {
        details.insert("group".into(), json!(rt.group));
    }
    details.insert("kind".into(), json!(rt.plural));
    details.insert(
        "uid".into(),
        obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
    );
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let opts = delete_options(req)?;
    let name = t.name.as_deref().unwrap_or_default();
    let deleted = write::delete(
        &mut shared.state(),
        &t.rt,
        t.namespace.as_deref().unwrap_or_default(),
        name,
        &opts,
    )?;
    Ok(match deleted {
        Deleted::Gone(last) => value_resp(200, &success_status(&t.rt, &last)),
        Deleted::Terminating(obj) => render_object(req, &t.rt, &obj, 200),
    })
}

fn delete_collection(shared: &Arc<Shared>, req: &Req, t: &Target) -> ApiResult<Resp> {
    let rt = &t.rt;
    let (labels, fields) = selectors(req, rt)?;
    let opts = delete_options(req)?;
    let mut state = shared.state();
    let namespace = t.namespace.as_deref().filter(|_| rt.namespaced);
    let page = list::page(
        state.collections.get(&rt.storage_key),
        &PageRequest {
            namespace,
            namespaced_type: rt.namespaced,
            labels: &labels,
            fields: &fields,
            limit: None,
            start: None,
        },
    );
    let mut gone = Vec::new();
    for obj in page.items {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match write::delete(&mut state, rt, &ns, &name, &opts)? {
            Deleted::Gone(o) | Deleted::Terminating(o) => gone.push(o),
        }
    }
    let rv = state.rv.to_string();
    drop(state);
    Ok(render_list(req, rt, &gone, &rv, None, None))
}
