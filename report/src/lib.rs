//! The flux-reporter report engine: observed objects in, a `FluxReportSpec`,
//! metric rows and health out.
//!
//! One module per report section (`distribution`, `cluster`, `crds`,
//! `components`, `reconcilers`, `sync`, `metrics`), each a function of the
//! objects it is given; [`compute`] asks a [`source::Source`] for those
//! objects and assembles the sections, each failing on its own.

pub mod cluster;
pub mod components;
pub mod compute;
pub mod crds;
pub mod distribution;
pub mod duration;
pub mod health;
pub mod instance;
pub mod lenient;
pub mod merge;
pub mod metrics;
pub mod observed;
pub mod reconcilers;
pub mod redact;
pub mod source;
pub mod sync;

pub use compute::{Failure, Options, Outcome, Section, compute};
