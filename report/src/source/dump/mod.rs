//! A dump file as a source: what `kubectl get … -o yaml|json` prints (a
//! `List`, several YAML documents, or JSON documents), plus optionally the
//! output of `kubectl version -o yaml` for the cluster section.
//!
//! Bad input never stops the load: a document that does not parse, or is not
//! an object, is skipped with a warning naming its document and file line,
//! and the rest is used. The file is read document by document and each
//! object is cut down to the fields the report reads as soon as it is read,
//! so memory follows the largest object, not the file. What stops the load
//! with an error: an unreadable, empty or too large input, binary data (a
//! NUL byte), and values that expand past the memory budget (YAML aliases);
//! see `read` and `doc`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{ErrorKind, ObjectSink, Source, SourceError};
use crate::crds::FluxKind;
use crate::observed::{Crd, Deployment, FluxObject, ServerVersion};

pub mod doc;
pub mod read;

use doc::{Body, Skip, Slim};
pub use read::{DEFAULT_MAX_DUMP_SIZE, Limits};
use read::{Event, Fatal};

/// Where an object came from in the file, for messages.
#[derive(Debug, Clone, Copy)]
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

/// A Flux (or other) object as kept: decoded, with its count of wrong-typed fields.
#[derive(Debug)]
struct Kept {
    object: Option<FluxObject>,
    invalid_fields: u32,
}

/// A loaded dump.
#[derive(Debug, Default)]
pub struct DumpSource {
    name: String,
    server_version: Option<ServerVersion>,
    nodes: i64,
    crds: Vec<Crd>,
    deployments: Vec<Deployment>,
    /// Objects by `(group, kind)`, keyed by `namespace/name`.
    objects: HashMap<(String, String), BTreeMap<String, Kept>>,
    /// FluxInstances, whole (few per dump), for [`DumpSource::flux_instance`].
    instances: Vec<flux_reporter_api::FluxInstance>,
    warnings: Vec<String>,
    documents: usize,
}

/// The dump could not be used at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DumpError(pub String);

impl DumpSource {
    /// Read a dump from a file, or from stdin when `path` is `-`, with the default limits.
    pub fn load(path: &Path) -> Result<DumpSource, DumpError> {
        Self::load_with(path, Limits::default())
    }

    /// Read a dump from a file, or from stdin when `path` is `-`.
    pub fn load_with(path: &Path, limits: Limits) -> Result<DumpSource, DumpError> {
        let name = path.display().to_string();
        if name == "-" {
            return Self::from_reader("stdin", std::io::stdin().lock(), limits);
        }
        let file = std::fs::File::open(path)
            .map_err(|e| DumpError(format!("cannot read dump {name}: {e}")))?;
        Self::from_reader(&name, file, limits)
    }

    /// Parse a dump held in memory; `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<DumpSource, DumpError> {
        Self::from_reader(name, bytes, Limits::default())
    }

    /// Parse a dump from a reader; `name` is used in messages.
    pub fn from_reader(
        name: &str,
        reader: impl Read,
        limits: Limits,
    ) -> Result<DumpSource, DumpError> {
        let mut dump = DumpSource {
            name: name.to_string(),
            ..Default::default()
        };
        let mut any = false;
        let result = read::read_documents(name, reader, limits, &mut |event| {
            any = true;
            match event {
                Event::Doc(document, line, doc) => dump.add_document(
                    doc.body,
                    Position {
                        document,
                        line,
                        item: None,
                    },
                ),
                Event::Warning(w) => dump.warnings.push(w),
            }
        });
        if let Err(fatal) = result {
            return Err(DumpError(match fatal {
                Fatal::TooLarge(max) => format!(
                    "dump {name} is larger than the limit of {max} bytes (raise it with --max-dump-size or MAX_DUMP_SIZE)"
                ),
                Fatal::Nul(at) => format!(
                    "dump {name} holds a NUL byte at byte {at}: it is binary data, not YAML or JSON"
                ),
                Fatal::Io(e) => format!("cannot read dump {name}: {e}"),
                Fatal::Budget(document, line) => format!(
                    "dump {name}: document {document} (line {line}): its values expand past the memory budget for the whole file ({} bytes per byte read plus {} MiB), as YAML aliases can; a dump from kubectl has no aliases",
                    doc::BYTES_PER_INPUT_BYTE,
                    doc::BUDGET_FLOOR >> 20
                ),
            }));
        }
        if !any {
            return Err(DumpError(format!("dump {name} is empty")));
        }
        if dump.documents == 0 {
            let mut msg = format!("dump {name} holds no Kubernetes objects");
            if let Some(w) = dump.warnings.first() {
                msg.push_str(&format!(" ({w})"));
            }
            return Err(DumpError(msg));
        }
        Ok(dump)
    }

    /// The FluxInstance `flux` in `namespace`, as the dump holds it.
    pub fn flux_instance(&self, namespace: &str) -> Option<&flux_reporter_api::FluxInstance> {
        self.instances.iter().find(|i| {
            i.metadata.name.as_deref() == Some(flux_reporter_api::constants::SINGLETON_NAME)
                && i.metadata.namespace.as_deref() == Some(namespace)
        })
    }

    /// Problems found while loading, each naming its document and line.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn warn(&mut self, position: Position, what: impl std::fmt::Display) {
        self.warnings
            .push(format!("{}: {position}: {what}", self.name));
    }

    fn add_document(&mut self, body: Body, position: Position) {
        let (fields, items) = match body {
            Body::Null => return,
            Body::NotAnObject(t) => {
                return self.warn(position, format_args!("not an object ({t}), skipped"));
            }
            Body::Object { fields, items } => (fields, items),
        };
        if let Some(version) = fields.get("serverVersion") {
            match ServerVersion::deserialize(version) {
                Ok(v) => {
                    self.server_version = Some(v);
                    self.documents += 1;
                }
                Err(e) => self.warn(position, format_args!("serverVersion is malformed: {e}")),
            }
            return;
        }
        let kind = fields.get("kind").and_then(Value::as_str).unwrap_or("");
        let is_list = kind.ends_with("List");
        match items {
            Some(items) if is_list => {
                self.documents += 1;
                for (i, item) in items.into_iter().enumerate() {
                    let pos = Position {
                        item: Some(i + 1),
                        ..position
                    };
                    self.add_slim(item, pos);
                }
            }
            _ if is_list && fields.contains_key("items") => {
                self.warn(position, "items is not a list, skipped");
            }
            // A single object; `items` of a non-list is not something the report reads.
            _ => {
                self.documents += 1;
                let slim = doc::slim(&Value::Object(fields));
                self.add_slim(slim, position);
            }
        }
    }

    fn add_slim(&mut self, slim: Result<Slim, Skip>, position: Position) {
        let slim = match slim {
            Ok(s) => s,
            Err(Skip::NotAnObject(t)) => {
                return self.warn(position, format_args!("not an object ({t}), skipped"));
            }
            Err(Skip::NoApiVersionOrKind) => {
                return self.warn(position, "object without apiVersion and kind, skipped");
            }
        };
        match slim {
            Slim::Crd(crd) => self.crds.push(*crd),
            Slim::Node => self.nodes += 1,
            Slim::Deployment(d) => self.deployments.push(*d),
            Slim::Object {
                group,
                kind,
                namespace,
                name,
                object,
                invalid_fields,
                instance,
            } => {
                if let Some(i) = instance {
                    self.instances.push(*i);
                }
                let key = if name.is_empty() {
                    format!("\u{0}{position}")
                } else {
                    format!("{namespace}/{name}")
                };
                let kept = Kept {
                    object: object.map(|o| *o),
                    invalid_fields,
                };
                let bucket = self.objects.entry((group, kind.clone())).or_default();
                if bucket.insert(key, kept).is_some() {
                    self.warn(
                        position,
                        format_args!(
                            "{kind} {namespace}/{name} appears twice; the later one is used"
                        ),
                    );
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

    fn crd(&self, name: &str) -> Option<&Crd> {
        self.crds
            .iter()
            .find(|c| c.metadata.get().is_some_and(|m| m.name.str() == name))
    }
}

fn labels(
    meta: &crate::lenient::Lenient<crate::observed::Meta>,
) -> Option<&BTreeMap<String, String>> {
    meta.get().and_then(|m| m.labels.get())
}

fn has_flux_label(meta: &crate::lenient::Lenient<crate::observed::Meta>) -> bool {
    labels(meta)
        .and_then(|l| l.get("app.kubernetes.io/part-of"))
        .is_some_and(|v| v == "flux")
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
            .crd(name)
            .map(|c| labels(&c.metadata).cloned().unwrap_or_default()))
    }

    async fn flux_crds(&self) -> Result<Vec<Crd>, SourceError> {
        self.require_crds()?;
        Ok(self
            .crds
            .iter()
            .filter(|c| has_flux_label(&c.metadata))
            .cloned()
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
            .filter(|d| has_flux_label(&d.metadata))
            .filter(|d| {
                d.metadata
                    .get()
                    .is_some_and(|m| m.namespace.str() == namespace)
            })
            .cloned()
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
            if kind.operator_kind && self.crd(&crd_name).is_none() {
                return Err(SourceError::new(
                    ErrorKind::NotFound,
                    format!("no {} in the dump", kind.kind),
                ));
            }
            return Ok(());
        };
        for kept in objects.values() {
            sink.push(kept.object.clone(), kept.invalid_fields);
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
            .and_then(|kept| kept.object.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
