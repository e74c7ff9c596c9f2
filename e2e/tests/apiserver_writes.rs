//! The API server double through kube's `Api`, watcher and raw requests: writes: conflicts and
//! generation, pruning and strict field validation, merge/JSON/strategic patches, the status
//! subresource. Every test starts its own server, so they run in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn writes_conflict_and_bump_generation_on_spec_changes_only() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-w");
    let mut created = api
        .create(
            &PostParams::default(),
            &widget(
                "flux",
                "team-w",
                json!({}),
                json!({"interval": "5m", "replicas": 1}),
            ),
        )
        .await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.uid().is_some() && created.creation_timestamp().is_some());
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].operation.as_deref(), Some("Update"));

    let exists = expect_status(api.create(&PostParams::default(), &created).await).await?;
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(
        exists.message,
        format!("widgets.{GROUP} \"flux\" already exists")
    );

    let stale = created.clone();
    created.data["spec"]["replicas"] = json!(2);
    let updated = api
        .replace("flux", &PostParams::default(), &created)
        .await?;
    assert_eq!(updated.metadata.generation, Some(2));
    assert_ne!(updated.resource_version(), stale.resource_version());
    let conflict = expect_status(api.replace("flux", &PostParams::default(), &stale).await).await?;
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        format!(
            "Operation cannot be fulfilled on widgets.{GROUP} \"flux\": the object has been modified; please apply your changes to the latest version and try again"
        )
    );
    let mut unconditional = updated.clone();
    unconditional.metadata.resource_version = None;
    let invalid = expect_status(
        api.replace("flux", &PostParams::default(), &unconditional)
            .await,
    )
    .await?;
    assert_eq!(invalid.code, 422);

    let labelled = api
        .patch(
            "flux",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await?;
    assert_eq!(
        labelled.metadata.generation,
        Some(2),
        "metadata changes keep the generation"
    );
    let same = api
        .patch(
            "flux",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    assert_eq!(
        same.resource_version(),
        labelled.resource_version(),
        "a no-op write keeps the resourceVersion"
    );

    let other = expect_status(
        api.create(
            &PostParams::default(),
            &widget("other", "team-w", json!({}), json!({})),
        )
        .await,
    )
    .await?;
    assert_eq!(other.code, 422);
    assert_eq!(
        other.message,
        format!(
            "Widget.{GROUP} \"other\" is invalid: <nil>: Invalid value: \"object\": a Widget must be named 'flux' or 'flux-<suffix>'"
        )
    );
    let typed = expect_status(
        api.create(
            &PostParams::default(),
            &widget("flux-t", "team-w", json!({}), json!({"replicas": "three"})),
        )
        .await,
    )
    .await?;
    assert_eq!(
        typed.message,
        format!(
            "Widget.{GROUP} \"flux-t\" is invalid: [spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\", <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
        )
    );
    Ok(())
}

#[tokio::test]
async fn unknown_fields_are_pruned_with_a_warning_or_refused_when_strict() -> Result<()> {
    let (server, client) = with_widgets().await?;
    let body = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "flux"}, "spec": {"interval": "5m", "colour": "blue"}}).to_string();
    let path = format!("/apis/{GROUP}/v1/namespaces/team-p/widgets");
    let (code, headers, created) = raw(
        &server,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        &body,
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(
        headers.get("warning").context("warning")?,
        "299 - \"unknown field \\\"spec.colour\\\"\""
    );
    assert_eq!(
        serde_json::from_str::<Value>(&created)?["spec"],
        json!({"interval": "5m"})
    );
    let strict = body.replace("\"flux\"", "\"flux-strict\"");
    let (code, _, refused) = raw(
        &server,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &[("Content-Type", "application/json")],
        &strict,
    )
    .await?;
    assert_eq!(code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&refused)?["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.colour\""
    );
    let _ = client;
    Ok(())
}

#[tokio::test]
async fn merge_json_and_strategic_patches() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-patch");
    api.create(
        &PostParams::default(),
        &widget(
            "flux",
            "team-patch",
            json!({}),
            json!({"interval": "5m", "replicas": 1}),
        ),
    )
    .await?;
    let merged = api
        .patch(
            "flux",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"interval": "10m"}, "status": {"lastAppliedRevision": "ignored"}}),
            ),
        )
        .await?;
    assert_eq!(
        merged.data["spec"],
        json!({"interval": "10m", "replicas": 1})
    );
    assert!(
        merged.data.get("status").is_none(),
        "status is ignored on the main resource"
    );

    let ops: Vec<Value> = vec![
        json!({"op": "test", "path": "/spec/interval", "value": "10m"}),
        json!({"op": "replace", "path": "/spec/replicas", "value": 5}),
    ];
    let patched = api
        .patch(
            "flux",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!(ops))?),
        )
        .await?;
    assert_eq!(patched.data["spec"]["replicas"], 5);
    let failing: Vec<Value> = vec![json!({"op": "test", "path": "/spec/interval", "value": "99m"})];
    let failed = expect_status(
        api.patch(
            "flux",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!(failing))?),
        )
        .await,
    )
    .await?;
    assert_eq!(
        (failed.code, failed.message.as_str()),
        (
            422,
            "the server rejected our request due to an error in our request"
        )
    );

    let strategic = expect_status(
        api.patch(
            "flux",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 9}})),
        )
        .await,
    )
    .await?;
    assert_eq!(
        (strategic.code, strategic.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let stale = expect_status(
        api.patch(
            "flux",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 9}})),
        )
        .await,
    )
    .await?;
    assert_eq!(stale.code, 409);

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-patch");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"a": "1"}}))?,
    )
    .await?;
    let cm = cms
        .patch(
            "cm",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"b": "2"}})),
        )
        .await?;
    assert_eq!(
        cm.data,
        Some(BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ]))
    );
    let missing = expect_status(
        api.patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    )
    .await?;
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "widgets.example.toolkit.fluxcd.io \"nope\" not found")
    );
    Ok(())
}

#[tokio::test]
async fn the_status_subresource_splits_spec_and_status_writes() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-status");
    let mut w = widget("flux", "team-status", json!({}), json!({"interval": "5m"}));
    w.data["status"] = json!({"observedGeneration": 7});
    let created = api.create(&PostParams::default(), &w).await?;
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    let condition = json!({"type": "Ready", "status": "True", "reason": "Succeeded", "message": "done", "lastTransitionTime": "2026-11-22T05:25:10Z"});
    let with_status = api
        .patch_status("flux", &PatchParams::default(), &Patch::Merge(json!({"spec": {"interval": "1h"}, "status": {"observedGeneration": 1, "conditions": [condition]}})))
        .await?;
    assert_eq!(
        with_status.data["spec"]["interval"], "5m",
        "spec is ignored on /status"
    );
    assert_eq!(
        with_status.data["status"]["conditions"][0]["status"],
        "True"
    );
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes never bump the generation"
    );

    let mut replaced = with_status.clone();
    replaced.data["status"]["observedGeneration"] = json!(2);
    replaced.data["spec"]["interval"] = json!("2h");
    let replaced = api
        .replace_status("flux", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(
        (
            replaced.data["status"]["observedGeneration"].clone(),
            replaced.data["spec"]["interval"].clone()
        ),
        (json!(2), json!("5m"))
    );
    let status_only = api.get_status("flux").await?;
    assert_eq!(status_only.data["status"]["observedGeneration"], 2);

    let main = api
        .patch(
            "flux",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"interval": "10m"}, "status": {"observedGeneration": 99}}),
            ),
        )
        .await?;
    assert_eq!(
        (
            main.data["status"]["observedGeneration"].clone(),
            main.metadata.generation
        ),
        (json!(2), Some(2))
    );
    Ok(())
}
