//! `flux-reporter report`: compute the report once and print the FluxReport.
//! Exit 0 complete, 1 printed but incomplete (a section could not be read),
//! 2 nothing printed (no cluster, a bad dump, an API server that does not answer).

use std::process::ExitCode;

use flux_reporter_api::condition::{Condition, ConditionStatus};
use flux_reporter_api::constants::{READY_CONDITION, SINGLETON_NAME};
use flux_reporter_api::{FluxReport, FluxReportStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::cli::{OutputFormat, ReportArgs};

pub async fn run(args: ReportArgs) -> Result<ExitCode, super::CliError> {
    let outcome = super::compute(&args.source).await?;
    super::print_problems(&outcome);
    let readiness = outcome.readiness_one_shot();
    let mut report = FluxReport::new(SINGLETON_NAME, outcome.spec.clone());
    report.metadata.namespace = Some(args.source.namespace.clone());
    report.status = Some(FluxReportStatus {
        conditions: vec![Condition::new(
            READY_CONDITION,
            ConditionStatus::from(readiness.ready),
            readiness.reason,
            &readiness.message,
            None,
            Time(Timestamp::now()),
        )],
        last_handled_reconcile_at: None,
    });
    let text = match args.output {
        OutputFormat::Yaml => {
            flux_reporter_api::yaml::to_string(&report).map_err(super::CliError::Yaml)?
        }
        OutputFormat::Json => {
            serde_json::to_string_pretty(&report).map_err(super::CliError::Json)? + "\n"
        }
    };
    super::out(&text)?;
    // Printed either way; 1 tells a script that sections are missing (each is
    // named on stderr and in the Ready message).
    Ok(if outcome.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
