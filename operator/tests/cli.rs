//! The binary's contract, run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flux-reporter"))
        .args(args)
        .current_dir(repo())
        .env_remove("KUBECONFIG")
        .output()
        .expect("flux-reporter runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn crds_prints_the_same_bytes_as_config_crd_bases() {
    let out = run(&["crds"]);
    assert!(out.status.success());
    let mut files: Vec<_> = std::fs::read_dir(repo().join("config/crd/bases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let committed: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(stdout(&out), committed);
}

#[test]
fn report_from_the_sample_dump_prints_a_fluxreport() {
    let out = run(&["report", "--from", "examples/flux-cluster-dump.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_saphyr::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["kind"], "FluxReport");
    assert_eq!(report["metadata"]["name"], "flux");
    assert_eq!(report["spec"]["distribution"]["version"], "v2.7.3");
    assert_eq!(
        report["spec"]["sync"]["source"],
        "https://github.com/example-org/fleet-infra.git"
    );
    assert_eq!(report["status"]["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn report_json_output() {
    let out = run(&[
        "report",
        "--from",
        "examples/flux-cluster-dump.yaml",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["apiVersion"], "fluxcd.controlplane.io/v1");
}

#[test]
fn stats_from_the_sample_dump() {
    let out = run(&["stats", "--from", "examples/flux-cluster-dump.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("RECONCILERS"), "{text}");
    let git = text
        .lines()
        .find(|l| l.starts_with("GitRepository"))
        .unwrap();
    assert_eq!(
        git.split_whitespace().collect::<Vec<_>>(),
        ["GitRepository", "4", "1", "2", "2.8", "MiB"]
    );
    let ks = text
        .lines()
        .find(|l| l.starts_with("Kustomization"))
        .unwrap();
    assert!(ks.trim_end().ends_with('-'), "{ks}");
}

#[test]
fn check_on_the_sample_dump_is_unhealthy_and_names_failing_objects() {
    let out = run(&["check", "--from", "examples/flux-cluster-dump.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("image-automation-controller: InProgress Available: 0/1"),
        "{text}"
    );
    assert!(text.contains("HelmRelease "), "{text}");
    assert!(
        text.trim_end()
            .ends_with("\nunhealthy: 10 failing objects, 1 component not ready"),
        "{text}"
    );
}

#[test]
fn a_missing_dump_file_is_a_one_line_error() {
    let out = run(&["report", "--from", "does-not-exist.yaml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does-not-exist.yaml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_could_not_tell_exits_2() {
    let out = run(&["check", "--from", "does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_wrong_flag_is_rejected_with_usage() {
    let out = run(&["report", "--output", "xml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("xml"), "{}", stderr(&out));
}

#[test]
fn version_client_only() {
    let out = run(&["version", "--client"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("client: v{}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn report_reads_a_dump_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let dump = std::fs::read(repo().join("examples/flux-cluster-dump.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flux-reporter"))
        .args(["report", "--from", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&dump).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["spec"]["distribution"]["managedBy"],
        "flux bootstrap"
    );
}

#[test]
fn a_bad_reporting_interval_is_rejected_at_start() {
    let out = run(&["run", "--reporting-interval", "soon"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid duration \"soon\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_list_concurrency_below_one_is_rejected_by_every_command() {
    for command in ["report", "stats", "check", "run"] {
        let out = run(&[command, "--list-concurrency", "0"]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--list-concurrency") && err.contains("must be at least 1"),
            "{command}: {err}"
        );
    }
    // The environment variable is read and checked the same way.
    let out = Command::new(env!("CARGO_BIN_EXE_flux-reporter"))
        .args(["report"])
        .env("LIST_CONCURRENCY", "four")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"four\" is not a number of kinds to list at once"),
        "{}",
        stderr(&out)
    );
}

/// Runs the binary with its stdout a pipe whose reading end is already closed
/// (`flux-reporter … | true` where `true` has gone).
fn run_into_a_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_flux-reporter"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUNTIME_NAMESPACE")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run flux-reporter");
    child.wait_with_output().expect("wait for flux-reporter")
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    for args in [
        vec!["version", "--client"],
        vec!["crds"],
        vec!["report", "--from", "examples/flux-cluster-dump.yaml"],
        vec!["stats", "--from", "examples/flux-cluster-dump.yaml"],
    ] {
        let out = run_into_a_closed_pipe(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("Broken pipe"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn report_html_from_the_sample_dump_is_one_self_contained_status_page() {
    let out = run(&[
        "report",
        "--from",
        "examples/flux-cluster-dump.yaml",
        "-o",
        "html",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = stdout(&out);
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..100]);
    // Self-contained: inline CSS under a CSP that allows nothing else; no
    // script, no stylesheet, image or font to fetch, no form to submit.
    assert!(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; style-src &#39;sha256-"));
    for fetch in ["<script", "<link", "src=", "url(", "@import", "<form"] {
        assert!(!html.contains(fetch), "{fetch}");
    }
    // Overview: the failing component, the FluxInstance verified as the
    // operator verifies it, the sync, the reconcilers with the report's counts.
    assert!(html.contains("<td>image-automation-controller</td><td><span class=\"badge b-bad\">False</span></td><td>InProgress Available: 0/1</td>"), "component");
    assert!(
        html.contains("ComponentsNotReady"),
        "FluxInstance verification"
    );
    assert!(
        html.contains(
            "component image-automation-controller is not ready: InProgress Available: 0/1"
        )
    );
    assert!(
        html.contains("https://github.com/example-org/fleet-infra.git"),
        "sync source"
    );
    assert!(
        html.contains("Failing (10)"),
        "as many failing as the FluxReport counts"
    );
    assert!(
        html.contains("10 failing objects</a> and 3 waiting on a dependency, in 9 root causes")
    );
    // Failing, by root cause: the ImagePolicy waits on the ImageRepository
    // that cannot authenticate, and is listed under it.
    let repo = html
        .find("<span class=\"badge b-info\">ImageRepository</span><span class=\"who\"><a href=\"#o")
        .expect("the ImageRepository is a root cause");
    let group = &html[repo..html[repo..].find("</section>").map(|e| repo + e).unwrap()];
    assert!(group.contains("team-a/frontend"), "{group}");
    assert!(
        group.contains("1 object fails or waits because of it"),
        "{group}"
    );
    assert!(
        group.contains("<td>ImagePolicy</td><td>team-a</td>"),
        "{group}"
    );
    // Every object is in the file, by kind, each with its details.
    assert_eq!(
        html.matches("<div class=\"obj\" id=\"o").count(),
        61,
        "60 Flux objects and the FluxInstance"
    );
    assert!(html.contains("<h3 id=\"k-GitRepository\">GitRepository (6)</h3>"));
}
