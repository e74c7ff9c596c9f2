//! What the `apiserver_*` tests share: the Widget CRD (a Flux-shaped custom resource), a client
//! for a server, raw requests, and the error helpers.

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

pub const GROUP: &str = "example.toolkit.fluxcd.io";

/// A Flux-shaped CRD with two versions, a status subresource, printer columns, a CEL rule on the
/// root and `status.conditions` as a list map keyed by `type` (as in crd-lifecycle.md).
pub fn widget_crd() -> Value {
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

pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets")
}

pub fn widget(name: &str, ns: &str, labels: Value, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec
    }))
    .expect("a valid DynamicObject")
}

pub fn client_for(server: &ApiServer) -> Result<Client> {
    let mut config = Config::new(server.url().parse()?);
    config.default_namespace = "default".into();
    Ok(Client::try_from(config)?)
}

/// A server with the Widget CRD created through the API and established.
pub async fn with_widgets() -> Result<(ApiServer, Client)> {
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

/// A fresh server with `n` ConfigMaps `cm-0`, `cm-1`, … in `default`, and their API.
pub async fn with_configmaps(n: usize) -> Result<(ApiServer, Api<ConfigMap>)> {
    let server = ApiServer::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client_for(&server)?, "default");
    for i in 0..n {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))?,
        )
        .await?;
    }
    Ok((server, cms))
}

pub fn widgets(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &widget_resource())
}

pub fn api_error(err: kube::Error) -> Result<kube::core::Status> {
    match err {
        kube::Error::Api(status) => Ok(*status),
        other => Err(anyhow!("expected an API error, got {other}")),
    }
}

pub async fn expect_status<T: std::fmt::Debug>(res: kube::Result<T>) -> Result<kube::core::Status> {
    match res {
        Ok(v) => Err(anyhow!("expected an error, got {v:?}")),
        Err(e) => api_error(e),
    }
}

/// A raw request, with its status, headers and body.
pub async fn raw(
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

pub fn dechunk(mut s: &str) -> String {
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
