//! Test infrastructure for flux-reporter: an in-process Kubernetes API server double that the
//! kube client and `kubectl` can both talk to, and the end-to-end tests built on it.

pub mod apiserver;
pub mod fixtures;

pub use apiserver::{ApiServer, Fault, FaultId, Faults, RecordedRequest};
