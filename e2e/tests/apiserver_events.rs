//! The API server double through kube's `Api`, watcher and raw requests: Events through both
//! APIs and kube's event recorder, and Leases. Every test starts its own server, so they run in
//! parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use anyhow::{Context, Result};
use flux_reporter_e2e::ApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn events_are_one_object_seen_through_two_apis() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let events: Api<Event> = Api::namespaced(client.clone(), "team-ev");
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "flux.18ea46b03811bbd2", "namespace": "team-ev"},
        "eventTime": "2026-11-22T05:25:24.129445Z",
        "reportingController": "flux-reporter", "reportingInstance": "flux-reporter-7d9f8c6b5-x2x4z",
        "action": "Reconcile", "reason": "ReconciliationSucceeded", "type": "Normal",
        "note": "Reconciliation finished in 1.2s, next run in 5m0s",
        "regarding": {"apiVersion": "example.toolkit.fluxcd.io/v1", "kind": "Widget", "name": "flux", "namespace": "team-ev", "uid": "add5e064-469d-419b-9d67-b18976c344d4"}
    });
    let created = events
        .create(
            &PostParams::default(),
            &serde_json::from_value(event.clone())?,
        )
        .await?;
    assert_eq!(
        created.note.as_deref(),
        Some("Reconciliation finished in 1.2s, next run in 5m0s")
    );
    let (_, _, raw_event) = raw(
        &server,
        "GET",
        "/apis/events.k8s.io/v1/namespaces/team-ev/events/flux.18ea46b03811bbd2",
        &[],
        "",
    )
    .await?;
    let raw_event: Value = serde_json::from_str(&raw_event)?;
    assert_eq!(
        raw_event["eventTime"], "2026-11-22T05:25:24.129445Z",
        "MicroTime is kept as sent"
    );
    assert_eq!(
        (
            raw_event["deprecatedSource"].clone(),
            raw_event["deprecatedFirstTimestamp"].clone()
        ),
        (json!({}), Value::Null)
    );

    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "team-ev");
    let seen = core.get("flux.18ea46b03811bbd2").await?;
    assert_eq!(
        seen.message.as_deref(),
        Some("Reconciliation finished in 1.2s, next run in 5m0s")
    );
    assert_eq!(seen.involved_object.name.as_deref(), Some("flux"));
    assert_eq!(seen.reporting_component.as_deref(), Some("flux-reporter"));
    let by_object = core
        .list(&ListParams::default().fields("involvedObject.kind=Widget,involvedObject.name=flux"))
        .await?;
    assert_eq!(by_object.items.len(), 1);
    let by_regarding = events
        .list(
            &ListParams::default().fields("regarding.name=flux,reportingController=flux-reporter"),
        )
        .await?;
    assert_eq!(by_regarding.items.len(), 1);

    let series = events
        .patch(
            "flux.18ea46b03811bbd2",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2026-11-22T05:25:24.338039Z"}}),
            ),
        )
        .await?;
    assert_eq!(series.series.map(|s| s.count), Some(2));
    let bad_series = expect_status(events.patch("flux.18ea46b03811bbd2", &PatchParams::default(), &Patch::Merge(json!({"series": {"count": 1, "lastObservedTime": "2026-11-22T05:25:24.338039Z"}}))).await).await?;
    assert_eq!(
        bad_series.message,
        "Event \"flux.18ea46b03811bbd2\" is invalid: series.count: Invalid value: \"\": should be at least 2"
    );
    let immutable = expect_status(
        events
            .patch(
                "flux.18ea46b03811bbd2",
                &PatchParams::default(),
                &Patch::Merge(json!({"reportingController": "someone-else"})),
            )
            .await,
    )
    .await?;
    assert_eq!(
        immutable.message,
        "Event \"flux.18ea46b03811bbd2\" is invalid: reportingController: Invalid value: \"someone-else\": field is immutable"
    );

    let mut long = event.clone();
    long["metadata"]["name"] = json!("flux.18ea46b0420a3b2b");
    long["note"] = json!("x".repeat(1025));
    let too_long = expect_status(
        events
            .create(&PostParams::default(), &serde_json::from_value(long)?)
            .await,
    )
    .await?;
    assert_eq!((too_long.code, too_long.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        too_long.message,
        "Event \"flux.18ea46b0420a3b2b\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
    );
    let mut exactly = event.clone();
    exactly["metadata"]["name"] = json!("flux.limit");
    exactly["note"] = json!("é".repeat(512));
    events
        .create(&PostParams::default(), &serde_json::from_value(exactly)?)
        .await?;

    let mut missing = event.clone();
    missing["metadata"]["name"] = json!("flux.missing");
    missing
        .as_object_mut()
        .context("object")?
        .remove("eventTime");
    let no_time = expect_status(
        events
            .create(&PostParams::default(), &serde_json::from_value(missing)?)
            .await,
    )
    .await?;
    assert_eq!(
        no_time.message,
        "Event \"flux.missing\" is invalid: eventTime: Required value"
    );
    let (code, _, body) = raw(
        &server,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/team-ev/events",
        &[("Content-Type", "application/json")],
        &event
            .to_string()
            .replace("24.129445Z", "24Z")
            .replace("flux.18ea46b03811bbd2", "flux.seconds"),
    )
    .await?;
    assert_eq!(code, 400);
    assert!(
        body.contains("cannot parse \\\"Z\\\" as \\\".000000\\\""),
        "{body}"
    );

    let legacy = core
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "flux.legacy"}, "involvedObject": {"kind": "Widget", "name": "flux", "namespace": "team-ev"},
            "reason": "ReconciliationFailed", "message": "kustomize build failed", "type": "Warning",
            "source": {"component": "flux-reporter"}, "firstTimestamp": "2026-11-22T05:25:24Z", "lastTimestamp": "2026-11-22T05:25:24Z", "count": 1
        }))?)
        .await?;
    assert_eq!(legacy.count, Some(1));
    let as_new = events.get("flux.legacy").await?;
    assert_eq!(
        (as_new.deprecated_count, as_new.note.as_deref()),
        (Some(1), Some("kustomize build failed"))
    );
    Ok(())
}

#[tokio::test]
async fn the_kube_event_recorder_creates_then_patches_a_series() -> Result<()> {
    use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let reporter = Reporter {
        controller: "flux-reporter".into(),
        instance: Some("flux-reporter-0".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("fluxcd.controlplane.io/v1".into()),
        kind: Some("FluxReport".into()),
        name: Some("flux".into()),
        namespace: Some("flux-system".into()),
        uid: Some("add5e064-469d-419b-9d67-b18976c344d4".into()),
        ..Default::default()
    };
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Succeeded".into(),
        note: Some("Reporting finished in 12ms".into()),
        action: "Report".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await?;
    recorder.publish(&event, &reference).await?;
    let events: Vec<Event> = Api::<Event>::namespaced(client.clone(), "flux-system")
        .list(&ListParams::default())
        .await?
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(2));
    let core = Api::<CoreEvent>::namespaced(client, "flux-system")
        .list(
            &ListParams::default()
                .fields("involvedObject.kind=FluxReport,involvedObject.name=flux"),
        )
        .await?;
    assert_eq!(
        core.items[0].reporting_component.as_deref(),
        Some("flux-reporter")
    );
    Ok(())
}

#[tokio::test]
async fn leases_renew_with_optimistic_concurrency() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "flux-system");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "flux-reporter-leader", "namespace": "flux-system"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15, "acquireTime": "2026-11-22T05:25:24.459934Z",
                 "renewTime": "2026-11-22T05:25:24.459934Z", "leaseTransitions": 0}
    });
    let created = leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(lease.clone())?,
        )
        .await?;
    let (_, _, stored) = raw(
        &server,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/flux-system/leases/flux-reporter-leader",
        &[],
        "",
    )
    .await?;
    assert_eq!(
        serde_json::from_str::<Value>(&stored)?["spec"]["renewTime"],
        "2026-11-22T05:25:24.459934Z"
    );

    let mut renewed = created.clone();
    let mut spec = renewed.spec.clone().unwrap_or_default();
    spec.renew_time = Some(serde_json::from_value(json!(
        "2026-11-22T05:25:25.570340Z"
    ))?);
    renewed.spec = Some(spec);
    let renewed = leases
        .replace("flux-reporter-leader", &PostParams::default(), &renewed)
        .await?;
    assert_ne!(renewed.resource_version(), created.resource_version());

    let mut takeover = created.clone();
    takeover.spec.as_mut().context("spec")?.holder_identity = Some("pod-b".into());
    let conflict = expect_status(
        leases
            .replace("flux-reporter-leader", &PostParams::default(), &takeover)
            .await,
    )
    .await?;
    assert_eq!(conflict.code, 409);
    assert_eq!(
        conflict.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"flux-reporter-leader\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut bad = lease.clone();
    bad["metadata"]["name"] = json!("bad-duration");
    bad["spec"]["leaseDurationSeconds"] = json!(0);
    let invalid = expect_status(
        leases
            .create(&PostParams::default(), &serde_json::from_value(bad)?)
            .await,
    )
    .await?;
    assert_eq!(
        invalid.message,
        "Lease.coordination.k8s.io \"bad-duration\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
    let missing = expect_status(leases.get("nobody").await).await?;
    assert_eq!(
        missing.message,
        "leases.coordination.k8s.io \"nobody\" not found"
    );
    Ok(())
}
