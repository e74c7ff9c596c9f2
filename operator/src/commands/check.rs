//! `flux-reporter check`: a one-screen health summary for CI pipelines.
//! Exit 0 healthy, 1 unhealthy, 2 could not tell.

use std::fmt::Write;
use std::process::ExitCode;

use flux_reporter_report::health::{self, Health, Verdict};
use flux_reporter_report::{Outcome, Section};

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

    // What could not be read is never ticked: it gets a `?`.
    let ready = spec.components.iter().filter(|c| c.ready).count();
    let not_ready = spec.components.len() - ready;
    let mark = |ok: bool| if ok { "✔" } else { "✗" };
    if outcome.failed(Section::Components) {
        let _ = writeln!(out, "? components: could not be read");
    } else {
        let _ = writeln!(
            out,
            "{} components: {ready}/{} ready",
            mark(ready == spec.components.len() && ready > 0),
            spec.components.len()
        );
        for c in spec.components.iter().filter(|c| !c.ready) {
            let _ = writeln!(out, "    {}: {}", c.name, c.status);
        }
    }

    let failing: i64 = spec.reconcilers.iter().map(|r| r.stats.failing).sum();
    let kinds = spec
        .reconcilers
        .iter()
        .filter(|r| r.stats.failing > 0)
        .count();
    let running: i64 = spec.reconcilers.iter().map(|r| r.stats.running).sum();
    let suspended: i64 = spec.reconcilers.iter().map(|r| r.stats.suspended).sum();
    let unread_kinds = outcome.failed_kinds().len();
    if outcome.failed(Section::Crds) {
        let _ = writeln!(out, "? reconcilers: could not be read (no Flux CRDs)");
    } else {
        let reconcilers_mark = if failing > 0 {
            "✗"
        } else if unread_kinds > 0 {
            "?"
        } else {
            "✔"
        };
        let mut line = format!(
            "{reconcilers_mark} reconcilers: {running} running, {failing} failing in {kinds} kinds, {suspended} suspended"
        );
        if unread_kinds > 0 {
            let _ = write!(line, " ({unread_kinds} kinds could not be read)");
        }
        let _ = writeln!(out, "{line}");
    }
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
        None if outcome.failed(Section::Sync) => {}
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
        Verdict::Unhealthy => {
            let mut parts = Vec::new();
            if failing > 0 {
                parts.push(count(failing, "failing object", "failing objects"));
            }
            if not_ready > 0 && !outcome.failed(Section::Components) {
                parts.push(count(
                    not_ready as i64,
                    "component not ready",
                    "components not ready",
                ));
            }
            if spec.sync.as_ref().is_some_and(|s| !s.ready) {
                parts.push("sync not ready".into());
            }
            if parts.is_empty() {
                parts.push(count(health.problems.len() as i64, "problem", "problems"));
            }
            format!("unhealthy: {}", parts.join(", "))
        }
        Verdict::Unknown => format!("unknown: {} parts could not be read", health.unknowns.len()),
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// `1 failing object`, `10 failing objects`.
fn count(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Cut a line to `max` characters, marking the cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max - 1).collect();
    format!("{cut}…")
}
