//! Fixtures shared by the tests: the objects of the sample dump the repo ships.

use std::path::PathBuf;

use serde_json::Value;

/// `examples/flux-cluster-dump.yaml`.
pub fn sample_dump_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/flux-cluster-dump.yaml")
}

/// Every object of the sample dump (List items flattened, the `kubectl
/// version` document left out), CRDs first so that a server accepts them in order.
pub fn sample_dump_objects() -> Vec<Value> {
    let text = std::fs::read_to_string(sample_dump_path()).expect("the sample dump is readable");
    dump_objects(&text).expect("the sample dump parses")
}

/// The objects of a dump's text ([`sample_dump_objects`] for any file).
pub fn dump_objects(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    let mut objects: Vec<Value> = docs
        .into_iter()
        .filter(|d| d.get("kind").is_some())
        .flat_map(|d| match d["items"].as_array() {
            Some(items) => items.clone(),
            None => vec![d],
        })
        .collect();
    objects.sort_by_key(|o| o["kind"] != "CustomResourceDefinition");
    Ok(objects)
}

/// The `flux-reporter` binary under test: `FLUX_REPORTER_BIN`, else
/// `target/<profile>/flux-reporter` beside the test executable's `deps/`
/// (built by `cargo test --workspace`, since the operator has integration tests).
pub fn flux_reporter_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("FLUX_REPORTER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    let bin = deps.join("../flux-reporter");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p flux-reporter` first (or set FLUX_REPORTER_BIN)",
        bin.display()
    );
    bin
}
