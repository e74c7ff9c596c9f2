//! The API server double, exercised through kube's `Api`, watcher and raw requests.
//! Every test starts its own server, so they run in parallel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use flux_reporter_e2e::{ApiServer, Fault};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, conditions, reflector, wait::await_condition, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

const GROUP: &str = "example.toolkit.fluxcd.io";

/// A Flux-shaped CRD with two versions, a status subresource, printer columns, a CEL rule on the
/// root and `status.conditions` as a list map keyed by `type` (as in crd-lifecycle.md).
fn widget_crd() -> Value {
    let schema = json!({
        "type": "object",
        "x-kubernetes-validations": [{
            "rule": "self.metadata.name == 'flux' || self.metadata.name.startsWith('flux-')",
            "message": "a Widget must be named 'flux' or 'flux-<suffix>'"
        }],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "interval": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"},
                "replicas": {"type": "integer", "minimum": 0},
                "suspend": {"type": "boolean"}
            }},
            "status": {"type": "object", "properties": {
                "observedGeneration": {"type": "integer"},
                "lastAppliedRevision": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {"type": "object", "required": ["type", "status"], "properties": {
                        "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"},
                        "message": {"type": "string"}, "lastTransitionTime": {"type": "string"},
                        "observedGeneration": {"type": "integer"}
                    }}
                }
            }}
        }
    });
    let columns = json!([
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"},
        {"name": "Interval", "type": "string", "jsonPath": ".spec.interval", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    let version = |name: &str, storage: bool| {
        json!({
            "name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": schema},
            "subresources": {"status": {}},
            "additionalPrinterColumns": columns
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{GROUP}"), "labels": {"app.kubernetes.io/part-of": "flux"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                      "shortNames": ["wdg"], "categories": ["flux"]},
            "versions": [version("v1", true), version("v1beta1", false)]
        }
    })
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets")
}

fn widget(name: &str, ns: &str, labels: Value, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec
    }))
    .expect("a valid DynamicObject")
}

fn client_for(server: &ApiServer) -> Result<Client> {
    let mut config = Config::new(server.url().parse()?);
    config.default_namespace = "default".into();
    Ok(Client::try_from(config)?)
}

/// A server with the Widget CRD created through the API and established.
async fn with_widgets() -> Result<(ApiServer, Client)> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd())?,
    )
    .await?;
    let name = format!("widgets.{GROUP}");
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(5), established).await??;
    Ok((server, client))
}

fn widgets(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &widget_resource())
}

fn api_error(err: kube::Error) -> Result<kube::core::Status> {
    match err {
        kube::Error::Api(status) => Ok(*status),
        other => Err(anyhow!("expected an API error, got {other}")),
    }
}

async fn expect_status<T: std::fmt::Debug>(res: kube::Result<T>) -> Result<kube::core::Status> {
    match res {
        Ok(v) => Err(anyhow!("expected an error, got {v:?}")),
        Err(e) => api_error(e),
    }
}

/// A raw request, with its status, headers and body.
async fn raw(
    server: &ApiServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, http::HeaderMap, String)> {
    let addr = server.addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let code: u16 = lines
        .next()
        .context("no status line")?
        .split(' ')
        .nth(1)
        .context("no code")?
        .parse()?;
    let mut map = http::HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            map.append(
                http::HeaderName::from_bytes(k.trim().as_bytes())?,
                http::HeaderValue::from_str(v.trim())?,
            );
        }
    }
    let body = if map.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, map, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

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
async fn lists_page_with_continue_tokens_and_remaining_counts() -> Result<()> {
    let (_server, client) = with_widgets().await?;
    let api = widgets(&client, "team-list");
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
            &widget(name, "team-list", labels, json!({"interval": "5m"})),
        )
        .await?;
    }
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
            &widget(name, "team-sel", labels, json!({})),
        )
        .await?;
    }
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
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))?,
        )
        .await?;
    }
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
async fn a_streaming_list_watcher_gets_the_initial_events_end_bookmark() -> Result<()> {
    let server = ApiServer::start().await?;
    let client = client_for(&server)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))?,
        )
        .await?;
    }
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
