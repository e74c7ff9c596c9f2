//! The engine on the shipped sample dump gives, field by field, what the
//! Flux Operator's reporter rules give (the expected values are worked out by hand in
//! examples/README.md).

mod common;

use std::path::PathBuf;

use flux_reporter_report::Outcome;
use flux_reporter_report::source::dump::DumpSource;

fn sample() -> Outcome {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/flux-cluster-dump.yaml");
    let dump = DumpSource::load(&path).unwrap();
    assert!(dump.warnings().is_empty(), "{:?}", dump.warnings());
    common::run(&dump)
}

#[test]
fn sample_dump_is_read_without_failures_or_malformed_objects() {
    let o = sample();
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(o.malformed_total, 0, "{:?}", o.malformed);
    assert_eq!(o.objects, 61, "60 Flux objects and one FluxInstance");
    assert_eq!(o.readiness().reason, "Succeeded");
}

#[test]
fn sample_distribution_and_cluster() {
    let o = sample();
    let d = &o.spec.distribution;
    assert_eq!(
        (
            d.status.as_str(),
            d.version.as_deref(),
            d.managed_by.as_deref(),
            d.entitlement.as_str()
        ),
        (
            "Installed",
            Some("v2.7.3"),
            Some("flux bootstrap"),
            "Unknown"
        )
    );
    let c = o.spec.cluster.as_ref().unwrap();
    assert_eq!(
        (c.server_version.as_str(), c.platform.as_str(), c.nodes),
        ("v1.33.4", "linux/amd64", 3)
    );
    assert_eq!(o.spec.operator.as_ref().unwrap().version, "v0.0.0-test");
}

#[test]
fn sample_components() {
    let o = sample();
    let got: Vec<_> = o
        .spec
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.ready, c.status.as_str()))
        .collect();
    let current = "Current Deployment is available. Replicas: 1";
    assert_eq!(
        got,
        [
            ("helm-controller", true, current),
            (
                "image-automation-controller",
                false,
                "InProgress Available: 0/1"
            ),
            ("image-reflector-controller", true, current),
            ("kustomize-controller", true, current),
            ("notification-controller", true, current),
            ("source-controller", true, current),
        ]
    );
    assert!(
        o.spec.components[0]
            .image
            .starts_with("ghcr.io/fluxcd/helm-controller:v1.4.3@sha256:")
    );
}

#[test]
fn sample_reconcilers() {
    let o = sample();
    let got: Vec<_> = o
        .spec
        .reconcilers
        .iter()
        .map(|r| {
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.stats.running,
                r.stats.failing,
                r.stats.suspended,
                r.stats.total_size.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("fluxcd.controlplane.io/v1", "FluxInstance", 1, 0, 0, ""),
            ("helm.toolkit.fluxcd.io/v2", "HelmRelease", 6, 2, 1, ""),
            ("image.toolkit.fluxcd.io/v1", "ImagePolicy", 3, 0, 0, ""),
            ("image.toolkit.fluxcd.io/v1", "ImageRepository", 3, 1, 0, ""),
            (
                "image.toolkit.fluxcd.io/v1",
                "ImageUpdateAutomation",
                2,
                1,
                0,
                ""
            ),
            (
                "kustomize.toolkit.fluxcd.io/v1",
                "Kustomization",
                11,
                2,
                1,
                ""
            ),
            ("notification.toolkit.fluxcd.io/v1", "Receiver", 2, 1, 0, ""),
            (
                "notification.toolkit.fluxcd.io/v1beta3",
                "Alert",
                3,
                0,
                1,
                ""
            ),
            (
                "notification.toolkit.fluxcd.io/v1beta3",
                "Provider",
                4,
                0,
                0,
                ""
            ),
            (
                "source.extensions.fluxcd.io/v1beta1",
                "ArtifactGenerator",
                0,
                0,
                0,
                ""
            ),
            ("source.toolkit.fluxcd.io/v1", "Bucket", 2, 1, 0, "12.6 KiB"),
            (
                "source.toolkit.fluxcd.io/v1",
                "ExternalArtifact",
                1,
                0,
                0,
                "912 B"
            ),
            (
                "source.toolkit.fluxcd.io/v1",
                "GitRepository",
                4,
                1,
                2,
                "2.8 MiB"
            ),
            (
                "source.toolkit.fluxcd.io/v1",
                "HelmChart",
                6,
                0,
                0,
                "166.0 KiB"
            ),
            (
                "source.toolkit.fluxcd.io/v1",
                "HelmRepository",
                5,
                1,
                0,
                "12.6 MiB"
            ),
            (
                "source.toolkit.fluxcd.io/v1",
                "OCIRepository",
                3,
                0,
                0,
                "856.4 KiB"
            ),
        ]
    );
}

#[test]
fn sample_sync_follows_the_kustomization_source_ref() {
    let o = sample();
    let s = o.spec.sync.as_ref().unwrap();
    assert_eq!(s.id, "kustomization/flux-system");
    assert_eq!(s.path.as_deref(), Some("./clusters/production"));
    assert!(s.ready);
    assert_eq!(
        s.status,
        "Applied revision: main@sha1:57ad38a34f0d70da542ce40f36231f8c3bdefb40"
    );
    assert_eq!(
        s.source.as_deref(),
        Some("https://github.com/example-org/fleet-infra.git")
    );
}

#[test]
fn sample_metric_rows_cover_every_flux_object() {
    let o = sample();
    let rows: usize = o.resource_rows.values().map(|r| r.len()).sum();
    assert_eq!(rows, 60);
    let ks = o.resource_rows["Kustomization"]
        .iter()
        .find(|r| r.name == "flux-system")
        .unwrap();
    assert_eq!(ks.path, "./clusters/production");
    assert_eq!(ks.source_name, "fleet-infra");
    assert_eq!(o.instance_rows.as_ref().unwrap().len(), 1);
    assert_eq!(
        o.instance_rows.as_ref().unwrap()[0].registry,
        "ghcr.io/fluxcd"
    );
}
