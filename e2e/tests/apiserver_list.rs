//! The API server double through kube's `Api`, watcher and raw requests: lists: paging with
//! continue tokens and remaining counts, label and field selectors, 10 000 seeded objects paged
//! through the client. Every test starts its own server, so they run in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use anyhow::{Context, Result};
use flux_reporter_e2e::ApiServer;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

use apiserver_common::*;

#[tokio::test]
async fn lists_page_with_continue_tokens_and_remaining_counts() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-list");
    create_tiered(&api, "team-list", json!({"interval": "5m"})).await?;
    widgets(&client, "other")
        .create(
            &PostParams::default(),
            &widget("flux", "other", json!({}), json!({})),
        )
        .await?;

    let first = api.list(&ListParams::default().limit(2)).await?;
    assert_eq!(
        first.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(),
        ["flux", "flux-a"]
    );
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().context("continue")?;
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await?;
    assert_eq!(
        second
            .items
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>(),
        ["flux-b", "flux-c"]
    );
    assert_eq!(second.metadata.remaining_item_count, Some(1));
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(&second.metadata.continue_.context("continue")?),
        )
        .await?;
    assert_eq!(
        third.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(),
        ["flux-d"]
    );
    assert_eq!(
        (
            third.metadata.continue_.as_deref(),
            third.metadata.remaining_item_count
        ),
        (Some(""), None)
    );

    let all: Api<DynamicObject> = Api::all_with(client.clone(), &widget_resource());
    let everywhere = all.list(&ListParams::default().limit(2)).await?;
    let keys: Vec<(String, String)> = everywhere
        .items
        .iter()
        .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
        .collect();
    assert_eq!(
        keys,
        [
            ("other".to_string(), "flux".to_string()),
            ("team-list".to_string(), "flux".to_string())
        ]
    );
    assert_eq!(everywhere.metadata.remaining_item_count, Some(4));

    let garbage = expect_status(
        api.list(&ListParams::default().limit(2).continue_token("garbage"))
            .await,
    )
    .await?;
    assert_eq!(garbage.code, 400);
    assert_eq!(
        garbage.message,
        "invalid continue token: continue key is not valid: invalid character '\\u0081' looking for beginning of value"
    );
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-sel");
    create_tiered(&api, "team-sel", json!({})).await?;
    let names = |sel: &'static str, fields: &'static str| {
        let api = api.clone();
        async move {
            let mut lp = ListParams::default();
            if !sel.is_empty() {
                lp = lp.labels(sel);
            }
            if !fields.is_empty() {
                lp = lp.fields(fields);
            }
            Ok::<_, anyhow::Error>(
                api.list(&lp)
                    .await?
                    .items
                    .iter()
                    .map(|o| o.name_any())
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(names("tier=gold", "").await?, ["flux", "flux-c"]);
    assert_eq!(names("tier==gold", "").await?, ["flux", "flux-c"]);
    assert_eq!(
        names("tier!=gold", "").await?,
        ["flux-a", "flux-b", "flux-d"]
    );
    assert_eq!(
        names("tier in (gold,silver)", "").await?,
        ["flux", "flux-a", "flux-c"]
    );
    assert_eq!(
        names("tier notin (gold,silver)", "").await?,
        ["flux-b", "flux-d"]
    );
    assert_eq!(names("part-of=flux,!tier", "").await?, ["flux-d"]);
    assert_eq!(
        names("tier", "").await?,
        ["flux", "flux-a", "flux-b", "flux-c"]
    );
    assert_eq!(names("", "metadata.name=flux-a").await?, ["flux-a"]);
    assert_eq!(
        names("", "metadata.name!=flux-a,metadata.namespace=team-sel").await?,
        ["flux", "flux-b", "flux-c", "flux-d"]
    );
    let page = api
        .list(&ListParams::default().labels("tier=gold").limit(1))
        .await?;
    assert!(page.metadata.continue_.is_some_and(|c| !c.is_empty()));
    assert_eq!(
        page.metadata.remaining_item_count, None,
        "no count with a selector"
    );

    let bad = expect_status(
        api.list(&ListParams::default().fields("spec.interval=5m"))
            .await,
    )
    .await?;
    assert_eq!(
        (bad.code, bad.reason.as_str(), bad.message.as_str()),
        (
            400,
            "BadRequest",
            "field label not supported: spec.interval"
        )
    );
    let bad = expect_status(
        api.list(&ListParams::default().labels("tier in gold"))
            .await,
    )
    .await?;
    assert_eq!(
        bad.message,
        "unable to parse requirement: found 'gold' expected: '('"
    );
    Ok(())
}

#[tokio::test]
async fn seeded_objects_page_quickly_through_the_client() -> Result<()> {
    let server = ApiServer::start().await?;
    server.insert(widget_crd()).map_err(anyhow::Error::msg)?;
    let total = 10_000;
    let objects = (0..total).map(|i| {
        json!({
            "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
            "metadata": {"name": format!("flux-{i:05}"), "namespace": format!("ns-{}", i % 10), "labels": {"shard": (i % 2).to_string()}},
            "spec": {"interval": "5m"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        })
    });
    assert_eq!(
        server.insert_many(objects).map_err(anyhow::Error::msg)?,
        total
    );
    assert_eq!(
        server
            .get(&format!("{GROUP}/v1"), "Widget", Some("ns-3"), "flux-00003")
            .context("seeded")?["status"]["conditions"][0]["status"],
        "True"
    );
    let client = client_for(&server)?;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &widget_resource());
    let mut lp = ListParams::default().limit(500);
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await?;
        seen += page.items.len();
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!((seen, pages), (total, total / 500));
    let half = api.list(&ListParams::default().labels("shard=1")).await?;
    assert_eq!(half.items.len(), total / 2);
    Ok(())
}

/// Five widgets labelled `part-of: flux`, four of them with a `tier`: `flux` and `flux-c` gold,
/// `flux-a` silver, `flux-b` bronze, `flux-d` none.
async fn create_tiered(api: &Api<DynamicObject>, ns: &str, spec: serde_json::Value) -> Result<()> {
    for (name, tier) in [
        ("flux", "gold"),
        ("flux-a", "silver"),
        ("flux-b", "bronze"),
        ("flux-c", "gold"),
        ("flux-d", ""),
    ] {
        let labels = if tier.is_empty() {
            json!({"part-of": "flux"})
        } else {
            json!({"part-of": "flux", "tier": tier})
        };
        api.create(
            &PostParams::default(),
            &widget(name, ns, labels, spec.clone()),
        )
        .await?;
    }
    Ok(())
}
