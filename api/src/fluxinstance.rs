//! The FluxInstance: the declared Flux installation.
//!
//! flux-reporter does not install Flux; it verifies the observed installation
//! against this declaration. The schema accepts every field the Flux Operator's
//! FluxInstance has, so an object written for the Flux Operator applies unchanged.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// FluxInstanceSpec defines the desired state of FluxInstance
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "FluxInstance",
    plural = "fluxinstances",
    singular = "fluxinstance",
    namespaced,
    status = "FluxInstanceStatus",
    category = "fluxcd",
    doc = "FluxInstance is the Schema for the fluxinstances API",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAttemptedRevision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FluxInstanceSpec {
    /// Distribution specifies the version and container registry to pull images from.
    pub distribution: Distribution,
    /// Components is the list of controllers to install.
    /// Defaults to source, kustomize, helm and notification controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentName>>,
    /// Cluster holds the specification of the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// CommonMetadata specifies the common labels and annotations that are
    /// applied to all resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,
    /// Kustomize holds a set of patches that can be applied to the
    /// Flux installation, to customize the way Flux operates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Kustomize>,
    /// Sharding holds the specification of the sharding configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,
    /// Storage holds the specification of the source-controller
    /// persistent volume claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Sync specifies the source for the cluster sync operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Sync>,
    /// MigrateResources instructs the controller to migrate the Flux custom resources
    /// from the previous version to the latest API version specified in the CRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub migrate_resources: Option<bool>,
    /// Wait instructs the controller to check the health of all the reconciled
    /// resources. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub wait: Option<bool>,
}

/// Distribution specifies the version and container registry to pull images from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Version semver expression e.g. '2.x', '2.3.x'.
    pub version: String,
    /// Registry address to pull the distribution images from e.g. 'ghcr.io/fluxcd'.
    pub registry: String,
    /// Artifact is the URL to the OCI artifact containing
    /// the latest Kubernetes manifests for the distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^oci://.*$"))]
    pub artifact: Option<String>,
    /// ArtifactPullSecret is the name of the Kubernetes secret
    /// to use for pulling the Flux manifests artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_pull_secret: Option<String>,
    /// ImagePullSecret is the name of the Kubernetes secret
    /// to use for pulling images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// Variant specifies the Flux distribution flavor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["upstream-alpine", "enterprise-alpine", "enterprise-distroless", "enterprise-distroless-fips"]))]
    pub variant: Option<String>,
}

/// Component is the name of a controller to install.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("enum" = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher"
]))]
#[serde(transparent)]
pub struct ComponentName(pub String);

/// The components installed when `spec.components` is not set.
pub const DEFAULT_COMPONENTS: [&str; 4] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
];

/// Cluster holds the specification of the Kubernetes cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Type specifies the distro of the Kubernetes cluster. Defaults to 'kubernetes'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["kubernetes", "openshift", "aws", "azure", "gcp"], "default" = "kubernetes"))]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Size defines the vertical scaling profile of the Flux controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["small", "medium", "large"]))]
    pub size: Option<String>,
    /// Domain is the cluster domain used for generating the FQDN of services.
    /// Defaults to 'cluster.local'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "cluster.local"))]
    pub domain: Option<String>,
    /// Multitenant enables the multitenancy lockdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitenant: Option<bool>,
    /// NetworkPolicy restricts network access to the current namespace. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub network_policy: Option<bool>,
    /// MultitenantWorkloadIdentity enables the multitenancy lockdown for workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitenant_workload_identity: Option<bool>,
    /// ObjectLevelWorkloadIdentity enables the feature gate required for object-level
    /// workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_level_workload_identity: Option<bool>,
    /// TenantDefaultServiceAccount is the name of the service account
    /// to use as default when the multitenant lockdown is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_service_account: Option<String>,
    /// TenantDefaultDecryptionServiceAccount is the name of the service account
    /// to use as default for decryption when the multitenant workload identity lockdown is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_decryption_service_account: Option<String>,
    /// TenantDefaultKubeConfigServiceAccount is the name of the service account
    /// to use as default for remote kubeconfigs when the multitenant workload identity lockdown is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_kube_config_service_account: Option<String>,
}

/// CommonMetadata defines the common labels and annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonMetadata {
    /// Annotations to be added to the object's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to be added to the object's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Kustomize holds a set of patches applied to the Flux installation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Kustomize {
    /// Strategic merge and JSON patches, defined as inline YAML objects,
    /// capable of targeting objects based on kind, label and annotation selectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<KustomizePatch>>,
}

/// Patch contains an inline StrategicMerge or JSON6902 patch, and the target the patch should
/// be applied to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizePatch {
    /// Patch contains an inline StrategicMerge patch or an inline JSON6902 patch with
    /// an array of operation objects.
    pub patch: String,
    /// Target points to the resources that the patch document should be applied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchSelector>,
}

/// Selector specifies a set of resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSelector {
    /// Group is the API group to select resources from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Version of the API Group to select resources from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind of the API Group to select resources from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace to select resources from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name to match resources with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// AnnotationSelector is a string that follows the label selection expression.
    /// It matches with the resource annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
    /// LabelSelector is a string that follows the label selection expression.
    /// It matches with the resource labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// Sharding holds the specification of the sharding configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sharding {
    /// Key is the label key used to shard the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sharding.fluxcd.io/key"))]
    pub key: Option<String>,
    /// Shards is the list of shard names.
    #[schemars(length(min = 1))]
    pub shards: Vec<String>,
    /// Storage defines if the source-controller shards
    /// should use an emptyDir or a persistent volume claim for storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["ephemeral", "persistent"]))]
    pub storage: Option<String>,
}

/// Storage holds the specification of the source-controller persistent volume claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Class is the storage class to use for the PVC.
    pub class: String,
    /// Size is the size of the PVC.
    pub size: String,
}

/// Sync specifies the source for the cluster sync operation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    /// Name is the name of the Flux source and kustomization resources.
    /// When not specified, the name is set to the namespace name of the FluxInstance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub name: Option<String>,
    /// Kind is the kind of the source.
    #[schemars(extend("enum" = ["OCIRepository", "GitRepository", "Bucket"]))]
    pub kind: String,
    /// URL is the source URL, can be a Git repository HTTP/S or SSH address,
    /// an OCI repository address or a Bucket endpoint.
    pub url: String,
    /// Ref is the source reference, can be a Git ref name e.g. 'refs/heads/main',
    /// an OCI tag e.g. 'latest' or a bucket name e.g. 'flux'.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// Path is the path to the source directory containing
    /// the kustomize overlay or plain Kubernetes manifests.
    pub path: String,
    /// Interval is the time between syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"),
        extend("default" = "1m")
    )]
    pub interval: Option<String>,
    /// Provider specifies OIDC provider for source authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["generic", "aws", "azure", "gcp", "github"]))]
    pub provider: Option<String>,
    /// PullSecret specifies the Kubernetes Secret containing the
    /// authentication credentials for the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
}

/// FluxInstanceStatus defines the observed state of FluxInstance
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxInstanceStatus {
    /// Conditions contains the readiness conditions of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Components contains the container images used by the components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentImage>>,
    /// History contains the reconciliation history of the FluxInstance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Snapshot>>,
    /// Inventory contains a list of Kubernetes resource object references
    /// last applied on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<ResourceInventory>,
    /// LastAppliedRevision is the version and digest of the
    /// distribution config that was last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// LastAttemptedRevision is the version and digest of the
    /// distribution config that was last attempted to reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// LastArtifactRevision is the digest of the last pulled
    /// distribution artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_artifact_revision: Option<String>,
    /// LastHandledReconcileAt holds the value of the most recent
    /// reconcile request value, so a change of the annotation value
    /// can be detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// LastHandledForceAt holds the value of the most recent
    /// force request value, so a change of the annotation value
    /// can be detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_force_at: Option<String>,
}

/// ComponentImage represents a container image used by a component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentImage {
    /// Name of the component.
    pub name: String,
    /// Repository address of the container image.
    pub repository: String,
    /// Tag of the container image.
    pub tag: String,
    /// Digest of the container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Snapshot represents a point-in-time record of a group of resources reconciliation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Digest is the checksum in the format `<algo>:<hex>` of the resources in this snapshot.
    pub digest: String,
    /// FirstReconciled is the time when this revision was first reconciled to the cluster.
    #[schemars(extend("format" = "date-time"))]
    pub first_reconciled: String,
    /// LastReconciled is the time when this revision was last reconciled to the cluster.
    #[schemars(extend("format" = "date-time"))]
    pub last_reconciled: String,
    /// LastReconciledDuration is time it took to reconcile the resources in this revision.
    pub last_reconciled_duration: String,
    /// LastReconciledStatus is the status of the last reconciliation.
    pub last_reconciled_status: String,
    /// TotalReconciliations is the total number of reconciliations that have occurred for this snapshot.
    pub total_reconciliations: i64,
    /// Metadata contains additional information about the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// ResourceInventory contains a list of Kubernetes resource object references.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInventory {
    /// Entries of Kubernetes resource object references.
    pub entries: Vec<ResourceRef>,
}

/// ResourceRef contains the information necessary to locate a resource within a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// ID is the string representation of the Kubernetes resource object's metadata,
    /// in the format '<namespace>_<name>_<group>_<kind>'.
    pub id: String,
    /// Version is the API version of the Kubernetes resource object's kind.
    pub v: String,
}

impl FluxInstanceSpec {
    /// The declared components, or the defaults when none are listed.
    pub fn component_names(&self) -> Vec<String> {
        match &self.components {
            Some(list) if !list.is_empty() => list.iter().map(|c| c.0.clone()).collect(),
            _ => DEFAULT_COMPONENTS.iter().map(|s| s.to_string()).collect(),
        }
    }
}
