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
use crate::web::model::Input;
use crate::web::{InstanceView, Origin, Snapshot};

pub async fn run(args: ReportArgs) -> Result<ExitCode, super::CliError> {
    if args.output == OutputFormat::Html {
        return html(args).await;
    }
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
        OutputFormat::Html => unreachable!("written by html()"),
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

/// `-o html`: the status page as one self-contained file, rendered by the
/// operator's renderer from this one run (`web::pages::file`). The
/// FluxInstance, if any, is verified as the operator verifies it.
async fn html(args: ReportArgs) -> Result<ExitCode, super::CliError> {
    let mut opts = super::options(&args.source);
    opts.metric_rows = true;
    opts.object_details = true;
    let (outcome, declared) = super::compute_with(&args.source, &opts, true).await?;
    super::print_problems(&outcome);
    let instance = declared.map(|fi| {
        let v = flux_reporter_report::instance::verify(&fi.spec, &outcome.spec, &outcome);
        InstanceView {
            namespace: fi.metadata.namespace.clone().unwrap_or_default(),
            name: fi.metadata.name.clone().unwrap_or_default(),
            ready: v.ready,
            reason: v.reason.to_string(),
            message: v.message,
            verified_here: true,
        }
    });
    let source = match &args.source.from {
        Some(path) => format!("the dump {}", path.display()),
        None => "the cluster".to_string(),
    };
    let snapshot = Snapshot::next(
        None,
        Input {
            origin: Origin::OneShot { source },
            namespace: &args.source.namespace,
            outcome: &outcome,
            spec: &outcome.spec,
            readiness: outcome.readiness_one_shot(),
            finished_at: Timestamp::now().as_second(),
            instance,
        },
    );
    super::out(&crate::web::pages::file(&snapshot))?;
    Ok(if outcome.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
