//! The API server double through kube's `Api`, watcher and raw requests: server-side apply
//! (owners, conflicts, force) and deletes with finalizers. Every test starts its own server, so
//! they run in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn server_side_apply_tracks_owners_and_conflicts() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-ssa");
    let intent = |spec: Value| json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "flux", "namespace": "team-ssa"}, "spec": spec});
    let a = api
        .patch(
            "flux",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(intent(json!({"interval": "5m", "replicas": 1}))),
        )
        .await?;
    let entries = a.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            entries[0].manager.as_deref(),
            entries[0].operation.as_deref()
        ),
        (Some("manager-a"), Some("Apply"))
    );
    assert_eq!(
        serde_json::to_value(&entries[0].fields_v1)?,
        json!({"f:spec": {"f:interval": {}, "f:replicas": {}}})
    );

    let conflict = expect_status(
        api.patch(
            "flux",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(intent(json!({"replicas": 7, "suspend": true}))),
        )
        .await,
    )
    .await?;
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"manager-a\": .spec.replicas"
    );
    let both = expect_status(
        api.patch(
            "flux",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(intent(json!({"replicas": 7, "interval": "1m"}))),
        )
        .await,
    )
    .await?;
    assert_eq!(
        both.message,
        "Apply failed with 2 conflicts: conflicts with \"manager-a\":\n- .spec.interval\n- .spec.replicas"
    );

    let forced = api
        .patch(
            "flux",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(intent(json!({"replicas": 7, "suspend": true}))),
        )
        .await?;
    assert_eq!(
        forced.data["spec"],
        json!({"interval": "5m", "replicas": 7, "suspend": true})
    );
    let owners: BTreeMap<String, Value> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap_or_default(),
                serde_json::to_value(e.fields_v1).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(owners["manager-a"], json!({"f:spec": {"f:interval": {}}}));
    assert_eq!(
        owners["manager-b"],
        json!({"f:spec": {"f:replicas": {}, "f:suspend": {}}})
    );

    // Same value as another owner: shared, no conflict.
    api.patch(
        "flux",
        &PatchParams::apply("manager-c"),
        &Patch::Apply(intent(json!({"interval": "5m"}))),
    )
    .await?;
    // A manager that stops applying a field removes it.
    let dropped = api
        .patch(
            "flux",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(intent(json!({"replicas": 7}))),
        )
        .await?;
    assert_eq!(
        dropped.data["spec"],
        json!({"interval": "5m", "replicas": 7})
    );

    let status = api
        .patch_status(
            "flux",
            &PatchParams::apply("controller").force(),
            &Patch::Apply(json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "flux"},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": "boom"}]}})),
        )
        .await?;
    assert_eq!(status.data["status"]["conditions"][0]["status"], "False");
    let entry = status
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .context("entry")?;
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(
        serde_json::to_value(entry.fields_v1)?,
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}}}})
    );

    let no_manager = raw(
        &_server,
        "PATCH",
        &format!("/apis/{GROUP}/v1/namespaces/team-ssa/widgets/flux"),
        &[("Content-Type", "application/apply-patch+yaml")],
        "apiVersion: example.toolkit.fluxcd.io/v1\nkind: Widget\nmetadata:\n  name: flux\n",
    )
    .await?;
    assert_eq!(no_manager.0, 422);
    let created = api.patch("flux-new", &PatchParams::apply("manager-a"), &Patch::Apply(json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "flux-new"}, "spec": {"interval": "1m"}}))).await?;
    assert_eq!(created.metadata.generation, Some(1));
    Ok(())
}

#[tokio::test]
async fn deletes_answer_status_or_the_object_while_finalizers_remain() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-del");
    let created = api
        .create(
            &PostParams::default(),
            &widget("flux", "team-del", json!({}), json!({})),
        )
        .await?;
    let status = api
        .delete("flux", &DeleteParams::default())
        .await?
        .right()
        .context("a Status")?;
    let details = status.details.context("details")?;
    assert_eq!(
        (
            details.name.as_str(),
            details.kind.as_str(),
            details.uid.as_str()
        ),
        (
            "flux",
            "widgets",
            created.uid().unwrap_or_default().as_str()
        )
    );
    let gone = expect_status(api.get("flux").await).await?;
    assert_eq!(gone.code, 404);
    assert_eq!(
        expect_status(api.delete("flux", &DeleteParams::default()).await)
            .await?
            .code,
        404
    );

    let mut fin = widget("flux-fin", "team-del", json!({}), json!({}));
    fin.metadata.finalizers = Some(vec!["example.toolkit.fluxcd.io/finalizer".into()]);
    api.create(&PostParams::default(), &fin).await?;
    let kept = api
        .delete("flux-fin", &DeleteParams::default())
        .await?
        .left()
        .context("the object")?;
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert_eq!(kept.metadata.generation, Some(2));
    let adding = expect_status(
        api.patch(
            "flux-fin",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["a", "example.toolkit.fluxcd.io/finalizer"]}}),
            ),
        )
        .await,
    )
    .await?;
    assert_eq!(adding.code, 422);
    api.patch(
        "flux-fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(api.get_opt("flux-fin").await?.is_none());

    let precondition = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    api.create(
        &PostParams::default(),
        &widget("flux-pre", "team-del", json!({"batch": "one"}), json!({})),
    )
    .await?;
    let refused = expect_status(api.delete("flux-pre", &precondition).await).await?;
    assert_eq!(refused.code, 409);
    api.create(
        &PostParams::default(),
        &widget("flux-c2", "team-del", json!({"batch": "one"}), json!({})),
    )
    .await?;
    let removed = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("batch=one"),
        )
        .await?;
    assert_eq!(removed.left().context("a list")?.items.len(), 2);
    Ok(())
}
