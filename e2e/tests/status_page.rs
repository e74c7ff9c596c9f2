//! The status page (`--web-addr`) of the real operator on a real API server, in a real browser:
//! headless Chromium (through `hack/browser-check.sh`) loads the overview, the failing page, a
//! filtered object list, the changes and one object's page, and checks what a person would see:
//! the failing component and objects by name, the failing count equal to the FluxReport's, one
//! broken GitRepository as one root cause with its dependants, a filter that is a URL, the
//! Warning among the changes, and a message `<img src=x onerror=alert(1)>` shown as text, never
//! as an element. Needs Chromium
//! (`apt-get install -y chromium`; `.ci/run` installs it).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::scenario::*;
use common::{Env, OperatorOpts, ensure};
use serde_json::{Value, json};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// `hack/browser-check.sh URL ARGS…` (blocking); the error names every check that failed.
fn browser_check(url: &str, args: &[&str]) -> Result<(), String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hack/browser-check.sh");
    let out = Command::new(script)
        .arg(url)
        .args(args)
        .output()
        .map_err(|e| format!("hack/browser-check.sh: {e}"))?;
    ensure(out.status.success(), || {
        format!(
            "{url}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn failing_git(name: &str, message: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name},
        "spec": {"interval": "5m0s", "url": format!("https://github.com/example/{name}.git"), "ref": {"branch": "main"}},
        "status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "GitOperationFailed",
                "message": message,
                "lastTransitionTime": "2026-12-07T10:00:00Z", "observedGeneration": 1,
            }],
        },
    })
}

/// A Kustomization of `source` that fails because its source has no artifact.
fn kustomization_of(name: &str, source: &str) -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name},
        "spec": {"interval": "10m0s", "path": format!("./apps/{name}"), "prune": true,
                 "sourceRef": {"kind": "GitRepository", "name": source}},
        "status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "ArtifactFailed",
                "message": format!("Source artifact not found, retrying in 30s"),
                "lastTransitionTime": "2026-12-07T10:05:00Z", "observedGeneration": 1,
            }],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_what_fails_and_why_in_a_browser() {
    let env = Env::with_flux("the_status_page_shows_what_fails_and_why").await;
    env.apply(failing_git("broken-src", "authentication required"))
        .await;
    env.apply(kustomization_of("app-a", "broken-src")).await;
    env.apply(kustomization_of("app-b", "broken-src")).await;
    env.apply(failing_git("hostile", HOSTILE)).await;
    env.set_component_ready("helm-controller", false).await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let ns = env.ns.clone();

    // The report as the FluxReport has it, once it counts what this test made.
    let report = env
        .wait_report("the report with the failing objects", soon(&env), |r| {
            let git = reconciler(r, "GitRepository").ok_or("no GitRepository entry")?;
            ensure(git["stats"]["failing"].as_i64() >= Some(2), || {
                format!("GitRepository {}", git["stats"])
            })
        })
        .await;
    let failing: i64 = report["spec"]["reconcilers"]
        .as_array()
        .expect("reconcilers")
        .iter()
        .filter_map(|r| r["stats"]["failing"].as_i64())
        .sum();
    let base = format!("http://{}", op.web_addr);

    // The page follows the runs: retry until a run has published what the report shows.
    let checks: Vec<(String, Vec<String>)> = vec![
        (
            format!("{base}/"),
            vec![
                "--text".into(),
                "helm-controller False".into(),
                "--text".into(),
                "ComponentsNotReady".into(),
                "--no-element".into(),
                "img".into(),
            ],
        ),
        (
            format!("{base}/failing"),
            vec![
                "--text".into(),
                format!("Failing ({failing})"),
                "--text".into(),
                format!("FluxInstance {ns}/flux failing ComponentsNotReady"),
                "--text".into(),
                format!("GitRepository {ns}/broken-src failing GitOperationFailed"),
                "--text".into(),
                "2 objects fail or wait because of it".into(),
                "--text".into(),
                format!("Kustomization {ns} app-a"),
                "--text".into(),
                HOSTILE.into(),
                "--no-element".into(),
                "img".into(),
            ],
        ),
        (
            format!("{base}/objects?kind=GitRepository&namespace={ns}&q=hostile"),
            vec![
                "--text".into(),
                "Objects 1–1 of 1".into(),
                "--text".into(),
                format!("GitRepository {ns} hostile"),
                "--no-text".into(),
                "broken-src".into(),
            ],
        ),
        (
            // The transitions this replica emitted: the Warning for the unready controller.
            format!("{base}/changes"),
            vec![
                "--text".into(),
                "Warning".into(),
                "--text".into(),
                "ComponentsNotReady".into(),
                "--text".into(),
                "component helm-controller is not ready".into(),
            ],
        ),
        (
            format!("{base}/objects/GitRepository/{ns}/hostile"),
            vec![
                "--text".into(),
                HOSTILE.into(),
                "--no-element".into(),
                "img".into(),
            ],
        ),
    ];
    for (url, args) in &checks {
        common::eventually(&format!("the browser sees {url}"), soon(&env), || {
            let url = url.clone();
            let args = args.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    browser_check(&url, &args)
                })
                .await
                .map_err(|e| e.to_string())?
            }
        })
        .await;
    }
    op.assert_alive();
}
