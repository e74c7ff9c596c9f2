//! Bad dump files: clear warnings or errors naming the position, skipped
//! documents, never a panic; the rest of the report is still computed.

mod common;

use common::run;

use flux_reporter_report::Section;
use flux_reporter_report::source::dump::DumpSource;

const CRDS: &str = r#"apiVersion: v1
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
"#;

fn git(name: &str, status: &str) -> String {
    format!(
        "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: {name}, namespace: apps, uid: u-{name}}}\nspec: {{url: https://example.com/x.git}}\nstatus: {status}\n"
    )
}

#[test]
fn truncated_file_keeps_earlier_documents() {
    let mut text = String::from(CRDS);
    text.push_str(&git(
        "ok",
        "{conditions: [{type: Ready, status: 'True', reason: Succeeded}]}",
    ));
    text.push_str("---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: cut, namespace: apps\n");
    let dump = DumpSource::from_bytes("trunc.yaml", text.as_bytes()).unwrap();
    assert_eq!(dump.warnings().len(), 1, "{:?}", dump.warnings());
    assert!(
        dump.warnings()[0].starts_with("trunc.yaml: document 3 (line 22): invalid YAML"),
        "{:?}",
        dump.warnings()
    );
    let o = run(&dump);
    let git = o
        .spec
        .reconcilers
        .iter()
        .find(|r| r.kind == "GitRepository")
        .unwrap();
    assert_eq!(git.stats.running, 1);
}

#[test]
fn a_document_that_is_not_an_object_is_skipped() {
    let text = format!("{CRDS}---\n42\n---\n[a, b]\n{}", git("ok", "{}"));
    let dump = DumpSource::from_bytes("d.yaml", text.as_bytes()).unwrap();
    assert_eq!(dump.warnings().len(), 2, "{:?}", dump.warnings());
    assert!(dump.warnings()[0].contains("not an object (a number)"));
    let o = run(&dump);
    assert_eq!(
        o.spec
            .reconcilers
            .iter()
            .find(|r| r.kind == "GitRepository")
            .unwrap()
            .stats
            .running,
        1
    );
}

#[test]
fn status_with_wrong_types_is_counted_and_reported() {
    let text = format!(
        "{CRDS}{}{}",
        git(
            "weird",
            "{conditions: {type: Ready}, artifact: {size: lots}}"
        ),
        git("worse", "'not a map'")
    );
    let dump = DumpSource::from_bytes("w.yaml", text.as_bytes()).unwrap();
    let o = run(&dump);
    let entry = o
        .spec
        .reconcilers
        .iter()
        .find(|r| r.kind == "GitRepository")
        .unwrap();
    assert_eq!((entry.stats.running, entry.stats.failing), (2, 0));
    assert_eq!(o.malformed_total, 2);
    assert!(
        o.notes
            .iter()
            .any(|n| n.contains("2 malformed objects") && n.contains("GitRepository apps/weird")),
        "{:?}",
        o.notes
    );
    assert!(o.failures.is_empty() || o.failures.iter().all(|f| f.section != Section::Reconcilers));
    let row = o.resource_rows["GitRepository"]
        .iter()
        .find(|r| r.name == "weird")
        .unwrap();
    assert_eq!(row.ready, "Unknown");
}

#[test]
fn a_ten_megabyte_message_is_read_and_capped() {
    let big = "x".repeat(10 * 1024 * 1024);
    let text = format!(
        "{CRDS}{}",
        git(
            "big",
            &format!(
                "{{conditions: [{{type: Ready, status: 'False', reason: GitOperationFailed, message: {big}}}]}}"
            )
        )
    );
    let dump = DumpSource::from_bytes("big.yaml", text.as_bytes()).unwrap();
    let o = run(&dump);
    let entry = o
        .spec
        .reconcilers
        .iter()
        .find(|r| r.kind == "GitRepository")
        .unwrap();
    assert_eq!(entry.stats.failing, 1);
    assert!(o.failing_objects[0].message.len() < 1024);
}

#[test]
fn non_utf8_bytes_are_reported_and_the_rest_is_read() {
    let mut bytes = CRDS.as_bytes().to_vec();
    bytes.extend_from_slice(git("ok", "{}").as_bytes());
    bytes.extend_from_slice(b"---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: bin, namespace: apps, labels: {x: \"\xc3\x28\"}}\n");
    let dump = DumpSource::from_bytes("bin.yaml", &bytes).unwrap();
    assert!(
        dump.warnings()[0].contains("invalid UTF-8 at byte"),
        "{:?}",
        dump.warnings()
    );
    let o = run(&dump);
    assert_eq!(
        o.spec
            .reconcilers
            .iter()
            .find(|r| r.kind == "GitRepository")
            .unwrap()
            .stats
            .running,
        2
    );
}

#[test]
fn a_dump_without_crds_fails_those_sections_and_says_what_to_add() {
    let dump = DumpSource::from_bytes(
        "n.yaml",
        b"apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    )
    .unwrap();
    let o = run(&dump);
    let crds = o
        .failures
        .iter()
        .find(|f| f.section == Section::Crds)
        .unwrap();
    assert!(
        crds.error
            .contains("kubectl get crds -l app.kubernetes.io/part-of=flux -o yaml"),
        "{crds}"
    );
    assert!(o.failed(Section::Cluster), "no serverVersion in the dump");
    assert_eq!(o.readiness().reason, "ReportIncomplete");
}

#[test]
fn garbage_bytes_are_an_error_not_a_panic() {
    let err = DumpSource::from_bytes("g.bin", &[0xff, 0x01, 0x12, 0x80, b':', b'{']).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("dump g.bin holds no Kubernetes objects"),
        "{err}"
    );
}

#[test]
fn binary_data_is_refused_at_the_first_nul_byte() {
    let err = DumpSource::from_bytes("g.bin", &[0xff, 0x00, 0x12, 0x80, b':', b'{']).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dump g.bin holds a NUL byte at byte 1: it is binary data, not YAML or JSON"
    );
}
