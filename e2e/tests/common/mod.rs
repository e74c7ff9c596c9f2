//! The end-to-end harness: an environment per test (API, namespace, fixtures), the operator as a
//! real process (with its notification receiver, `flux_reporter_e2e::Receiver`), a metrics
//! scraper and polling.

pub mod env;
pub mod poll;
pub mod process;
pub mod prom;
pub mod scenario;

pub use env::{Env, Stats, condition};
pub use poll::{ensure, eventually};
pub use process::{Operator, OperatorOpts};
