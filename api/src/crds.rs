//! CRD generation: the schema derived from the Rust types, finished with what
//! the derive cannot say (CEL rules), and rendered as the YAML that
//! `flux-reporter crds` prints and `config/crd/bases/` holds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::{FluxInstance, FluxReport};

/// One generated CRD: the file it lives in under `config/crd/bases/`, and its object.
pub struct GeneratedCrd {
    pub file_name: &'static str,
    pub crd: CustomResourceDefinition,
}

/// Every CRD the project ships, in a stable order.
pub fn all() -> Vec<GeneratedCrd> {
    vec![
        GeneratedCrd {
            file_name: "fluxcd.controlplane.io_fluxinstances.yaml",
            crd: finish(FluxInstance::crd(), "FluxInstance", |schema| {
                // spec.sync.name is immutable, as in the Flux Operator.
                if let Some(name) =
                    schema.pointer_mut("/properties/spec/properties/sync/properties/name")
                {
                    name["x-kubernetes-validations"] = json!([{
                        "message": "the sync name is immutable",
                        "rule": "self == oldSelf",
                    }]);
                }
            }),
        },
        GeneratedCrd {
            file_name: "fluxcd.controlplane.io_fluxreports.yaml",
            crd: finish(FluxReport::crd(), "FluxReport", |_| {}),
        },
    ]
}

/// Add the singleton CEL rule and kind-specific rules to the root schema.
fn finish(
    crd: CustomResourceDefinition,
    kind: &str,
    extra: impl Fn(&mut Value),
) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes to JSON");
    if let Some(versions) = value
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                clean_schema(schema);
                // As the Go CRDs: an object without spec is valid at the root.
                if let Some(root) = schema.as_object_mut() {
                    root.remove("required");
                    root.remove("title");
                }
                extra(schema);
                schema["x-kubernetes-validations"] = json!([{
                    "message": format!("the only accepted name for a {kind} is 'flux'"),
                    "rule": "self.metadata.name == 'flux'",
                }]);
            }
        }
    }
    serde_json::from_value(value).expect("a finished CRD deserializes")
}

/// Remove what the derive adds and the Go API does not have: `nullable` on
/// every `Option` (we never write nulls; omitted fields are absent), and
/// unsigned formats Kubernetes does not know.
fn clean_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("nullable");
            if let Some(Value::String(format)) = map.get("format")
                && format.starts_with("uint")
            {
                map.remove("format");
            }
            for value in map.values_mut() {
                clean_schema(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_schema),
        _ => {}
    }
}

/// The YAML of one CRD, as written to its file.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let body = crate::yaml::to_string(crd).expect("a CRD serializes to YAML");
    format!("---\n{body}")
}

/// The YAML of every CRD, concatenated in file order: what `flux-reporter crds` prints.
pub fn all_yaml() -> String {
    all().iter().map(|g| to_yaml(&g.crd)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        let v = serde_json::to_value(crd).unwrap();
        v.pointer("/spec/versions/0/schema/openAPIV3Schema")
            .unwrap()
            .clone()
    }

    #[test]
    fn every_crd_accepts_only_the_name_flux() {
        for g in all() {
            let schema = schema_of(&g.crd);
            let rules = schema["x-kubernetes-validations"].as_array().unwrap();
            assert_eq!(rules[0]["rule"], "self.metadata.name == 'flux'");
            let kind = &g.crd.spec.names.kind;
            assert_eq!(
                rules[0]["message"],
                format!("the only accepted name for a {kind} is 'flux'")
            );
        }
    }

    #[test]
    fn no_unsigned_integer_formats() {
        let yaml = all_yaml();
        assert!(!yaml.contains("uint"), "unsigned format in CRDs");
    }

    #[test]
    fn fluxreport_identity_and_columns_match_the_flux_operator() {
        let crd = FluxReport::crd();
        assert_eq!(crd.spec.group, "fluxcd.controlplane.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.plural, "fluxreports");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["fluxcd".to_string()][..])
        );
        assert!(crd.spec.names.short_names.is_none());
        let v = &crd.spec.versions[0];
        assert!(v.served && v.storage);
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<_> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority))
            .collect();
        assert_eq!(
            cols,
            vec![
                ("Entitlement", ".spec.distribution.entitlement", Some(10)),
                ("Age", ".metadata.creationTimestamp", None),
                (
                    "Ready",
                    ".status.conditions[?(@.type==\"Ready\")].status",
                    None
                ),
                (
                    "Status",
                    ".status.conditions[?(@.type==\"Ready\")].message",
                    None
                ),
                (
                    "LastUpdated",
                    ".status.conditions[?(@.type==\"Ready\")].lastTransitionTime",
                    None
                ),
            ]
        );
    }

    #[test]
    fn fluxreport_spec_requires_distribution_only() {
        let crd = all().pop().unwrap().crd;
        let schema = schema_of(&crd);
        assert_eq!(
            schema["properties"]["spec"]["required"],
            json!(["distribution"])
        );
        let stats = &schema["properties"]["spec"]["properties"]["reconcilers"]["items"]["properties"]
            ["stats"];
        assert_eq!(
            stats["required"],
            json!(["failing", "running", "suspended"])
        );
    }
}
