use super::*;
use crate::notifier::test_http::{LogBuffer, Reply, TestReceiver};
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

/// The POST went out: the receiver may have the event, so a second POST could notify twice.
#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_not_posted_again() {
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
            assert_eq!(attempts, 1);
            assert!(
                matches!(error, NotifyError::Timeout(t) if t == Duration::from_millis(200)),
                "{error:?}"
            );
            assert_eq!(error.to_string(), "no answer within 200ms");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    assert_eq!(receiver.received().len(), 1);
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
    assert_eq!(receiver.received().len(), 1);
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
            // The hyper error is kept as the source: the chain names the refused connection.
            assert!(matches!(error, NotifyError::Transport(_)), "{error:?}");
            let chain = error_chain(&error);
            assert!(chain.to_lowercase().contains("connect"), "{chain}");
            assert!(
                std::error::Error::source(&error).is_some(),
                "the cause is kept: {error:?}"
            );
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
    assert!(matches!(
        parse_address("not a url"),
        Err(NotifyError::InvalidAddress { .. })
    ));
    assert!(matches!(
        parse_address("https://notification-controller/"),
        Err(NotifyError::UnsupportedAddress(_))
    ));
    assert!(parse_address("http://nc.flux-system.svc.cluster.local./").is_ok());
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
