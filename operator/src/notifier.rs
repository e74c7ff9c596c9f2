//! Forwarding of events to Flux's notification-controller, as Flux's own recorder does it
//! (anchor §3.3): one JSON document per event, POSTed over plain HTTP, with a timeout, bounded
//! retries on connection errors, timeouts and 5xx, and no retry on 429 (duplicates) nor other 4xx.
//!
//! A background worker owns a bounded queue, so [`Notifier::send`] never waits on the receiver:
//! a slow or dead notification-controller costs dropped notifications, never a late report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout_at};

/// The Flux event API's limit on `message`.
pub const MAX_MESSAGE_CHARS: usize = 39_000;

/// The longest wait between two attempts, whatever the configured backoff doubles to.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how hard to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifierConfig {
    /// The event receiver, e.g. `http://notification-controller.flux-system.svc.cluster.local./`.
    pub address: String,
    /// Per attempt: connect, send, and read the status line.
    pub timeout: Duration,
    /// Attempts per event, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each failed attempt.
    pub backoff: Duration,
    /// Events waiting for the worker; more are dropped.
    pub queue: usize,
}

impl NotifierConfig {
    /// A 5s timeout per attempt (as Flux's recorder), 3 attempts 1s then 2s apart, a queue of 100.
    pub fn new(address: impl Into<String>) -> Self {
        NotifierConfig {
            address: address.into(),
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_secs(1),
            queue: 100,
        }
    }
}

/// The notification-controller address, as the anchor resolves it (§3.1): an explicit address
/// wins, else the in-cluster Service when a notification-controller is present, else none.
/// `domain` is the cluster domain (FluxInstance `spec.cluster.domain`, else `cluster.local`).
/// `disabled` turns forwarding off whatever the address.
pub fn derive_address(
    namespace: &str,
    domain: &str,
    notification_controller_present: bool,
    explicit: &str,
    disabled: bool,
) -> Option<String> {
    if disabled {
        return None;
    }
    let explicit = explicit.trim();
    if !explicit.is_empty() {
        return Some(explicit.to_string());
    }
    if notification_controller_present && !namespace.is_empty() {
        // The trailing dot makes the name absolute (no resolv.conf search list); the trailing
        // slash is the receiver's path. Both as the anchor writes them.
        let domain = match domain.trim().trim_end_matches('.') {
            "" => "cluster.local",
            d => d,
        };
        return Some(format!(
            "http://notification-controller.{namespace}.svc.{domain}./"
        ));
    }
    None
}

/// The object an event is about (a core/v1 ObjectReference subset, empty fields left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
}

impl InvolvedObject {
    /// The first of kind, name and namespace that is empty: notification-controller cannot
    /// route such an event, so Flux's recorder does not post it.
    fn missing_field(&self) -> Option<&'static str> {
        [
            ("kind", &self.kind),
            ("name", &self.name),
            ("namespace", &self.namespace),
        ]
        .into_iter()
        .find(|(_, v)| v.is_empty())
        .map(|(field, _)| field)
    }
}

/// `info` for Normal events, `error` for Warning events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Error,
}

/// The Flux event document (`fluxcd/pkg/apis/event/v1beta1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxEvent {
    pub involved_object: InvolvedObject,
    pub severity: Severity,
    /// RFC 3339, seconds precision, UTC (`metav1.Time`); see [`timestamp_now`].
    pub timestamp: String,
    /// Capped at [`MAX_MESSAGE_CHARS`] by [`Notifier::send`].
    pub message: String,
    pub reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub reporting_controller: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// Now, as `metav1.Time` serializes: `2026-11-22T05:25:24Z`.
pub fn timestamp_now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// `message` cut to at most `max` characters, the cut marked with `…` within the limit.
pub fn cap_chars(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match message.char_indices().nth(max) {
        None => message.into(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = message
                .char_indices()
                .nth(keep)
                .map_or(message.len(), |(i, _)| i);
            format!("{}…", &message[..end]).into()
        }
    }
}

/// Counters since [`Notifier::spawn`], for logs, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// Accepted by notification-controller (2xx).
    pub delivered: u64,
    /// Refused with 429: notification-controller already has an identical event.
    pub duplicates: u64,
    /// Given up: refused with another status, or every attempt failed.
    pub failed: u64,
    /// Never attempted: queue full, or sent after shutdown.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    /// Accepted by `send` and not finished yet (in the queue or being delivered).
    queued: AtomicUsize,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    address: String,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// A handle on the forwarding worker; clones share the worker and its queue.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<FluxEvent>,
    queue: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start the worker on the current Tokio runtime (panics outside one, as `tokio::spawn`).
    /// An address that is not an `http://` URL is logged here, and every event is then dropped
    /// with a warning.
    pub fn spawn(config: NotifierConfig) -> Notifier {
        let queue = config.queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let poster = Poster::new(&config);
        if let Err(e) = &poster.uri {
            tracing::error!(address = %config.address, error = %e, "notification forwarding is off: bad address");
        }
        let worker = tokio::spawn(run_worker(rx, stop_rx, poster, counters.clone()));
        Notifier {
            tx,
            queue,
            shared: Arc::new(Shared {
                address: config.address,
                stop,
                worker: Mutex::new(Some(worker)),
                counters,
            }),
        }
    }

    /// Queue `event` for forwarding. Never waits and never fails: an event whose involved
    /// object lacks a kind, name or namespace is skipped (as Flux does), and a full queue
    /// drops the event with a warning.
    pub fn send(&self, mut event: FluxEvent) {
        if let Some(field) = event.involved_object.missing_field() {
            tracing::debug!(reason = %event.reason, field, "event not forwarded: involved object has no {field}");
            return;
        }
        if let std::borrow::Cow::Owned(capped) = cap_chars(&event.message, MAX_MESSAGE_CHARS) {
            event.message = capped;
        }
        let counters = &self.shared.counters;
        counters.queued.fetch_add(1, Ordering::Relaxed);
        let (event, why) = match self.tx.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(event)) => (event, "the queue is full"),
            Err(mpsc::error::TrySendError::Closed(event)) => (event, "the notifier is shut down"),
        };
        counters.queued.fetch_sub(1, Ordering::Relaxed);
        counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            reason = %event.reason,
            queue = self.queue,
            "event not forwarded to notification-controller: {why}"
        );
    }

    pub fn stats(&self) -> NotifierStats {
        let c = &self.shared.counters;
        NotifierStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Stop taking events and forward what is queued, for at most `grace`; then abandon the
    /// rest (logged with its count). Other clones of this handle see their later `send`s dropped.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shared.stop.send(true);
        let worker = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(mut worker) = worker else { return };
        if tokio::time::timeout(grace, &mut worker).await.is_err() {
            worker.abort();
            let pending = self.shared.counters.queued.load(Ordering::Relaxed);
            tracing::warn!(
                pending,
                grace = ?grace,
                "notifier shutdown: grace period over, abandoning undelivered events"
            );
        }
    }
}

async fn run_worker(
    mut rx: mpsc::Receiver<FluxEvent>,
    mut stop: watch::Receiver<bool>,
    poster: Poster,
    counters: Arc<Counters>,
) {
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            // Closing the queue lets `recv` drain what is in it, then return None.
            _ = stop.changed(), if !stopping => {
                stopping = true;
                rx.close();
            }
            event = rx.recv() => {
                let Some(event) = event else { break };
                let outcome = poster.deliver(&event).await;
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                outcome.log(&event, &poster.address);
                let counter = match outcome {
                    Outcome::Delivered { .. } => &counters.delivered,
                    Outcome::Rejected { status, .. } if status == StatusCode::TOO_MANY_REQUESTS => {
                        &counters.duplicates
                    }
                    Outcome::Rejected { .. } | Outcome::GaveUp { .. } => &counters.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How one event's delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Delivered {
        attempts: u32,
    },
    /// A status that retrying cannot change (4xx, 3xx, 501); 429 means "duplicate".
    Rejected {
        status: StatusCode,
        attempts: u32,
    },
    /// Every attempt failed (connection error, timeout, 5xx), or the address is unusable.
    GaveUp {
        attempts: u32,
        error: String,
    },
}

impl Outcome {
    fn log(&self, event: &FluxEvent, address: &str) {
        match self {
            Outcome::Delivered { attempts } => {
                tracing::debug!(reason = %event.reason, attempts, "event forwarded to notification-controller");
            }
            Outcome::Rejected { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                tracing::debug!(reason = %event.reason, "notification-controller already has this event (429)");
            }
            Outcome::Rejected { status, attempts } => tracing::warn!(
                reason = %event.reason,
                %address,
                attempts,
                error = %format!("notification-controller answered {status}"),
                "cannot forward event to notification-controller"
            ),
            Outcome::GaveUp { attempts, error } => tracing::warn!(
                reason = %event.reason,
                %address,
                attempts,
                %error,
                "cannot forward event to notification-controller"
            ),
        }
    }
}

/// The HTTP side: one client (connection pool) for the worker's lifetime.
struct Poster {
    address: String,
    uri: Result<Uri, String>,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

impl Poster {
    fn new(config: &NotifierConfig) -> Poster {
        let uri = config
            .address
            .parse::<Uri>()
            .map_err(|e| format!("invalid address {:?}: {e}", config.address))
            .and_then(|uri| match uri.scheme_str() {
                Some("http") if uri.host().is_some() => Ok(uri),
                _ => Err(format!(
                    "unsupported address {:?}: want http://host[:port]/path",
                    config.address
                )),
            });
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Poster {
            address: config.address.clone(),
            uri,
            client,
            timeout: config.timeout,
            attempts: config.attempts.max(1),
            backoff: config.backoff,
        }
    }

    async fn deliver(&self, event: &FluxEvent) -> Outcome {
        let uri = match &self.uri {
            Ok(uri) => uri,
            Err(e) => {
                return Outcome::GaveUp {
                    attempts: 0,
                    error: e.clone(),
                };
            }
        };
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                return Outcome::GaveUp {
                    attempts: 0,
                    error: format!("cannot encode the event: {e}"),
                };
            }
        };
        let mut backoff = self.backoff;
        let mut attempt = 1;
        loop {
            let error = match self.post_once(uri, body.clone()).await {
                Ok(status) if status.is_success() => {
                    return Outcome::Delivered { attempts: attempt };
                }
                Ok(status) if retryable(status) => {
                    format!("notification-controller answered {status}")
                }
                Ok(status) => {
                    return Outcome::Rejected {
                        status,
                        attempts: attempt,
                    };
                }
                Err(e) => e,
            };
            if attempt >= self.attempts {
                return Outcome::GaveUp {
                    attempts: attempt,
                    error,
                };
            }
            tracing::debug!(reason = %event.reason, attempt, %error, "forwarding failed; retrying in {backoff:?}");
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// One POST: the status, or why there is none (connection error, timeout).
    async fn post_once(&self, uri: &Uri, body: Bytes) -> Result<StatusCode, String> {
        let request = http::Request::post(uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("flux-reporter/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        let response = match timeout_at(deadline, self.client.request(request)).await {
            Err(_) => return Err(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => return Err(error_chain(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        // Read the (small) body so the connection can be reused; its content does not matter.
        let _ = timeout_at(deadline, response.into_body().collect()).await;
        Ok(status)
    }
}

/// Connection errors and timeouts are retried by the caller; of the statuses, the 5xx ones,
/// except 501 (as go-retryablehttp, which Flux's recorder uses).
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
}

/// "client error (Connect): tcp connect error: Connection refused (os error 111)".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A local HTTP/1.1 server and a log capture, shared by the notifier and events tests.
#[cfg(test)]
pub(crate) mod test_http {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::sleep;

    /// What the test receiver answers to the n-th request.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Reply {
        Status(u16),
        /// Read the request, then never answer.
        Hang,
        /// Answer with this status and the request body as JSON: enough of an API server for
        /// a create or a merge patch whose body is the whole object.
        Echo(u16),
    }

    #[derive(Clone, Debug)]
    pub(crate) struct Received {
        pub(crate) request_line: String,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: Vec<u8>,
    }

    impl Received {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        pub(crate) fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("the body is JSON")
        }
    }

    /// A local HTTP/1.1 event receiver: answers the scripted replies in order, then the last
    /// one forever, and records every request.
    pub(crate) struct TestReceiver {
        pub(crate) url: String,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl TestReceiver {
        pub(crate) async fn start(script: Vec<Reply>) -> TestReceiver {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let received = Arc::new(Mutex::new(Vec::new()));
            let recorded = received.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let recorded = recorded.clone();
                    let script = script.clone();
                    tokio::spawn(serve(stream, recorded, script));
                }
            });
            TestReceiver {
                url: format!("http://{addr}/"),
                received,
            }
        }

        pub(crate) fn received(&self) -> Vec<Received> {
            self.received.lock().unwrap().clone()
        }
    }

    async fn serve(mut stream: TcpStream, recorded: Arc<Mutex<Vec<Received>>>, script: Vec<Reply>) {
        // One request per connection: every answer says `Connection: close`.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        let echo = body.clone();
        let n = {
            let mut r = recorded.lock().unwrap();
            r.push(Received {
                request_line,
                headers,
                body,
            });
            r.len()
        };
        let reply = script
            .get(n - 1)
            .or(script.last())
            .copied()
            .unwrap_or(Reply::Status(202));
        match reply {
            Reply::Hang => {
                sleep(Duration::from_secs(3600)).await;
            }
            Reply::Status(code) => {
                let answer = format!(
                    "HTTP/1.1 {code} Test\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            Reply::Echo(code) => {
                let head = format!(
                    "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    echo.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&echo).await;
                let _ = stream.shutdown().await;
            }
        }
    }

    #[derive(Clone, Default)]
    pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl LogBuffer {
        /// Route this thread's logs here; tokio's current-thread test runtime runs the worker
        /// on the same thread.
        pub(crate) fn capture(&self) -> tracing::subscriber::DefaultGuard {
            let writer = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .finish();
            tracing::subscriber::set_default(subscriber)
        }
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_http::{LogBuffer, Reply, TestReceiver};
    use super::*;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;

    fn config(url: &str) -> NotifierConfig {
        NotifierConfig {
            address: url.to_string(),
            timeout: Duration::from_millis(500),
            attempts: 3,
            backoff: Duration::from_millis(20),
            queue: 100,
        }
    }

    fn event(reason: &str) -> FluxEvent {
        FluxEvent {
            involved_object: InvolvedObject {
                kind: "FluxInstance".into(),
                namespace: "flux-system".into(),
                name: "flux".into(),
                uid: "add5e064-469d-419b-9d67-b18976c344d4".into(),
                api_version: "fluxcd.controlplane.io/v1".into(),
                resource_version: "56916".into(),
            },
            severity: Severity::Error,
            timestamp: timestamp_now(),
            message: "source-controller is not ready".into(),
            reason: reason.into(),
            metadata: BTreeMap::from([
                (
                    "event.toolkit.fluxcd.io/cluster".to_string(),
                    "prod-eu".to_string(),
                ),
                (
                    "fluxcd.controlplane.io/revision".to_string(),
                    "v2.7.0@sha256:abc".to_string(),
                ),
            ]),
            reporting_controller: "flux-reporter".into(),
            reporting_instance: "flux-reporter-7d9f8c6b5-x2x4z".into(),
        }
    }

    /// A port with nothing listening on it.
    async fn dead_address() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn posts_the_flux_event_document() {
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        let sent = event("HealthCheckFailed");
        notifier.send(sent.clone());
        notifier.clone().shutdown(Duration::from_secs(5)).await;

        let received = receiver.received();
        assert_eq!(received.len(), 1);
        let request = &received[0];
        assert_eq!(request.request_line, "POST / HTTP/1.1");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(request.header("host").unwrap().starts_with("127.0.0.1:"));
        let body = request.json();
        assert_eq!(
            body["involvedObject"],
            serde_json::json!({
                "kind": "FluxInstance",
                "namespace": "flux-system",
                "name": "flux",
                "uid": "add5e064-469d-419b-9d67-b18976c344d4",
                "apiVersion": "fluxcd.controlplane.io/v1",
                "resourceVersion": "56916",
            })
        );
        assert_eq!(body["severity"], "error");
        assert_eq!(body["reason"], "HealthCheckFailed");
        assert_eq!(body["message"], "source-controller is not ready");
        assert_eq!(
            body["metadata"]["event.toolkit.fluxcd.io/cluster"],
            "prod-eu"
        );
        assert_eq!(
            body["metadata"]["fluxcd.controlplane.io/revision"],
            "v2.7.0@sha256:abc"
        );
        assert_eq!(body["reportingController"], "flux-reporter");
        assert_eq!(body["reportingInstance"], "flux-reporter-7d9f8c6b5-x2x4z");
        let timestamp = body["timestamp"].as_str().unwrap();
        assert_eq!(timestamp, sent.timestamp);
        assert!(timestamp.parse::<Timestamp>().is_ok(), "{timestamp}");
        assert!(
            timestamp.ends_with('Z') && !timestamp.contains('.'),
            "{timestamp}"
        );
        assert_eq!(
            notifier.stats(),
            NotifierStats {
                delivered: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn info_severity_and_empty_fields_are_left_out() {
        let mut e = event("ReconciliationSucceeded");
        e.severity = Severity::Info;
        e.metadata.clear();
        e.involved_object.uid.clear();
        e.reporting_instance.clear();
        let body = serde_json::to_value(&e).unwrap();
        assert_eq!(body["severity"], "info");
        assert!(body.get("metadata").is_none());
        assert!(body["involvedObject"].get("uid").is_none());
        assert!(body.get("reportingInstance").is_none());
    }

    #[tokio::test]
    async fn retries_a_500_then_succeeds() {
        let receiver = TestReceiver::start(vec![Reply::Status(500), Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        notifier.send(event("HealthCheckFailed"));
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        let received = receiver.received();
        assert_eq!(received.len(), 2);
        assert_eq!(
            received[0].body, received[1].body,
            "the same document twice"
        );
        assert_eq!(notifier.stats().delivered, 1);
        assert_eq!(notifier.stats().failed, 0);
    }

    #[tokio::test]
    async fn does_not_retry_a_429() {
        let receiver = TestReceiver::start(vec![Reply::Status(429), Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        notifier.send(event("HealthCheckFailed"));
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(notifier.stats().duplicates, 1);
        assert_eq!(notifier.stats().failed, 0);
    }

    #[tokio::test]
    async fn does_not_retry_other_4xx_and_logs_the_failure() {
        let logs = LogBuffer::default();
        let _guard = logs.capture();
        let receiver = TestReceiver::start(vec![Reply::Status(400), Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        notifier.send(event("HealthCheckFailed"));
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        assert_eq!(receiver.received().len(), 1);
        assert_eq!(notifier.stats().failed, 1);
        let text = logs.text();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 1, "{text}");
        assert!(warns[0].contains("reason=HealthCheckFailed"), "{text}");
        assert!(warns[0].contains("400 Bad Request"), "{text}");
    }

    #[tokio::test]
    async fn a_hanging_receiver_times_out_after_every_attempt() {
        let receiver = TestReceiver::start(vec![Reply::Hang]).await;
        let mut cfg = config(&receiver.url);
        cfg.timeout = Duration::from_millis(200);
        cfg.attempts = 2;
        cfg.backoff = Duration::from_millis(50);
        let poster = Poster::new(&cfg);
        let started = std::time::Instant::now();
        let outcome = poster.deliver(&event("HealthCheckFailed")).await;
        let took = started.elapsed();
        match outcome {
            Outcome::GaveUp { attempts, error } => {
                assert_eq!(attempts, 2);
                assert!(error.contains("no answer within 200ms"), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // 2 × 200ms + 50ms of backoff.
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert_eq!(receiver.received().len(), 2);
    }

    #[tokio::test]
    async fn send_never_waits_on_a_hanging_receiver_and_drops_when_full() {
        let receiver = TestReceiver::start(vec![Reply::Hang]).await;
        let mut cfg = config(&receiver.url);
        cfg.timeout = Duration::from_millis(200);
        cfg.attempts = 2;
        cfg.backoff = Duration::from_millis(50);
        cfg.queue = 1;
        let notifier = Notifier::spawn(cfg);

        // The current-thread runtime does not run the worker before this loop yields, so the
        // first event fills the queue and the other 19 are dropped.
        let started = std::time::Instant::now();
        for i in 0..20 {
            notifier.send(event(&format!("Reason{i}")));
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(50), "send waited {took:?}");
        assert_eq!(notifier.stats().dropped, 19);

        let started = std::time::Instant::now();
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert_eq!(notifier.stats().failed, 1);
        assert_eq!(receiver.received().len(), 2);
    }

    #[tokio::test]
    async fn shutdown_gives_up_after_the_grace_period() {
        let receiver = TestReceiver::start(vec![Reply::Hang]).await;
        let mut cfg = config(&receiver.url);
        cfg.timeout = Duration::from_secs(10);
        let notifier = Notifier::spawn(cfg);
        notifier.send(event("A"));
        notifier.send(event("B"));
        let started = std::time::Instant::now();
        notifier.clone().shutdown(Duration::from_millis(200)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Sends after shutdown are dropped, not queued forever.
        notifier.send(event("C"));
        assert_eq!(notifier.stats().dropped, 1);
    }

    #[tokio::test]
    async fn shutdown_flushes_the_queue() {
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        for i in 0..5 {
            notifier.send(event(&format!("Reason{i}")));
        }
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        let reasons: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| r.json()["reason"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            reasons,
            ["Reason0", "Reason1", "Reason2", "Reason3", "Reason4"]
        );
        assert_eq!(notifier.stats().delivered, 5);
    }

    #[tokio::test]
    async fn a_dead_address_is_tried_attempts_times_then_logged_once() {
        let logs = LogBuffer::default();
        let _guard = logs.capture();
        let address = dead_address().await;
        let mut cfg = config(&address);
        cfg.backoff = Duration::from_millis(10);
        let started = std::time::Instant::now();
        let outcome = Poster::new(&cfg).deliver(&event("HealthCheckFailed")).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        match outcome {
            Outcome::GaveUp { attempts, error } => {
                assert_eq!(attempts, 3);
                assert!(error.to_lowercase().contains("connect"), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }

        let notifier = Notifier::spawn(cfg);
        notifier.send(event("HealthCheckFailed"));
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        assert_eq!(notifier.stats().failed, 1);
        let text = logs.text();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 1, "{text}");
        assert!(warns[0].contains("reason=HealthCheckFailed"), "{text}");
        assert!(warns[0].contains("attempts=3"), "{text}");
        assert!(warns[0].to_lowercase().contains("connect"), "{text}");
    }

    #[tokio::test]
    async fn events_without_kind_name_or_namespace_are_not_posted() {
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        let mut no_kind = event("NoKind");
        no_kind.involved_object.kind.clear();
        let mut no_name = event("NoName");
        no_name.involved_object.name.clear();
        let mut no_namespace = event("NoNamespace");
        no_namespace.involved_object.namespace.clear();
        notifier.send(no_kind);
        notifier.send(no_name);
        notifier.send(no_namespace);
        notifier.send(event("Complete"));
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].json()["reason"], "Complete");
        assert_eq!(notifier.stats().dropped, 0);
    }

    #[tokio::test]
    async fn long_messages_are_capped() {
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(config(&receiver.url));
        let mut long = event("Long");
        long.message = "é".repeat(MAX_MESSAGE_CHARS + 10);
        notifier.send(long);
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        let body = receiver.received()[0].json();
        let message = body["message"].as_str().unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn cap_chars_keeps_short_text_and_marks_the_cut() {
        assert_eq!(cap_chars("abc", 3), "abc");
        assert!(matches!(cap_chars("abc", 3), std::borrow::Cow::Borrowed(_)));
        assert_eq!(cap_chars("abcd", 3), "ab…");
        assert_eq!(cap_chars("ééé", 2), "é…");
    }

    #[tokio::test]
    async fn a_bad_address_drops_events_with_a_warning() {
        let notifier = Notifier::spawn(config("https://notification-controller/"));
        notifier.send(event("HealthCheckFailed"));
        notifier.clone().shutdown(Duration::from_secs(1)).await;
        assert_eq!(notifier.stats().failed, 1);
        assert!(Poster::new(&config("not a url")).uri.is_err());
        assert!(
            Poster::new(&config("http://nc.flux-system.svc.cluster.local./"))
                .uri
                .is_ok()
        );
    }

    #[test]
    fn retries_only_server_errors() {
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::ACCEPTED));
    }

    #[test]
    fn derive_address_cases() {
        let derived = "http://notification-controller.flux-system.svc.cluster.local./";
        assert_eq!(
            derive_address("flux-system", "cluster.local", true, "", false).as_deref(),
            Some(derived)
        );
        assert_eq!(
            derive_address("flux", "cluster.local", true, "", false).as_deref(),
            Some("http://notification-controller.flux.svc.cluster.local./")
        );
        // An explicit address wins over the derived one, and does not need the controller.
        assert_eq!(
            derive_address(
                "flux-system",
                "cluster.local",
                true,
                "http://nc.example:9292/",
                false
            )
            .as_deref(),
            Some("http://nc.example:9292/")
        );
        assert_eq!(
            derive_address(
                "flux-system",
                "cluster.local",
                false,
                " http://nc.example/ ",
                false
            )
            .as_deref(),
            Some("http://nc.example/")
        );
        // No notification-controller, nothing explicit: Kubernetes events only.
        assert_eq!(
            derive_address("flux-system", "cluster.local", false, "", false),
            None
        );
        assert_eq!(
            derive_address("flux-system", "cluster.local", false, "   ", false),
            None
        );
        assert_eq!(derive_address("", "cluster.local", true, "", false), None);
        // Disabled beats everything.
        assert_eq!(
            derive_address("flux-system", "cluster.local", true, "", true),
            None
        );
        assert_eq!(
            derive_address("flux-system", "corp.example.", true, "", false).as_deref(),
            Some("http://notification-controller.flux-system.svc.corp.example./")
        );
        assert_eq!(
            derive_address(
                "flux-system",
                "cluster.local",
                true,
                "http://nc.example/",
                true
            ),
            None
        );
    }

    #[test]
    fn timestamp_is_rfc3339_seconds_utc() {
        let ts = timestamp_now();
        assert_eq!(ts.len(), "2026-11-22T05:25:24Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert!(ts.parse::<Timestamp>().is_ok());
    }
}
