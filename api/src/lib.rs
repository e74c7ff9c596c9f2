//! The custom resources of flux-reporter: `FluxReport` and `FluxInstance`
//! (`fluxcd.controlplane.io/v1`), their constants, and CRD generation.
//!
//! The types follow the Flux Operator's API field for field, so objects and
//! tools written for one work with the other.

pub mod condition;
pub mod constants;
pub mod crds;
pub mod fluxinstance;
pub mod fluxreport;
pub mod yaml;

pub use condition::{Condition, ConditionStatus};
pub use fluxinstance::{FluxInstance, FluxInstanceSpec, FluxInstanceStatus};
pub use fluxreport::{
    ClusterInfo, FluxComponentStatus, FluxDistributionStatus, FluxReconcilerStats,
    FluxReconcilerStatus, FluxReport, FluxReportSpec, FluxReportStatus, FluxSyncStatus,
    OperatorInfo,
};
