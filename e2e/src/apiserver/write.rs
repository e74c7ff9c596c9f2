//! The write path shared by create, update, patch and apply: system metadata, status
//! subresource semantics, validation, managed fields, generation, no-op detection, finalizers.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::builtin::{self, EventApi};
use super::fields::{self, SchemaNode, Scope, Writer};
use super::registry::{CRD_STORAGE_KEY, ResourceType, Special};
use super::status::{ApiError, ApiResult, FieldError};
use super::store::{ObjKey, State};
use super::util::{meta_str, metadata_mut, new_uid, now_rfc3339, strip_nulls};
use super::{apply, crd, schema};

/// An object as a client of this resource type sees it.
pub(crate) fn to_view<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    if rt.special == Special::CoreEvent {
        return Cow::Owned(builtin::stored_event_to_core(obj));
    }
    let wanted = rt.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(wanted.as_str()) {
        Cow::Borrowed(obj)
    } else {
        let mut o = obj.clone();
        o["apiVersion"] = json!(wanted);
        Cow::Owned(o)
    }
}

/// An object a client sent, in the form it is stored.
pub(crate) fn from_view(rt: &ResourceType, obj: Value) -> Value {
    let mut obj = if rt.special == Special::CoreEvent {
        builtin::core_event_to_stored(&obj)
    } else {
        obj
    };
    if obj.is_object() {
        obj["apiVersion"] = json!(rt.storage_api_version);
        obj["kind"] = json!(rt.kind);
    }
    obj
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Who writes and how.
#[derive(Debug, Clone)]
pub(crate) struct WriteOptions {
    pub manager: String,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: String,
    pub field_validation: FieldValidation,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Update,
    Apply,
}

pub(crate) struct Outcome {
    pub object: Arc<Value>,
    pub created: bool,
    pub warnings: Vec<String>,
}

fn schema_of(rt: &ResourceType) -> SchemaNode<'_> {
    SchemaNode(rt.schema.as_deref())
}

fn rv_of(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn without_meta(obj: &Value, drop_status: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        if drop_status {
            m.remove("status");
        }
    }
    o
}

/// Everything after the request-specific part of a write.
fn finish(
    state: &mut State,
    rt: &ResourceType,
    key: &ObjKey,
    old: Option<Arc<Value>>,
    mut new: Value,
    op: Op,
    opts: &WriteOptions,
) -> ApiResult<Outcome> {
    let now = now_rfc3339();
    let status_write = opts.subresource == "status";
    let name = key.1.as_str();
    strip_nulls(&mut new);
    if rt.plural == "secrets" && rt.group.is_empty() {
        merge_string_data(&mut new);
    }
    new["apiVersion"] = json!(rt.storage_api_version);
    new["kind"] = json!(rt.kind);
    {
        let meta = metadata_mut(&mut new);
        meta.insert("name".into(), json!(key.1));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(key.0));
        } else {
            meta.remove("namespace");
        }
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        match &old {
            Some(o) => {
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match o.get("metadata").and_then(|m| m.get(f)) {
                        Some(v) => meta.insert(f.into(), v.clone()),
                        None => meta.remove(f),
                    };
                }
            }
            None => {
                meta.insert("uid".into(), json!(new_uid()));
                meta.insert("creationTimestamp".into(), json!(now));
                meta.remove("deletionTimestamp");
                meta.remove("deletionGracePeriodSeconds");
                if rt.has_generation {
                    meta.insert("generation".into(), json!(1));
                } else {
                    meta.remove("generation");
                }
                if op != Op::Apply {
                    meta.remove("managedFields");
                }
            }
        }
    }

    if rt.status_subresource {
        match (&old, status_write) {
            (None, _) => {
                if rt.special != Special::Crd
                    && let Some(m) = new.as_object_mut()
                {
                    m.remove("status");
                }
            }
            (Some(o), false) => match o.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            (Some(o), true) => {
                let status = new.get("status").cloned();
                let managed = new
                    .get("metadata")
                    .and_then(|m| m.get("managedFields"))
                    .cloned();
                new = (**o).clone();
                if let Some(m) = new.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                let meta = metadata_mut(&mut new);
                meta.remove("resourceVersion");
                match managed {
                    Some(mf) => meta.insert("managedFields".into(), mf),
                    None => meta.remove("managedFields"),
                };
            }
        }
    }

    if let Some(o) = &old
        && o.pointer("/metadata/deletionTimestamp").is_some()
    {
        let before = strings(o.pointer("/metadata/finalizers"));
        let added: Vec<String> = strings(new.pointer("/metadata/finalizers"))
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                name,
                &[FieldError::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                )],
            ));
        }
    }

    let mut warnings = Vec::new();
    if old.is_none() {
        let errs = builtin::name_errors(name, rt.special == Special::Namespace);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.kind, &rt.group, name, &errs));
        }
    }
    match rt.special {
        Special::Event | Special::CoreEvent => {
            builtin::check_event_times(&new)?;
            let api = if rt.special == Special::CoreEvent {
                EventApi::Core
            } else {
                EventApi::EventsV1
            };
            match &old {
                None => builtin::validate_event_create(&new, &key.0, name, api)?,
                Some(o) => builtin::validate_event_update(o, &new, &key.0, name, api)?,
            }
        }
        Special::Lease => builtin::validate_lease(&new, name)?,
        Special::Crd => crd::validate(&new)?,
        _ => {}
    }
    if let Some(s) = rt.schema.as_deref() {
        let checked = schema::check(
            &mut new,
            s,
            opts.field_validation != FieldValidation::Strict,
        );
        if !checked.unknown.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = checked
                        .unknown
                        .iter()
                        .map(|u| format!("unknown field {u:?}"))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = rt.kind,
                        version = rt.version
                    )));
                }
                FieldValidation::Warn => warnings.extend(
                    checked
                        .unknown
                        .iter()
                        .map(|u| format!("unknown field {u:?}")),
                ),
                FieldValidation::Ignore => {}
            }
        }
        if !checked.errors.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                name,
                &checked.errors,
            ));
        }
    }

    if op != Op::Apply {
        let api_version = rt.api_version();
        let writer = Writer {
            manager: &opts.manager,
            subresource: &opts.subresource,
            api_version: &api_version,
            now: &now,
        };
        fields::record_update(old.as_deref(), &mut new, &writer, schema_of(rt));
    }

    if rt.has_generation
        && let Some(o) = &old
    {
        let drop_status = rt.status_subresource;
        if without_meta(o, drop_status) != without_meta(&new, drop_status) {
            let g = o
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(g));
        }
    }

    match rt.special {
        Special::Crd if old.is_none() => crd::initial_status(&mut new),
        Special::Crd if !status_write => crd::established_status(&mut new, &now),
        Special::Event | Special::CoreEvent => builtin::normalize_stored_event(&mut new),
        Special::Namespace if old.is_none() => builtin::default_namespace(&mut new),
        _ => {}
    }

    if let Some(o) = &old {
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv_of(o)));
        if new == **o {
            return Ok(Outcome {
                object: o.clone(),
                created: false,
                warnings,
            });
        }
    }
    if opts.dry_run {
        return Ok(Outcome {
            object: Arc::new(new),
            created: old.is_none(),
            warnings,
        });
    }
    if old.is_some()
        && new.pointer("/metadata/deletionTimestamp").is_some()
        && strings(new.pointer("/metadata/finalizers")).is_empty()
    {
        // The last finalizer is gone: the object is deleted right after this write.
        state.remove(&rt.storage_key, key, Some(new.clone()));
        return Ok(Outcome {
            object: Arc::new(new),
            created: false,
            warnings,
        });
    }
    let stored = state.put(&rt.storage_key, key.clone(), new);
    if rt.special == Special::Crd && old.is_none() {
        let mut established = (*stored).clone();
        crd::established_status(&mut established, &now);
        state.put(CRD_STORAGE_KEY, key.clone(), established);
    }
    Ok(Outcome {
        object: stored,
        created: old.is_none(),
        warnings,
    })
}

/// Secrets: `stringData` is write-only, the server folds it into `data` (base64); the type
/// defaults to `Opaque`.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(m) = secret.as_object_mut() else {
        return;
    };
    m.entry("type").or_insert_with(|| json!("Opaque"));
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| json!({}));
    if let Some(d) = data.as_object_mut() {
        for (k, v) in sd {
            let text = v.as_str().unwrap_or_default().to_string();
            d.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn key_for(rt: &ResourceType, namespace: &str, name: &str) -> ObjKey {
    (
        if rt.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

/// POST: create an object (the body is already checked against the URL).
pub(crate) fn create(
    state: &mut State,
    rt: &ResourceType,
    namespace: &str,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<Outcome> {
    let mut obj = from_view(rt, body);
    let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
    if name.is_empty() {
        let Some(prefix) = meta_str(&obj, "generateName")
            .filter(|g| !g.is_empty())
            .map(str::to_string)
        else {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                "",
                &[builtin::name_required()],
            ));
        };
        loop {
            name = format!("{prefix}{}", super::util::random_suffix());
            if state
                .get(&rt.storage_key, &key_for(rt, namespace, &name))
                .is_none()
            {
                break;
            }
        }
        metadata_mut(&mut obj).insert("name".into(), json!(name));
    }
    let key = key_for(rt, namespace, &name);
    if state.get(&rt.storage_key, &key).is_some() {
        return Err(ApiError::already_exists(&rt.plural, &rt.group, &name));
    }
    finish(state, rt, &key, None, obj, Op::Create, opts)
}

/// PUT: replace an object, with optimistic concurrency on `metadata.resourceVersion`.
pub(crate) fn update(
    state: &mut State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<Outcome> {
    let key = key_for(rt, namespace, name);
    let old = state
        .get(&rt.storage_key, &key)
        .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
    let sent_rv = meta_str(&body, "resourceVersion")
        .unwrap_or_default()
        .to_string();
    if sent_rv.is_empty() {
        if rt.requires_resource_version_on_update() {
            return Err(ApiError::invalid(
                &rt.plural,
                &rt.group,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    "0x0",
                    "must be specified for an update",
                )],
            ));
        }
    } else if sent_rv != rv_of(&old) {
        return Err(ApiError::conflict(&rt.plural, &rt.group, name));
    }
    let obj = from_view(rt, body);
    finish(state, rt, &key, Some(old), obj, Op::Update, opts)
}

/// The patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Json,
    Apply { force: bool },
}

/// PATCH: merge patch, JSON patch or server-side apply.
pub(crate) fn patch(
    state: &mut State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    kind: PatchKind,
    body: Value,
    opts: &WriteOptions,
) -> ApiResult<Outcome> {
    let key = key_for(rt, namespace, name);
    let old = state.get(&rt.storage_key, &key);
    if let PatchKind::Apply { force } = kind {
        return apply_patch(state, rt, &key, old, body, force, opts);
    }
    let old = old.ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
    let mut current = to_view(rt, &old).into_owned();
    let old_rv = rv_of(&old).to_string();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut current, &body),
        PatchKind::Json => {
            let ops: json_patch::Patch =
                serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(&mut current, &ops).map_err(|_| {
                ApiError::new(
                    422,
                    super::status::default_message(422),
                    Some("Invalid"),
                    Some(json!({})),
                )
            })?;
        }
        PatchKind::Apply { .. } => unreachable!("handled above"),
    }
    let sent_rv = meta_str(&current, "resourceVersion").unwrap_or_default();
    if !sent_rv.is_empty() && sent_rv != old_rv {
        return Err(ApiError::conflict(&rt.plural, &rt.group, name));
    }
    let obj = from_view(rt, current);
    finish(state, rt, &key, Some(old), obj, Op::Update, opts)
}

fn apply_patch(
    state: &mut State,
    rt: &ResourceType,
    key: &ObjKey,
    old: Option<Arc<Value>>,
    applied: Value,
    force: bool,
    opts: &WriteOptions,
) -> ApiResult<Outcome> {
    let status_write = opts.subresource == "status";
    if let Some(s) = rt.schema.as_deref() {
        let undeclared = schema::undeclared_fields(&applied, s);
        if let Some(first) = undeclared.first() {
            let ns_name = if key.0.is_empty() {
                key.1.clone()
            } else {
                format!("{}/{}", key.0, key.1)
            };
            return Err(ApiError::internal(format!(
                "failed to create typed patch object ({ns_name}; {}, Kind={}): .{first}: field not declared in schema",
                rt.api_version(),
                rt.kind
            )));
        }
    }
    let live = match &old {
        Some(o) => to_view(rt, o).into_owned(),
        None if status_write => return Err(ApiError::not_found(&rt.plural, &rt.group, &key.1)),
        None => {
            let mut meta = serde_json::Map::new();
            meta.insert("name".into(), json!(key.1));
            if rt.namespaced {
                meta.insert("namespace".into(), json!(key.0));
            }
            json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta})
        }
    };
    let scope = if status_write {
        Scope::StatusOnly
    } else if rt.status_subresource {
        Scope::NoStatus
    } else {
        Scope::All
    };
    let now = now_rfc3339();
    let api_version = rt.api_version();
    let writer = Writer {
        manager: &opts.manager,
        subresource: &opts.subresource,
        api_version: &api_version,
        now: &now,
    };
    let new_view = apply::apply(&live, &applied, &writer, force, schema_of(rt), scope)?;
    let obj = from_view(rt, new_view);
    finish(state, rt, key, old, obj, Op::Apply, opts)
}

/// What a DELETE did.
pub(crate) enum Deleted {
    /// Removed at once; the last state.
    Gone(Arc<Value>),
    /// Kept until its finalizers are removed; the current state.
    Terminating(Arc<Value>),
}

#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOptions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// DELETE of one object.
pub(crate) fn delete(
    state: &mut State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Deleted> {
    let key = key_for(rt, namespace, name);
    let old = state
        .get(&rt.storage_key, &key)
        .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))?;
    let qualified = super::status::group_kind(&rt.kind, &rt.group);
    let details = || {
        let mut d = serde_json::Map::new();
        d.insert("name".into(), json!(name));
        if !rt.group.is_empty() {
            d.insert("group".into(), json!(rt.group));
        }
        d.insert("kind".into(), json!(rt.kind));
        Some(Value::Object(d))
    };
    if let Some(uid) = &opts.uid {
        let actual = meta_str(&old, "uid").unwrap_or_default();
        if uid != actual {
            return Err(ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {qualified} {name:?}: the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
                ),
                Some("Conflict"),
                details(),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let actual = rv_of(&old);
        if rv != actual {
            return Err(ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {qualified} {name:?}: the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                ),
                Some("Conflict"),
                details(),
            ));
        }
    }
    if opts.dry_run {
        return Ok(Deleted::Gone(old));
    }
    let now = now_rfc3339();
    if rt.special == Special::Crd {
        return Ok(delete_crd(state, &key, &old, &now));
    }
    if rt.special == Special::Namespace {
        let namespaced: Vec<String> = state
            .registry
            .all()
            .iter()
            .filter(|t| t.namespaced)
            .map(|t| t.storage_key.clone())
            .collect();
        for storage_key in namespaced {
            let keys: Vec<ObjKey> = state
                .collections
                .get(&storage_key)
                .map(|c| c.keys().filter(|k| k.0 == name).cloned().collect())
                .unwrap_or_default();
            for k in keys {
                state.remove(&storage_key, &k, None);
            }
        }
    }
    if strings(old.pointer("/metadata/finalizers")).is_empty() {
        let gone = state.remove(&rt.storage_key, &key, None).unwrap_or(old);
        return Ok(Deleted::Gone(gone));
    }
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(Deleted::Terminating(old));
    }
    let mut new = (*old).clone();
    let meta = metadata_mut(&mut new);
    meta.insert("deletionTimestamp".into(), json!(now));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    if rt.has_generation {
        let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta.insert("generation".into(), json!(g));
    }
    Ok(Deleted::Terminating(state.put(&rt.storage_key, key, new)))
}

fn delete_crd(state: &mut State, key: &ObjKey, old: &Arc<Value>, now: &str) -> Deleted {
    const CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";
    let mut terminating = (**old).clone();
    let other_finalizers: Vec<String> = strings(old.pointer("/metadata/finalizers"))
        .into_iter()
        .filter(|f| f != CLEANUP)
        .collect();
    {
        let meta = metadata_mut(&mut terminating);
        meta.insert("deletionTimestamp".into(), json!(now));
        let mut fins = other_finalizers.clone();
        fins.push(CLEANUP.to_string());
        meta.insert("finalizers".into(), json!(fins));
        let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta.insert("generation".into(), json!(g));
    }
    crd::mark_terminating(&mut terminating, now);
    let shown = state.put(CRD_STORAGE_KEY, key.clone(), terminating);
    let group = shown
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = shown
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let storage_key = format!("{group}/{plural}");
    let keys: Vec<ObjKey> = state
        .collections
        .get(&storage_key)
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    for k in keys {
        state.remove(&storage_key, &k, None);
    }
    if other_finalizers.is_empty() {
        state.remove(CRD_STORAGE_KEY, key, None);
    } else {
        let mut kept = (*shown).clone();
        metadata_mut(&mut kept).insert("finalizers".into(), json!(other_finalizers));
        state.put(CRD_STORAGE_KEY, key.clone(), kept);
    }
    Deleted::Terminating(shown)
}

/// Direct seeding (see [`super::ApiServer::insert`]).
pub(crate) fn seed(state: &mut State, obj: Value) -> Result<Value, String> {
    let (rt, stored) = seed_quiet(state, obj)?;
    Ok(to_view(&rt, &stored).into_owned())
}

/// Seeding without rendering the stored object back.
pub(crate) fn seed_quiet(
    state: &mut State,
    obj: Value,
) -> Result<(Arc<ResourceType>, Arc<Value>), String> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("apiVersion is missing")?
        .to_string();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("kind is missing")?
        .to_string();
    let rt = state
        .registry
        .by_kind(&api_version, &kind)
        .ok_or_else(|| format!("the server does not serve {kind} in {api_version}"))?;
    let mut obj = from_view(&rt, obj);
    strip_nulls(&mut obj);
    if rt.plural == "secrets" && rt.group.is_empty() {
        merge_string_data(&mut obj);
    }
    let name = meta_str(&obj, "name")
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is missing")?
        .to_string();
    let namespace = if rt.namespaced {
        meta_str(&obj, "namespace").unwrap_or("default").to_string()
    } else {
        String::new()
    };
    let key = (namespace.clone(), name);
    let existing = state.get(&rt.storage_key, &key);
    let now = now_rfc3339();
    {
        let meta = metadata_mut(&mut obj);
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.remove("resourceVersion");
        for (field, fallback) in [("uid", json!(new_uid())), ("creationTimestamp", json!(now))] {
            if !meta.contains_key(field) {
                let v = existing
                    .as_ref()
                    .and_then(|e| e.pointer(&format!("/metadata/{field}")).cloned())
                    .unwrap_or(fallback);
                meta.insert(field.into(), v);
            }
        }
        if rt.has_generation && !meta.contains_key("generation") {
            let g = existing
                .as_ref()
                .and_then(|e| e.pointer("/metadata/generation").cloned())
                .unwrap_or(json!(1));
            meta.insert("generation".into(), g);
        }
    }
    match rt.special {
        Special::Crd if !super::store::crd_is_established(&obj) => {
            crd::established_status(&mut obj, &now)
        }
        Special::Event | Special::CoreEvent => builtin::normalize_stored_event(&mut obj),
        Special::Namespace => builtin::default_namespace(&mut obj),
        _ => {}
    }
    let stored = state.put(&rt.storage_key, key, obj);
    Ok((rt, stored))
}
