//! Kubernetes events (events.k8s.io/v1) about the FluxInstance, or the FluxReport when there is
//! no FluxInstance, each also forwarded to notification-controller (anchor §3.2, §3.3).
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

    /// Only the Kubernetes event, for what the anchor does not forward (§3.2 "K8s" rows).
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
        .map_err(|_| format!("no answer within {WRITE_TIMEOUT:?}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = written {
            // Start over next time: a failed series PATCH (e.g. the event expired) would
            // otherwise fail again until kube's cache forgets it.
            series.remove(&key);
            tracing::warn!(
                kind = %target.kind,
                namespace = %target.namespace,
                name = %target.name,
                reason = %event.reason,
                error = %e,
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
mod tests {
    use super::*;
    use crate::notifier::NotifierConfig;
    use crate::notifier::test_http::{LogBuffer, Reply, TestReceiver};

    fn target() -> Target {
        Target {
            api_version: "fluxcd.controlplane.io/v1".into(),
            kind: "FluxInstance".into(),
            namespace: "flux-system".into(),
            name: "flux".into(),
            uid: "add5e064-469d-419b-9d67-b18976c344d4".into(),
            resource_version: "56916".into(),
            annotations: BTreeMap::from([
                (
                    "event.toolkit.fluxcd.io/cluster".to_string(),
                    "prod-eu".to_string(),
                ),
                (
                    "event.toolkit.fluxcd.io/team".to_string(),
                    "platform".to_string(),
                ),
                (
                    "fluxcd.controlplane.io/reconcileEvery".to_string(),
                    "1h".to_string(),
                ),
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "{}".to_string(),
                ),
            ]),
        }
    }

    #[test]
    fn short_notes_are_kept_as_they_are() {
        assert!(matches!(truncate_note("ok"), Cow::Borrowed("ok")));
        let exact = "x".repeat(MAX_NOTE_BYTES);
        assert_eq!(truncate_note(&exact), exact.as_str());
        assert_eq!(truncate_note(""), "");
    }

    #[test]
    fn long_ascii_notes_are_cut_to_1024_bytes_with_a_mark() {
        let note = truncate_note(&"x".repeat(MAX_NOTE_BYTES + 1)).into_owned();
        assert_eq!(note.len(), MAX_NOTE_BYTES);
        assert!(note.ends_with('…'));
        assert_eq!(note.trim_end_matches('…'), "x".repeat(MAX_NOTE_BYTES - 3));
    }

    #[test]
    fn long_multibyte_notes_are_cut_on_a_char_boundary() {
        // 2-, 3- and 4-byte characters, and a mix that puts byte 1021 inside a character.
        for unit in ["é", "€", "🚀", "a€🚀é"] {
            let message = unit.repeat(2000);
            let note = truncate_note(&message);
            assert!(note.len() <= MAX_NOTE_BYTES, "{unit}: {} bytes", note.len());
            assert!(note.len() > MAX_NOTE_BYTES - 3 - 4, "{unit}: cut too short");
            assert!(note.ends_with('…'));
            let kept = note.strip_suffix('…').unwrap();
            assert!(
                message.starts_with(kept),
                "{unit}: the kept part is a prefix"
            );
        }
        // Exactly at the limit in multi-byte characters: untouched.
        let exact = "€".repeat(MAX_NOTE_BYTES / 3) + "a";
        assert_eq!(exact.len(), MAX_NOTE_BYTES);
        assert_eq!(truncate_note(&exact), exact.as_str());
    }

    #[test]
    fn reasons_are_cut_to_128_bytes() {
        assert_eq!(
            truncate_bytes("HealthCheckFailed", 128),
            "HealthCheckFailed"
        );
        let long = "é".repeat(100);
        let cut = truncate_bytes(&long, 128);
        assert_eq!(cut.len(), 128);
        let odd = format!("a{long}");
        assert_eq!(truncate_bytes(&odd, 128).len(), 127);
    }

    #[test]
    fn metadata_carries_the_event_annotations_and_the_arguments() {
        let metadata = flux_metadata(
            &target(),
            BTreeMap::from([(
                "fluxcd.controlplane.io/revision".to_string(),
                "v2.7.0@sha256:abc".to_string(),
            )]),
        );
        assert_eq!(
            metadata,
            BTreeMap::from([
                (
                    "event.toolkit.fluxcd.io/cluster".to_string(),
                    "prod-eu".to_string()
                ),
                (
                    "event.toolkit.fluxcd.io/team".to_string(),
                    "platform".to_string()
                ),
                (
                    "fluxcd.controlplane.io/revision".to_string(),
                    "v2.7.0@sha256:abc".to_string()
                ),
            ])
        );
    }

    #[test]
    fn metadata_arguments_win_over_annotations() {
        let metadata = flux_metadata(
            &target(),
            BTreeMap::from([(
                "event.toolkit.fluxcd.io/cluster".to_string(),
                "from-the-controller".to_string(),
            )]),
        );
        assert_eq!(
            metadata["event.toolkit.fluxcd.io/cluster"],
            "from-the-controller"
        );
        assert_eq!(metadata["event.toolkit.fluxcd.io/team"], "platform");
        assert!(flux_metadata(&Target::default(), BTreeMap::new()).is_empty());
    }

    #[test]
    fn references_carry_the_target() {
        let t = target();
        let r = t.object_reference();
        assert_eq!(r.api_version.as_deref(), Some("fluxcd.controlplane.io/v1"));
        assert_eq!(r.kind.as_deref(), Some("FluxInstance"));
        assert_eq!(r.namespace.as_deref(), Some("flux-system"));
        assert_eq!(r.name.as_deref(), Some("flux"));
        assert_eq!(
            r.uid.as_deref(),
            Some("add5e064-469d-419b-9d67-b18976c344d4")
        );
        assert_eq!(r.resource_version.as_deref(), Some("56916"));
        assert_eq!(
            Target::default().object_reference(),
            ObjectReference::default()
        );

        let o = t.involved_object();
        assert_eq!(
            (o.kind.as_str(), o.namespace.as_str(), o.name.as_str()),
            ("FluxInstance", "flux-system", "flux")
        );
        assert_eq!(o.api_version, "fluxcd.controlplane.io/v1");
        assert_eq!(o.resource_version, "56916");
    }

    #[test]
    fn targets_from_typed_objects() {
        let mut instance = flux_reporter_api::FluxInstance::new("flux", Default::default());
        instance.metadata.namespace = Some("flux-system".into());
        instance.metadata.uid = Some("u1".into());
        instance.metadata.resource_version = Some("7".into());
        instance.metadata.annotations = Some(BTreeMap::from([(
            "event.toolkit.fluxcd.io/cluster".to_string(),
            "prod-eu".to_string(),
        )]));
        let t = Target::from_object(&instance);
        assert_eq!(t.api_version, "fluxcd.controlplane.io/v1");
        assert_eq!(t.kind, "FluxInstance");
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("flux-system", "flux")
        );
        assert_eq!((t.uid.as_str(), t.resource_version.as_str()), ("u1", "7"));
        assert_eq!(t.annotations.len(), 1);
    }

    #[test]
    fn severities() {
        assert_eq!(EventKind::Warning.severity(), Severity::Error);
        assert_eq!(EventKind::Normal.severity(), Severity::Info);
    }

    /// A kube client talking plain HTTP to a local server.
    fn client_for(url: &str) -> kube::Client {
        let config = kube::Config::new(url.parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn path_of(request_line: &str) -> (&str, &str) {
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap();
        let path = parts.next().unwrap();
        (method, path.split('?').next().unwrap())
    }

    #[tokio::test]
    async fn writes_forwards_and_aggregates_repeats() {
        let api =
            TestReceiver::start(vec![Reply::Echo(201), Reply::Echo(200), Reply::Echo(201)]).await;
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(NotifierConfig::new(receiver.url.clone()));
        let sink = EventSink::new(
            client_for(&api.url),
            "flux-reporter-7d9f8c6b5-x2x4z".into(),
            Some(notifier.clone()),
        );
        let long = format!("{}{}", "€".repeat(400), "end");
        let metadata = BTreeMap::from([(
            "fluxcd.controlplane.io/revision".to_string(),
            "v2.7.0@sha256:abc".to_string(),
        )]);

        let mut t = target();
        sink.emit(
            &t,
            EventKind::Warning,
            "HealthCheckFailed",
            &long,
            metadata.clone(),
        )
        .await;
        // The same event after the object moved on: a series PATCH, not a new event.
        t.resource_version = "56999".into();
        sink.emit(
            &t,
            EventKind::Warning,
            "HealthCheckFailed",
            &long,
            metadata.clone(),
        )
        .await;
        // Same reason, another message: a new event, not a series of the first.
        sink.emit(
            &t,
            EventKind::Warning,
            "HealthCheckFailed",
            "other",
            metadata.clone(),
        )
        .await;
        notifier.clone().shutdown(Duration::from_secs(5)).await;

        let requests = api.received();
        assert_eq!(requests.len(), 3, "{requests:?}");
        let (method, path) = path_of(&requests[0].request_line);
        assert_eq!(method, "POST");
        assert!(
            path.starts_with("/apis/events.k8s.io/v1/namespaces/flux-system/events"),
            "{path}"
        );
        let first = requests[0].json();
        assert_eq!(first["type"], "Warning");
        assert_eq!(first["reason"], "HealthCheckFailed");
        assert_eq!(first["action"], ACTION);
        assert_eq!(first["reportingController"], "flux-reporter");
        assert_eq!(first["reportingInstance"], "flux-reporter-7d9f8c6b5-x2x4z");
        assert_eq!(first["regarding"]["kind"], "FluxInstance");
        assert_eq!(first["regarding"]["name"], "flux");
        assert_eq!(first["regarding"]["resourceVersion"], "56916");
        let note = first["note"].as_str().unwrap();
        assert!(
            note.len() <= MAX_NOTE_BYTES && note.ends_with('…'),
            "{note}"
        );
        assert!(first["eventTime"].as_str().is_some());

        let (method, path) = path_of(&requests[1].request_line);
        assert_eq!(method, "PATCH");
        let name = first["metadata"]["name"].as_str().unwrap();
        assert!(path.ends_with(&format!("/events/{name}")), "{path}");
        assert_eq!(
            requests[1].header("content-type"),
            Some("application/merge-patch+json")
        );
        assert_eq!(requests[1].json()["series"]["count"], 2);

        let (method, _) = path_of(&requests[2].request_line);
        assert_eq!(method, "POST");
        assert_eq!(requests[2].json()["note"], "other");

        // Every emit is forwarded, with the whole message (capped at 39000 chars, not 1024 bytes).
        let forwarded = receiver.received();
        assert_eq!(forwarded.len(), 3);
        let doc = forwarded[0].json();
        assert_eq!(doc["severity"], "error");
        assert_eq!(doc["message"], long.as_str());
        assert_eq!(doc["reason"], "HealthCheckFailed");
        assert_eq!(doc["reportingController"], "flux-reporter");
        assert_eq!(doc["reportingInstance"], "flux-reporter-7d9f8c6b5-x2x4z");
        assert_eq!(doc["involvedObject"]["kind"], "FluxInstance");
        assert_eq!(
            doc["metadata"]["event.toolkit.fluxcd.io/cluster"],
            "prod-eu"
        );
        assert_eq!(
            doc["metadata"]["fluxcd.controlplane.io/revision"],
            "v2.7.0@sha256:abc"
        );
        assert!(
            doc["metadata"]
                .get("fluxcd.controlplane.io/reconcileEvery")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_failed_write_is_logged_and_still_forwarded() {
        let logs = LogBuffer::default();
        let _guard = logs.capture();
        let api = TestReceiver::start(vec![Reply::Status(403), Reply::Echo(201)]).await;
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(NotifierConfig::new(receiver.url.clone()));
        let sink = EventSink::new(client_for(&api.url), String::new(), Some(notifier.clone()));

        sink.emit(
            &target(),
            EventKind::Normal,
            "HealthCheckSucceeded",
            "all good",
            BTreeMap::new(),
        )
        .await;
        // Not a series of a write that failed: a fresh create.
        sink.emit(
            &target(),
            EventKind::Normal,
            "HealthCheckSucceeded",
            "all good",
            BTreeMap::new(),
        )
        .await;
        notifier.clone().shutdown(Duration::from_secs(5)).await;

        let requests = api.received();
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|r| r.request_line.starts_with("POST ")));
        // An empty instance falls back to the controller name (the API server requires one).
        assert_eq!(requests[0].json()["reportingInstance"], "flux-reporter");
        let forwarded = receiver.received();
        assert_eq!(forwarded.len(), 2);
        assert_eq!(forwarded[0].json()["severity"], "info");
        let text = logs.text();
        assert!(
            text.lines()
                .any(|l| l.contains("WARN") && l.contains("cannot write the Kubernetes event")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn record_does_not_forward_and_no_notifier_is_fine() {
        let api = TestReceiver::start(vec![Reply::Echo(201)]).await;
        let receiver = TestReceiver::start(vec![Reply::Status(202)]).await;
        let notifier = Notifier::spawn(NotifierConfig::new(receiver.url.clone()));
        let sink = EventSink::new(client_for(&api.url), "pod".into(), Some(notifier.clone()));
        sink.record(&target(), EventKind::Normal, "ReportSucceeded", "done")
            .await;
        notifier.clone().shutdown(Duration::from_secs(5)).await;
        assert_eq!(api.received().len(), 1);
        assert!(receiver.received().is_empty());

        let quiet = EventSink::new(client_for(&api.url), "pod".into(), None);
        quiet.forward(&target(), EventKind::Warning, "X", "y", BTreeMap::new());
        assert!(quiet.notifier.is_none());
    }
}
