//! The status page in a real browser: headless Chromium loads the file that
//! `report -o html` writes and the pages the operator's server serves (from a
//! synthetic snapshot on loopback, no cluster), through
//! `hack/browser-check.sh`, and checks what a person would see. Needs
//! Chromium (`apt-get install -y chromium`; `.ci/run` installs it): without
//! it these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use flux_reporter::web::Published;
use flux_reporter::web::fixture::{Obj, snapshot};
use flux_reporter::web::server::{Limits, serve};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `hack/browser-check.sh URL ARGS…`; panics with its output unless every check held.
fn browser_check(url: &str, args: &[&str]) {
    let out = Command::new(repo().join("hack/browser-check.sh"))
        .arg(url)
        .args(args)
        .output()
        .expect("hack/browser-check.sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{url}:\n{text}");
}

fn report_html(dump: &Path, out: &Path) {
    let result = Command::new(env!("CARGO_BIN_EXE_flux-reporter"))
        .args(["report", "--from"])
        .arg(dump)
        .args(["-o", "html"])
        .current_dir(repo())
        .env_remove("KUBECONFIG")
        .output()
        .expect("flux-reporter runs");
    assert!(
        !result.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::write(out, &result.stdout).unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flux-reporter-browser-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_file_from_the_sample_dump_shows_the_failing_component_objects_and_root_causes() {
    let dir = temp_dir("sample");
    let file = dir.join("flux.html");
    report_html(&repo().join("examples/flux-cluster-dump.yaml"), &file);
    let url = format!("file://{}", file.display());
    browser_check(
        &url,
        &[
            "--text",
            "image-automation-controller False InProgress Available: 0/1",
            "--text",
            "ComponentsNotReady",
            // The counts are the FluxReport's: 10 failing, as `check` and the reconcilers say.
            "--text",
            "Failing (10)",
            "--text",
            "10 failing objects and 3 waiting on a dependency, in 9 root causes",
            "--text",
            "HelmRelease helm.toolkit.fluxcd.io/v2 6 2 1",
            "--no-element",
            "script",
            "--no-element",
            "img",
        ],
    );
    // The failing section: a root cause with its dependant.
    browser_check(
        &format!("{url}#failing"),
        &[
            "--text",
            "ImageRepository team-a/frontend failing AuthenticationFailed",
            "--text",
            "1 object fails or waits because of it",
            "--text",
            "ImagePolicy team-a frontend waiting DependencyNotReady",
            "--text",
            "HelmRelease team-b payments waiting DependencyNotReady",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const HOSTILE_DUMP: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: apiextensions.k8s.io/v1
  kind: CustomResourceDefinition
  metadata:
    name: gitrepositories.source.toolkit.fluxcd.io
    labels: {app.kubernetes.io/part-of: flux, app.kubernetes.io/version: v2.7.3}
  spec:
    group: source.toolkit.fluxcd.io
    names: {kind: GitRepository, plural: gitrepositories}
    scope: Namespaced
    versions: [{name: v1, served: true, storage: true}]
  status: {storedVersions: [v1]}
- apiVersion: source.toolkit.fluxcd.io/v1
  kind: GitRepository
  metadata: {name: "evil\"><script>alert(2)</script>", namespace: apps, uid: u1}
  spec: {url: "https://user:s3cr3t@git.example.com/org/repo.git"}
  status:
    conditions:
    - type: Ready
      status: "False"
      reason: GitOperationFailed
      message: "<img src=x onerror=alert(1)>"
      lastTransitionTime: "2026-11-21T14:00:00Z"
"#;

#[test]
fn a_message_that_is_markup_is_shown_as_text_and_credentials_are_masked() {
    let dir = temp_dir("hostile");
    let dump = dir.join("dump.yaml");
    std::fs::write(&dump, HOSTILE_DUMP).unwrap();
    let file = dir.join("flux.html");
    report_html(&dump, &file);
    browser_check(
        &format!("file://{}#failing", file.display()),
        &[
            "--text",
            "<img src=x onerror=alert(1)>",
            "--text",
            "apps/evil\"><script>alert(2)</script>",
            "--text",
            "https://***@git.example.com/org/repo.git",
            "--no-text",
            "s3cr3t",
            "--no-element",
            "img",
            "--no-element",
            "script",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_served_pages_work_in_a_browser_and_a_filter_is_a_url() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let published = Arc::new(Published::new());
    let t = 1_800_000_000;
    published.store(snapshot(
        &[
            Obj::new("GitRepository", "apps", "fleet")
                .failing("GitOperationFailed", "<img src=x onerror=alert(1)>")
                .since(t - 600),
            Obj::new("Kustomization", "apps", "web")
                .source("GitRepository", "apps", "fleet")
                .failing("ArtifactFailed", "artifact not found")
                .since(t - 60),
            Obj::new("Kustomization", "apps", "jobs")
                .depends_on("Kustomization", "apps", "web")
                .waiting()
                .since(t - 30),
            Obj::new("Kustomization", "team-a", "quiet"),
        ],
        t,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve(listener, published, Limits::default(), async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    browser_check(
        &format!("{base}/failing"),
        &[
            "--text",
            "Failing (2)",
            "--text",
            "GitRepository apps/fleet failing GitOperationFailed",
            "--text",
            "<img src=x onerror=alert(1)>",
            "--text",
            "2 objects fail or wait because of it",
            "--no-element",
            "img",
            // Our one script, from our own origin.
            "--dom",
            "<script src=\"/static/refresh.js\" defer=\"\"></script>",
        ],
    );
    browser_check(
        &format!("{base}/objects?kind=Kustomization&failing=false&q=quiet"),
        &[
            "--text",
            "Objects 1–1 of 1",
            "--text",
            "Kustomization team-a quiet",
            "--no-text",
            "apps web",
            // The form shows the filter it came from.
            "--dom",
            "<option value=\"Kustomization\" selected=\"\">",
        ],
    );
    browser_check(
        &format!("{base}/objects/Kustomization/apps/jobs"),
        &[
            "--text",
            "Root cause GitRepository apps/fleet",
            "--text",
            "Depends on Kustomization apps/web",
        ],
    );
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
}
