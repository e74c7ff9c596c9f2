//! The API server double through kube's `Api`, watcher and raw requests: fault injection
//! (status codes, latency, expired continue tokens, dropped watches, a stopped server) and the
//! request log. Every test starts its own server, so they run in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flux_reporter_e2e::{ApiServer, Fault};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn injected_status_codes_come_with_status_bodies() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (code, reason) in [
        (403, "Forbidden"),
        (404, "NotFound"),
        (500, "InternalError"),
    ] {
        let id = server.faults().inject(
            Fault::status(code)
                .method("GET")
                .path_prefix("/api/v1/namespaces/default/configmaps")
                .times(1),
        );
        let status = expect_status(cms.list(&ListParams::default()).await).await?;
        assert_eq!((status.code, status.reason.as_str()), (code, reason));
        assert_eq!(server.faults().hits(id), 1, "used up");
        cms.list(&ListParams::default()).await?;
    }
    // kube retries 503 (and 429, 504) by itself: two refusals, then the list goes through.
    let id = server
        .faults()
        .inject(Fault::status(503).path_contains("/configmaps").times(2));
    cms.list(&ListParams::default()).await?;
    assert_eq!(server.faults().hits(id), 2);
    let id = server.faults().inject(
        Fault::status(429)
            .path_contains("/configmaps")
            .message("slow down"),
    );
    let (code, headers, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[],
        "",
    )
    .await?;
    assert_eq!(
        (
            code,
            headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or_default())
        ),
        (429, Some("1"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body)?,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "slow down", "reason": "TooManyRequests", "details": {"retryAfterSeconds": 1}, "code": 429})
    );
    assert_eq!(server.faults().hits(id), 1);
    server.faults().remove(id);
    // A POST-only fault leaves reads alone.
    server.faults().inject(Fault::status(500).method("POST"));
    cms.list(&ListParams::default()).await?;
    assert_eq!(
        expect_status(
            cms.create(&PostParams::default(), &ConfigMap::default())
                .await
        )
        .await?
        .code,
        500
    );
    server.faults().clear();
    Ok(())
}

#[tokio::test]
async fn injected_latency_delays_matching_requests() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.list(&ListParams::default()).await?;
    server
        .faults()
        .inject(Fault::latency(Duration::from_millis(300)).path_contains("/configmaps"));
    let started = Instant::now();
    cms.list(&ListParams::default()).await?;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await?;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "other paths are not delayed"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_continue_token_answers_410_with_the_real_body() -> Result<()> {
    let (server, cms) = with_configmaps(3).await?;
    let first = cms.list(&ListParams::default().limit(1)).await?;
    let token = first.metadata.continue_.context("continue")?;
    server.faults().expire_next_continue();
    let (code, _, body) = raw(
        &server,
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"),
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 410);
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(status["reason"], "Expired");
    assert_eq!(
        status["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    );
    let fresh = status["metadata"]["continue"]
        .as_str()
        .context("a fresh token")?;
    let rest = cms
        .list(&ListParams::default().limit(5).continue_token(fresh))
        .await?;
    assert_eq!(
        rest.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        ["cm-1", "cm-2"]
    );
    cms.list(&ListParams::default().limit(1).continue_token(&token))
        .await?;

    server.faults().expire_continues(true);
    assert_eq!(
        expect_status(
            cms.list(&ListParams::default().limit(1).continue_token(&token))
                .await
        )
        .await?
        .code,
        410
    );
    server.faults().expire_continues(false);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cm-late"}}))?,
    )
    .await?;
    server.faults().compact();
    assert_eq!(
        expect_status(
            cms.list(&ListParams::default().limit(1).continue_token(&token))
                .await
        )
        .await?
        .code,
        410,
        "compaction expires old tokens"
    );
    Ok(())
}

#[tokio::test]
async fn a_continue_expiry_fault_hits_only_continued_lists_of_its_path() -> Result<()> {
    let (server, cms) = with_configmaps(3).await?;
    let id = server.faults().inject(
        Fault::expire_continue()
            .path_prefix("/api/v1/namespaces/default/configmaps")
            .times(1),
    );
    // A first page carries no token: not matched, not counted.
    let first = cms.list(&ListParams::default().limit(1)).await?;
    assert_eq!(server.faults().hits(id), 0);
    let token = first.metadata.continue_.context("continue")?;
    let other: Api<Namespace> = Api::all(client_for(&server)?);
    let page = other.list(&ListParams::default().limit(1)).await?;
    other
        .list(
            &ListParams::default()
                .limit(1)
                .continue_token(page.metadata.continue_.as_deref().context("continue")?),
        )
        .await?;
    assert_eq!(server.faults().hits(id), 0, "another path is not matched");
    let status = expect_status(
        cms.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    )
    .await?;
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert_eq!(server.faults().hits(id), 1);
    cms.list(&ListParams::default().limit(1).continue_token(&token))
        .await?;
    Ok(())
}

#[tokio::test]
async fn dropped_watches_end_and_a_stopped_server_refuses_connections() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(30), "0")
        .await?
        .boxed();
    server.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await?;
    assert!(matches!(end, Ok(None)), "the stream ended: {end:?}");

    server.faults().stop_serving().await;
    assert!(!server.faults().is_serving());
    let refused = tokio::net::TcpStream::connect(server.addr()).await;
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(cms.list(&ListParams::default()).await.is_err());
    server.faults().start_serving()?;
    let mut attempts = 0;
    loop {
        match cms.list(&ListParams::default()).await {
            Ok(_) => break,
            Err(e) if attempts < 5 => {
                attempts += 1;
                let _ = e;
            }
            Err(e) => return Err(e.into()),
        }
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_request_log_records_method_path_query_content_type_and_status() -> Result<()> {
    let (server, client) = with_widgets().await?;
    server.clear_requests();
    let api = widgets(&client, "team-log");
    api.patch("flux", &PatchParams::apply("recorder"), &Patch::Apply(json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "flux"}}))).await?;
    let _ = api.get("missing").await;
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].method.as_str(), log[0].status), ("PATCH", 201));
    assert_eq!(
        log[0].path,
        format!("/apis/{GROUP}/v1/namespaces/team-log/widgets/flux")
    );
    assert_eq!(
        log[0].query_param("fieldManager").as_deref(),
        Some("recorder")
    );
    assert_eq!(
        log[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!((log[1].method.as_str(), log[1].status), ("GET", 404));
    Ok(())
}
