//! An API server that accepts connections and never answers: the one-shot commands fail fast with
//! one clear line, the operator logs the silence, keeps the previous report, fails `/healthz`
//! once no run gets through for the documented limit, recovers by itself, and stops quickly on
//! SIGTERM.
//!
//! The silent server is a bare socket (the TLS case: the handshake never completes), the test's
//! fault-injecting proxy in front of the real API server with its `mute` fault (TLS completes, the
//! request is read and never answered), or a TCP proxy in front of the real API server that goes
//! mute mid-test (`flux_reporter_e2e::MuteProxy`).
//!
//! Build the binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::prom::http_get;
use common::{Env, Operator, OperatorOpts, condition, ensure, eventually};
use flux_reporter_e2e::{Fault, MuteProxy};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::Value;
use tokio::net::TcpListener;

/// A socket that accepts connections and never says a word (nor reads a byte).
async fn mute_socket() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mute\n  cluster:\n    server: {server}\n    \
             insecure-skip-tls-verify: true\ncontexts:\n- name: mute\n  context: {{cluster: mute, user: u}}\n\
             current-context: mute\nusers:\n- name: u\n  user: {{token: any}}\n"
        ),
    )
    .unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flux-reporter-{name}-{}", std::process::id()))
}

/// Runs the binary off the async runtime; returns its output and how long it took.
async fn run(kubeconfig: &Path, args: &[&str]) -> (Output, Duration) {
    let bin = flux_reporter_e2e::fixtures::flux_reporter_bin();
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUNTIME_NAMESPACE")
            .env_remove("REQUEST_TIMEOUT")
            .env_remove("CONNECT_TIMEOUT")
            .output()
            .expect("run flux-reporter");
        (out, started.elapsed())
    })
    .await
    .unwrap()
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn report_against_a_mute_tls_socket_exits_2_within_the_connect_timeout_naming_the_server() {
    let addr = mute_socket().await;
    let server = format!("https://{addr}");
    let kubeconfig = write_kubeconfig(&temp_dir("mute-tls"), &server);
    // The defaults: a 10s connect timeout (the TLS handshake never completes).
    let (out, took) = run(&kubeconfig, &["report"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            "error: the Kubernetes API server {server}/ did not answer within 10s \
             (--connect-timeout 10s, --request-timeout 30s)"
        )
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_check_and_version_exit_2_against_a_mute_server_naming_the_server_and_the_timeout() {
    let env = Env::new("stats_check_and_version_exit_2_against_mute").await;
    let proxy = env.proxy().await;
    // Every request is read and never answered (the TLS handshake completes).
    let mute = proxy.faults().inject(Fault::mute());
    let kubeconfig = env.proxied_kubeconfig(&env.kubeconfig).await;
    for command in ["stats", "check", "version", "report"] {
        let (out, took) = run(
            &kubeconfig,
            &[
                command,
                "--namespace",
                &env.ns,
                "--request-timeout",
                "2s",
                "--connect-timeout",
                "2s",
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{command}: one line: {lines:#?}");
        let expected = format!(
            "error: the Kubernetes API server {}/ did not answer within 2s \
             (--connect-timeout 2s, --request-timeout 2s)",
            proxy.url()
        );
        assert_eq!(lines[0], expected, "{command}");
        assert!(took < Duration::from_secs(10), "{command}: {took:?}");
    }
    assert!(proxy.faults().hits(mute) >= 4, "every command asked");
}

/// The path-scoped `mute` fault of the proxy (e2e/src/proxy): requests on its path are read and
/// never answered, the rest go to the real server as usual, and once it is removed the path
/// answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_mute_fault_answers_nothing_on_its_path_and_the_rest_as_usual() {
    let env = Env::new("the_proxy_mute_fault_answers_nothing").await;
    let proxy = env.proxy().await;
    let fault = proxy
        .faults()
        .inject(Fault::mute().path_prefix("/apis/apps/v1"));
    let kc = kube::config::Kubeconfig::read_from(env.proxied_kubeconfig(&env.kubeconfig).await)
        .expect("the proxied kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("a client config");
    let client = kube::Client::try_from(config).expect("a client");
    let version = client.apiserver_version().await.expect("/version answers");
    assert!(!version.git_version.is_empty());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &env.ns);
    config_maps
        .list(&ListParams::default())
        .await
        .expect("another path answers");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &env.ns);
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        deployments.list(&ListParams::default()),
    )
    .await;
    assert!(answer.is_err(), "the mute path answered: {answer:?}");
    assert_eq!(proxy.faults().hits(fault), 1);
    let path = format!("/apis/apps/v1/namespaces/{}/deployments", env.ns);
    let recorded = proxy
        .requests()
        .into_iter()
        .find(|r| r.path == path)
        .expect("the mute request is recorded");
    assert_eq!(recorded.status, 0, "recorded without an answer");

    proxy.faults().remove(fault);
    let list = deployments
        .list(&ListParams::default())
        .await
        .expect("the path answers once the fault is removed");
    assert!(list.items.is_empty());
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.path == path && r.status == 200),
        "answered by the server"
    );
}

/// The operator flags of the operator scenarios: a 2s interval, 2s timeouts and a 6s report
/// timeout (room for one request timeout and the /version probe), so the liveness limit is
/// 3 x 2s + 6s = 12s.
fn impatient() -> OperatorOpts {
    OperatorOpts::every("2s")
        .arg("--request-timeout", "2s")
        .arg("--connect-timeout", "2s")
        .arg("--report-timeout", "6s")
}

fn ready_of(obj: &Value) -> Value {
    condition(obj, "Ready").cloned().unwrap_or(Value::Null)
}

async fn health(op: &Operator, path: &str) -> (u16, String) {
    http_get(op.health_addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The "report computed" lines logged at warn level (an incomplete run).
fn incomplete_runs(op: &Operator) -> Vec<Value> {
    op.runs()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect()
}

async fn wait_complete_report(env: &Env, op: &Operator, after: Option<&str>) -> Value {
    let after = after.map(str::to_string);
    eventually("a complete report written", Duration::from_secs(60), || {
        let after = after.clone();
        async move {
            op.assert_alive();
            let r = env.report().await.ok_or("no FluxReport")?;
            let ready = ready_of(&r);
            ensure(ready["status"] == "True", || format!("Ready {ready}"))?;
            let at = ready["lastTransitionTime"].as_str().unwrap_or_default();
            ensure(after.as_deref().is_none_or(|a| at > a), || {
                format!("Ready from {at}, before {after:?}")
            })?;
            Ok(r)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_api_server_is_logged_fails_healthz_keeps_the_report_and_recovery_is_automatic() {
    let env = Env::with_flux("a_mute_api_server_is_logged_fails_healthz").await;
    let env = &env;
    let proxy = MuteProxy::start(&env.api_upstream()).await.unwrap();
    let op = env.start_operator_through(&proxy, impatient()).await;
    let op = &op;
    let before = wait_complete_report(env, op, None).await;
    assert_eq!(health(op, "/healthz").await.0, 200);

    proxy.set_muted(true);
    let muted_at = Instant::now();
    let warned_before = incomplete_runs(op).len();
    // Within two intervals plus one request timeout and the /version probe.
    let warning = eventually(
        "a warn-level run naming the silent server",
        // (with 4 s to spare for a loaded machine).
        Duration::from_secs(2 * 2 + 2 + 2 + 4),
        || async move {
            op.assert_alive();
            let runs = incomplete_runs(op);
            ensure(runs.len() > warned_before, || {
                "no incomplete run yet".into()
            })?;
            Ok(runs[runs.len() - 1].clone())
        },
    )
    .await;
    let failures = warning["failures"].as_str().unwrap_or_default();
    assert!(
        failures.contains("the Kubernetes API server does not answer"),
        "{warning}"
    );
    let (code, body) = eventually(
        "/healthz failing",
        Duration::from_secs(12 + 5),
        || async move {
            let (code, body) = health(op, "/healthz").await;
            ensure(code != 200, || format!("still {code} {body}"))?;
            Ok((code, body))
        },
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no report run has reached the Kubernetes API server"),
        "{body}"
    );
    // The last progress came at most one interval and one run before the mute.
    assert!(
        muted_at.elapsed() >= Duration::from_secs(12 - 3),
        "failed before the 12s limit: {:?}",
        muted_at.elapsed()
    );
    // Ready keeps its meaning (a report was computed) and the report is untouched.
    assert_eq!(health(op, "/readyz").await.0, 200);
    let during = env.report().await.expect("the FluxReport stays");
    assert_eq!(during["spec"], before["spec"]);
    assert_eq!(ready_of(&during), ready_of(&before));

    proxy.set_muted(false);
    let last = ready_of(&during)["lastTransitionTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let after = wait_complete_report(env, op, Some(&last)).await;
    assert_eq!(after["spec"]["reconcilers"], before["spec"]["reconcilers"]);
    eventually(
        "/healthz passing again",
        Duration::from_secs(10),
        || async move {
            let (code, body) = health(op, "/healthz").await;
            ensure(code == 200, || format!("{code} {body}"))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_operator_within_seconds_while_a_request_hangs() {
    let env = Env::with_flux("sigterm_ends_the_operator_while_a_request_hangs").await;
    let env = &env;
    let proxy = MuteProxy::start(&env.api_upstream()).await.unwrap();
    // Default timeouts: a hanging request would take 30 s to give up.
    let op = env
        .start_operator_through(&proxy, OperatorOpts::every("1s"))
        .await;
    wait_complete_report(env, &op, None).await;
    proxy.set_muted(true);
    // A run starts within the interval and hangs on its first request.
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.assert_alive();
    let started = Instant::now();
    op.terminate();
    let status = op
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exited within 10s of SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
