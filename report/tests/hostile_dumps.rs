//! Regression tests for hostile dumps (issue 11): YAML aliases across
//! documents, unbounded input, warning line numbers, malformed Deployments.

mod common;

use common::run;

use flux_reporter_report::source::dump::{DumpSource, Limits};

/// `docs` documents, each a `size`-byte string anchored once and aliased 99 times.
fn aliased(docs: usize, size: usize) -> String {
    let big = "x".repeat(size);
    let mut text = String::new();
    for d in 0..docs {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{d}}}\ndata:\n  a: &a {big}\n"
        ));
        for i in 0..99 {
            text.push_str(&format!("  k{i}: *a\n"));
        }
    }
    text
}

#[test]
fn yaml_aliases_exhaust_memory_across_documents() {
    // Each document alone expands to about 10 MB, under the budget; together
    // they do not fit: one budget covers the whole input.
    let text = aliased(20, 100 * 1024);
    let err = DumpSource::from_bytes("alias.yaml", text.as_bytes()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("expand past the memory budget"), "{msg}");
    let document: usize = msg
        .split("document ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        document > 1,
        "the budget is shared, not per document: {msg}"
    );
}

#[test]
fn yaml_aliases_of_a_megabyte_string_are_refused_at_the_first_document() {
    let text = aliased(12, 1 << 20);
    let err = DumpSource::from_bytes("alias.yaml", text.as_bytes()).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "dump alias.yaml: document 1 (line 2): its values expand past the memory budget"
        ),
        "{err}"
    );
}

#[test]
fn a_billion_laughs_is_refused_quickly() {
    let mut text =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\nl0: &l0 lol\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        let row = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{row}]\n"));
    }
    let started = std::time::Instant::now();
    match DumpSource::from_bytes("lol.yaml", text.as_bytes()) {
        Err(e) => assert!(e.to_string().contains("lol.yaml"), "{e}"),
        Ok(d) => assert!(
            d.warnings()
                .iter()
                .any(|w| w.contains("document 1 (line 1)")),
            "{:?}",
            d.warnings()
        ),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn input_size_is_unbounded() {
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n";
    let limits = Limits { max_bytes: 100 };
    let ok = DumpSource::from_reader("small", node.as_bytes(), limits).unwrap();
    assert!(ok.warnings().is_empty());
    let big = format!("{node}---\n{node}---\n{node}");
    let err = DumpSource::from_reader("big", big.as_bytes(), limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dump big is larger than the limit of 100 bytes (raise it with --max-dump-size or MAX_DUMP_SIZE)"
    );
    // An endless input stops at the limit; an endless binary one at once.
    let err = DumpSource::from_reader("-", std::io::repeat(b'a'), Limits { max_bytes: 1 << 20 })
        .unwrap_err();
    assert!(err.to_string().contains("larger than the limit"), "{err}");
    let err =
        DumpSource::from_reader("/dev/zero", std::io::repeat(0), Limits::default()).unwrap_err();
    assert!(err.to_string().contains("NUL byte at byte 0"), "{err}");
}

#[test]
fn json_warnings_say_the_document_and_file_line() {
    let text = "\n\n{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"}}\n42\n\n{\"apiVersion\":\"v1\",\n \"kind\": oops}\n";
    let dump = DumpSource::from_bytes("j.json", text.as_bytes()).unwrap();
    assert_eq!(
        dump.warnings(),
        [
            "j.json: document 2 (line 4): not an object (a number), skipped",
            "j.json: document 3 (line 7, column 10): invalid JSON: expected value; the rest of the file was skipped",
        ]
    );
}

#[test]
fn yaml_warning_lines_count_from_the_file_not_the_document() {
    let text = "apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\n# a comment\napiVersion: v1\nkind: Node\nmetadata: {name: [b\n";
    let dump = DumpSource::from_bytes("y.yaml", text.as_bytes()).unwrap();
    assert_eq!(dump.warnings().len(), 1, "{:?}", dump.warnings());
    let w = &dump.warnings()[0];
    assert!(
        w.starts_with("y.yaml: document 2 (line 5): invalid YAML at line "),
        "{w}"
    );
    let line: u64 = w["y.yaml: document 2 (line 5): invalid YAML at line ".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(line >= 8, "the error is on file line 8 or after: {w}");
}

#[test]
fn deployments_whose_status_has_wrong_types_are_counted_as_malformed() {
    let text = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: source-controller
  namespace: flux-system
  labels: {app.kubernetes.io/part-of: flux}
spec: {replicas: 1}
status: {replicas: one, readyReplicas: [1], conditions: {type: Available}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kustomize-controller
  namespace: flux-system
  labels: {app.kubernetes.io/part-of: flux}
spec: {replicas: 1}
status: {replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1}
"#;
    let dump = DumpSource::from_bytes("d.yaml", text.as_bytes()).unwrap();
    let o = run(&dump);
    assert_eq!(o.spec.components.len(), 2);
    assert_eq!(o.malformed_total, 1, "{:?}", o.malformed);
    assert_eq!(o.malformed[0].kind, "Deployment");
    assert_eq!(o.malformed[0].name, "source-controller");
    assert_eq!(o.malformed[0].invalid_fields, 3);
    assert!(
        o.notes
            .iter()
            .any(|n| n.contains("Deployment flux-system/source-controller")),
        "{:?}",
        o.notes
    );
}
