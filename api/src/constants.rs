//! Names shared by the report engine, the operator and the manifests.

/// API group of FluxReport and FluxInstance.
pub const GROUP: &str = "fluxcd.controlplane.io";
/// The only served and stored version.
pub const VERSION: &str = "v1";
/// `group/version` of our kinds.
pub const API_VERSION: &str = "fluxcd.controlplane.io/v1";

pub const FLUX_REPORT_KIND: &str = "FluxReport";
pub const FLUX_INSTANCE_KIND: &str = "FluxInstance";
pub const RESOURCE_SET_KIND: &str = "ResourceSet";
pub const RESOURCE_SET_INPUT_PROVIDER_KIND: &str = "ResourceSetInputProvider";

/// The singleton name accepted for FluxReport and FluxInstance.
pub const SINGLETON_NAME: &str = "flux";
/// Namespace used when `RUNTIME_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "flux-system";

/// The field manager of every server-side apply we make.
pub const FIELD_MANAGER: &str = "flux-reporter";
/// The Flux Operator's field manager: when it manages a FluxInstance,
/// flux-reporter only reads it.
pub const FLUX_OPERATOR_MANAGER: &str = "flux-operator";
/// Prefix of the Flux Operator's finalizers (`fluxcd.controlplane.io/finalizer`).
pub const FLUX_OPERATOR_FINALIZER_PREFIX: &str = "fluxcd.controlplane.io/";
/// The name flux-reporter reports itself by (operator info, events).
pub const CONTROLLER_NAME: &str = "flux-reporter";

/// Label that marks Flux CRDs and controller Deployments.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Value of [`PART_OF_LABEL`] for Flux.
pub const PART_OF_FLUX: &str = "flux";
/// Label selector for Flux CRDs and Deployments.
pub const FLUX_SELECTOR: &str = "app.kubernetes.io/part-of=flux";
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Set by `flux bootstrap` (kustomize-controller's ownership label).
pub const KUSTOMIZE_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";

/// The CRD whose labels tell the Flux distribution.
pub const DISTRIBUTION_PROBE_CRD: &str = "gitrepositories.source.toolkit.fluxcd.io";

/// Any change of this annotation asks for an immediate run.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";
/// Per-object interval, a Go-style duration (`30s`, `5m`, `1h30m`).
pub const RECONCILE_EVERY_ANNOTATION: &str = "fluxcd.controlplane.io/reconcileEvery";
/// `disabled` (any case) pauses reporting; also suspends operator kinds.
pub const RECONCILE_ANNOTATION: &str = "fluxcd.controlplane.io/reconcile";
pub const RECONCILE_DISABLED: &str = "disabled";
/// Names the root Kustomization of the cluster sync, on the FluxReport
/// (`<name>` or `<namespace>/<name>`); overrides the FluxInstance `spec.sync.name`.
pub const SYNC_NAME_ANNOTATION: &str = "fluxcd.controlplane.io/syncName";
/// Revision key in event metadata (kept by notification-controller).
pub const REVISION_ANNOTATION: &str = "fluxcd.controlplane.io/revision";
/// FluxInstance annotations with this prefix are copied into notifications.
pub const EVENT_ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// Ready condition type and the reasons we set.
pub const READY_CONDITION: &str = "Ready";
pub const SUCCEEDED_REASON: &str = "Succeeded";
pub const REPORT_INCOMPLETE_REASON: &str = "ReportIncomplete";
pub const DEPENDENCY_NOT_READY_REASON: &str = "DependencyNotReady";
