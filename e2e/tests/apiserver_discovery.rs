//! The API server double through kube's `Api`, watcher and raw requests: kubeconfigs, CRD
//! lifecycle and discovery, Tables and aggregated discovery. Every test starts its own server,
//! so they run in parallel.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use anyhow::{Context, Result};
use flux_reporter_e2e::ApiServer;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

use apiserver_common::*;

#[tokio::test]
async fn kubeconfig_gives_a_working_client() -> Result<()> {
    let server = ApiServer::start().await?;
    let dir = std::env::temp_dir().join(format!(
        "apiserver-double-kc-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kubeconfig");
    server.write_kubeconfig(&path)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await?;
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config)?;
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn a_crd_extends_discovery_and_its_deletion_removes_objects() -> Result<()> {
    let (server, client) = with_widgets().await?;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(&format!("widgets.{GROUP}"))
        .await?;
    let status = crd.status.context("status")?;
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
    assert_eq!(
        status.accepted_names.context("acceptedNames")?.plural,
        "widgets"
    );
    let types: Vec<(String, String)> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(
        types,
        [
            ("NamesAccepted".into(), "True".into()),
            ("Established".into(), "True".into())
        ]
    );

    let legacy = kube::Discovery::new(client.clone()).run().await?;
    assert!(legacy.has_group(GROUP), "legacy discovery finds the group");
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await?;
    let group = discovery
        .get(GROUP)
        .context("the CRD group is discovered")?;
    let versions: Vec<&str> = group.versions().collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    let resources = client
        .list_api_group_resources(&format!("{GROUP}/v1"))
        .await?;
    let names: Vec<&str> = resources
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["widgets", "widgets/status"]);

    widgets(&client, "team-a")
        .create(
            &PostParams::default(),
            &widget("flux", "team-a", json!({}), json!({"interval": "5m"})),
        )
        .await?;
    // The same object through the other served version.
    let beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1beta1", "Widget"),
        "widgets",
    );
    let through_beta = Api::<DynamicObject>::namespaced_with(client.clone(), "team-a", &beta)
        .get("flux")
        .await?;
    assert_eq!(
        through_beta.types.context("types")?.api_version,
        format!("{GROUP}/v1beta1")
    );

    let deleted = Api::<CustomResourceDefinition>::all(client.clone())
        .delete(&format!("widgets.{GROUP}"), &DeleteParams::default())
        .await?;
    let terminating = deleted
        .left()
        .context("the CRD comes back while its objects are cleaned up")?;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(
        server
            .list_objects(&format!("{GROUP}/v1"), "Widget")
            .is_empty()
    );
    let (code, _, body) = raw(&server, "GET", &format!("/apis/{GROUP}/v1"), &[], "").await?;
    assert_eq!((code, body.as_str()), (404, "404 page not found\n"));
    Ok(())
}

#[tokio::test]
async fn tables_render_printer_columns() -> Result<()> {
    let (server, client) = with_widgets().await?;
    let api = widgets(&client, "team-table");
    api.create(
        &PostParams::default(),
        &widget("flux", "team-table", json!({}), json!({"interval": "10m"})),
    )
    .await?;
    api.create(
        &PostParams::default(),
        &widget("flux-b", "team-table", json!({}), json!({"interval": "5m"})),
    )
    .await?;
    api.patch_status("flux", &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: main@sha1:0123abcd"}]}}))).await?;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, headers, body) = raw(
        &server,
        "GET",
        &format!("/apis/{GROUP}/v1/namespaces/team-table/widgets?limit=500"),
        &[("Accept", accept)],
        "",
    )
    .await?;
    assert_eq!(
        (
            code,
            headers
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default())
        ),
        (200, Some("application/json"))
    );
    let table: Value = serde_json::from_str(&body)?;
    assert_eq!(table["kind"], "Table");
    let columns: Vec<(String, i64)> = table["columnDefinitions"]
        .as_array()
        .context("columns")?
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name".into(), 0),
            ("Ready".into(), 0),
            ("Status".into(), 0),
            ("Interval".into(), 1),
            ("Age".into(), 0)
        ]
    );
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "flux",
            "True",
            "Applied revision: main@sha1:0123abcd",
            "10m",
            "0s"
        ])
    );
    assert_eq!(
        table["rows"][1]["cells"],
        json!(["flux-b", null, null, "5m", "0s"])
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let (_, _, one) = raw(
        &server,
        "GET",
        &format!("/apis/{GROUP}/v1/namespaces/team-table/widgets/flux?includeObject=None"),
        &[("Accept", accept)],
        "",
    )
    .await?;
    assert_eq!(
        serde_json::from_str::<Value>(&one)?["rows"][0]["object"],
        Value::Null
    );

    let meta = api.list_metadata(&ListParams::default()).await?;
    assert_eq!(meta.items.len(), 2);
    assert_eq!(meta.items[0].metadata.name.as_deref(), Some("flux"));
    Ok(())
}

#[tokio::test]
async fn discovery_answers_aggregated_documents_with_etags() -> Result<()> {
    let (server, _client) = with_widgets().await?;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (code, headers, body) = raw(&server, "GET", "/apis", &[("Accept", accept)], "").await?;
    assert_eq!(code, 200);
    assert_eq!(
        headers.get("content-type").context("ct")?,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let doc: Value = serde_json::from_str(&body)?;
    let widgets_group = doc["items"]
        .as_array()
        .context("items")?
        .iter()
        .find(|g| g["metadata"]["name"] == GROUP)
        .context("group")?;
    assert_eq!(
        widgets_group["versions"][0]["resources"][0]["subresources"][0]["subresource"],
        "status"
    );
    let etag = headers.get("etag").context("etag")?.to_str()?.to_string();
    let (code, _, _) = raw(
        &server,
        "GET",
        "/apis",
        &[("Accept", accept), ("If-None-Match", &etag)],
        "",
    )
    .await?;
    assert_eq!(code, 304);
    let (code, _, body) = raw(
        &server,
        "GET",
        "/apis",
        &[("Accept", "application/json")],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["kind"],
        "APIGroupList"
    );
    let (code, _, index) = raw(&server, "GET", "/openapi/v3", &[], "").await?;
    assert_eq!(code, 200);
    let url = serde_json::from_str::<Value>(&index)?["paths"][format!("apis/{GROUP}/v1")]["serverRelativeURL"].as_str().context("url")?.to_string();
    let (code, _, doc) = raw(&server, "GET", &url, &[], "").await?;
    assert_eq!(code, 200);
    assert!(doc.contains("fieldValidation"));
    let (code, _, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/gadgets",
        &[],
        "",
    )
    .await?;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&body)?["reason"].clone()
        ),
        (404, json!("NotFound"))
    );
    Ok(())
}
