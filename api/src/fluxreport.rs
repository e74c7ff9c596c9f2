//! The FluxReport: the observed state of a Flux installation, in `.spec`
//! as the Flux Operator has it, with the Ready condition in `.status`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// FluxReportSpec defines the observed state of a Flux installation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "FluxReport",
    plural = "fluxreports",
    singular = "fluxreport",
    namespaced,
    status = "FluxReportStatus",
    category = "fluxcd",
    doc = "FluxReport is the Schema for the fluxreports API.",
    printcolumn = r#"{"name":"Entitlement","type":"string","jsonPath":".spec.distribution.entitlement","priority":10}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"LastUpdated","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].lastTransitionTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FluxReportSpec {
    /// Distribution is the version information of the Flux installation.
    pub distribution: FluxDistributionStatus,
    /// Cluster is the version information of the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Operator is the version information of the reporting operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorInfo>,
    /// ComponentsStatus is the status of the Flux controller deployments.
    #[serde(rename = "components", default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<FluxComponentStatus>,
    /// ReconcilersStatus is the list of Flux reconcilers and
    /// their statistics grouped by API kind.
    #[serde(rename = "reconcilers", default, skip_serializing_if = "Vec::is_empty")]
    pub reconcilers: Vec<FluxReconcilerStatus>,
    /// SyncStatus is the status of the cluster sync
    /// Source and Kustomization resources.
    #[serde(rename = "sync", default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<FluxSyncStatus>,
}

/// FluxDistributionStatus defines the version information of the Flux installation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxDistributionStatus {
    /// Entitlement is the entitlement verification status.
    pub entitlement: String,
    /// Status is a human-readable message indicating details
    /// about the distribution observed state.
    pub status: String,
    /// Version is the version of the Flux instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// ManagedBy is the name of the operator managing the Flux instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

/// ClusterInfo defines the version information of the Kubernetes cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// ServerVersion is the version of the Kubernetes API server.
    pub server_version: String,
    /// Platform is the os/arch of the Kubernetes control plane.
    pub platform: String,
    /// Nodes is the number of nodes in the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nodes: i64,
}

/// OperatorInfo defines the version information of the reporting operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorInfo {
    /// APIVersion is the API version of the operator's custom resources.
    pub api_version: String,
    /// Version is the version of the operator.
    pub version: String,
    /// Platform is the os/arch of the operator.
    pub platform: String,
}

/// FluxComponentStatus defines the observed state of a Flux component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxComponentStatus {
    /// Name is the name of the Flux component.
    pub name: String,
    /// Ready is the readiness status of the Flux component.
    pub ready: bool,
    /// Status is a human-readable message indicating details
    /// about the Flux component observed state.
    pub status: String,
    /// Image is the container image of the Flux component.
    pub image: String,
}

/// FluxReconcilerStatus defines the observed state of a Flux reconciler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxReconcilerStatus {
    /// APIVersion is the API version of the Flux resource.
    pub api_version: String,
    /// Kind is the kind of the Flux resource.
    pub kind: String,
    /// Stats is the reconcile statics of the Flux resource kind.
    #[serde(default)]
    pub stats: FluxReconcilerStats,
}

/// FluxReconcilerStats defines the reconcile statistics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxReconcilerStats {
    /// Running is the number of reconciled
    /// resources in the Running state.
    pub running: i64,
    /// Failing is the number of reconciled
    /// resources in the Failing state.
    pub failing: i64,
    /// Suspended is the number of reconciled
    /// resources in the Suspended state.
    pub suspended: i64,
    /// TotalSize is the total size of the artifacts in storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
}

/// FluxSyncStatus defines the observed state of the cluster sync.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxSyncStatus {
    /// ID is the identifier of the sync.
    pub id: String,
    /// Path is the kustomize path of the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Ready is the readiness status of the sync.
    pub ready: bool,
    /// Status is a human-readable message indicating details
    /// about the sync observed state.
    pub status: String,
    /// Source is the URL of the source repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// FluxReportStatus defines the readiness of a FluxReport.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxReportStatus {
    /// Conditions contains the readiness conditions of the object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// LastHandledReconcileAt holds the value of the most recent
    /// reconcile request value, so a change of the annotation value
    /// can be detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Distribution values the report uses.
pub mod distribution {
    pub const UNKNOWN: &str = "Unknown";
    pub const INSTALLED: &str = "Installed";
    pub const NOT_INSTALLED: &str = "Not Installed";
    pub const MANAGED_BY_BOOTSTRAP: &str = "flux bootstrap";
}

impl FluxReportSpec {
    /// The spec written when the singleton is first created: the distribution `Unknown`
    /// until the first report, as the Flux Operator creates its FluxReport.
    pub fn initial(operator: OperatorInfo) -> Self {
        FluxReportSpec {
            distribution: FluxDistributionStatus {
                entitlement: distribution::UNKNOWN.into(),
                status: distribution::UNKNOWN.into(),
                version: None,
                managed_by: None,
            },
            operator: Some(operator),
            ..Default::default()
        }
    }
}
