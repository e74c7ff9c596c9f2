//! What the rows of the fault matrix share (`fault_matrix_api.rs`, `fault_matrix_notify.rs`):
//! the operator's flags, a row's start (the fixtures, the operator, its complete report before
//! the fault), the report that names a fault, the measured recovery, and the check that nothing
//! was sent twice.
//!
//! Each row prints `fault-matrix row=<name> recovery_ms=<n>` (run with `--no-capture`): the
//! time from the end of the fault to the first complete report written after it (or, for the
//! notification rows, to the next POST delivered); and the Ready message that named the fault,
//! as `fault-matrix row=<name> ready="<message>"`.
//!
//! Every row runs against the real API server of `E2E_KUBECONFIG`; the API rows inject their
//! faults with the test's fault-injecting proxy (`flux_reporter_e2e::Proxy`, [`Env::proxy`]),
//! through which their operator reaches the server ([`proxied`]).

use std::time::{Duration, Instant};

use flux_reporter_e2e::{FaultId, Faults};
use serde_json::Value;

use crate::common::prom::http_get;
use crate::common::scenario::{check_ready, instance_events, ready_of, soon, wait_full_report};
use crate::common::{Env, Operator, OperatorOpts, Stats, ensure, eventually};

/// The matrix's reporting interval (the floor).
pub const INTERVAL: Duration = Duration::from_secs(1);
/// `--report-timeout`: room for one request timeout and the `/version` probe.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(6);

/// A 1s interval, 2s connect and request timeouts, a 6s report timeout: the liveness limit is
/// 3 x 1s + 6s = 9s.
pub fn impatient() -> OperatorOpts {
    OperatorOpts::every("1s")
        .arg("--request-timeout", "2s")
        .arg("--connect-timeout", "2s")
        .arg("--report-timeout", "6s")
}

/// [`impatient`], reaching the API server through the test's fault-injecting proxy: the API
/// rows inject their faults there.
pub fn proxied() -> OperatorOpts {
    impatient().through_proxy()
}

/// What a recovery may take beyond the interval and the run in progress: the recovering run
/// itself (a dozen lists through the proxy and the report write), the test's polling (100ms)
/// and its GET of the report. Measured on envtest (kube-apiserver 1.36) on 2 cores shared with
/// etcd, the API server and other builds (load average 8 to 11), over 158 complete runs through
/// the proxy: median 280ms, slowest 580ms without a fault, 1.2s for the first run after the
/// outage (new connections); the matrix's recoveries took 0.1 to 2.9s. 2s covers the slowest
/// run with the polling on top; a run slower than that is a regression to see, not to wait out.
pub const RECOVERY_MARGIN: Duration = Duration::from_secs(2);

/// Recovery is due within one interval after the fault ends, plus the run that was in progress
/// (at most the report timeout), plus [`RECOVERY_MARGIN`].
pub fn recovery_limit() -> Duration {
    INTERVAL + REPORT_TIMEOUT + RECOVERY_MARGIN
}

/// Prints the figure the README quotes.
pub fn print_recovery(row: &str, took: Duration) {
    eprintln!("fault-matrix row={row} recovery_ms={}", took.as_millis());
}

/// `GET path` on the operator's health port.
pub async fn health(op: &Operator, path: &str) -> (u16, String) {
    http_get(op.health_addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The end of a fault: when, and how many runs the operator had logged by then.
#[derive(Debug, Clone, Copy)]
pub struct FaultEnd {
    pub at: Instant,
    pub runs: usize,
}

/// One row: its environment, the operator, and the complete report before the fault.
pub struct Row {
    pub name: &'static str,
    // Dropped in this order: the operator first, then the environment and its cleanup.
    pub op: Operator,
    pub env: Env,
    pub before: Value,
}

impl Row {
    /// The fixtures with helm-controller not ready, the operator with `opts`, its complete report
    /// and the transition's one Warning event and one POST, all before the fault: the fault must
    /// not make the operator announce the known failure again.
    pub async fn unhealthy(name: &'static str, opts: OperatorOpts) -> Row {
        let env = Env::with_flux(name).await;
        env.set_component_ready("helm-controller", false).await;
        let op = env.start_operator(opts).await;
        {
            let (env, receiver) = (&env, &op.receiver);
            eventually("the Warning event and its POST", soon(env), || async move {
                ensure(!instance_events(env, "Warning").await.is_empty(), || {
                    "no Warning event yet".into()
                })?;
                ensure(!receiver.posts().is_empty(), || "no POST yet".into())
            })
            .await;
        }
        // The FluxInstance now counts as failing (its status says so): the report before the
        // fault is one that shows it.
        let before = wait_full_report(&env, &[("FluxInstance", Stats::new(0, 1, 0, 0))]).await;
        Row {
            name,
            env,
            op,
            before,
        }
    }

    /// The fixtures, all healthy, the operator with `opts` and its complete report.
    pub async fn healthy(name: &'static str, opts: OperatorOpts) -> Row {
        let env = Env::with_flux(name).await;
        let op = env.start_operator(opts).await;
        let before = wait_full_report(&env, &[]).await;
        Row {
            name,
            env,
            op,
            before,
        }
    }

    /// Marks the end of the fault now.
    pub fn fault_ends(&self) -> FaultEnd {
        FaultEnd {
            at: Instant::now(),
            runs: self.op.runs().len(),
        }
    }

    /// Waits for a written report that is `Ready=False/ReportIncomplete` with each of `names`
    /// in its message and the same spec as before the fault (what failed kept its last good
    /// value, the rest is unchanged); checks the process is alive and ready. Returns the report.
    pub async fn incomplete(&self, names: &[&str]) -> Value {
        let report = self
            .env
            .wait_report(
                &format!("Ready=False naming {names:?}"),
                soon(&self.env),
                |r| {
                    self.op.assert_alive();
                    check_ready(r, "False", "ReportIncomplete")?;
                    let ready = ready_of(r);
                    let message = ready["message"].as_str().unwrap_or_default();
                    for name in names {
                        ensure(message.contains(name), || {
                            format!("the message does not name {name:?}")
                        })?;
                    }
                    ensure(r["spec"] == self.before["spec"], || {
                        "the spec is not the one before the fault".into()
                    })
                },
            )
            .await;
        eprintln!(
            "fault-matrix row={} ready={}",
            self.name,
            ready_of(&report)["message"]
        );
        self.assert_serving().await;
        report
    }

    /// Alive, `/readyz` 200 and `/healthz` 200.
    pub async fn assert_serving(&self) {
        self.op.assert_alive();
        for path in ["/readyz", "/healthz"] {
            let (code, body) = health(&self.op, path).await;
            assert_eq!(code, 200, "{path}: {body}");
        }
    }

    /// After the fault ended at `end`: waits for a complete run after it and a written report
    /// that is `Ready=True` and passes `check`; prints and returns the recovery time, which must
    /// be within [`recovery_limit`].
    pub async fn recovered_with<F>(&self, end: FaultEnd, check: F) -> Duration
    where
        F: Fn(&Value) -> Result<(), String>,
    {
        let limit = recovery_limit();
        let (op, env, check) = (&self.op, &self.env, &check);
        let took = eventually(
            "a complete report after the fault",
            limit + soon(env),
            || async move {
                op.assert_alive();
                let runs = op.runs();
                ensure(runs.len() > end.runs, || {
                    "no run since the fault ended".into()
                })?;
                let last = &runs[runs.len() - 1];
                ensure(last["level"] == "INFO", || format!("last run: {last}"))?;
                let report = env.report().await.ok_or("no FluxReport")?;
                check_ready(&report, "True", "Succeeded")?;
                check(&report)?;
                Ok(end.at.elapsed())
            },
        )
        .await;
        print_recovery(self.name, took);
        assert!(
            took <= limit,
            "{}: recovered in {took:?}, more than {limit:?}",
            self.name
        );
        self.assert_serving().await;
        took
    }

    /// [`Row::recovered_with`] the same spec as before the fault.
    pub async fn recovered(&self, end: FaultEnd) -> Duration {
        let before = &self.before["spec"];
        self.recovered_with(end, |r| {
            ensure(r["spec"] == *before, || {
                "the spec is not the one before the fault".into()
            })
        })
        .await
    }

    /// The proxy's fault injection (the proxy is started on first use).
    pub async fn faults(&self) -> &Faults {
        self.env.proxy().await.faults()
    }

    /// Waits until the proxy's fault `id` has hit `n` requests.
    pub async fn hit(&self, id: FaultId, n: u64, what: &str) {
        let faults = self.faults().await;
        eventually(what, soon(&self.env), || async move {
            let hits = faults.hits(id);
            ensure(hits >= n, || format!("{hits} hits"))
        })
        .await;
    }

    /// The usual row: while `faults` (injected in the proxy already) last, the runs are
    /// incomplete naming each of `names`; once they are removed, the report recovers and the one
    /// transition made before the fault was announced once.
    pub async fn incomplete_until_removed(&self, faults: &[FaultId], names: &[&str]) {
        self.incomplete(names).await;
        let end = self.fault_ends();
        let proxy = self.faults().await;
        for id in faults {
            proxy.remove(*id);
        }
        self.recovered(end).await;
        self.nothing_sent_twice().await;
    }

    /// Still the one Warning event (never re-emitted as a series) and the one POST of the
    /// transition made before the fault, and no Normal event.
    pub async fn nothing_sent_twice(&self) {
        let warnings = instance_events(&self.env, "Warning").await;
        assert_eq!(warnings.len(), 1, "one Warning event: {warnings:#?}");
        assert!(
            warnings[0]["series"].is_null(),
            "the Warning was emitted again: {:#}",
            warnings[0]
        );
        let normals = instance_events(&self.env, "Normal").await;
        assert!(normals.is_empty(), "no Normal event: {normals:#?}");
        let posts = self.op.receiver.posts();
        assert_eq!(posts.len(), 1, "one POST: {posts:#?}");
    }

    /// The `report run failed` / `not writing` / other log lines with this message.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.op.logged(message)
    }
}
