//! The real `flux-reporter run` process: started with free ports and a log file, read through its
//! JSON log lines and its `/metrics`, stopped with SIGTERM by a test or SIGKILL on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::prom::{self, Sample};
use flux_reporter_e2e::Receiver;

/// The binary under test.
pub fn binary() -> PathBuf {
    flux_reporter_e2e::fixtures::flux_reporter_bin()
}

/// A free port on 127.0.0.1: bind, read the port, let go.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address")
}

/// How to start one replica.
#[derive(Debug, Clone)]
pub struct OperatorOpts {
    /// `--reporting-interval`.
    pub interval: String,
    pub leader_elect: bool,
    /// `POD_NAME` (the event reporting instance and the base of the lease identity).
    pub pod_name: String,
    /// Run under the project's own RBAC (`config/rbac`, a ServiceAccount token). Default:
    /// `E2E_RBAC=1`.
    pub project_rbac: Option<bool>,
    /// Reach the API server through the test's fault-injecting proxy (`Env::proxy`).
    pub through_proxy: bool,
    /// Directories under `config/` whose RBAC objects are applied beside `config/rbac` when the
    /// operator runs under the project RBAC (e.g. `metrics-secure`).
    pub rbac_components: Vec<&'static str>,
    /// More flags for `flux-reporter run`.
    pub args: Vec<String>,
}

impl OperatorOpts {
    pub fn every(interval: &str) -> OperatorOpts {
        OperatorOpts {
            interval: interval.to_string(),
            leader_elect: false,
            pod_name: "flux-reporter-e2e".into(),
            project_rbac: None,
            through_proxy: false,
            rbac_components: Vec::new(),
            args: Vec::new(),
        }
    }

    /// One more flag and its value.
    pub fn arg(mut self, flag: &str, value: &str) -> OperatorOpts {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    /// Through the test's fault-injecting proxy.
    pub fn through_proxy(mut self) -> OperatorOpts {
        self.through_proxy = true;
        self
    }

    pub fn leader_elect(mut self, pod_name: &str) -> OperatorOpts {
        self.leader_elect = true;
        self.pod_name = pod_name.to_string();
        self
    }
}

pub struct Operator {
    pub name: String,
    child: Arc<Mutex<Child>>,
    pub pid: u32,
    log: PathBuf,
    pub metrics_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// The status page (`--web-addr`).
    pub web_addr: SocketAddr,
    /// The notification receiver this replica forwards events to.
    pub receiver: Receiver,
    exited: Mutex<Option<ExitStatus>>,
}

impl Operator {
    /// Starts `flux-reporter run` in `namespace` with this kubeconfig; its stdout and stderr go
    /// to `<dir>/<pod_name>.log`.
    pub async fn start(
        kubeconfig: &Path,
        namespace: &str,
        dir: &Path,
        opts: &OperatorOpts,
    ) -> Operator {
        let receiver = Receiver::start()
            .await
            .expect("start the notification receiver");
        let metrics_addr = free_addr();
        let health_addr = free_addr();
        let web_addr = free_addr();
        let log = dir.join(format!("{}.log", opts.pod_name));
        let out = File::create(&log).expect("create the operator log");
        let err = out.try_clone().expect("clone the log handle");
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--namespace")
            .arg(namespace)
            .arg("--reporting-interval")
            .arg(&opts.interval)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--health-addr")
            .arg(health_addr.to_string())
            .arg("--web-addr")
            .arg(web_addr.to_string())
            .arg("--events-addr")
            .arg(receiver.url())
            .arg("--log-format")
            .arg("json")
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", &opts.pod_name)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if opts.leader_elect {
            cmd.arg("--leader-elect");
        }
        cmd.args(&opts.args);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        Operator {
            name: opts.pod_name.clone(),
            pid: child.id(),
            child: Arc::new(Mutex::new(child)),
            log,
            metrics_addr,
            health_addr,
            web_addr,
            receiver,
            exited: Mutex::new(None),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines (anything else the process printed is skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The log lines with this message.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["message"].as_str() == Some(message))
            .collect()
    }

    /// The "report computed" lines: one per report run.
    pub fn runs(&self) -> Vec<Value> {
        self.logged("report computed")
    }

    /// The resident set size of the process in KiB (`VmRSS` in `/proc/<pid>/status`); `None`
    /// once it has exited or where there is no `/proc`. The harness spawns the operator on this
    /// machine, so this works against a real cluster too.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Panics, with the log, when the process has exited: a crash is not a timeout.
    pub fn assert_alive(&self) {
        if let Ok(Some(status)) = self.try_wait() {
            panic!(
                "{} exited early with {status}; log:\n{}",
                self.name,
                self.log_text()
            );
        }
    }

    /// The samples of `/metrics` with this name.
    pub async fn metric(&self, name: &str) -> Result<Vec<Sample>, String> {
        let (code, body) = prom::http_get(self.metrics_addr, "/metrics").await?;
        if code != 200 {
            return Err(format!("GET /metrics answered {code}: {body}"));
        }
        Ok(prom::parse(&body)?
            .into_iter()
            .filter(|s| s.name == name)
            .collect())
    }

    fn try_wait(&self) -> std::io::Result<Option<ExitStatus>> {
        let mut exited = lock(&self.exited);
        if exited.is_none() {
            *exited = lock(&self.child).try_wait()?;
        }
        Ok(*exited)
    }

    /// Sends SIGTERM, as the kubelet does when a pod stops.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
    }

    /// Waits for the process to exit: its status, or `None` after `timeout`.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait().expect("poll the operator") {
                return Some(status);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Operator {
    /// The process, for [`Env`](super::Env) to stop it before its cleanup: an operator still
    /// running then would re-create its FluxReport in a namespace being removed.
    pub(crate) fn process(&self) -> std::sync::Weak<Mutex<Child>> {
        Arc::downgrade(&self.child)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if !matches!(self.try_wait(), Ok(Some(_))) {
            let mut child = lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "----- log of {} ({}; last {} lines) -----\n{}\n----- end of log of {} -----",
                self.name,
                self.log.display(),
                tail.len(),
                tail.join("\n"),
                self.name
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
