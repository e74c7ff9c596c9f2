//! Puts objects read from a dump (`kubectl get -o yaml` output, such as
//! `examples/flux-cluster-dump.yaml`) into a real API server the way a cluster holds them: CRDs
//! first, established; namespaces; then each object by server-side apply and its `status`
//! through the status subresource where the kind has one (an apply of the main resource drops
//! it). Used by `envtest seed` for people and by tests that need a populated cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// What went wrong seeding one object.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    what: String,
    #[source]
    source: kube::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error { what, source }
}

fn kind_of(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

/// Only what an apply may carry: no server-set metadata, no finalizers (no controller here would
/// ever remove them), no status.
pub fn for_apply(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "finalizers",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    obj
}

/// Seeds `objects` (CRDs, Namespaces, anything else) as `field_manager`; returns how many
/// objects were written. An object of a kind the server does not serve is an error naming it.
pub async fn apply_all(
    client: &Client,
    objects: &[Value],
    field_manager: &str,
) -> Result<usize, Error> {
    let pp = PatchParams::apply(field_manager).force();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    let mut written = 0;
    for crd in objects
        .iter()
        .filter(|o| kind_of(o) == "CustomResourceDefinition")
    {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        // A CRD already served (the project's or the Flux CRDs a test installed) is kept: its
        // schema may be fuller than a dump's trimmed one.
        if crds
            .get_opt(name)
            .await
            .map_err(err(format!("get CRD {name}")))?
            .is_none()
        {
            crds.patch(name, &pp, &Patch::Apply(for_apply(crd)))
                .await
                .map_err(err(format!("apply CRD {name}")))?;
            written += 1;
        }
        wait_established(&crds, name).await?;
    }
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(err("discovery"))?;
    let namespaces: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .collect();
    let ns_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
    );
    for ns in namespaces {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ns_api
            .patch(ns, &pp, &Patch::Apply(body))
            .await
            .map_err(err(format!("apply Namespace {ns}")))?;
    }
    for obj in objects
        .iter()
        .filter(|o| kind_of(o) != "CustomResourceDefinition")
    {
        let (group, version) = match obj["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .split_once('/')
        {
            Some((g, v)) => (g, v),
            None => ("", obj["apiVersion"].as_str().unwrap_or_default()),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind_of(obj));
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{} {name}", gvk.kind);
        let Some((ar, caps)) = discovery.resolve_gvk(&gvk) else {
            return Err(Error {
                what,
                source: kube::Error::Discovery(kube::error::DiscoveryError::MissingResource(
                    format!(
                        "{}/{}",
                        obj["apiVersion"].as_str().unwrap_or_default(),
                        gvk.kind
                    ),
                )),
            });
        };
        let api: Api<DynamicObject> = match (&caps.scope, obj["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let applied = api
            .patch(name, &pp, &Patch::Apply(for_apply(obj)))
            .await
            .map_err(err(format!("apply {what}")))?;
        written += 1;
        if let Some(status) = obj.get("status").filter(|s| !s.is_null()) {
            let mut status = status.clone();
            rebase_generations(
                &mut status,
                obj["metadata"]["generation"].as_i64(),
                applied.metadata.generation,
            );
            let mut body = json!({"status": status});
            // The status subresource checks the object's version when one is given; none is.
            body["metadata"] = json!({"name": applied.name_any()});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                Ok(_) => {}
                // No status subresource: the apply above kept the status already.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                Err(e) => return Err(err(format!("write the status of {what}"))(e)),
            }
        }
    }
    Ok(written)
}

/// The dump's `observedGeneration`s (the status's and its conditions') moved to the generation
/// the new object got, keeping how far behind they were: a controller that had caught up with
/// the dumped object has caught up with the seeded one.
pub fn rebase_generations(status: &mut Value, dumped: Option<i64>, now: Option<i64>) {
    let (Some(dumped), Some(now)) = (dumped, now) else {
        return;
    };
    let rebase = |v: &mut Value| {
        if let Some(observed) = v.as_i64() {
            *v = json!((now - (dumped - observed)).max(0));
        }
    };
    if let Some(v) = status.get_mut("observedGeneration") {
        rebase(v);
    }
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            if let Some(v) = c.get_mut("observedGeneration") {
                rebase(v);
            }
        }
    }
}

async fn wait_established(crds: &Api<DynamicObject>, name: &str) -> Result<(), Error> {
    for _ in 0..300 {
        let crd = crds
            .get(name)
            .await
            .map_err(err(format!("get CRD {name}")))?;
        let established = crd.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error {
        what: format!("CRD {name}"),
        source: kube::Error::Discovery(kube::error::DiscoveryError::MissingResource(format!(
            "{name} not established within 30s"
        ))),
    })
}
