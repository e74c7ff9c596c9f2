//! Kubernetes events (events.k8s.io/v1) about the FluxInstance, or the FluxReport when there is
//! no FluxInstance, each also forwarded to notification-controller (see [`crate::notifier`]).
//! Which transitions make an event: [`crate::transitions`] and docs/design.md "Events".
//!
//! Writing goes through kube-runtime's [`Recorder`], which turns a repeat into a series PATCH
//! (`series.count`, `lastObservedTime`) instead of a new object. Its cache key leaves out the
//! note and compares the whole object reference, resourceVersion included, so one Recorder for
//! everything would file "3 failing" under an earlier "1 failing" and would never aggregate a
//! FluxReport whose resourceVersion moves every run. [`EventSink`] therefore keeps one Recorder
//! per distinct event (target, type, reason, note), with the reference pinned at its first
//! occurrence, for as long as kube's cache remembers it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::Mutex;

use flux_reporter_report::source::error_chain;

use crate::notifier::{FluxEvent, InvolvedObject, Notifier, Severity, timestamp_now};

/// `reportingController` of the Kubernetes events and of the forwarded documents.
pub const REPORTING_CONTROLLER: &str = "flux-reporter";
/// The events' `action`: what flux-reporter was doing when it saw what the reason says.
pub const ACTION: &str = "Report";
/// The API server rejects longer notes with 422 (a check on bytes, pkg/apis/core/validation).
pub const MAX_NOTE_BYTES: usize = 1024;
/// The API server's limit on `reason`.
const MAX_REASON_BYTES: usize = 128;
/// Annotations of the target with this prefix are copied into the forwarded metadata (RFC-0008).
pub const EVENT_METADATA_PREFIX: &str = "event.toolkit.fluxcd.io/";
/// How long kube's Recorder keeps an event for aggregation (its `CACHE_TTL`).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// Distinct events remembered for aggregation; the least recently seen goes first.
const MAX_SERIES: usize = 256;
/// An event write that takes longer is abandoned: the report loop waits on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Kubernetes event was not written.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The API server's refusal or the transport failure, as kube reports it.
    #[error("the API server did not accept the event")]
    Write(#[source] kube::Error),
}

/// The Kubernetes event type; Warning is forwarded with severity `error`, Normal with `info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    fn event_type(self) -> EventType {
        match self {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            EventKind::Normal => Severity::Info,
            EventKind::Warning => Severity::Error,
        }
    }
}

/// The object an event is about: the FluxInstance, or the FluxReport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// The object's annotations; those prefixed `event.toolkit.fluxcd.io/` are forwarded.
    pub annotations: BTreeMap<String, String>,
}

impl Target {
    /// The target for a typed object, e.g. a `FluxInstance` or a `FluxReport` as read.
    pub fn from_object<K>(object: &K) -> Target
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let meta = object.meta();
        Target {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        }
    }

    /// `regarding` of the Kubernetes event.
    pub fn object_reference(&self) -> ObjectReference {
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        ObjectReference {
            api_version: some(&self.api_version),
            kind: some(&self.kind),
            namespace: some(&self.namespace),
            name: some(&self.name),
            uid: some(&self.uid),
            resource_version: some(&self.resource_version),
            field_path: None,
        }
    }

    /// `involvedObject` of the forwarded document.
    pub fn involved_object(&self) -> InvolvedObject {
        InvolvedObject {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            api_version: self.api_version.clone(),
            resource_version: self.resource_version.clone(),
        }
    }
}

/// One distinct event, for aggregation. The resourceVersion is left out on purpose: the same
/// complaint about a FluxReport updated in between is still the same event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    event_kind: EventKind,
    reason: String,
    note: String,
}

struct Series {
    recorder: Recorder,
    /// The reference of the first occurrence: kube's cache compares it whole.
    regarding: ObjectReference,
    last_seen: Instant,
}

/// Writes Kubernetes events and forwards them to notification-controller. Share one per
/// process (behind an `Arc`): aggregation of repeats lives in it.
pub struct EventSink {
    client: kube::Client,
    reporter: Reporter,
    notifier: Option<Notifier>,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

impl EventSink {
    /// `reporting_instance` is the pod name (`POD_NAME`) or the hostname; `notifier` is `None`
    /// when forwarding is off (see [`crate::notifier::derive_address`]).
    pub fn new(
        client: kube::Client,
        reporting_instance: String,
        notifier: Option<Notifier>,
    ) -> Self {
        let instance = if reporting_instance.trim().is_empty() {
            REPORTING_CONTROLLER.to_string()
        } else {
            reporting_instance
        };
        EventSink {
            client,
            reporter: Reporter {
                controller: REPORTING_CONTROLLER.into(),
                instance: Some(instance),
            },
            notifier,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Write a Kubernetes event (events.k8s.io/v1) regarding `target`, and forward it to
    /// notification-controller. Returns nothing on purpose: a failed write (or one slower than
    /// 10s) is logged at warn and stops neither the forwarding nor the caller; forwarding never
    /// waits on the receiver. `metadata` keys want the prefix `fluxcd.controlplane.io/` (the
    /// target's group) or `event.toolkit.fluxcd.io/`: notification-controller drops the others.
    pub async fn emit(
        &self,
        target: &Target,
        kind: EventKind,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) {
        self.forward(target, kind, reason, message, metadata);
        self.record(target, kind, reason, message).await;
    }

    /// Only the Kubernetes event, for an event that must not reach notification-controller
    /// ([`EventSink::emit`] does both).
    /// The note is `message` cut to 1024 bytes; identical repeats become a series.
    pub async fn record(&self, target: &Target, kind: EventKind, reason: &str, message: &str) {
        let note = truncate_note(message);
        let reason = truncate_bytes(reason, MAX_REASON_BYTES);
        let key = SeriesKey {
            api_version: target.api_version.clone(),
            kind: target.kind.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            uid: target.uid.clone(),
            event_kind: kind,
            reason: reason.to_string(),
            note: note.to_string(),
        };
        let event = Event {
            type_: kind.event_type(),
            reason: reason.to_string(),
            note: (!note.is_empty()).then(|| note.into_owned()),
            action: ACTION.into(),
            secondary: None,
        };

        // Held across the write: events are few, and one at a time keeps a repeat from racing
        // its own first occurrence into two objects.
        let mut series = self.series.lock().await;
        let now = Instant::now();
        series.retain(|_, s| now.duration_since(s.last_seen) < SERIES_TTL);
        if !series.contains_key(&key) && series.len() >= MAX_SERIES {
            let oldest = series
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                series.remove(&oldest);
            }
        }
        let entry = series.entry(key.clone()).or_insert_with(|| Series {
            recorder: Recorder::new(self.client.clone(), self.reporter.clone()),
            regarding: target.object_reference(),
            last_seen: now,
        });
        entry.last_seen = now;
        let written = tokio::time::timeout(
            WRITE_TIMEOUT,
            entry.recorder.publish(&event, &entry.regarding),
        )
        .await
        .map_err(|_| EventError::Timeout(WRITE_TIMEOUT))
        .and_then(|r| r.map_err(EventError::Write));
        if let Err(e) = written {
            // Start over next time: a failed series PATCH (e.g. the event expired) would
            // otherwise fail again until kube's cache forgets it.
            series.remove(&key);
            tracing::warn!(
                kind = %target.kind,
                namespace = %target.namespace,
                name = %target.name,
                reason = %event.reason,
                error = %error_chain(&e),
                "cannot write the Kubernetes event"
            );
        }
    }

    /// Only the forwarding, without waiting (a no-op when forwarding is off).
    pub fn forward(
        &self,
        target: &Target,
        kind: EventKind,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) {
        if let Some(notifier) = &self.notifier {
            notifier.send(self.flux_event(target, kind, reason, message, metadata));
        }
    }

    fn flux_event(
        &self,
        target: &Target,
        kind: EventKind,
        reason: &str,
        message: &str,
        metadata: BTreeMap<String, String>,
    ) -> FluxEvent {
        FluxEvent {
            involved_object: target.involved_object(),
            severity: kind.severity(),
            timestamp: timestamp_now(),
            message: message.to_string(),
            reason: reason.to_string(),
            metadata: flux_metadata(target, metadata),
            reporting_controller: self.reporter.controller.clone(),
            reporting_instance: self.reporter.instance.clone().unwrap_or_default(),
        }
    }
}

/// The forwarded metadata: the target's `event.toolkit.fluxcd.io/*` annotations, then
/// `metadata`, which wins a conflict (controller-defined metadata has the highest precedence
/// in RFC-0008).
pub fn flux_metadata(
    target: &Target,
    metadata: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged: BTreeMap<String, String> = target
        .annotations
        .iter()
        .filter(|(k, _)| {
            k.starts_with(EVENT_METADATA_PREFIX) && k.len() > EVENT_METADATA_PREFIX.len()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merged.extend(metadata);
    merged
}

/// `message` as a note the API server accepts: at most 1024 bytes, cut on a character
/// boundary, the cut marked with `…` within the limit.
pub fn truncate_note(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_NOTE_BYTES {
        return Cow::Borrowed(message);
    }
    const MARK: &str = "…";
    let end = floor_char_boundary(message, MAX_NOTE_BYTES - MARK.len());
    Cow::Owned(format!("{}{MARK}", &message[..end]))
}

/// `text` cut to at most `max` bytes on a character boundary, unmarked (for identifiers).
fn truncate_bytes(text: &str, max: usize) -> &str {
    &text[..floor_char_boundary(text, max)]
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests;
