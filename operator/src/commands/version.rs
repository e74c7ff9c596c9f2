//! `flux-reporter version`: the client version; with a cluster, also the
//! operator and Flux versions from the FluxReport.

use std::process::ExitCode;

use crate::build_info;
use crate::cli::VersionArgs;

pub async fn run(args: VersionArgs) -> Result<ExitCode, super::CliError> {
    super::out(&format!("client: {}\n", build_info::version()))?;
    if args.client {
        return Ok(ExitCode::SUCCESS);
    }
    let report = super::read_report(&args.api, &args.namespace).await?;
    if let Some(op) = &report.spec.operator {
        super::out(&format!("server: {}\n", op.version))?;
    }
    if let Some(v) = &report.spec.distribution.version {
        super::out(&format!("distribution: {v}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
