//! Built-in kinds with their own rules: Events (one object, two APIs), Leases (MicroTime),
//! Namespaces (status defaults) and object names.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::status::{ApiError, FieldError, FieldErrorKind};

/// events.k8s.io/v1 field → core/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn copy_meta(from: &Value, to: &mut Map<String, Value>) {
    if let Some(m) = from.get("metadata") {
        to.insert("metadata".into(), m.clone());
    }
}

/// A core/v1 Event as stored (events.k8s.io/v1 form).
pub(crate) fn core_event_to_stored(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    copy_meta(core, &mut out);
    for (ev, co) in EVENT_FIELDS {
        if let Some(v) = core.get(*co) {
            out.insert((*ev).into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The core/v1 view of a stored Event, with the defaults the real server shows.
pub(crate) fn stored_event_to_core(ev: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    copy_meta(ev, &mut out);
    for (e, co) in EVENT_FIELDS {
        if let Some(v) = ev.get(*e) {
            out.insert((*co).into(), v.clone());
        }
    }
    for (k, v) in [
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        out.entry(k).or_insert(v);
    }
    Value::Object(out)
}

/// Adds the fields the events.k8s.io/v1 view always shows.
pub(crate) fn normalize_stored_event(ev: &mut Value) {
    if let Some(m) = ev.as_object_mut() {
        m.entry("deprecatedSource").or_insert_with(|| json!({}));
        m.entry("deprecatedFirstTimestamp").or_insert(Value::Null);
        m.entry("deprecatedLastTimestamp").or_insert(Value::Null);
        m.entry("eventTime").or_insert(Value::Null);
    }
}

fn micro_time_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
            .expect("valid regex")
    })
}

/// Checks a `MicroTime` the way Go's decoder does (layout `2006-01-02T15:04:05.000000Z07:00`).
fn check_micro_time(kind: &str, v: Option<&Value>) -> Result<(), ApiError> {
    let Some(Value::String(s)) = v else {
        return Ok(());
    };
    if micro_time_re().is_match(s) {
        return Ok(());
    }
    let rest = s.get(19..).unwrap_or_default();
    Err(ApiError::bad_request(format!(
        "{kind} in version \"v1\" cannot be handled as a {kind}: parsing time {s:?} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse {rest:?} as \".000000\""
    )))
}

fn str_field<'a>(v: &'a Value, f: &str) -> &'a str {
    v.get(f).and_then(Value::as_str).unwrap_or_default()
}

fn is_set(v: &Value, f: &str) -> bool {
    v.get(f).is_some_and(|x| !x.is_null())
}

const QUALIFIED_NAME_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn qualified_name_errors(value: &str, field: &str) -> Vec<FieldError> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("valid regex")
    });
    let name = value.rsplit_once('/').map(|(_, n)| n).unwrap_or(value);
    let rendered = format!("{value:?}");
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::invalid(
            field,
            rendered.clone(),
            "name part must be non-empty",
        ));
    } else if name.len() > 63 {
        errs.push(FieldError::invalid(
            field,
            rendered.clone(),
            "name part must be no more than 63 characters",
        ));
    }
    if !re.is_match(name) {
        errs.push(FieldError::invalid(field, rendered, QUALIFIED_NAME_FMT));
    }
    errs
}

/// Which API an Event write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventApi {
    Core,
    EventsV1,
}

/// apimachinery's `legacyValidateEvent`, on the stored (events.k8s.io) form.
fn legacy_event_errors(ev: &Value, namespace: &str, api: EventApi) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let regarding_ns = ev
        .get("regarding")
        .map(|r| str_field(r, "namespace"))
        .unwrap_or_default();
    if !is_set(ev, "eventTime") {
        if regarding_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(FieldError::invalid(
                    "involvedObject.namespace",
                    "\"\"",
                    "does not match event.namespace",
                ));
            }
        } else if namespace != regarding_ns {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                format!("{regarding_ns:?}"),
                "does not match event.namespace",
            ));
        }
        return errs;
    }
    if regarding_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            "\"\"",
            "does not match event.namespace",
        ));
    }
    let rc_field = if api == EventApi::Core {
        "reportingComponent"
    } else {
        "reportingController"
    };
    let rc = str_field(ev, "reportingController");
    if rc.is_empty() {
        errs.push(FieldError::required(rc_field, ""));
    }
    errs.extend(qualified_name_errors(rc, rc_field));
    for (field, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = str_field(ev, field);
        if v.is_empty() {
            errs.push(FieldError::required(field, ""));
        }
        if v.len() > limit {
            errs.push(FieldError::invalid(
                field,
                "\"\"",
                format!("can have at most {limit} characters"),
            ));
        }
    }
    if str_field(ev, "note").len() > 1024 {
        errs.push(FieldError::invalid(
            "message",
            "\"\"",
            "can have at most 1024 characters",
        ));
    }
    errs
}

fn series_errors(ev: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(series) = ev.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                "\"\"",
                "should be at least 2",
            ));
        }
        if !is_set(series, "lastObservedTime") {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

fn event_invalid(name: &str, errs: &[FieldError]) -> ApiError {
    ApiError::invalid("Event", "", name, errs)
}

/// Checks the MicroTime fields of an Event (400 on a bad format).
pub(crate) fn check_event_times(ev: &Value) -> Result<(), ApiError> {
    check_micro_time("Event", ev.get("eventTime"))?;
    check_micro_time(
        "Event",
        ev.get("series").and_then(|s| s.get("lastObservedTime")),
    )
}

/// Validation of an Event create.
pub(crate) fn validate_event_create(
    ev: &Value,
    namespace: &str,
    name: &str,
    api: EventApi,
) -> Result<(), ApiError> {
    let mut errs = legacy_event_errors(ev, namespace, api);
    if api == EventApi::EventsV1 {
        errs.extend(series_errors(ev));
        if !is_set(ev, "eventTime") {
            errs.push(FieldError::required("eventTime", ""));
        }
        let t = str_field(ev, "type");
        if t != "Normal" && t != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                "\"\"",
                format!("has invalid value: {t}"),
            ));
        }
        for (field, shown) in [
            ("deprecatedFirstTimestamp", "deprecatedFirstTimestamp"),
            ("deprecatedLastTimestamp", "deprecatedLastTimestamp"),
        ] {
            if is_set(ev, field) {
                errs.push(FieldError::invalid(shown, "\"\"", "needs to be unset"));
            }
        }
        if ev
            .get("deprecatedCount")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            != 0
        {
            errs.push(FieldError::invalid(
                "deprecatedCount",
                "\"\"",
                "needs to be unset",
            ));
        }
        if ev
            .get("deprecatedSource")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty())
        {
            errs.push(FieldError::invalid(
                "deprecatedSource",
                "\"\"",
                "needs to be unset",
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(event_invalid(name, &errs))
    }
}

/// Validation of an Event update.
pub(crate) fn validate_event_update(
    old: &Value,
    ev: &Value,
    namespace: &str,
    name: &str,
    api: EventApi,
) -> Result<(), ApiError> {
    let mut errs = legacy_event_errors(ev, namespace, api);
    if api == EventApi::EventsV1 {
        if old.get("series") != ev.get("series") {
            errs.extend(series_errors(ev));
        }
        for (field, shown) in [
            ("regarding", "involvedObject"),
            ("reason", "reason"),
            ("note", "message"),
            ("deprecatedSource", "source"),
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
            ("type", "type"),
            ("action", "action"),
            ("related", "related"),
            ("reportingController", "reportingController"),
            ("reportingInstance", "reportingInstance"),
        ] {
            let (o, n) = (
                old.get(field).filter(|v| !v.is_null()),
                ev.get(field).filter(|v| !v.is_null()),
            );
            if o != n {
                let rendered = n.map(FieldError::render).unwrap_or_else(|| "\"\"".into());
                errs.push(FieldError::invalid(shown, rendered, "field is immutable"));
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(event_invalid(name, &errs))
    }
}

/// Validation of a Lease write.
pub(crate) fn validate_lease(lease: &Value, name: &str) -> Result<(), ApiError> {
    let spec = lease.get("spec").cloned().unwrap_or(Value::Null);
    check_micro_time("Lease", spec.get("acquireTime"))?;
    check_micro_time("Lease", spec.get("renewTime"))?;
    let mut errs = Vec::new();
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.get("leaseTransitions").and_then(Value::as_i64)
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Lease",
            "coordination.k8s.io",
            name,
            &errs,
        ))
    }
}

/// Status defaults of a new Namespace.
pub(crate) fn default_namespace(ns: &mut Value) {
    if let Some(m) = ns.as_object_mut() {
        m.entry("spec")
            .or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
        let status = m.entry("status").or_insert_with(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            s.entry("phase").or_insert_with(|| json!("Active"));
        }
    }
    let name = super::util::meta_str(ns, "name")
        .unwrap_or_default()
        .to_string();
    let labels = super::util::metadata_mut(ns)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// `metadata.name` problems (DNS-1123 subdomain; labels for namespaces).
pub(crate) fn name_errors(name: &str, label: bool) -> Vec<FieldError> {
    static SUB: OnceLock<regex::Regex> = OnceLock::new();
    static LABEL: OnceLock<regex::Regex> = OnceLock::new();
    let sub = SUB.get_or_init(|| {
        regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .expect("valid regex")
    });
    let lab = LABEL.get_or_init(|| {
        regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("valid regex")
    });
    let rendered = format!("{name:?}");
    let mut errs = Vec::new();
    if label {
        if name.len() > 63 {
            errs.push(FieldError::invalid(
                "metadata.name",
                rendered.clone(),
                "must be no more than 63 characters",
            ));
        }
        if !lab.is_match(name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                rendered,
                DNS1123_LABEL_MSG,
            ));
        }
    } else {
        if name.len() > 253 {
            errs.push(FieldError::invalid(
                "metadata.name",
                rendered.clone(),
                "must be no more than 253 characters",
            ));
        }
        if !sub.is_match(name) {
            errs.push(FieldError::invalid(
                "metadata.name",
                rendered,
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }
    errs
}

/// The error for a create without a name.
pub(crate) fn name_required() -> FieldError {
    FieldError {
        kind: FieldErrorKind::Required,
        field: "metadata.name".into(),
        value: None,
        detail: "name or generateName is required".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_events_views_round_trip() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Widget", "name": "flux"}, "reason": "Failed", "message": "boom",
            "type": "Warning", "source": {"component": "x"}, "count": 1
        });
        let stored = core_event_to_stored(&core);
        assert_eq!(stored["note"], "boom");
        assert_eq!(stored["deprecatedCount"], 1);
        let back = stored_event_to_core(&stored);
        assert_eq!(back["message"], "boom");
        assert_eq!(back["reportingComponent"], "");
    }

    #[test]
    fn long_notes_are_rejected_like_the_real_server() {
        let ev = json!({
            "eventTime": "2026-11-22T05:25:24.129445Z", "reportingController": "flux-reporter",
            "reportingInstance": "x", "action": "Reconcile", "reason": "R", "type": "Normal",
            "note": "x".repeat(1025), "regarding": {"namespace": "ns"}
        });
        let err = validate_event_create(&ev, "ns", "e", EventApi::EventsV1).unwrap_err();
        assert_eq!(
            err.status_value()["message"],
            "Event \"e\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
        );
    }

    #[test]
    fn micro_times_need_microseconds() {
        let err = check_event_times(&json!({"eventTime": "2026-11-22T05:25:24Z"})).unwrap_err();
        assert_eq!(
            err.status_value()["message"],
            "Event in version \"v1\" cannot be handled as a Event: parsing time \"2026-11-22T05:25:24Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
        );
    }
}
