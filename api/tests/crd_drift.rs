//! `config/crd/bases` must hold exactly what the types generate.
//! Fix a failure with `hack/generate-crds.sh`.

use std::path::PathBuf;

fn bases() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd/bases")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    for g in flux_reporter_api::crds::all() {
        let path = bases().join(g.file_name);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let generated = flux_reporter_api::crds::to_yaml(&g.crd);
        assert!(
            committed == generated,
            "{} is out of date: run hack/generate-crds.sh",
            path.display()
        );
    }
}

#[test]
fn no_stray_files_in_crd_bases() {
    let expected: Vec<_> = flux_reporter_api::crds::all()
        .iter()
        .map(|g| g.file_name.to_string())
        .collect();
    for entry in std::fs::read_dir(bases()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            expected.contains(&name),
            "unexpected file config/crd/bases/{name}"
        );
    }
}
