//! `flux-reporter version`: the client version; with a cluster, also the
//! operator and Flux versions from the FluxReport.

use std::process::ExitCode;

use flux_reporter_api::FluxReport;
use flux_reporter_api::constants::SINGLETON_NAME;
use kube::Api;

use crate::build_info;
use crate::cli::VersionArgs;

pub async fn run(args: VersionArgs) -> anyhow::Result<ExitCode> {
    println!("client: {}", build_info::version());
    if args.client {
        return Ok(ExitCode::SUCCESS);
    }
    let report = async {
        let api: Api<FluxReport> = Api::namespaced(super::client().await?, &args.namespace);
        anyhow::Ok(api.get(SINGLETON_NAME).await?)
    }
    .await;
    match report {
        Ok(r) => {
            if let Some(op) = &r.spec.operator {
                println!("server: {}", op.version);
            }
            if let Some(v) = &r.spec.distribution.version {
                println!("distribution: {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "error: cannot read FluxReport {}/{SINGLETON_NAME}: {e:#}",
                args.namespace
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
