//! Test infrastructure for flux-reporter against a real Kubernetes API server: the envtest
//! harness that starts one (etcd and kube-apiserver), a fault-injecting proxy in front of it, a
//! TCP proxy that can go mute, an HTTP receiver that records POSTs, and the end-to-end tests
//! built on them.

pub mod envtest;
pub mod fixtures;
pub mod mute_proxy;
pub mod proxy;
pub mod receiver;
pub mod seed;

pub use mute_proxy::MuteProxy;
pub use proxy::{Fault, FaultId, Faults, Proxy, RecordedRequest};
pub use receiver::Receiver;
