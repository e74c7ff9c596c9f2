//! The `flux-reporter` operator and its command-line tools, as a library: the
//! binary (`main.rs`) is a thin wrapper over [`commands::dispatch`], and the
//! examples and benchmarks use these modules directly.

pub mod allocator;
pub mod build_info;
pub mod cli;
pub mod client;
pub mod commands;
pub mod controller;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod metrics_secure;
pub mod notifier;
pub mod run;
pub mod server;
pub mod transitions;
pub mod watchdog;
pub mod web;
