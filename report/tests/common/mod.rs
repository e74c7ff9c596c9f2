//! What the report engine's integration tests share: the operator info they
//! report as, and one report run over a dump.

use flux_reporter_api::OperatorInfo;
use flux_reporter_report::source::dump::DumpSource;
use flux_reporter_report::{Options, Outcome, compute};

pub fn operator() -> OperatorInfo {
    OperatorInfo {
        api_version: "fluxcd.controlplane.io/v1".into(),
        version: "v0.0.0-test".into(),
        platform: "linux/amd64".into(),
    }
}

/// The report of `dump` for the namespace `flux-system`.
pub fn run(dump: &DumpSource) -> Outcome {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(compute(dump, &Options::new("flux-system", operator())))
}
