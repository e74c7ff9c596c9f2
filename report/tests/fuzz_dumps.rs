//! Property-based fuzzing of the dump parser and of the list-page decoders
//! the live source uses, plus the replay of the committed corpus of hostile
//! inputs (`tests/corpus/`). No input may panic; a dump is either loaded
//! (warnings name the file) or refused with an error naming it.
//!
//! Each target runs for `FUZZ_SECONDS` (default: one round of 64 cases) and
//! prints its executions; `hack/fuzz.sh` gives each a longer run.

mod common;

use common::run;

use std::time::{Duration, Instant};

use flux_reporter_report::observed::{Crd, Deployment, FluxObject, Page};
use flux_reporter_report::source::dump::DumpSource;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

/// Run `test` on values of `strategy` until the time budget is spent.
fn fuzz<S: Strategy>(
    target: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut runs = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {target}: {e}");
        }
        runs += 64;
        if started.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "fuzz target {target}: {runs} executions in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Load and, when loaded, compute a report; check the messages name the input.
fn check_dump(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    match DumpSource::from_bytes(name, bytes) {
        Ok(dump) => {
            for w in dump.warnings() {
                prop_assert!(w.starts_with(&format!("{name}: document ")), "{w}");
            }
            run(&dump);
        }
        Err(e) => prop_assert!(e.to_string().contains(name), "{e}"),
    }
    Ok(())
}

/// Any JSON value, nested a few levels, with the scalars that break types.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("True"), Just("False"), Just("Ready"), Just("flux")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The paths the engine reads, to put wrong types exactly where they hurt.
const PATHS: &[&str] = &[
    "/apiVersion",
    "/kind",
    "/metadata",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/labels",
    "/metadata/annotations",
    "/metadata/generation",
    "/metadata/deletionTimestamp",
    "/spec",
    "/spec/suspend",
    "/spec/sourceRef",
    "/spec/sourceRef/name",
    "/spec/url",
    "/spec/ref",
    "/spec/chart",
    "/spec/chart/spec",
    "/spec/replicas",
    "/spec/template/spec/containers",
    "/status",
    "/status/conditions",
    "/status/conditions/0",
    "/status/conditions/0/status",
    "/status/conditions/0/message",
    "/status/artifact",
    "/status/artifact/size",
    "/status/replicas",
    "/status/readyReplicas",
    "/status/observedGeneration",
    "/status/lastAppliedRevision",
];

fn template(kind: usize) -> Value {
    let meta = json!({"name": "x", "namespace": "flux-system",
        "labels": {"app.kubernetes.io/part-of": "flux"}, "generation": 1});
    let status = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok"}],
        "artifact": {"revision": "main@sha1:abc", "size": 10}, "replicas": 1, "readyReplicas": 1});
    let (api, kind) = [
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("apps/v1", "Deployment"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("fluxcd.controlplane.io/v1", "FluxInstance"),
    ][kind % 6];
    json!({"apiVersion": api, "kind": kind, "metadata": meta,
        "spec": {"url": "https://e/x.git", "sourceRef": {"kind": "GitRepository", "name": "x"},
                 "replicas": 1, "template": {"spec": {"containers": [{"name": "m", "image": "i"}]}}},
        "status": status})
}

/// A realistic object with a wrong value put at some of the paths.
fn mutated_object() -> impl Strategy<Value = Value> {
    (
        0..6usize,
        prop::collection::vec((0..PATHS.len(), any_value()), 1..4),
    )
        .prop_map(|(k, edits)| {
            let mut obj = template(k);
            for (p, v) in edits {
                let (parent, key) = PATHS[p].rsplit_once('/').unwrap();
                match obj.pointer_mut(if parent.is_empty() { "" } else { parent }) {
                    Some(Value::Object(m)) => {
                        m.insert(key.to_string(), v);
                    }
                    Some(Value::Array(a)) if !a.is_empty() => a[0] = v,
                    _ => {}
                }
            }
            obj
        })
}

fn list(items: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("kind".into(), json!("List"));
    m.insert("items".into(), Value::Array(items));
    Value::Object(m)
}

#[test]
fn fuzz_dump_arbitrary_bytes() {
    fuzz(
        "dump/bytes",
        prop::collection::vec(any::<u8>(), 0..512),
        |b| check_dump("b.bin", &b),
    );
}

#[test]
fn fuzz_dump_yaml_like_text() {
    // Text made of YAML's own punctuation finds more parser paths than random bytes.
    let token = prop_oneof![
        Just("---\n"),
        Just("...\n"),
        Just("- "),
        Just(": "),
        Just("\n"),
        Just("  "),
        Just("&a "),
        Just("*a"),
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just(", "),
        Just("'"),
        Just("\""),
        Just("|\n"),
        Just(">-\n"),
        Just("!!str "),
        Just("<<: "),
        Just("? "),
        Just("#"),
        Just("kind"),
        Just("items"),
        Just("apiVersion: v1\nkind: List\nitems:\n"),
        Just("x"),
        Just("1"),
        Just("é"),
    ];
    fuzz(
        "dump/yaml-tokens",
        prop::collection::vec(token, 0..60),
        |t| check_dump("t.yaml", t.concat().as_bytes()),
    );
}

#[test]
fn fuzz_dump_arbitrary_json_and_yaml_values() {
    fuzz(
        "dump/values",
        prop::collection::vec(prop_oneof![any_value(), mutated_object()], 1..6),
        |docs| {
            let json: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
            check_dump("v.json", json.join("\n").as_bytes())?;
            let yaml: Vec<String> = docs
                .iter()
                .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
                .collect();
            check_dump("v.yaml", yaml.join("---\n").as_bytes())
        },
    );
}

#[test]
fn fuzz_dump_wrong_types_at_every_field_read() {
    fuzz(
        "dump/wrong-types",
        prop::collection::vec(mutated_object(), 1..8),
        |items| {
            let text = list(items).to_string();
            let dump = DumpSource::from_bytes("w.json", text.as_bytes());
            prop_assert!(dump.is_ok(), "{:?}", dump.err());
            run(&dump.unwrap());
            Ok(())
        },
    );
}

#[test]
fn fuzz_page_decoders() {
    fuzz(
        "page/decoders",
        prop::collection::vec(prop_oneof![any_value(), mutated_object()], 0..6),
        |items| {
            let mut page = list(items.clone());
            page["metadata"] = items.first().cloned().unwrap_or(json!({"continue": "t"}));
            let bytes = serde_json::to_vec(&page).unwrap();
            // A page is an object with a list of items: whatever the items are,
            // it decodes, one entry per item.
            let p = serde_json::from_slice::<Page<FluxObject>>(&bytes);
            prop_assert_eq!(p.map(|p| p.items.len()).ok(), Some(items.len()));
            prop_assert!(serde_json::from_slice::<Page<Deployment>>(&bytes).is_ok());
            prop_assert!(serde_json::from_slice::<Page<Crd>>(&bytes).is_ok());
            // Anything else (arbitrary values as a page) must fail cleanly or decode.
            for item in &items {
                let b = serde_json::to_vec(item).unwrap();
                let _ = serde_json::from_slice::<Page<FluxObject>>(&b);
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_page_decoders_arbitrary_bytes() {
    fuzz(
        "page/bytes",
        prop::collection::vec(any::<u8>(), 0..256),
        |b| {
            let _ = serde_json::from_slice::<Page<FluxObject>>(&b);
            let _ = serde_json::from_slice::<Page<Deployment>>(&b);
            let _ = serde_json::from_slice::<Page<Crd>>(&b);
            Ok(())
        },
    );
}

/// Every file of the corpus: no panic, and the expected outcome.
#[test]
fn corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
        let result = DumpSource::from_bytes(name, &bytes);
        let expect_error = ["nul-byte.yaml"].contains(&name.as_str());
        match (&result, expect_error) {
            (Ok(d), false) => {
                for w in d.warnings() {
                    assert!(w.starts_with(&format!("{name}: document ")), "{w}");
                }
                run(d);
            }
            (Err(e), true) => assert!(e.to_string().contains(name.as_str()), "{e}"),
            (Err(e), false) if e.to_string().contains("holds no Kubernetes objects") => {}
            _ => panic!(
                "{name}: unexpected {:?}",
                result.map(|d| d.warnings().to_vec())
            ),
        }
        // The page decoders on the same bytes.
        let _ = serde_json::from_slice::<Page<FluxObject>>(&bytes);
    }
}
