//! The operator's HTTP endpoints: `/metrics` on the metrics address, and
//! `/healthz` and `/readyz` on the health address. Plain HTTP/1.1; anything
//! else is a 404. With `--metrics-secure`, `/metrics` is HTTPS and reviewed
//! (`serve_metrics_secure`, `metrics_secure`); the health endpoints stay plain.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use tokio::net::TcpListener;

use crate::metrics::{Format, Metrics};
use crate::watchdog::Watchdog;

/// Listen on `addr` (`host:port`; a Go-style `:port` means every interface).
/// The error names the address, e.g. `cannot listen on 0.0.0.0:8080: Address
/// already in use (os error 98)`.
pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    let target = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    TcpListener::bind(&target)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Serve `GET /metrics` until `shutdown` completes, then finish the requests
/// in flight.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serve `GET /metrics` over TLS to requests whose bearer token the API
/// server authenticates and authorizes (`metrics_secure::require_review`),
/// until `shutdown` completes.
pub async fn serve_metrics_secure(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    secure: &crate::metrics_secure::Secure,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
        .layer(axum::middleware::from_fn_with_state(
            secure.authorizer.clone(),
            crate::metrics_secure::require_review,
        ));
    let listener = crate::metrics_secure::TlsListener::new(listener, secure.tls.clone())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the format the `Accept` header prefers (see `metrics::Format`).
///
/// The body is encoded off the async workers (which also run the report loop
/// and renew the Lease) and sent in chunks of [`CHUNK`] bytes as they fill:
/// at 100,000 objects the body is about 30 MB, which is then never held whole,
/// and sending overlaps encoding. A body that fits in one chunk is sent whole,
/// with its length. The status is decided by the first chunk: an
/// encoding error before it is a 500; one after it (not expected from the
/// in-memory collectors) ends the body early, which the scraper sees as a
/// failed scrape.
async fn metrics_handler(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate(&accept.join(","));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            buf: String::with_capacity(CHUNK),
            tx,
        };
        let encoded = metrics
            .encode_to(format, &mut out)
            .and_then(|()| out.send());
        if encoded.is_err() && !out.tx.is_closed() {
            tracing::error!("cannot encode the metrics");
            let _ = out
                .tx
                .blocking_send(Err(io::Error::other("cannot encode the metrics")));
        }
    });
    match rx.recv().await {
        Some(Ok(first)) => {
            let body = match rx.recv().await {
                // All of it in one chunk: a plain body with its length.
                None => Body::from(first),
                Some(second) => {
                    let rest = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|chunk| (chunk, rx))
                    });
                    Body::from_stream(futures::stream::iter([Ok(first), second]).chain(rest))
                }
            };
            (
                [
                    (header::CONTENT_TYPE, format.content_type()),
                    (header::VARY, "Accept"),
                ],
                body,
            )
                .into_response()
        }
        Some(Err(_)) | None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

/// The size of the pieces `/metrics` is sent in: below glibc's mmap threshold
/// as the operator sets it (`allocator.rs`), so the buffers are reused from
/// the heap, not mapped and faulted in per scrape.
const CHUNK: usize = 256 * 1024;

/// A `fmt::Write` that hands its text to the response body every [`CHUNK`]
/// bytes. Writing fails once the client has gone, which stops the encoding.
struct Chunks {
    buf: String,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
}

impl Chunks {
    fn send(&mut self) -> std::fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }
}

/// Liveness and readiness, set by the operator and read by the probes.
#[derive(Debug)]
pub struct Health {
    /// Liveness: the report loop's progress.
    pub watchdog: Watchdog,
    /// `None` when ready, else why not.
    not_ready: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Live, and not ready until told (`starting`).
    pub fn new() -> Self {
        Health {
            watchdog: Watchdog::new(),
            not_ready: Mutex::new(Some("starting".into())),
        }
    }

    /// `Ok` while the report loop makes progress, else why not.
    pub fn liveness(&self) -> Result<(), String> {
        self.watchdog.check()
    }

    pub fn set_ready(&self) {
        *self.lock() = None;
    }

    /// Not ready, for a short `reason` that `/readyz` returns.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    /// `Ok` when ready, else the reason.
    pub fn readiness(&self) -> Result<(), String> {
        match &*self.lock() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.not_ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serve `GET /healthz` and `GET /readyz` until `shutdown` completes.
pub async fn serve_health(
    listener: TcpListener,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {reason}\n"),
        ),
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsConfig;
    use flux_reporter_api::FluxReportSpec;
    use flux_reporter_report::Outcome;
    use flux_reporter_report::metrics::ResourceRow;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    async fn get(addr: SocketAddr, path: &str) -> Reply {
        get_with(addr, path, "").await
    }

    /// `GET` with extra header lines (each ending in `\r\n`).
    async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8(buf).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    type Server = (SocketAddr, oneshot::Sender<()>, JoinHandle<io::Result<()>>);

    async fn start_metrics(metrics: Arc<Metrics>) -> Server {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve_metrics(listener, metrics, async {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    async fn start_health(health: Arc<Health>) -> Server {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve_health(listener, health, async {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    async fn stop((_, tx, task): Server) {
        tx.send(()).expect("server still running");
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("graceful shutdown in time")
            .expect("no panic");
        result.expect("serve returns Ok");
    }

    const PROMETHEUS_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";

    fn has_header(reply: &Reply, name: &str, value: &str) -> bool {
        reply
            .headers
            .contains(&format!("\r\n{name}: {}", value.to_ascii_lowercase()))
    }

    /// The body of a `Transfer-Encoding: chunked` reply.
    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        loop {
            let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
            let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
            if size == 0 {
                return out;
            }
            out.push_str(&rest[..size]);
            body = rest[size..]
                .strip_prefix("\r\n")
                .expect("CRLF after a chunk");
        }
    }

    #[tokio::test]
    async fn a_body_larger_than_a_chunk_is_streamed_in_pieces_that_add_up_to_the_encoding() {
        let metrics = Arc::new(Metrics::new(MetricsConfig::default()));
        let rows: Vec<ResourceRow> = (0..4000)
            .map(|i| ResourceRow {
                kind: "Kustomization".into(),
                name: format!("app-{i:05}-with-a-name-long-enough-to-fill-chunks"),
                exported_namespace: "apps".into(),
                ..Default::default()
            })
            .collect();
        let mut o = Outcome::default();
        o.resource_rows.insert("Kustomization".into(), rows.into());
        metrics.publish(&o, &FluxReportSpec::default());
        let whole = metrics.encode(Format::OpenMetrics).unwrap();
        assert!(whole.len() > 2 * CHUNK, "{} bytes", whole.len());

        let server = start_metrics(metrics.clone()).await;
        let reply = get_with(server.0, "/metrics", PROMETHEUS_ACCEPT).await;
        assert_eq!(reply.status, 200);
        assert!(has_header(&reply, "transfer-encoding", "chunked"));
        assert_eq!(dechunk(&reply.body), whole);
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_the_published_set_in_the_accepted_format() {
        let metrics = Arc::new(Metrics::new(MetricsConfig::default()));
        let server = start_metrics(metrics.clone()).await;
        let addr = server.0;

        let reply = get_with(addr, "/metrics", PROMETHEUS_ACCEPT).await;
        assert_eq!(reply.status, 200);
        assert!(has_header(
            &reply,
            "content-type",
            Format::OpenMetrics.content_type()
        ));
        assert!(has_header(&reply, "vary", "accept"));
        assert_eq!(reply.body, metrics.encode(Format::OpenMetrics).unwrap());
        assert!(reply.body.starts_with("# HELP flux_reporter_info"));

        let mut o = Outcome::default();
        o.resource_rows.insert(
            "Kustomization".into(),
            vec![ResourceRow {
                kind: "Kustomization".into(),
                name: "flux-system".into(),
                ..Default::default()
            }]
            .into(),
        );
        fail_section(&mut o, "components");
        metrics.publish(&o, &FluxReportSpec::default());
        let reply = get_with(addr, "/metrics", PROMETHEUS_ACCEPT).await;
        assert_eq!(reply.status, 200);
        assert!(has_header(
            &reply,
            "content-length",
            &reply.body.len().to_string()
        ));
        assert!(reply.body.contains("name=\"flux-system\""));
        assert!(reply.body.contains(
            "# TYPE flux_report_section_errors counter\n\
             flux_report_section_errors_total{section=\"cluster\"} 0\n"
        ));
        assert!(reply.body.ends_with("# EOF\n"));

        // curl, older scrapers: text 0.0.4, the same samples.
        for accept in ["", "Accept: */*\r\n", "Accept: text/plain\r\n"] {
            let text = get_with(addr, "/metrics", accept).await;
            assert_eq!(text.status, 200, "{accept:?}");
            assert!(
                has_header(&text, "content-type", Format::Text.content_type()),
                "{accept:?}: {}",
                text.headers
            );
            assert_eq!(text.body, metrics.encode(Format::Text).unwrap());
            assert!(!text.body.contains("# EOF"));
            assert!(text.body.contains(
                "# TYPE flux_report_section_errors_total counter\n\
                 flux_report_section_errors_total{section=\"cluster\"} 0\n"
            ));
            let samples = |body: &str| -> Vec<String> {
                body.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(String::from)
                    .collect()
            };
            assert_eq!(samples(&text.body), samples(&reply.body));
        }

        assert_eq!(get(addr, "/").await.status, 404);
        assert_eq!(get(addr, "/healthz").await.status, 404);
        stop(server).await;
    }

    fn fail_section(o: &mut Outcome, section: &str) {
        let section = flux_reporter_report::Section::ALL
            .into_iter()
            .find(|s| s.as_str() == section)
            .expect("a section");
        o.failures.push(flux_reporter_report::Failure {
            section,
            kind: None,
            error: "boom".into(),
        });
    }

    #[tokio::test]
    async fn health_endpoints_follow_live_and_ready() {
        let health = Arc::new(Health::new());
        let server = start_health(health.clone()).await;
        let addr = server.0;

        let reply = get(addr, "/healthz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: starting\n")
        );

        health.set_ready();
        let reply = get(addr, "/readyz").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));

        health.set_not_ready("no report yet");
        let reply = get(addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: no report yet\n")
        );

        // A loop that makes no progress within its limit fails liveness.
        health
            .watchdog
            .arm(Duration::from_millis(1), Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reply = get(addr, "/healthz").await;
        assert_eq!(reply.status, 503);
        assert!(
            reply
                .body
                .starts_with("not live: no report run has reached the Kubernetes API server"),
            "{}",
            reply.body
        );
        assert_eq!(get(addr, "/metrics").await.status, 404);
        stop(server).await;
    }

    #[tokio::test]
    async fn bind_errors_name_the_address() {
        let taken = bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().unwrap().to_string();
        let err = bind(&addr).await.expect_err("address in use");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
        let err = bind("not an address").await.expect_err("bad address");
        assert!(
            err.to_string()
                .starts_with("cannot listen on not an address: ")
        );
    }

    #[tokio::test]
    async fn go_style_port_only_address_listens_everywhere() {
        let listener = bind(":0").await.expect("bind :0");
        assert!(listener.local_addr().unwrap().ip().is_unspecified());
    }
}
