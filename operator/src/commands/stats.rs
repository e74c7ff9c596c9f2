//! `flux-reporter stats`: the `flux stats` table, from the FluxReport in the
//! cluster or computed from a dump.

use std::process::ExitCode;

use flux_reporter_api::FluxReconcilerStatus;

use crate::cli::SourceArgs;

pub async fn run(args: SourceArgs) -> Result<ExitCode, super::CliError> {
    let reconcilers = if args.from.is_some() {
        let outcome = super::compute(&args).await?;
        super::print_problems(&outcome);
        outcome.spec.reconcilers
    } else {
        let report = super::read_report(&args.api, &args.namespace).await?;
        report.spec.reconcilers
    };
    if reconcilers.is_empty() {
        return Err(super::CliError::NoStatistics);
    }
    super::out(&table(&reconcilers))?;
    Ok(ExitCode::SUCCESS)
}

/// Columns padded to their widest cell, three spaces apart, as kubectl prints.
pub fn table(reconcilers: &[FluxReconcilerStatus]) -> String {
    let mut rows =
        vec![["RECONCILERS", "RUNNING", "FAILING", "SUSPENDED", "STORAGE"].map(String::from)];
    for r in reconcilers {
        rows.push([
            r.kind.clone(),
            r.stats.running.to_string(),
            r.stats.failing.to_string(),
            r.stats.suspended.to_string(),
            r.stats
                .total_size
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_reporter_api::FluxReconcilerStats;

    #[test]
    fn table_has_flux_stats_columns_and_dash_for_no_storage() {
        let rows = vec![
            FluxReconcilerStatus {
                api_version: "source.toolkit.fluxcd.io/v1".into(),
                kind: "GitRepository".into(),
                stats: FluxReconcilerStats {
                    running: 4,
                    failing: 1,
                    suspended: 2,
                    total_size: Some("2.8 MiB".into()),
                },
            },
            FluxReconcilerStatus {
                api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
                kind: "Kustomization".into(),
                stats: FluxReconcilerStats::default(),
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "RECONCILERS     RUNNING   FAILING   SUSPENDED   STORAGE"
        );
        assert_eq!(
            lines[1],
            "GitRepository   4         1         2           2.8 MiB"
        );
        assert_eq!(
            lines[2],
            "Kustomization   0         0         0           -"
        );
    }
}
