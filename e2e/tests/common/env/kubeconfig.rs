//! Kubeconfigs: a client from one, the server it names, a copy through a proxy, a copy with a
//! ServiceAccount token.

use std::path::Path;

use kube::Client;
use serde_json::{Value, json};

use super::Env;

pub async fn client_from(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("a Kubernetes client")
}

impl Env {
    /// `host:port` of the API server the tests talk to.
    pub fn api_upstream(&self) -> String {
        let server = kubeconfig_server(&self.kubeconfig);
        let uri: http::Uri = server
            .parse()
            .unwrap_or_else(|e| panic!("server URL {server}: {e}"));
        let host = uri.host().expect("server host");
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        format!("{host}:{port}")
    }
}

/// Writes a kubeconfig for the current cluster of `admin` that authenticates with `token`.
pub fn write_token_kubeconfig(admin: &Path, out: &Path, token: &str, namespace: &str) {
    let text =
        std::fs::read_to_string(admin).unwrap_or_else(|e| panic!("read {}: {e}", admin.display()));
    let config: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", admin.display()));
    let current = config["current-context"]
        .as_str()
        .expect("current-context in the kubeconfig");
    let named = |list: &str, name: &str| {
        config[list]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {list} entry {name:?} in {}", admin.display()))
    };
    let context = named("contexts", current);
    let cluster_name = context["context"]["cluster"]
        .as_str()
        .expect("context.cluster");
    let mut cluster = named("clusters", cluster_name)["cluster"].clone();
    if let Some(ca) = cluster["certificate-authority"].as_str() {
        let ca = Path::new(ca);
        if ca.is_relative() {
            let base = admin.parent().unwrap_or(Path::new("."));
            cluster["certificate-authority"] = json!(base.join(ca).to_string_lossy());
        }
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "flux-reporter", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "flux-reporter", "namespace": namespace}}],
        "current-context": "e2e",
    });
    std::fs::write(
        out,
        serde_json::to_string_pretty(&config).expect("kubeconfig JSON"),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// The server URL of the kubeconfig's current context.
fn kubeconfig_server(path: &Path) -> String {
    let kc = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", path.display()));
    let context = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    kc.clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| panic!("no server in kubeconfig {}", path.display()))
}

/// Copies a kubeconfig with every cluster's server replaced by `proxy`, keeping the scheme; for
/// TLS, the certificate is still checked against the original host (`tls-server-name`).
pub(super) fn write_proxied_kubeconfig(from: &Path, to: &Path, proxy: std::net::SocketAddr) {
    let mut kc = kube::config::Kubeconfig::read_from(from)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", from.display()));
    for named in &mut kc.clusters {
        let Some(cluster) = named.cluster.as_mut() else {
            continue;
        };
        let Some(server) = cluster.server.clone() else {
            continue;
        };
        let uri: http::Uri = server
            .parse()
            .unwrap_or_else(|e| panic!("server URL {server}: {e}"));
        let scheme = uri.scheme_str().unwrap_or("https");
        if scheme == "https" && cluster.tls_server_name.is_none() {
            cluster.tls_server_name = uri.host().map(str::to_string);
        }
        cluster.server = Some(format!("{scheme}://{proxy}"));
    }
    let yaml = serde_saphyr::to_string(&kc).expect("kubeconfig as YAML");
    std::fs::write(to, yaml).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
}
