//! What the `operator_*` scenarios share: the fixture's expected report, waiting for a complete
//! report, for the start-up runs to end, for more runs, and the FluxInstance's events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::prom::Sample;

use super::{Env, Operator, Stats, condition, ensure, eventually};

/// How long a report may take to show up or change (a bound, not a wait: checks end as soon as
/// they pass).
pub fn soon(_env: &Env) -> Duration {
    Duration::from_secs(30)
}

pub const GIT: (&str, &str) = ("source.toolkit.fluxcd.io/v1", "GitRepository");
pub const HELM_REPO: (&str, &str) = ("source.toolkit.fluxcd.io/v1", "HelmRepository");

/// What the fixtures hold, per kind (see `fixtures/flux-objects.yaml`).
pub fn fixture_stats() -> Vec<(&'static str, &'static str, Stats)> {
    vec![
        (
            "fluxcd.controlplane.io/v1",
            "FluxInstance",
            Stats::new(1, 0, 0, 0),
        ),
        (
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            Stats::new(1, 0, 1, 0),
        ),
        (
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Stats::new(3, 1, 0, 0),
        ),
        (GIT.0, GIT.1, Stats::new(3, 1, 1, 3072)),
        (HELM_REPO.0, HELM_REPO.1, Stats::new(2, 0, 0, 0)),
        (
            "source.toolkit.fluxcd.io/v1",
            "OCIRepository",
            Stats::new(1, 0, 0, 512),
        ),
    ]
}

/// The `reconcilers` entries the report must have, as (apiVersion, kind, stats), with `extra`
/// objects added by the test on top of the fixtures.
pub async fn expected_reconcilers(
    env: &Env,
    extra: &[(&str, Stats)],
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (api_version, kind, mut ours) in fixture_stats() {
        for (k, more) in extra {
            if *k == kind {
                ours = ours.add(*more);
            }
        }
        let stats = env.expected_stats(api_version, kind, ours).await;
        out.push((api_version.to_string(), kind.to_string(), stats));
    }
    out
}

pub fn reconciler<'a>(report: &'a Value, kind: &str) -> Option<&'a Value> {
    report["spec"]["reconcilers"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind)
}

/// The report's `reconcilers` hold these entries, and only these kinds.
pub fn check_reconcilers(
    report: &Value,
    expected: &[(String, String, Value)],
) -> Result<(), String> {
    for (api_version, kind, stats) in expected {
        let entry =
            reconciler(report, kind).ok_or_else(|| format!("no reconcilers entry for {kind}"))?;
        ensure(
            entry["apiVersion"] == *api_version && entry["stats"] == *stats,
            || format!("{kind}: want {api_version} {stats}, got {entry}"),
        )?;
    }
    let kinds: BTreeSet<&str> = report["spec"]["reconcilers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    let want: BTreeSet<&str> = expected.iter().map(|(_, k, _)| k.as_str()).collect();
    ensure(kinds == want, || {
        format!("reconciler kinds {kinds:?}, want {want:?}")
    })
}

pub fn ready_of(obj: &Value) -> Value {
    condition(obj, "Ready").cloned().unwrap_or(Value::Null)
}

pub fn check_ready(obj: &Value, status: &str, reason: &str) -> Result<(), String> {
    let ready = ready_of(obj);
    ensure(
        ready["status"] == status && ready["reason"] == reason,
        || format!("want Ready {status}/{reason}, got {ready}"),
    )
}

/// A complete, healthy report of the fixtures (plus `extra`).
pub async fn wait_full_report(env: &Env, extra: &[(&str, Stats)]) -> Value {
    let expected = expected_reconcilers(env, extra).await;
    env.wait_report("a complete report with Ready=True", soon(env), |r| {
        check_ready(r, "True", "Succeeded")?;
        check_reconcilers(r, &expected)
    })
    .await
}

/// Waits until the start-up runs are over (the operator also runs once on its first sight of the
/// FluxInstance, after the Controller's debounce), so that with a long interval any later run has
/// a cause the test controls.
pub async fn settle(env: &Env, op: &Operator) {
    let quiet = Duration::from_millis(2500);
    let mut last = (op.runs().len(), Instant::now());
    eventually("the start-up runs to end", soon(env) + quiet, || {
        let runs = op.runs().len();
        if runs != last.0 {
            last = (runs, Instant::now());
        }
        let since = last.1.elapsed();
        async move {
            op.assert_alive();
            ensure(since >= quiet, || format!("a run {since:?} ago"))
        }
    })
    .await;
}

pub fn one_more(kind: &'static str) -> [(&'static str, Stats); 1] {
    [(kind, Stats::new(1, 0, 0, 0))]
}

/// Events of this type regarding `kind`/flux (the FluxInstance or the FluxReport).
pub async fn events_of(env: &Env, kind: &str, type_: &str) -> Vec<Value> {
    env.events_about(kind, "flux")
        .await
        .into_iter()
        .filter(|e| e["type"] == type_)
        .collect()
}

/// Events of this type regarding FluxInstance/flux.
pub async fn instance_events(env: &Env, type_: &str) -> Vec<Value> {
    events_of(env, "FluxInstance", type_).await
}

/// Waits for the first event of this type regarding FluxInstance/flux.
pub async fn first_instance_event(env: &Env, type_: &str) -> Value {
    eventually(
        &format!("a {type_} event on FluxInstance/flux"),
        soon(env),
        || async move {
            let events = instance_events(env, type_).await;
            ensure(!events.is_empty(), || "none yet".into())?;
            Ok(events[0].clone())
        },
    )
    .await
}

/// Waits for `n` more report runs of `op` than it has now.
pub async fn more_runs(env: &Env, op: &Operator, n: usize) {
    let target = op.runs().len() + n;
    eventually(&format!("{n} more report runs"), soon(env), || async move {
        op.assert_alive();
        ensure(op.runs().len() >= target, || {
            format!("{} runs so far", op.runs().len())
        })
    })
    .await;
}

/// `flux_resource_info` series of the test namespace, by (kind, name).
pub fn resource_series(samples: &[Sample], ns: &str) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.label("exported_namespace") == ns)
        .cloned()
        .collect()
}

pub fn find<'a>(series: &'a [Sample], kind: &str, name: &str) -> Option<&'a Sample> {
    series
        .iter()
        .find(|s| s.label("kind") == kind && s.label("name") == name)
}
