//! Test infrastructure for flux-reporter: an in-process Kubernetes API server double that the
//! kube client and `kubectl` can both talk to, a TCP proxy that can go mute, an HTTP receiver
//! that records POSTs, and the end-to-end tests built on them.

pub mod apiserver;
pub mod envtest;
pub mod fixtures;
pub mod mute_proxy;
pub mod receiver;

pub use apiserver::{ApiServer, Fault, FaultId, Faults, RecordedRequest};
pub use mute_proxy::MuteProxy;
pub use receiver::Receiver;
