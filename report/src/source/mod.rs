//! Where observed objects come from: a live cluster ([`live`]) or a dump file
//! ([`dump`]). The engine asks both the same questions.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::crds::FluxKind;
use crate::observed::{Crd, Deployment, FluxObject, ServerVersion};

pub mod dump;
pub mod live;

/// What went wrong with one read, classified so that the engine can tell a
/// missing kind from a forbidden one. The message is complete on its own (it
/// goes into the FluxReport's Ready condition, causes included); the kube or
/// I/O error it came from, when there is one, is kept as its
/// [`source`](std::error::Error::source) for callers that inspect it.
#[derive(Debug, Clone)]
pub struct SourceError {
    pub kind: ErrorKind,
    pub message: String,
    /// Shared so that a failed section can keep its error next to its last good value.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

// By hand rather than with thiserror: its `#[source]` would hand out the `Arc`
// itself, which cannot be downcast to the kube or I/O error inside.
impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source: &(dyn std::error::Error + 'static) = self.source.as_deref()?;
        Some(source)
    }
}

/// Errors are equal when they read the same: the source is already in the message.
impl PartialEq for SourceError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for SourceError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the resource or kind does not exist.
    NotFound,
    /// 401/403: not allowed.
    Forbidden,
    /// The server could not be reached, timed out or kept failing (429/5xx).
    Unavailable,
    /// The answer could not be decoded, or the dump lacks what was asked.
    Invalid,
    /// Anything else the server said.
    Other,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    /// Keep the error this one came from.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// Receives the objects of one kind as they are read, page by page.
pub trait ObjectSink {
    /// The list restarted from the beginning (an expired continue token):
    /// forget what was pushed so far.
    fn reset(&mut self);
    /// One object, with the number of its fields that had the wrong type.
    /// `None` when the item was not an object at all.
    fn push(&mut self, obj: Option<FluxObject>, invalid_fields: u32);
}

/// The questions the engine asks of the cluster or the dump.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// `/version`.
    async fn server_version(&self) -> Result<ServerVersion, SourceError>;
    /// Number of Node objects.
    async fn node_count(&self) -> Result<i64, SourceError>;
    /// Labels of the named CRD; `Ok(None)` when it does not exist.
    async fn crd_labels(&self, name: &str)
    -> Result<Option<BTreeMap<String, String>>, SourceError>;
    /// CRDs labelled `app.kubernetes.io/part-of=flux`.
    async fn flux_crds(&self) -> Result<Vec<Crd>, SourceError>;
    /// Deployments labelled `app.kubernetes.io/part-of=flux` in `namespace`.
    async fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, SourceError>;
    /// Every object of `kind` in every namespace. `NotFound` when the kind is not served.
    async fn list_objects(
        &self,
        kind: &FluxKind,
        sink: &mut (dyn ObjectSink + Send),
    ) -> Result<(), SourceError>;
    /// How many kinds the engine may list at once with [`Source::list_objects`]
    /// (the live source's `--list-concurrency`); 1 lists them one after the other.
    fn list_concurrency(&self) -> usize {
        1
    }
    /// One object, `Ok(None)` when it does not exist.
    async fn get_object(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FluxObject>, SourceError>;
}

/// Whether an error (or one of its causes) is a timeout: kube's connect and
/// read timeouts surface as I/O `TimedOut` errors, tokio's as `Elapsed`.
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if err.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// One line: the error and its causes, joined by ": " (a cause whose text
/// its parent already carries is left out). kube's `Error::Api` prints the
/// server's `Status` twice, once as Rust debug output; it is left out for its
/// cause, the `Status`, which reads "message: reason".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(err) = next {
        next = err.source();
        if matches!(err.downcast_ref::<kube::Error>(), Some(kube::Error::Api(_))) {
            continue;
        }
        let text = err.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the FluxReport; the previous report stays")]
    struct Write(#[source] kube::Error);

    #[test]
    fn an_api_error_reads_as_the_servers_message_without_rust_debug_output() {
        let status = kube::core::Status::failure(
            "Operation cannot be fulfilled on fluxreports.fluxcd.controlplane.io \"flux\": \
             the object has been modified",
            "Conflict",
        )
        .with_code(409);
        let chain = error_chain(&Write(kube::Error::Api(status.boxed())));
        assert_eq!(
            chain,
            "cannot write the FluxReport; the previous report stays: Operation cannot be \
             fulfilled on fluxreports.fluxcd.controlplane.io \"flux\": the object has been \
             modified: Conflict"
        );
    }
}
