//! The operator's credentials: the admin kubeconfig, or the project RBAC (`config/rbac`) with a
//! ServiceAccount token; directly or through the test's proxy; and forbidding a kind, by RBAC
//! when the operator runs under the project RBAC, else by a 403 from the proxy.

use std::path::PathBuf;

use flux_reporter_e2e::{Fault, FaultId, MuteProxy};
use serde_json::{Value, json};

use super::kubeconfig::{write_proxied_kubeconfig, write_token_kubeconfig};
use super::{
    CLUSTER_SCOPED, Env, HELM_REPOSITORIES, documents, lock, manifest_dir, rbac_requested, resource,
};
use crate::common::process::{Operator, OperatorOpts};

/// What [`Env::project_rbac_kubeconfig`] applies of a `config/` directory.
const RBAC_KINDS: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The project RBAC applied for this test.
pub(super) struct Rbac {
    pub(super) kubeconfig: PathBuf,
    pub(super) cluster_role: Value,
}

impl Env {
    /// Makes listing HelmRepositories fail with 403 for the operator: by RBAC (the project
    /// ClusterRole without `helmrepositories`) when it runs under the project RBAC, else by the
    /// proxy (the operator must then run [`OperatorOpts::through_proxy`]), with the message the
    /// RBAC authorizer gives.
    pub async fn forbid_helm_repositories(&self) -> Option<FaultId> {
        let rbac = self.rbac.lock().await;
        let Some(rbac) = rbac.as_ref() else {
            let message = format!(
                "helmrepositories.source.toolkit.fluxcd.io is forbidden: User \"system:serviceaccount:{}:flux-reporter\" cannot list resource \"helmrepositories\" in API group \"source.toolkit.fluxcd.io\" at the cluster scope",
                self.ns
            );
            let proxy = self.proxy().await;
            return Some(
                proxy.faults().inject(
                    Fault::status(403)
                        .method("GET")
                        .path_prefix(HELM_REPOSITORIES)
                        .message(&message),
                ),
            );
        };
        let mut role = rbac.cluster_role.clone();
        for rule in role["rules"].as_array_mut().into_iter().flatten() {
            if let Some(resources) = rule.get_mut("resources").and_then(Value::as_array_mut) {
                resources.retain(|r| r != "helmrepositories");
            }
        }
        self.apply(role).await;
        None
    }

    /// Undoes [`Env::forbid_helm_repositories`].
    pub async fn allow_helm_repositories(&self, fault: Option<FaultId>) {
        if let Some(id) = fault {
            self.proxy().await.faults().remove(id);
            return;
        }
        let role = self
            .rbac
            .lock()
            .await
            .as_ref()
            .map(|r| r.cluster_role.clone());
        if let Some(role) = role {
            self.apply(role).await;
        }
    }

    /// The kubeconfig a replica started with `opts` uses: the project RBAC's
    /// (`E2E_RBAC=1` or `opts.project_rbac`) or the admin's; through the proxy with
    /// `opts.through_proxy`.
    async fn operator_kubeconfig(&self, opts: &OperatorOpts) -> PathBuf {
        let kubeconfig = if opts.project_rbac.unwrap_or_else(rbac_requested) {
            self.project_rbac_kubeconfig(&opts.rbac_components).await
        } else {
            self.kubeconfig.clone()
        };
        if opts.through_proxy {
            self.proxied_kubeconfig(&kubeconfig).await
        } else {
            kubeconfig
        }
    }

    /// Starts a replica of the operator for the namespace. With the project RBAC
    /// (`E2E_RBAC=1` or `opts.project_rbac`), it runs as the ServiceAccount of `config/rbac`,
    /// with a token from the TokenRequest API.
    pub async fn start_operator(&self, opts: OperatorOpts) -> Operator {
        let kubeconfig = self.operator_kubeconfig(&opts).await;
        self.track(Operator::start(&kubeconfig, &self.ns, &self.dir, &opts).await)
    }

    fn track(&self, op: Operator) -> Operator {
        lock(&self.operators).push(op.process());
        op
    }

    /// Starts a replica that reaches the API server through the TCP proxy `proxy` (which
    /// forwards to [`Env::api_upstream`]), with the kubeconfig [`Env::start_operator`] would use.
    pub async fn start_operator_through(&self, proxy: &MuteProxy, opts: OperatorOpts) -> Operator {
        let kubeconfig = self.operator_kubeconfig(&opts).await;
        let through = self
            .dir
            .join(format!("kubeconfig-via-{}", proxy.addr().port()));
        write_proxied_kubeconfig(&kubeconfig, &through, proxy.addr());
        self.track(Operator::start(&through, &self.ns, &self.dir, &opts).await)
    }

    /// Applies a cluster-scoped object (a ClusterRole, a ClusterRoleBinding) and deletes it at
    /// the end of the test.
    pub async fn apply_cluster_object(&self, obj: Value) -> Value {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        assert!(
            CLUSTER_SCOPED.contains(&kind.as_str()),
            "{kind} is not cluster-scoped"
        );
        let ar = resource(obj["apiVersion"].as_str().unwrap_or_default(), &kind);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        lock(&self.cluster_objects).push((ar, name));
        self.apply(obj).await
    }

    /// Applies `config/rbac`, and the RBAC objects of `components` (directories under `config/`),
    /// for the test namespace (cluster-scoped names suffixed with it) and returns a kubeconfig
    /// that authenticates as its ServiceAccount.
    async fn project_rbac_kubeconfig(&self, components: &[&str]) -> PathBuf {
        let mut rbac = self.rbac.lock().await;
        if let Some(r) = rbac.as_ref() {
            return r.kubeconfig.clone();
        }
        let suffix = format!("-{}", self.ns);
        let mut service_account = None;
        let mut cluster_role = None;
        let mut files = Vec::new();
        for component in std::iter::once(&"rbac").chain(components) {
            let dir = manifest_dir().join("../config").join(component);
            let kustomization = documents(&dir.join("kustomization.yaml"), &[]);
            let resources = kustomization[0]["resources"]
                .as_array()
                .unwrap_or_else(|| panic!("config/{component}/kustomization.yaml resources"));
            files.extend(
                resources
                    .iter()
                    .filter_map(|r| r.as_str().map(|r| dir.join(r))),
            );
        }
        for file in files {
            for mut doc in documents(&file, &[]) {
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                if !RBAC_KINDS.contains(&kind.as_str()) {
                    continue;
                }
                if CLUSTER_SCOPED.contains(&kind.as_str()) {
                    let name = format!(
                        "{}{suffix}",
                        doc["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    doc["metadata"]["name"] = json!(name);
                } else {
                    doc["metadata"]["namespace"] = json!(self.ns);
                }
                if doc["roleRef"]["kind"] == "ClusterRole" {
                    let name = format!(
                        "{}{suffix}",
                        doc["roleRef"]["name"].as_str().unwrap_or_default()
                    );
                    doc["roleRef"]["name"] = json!(name);
                }
                // `get_mut`, not `doc["subjects"]`: indexing a JSON object mutably inserts a
                // null, which a real API server refuses on a ServiceAccount (not in its schema).
                let subjects = doc.get_mut("subjects").and_then(Value::as_array_mut);
                for s in subjects.into_iter().flatten() {
                    if s["kind"] == "ServiceAccount" {
                        s["namespace"] = json!(self.ns);
                    }
                }
                match kind.as_str() {
                    "ServiceAccount" => {
                        service_account = doc["metadata"]["name"].as_str().map(str::to_string)
                    }
                    // The operator's own ClusterRole: the one bound to its ServiceAccount.
                    "ClusterRole"
                        if doc["metadata"]["name"] == format!("flux-reporter{suffix}") =>
                    {
                        cluster_role = Some(doc.clone())
                    }
                    _ => {}
                }
                if CLUSTER_SCOPED.contains(&kind.as_str()) {
                    self.apply_cluster_object(doc).await;
                } else {
                    self.apply(doc).await;
                }
            }
        }
        let service_account = service_account.expect("config/rbac has a ServiceAccount");
        let cluster_role = cluster_role.expect("config/rbac has the ClusterRole flux-reporter");
        let token = self.token_for(&service_account).await;
        let kubeconfig = self.dir.join("kubeconfig-project-rbac");
        write_token_kubeconfig(&self.kubeconfig, &kubeconfig, &token, &self.ns);
        *rbac = Some(Rbac {
            kubeconfig: kubeconfig.clone(),
            cluster_role,
        });
        kubeconfig
    }

    /// A token for a ServiceAccount of the namespace (TokenRequest API).
    pub async fn token_for(&self, service_account: &str) -> String {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let request = http::Request::post(format!(
            "/api/v1/namespaces/{}/serviceaccounts/{service_account}/token",
            self.ns
        ))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).expect("TokenRequest JSON"))
        .expect("a TokenRequest");
        let answer: Value = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {service_account}: {e}"));
        answer["status"]["token"]
            .as_str()
            .expect("a token in the TokenRequest status")
            .to_string()
    }
}
