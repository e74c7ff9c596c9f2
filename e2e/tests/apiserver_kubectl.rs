//! The API server double driven by the real `kubectl` (a missing kubectl fails the tests with how
//! to install it: a silent pass would prove nothing). Every test runs its own server and its own
//! kubectl cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use flux_reporter_e2e::ApiServer;
use serde_json::Value;

const KUBECTL: &str = "/usr/bin/kubectl";

/// A CRD shaped like the project's FluxReport CRD: same group, names, printer columns (Entitlement
/// only with `-o wide`), status subresource and root CEL rule.
const FLUX_REPORT_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fluxreports.fluxcd.controlplane.io
spec:
  group: fluxcd.controlplane.io
  names:
    categories:
    - fluxcd
    kind: FluxReport
    listKind: FluxReportList
    plural: fluxreports
    singular: fluxreport
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - jsonPath: .spec.distribution.entitlement
      name: Entitlement
      priority: 10
      type: string
    - jsonPath: .metadata.creationTimestamp
      name: Age
      type: date
    - jsonPath: .status.conditions[?(@.type=="Ready")].status
      name: Ready
      type: string
    - jsonPath: .status.conditions[?(@.type=="Ready")].message
      name: Status
      type: string
    - jsonPath: .status.conditions[?(@.type=="Ready")].lastTransitionTime
      name: LastUpdated
      type: string
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - message: the only accepted name for a FluxReport is 'flux'
          rule: self.metadata.name == 'flux'
        properties:
          apiVersion:
            type: string
          kind:
            type: string
          metadata:
            type: object
          spec:
            type: object
            required:
            - distribution
            properties:
              distribution:
                type: object
                required:
                - entitlement
                - status
                properties:
                  entitlement:
                    type: string
                  status:
                    type: string
                  version:
                    type: string
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  required:
                  - lastTransitionTime
                  - message
                  - reason
                  - status
                  - type
                  properties:
                    lastTransitionTime:
                      type: string
                      format: date-time
                    message:
                      type: string
                    reason:
                      type: string
                    status:
                      type: string
                    type:
                      type: string
"#;

fn report(name: &str) -> String {
    format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxReport\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  distribution:\n    entitlement: Issued by controlplane\n    status: Installed\n    version: v2.6.0\n"
    )
}

/// A server, a kubeconfig for it and a private kubectl cache.
struct Kubectl {
    server: ApiServer,
    dir: PathBuf,
}

impl Kubectl {
    async fn start(test: &str) -> Result<Kubectl> {
        if !Path::new(KUBECTL).exists() {
            bail!("{test}: {KUBECTL} is not installed: apt-get install kubectl (.ci/run does it)");
        }
        let server = ApiServer::start().await?;
        let dir = std::env::temp_dir().join(format!(
            "apiserver-double-{test}-{}-{}",
            std::process::id(),
            server.addr().port()
        ));
        std::fs::create_dir_all(&dir)?;
        server.write_kubeconfig(&dir.join("kubeconfig"))?;
        Ok(Kubectl { server, dir })
    }

    fn file(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, content)?;
        Ok(path)
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .context("running kubectl")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.run(args)?;
        if !ok {
            bail!("kubectl {} failed: {err}{out}", args.join(" "));
        }
        Ok(out)
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Splits `kubectl get` output into rows of cells (columns are separated by 2+ spaces).
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crd_and_round_trips_a_flux_report() -> Result<()> {
    let k = Kubectl::start("roundtrip").await?;
    let crd = k.file("crd.yaml", FLUX_REPORT_CRD)?;
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        crd.to_str().context("path")?,
    ])?;
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/fluxreports.fluxcd.controlplane.io serverside-applied"
    );
    k.ok(&["create", "namespace", "flux-system"])?;
    let flux = k.file("flux.yaml", &report("flux"))?;
    let out = k.ok(&["create", "-f", flux.to_str().context("path")?])?;
    assert_eq!(out.trim(), "fluxreport.fluxcd.controlplane.io/flux created");

    let rows = table(&k.ok(&["get", "fluxreport", "-n", "flux-system"])?);
    assert_eq!(rows[0], ["NAME", "AGE", "READY", "STATUS", "LASTUPDATED"]);
    assert_eq!(rows[1][0], "flux");

    k.ok(&[
        "patch", "fluxreport", "flux", "-n", "flux-system", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Succeeded","message":"Reporting finished in 272ms","lastTransitionTime":"2026-11-22T05:25:10Z"}]}}"#,
    ])?;
    let rows = table(&k.ok(&["get", "fluxreport", "-n", "flux-system"])?);
    assert_eq!(rows[1][0], "flux");
    assert_eq!(
        rows[1][2..],
        [
            "True",
            "Reporting finished in 272ms",
            "2026-11-22T05:25:10Z"
        ]
    );
    let wide = table(&k.ok(&["get", "fluxreport", "-n", "flux-system", "-o", "wide"])?);
    assert_eq!(
        wide[0],
        [
            "NAME",
            "ENTITLEMENT",
            "AGE",
            "READY",
            "STATUS",
            "LASTUPDATED"
        ]
    );
    assert_eq!(wide[1][1], "Issued by controlplane");
    let by_category = table(&k.ok(&["get", "fluxcd", "-n", "flux-system"])?);
    assert_eq!(
        by_category[1][0], "flux",
        "the fluxcd category resolves to FluxReport"
    );

    let yaml = k.ok(&[
        "get",
        "fluxreport",
        "flux",
        "-n",
        "flux-system",
        "-o",
        "yaml",
    ])?;
    let got: Value = serde_saphyr::from_str(&yaml)?;
    let sent: Value = serde_saphyr::from_str(&report("flux"))?;
    assert_eq!(got["spec"], sent["spec"]);
    assert_eq!(got["status"]["conditions"][0]["reason"], "Succeeded");
    assert_eq!(got["metadata"]["generation"], 1);

    // Apply the same object again: unchanged, and kubectl says so the way it does for a real server.
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        flux.to_str().context("path")?,
    ])?;
    assert_eq!(
        out.trim(),
        "fluxreport.fluxcd.controlplane.io/flux serverside-applied"
    );

    let out = k.ok(&["delete", "fluxreport", "flux", "-n", "flux-system"])?;
    assert_eq!(
        out.trim(),
        "fluxreport.fluxcd.controlplane.io \"flux\" deleted"
    );
    let (_, out, err) = k.run(&["get", "fluxreport", "-n", "flux-system"])?;
    assert_eq!(
        (out.trim(), err.trim()),
        ("", "No resources found in flux-system namespace.")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_of_another_name_fails_with_the_cel_message() -> Result<()> {
    let k = Kubectl::start("cel").await?;
    let crd = k.file("crd.yaml", FLUX_REPORT_CRD)?;
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        crd.to_str().context("path")?,
    ])?;
    let other = k.file("other.yaml", &report("other"))?;
    let (ok, _, err) = k.run(&["create", "-f", other.to_str().context("path")?])?;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The FluxReport \"other\" is invalid: <nil>: Invalid value: \"object\": the only accepted name for a FluxReport is 'flux'"
    );
    let (ok, _, err) = k.run(&[
        "patch",
        "fluxreport",
        "flux",
        "-n",
        "flux-system",
        "-p",
        r#"{"spec":{}}"#,
    ])?;
    assert!(!ok);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_built_in_objects_with_protobuf_bodies() -> Result<()> {
    let k = Kubectl::start("builtins").await?;
    k.ok(&["create", "namespace", "flux-system"])?;
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "flux-system",
        "--from-literal=interval=5m",
    ])?;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "flux-operator-entitlement",
        "-n",
        "flux-system",
        "--from-literal=vendor=controlplane",
    ])?;
    k.ok(&[
        "create",
        "serviceaccount",
        "flux-reporter",
        "-n",
        "flux-system",
    ])?;
    let ns = k
        .server
        .get("v1", "Namespace", None, "flux-system")
        .context("namespace")?;
    assert_eq!(ns["status"]["phase"], "Active");
    let cm = k
        .server
        .get("v1", "ConfigMap", Some("flux-system"), "settings")
        .context("configmap")?;
    assert_eq!(cm["data"]["interval"], "5m");
    let secret = k
        .server
        .get(
            "v1",
            "Secret",
            Some("flux-system"),
            "flux-operator-entitlement",
        )
        .context("secret")?;
    assert_eq!(
        (secret["data"]["vendor"].clone(), secret["type"].clone()),
        (
            serde_json::json!("Y29udHJvbHBsYW5l"),
            serde_json::json!("Opaque")
        )
    );
    let rows = table(&k.ok(&[
        "get",
        "configmap,secret,serviceaccount",
        "-n",
        "flux-system",
    ])?);
    assert!(rows.iter().any(|r| {
        r.first()
            .is_some_and(|c| c == "secret/flux-operator-entitlement")
    }));
    let lease = k.file("lease.yaml", "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: flux-reporter\n  namespace: flux-system\nspec:\n  holderIdentity: pod-a\n  leaseDurationSeconds: 15\n")?;
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        lease.to_str().context("path")?,
    ])?;
    let rows = table(&k.ok(&["get", "leases", "-n", "flux-system"])?);
    assert_eq!(rows[0], ["NAME", "HOLDER", "AGE"]);
    assert_eq!(rows[1][..2], ["flux-reporter", "pod-a"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_projects_crds() -> Result<()> {
    let bases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crd/bases");
    let report_crd = bases.join("fluxcd.controlplane.io_fluxreports.yaml");
    if !report_crd.exists() {
        bail!("{} is missing", report_crd.display());
    }
    let k = Kubectl::start("project-crds").await?;
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        bases.to_str().context("path")?,
    ])?;
    let crds = table(&k.ok(&["get", "crd"])?);
    assert!(crds.iter().any(|r| {
        r.first()
            .is_some_and(|c| c == "fluxreports.fluxcd.controlplane.io")
    }));
    k.ok(&["create", "namespace", "flux-system"])?;
    let flux = k.file("flux.yaml", &report("flux"))?;
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        flux.to_str().context("path")?,
    ])?;
    let rows = table(&k.ok(&["get", "fluxreport", "-n", "flux-system", "-o", "wide"])?);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "ENTITLEMENT",
            "AGE",
            "READY",
            "STATUS",
            "LASTUPDATED"
        ]
    );
    assert_eq!(rows[1][..2], ["flux", "Issued by controlplane"]);
    let other = k.file("other.yaml", &report("other"))?;
    let (ok, _, err) = k.run(&[
        "apply",
        "--server-side",
        "-f",
        other.to_str().context("path")?,
    ])?;
    assert!(!ok);
    assert!(
        err.contains("the only accepted name for a FluxReport is 'flux'"),
        "{err}"
    );
    Ok(())
}
