//! CustomResourceDefinitions: validation of the definition and the status the API server
//! maintains (`NamesAccepted`, `Established`, `acceptedNames`, `storedVersions`).

use serde_json::{Value, json};

use super::status::{ApiError, FieldError};

/// The basic checks the real server makes before accepting a CRD.
pub(crate) fn validate(crd: &Value) -> Result<(), ApiError> {
    let name = super::util::meta_str(crd, "name").unwrap_or_default();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    let mut errs = Vec::new();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            format!("{group:?}"),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            format!("{name:?}"),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        Some(other) => errs.push(FieldError {
            kind: super::status::FieldErrorKind::NotSupported,
            field: "spec.scope".into(),
            value: Some(format!("{other:?}")),
            detail: "supported values: \"Cluster\", \"Namespaced\"".into(),
        }),
        None => errs.push(FieldError::required("spec.scope", "")),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count()
        != 1
    {
        errs.push(FieldError::invalid(
            "spec.versions",
            "\"array\"",
            "must have exactly one version marked as storage version",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            &errs,
        ))
    }
}

fn storage_version(crd: &Value) -> Option<String> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string)
}

fn stored_versions(crd: &Value) -> Vec<String> {
    crd["status"]["storedVersions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The status of a CRD that was just created, before it is established: no conditions,
/// empty accepted names, the storage version already recorded.
pub(crate) fn initial_status(crd: &mut Value) {
    let stored: Vec<String> = storage_version(crd).into_iter().collect();
    crd["status"] = json!({
        "conditions": null,
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": stored,
    });
}

/// The status once the names are accepted and the CRD is established. Keeps the transition
/// times of conditions that were already true and grows `storedVersions`.
pub(crate) fn established_status(crd: &mut Value, now: &str) {
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let mut accepted = names.clone();
    if let Some(m) = accepted.as_object_mut() {
        m.entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        m.entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    let mut stored = stored_versions(crd);
    if let Some(v) = storage_version(crd)
        && !stored.contains(&v)
    {
        stored.push(v);
    }
    let existing = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let since = |t: &str| {
        existing
            .iter()
            .find(|c| c["type"] == t && c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"), "reason": "NoConflicts", "message": "no conflicts found"}),
        json!({"type": "Established", "status": "True", "lastTransitionTime": since("Established"), "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}),
    ];
    conditions.extend(
        existing
            .into_iter()
            .filter(|c| c["type"] != "NamesAccepted" && c["type"] != "Established"),
    );
    crd["status"] =
        json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored});
}

/// The state a CRD shows while its objects are being removed.
pub(crate) fn mark_terminating(crd: &mut Value, now: &str) {
    if let Some(conds) = crd["status"]["conditions"].as_array_mut() {
        conds.retain(|c| c["type"] != "Terminating");
        conds.push(json!({
            "type": "Terminating", "status": "True", "lastTransitionTime": now,
            "reason": "InstanceDeletionPending",
            "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"
        }));
    }
}
