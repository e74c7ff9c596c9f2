//! `flux-reporter report`: compute the report once and print the FluxReport.

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
    let readiness = outcome.readiness();
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
    Ok(ExitCode::SUCCESS)
}
