//! `--web-addr`: the status page over HTTP/1.1, read-only, from the
//! snapshot of the last report run (no API request per page view).
//!
//! The connections are served by hyper directly rather than `axum::serve`,
//! which sets no header read timeout and keeps hyper's default request head
//! buffer of about 400 KiB (docs/design.md "The status page: the server"):
//!
//! - only `GET` and `HEAD` (anything else is 405 with `Allow`), no request
//!   body (413), a request head of at most 16 KiB (hyper closes the
//!   connection past it), a URI of at most 4 KiB (414);
//! - the request head must arrive within 10 s, a connection is closed after
//!   60 s (a browser opens another), at most 64 connections at once (more are
//!   closed at accept);
//! - each connection may send a burst of 30 requests, then 10 a second (429
//!   with `Retry-After` past that);
//! - pages and JSON are rendered on the blocking pool, two at a time, never
//!   on the runtime workers that run the report loop and renew the Lease;
//! - every answer carries a Content-Security-Policy that allows the page's
//!   inline stylesheet (by hash), its own script and its own origin, and
//!   nothing else.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use super::html::SERVER_CSP;
use super::json;
use super::model::{Change, Published, Snapshot};
use super::pages::{self, Ctx, Mode};
use super::query::{Filter, Params};

/// The limits of the server; [`Limits::default`] is what the operator uses.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long a connection is kept, busy or idle; a browser opens another.
    pub connection_lifetime: Duration,
    /// hyper's read buffer, which bounds the request line and headers.
    pub max_head_bytes: usize,
    pub max_uri_bytes: usize,
    /// Requests a connection may send at once, and per second after.
    pub burst: u32,
    pub per_second: u32,
    /// Pages rendered at once.
    pub renders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
            max_head_bytes: 16 * 1024,
            max_uri_bytes: 4096,
            burst: 30,
            per_second: 10,
            renders: 2,
        }
    }
}

/// A connection's request budget: a token bucket.
#[derive(Debug)]
struct Bucket {
    state: Mutex<(f64, Instant)>,
    burst: f64,
    per_second: f64,
}

impl Bucket {
    fn new(limits: &Limits) -> Bucket {
        Bucket {
            state: Mutex::new((f64::from(limits.burst), Instant::now())),
            burst: f64::from(limits.burst),
            per_second: f64::from(limits.per_second),
        }
    }

    /// Take one request from the budget; `false` when it is spent.
    fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct AppState {
    published: Arc<Published>,
    renders: Arc<Semaphore>,
}

/// The routes, with the method, size and rate checks and the headers.
pub fn router(published: Arc<Published>, limits: Limits) -> Router {
    let state = AppState {
        published,
        renders: Arc::new(Semaphore::new(limits.renders.max(1))),
    };
    Router::new()
        .route("/", get(overview))
        .route("/failing", get(failing))
        .route("/objects", get(objects))
        .route("/objects/{kind}/{namespace}/{name}", get(object))
        .route("/changes", get(changes))
        .route("/static/refresh.js", get(refresh_js))
        .route("/api/v1/report", get(api_report))
        .route("/api/v1/objects", get(api_objects))
        .route("/api/v1/objects/{kind}/{namespace}/{name}", get(api_object))
        .route("/api/v1/failing", get(api_failing))
        .route("/api/v1/changes", get(api_changes))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(move |req, next| {
            guard(req, next, limits)
        }))
}

/// Method, size and rate, then the security headers on every answer.
async fn guard(req: Request, next: Next, limits: Limits) -> Response {
    // A request refused here never reaches a handler (nothing is rendered for it).
    let mut response = match check(&req, &limits) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    let h = response.headers_mut();
    let set = |h: &mut header::HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, header::CONTENT_SECURITY_POLICY, &SERVER_CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    response
}

fn check(req: &Request, limits: &Limits) -> Option<Response> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return Some(plain(StatusCode::PAYLOAD_TOO_LARGE, "no request body\n"));
    }
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Some(plain(StatusCode::URI_TOO_LONG, "URI too long\n"));
    }
    if let Some(bucket) = req.extensions().get::<Arc<Bucket>>()
        && !bucket.take()
    {
        let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Some(r);
    }
    None
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a render produced.
enum Out {
    Html(String),
    Json(String),
    NotFound(&'static str),
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// Render from the current snapshot on the blocking pool, a few at a time.
async fn render<F>(state: &AppState, json: bool, f: F) -> Response
where
    F: FnOnce(&Snapshot, &VecDeque<Change>) -> Out + Send + 'static,
{
    let Some(snapshot) = state.published.load() else {
        let body = if json {
            json::error("no report computed yet")
        } else {
            "no report computed yet; the page appears after the first report run\n".into()
        };
        let content_type = if json {
            JSON
        } else {
            "text/plain; charset=utf-8"
        };
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let changes = state.published.changes();
    let Ok(_permit) = state.renders.acquire().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let out = tokio::task::spawn_blocking(move || f(&snapshot, &changes)).await;
    match out {
        Ok(Out::Html(body)) => ([(header::CONTENT_TYPE, HTML)], body).into_response(),
        Ok(Out::Json(body)) => ([(header::CONTENT_TYPE, JSON)], body).into_response(),
        Ok(Out::NotFound(what)) if json => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, JSON)],
            json::error(what),
        )
            .into_response(),
        Ok(Out::NotFound(what)) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{what}\n"),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a status page failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the page\n",
            )
        }
    }
}

fn ctx(s: &Snapshot) -> Ctx<'_> {
    Ctx {
        s,
        mode: Mode::Server,
        now: now(),
    }
}

fn page_number(p: &Params) -> usize {
    p.page
        .as_deref()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
        .max(1)
}

async fn overview(State(state): State<AppState>) -> Response {
    render(&state, false, |s, _| Out::Html(pages::overview(&ctx(s)))).await
}

async fn failing(State(state): State<AppState>, Query(p): Query<Params>) -> Response {
    let page = page_number(&p);
    render(&state, false, move |s, _| {
        Out::Html(pages::failing(&ctx(s), page))
    })
    .await
}

async fn objects(State(state): State<AppState>, Query(p): Query<Params>) -> Response {
    let f = Filter::from_params(&p);
    render(&state, false, move |s, _| {
        Out::Html(pages::objects(&ctx(s), &f))
    })
    .await
}

async fn object(
    State(state): State<AppState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    render(&state, false, move |s, _| {
        match pages::object(&ctx(s), &kind, &namespace, &name) {
            Some(page) => Out::Html(page),
            None => Out::NotFound("no such object in the last report run"),
        }
    })
    .await
}

async fn changes(State(state): State<AppState>) -> Response {
    render(&state, false, |s, changes| {
        Out::Html(pages::changes(&ctx(s), changes))
    })
    .await
}

/// Reloads the page every 30 s while it is visible and nobody is using the
/// filter form: the only script, served from our own origin.
const REFRESH_JS: &str = "\"use strict\";\nsetInterval(function () {\n  var a = document.activeElement;\n  if (document.visibilityState !== \"visible\") return;\n  if (a && (a.tagName === \"INPUT\" || a.tagName === \"SELECT\")) return;\n  location.reload();\n}, 30000);\n";

async fn refresh_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        REFRESH_JS,
    )
        .into_response()
}

async fn api_report(State(state): State<AppState>) -> Response {
    render(&state, true, |s, _| Out::Json(json::report(s))).await
}

async fn api_objects(State(state): State<AppState>, Query(p): Query<Params>) -> Response {
    let f = Filter::from_params(&p);
    render(&state, true, move |s, _| Out::Json(json::objects(s, &f))).await
}

async fn api_object(
    State(state): State<AppState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    render(&state, true, move |s, _| {
        match pages::find(s, &kind, &namespace, &name) {
            Some(id) => Out::Json(json::object(s, id)),
            None => Out::NotFound("no such object in the last report run"),
        }
    })
    .await
}

async fn api_failing(State(state): State<AppState>, Query(p): Query<Params>) -> Response {
    let page = page_number(&p);
    render(&state, true, move |s, _| Out::Json(json::failing(s, page))).await
}

async fn api_changes(State(state): State<AppState>) -> Response {
    render(&state, true, |_, changes| Out::Json(json::changes(changes))).await
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// Serve the status page on `listener` until `shutdown` completes, then let
/// the requests in flight finish (at most 5 s).
pub async fn serve(
    listener: TcpListener,
    published: Arc<Published>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(published, limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait a little, go on.
                Err(e) => {
                    tracing::warn!(error = %e, "status page: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Over the limit: closed at once.
            drop(stream);
            continue;
        };
        let bucket = Arc::new(Bucket::new(&limits));
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(bucket.clone());
                app.clone().oneshot(req.map(Body::new))
            });
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_head_bytes.max(8192))
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = pin!(conn);
            let idle = tokio::time::sleep(limits.connection_lifetime);
            let mut idle = pin!(idle);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                }
                () = &mut idle => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::fixture::{Obj, snapshot};
    use serde_json::Value;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    const T: i64 = 1_800_000_000;

    struct Server {
        addr: SocketAddr,
        published: Arc<Published>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let published = Arc::new(Published::new());
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, published.clone(), limits, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            published,
            stop,
            task,
        }
    }

    impl Server {
        async fn stop(self) {
            let _ = self.stop.send(());
            tokio::time::timeout(Duration::from_secs(10), self.task)
                .await
                .expect("stops in time")
                .unwrap()
                .unwrap();
        }
    }

    fn sample() -> Snapshot {
        snapshot(
            &[
                Obj::new("GitRepository", "apps", "fleet")
                    .failing("GitOperationFailed", "<img src=x onerror=alert(1)>")
                    .since(T - 600),
                Obj::new("GitRepository", "apps", "other"),
                Obj::new("Kustomization", "apps", "web")
                    .source("GitRepository", "apps", "fleet")
                    .failing("ArtifactFailed", "no artifact")
                    .since(T - 60),
                Obj::new("Kustomization", "apps", "jobs")
                    .depends_on("Kustomization", "apps", "web")
                    .waiting()
                    .since(T - 30),
                Obj::new("Kustomization", "team-a", "ok"),
            ],
            T,
        )
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        head: String,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
        }
    }

    /// Send `request` (whole, with its blank line) and read one answer;
    /// `None` when the server closed the connection instead.
    async fn exchange(s: &mut TcpStream, request: &str, head_only: bool) -> Option<Reply> {
        s.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => buf.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8(buf).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut reply = Reply {
            status,
            head,
            body: String::new(),
        };
        let len: usize = reply
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        if !head_only {
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.ok()?;
            reply.body = String::from_utf8(body).unwrap();
        }
        Some(reply)
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.unwrap();
        exchange(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
            false,
        )
        .await
        .expect("an answer")
    }

    #[tokio::test]
    async fn pages_and_json_come_from_the_published_snapshot_with_strict_headers() {
        let server = start(Limits::default()).await;
        let addr = server.addr;
        let before = get(addr, "/").await;
        assert_eq!(before.status, 503, "no report yet");
        assert_eq!(before.header("retry-after"), Some("5"));
        let r = get(addr, "/api/v1/report").await;
        assert_eq!((r.status, r.header("content-type")), (503, Some(JSON)));
        assert_eq!(r.json()["error"], "no report computed yet");

        server.published.store(sample());
        for (path, content_type) in [
            ("/", HTML),
            ("/failing", HTML),
            ("/objects", HTML),
            ("/objects?kind=Kustomization&ready=False", HTML),
            ("/objects/Kustomization/apps/web", HTML),
            ("/changes", HTML),
            ("/static/refresh.js", "text/javascript; charset=utf-8"),
            ("/api/v1/report", JSON),
            ("/api/v1/objects", JSON),
            ("/api/v1/objects/GitRepository/apps/fleet", JSON),
            ("/api/v1/failing", JSON),
            ("/api/v1/changes", JSON),
        ] {
            let r = get(addr, path).await;
            assert_eq!(r.status, 200, "{path}: {r:?}");
            assert_eq!(r.header("content-type"), Some(content_type), "{path}");
            assert_eq!(
                r.header("content-security-policy"),
                Some(SERVER_CSP.as_str()),
                "{path}"
            );
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert!(!r.body.contains("<img"), "{path}: escaped");
        }
        let csp = SERVER_CSP.as_str();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));

        let page = get(addr, "/failing").await.body;
        assert!(page.contains("Failing (2)"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("<script src=\"/static/refresh.js\" defer></script>"));

        assert_eq!(
            get(addr, "/objects/Kustomization/apps/nope").await.status,
            404
        );
        let r = get(addr, "/api/v1/objects/Kustomization/apps/nope").await;
        assert_eq!((r.status, r.json()["error"].is_string()), (404, true));
        assert_eq!(get(addr, "/nothing-here").await.status, 404);
        server.stop().await;
    }

    #[tokio::test]
    async fn the_json_api_filters_paginates_and_groups_by_root_cause() {
        let server = start(Limits::default()).await;
        let addr = server.addr;
        server.published.store(sample());
        server.published.record(Change {
            at: T,
            warning: true,
            reason: "ComponentsNotReady".into(),
            message: "component helm-controller is not ready".into(),
            object: "FluxInstance/flux".into(),
        });

        let r = get(addr, "/api/v1/report").await.json();
        assert_eq!(r["kind"], "FluxReport");
        assert_eq!(r["metadata"]["namespace"], "flux-system");
        assert_eq!(r["status"]["conditions"][0]["type"], "Ready");

        let r = get(addr, "/api/v1/objects?kind=Kustomization&per_page=2&page=2")
            .await
            .json();
        assert_eq!(
            (
                r["total"].as_u64(),
                r["pages"].as_u64(),
                r["perPage"].as_u64()
            ),
            (Some(3), Some(2), Some(2))
        );
        assert_eq!(r["items"].as_array().unwrap().len(), 1);
        assert_eq!(r["items"][0]["name"], "ok");
        let r = get(addr, "/api/v1/objects?ready=False&q=ARTIFACT")
            .await
            .json();
        assert_eq!(r["total"], 1);
        assert_eq!(r["items"][0]["name"], "web");
        assert_eq!(r["items"][0]["failing"], true);
        assert_eq!(r["items"][0]["source"]["name"], "fleet");
        let r = get(
            addr,
            "/api/v1/objects?failing=false&suspended=false&namespace=apps",
        )
        .await
        .json();
        assert_eq!(r["total"], 2, "{r}");

        let r = get(addr, "/api/v1/failing").await.json();
        assert_eq!(
            (
                r["failing"].as_u64(),
                r["waiting"].as_u64(),
                r["rootCauses"].as_u64()
            ),
            (Some(2), Some(1), Some(1))
        );
        let g = &r["groups"][0];
        assert_eq!(g["cause"]["key"], "GitRepository/apps/fleet");
        assert_eq!(
            g["cause"]["object"]["message"], "<img src=x onerror=alert(1)>",
            "JSON is data, not markup"
        );
        assert_eq!(g["dependantsTotal"], 2);
        let names: Vec<&str> = g["dependants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["jobs", "web"], "newest first");

        let r = get(addr, "/api/v1/objects/Kustomization/apps/jobs")
            .await
            .json();
        assert_eq!(r["rootCause"], "GitRepository/apps/fleet");
        assert_eq!(r["waiting"], true);
        assert_eq!(r["dependsOn"][0]["name"], "web");
        assert_eq!(r["conditions"][0]["reason"], "DependencyNotReady");

        let r = get(addr, "/api/v1/changes").await.json();
        assert_eq!(r["items"][0]["type"], "Warning");
        assert_eq!(r["items"][0]["time"], "2027-01-15T08:00:00Z");
        let page = get(addr, "/changes").await.body;
        assert!(page.contains("component helm-controller is not ready"));
        server.stop().await;
    }

    #[tokio::test]
    async fn only_get_and_head_without_a_body_and_a_short_uri_are_served() {
        let server = start(Limits::default()).await;
        let addr = server.addr;
        server.published.store(sample());
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let r = exchange(
                &mut s,
                &format!("{method} / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                false,
            )
            .await
            .unwrap();
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
            assert!(r.header("content-security-policy").is_some());
        }
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, "HEAD /objects HTTP/1.1\r\nHost: t\r\n\r\n", true)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(HTML));
        // The same connection goes on: the HEAD answer had no body.
        let r = exchange(
            &mut s,
            "GET /api/v1/changes HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);

        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(
            &mut s,
            "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 413);
        let long = format!("/objects?q={}", "a".repeat(5000));
        assert_eq!(get(addr, &long).await.status, 414);
        // A request head past 16 KiB: refused, never buffered whole.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let big = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(20_000)
        );
        match exchange(&mut s, &big, false).await {
            None => {}
            Some(r) => assert_eq!(r.status, 431, "{r:?}"),
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_refused_request_renders_nothing() {
        let limits = Limits {
            burst: 1,
            per_second: 1,
            ..Limits::default()
        };
        let server = start(limits).await;
        let addr = server.addr;
        server.published.store(sample());
        let built = || server.published.load().unwrap().index_built();
        let mut s = TcpStream::connect(addr).await.unwrap();
        for (request, status) in [
            ("GET /static/refresh.js HTTP/1.1\r\nHost: t\r\n\r\n", 200),
            // The connection's budget is spent: throttled before any handler.
            ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 429),
            // Refused for its method before the budget is even looked at.
            (
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                405,
            ),
        ] {
            let r = exchange(&mut s, request, false).await.unwrap();
            assert_eq!(r.status, status, "{request}");
        }
        assert!(
            !built(),
            "neither the refused POST nor the throttled GET rendered a page"
        );
        assert_eq!(get(addr, "/").await.status, 200);
        assert!(built(), "a page that was served did");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_connection_that_sends_too_fast_gets_429_and_others_are_unaffected() {
        let limits = Limits {
            burst: 5,
            per_second: 1,
            ..Limits::default()
        };
        let server = start(limits).await;
        let addr = server.addr;
        server.published.store(sample());
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut statuses = Vec::new();
        for _ in 0..7 {
            let r = exchange(
                &mut s,
                "GET /static/refresh.js HTTP/1.1\r\nHost: t\r\n\r\n",
                false,
            )
            .await
            .unwrap();
            statuses.push(r.status);
            if r.status == 429 {
                assert_eq!(r.header("retry-after"), Some("1"));
            }
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
        assert_eq!(
            get(addr, "/static/refresh.js").await.status,
            200,
            "a new connection has its own budget"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_past_the_limit_and_silent_clients_are_closed() {
        let limits = Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = start(limits).await;
        let addr = server.addr;
        server.published.store(sample());
        // One connection that says nothing holds the only place…
        let mut silent = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // …so the next is closed at once.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
            .await
            .expect("closed, not left hanging")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // The silent one is closed once its head does not come in time.
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("closed by the header read timeout")
            .unwrap_or(0);
        let _ = n; // hyper may answer 408 first; either way the connection ends.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(addr, "/").await.status, 200, "the place is free again");
        server.stop().await;
    }
}
