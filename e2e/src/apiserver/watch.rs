//! Watch streams: one JSON event per line over a chunked response, replayed from the change
//! history after the requested resourceVersion, with bookmarks, selectors (objects leaving the
//! selection are DELETED), the 410 ERROR event for compacted resourceVersions, and timeouts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::handlers::{parse_rv, selectors};
use super::http::{Output, Req, Resp, Target, error_resp, negotiate};
use super::list::{FieldSelector, LabelSelector};
use super::registry::ResourceType;
use super::status::ApiError;
use super::store::{Change, ChangeType};
use super::table;
use super::write::to_view;

struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

struct Renderer {
    rt: Arc<ResourceType>,
    output: Output,
    include: table::IncludeObject,
    columns: Vec<table::Column>,
    sent_columns: bool,
}

impl Renderer {
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let view = to_view(&self.rt, obj);
        let object = match self.output {
            Output::Json => None,
            Output::Metadata(v) => {
                Some(table::partial_metadata(&view, &format!("meta.k8s.io/{v}")))
            }
            Output::Table(v) => {
                let row = table::row(&self.columns, &view, self.include, v);
                let mut meta = Map::new();
                meta.insert(
                    "resourceVersion".into(),
                    view.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                let first = !self.sent_columns;
                self.sent_columns = true;
                Some(table::table(&self.columns, first, vec![row], meta, v))
            }
        };
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"type\":");
        let _ = serde_json::to_writer(&mut out, kind);
        out.extend_from_slice(b",\"object\":");
        let _ = match &object {
            Some(o) => serde_json::to_writer(&mut out, o),
            None => serde_json::to_writer(&mut out, &*view),
        };
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let obj =
            json!({ "kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta });
        let mut out =
            serde_json::to_vec(&json!({ "type": "BOOKMARK", "object": obj })).unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut out = serde_json::to_vec(&json!({ "type": "ERROR", "object": err.status_value() }))
        .unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn too_old(asked: u64, oldest: u64) -> ApiError {
    ApiError::new(
        410,
        format!("too old resource version: {asked} ({oldest})"),
        Some("Expired"),
        None,
    )
}

struct Stream {
    shared: Arc<Shared>,
    filter: Filter,
    storage_key: String,
    renderer: Renderer,
    initial: Vec<Arc<Value>>,
    initial_end_bookmark: bool,
    error: Option<ApiError>,
    cursor: u64,
    bookmarks: bool,
    deadline: Instant,
    tx: mpsc::Sender<Bytes>,
    rv_changes: tokio::sync::watch::Receiver<u64>,
    dropped: tokio::sync::watch::Receiver<u64>,
}

impl Stream {
    fn event_for(&self, c: &Change) -> Option<(&'static str, Arc<Value>)> {
        if *c.storage_key != *self.storage_key {
            return None;
        }
        let now = self.filter.matches(&c.object);
        let before = c.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let kind = match c.kind {
            ChangeType::Added if now => "ADDED",
            ChangeType::Modified if now && before => "MODIFIED",
            ChangeType::Modified if now => "ADDED",
            ChangeType::Modified if before => "DELETED",
            ChangeType::Deleted if now || before => "DELETED",
            _ => return None,
        };
        Some((kind, c.object.clone()))
    }

    /// Sends the matching changes after the cursor; `false` when the stream must end.
    async fn drain(&mut self) -> bool {
        let changes = {
            let state = self.shared.state();
            state
                .changes_since(self.cursor)
                .ok_or(state.compacted_rv + 1)
        };
        let changes = match changes {
            Ok(c) => c,
            Err(oldest) => {
                let _ = self.send(error_line(&too_old(self.cursor, oldest))).await;
                return false;
            }
        };
        for c in changes {
            self.cursor = c.rv;
            if let Some((kind, obj)) = self.event_for(&c) {
                let line = self.renderer.line(kind, &obj);
                if !self.send(line).await {
                    return false;
                }
            }
        }
        true
    }

    async fn send(&self, b: Bytes) -> bool {
        self.tx.send(b).await.is_ok()
    }

    async fn run(mut self) {
        if let Some(err) = self.error.take() {
            let _ = self.send(error_line(&err)).await;
            return;
        }
        for obj in std::mem::take(&mut self.initial) {
            let line = self.renderer.line("ADDED", &obj);
            if !self.send(line).await {
                return;
            }
        }
        if self.initial_end_bookmark && !self.send(self.renderer.bookmark(self.cursor, true)).await
        {
            return;
        }
        // Changes committed between the request and now.
        if !self.drain().await {
            return;
        }
        let interval = self.shared.bookmark_interval();
        let mut next_bookmark = Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                _ = self.dropped.changed() => return,
                _ = self.tx.closed() => return,
                _ = tokio::time::sleep_until(self.deadline) => {
                    if self.bookmarks {
                        let _ = self.send(self.renderer.bookmark(self.cursor, false)).await;
                    }
                    return;
                }
                changed = self.rv_changes.changed() => {
                    if changed.is_err() || !self.drain().await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(next_bookmark), if self.bookmarks => {
                    if !self.send(self.renderer.bookmark(self.cursor, false)).await {
                        return;
                    }
                    next_bookmark = Instant::now() + interval;
                }
            }
        }
    }
}

/// Starts a watch: answers 200 at once and streams events until the timeout, a dropped watch
/// (fault injection) or the client going away.
pub(crate) fn start(shared: &Arc<Shared>, req: &Req, t: &Target) -> Resp {
    let rt = t.rt.clone();
    let (labels, fields) = match selectors(req, &rt) {
        Ok(s) => s,
        Err(e) => return error_resp(e),
    };
    let rv = match req
        .param("resourceVersion")
        .filter(|r| !r.is_empty())
        .map(parse_rv)
        .transpose()
    {
        Ok(rv) => rv,
        Err(e) => return error_resp(e),
    };
    let send_initial = req.param("sendInitialEvents") == Some("true");
    let bookmarks = req.flag("allowWatchBookmarks");
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let output = negotiate(req.header("accept"));
    let filter = Filter {
        namespace: t.namespace.clone().filter(|_| rt.namespaced),
        labels,
        fields,
    };

    let mut rv_changes = shared.rv_changes.clone();
    rv_changes.borrow_and_update();
    let dropped = shared.faults.watch_generation();
    let (initial, cursor, error) = {
        let state = shared.state();
        match rv {
            Some(n) if n != 0 && !send_initial => {
                let error = (n < state.compacted_rv).then(|| too_old(n, state.compacted_rv + 1));
                (Vec::new(), n, error)
            }
            _ => {
                let initial: Vec<Arc<Value>> = state
                    .collections
                    .get(&rt.storage_key)
                    .map(|c| c.values().filter(|o| filter.matches(o)).cloned().collect())
                    .unwrap_or_default();
                (initial, state.rv, None)
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let stream = Stream {
        shared: shared.clone(),
        filter,
        storage_key: rt.storage_key.clone(),
        renderer: Renderer {
            columns: if matches!(output, Output::Table(_)) {
                table::columns(&rt)
            } else {
                Vec::new()
            },
            include: match req.param("includeObject") {
                Some("None") => table::IncludeObject::None,
                Some("Object") => table::IncludeObject::Object,
                _ => table::IncludeObject::Metadata,
            },
            rt,
            output,
            sent_columns: false,
        },
        initial,
        initial_end_bookmark: send_initial && bookmarks,
        error,
        cursor,
        bookmarks,
        deadline: Instant::now() + timeout,
        tx,
        rv_changes,
        dropped,
    };
    shared.runtime.spawn(stream.run());
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, Infallible>))
    }));
    let mut resp = http::Response::new(body);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    if let Ok(v) = HeaderValue::from_str(&super::util::audit_id()) {
        h.insert("audit-id", v);
    }
    resp
}
