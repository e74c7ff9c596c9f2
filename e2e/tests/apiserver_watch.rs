//! The API server double through kube's `Api`, watcher and raw requests: watches: changes,
//! bookmarks, selector transitions, the initial state, a kube watcher surviving dropped watches
//! and expired continue tokens, streaming lists. Every test starts its own server, so they run
//! in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn watches_stream_changes_bookmarks_and_selector_transitions() -> Result<()> {
    let (server, client) = with_widgets().await?;
    server.set_bookmark_interval(Duration::from_millis(100));
    let api = widgets(&client, "team-watch");
    api.create(
        &PostParams::default(),
        &widget("flux-a", "team-watch", json!({}), json!({})),
    )
    .await?;
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("rv")?;
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await?
        .boxed();
    let selected = api
        .watch(&WatchParams::default().labels("tier=gold").timeout(5), &rv)
        .await?
        .boxed();

    api.create(
        &PostParams::default(),
        &widget(
            "flux",
            "team-watch",
            json!({"tier": "gold"}),
            json!({"interval": "5m"}),
        ),
    )
    .await?;
    api.patch(
        "flux",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"interval": "10m"}})),
    )
    .await?;
    api.patch(
        "flux",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "silver"}}})),
    )
    .await?;
    api.delete("flux", &DeleteParams::default()).await?;

    let mut seen = Vec::new();
    let mut bookmarked = false;
    while seen.len() < 4 || !bookmarked {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await?
            .context("stream ended")?;
        match ev.context("event")? {
            WatchEvent::Added(o) => seen.push(("ADDED", o.name_any())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.name_any())),
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                bookmarked = true;
            }
            WatchEvent::Error(e) => return Err(anyhow!("watch error {e:?}")),
        }
    }
    assert_eq!(
        seen[..4],
        [
            ("ADDED", "flux".into()),
            ("MODIFIED", "flux".into()),
            ("MODIFIED", "flux".into()),
            ("DELETED", "flux".into())
        ]
    );

    let kinds: Vec<String> = selected
        .take(3)
        .map(|e| match e {
            Ok(WatchEvent::Added(_)) => "ADDED".to_string(),
            Ok(WatchEvent::Modified(_)) => "MODIFIED".to_string(),
            Ok(WatchEvent::Deleted(_)) => "DELETED".to_string(),
            other => format!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(
        kinds,
        ["ADDED", "MODIFIED", "DELETED"],
        "leaving the selection is a DELETED event"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_without_resource_version_starts_with_the_current_objects() -> Result<()> {
    let (server, client) = with_widgets().await?;
    let api = widgets(&client, "team-w0");
    api.create(
        &PostParams::default(),
        &widget("flux-a", "team-w0", json!({}), json!({})),
    )
    .await?;
    api.create(
        &PostParams::default(),
        &widget("flux-b", "team-w0", json!({}), json!({})),
    )
    .await?;
    let (code, _, body) = raw(
        &server,
        "GET",
        &format!("/apis/{GROUP}/v1/namespaces/team-w0/widgets?watch=true&timeoutSeconds=1"),
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let types: Vec<(String, String)> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).map(|v| {
                (
                    v["type"].as_str().unwrap_or_default().to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(
        types,
        [
            ("ADDED".to_string(), "flux-a".to_string()),
            ("ADDED".to_string(), "flux-b".to_string())
        ]
    );

    let (code, _, body) = raw(&server, "GET", &format!("/apis/{GROUP}/v1/namespaces/team-w0/widgets?watch=true&resourceVersion=1&timeoutSeconds=5"), &[], "").await?;
    assert_eq!(code, 200);
    let error: Value = serde_json::from_str(body.trim())?;
    assert_eq!(error["type"], "ERROR");
    assert_eq!(
        (
            error["object"]["code"].clone(),
            error["object"]["reason"].clone()
        ),
        (json!(410), json!("Expired"))
    );
    assert!(
        error["object"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("too old resource version: 1 (")
    );

    let (code, _, body) = raw(
        &server,
        "GET",
        &format!("/apis/{GROUP}/v1/namespaces/team-w0/widgets?watch=true&resourceVersion=abc"),
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 500);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["message"],
        "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax"
    );

    let rv = server.resource_version();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv.to_string())
        .await?
        .boxed();
    api.create(
        &PostParams::default(),
        &widget("flux-c", "team-w0", json!({}), json!({})),
    )
    .await?;
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await??;
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    server.faults().compact();
    let (_, _, body) = raw(&server, "GET", &format!("/apis/{GROUP}/v1/namespaces/team-w0/widgets?watch=true&resourceVersion={rv}&timeoutSeconds=5"), &[], "").await?;
    assert!(body.contains("\"code\":410"), "{body}");
    Ok(())
}

#[tokio::test]
async fn the_kube_watcher_survives_dropped_watches_and_expired_continue_tokens() -> Result<()> {
    let (server, client) = with_widgets().await?;
    server.set_bookmark_interval(Duration::from_millis(200));
    let api = widgets(&client, "team-r");
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &widget(&format!("flux-{i}"), "team-r", json!({}), json!({})),
        )
        .await?;
    }
    // Pages of 2: the initial list needs continue tokens; the first continuation expires.
    server.faults().expire_next_continue();
    let writer = reflector::store::Writer::new(widget_resource());
    let reader = writer.as_reader();
    let config = watcher::Config::default().page_size(2).timeout(10);
    let stream = reflector(writer, watcher(api.clone(), config))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    let wait_for = |n: usize| {
        let reader = reader.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while reader.state().len() != n {
                if Instant::now() > deadline {
                    return Err(anyhow!(
                        "the store has {} objects, want {n}",
                        reader.state().len()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
    };
    wait_for(5).await?;
    let expired = server.requests().iter().filter(|r| r.status == 410).count();
    assert_eq!(
        expired, 1,
        "one continuation was refused and the watcher listed again"
    );

    server.faults().drop_watches();
    api.create(
        &PostParams::default(),
        &widget("flux-5", "team-r", json!({}), json!({})),
    )
    .await?;
    wait_for(6).await?;
    server
        .faults()
        .drop_watches_and_refuse_for(Duration::from_millis(300));
    api.delete("flux-0", &DeleteParams::default()).await?;
    wait_for(5).await?;
    let refused = server
        .requests()
        .iter()
        .filter(|r| r.watch && r.status == 503)
        .count();
    assert!(refused >= 1, "new watches were refused for a while");
    task.abort();
    Ok(())
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_the_initial_events_end_bookmark() -> Result<()> {
    let (server, cms) = with_configmaps(3).await?;
    let mut events = watcher(
        cms.clone(),
        watcher::Config::default().streaming_lists().timeout(10),
    )
    .boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await??
            .context("stream ended")?
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(cm) => initial.push(cm.name_any()),
            watcher::Event::InitDone => break,
            other => return Err(anyhow!("unexpected {other:?}")),
        }
    }
    assert_eq!(initial, ["cm-0", "cm-1", "cm-2"]);
    cms.delete("cm-1", &DeleteParams::default()).await?;
    let next = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await??
        .context("stream ended")?;
    assert!(
        matches!(next, watcher::Event::Delete(ref cm) if cm.name_any() == "cm-1"),
        "{next:?}"
    );
    let watch = server
        .requests()
        .into_iter()
        .find(|r| r.watch)
        .context("a watch request")?;
    assert_eq!(
        watch.query_param("sendInitialEvents").as_deref(),
        Some("true")
    );
    Ok(())
}
