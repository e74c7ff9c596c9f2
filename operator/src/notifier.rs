//! Forwarding of events to Flux's notification-controller, as Flux's own recorder does it
//! (`github.com/fluxcd/pkg/runtime/events`, `recorder.go`): one JSON document per event, POSTed over plain HTTP, with a timeout, bounded
//! retries on connection errors and 5xx, and no retry on 429 (duplicates) nor other 4xx.
//! Unlike Flux's recorder, a POST that got no answer within the timeout is not retried either:
//! it was sent, the receiver may have it, and a second one could notify twice.
//!
//! A background worker owns a bounded queue, so [`Notifier::send`] never waits on the receiver:
//! a slow or dead notification-controller costs dropped notifications, never a late report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod post;

use flux_reporter_report::source::error_chain;
pub use post::NotifyError;
#[cfg(test)]
use post::retryable;
use post::{Outcome, Poster, parse_address};

/// The Flux event API's limit on `message`.
pub const MAX_MESSAGE_CHARS: usize = 39_000;

/// The longest wait between two attempts, whatever the configured backoff doubles to.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

/// The notification-controller address, as the Flux Operator resolves it for the
/// controllers it installs: an explicit address
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
        // slash is the receiver's path. Both as Flux's own `--events-addr` defaults write them.
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
        if let Err(e) = parse_address(&config.address) {
            tracing::error!(address = %config.address, error = %error_chain(&e), "notification forwarding is off: bad address");
        }
        let poster = Poster::new(&config);
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

/// A local HTTP/1.1 server and a log capture, shared by the notifier and events tests.
#[cfg(test)]
pub(crate) mod test_http;

#[cfg(test)]
mod tests;
