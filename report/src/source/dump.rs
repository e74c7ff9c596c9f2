//! A dump file as a source: what `kubectl get … -o yaml|json` prints (a
//! `List`, several YAML documents, or JSON documents), plus optionally the
//! output of `kubectl version -o yaml` for the cluster section.
//!
//! Bad input never stops the load: a document that does not parse, or is not
//! an object, is skipped with a warning naming its position, and the rest is
//! used. Only an unreadable or empty file is an error.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{ErrorKind, ObjectSink, Source, SourceError};
use crate::crds::FluxKind;
use crate::lenient::Item;
use crate::observed::{Crd, Deployment, FluxObject, ServerVersion};

/// Where an object came from in the file, for messages.
#[derive(Debug, Clone)]
struct Position {
    document: usize,
    line: usize,
    item: Option<usize>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "document {} (line {})", self.document, self.line)?;
        if let Some(i) = self.item {
            write!(f, " item {i}")?;
        }
        Ok(())
    }
}

/// A loaded dump.
#[derive(Debug, Default)]
pub struct DumpSource {
    name: String,
    server_version: Option<ServerVersion>,
    nodes: i64,
    crds: Vec<Value>,
    deployments: Vec<Value>,
    /// Flux and operator objects by `(group, kind)`, keyed by `namespace/name`.
    objects: HashMap<(String, String), BTreeMap<String, Value>>,
    warnings: Vec<String>,
    documents: usize,
}

/// The dump could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot read dump {name}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dump {0} is empty")]
    Empty(String),
    #[error("dump {name} holds no Kubernetes objects{}", first_warning.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    NoObjects {
        name: String,
        /// Why the first document was skipped, if one was.
        first_warning: Option<String>,
    },
}

impl DumpSource {
    /// Read a dump from a file, or from stdin when `path` is `-`.
    pub fn load(path: &Path) -> Result<DumpSource, DumpError> {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        let read = if name == "-" {
            std::io::stdin().read_to_end(&mut bytes).map(|_| ())
        } else {
            std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
        };
        read.map_err(|source| DumpError::Read {
            name: name.clone(),
            source,
        })?;
        Self::from_bytes(if name == "-" { "stdin" } else { &name }, &bytes)
    }

    /// Parse a dump held in memory; `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<DumpSource, DumpError> {
        let mut dump = DumpSource {
            name: name.to_string(),
            ..Default::default()
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(e) => {
                let offset = e.valid_up_to();
                let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
                dump.warnings.push(format!(
                    "{name}: invalid UTF-8 at byte {offset} (line {line}); invalid bytes were replaced with U+FFFD"
                ));
                String::from_utf8_lossy(bytes)
            }
        };
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return Err(DumpError::Empty(name.to_string()));
        }
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            dump.parse_json(&text);
        } else {
            dump.parse_yaml(&text);
        }
        if dump.documents == 0 {
            return Err(DumpError::NoObjects {
                name: name.to_string(),
                first_warning: dump.warnings.first().cloned(),
            });
        }
        Ok(dump)
    }

    /// Problems found while loading, each naming its position.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn parse_json(&mut self, text: &str) {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut document = 0;
        for result in stream {
            document += 1;
            match result {
                Ok(value) => self.add_document(
                    value,
                    Position {
                        document,
                        line: 0,
                        item: None,
                    },
                ),
                Err(e) => {
                    self.warnings.push(format!(
                        "{}: document {document} (line {}, column {}): invalid JSON: {e}; the rest of the file was skipped",
                        self.name,
                        e.line(),
                        e.column()
                    ));
                    break;
                }
            }
        }
    }

    fn parse_yaml(&mut self, text: &str) {
        let mut options = serde_saphyr::Options::default();
        let mut budget = serde_saphyr::Budget::default();
        // Dumps of large clusters are big single documents.
        budget.max_events = usize::MAX / 2;
        budget.max_nodes = usize::MAX / 2;
        budget.max_total_scalar_bytes = 1 << 30;
        budget.max_reader_input_bytes = None;
        options.budget = Some(budget);
        for (index, (line, doc)) in split_yaml_documents(text).into_iter().enumerate() {
            let position = Position {
                document: index + 1,
                line,
                item: None,
            };
            if doc.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
            }) {
                continue;
            }
            match serde_saphyr::from_str_with_options::<Value>(doc, options.clone()) {
                Ok(Value::Null) => {}
                Ok(value) => self.add_document(value, position),
                Err(e) => {
                    let detail = e.to_string();
                    let detail = detail.lines().next().unwrap_or("").trim();
                    self.warnings.push(format!(
                        "{}: {position}: invalid YAML, document skipped: {detail}",
                        self.name
                    ));
                }
            }
        }
    }

    fn add_document(&mut self, value: Value, position: Position) {
        let Value::Object(map) = value else {
            self.warnings.push(format!(
                "{}: {position}: not an object ({}), skipped",
                self.name,
                type_name(&value)
            ));
            return;
        };
        if let Some(version) = map.get("serverVersion") {
            match ServerVersion::deserialize(version) {
                Ok(v) => {
                    self.server_version = Some(v);
                    self.documents += 1;
                }
                Err(e) => self.warnings.push(format!(
                    "{}: {position}: serverVersion is malformed: {e}",
                    self.name
                )),
            }
            return;
        }
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.ends_with("List") && map.get("items").is_some() {
            let Some(Value::Array(items)) = map.get("items") else {
                self.warnings.push(format!(
                    "{}: {position}: items is not a list, skipped",
                    self.name
                ));
                return;
            };
            self.documents += 1;
            for (i, item) in items.iter().enumerate() {
                let pos = Position {
                    item: Some(i + 1),
                    ..position.clone()
                };
                self.add_object(item.clone(), pos);
            }
            return;
        }
        self.documents += 1;
        self.add_object(Value::Object(map), position);
    }

    fn add_object(&mut self, value: Value, position: Position) {
        let (api_version, kind) = match (&value.get("apiVersion"), &value.get("kind")) {
            (Some(Value::String(a)), Some(Value::String(k))) => (a.clone(), k.clone()),
            _ if !value.is_object() => {
                self.warnings.push(format!(
                    "{}: {position}: not an object ({}), skipped",
                    self.name,
                    type_name(&value)
                ));
                return;
            }
            _ => {
                self.warnings.push(format!(
                    "{}: {position}: object without apiVersion and kind, skipped",
                    self.name
                ));
                return;
            }
        };
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        match (group, kind.as_str()) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") => self.crds.push(value),
            ("", "Node") => self.nodes += 1,
            ("apps", "Deployment") => self.deployments.push(value),
            _ => {
                let meta = value.get("metadata");
                let field = |f: &str| {
                    meta.and_then(|m| m.get(f))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let (name, ns) = (field("name"), field("namespace"));
                let key = if name.is_empty() {
                    format!("\u{0}{position}")
                } else {
                    format!("{ns}/{name}")
                };
                let bucket = self
                    .objects
                    .entry((group.to_string(), kind.clone()))
                    .or_default();
                if bucket.insert(key, value).is_some() {
                    self.warnings.push(format!(
                        "{}: {position}: {kind} {ns}/{name} appears twice; the later one is used",
                        self.name
                    ));
                }
            }
        }
    }

    /// Distribution and discovery both need the CRDs; a dump without any
    /// cannot answer either.
    fn require_crds(&self) -> Result<(), SourceError> {
        if self.crds.is_empty() {
            return Err(self.missing(
                "CustomResourceDefinitions",
                "`kubectl get crds -l app.kubernetes.io/part-of=flux -o yaml`",
            ));
        }
        Ok(())
    }

    fn missing(&self, what: &str, how: &str) -> SourceError {
        SourceError::new(
            ErrorKind::Invalid,
            format!("the dump {} has no {what} (add {how})", self.name),
        )
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Split YAML text into documents on `---` lines, keeping each document's first line number.
fn split_yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_separator = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if is_separator {
            if offset > start {
                docs.push((start_line, &text[start..offset]));
            }
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    if start < text.len() {
        docs.push((start_line, &text[start..]));
    }
    docs
}

fn decode<T: for<'de> crate::lenient::Target<'de>>(v: &Value) -> Option<T> {
    Item::<T>::deserialize(v)
        .ok()
        .and_then(|i| i.value.into_option())
}

fn has_flux_label(v: &Value) -> bool {
    v.pointer("/metadata/labels/app.kubernetes.io~1part-of")
        .and_then(Value::as_str)
        == Some("flux")
}

impl Source for DumpSource {
    async fn server_version(&self) -> Result<ServerVersion, SourceError> {
        self.server_version
            .clone()
            .ok_or_else(|| self.missing("serverVersion", "the output of `kubectl version -o yaml`"))
    }

    async fn node_count(&self) -> Result<i64, SourceError> {
        if self.nodes == 0 {
            return Err(self.missing("Nodes", "`kubectl get nodes -o yaml`"));
        }
        Ok(self.nodes)
    }

    async fn crd_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        self.require_crds()?;
        Ok(self
            .crds
            .iter()
            .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .map(|c| {
                c.pointer("/metadata/labels")
                    .and_then(|l| BTreeMap::<String, String>::deserialize(l).ok())
                    .unwrap_or_default()
            }))
    }

    async fn flux_crds(&self) -> Result<Vec<Crd>, SourceError> {
        self.require_crds()?;
        Ok(self
            .crds
            .iter()
            .filter(|c| has_flux_label(c))
            .filter_map(decode::<Crd>)
            .collect())
    }

    async fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, SourceError> {
        if self.deployments.is_empty() {
            return Err(self.missing(
                "Deployments",
                &format!("`kubectl -n {namespace} get deployments -l app.kubernetes.io/part-of=flux -o yaml`"),
            ));
        }
        Ok(self
            .deployments
            .iter()
            .filter(|d| has_flux_label(d))
            .filter(|d| d.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace))
            .filter_map(decode::<Deployment>)
            .collect())
    }

    async fn list_objects(
        &self,
        kind: &FluxKind,
        sink: &mut (dyn ObjectSink + Send),
    ) -> Result<(), SourceError> {
        let key = (kind.group.clone(), kind.kind.clone());
        let Some(objects) = self.objects.get(&key) else {
            // An operator kind is installed only if its CRD is in the dump.
            let crd_name = format!("{}.{}", kind.plural, kind.group);
            let has_crd = self.crds.iter().any(|c| {
                c.pointer("/metadata/name").and_then(Value::as_str) == Some(crd_name.as_str())
            });
            if kind.operator_kind && !has_crd {
                return Err(SourceError::new(
                    ErrorKind::NotFound,
                    format!("no {} in the dump", kind.kind),
                ));
            }
            return Ok(());
        };
        for value in objects.values() {
            match Item::<FluxObject>::deserialize(value) {
                Ok(item) => sink.push(item.value.into_option(), item.invalid_fields),
                Err(_) => sink.push(None, 0),
            }
        }
        Ok(())
    }

    async fn get_object(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FluxObject>, SourceError> {
        let key = (kind.group.clone(), kind.kind.clone());
        Ok(self
            .objects
            .get(&key)
            .and_then(|objects| objects.get(&format!("{namespace}/{name}")))
            .and_then(decode::<FluxObject>))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_split_on_separators_with_line_numbers() {
        let text = "# comment\n---\na: 1\n---\nb: 2\n...\n";
        let docs = split_yaml_documents(text);
        assert_eq!(
            docs.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
        assert_eq!(docs[1].1, "a: 1\n");
    }

    #[test]
    fn empty_file_is_an_error() {
        let err = DumpSource::from_bytes("x.yaml", b"  \n").unwrap_err();
        assert_eq!(err.to_string(), "dump x.yaml is empty");
    }

    #[test]
    fn a_list_and_a_single_object_and_a_version() {
        let text = "serverVersion:\n  gitVersion: v1.33.1\n  platform: linux/amd64\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n";
        let dump = DumpSource::from_bytes("d", text.as_bytes()).unwrap();
        assert_eq!(dump.nodes, 2);
        assert_eq!(dump.server_version.as_ref().unwrap().git_version, "v1.33.1");
        assert!(dump.warnings().is_empty(), "{:?}", dump.warnings());
    }

    #[test]
    fn a_document_that_is_not_an_object_is_skipped_with_its_position() {
        let text =
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n- just\n- a list\n---\nhello\n";
        let dump = DumpSource::from_bytes("d.yaml", text.as_bytes()).unwrap();
        assert_eq!(dump.nodes, 1);
        assert_eq!(dump.warnings().len(), 2, "{:?}", dump.warnings());
        assert!(
            dump.warnings()[0].contains("document 2 (line 5): not an object (a list)"),
            "{:?}",
            dump.warnings()
        );
        assert!(
            dump.warnings()[1].contains("document 3 (line 8): not an object (a string)"),
            "{:?}",
            dump.warnings()
        );
    }

    #[test]
    fn truncated_yaml_keeps_the_documents_before_it() {
        let text = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: [n2\n";
        let dump = DumpSource::from_bytes("t.yaml", text.as_bytes()).unwrap();
        assert_eq!(dump.nodes, 1);
        assert!(
            dump.warnings()[0].starts_with("t.yaml: document 2 (line 5): invalid YAML"),
            "{:?}",
            dump.warnings()
        );
    }

    #[test]
    fn json_documents_and_truncated_json() {
        let text = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}}
{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"b"}}]}
{"apiVersion":"v1","kind":"No"#;
        let dump = DumpSource::from_bytes("j.json", text.as_bytes()).unwrap();
        assert_eq!(dump.nodes, 2);
        assert!(
            dump.warnings()[0].contains("document 3"),
            "{:?}",
            dump.warnings()
        );
    }

    #[test]
    fn non_utf8_bytes_are_replaced_and_reported() {
        let mut bytes =
            b"apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {a: \"".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\"}\n");
        let dump = DumpSource::from_bytes("u.yaml", &bytes).unwrap();
        assert_eq!(dump.nodes, 1);
        assert!(
            dump.warnings()[0].contains("invalid UTF-8 at byte 62 (line 5)"),
            "{:?}",
            dump.warnings()
        );
    }

    #[test]
    fn nothing_usable_is_an_error_naming_the_first_problem() {
        let err = DumpSource::from_bytes("x.yaml", b"just a string\n").unwrap_err();
        assert!(
            err.to_string().contains("holds no Kubernetes objects"),
            "{err}"
        );
        assert!(err.to_string().contains("not an object"), "{err}");
    }
}
