//! Credentials in source URLs never leave flux-reporter: user info and secret query values are
//! masked in the FluxReport, the FluxInstance status, the metric labels, the events, the
//! notification POSTs, `check` and `report` output, and the operator's log.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::process::Command;
use std::time::Duration;

use common::prom::http_get;
use common::{Env, OperatorOpts, ensure, eventually};
use serde_json::{Value, json};

const GIT: (&str, &str) = ("source.toolkit.fluxcd.io/v1", "GitRepository");
const SECRETS: [&str; 3] = ["ghs_SECRET1", "SECRET2", "SECRET3"];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} leaks {secret}:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_source_urls_never_leave_flux_reporter() {
    let env = Env::with_flux("credentials_in_source_urls_never_leave").await;
    let env = &env;
    let ns = env.ns.clone();
    let sync_url = "https://x-access-token:ghs_SECRET1@github.com/example/fleet.git";
    let broken_url = "https://deploy:SECRET2@github.com/example/does-not-exist.git?token=SECRET3";

    // The sync source carries a token in its URL and fails with the URL in its message; so does
    // another source. The FluxInstance declares the same URL.
    env.merge(GIT.0, GIT.1, &ns, json!({"spec": {"url": sync_url}}))
        .await;
    env.merge_status_as(
        "e2e",
        GIT.0,
        GIT.1,
        &ns,
        json!({"conditions": [{
            "type": "Ready", "status": "False", "reason": "GitOperationFailed",
            "message": format!("failed to checkout and determine revision: unable to clone '{sync_url}': authentication required"),
            "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": 1,
        }]}),
    )
    .await;
    env.merge(GIT.0, GIT.1, "broken", json!({"spec": {"url": broken_url}}))
        .await;
    env.merge_status_as(
        "e2e",
        GIT.0,
        GIT.1,
        "broken",
        json!({"conditions": [{
            "type": "Ready", "status": "False", "reason": "GitOperationFailed",
            "message": format!("unable to clone '{broken_url}': repository not found"),
            "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": 1,
        }]}),
    )
    .await;
    env.merge(
        "fluxcd.controlplane.io/v1",
        "FluxInstance",
        "flux",
        json!({"spec": {"sync": {"url": sync_url}}}),
    )
    .await;

    let op = env
        .start_operator(OperatorOpts::every("1s").arg("--legacy-metrics", "true"))
        .await;
    let op = &op;
    let report = eventually(
        "the failing sync reported",
        Duration::from_secs(60),
        || async move {
            op.assert_alive();
            let r = env.report().await.ok_or("no FluxReport")?;
            ensure(r["spec"]["sync"]["ready"] == false, || {
                format!("sync: {}", r["spec"]["sync"])
            })?;
            Ok(r)
        },
    )
    .await;
    assert_eq!(
        report["spec"]["sync"]["source"],
        "https://***@github.com/example/fleet.git"
    );
    let receiver = &op.receiver;
    eventually(
        "the Warning forwarded",
        Duration::from_secs(15),
        || async move { ensure(!receiver.posts().is_empty(), || "no POST yet".into()) },
    )
    .await;

    assert_clean("the FluxReport", &report.to_string());
    let instance = env.instance().await.expect("FluxInstance");
    assert_clean("the FluxInstance status", &instance["status"].to_string());
    let events: Vec<Value> = env.list("events.k8s.io/v1", "Event").await;
    assert!(!events.is_empty());
    assert_clean("the events", &serde_json::to_string(&events).unwrap());
    assert_clean(
        "the notification POSTs",
        &serde_json::to_string(&receiver.posts()).unwrap(),
    );
    let (code, metrics) = http_get(op.metrics_addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert_clean("/metrics", &metrics);
    assert!(
        metrics.contains(r#"url="https://***@github.com/example/does-not-exist.git?token=***""#),
        "the masked URL is exported"
    );
    assert_clean("the operator log", &op.log_text());

    // The one-shot commands read the same objects.
    let kubeconfig = env.kubeconfig.clone();
    for args in [vec!["check"], vec!["report", "-o", "json"]] {
        let out = tokio::task::spawn_blocking({
            let kubeconfig = kubeconfig.clone();
            let ns = ns.clone();
            let args = args.clone();
            move || {
                Command::new(flux_reporter_e2e::fixtures::flux_reporter_bin())
                    .args(&args)
                    .arg("--namespace")
                    .arg(&ns)
                    .env("KUBECONFIG", kubeconfig)
                    .output()
                    .expect("run flux-reporter")
            }
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{args:?}: {text}");
        assert_clean(&format!("`flux-reporter {}`", args.join(" ")), &text);
    }
}
