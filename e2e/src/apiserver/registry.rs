//! What the double serves: the built-in resources and the ones CRDs add.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

/// Resources whose storage or validation needs special code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    /// core/v1 events: the core view of the objects stored as events.k8s.io/v1.
    CoreEvent,
    /// events.k8s.io/v1 events.
    Event,
    Lease,
    Crd,
    Namespace,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub has_generation: bool,
    /// Defined by a CRD.
    pub custom: bool,
    /// Objects of every version (and of both event APIs) share one collection.
    pub storage_key: String,
    /// The apiVersion objects are stored with.
    pub storage_api_version: String,
    pub special: Special,
    pub columns: Vec<PrinterColumn>,
    pub schema: Option<Arc<Value>>,
    pub deprecation_warning: Option<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.custom {
            // The order the real server lists for custom resources.
            return vec![
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ];
        }
        match self.special {
            Special::Namespace => vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            _ => vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
        }
    }

    /// Custom resources refuse strategic merge patches and unconditional updates.
    pub fn requires_resource_version_on_update(&self) -> bool {
        self.custom || self.special == Special::Crd
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
    special: Special,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        short_names: &["cm"],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::CoreEvent,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        short_names: &["ns"],
        categories: &[],
        namespaced: false,
        status: true,
        generation: false,
        special: Special::Namespace,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        short_names: &["no"],
        categories: &[],
        namespaced: false,
        status: true,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        short_names: &["po"],
        categories: &["all"],
        namespaced: true,
        status: true,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        short_names: &["svc"],
        categories: &["all"],
        namespaced: true,
        status: true,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        short_names: &["sa"],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        short_names: &["ds"],
        categories: &["all"],
        namespaced: true,
        status: true,
        generation: true,
        special: Special::None,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        short_names: &["deploy"],
        categories: &["all"],
        namespaced: true,
        status: true,
        generation: true,
        special: Special::None,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        short_names: &["sts"],
        categories: &["all"],
        namespaced: true,
        status: true,
        generation: true,
        special: Special::None,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        short_names: &["ev"],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::Event,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        short_names: &[],
        categories: &[],
        namespaced: false,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        short_names: &[],
        categories: &[],
        namespaced: false,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::None,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        namespaced: false,
        status: true,
        generation: true,
        special: Special::Crd,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        short_names: &[],
        categories: &[],
        namespaced: true,
        status: false,
        generation: false,
        special: Special::Lease,
    },
];

/// Built-in API groups in the order `/apis` lists them.
pub(crate) const BUILTIN_GROUP_ORDER: &[&str] = &[
    "apps",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
];

pub(crate) const CRD_STORAGE_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";
pub(crate) const NAMESPACE_STORAGE_KEY: &str = "/namespaces";
pub(crate) const EVENT_STORAGE_KEY: &str = "events";

fn builtin_types() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| {
            let api_version = if b.group.is_empty() {
                b.version.to_string()
            } else {
                format!("{}/{}", b.group, b.version)
            };
            let (storage_key, storage_api_version) = match b.special {
                Special::CoreEvent | Special::Event => (
                    EVENT_STORAGE_KEY.to_string(),
                    "events.k8s.io/v1".to_string(),
                ),
                _ => (format!("{}/{}", b.group, b.plural), api_version),
            };
            ResourceType {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                status_subresource: b.status,
                has_generation: b.generation,
                custom: false,
                storage_key,
                storage_api_version,
                special: b.special,
                columns: Vec::new(),
                schema: None,
                deprecation_warning: None,
            }
        })
        .collect()
}

/// The resource types derived from one CRD object (one per served version).
pub(crate) fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(&names["shortNames"]);
    let categories = strings(&names["categories"]);
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .or_else(|| versions.first())
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let storage_key = format!("{group}/{plural}");
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?.to_string();
            let columns = v["additionalPrinterColumns"]
                .as_array()
                .map(|cols| {
                    cols.iter()
                        .filter_map(|c| {
                            Some(PrinterColumn {
                                name: c["name"].as_str()?.to_string(),
                                type_: c["type"].as_str().unwrap_or("string").to_string(),
                                format: c["format"].as_str().unwrap_or_default().to_string(),
                                description: c["description"].as_str().map(str::to_string).unwrap_or_else(|| {
                                    format!(
                                        "Custom resource definition column (in JSONPath format): {}",
                                        c["jsonPath"].as_str().unwrap_or_default()
                                    )
                                }),
                                priority: c["priority"].as_i64().unwrap_or(0),
                                json_path: c["jsonPath"].as_str()?.to_string(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            Some(ResourceType {
                group: group.clone(),
                version,
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                list_kind: list_kind.clone(),
                namespaced,
                short_names: short_names.clone(),
                categories: categories.clone(),
                status_subresource: v["subresources"].get("status").is_some(),
                has_generation: true,
                custom: true,
                storage_key: storage_key.clone(),
                storage_api_version: format!("{group}/{storage_version}"),
                special: Special::None,
                columns,
                schema: if schema.is_object() { Some(Arc::new(schema)) } else { None },
                deprecation_warning: if v["deprecated"].as_bool() == Some(true) {
                    Some(v["deprecationWarning"].as_str().map(str::to_string).unwrap_or_else(|| {
                        format!("{group}/{} {kind} is deprecated", v["name"].as_str().unwrap_or_default())
                    }))
                } else {
                    None
                },
            })
        })
        .collect()
}

/// Every served resource type, looked up by group, version and plural.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<Arc<ResourceType>>,
    index: BTreeMap<(String, String, String), usize>,
}

impl Registry {
    pub fn new(crds: &[Arc<Value>]) -> Self {
        let mut types: Vec<ResourceType> = builtin_types();
        let mut taken: BTreeSet<(String, String, String)> = types
            .iter()
            .map(|t| (t.group.clone(), t.version.clone(), t.plural.clone()))
            .collect();
        for crd in crds {
            for t in types_from_crd(crd) {
                // A CRD cannot shadow a built-in (the real server refuses such CRDs).
                if taken.insert((t.group.clone(), t.version.clone(), t.plural.clone())) {
                    types.push(t);
                }
            }
        }
        let types: Vec<Arc<ResourceType>> = types.into_iter().map(Arc::new).collect();
        let index = types
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.group.clone(), t.version.clone(), t.plural.clone()), i))
            .collect();
        Registry { types, index }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.index
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .map(|i| self.types[*i].clone())
    }

    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// The type for an apiVersion and kind (used by direct seeding).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// The served versions of a group, highest priority first.
    pub fn group_versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = self
            .types
            .iter()
            .filter(|t| t.group == group)
            .map(|t| t.version.clone())
            .collect();
        versions.sort_by(|a, b| compare_versions(a, b));
        versions.dedup();
        versions
    }

    /// Every group except the core one, in discovery order.
    pub fn groups(&self) -> Vec<String> {
        let mut custom: Vec<String> = self
            .types
            .iter()
            .filter(|t| !t.group.is_empty() && !BUILTIN_GROUP_ORDER.contains(&t.group.as_str()))
            .map(|t| t.group.clone())
            .collect();
        custom.sort();
        custom.dedup();
        BUILTIN_GROUP_ORDER
            .iter()
            .map(|g| g.to_string())
            .chain(custom)
            .collect()
    }
}

pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first,
/// then everything else alphabetically.
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
