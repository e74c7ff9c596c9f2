//! An in-process Kubernetes API server double for tests and benchmarks.
//!
//! It speaks plain HTTP on 127.0.0.1 and answers the way the kube-apiserver v1.32 transcripts
//! show: discovery that grows with CRDs, lists with selectors and paging, writes with optimistic
//! concurrency, server-side apply, the status subresource, watches with bookmarks, Tables for
//! kubectl, Events and Leases. [`Faults`] injects failures while it runs.

mod apply;
mod auth;
mod builtin;
mod cel;
mod crd;
mod discovery;
mod faults;
mod fields;
mod handlers;
mod http;
mod list;
mod protobuf;
mod registry;
mod schema;
mod serving;
mod status;
mod store;
mod table;
mod util;
mod watch;
mod write;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultId, Faults};
pub use serving::{SERVING_PATH, ServingStats};

use store::State;

/// One request the server received, for assertions in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    /// The HTTP status of the answer (200 for a watch that started streaming).
    pub status: u16,
    pub watch: bool,
}

impl RecordedRequest {
    /// The value of a query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

const REQUEST_LOG_LIMIT: usize = 100_000;

struct Listener {
    /// Bumped on every stop, so an accept loop that is being aborted drops what it accepts.
    generation: u64,
    accept_task: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Faults,
    requests: Mutex<VecDeque<RecordedRequest>>,
    rv_changes: tokio::sync::watch::Receiver<u64>,
    addr: SocketAddr,
    listener: Mutex<Listener>,
    runtime: tokio::runtime::Handle,
    bookmark_interval: Mutex<Duration>,
    /// The ServiceAccount tokens minted by TokenRequests (`auth.rs`).
    tokens: Mutex<auth::Tokens>,
    serving: serving::Serving,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn record(&self, r: RecordedRequest) {
        let mut log = lock(&self.requests);
        if log.len() >= REQUEST_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(r);
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, auth::Tokens> {
        lock(&self.tokens)
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        *lock(&self.bookmark_interval)
    }

    fn is_listening(&self) -> bool {
        lock(&self.listener).accept_task.is_some()
    }

    fn stop_listening(&self) {
        let mut l = lock(&self.listener);
        l.generation += 1;
        if let Some(t) = l.accept_task.take() {
            t.abort();
        }
        for c in l.connections.drain(..) {
            c.abort();
        }
    }

    /// Aborts the accept loop and every connection, and waits until their sockets are closed.
    async fn stop_listening_and_wait(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut l = lock(&self.listener);
            l.generation += 1;
            l.accept_task
                .take()
                .into_iter()
                .chain(l.connections.drain(..))
                .collect()
        };
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn start_listening(self: &Arc<Self>) -> std::io::Result<()> {
        if self.is_listening() {
            return Ok(());
        }
        self.serve(std::net::TcpListener::bind(self.addr)?)
    }

    fn serve(self: &Arc<Self>, std_listener: std::net::TcpListener) -> std::io::Result<()> {
        std_listener.set_nonblocking(true)?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let mut l = lock(&self.listener);
        let task = self
            .runtime
            .spawn(accept_loop(Arc::downgrade(self), listener, l.generation));
        l.accept_task = Some(task);
        Ok(())
    }
}

async fn accept_loop(
    shared: std::sync::Weak<Shared>,
    listener: tokio::net::TcpListener,
    generation: u64,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(s) = shared.upgrade() else { return };
        let _ = stream.set_nodelay(true);
        let conn_shared = s.clone();
        let task = s.runtime.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = conn_shared.clone();
                async move { Ok::<_, std::convert::Infallible>(http::handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        let mut l = lock(&s.listener);
        if l.generation != generation {
            task.abort();
            return;
        }
        l.connections.retain(|c| !c.is_finished());
        l.connections.push(task);
    }
}

/// The running API server double. Dropping it stops it.
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<ApiServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a server on a given address (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<ApiServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(tx)),
            faults: Faults::new(),
            requests: Mutex::new(VecDeque::new()),
            rv_changes: rx,
            addr,
            listener: Mutex::new(Listener {
                generation: 0,
                accept_task: None,
                connections: Vec::new(),
            }),
            runtime: tokio::runtime::Handle::current(),
            bookmark_interval: Mutex::new(Duration::from_secs(5)),
            tokens: Mutex::new(auth::Tokens::default()),
            serving: serving::Serving::default(),
        });
        *lock(&shared.faults.shared) = Arc::downgrade(&shared);
        shared.serve(std_listener)?;
        Ok(ApiServer { shared })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig for this server: cluster, user and context `apiserver-double`, namespace
    /// `default`, a bearer token that the server accepts and ignores (a TokenReview authenticates it
    /// as a `system:masters` user, see `auth.rs`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: apiserver-double\n  cluster:\n    server: {url}\ncontexts:\n- name: apiserver-double\n  context:\n    cluster: apiserver-double\n    user: apiserver-double\n    namespace: default\ncurrent-context: apiserver-double\nusers:\n- name: apiserver-double\n  user:\n    token: apiserver-double-token\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`ApiServer::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Seeds an object directly into the store, bypassing HTTP, validation and managed fields:
    /// creates it or replaces it (keeping uid and creation time). Status is kept as given.
    /// CRDs become established at once and extend discovery. Returns the stored object.
    pub fn insert(&self, obj: Value) -> Result<Value, String> {
        let mut state = self.shared.state();
        write::seed(&mut state, obj)
    }

    /// Seeds many objects under one lock (faster than [`ApiServer::insert`] for bulk loads;
    /// CRDs should come before their objects). Returns how many were stored.
    pub fn insert_many(&self, objs: impl IntoIterator<Item = Value>) -> Result<usize, String> {
        let mut state = self.shared.state();
        let mut n = 0;
        for obj in objs {
            write::seed_quiet(&mut state, obj)?;
            n += 1;
        }
        Ok(n)
    }

    /// An object as the API would return it for this apiVersion and kind.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.shared.state();
        let rt = state.registry.by_kind(api_version, kind)?;
        let key = (
            if rt.namespaced {
                namespace.unwrap_or("default").to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let obj = state.get(&rt.storage_key, &key)?;
        Some(write::to_view(&rt, &obj).into_owned())
    }

    /// Every object of a kind, in every namespace, in key order.
    pub fn list_objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let state = self.shared.state();
        let Some(rt) = state.registry.by_kind(api_version, kind) else {
            return Vec::new();
        };
        state
            .collections
            .get(&rt.storage_key)
            .map(|c| {
                c.values()
                    .map(|o| write::to_view(&rt, o).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes an object directly (a DELETED watch event, no finalizers honoured).
    pub fn remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut state = self.shared.state();
        let rt = state.registry.by_kind(api_version, kind)?;
        let key = (
            if rt.namespaced {
                namespace.unwrap_or("default").to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let gone = state.remove(&rt.storage_key, &key, None)?;
        Some(write::to_view(&rt, &gone).into_owned())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state().rv
    }

    /// The fault injection handle.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request received so far (the most recent 100 000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// What the double has served so far (watches left out); also served as JSON on
    /// [`SERVING_PATH`].
    pub fn serving(&self) -> ServingStats {
        self.shared.serving.stats()
    }

    /// Start counting [`ServingStats::peak_in_flight`] again from the requests in flight now.
    pub fn reset_peak_in_flight(&self) {
        self.shared.serving.reset_peak();
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 5 s; the real
    /// server sends one about every minute and one shortly before the watch times out).
    pub fn set_bookmark_interval(&self, every: Duration) {
        *lock(&self.shared.bookmark_interval) = every.max(Duration::from_millis(10));
    }

    /// How many changes the watch history keeps (default 200 000). Older resourceVersions are
    /// "too old" for watches and continue tokens.
    pub fn set_history_limit(&self, changes: usize) {
        self.shared.state().history_limit = changes.max(1);
    }

    /// Stops the server and waits until its sockets are closed.
    pub async fn shutdown(self) {
        self.shared.faults.drop_watches();
        self.shared.stop_listening_and_wait().await;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.faults.drop_watches();
        self.shared.stop_listening();
    }
}
