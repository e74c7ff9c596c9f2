//! `flux-reporter run` end to end under the project's own RBAC (`config/rbac`, a ServiceAccount
//! token): every kind of write goes through and nothing is forbidden.
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`). The
//! server: see e2e/README.md.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use common::scenario::*;
use common::{Env, OperatorOpts, ensure, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_with_only_the_project_rbac() {
    let env = Env::with_flux("operator_runs_with_only_the_project_rbac").await;
    let mut opts = OperatorOpts::every("1s").leader_elect("rbac");
    opts.project_rbac = Some(true);
    let op = env.start_operator(opts).await;
    let env = &env;
    wait_full_report(env, &[]).await;
    // Every kind of write: the report, the instance status, events, the lease.
    env.set_component_ready("helm-controller", false).await;
    eventually("a Warning event", soon(env), || async move {
        ensure(!instance_events(env, "Warning").await.is_empty(), || {
            "none yet".into()
        })
    })
    .await;
    env.set_component_ready("helm-controller", true).await;
    eventually("a Normal event", soon(env), || async move {
        ensure(!instance_events(env, "Normal").await.is_empty(), || {
            "none yet".into()
        })
    })
    .await;
    more_runs(env, &op, 3).await;
    assert!(env.lease().await.is_some(), "the Lease was written");
    let log = op.log_text();
    let forbidden: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden under config/rbac:\n{}",
        forbidden.join("\n")
    );
}
