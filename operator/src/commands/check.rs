//! `flux-reporter check`: a one-screen health summary for CI pipelines.
//! Exit 0 healthy, 1 unhealthy, 2 could not tell.

use std::fmt::Write;
use std::process::ExitCode;

use flux_reporter_report::Outcome;
use flux_reporter_report::health::{self, Health, Verdict};

use crate::cli::SourceArgs;

pub async fn run(args: SourceArgs) -> Result<ExitCode, super::CliError> {
    let outcome = match super::compute(&args).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let health = health::assess(&outcome);
    super::out(&summary(&args.namespace, &outcome, &health))?;
    Ok(ExitCode::from(match health.verdict {
        Verdict::Healthy => 0,
        Verdict::Unhealthy => 1,
        Verdict::Unknown => 2,
    }))
}

pub fn summary(namespace: &str, outcome: &Outcome, health: &Health) -> String {
    let spec = &outcome.spec;
    let mut out = String::new();
    let d = &spec.distribution;
    let mut head = format!(
        "{namespace}: Flux {}",
        d.version.as_deref().unwrap_or("(unknown version)")
    );
    let _ = write!(head, " {}", d.status);
    if let Some(m) = &d.managed_by {
        let _ = write!(head, ", managed by {m}");
    }
    if let Some(c) = &spec.cluster {
        let _ = write!(
            head,
            "; Kubernetes {} {}, {} nodes",
            c.server_version, c.platform, c.nodes
        );
    }
    let _ = writeln!(out, "{head}");

    let ready = spec.components.iter().filter(|c| c.ready).count();
    let mark = |ok: bool| if ok { "✔" } else { "✗" };
    let _ = writeln!(
        out,
        "{} components: {ready}/{} ready",
        mark(ready == spec.components.len() && ready > 0),
        spec.components.len()
    );
    for c in spec.components.iter().filter(|c| !c.ready) {
        let _ = writeln!(out, "    {}: {}", c.name, c.status);
    }

    let failing: i64 = spec.reconcilers.iter().map(|r| r.stats.failing).sum();
    let kinds = spec
        .reconcilers
        .iter()
        .filter(|r| r.stats.failing > 0)
        .count();
    let running: i64 = spec.reconcilers.iter().map(|r| r.stats.running).sum();
    let suspended: i64 = spec.reconcilers.iter().map(|r| r.stats.suspended).sum();
    let _ = writeln!(
        out,
        "{} reconcilers: {running} running, {failing} failing in {kinds} kinds, {suspended} suspended",
        mark(failing == 0)
    );
    const SHOWN: usize = 8;
    let shown = outcome.failing_objects.len().min(SHOWN);
    for f in &outcome.failing_objects[..shown] {
        let line = format!(
            "{} {}/{}: {}: {}",
            f.kind, f.namespace, f.name, f.reason, f.message
        );
        let _ = writeln!(out, "    {}", clip(&line, 150));
    }
    let more = usize::try_from(failing).unwrap_or(0).saturating_sub(shown);
    if more > 0 {
        let _ = writeln!(out, "    … and {more} more");
    }

    match &spec.sync {
        Some(s) => {
            let status = s.status.lines().collect::<Vec<_>>().join(" / ");
            let _ = writeln!(out, "{} sync {}: {status}", mark(s.ready), s.id);
        }
        None => {
            let why = outcome
                .notes
                .iter()
                .find(|n| n.starts_with("no sync"))
                .cloned()
                .unwrap_or_else(|| "no sync".into());
            let _ = writeln!(out, "- {why}");
        }
    }
    for u in &health.unknowns {
        let _ = writeln!(out, "? could not read {u}");
    }
    let verdict = match health.verdict {
        Verdict::Healthy => "healthy".to_string(),
        Verdict::Unhealthy => format!("unhealthy: {} problems", health.problems.len()),
        Verdict::Unknown => format!("unknown: {} parts could not be read", health.unknowns.len()),
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// Cut a line to `max` characters, marking the cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max - 1).collect();
    format!("{cut}…")
}
