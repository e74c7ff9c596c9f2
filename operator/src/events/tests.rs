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
    let api = TestReceiver::start(vec![Reply::Echo(201), Reply::Echo(200), Reply::Echo(201)]).await;
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
