//! The shipped install stays least-privilege and hardened.
//!
//! Renders `config/default` with `kubectl kustomize` (as users install it) and checks the
//! objects: RBAC, the Deployment, namespaces, labels, CRDs; and the opt-in authenticated metrics
//! (`config/default-secure`, `config/monitoring-secure`). The real API server of
//! `E2E_KUBECONFIG` (`hack/envtest.sh start` gives one) accepts every rendered overlay with
//! strict field validation. kubectl is required: without it these tests fail rather than skip,
//! so CI cannot pass without checking the manifests.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;
mod server_validation;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::Env;
use serde_json::Value;
use server_validation::{ensure_prometheus_operator_crds, strict_apply, strict_apply_all};

const NAMESPACE: &str = "flux-system";
const NAME: &str = "flux-reporter";
const FLUX_GROUP: &str = "fluxcd.controlplane.io";

/// Kinds with no namespace that the install may contain.
const CLUSTER_SCOPED: [&str; 3] = [
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];

const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

/// Every Flux kind the report reads, as `(group, plural)`.
const FLUX_KINDS: [(&str, &str); 15] = [
    ("source.toolkit.fluxcd.io", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "ocirepositories"),
    ("source.toolkit.fluxcd.io", "buckets"),
    ("source.toolkit.fluxcd.io", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "helmcharts"),
    ("source.toolkit.fluxcd.io", "externalartifacts"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "helmreleases"),
    ("notification.toolkit.fluxcd.io", "alerts"),
    ("notification.toolkit.fluxcd.io", "providers"),
    ("notification.toolkit.fluxcd.io", "receivers"),
    ("image.toolkit.fluxcd.io", "imagerepositories"),
    ("image.toolkit.fluxcd.io", "imagepolicies"),
    ("image.toolkit.fluxcd.io", "imageupdateautomations"),
    ("source.extensions.fluxcd.io", "artifactgenerators"),
];

fn config_dir(overlay: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config")
        .join(overlay)
}

/// `kubectl kustomize <dir>`, parsed into one JSON value per document.
fn render(dir: &Path) -> Result<Vec<Value>, String> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                "kubectl is not on PATH: the manifest tests render config/ with \
                 `kubectl kustomize` (kubectl 1.32 or later); install kubectl, these tests do \
                 not skip"
                    .to_string()
            } else {
                format!("cannot run kubectl: {err}")
            }
        })?;
    if !output.status.success() {
        return Err(format!(
            "`kubectl kustomize {}` failed ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let yaml = String::from_utf8(output.stdout).map_err(|err| {
        format!(
            "`kubectl kustomize {}` printed non-UTF-8: {err}",
            dir.display()
        )
    })?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).map_err(|err| {
        format!(
            "cannot parse the output of `kubectl kustomize {}`: {err}",
            dir.display()
        )
    })?;
    Ok(docs.into_iter().filter(|doc| !doc.is_null()).collect())
}

/// The install, rendered once for all tests.
fn install() -> &'static [Value] {
    static RENDERED: OnceLock<Result<Vec<Value>, String>> = OnceLock::new();
    match RENDERED.get_or_init(|| render(&config_dir("default"))) {
        Ok(objects) => objects,
        Err(err) => panic!("{err}"),
    }
}

fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"].as_str()
}

/// `Kind/namespace/name`, for messages.
fn id(obj: &Value) -> String {
    match namespace(obj) {
        Some(ns) => format!("{}/{ns}/{}", kind(obj), name(obj)),
        None => format!("{}/{}", kind(obj), name(obj)),
    }
}

fn of_kind<'a>(objects: &'a [Value], k: &str) -> Vec<&'a Value> {
    objects.iter().filter(|obj| kind(obj) == k).collect()
}

fn one<'a>(objects: &'a [Value], k: &str, n: &str) -> &'a Value {
    let found: Vec<_> = of_kind(objects, k)
        .into_iter()
        .filter(|obj| name(obj) == n)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k} {n} in the rendered manifests"
    );
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every rule of every Role and ClusterRole, with the object it belongs to.
fn rbac_rules(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter(|obj| matches!(kind(obj), "Role" | "ClusterRole"))
        .flat_map(|obj| {
            let owner = id(obj);
            obj["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |rule| (owner.clone(), rule))
        })
        .collect()
}

fn write_verbs(rule: &Value) -> Vec<&str> {
    strings(&rule["verbs"])
        .into_iter()
        .filter(|verb| !READ_VERBS.contains(verb))
        .collect()
}

/// `(group, resource)` pairs a rule grants `verb` on.
fn grants(rule: &Value, verb: &str) -> Vec<(String, String)> {
    if !strings(&rule["verbs"]).contains(&verb) {
        return Vec::new();
    }
    let mut pairs = Vec::new();
    for group in strings(&rule["apiGroups"]) {
        for resource in strings(&rule["resources"]) {
            pairs.push((group.to_string(), resource.to_string()));
        }
    }
    pairs
}

fn deployment() -> &'static Value {
    one(install(), "Deployment", NAME)
}

fn manager() -> &'static Value {
    let containers = deployment()["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("the Deployment has containers");
    containers
        .iter()
        .find(|c| c["name"] == "manager")
        .expect("the Deployment has a container named manager")
}

fn container_port<'a>(container: &'a Value, port_name: &str) -> &'a Value {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| panic!("the manager container has no port named {port_name}"))
}

/// Finds `key: value` anywhere in `value`, returning the JSON paths.
fn find_pair(value: &Value, key: &str, wanted: &str, path: String, hits: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k == key && v == wanted {
                    hits.push(here.clone());
                }
                find_pair(v, key, wanted, here, hits);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_pair(v, key, wanted, format!("{path}[{i}]"), hits);
            }
        }
        _ => {}
    }
}

#[test]
fn rbac_rules_have_no_wildcards() {
    let rules = rbac_rules(install());
    assert!(!rules.is_empty(), "config/default renders no RBAC rules");
    for (owner, rule) in rules {
        for field in [
            "apiGroups",
            "resources",
            "verbs",
            "resourceNames",
            "nonResourceURLs",
        ] {
            for entry in strings(&rule[field]) {
                assert!(
                    !entry.contains('*'),
                    "{owner}: rule {rule} has `{entry}` in {field}; name each group, resource \
                     and verb"
                );
            }
        }
    }
}

#[test]
fn operator_cluster_role_writes_only_its_own_objects() {
    let allowed = ["fluxreports", "fluxreports/status", "fluxinstances/status"];
    let role = one(install(), "ClusterRole", NAME);
    for rule in role["rules"].as_array().expect("the ClusterRole has rules") {
        let writes = write_verbs(rule);
        if writes.is_empty() {
            continue;
        }
        assert_eq!(
            strings(&rule["apiGroups"]),
            [FLUX_GROUP],
            "ClusterRole {NAME} grants {writes:?} outside {FLUX_GROUP}: {rule}"
        );
        for resource in strings(&rule["resources"]) {
            assert!(
                allowed.contains(&resource),
                "ClusterRole {NAME} grants {writes:?} on {resource}; the only cluster-wide \
                 writes are {allowed:?}"
            );
        }
        assert!(
            writes
                .iter()
                .all(|verb| ["create", "update", "patch"].contains(verb)),
            "ClusterRole {NAME} grants {writes:?} (only create, update, patch are needed): {rule}"
        );
    }
}

#[test]
fn operator_cluster_role_reads_every_flux_kind_and_what_the_report_needs() {
    let role = one(install(), "ClusterRole", NAME);
    let rules = role["rules"].as_array().expect("the ClusterRole has rules");
    let needed = FLUX_KINDS.iter().chain(&[
        (FLUX_GROUP, "fluxreports"),
        (FLUX_GROUP, "fluxinstances"),
        (FLUX_GROUP, "resourcesets"),
        (FLUX_GROUP, "resourcesetinputproviders"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "nodes"),
    ]);
    for (group, resource) in needed {
        for verb in READ_VERBS {
            let granted = rules.iter().any(|rule| {
                grants(rule, verb).contains(&(group.to_string(), resource.to_string()))
            });
            assert!(
                granted,
                "ClusterRole {NAME} does not grant {verb} on {group}/{resource}"
            );
        }
    }
    for (resource, verbs) in [
        ("fluxreports", &["create", "update", "patch"][..]),
        ("fluxreports/status", &["get", "update", "patch"][..]),
        ("fluxinstances/status", &["get", "update", "patch"][..]),
    ] {
        for verb in verbs {
            let granted = rules.iter().any(|rule| {
                grants(rule, verb).contains(&(FLUX_GROUP.to_string(), resource.to_string()))
            });
            assert!(
                granted,
                "ClusterRole {NAME} does not grant {verb} on {resource}"
            );
        }
    }
}

#[test]
fn operator_namespace_role_writes_only_the_lease_and_events() {
    let role = one(install(), "Role", NAME);
    let allowed = [
        ("coordination.k8s.io", "leases"),
        ("events.k8s.io", "events"),
        ("", "events"),
    ];
    let rules = role["rules"].as_array().expect("the Role has rules");
    for rule in rules {
        for verb in write_verbs(rule) {
            for pair in grants(rule, verb) {
                assert!(
                    allowed
                        .iter()
                        .any(|(g, r)| (g.to_string(), r.to_string()) == pair),
                    "Role {NAME} grants {verb} on {}/{}; it may write only the Lease and events",
                    pair.0,
                    pair.1
                );
            }
        }
    }
    for (group, resource, verb) in [
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        ("", "events", "create"),
        ("", "events", "patch"),
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
    ] {
        let granted = rules
            .iter()
            .any(|rule| grants(rule, verb).contains(&(group.to_string(), resource.to_string())));
        assert!(
            granted,
            "Role {NAME} does not grant {verb} on {group}/{resource}"
        );
    }
}

#[test]
fn no_rule_grants_secrets() {
    for (owner, rule) in rbac_rules(install()) {
        for resource in strings(&rule["resources"]) {
            assert!(
                resource != "secrets" && !resource.starts_with("secrets/"),
                "{owner} grants access to {resource}; flux-reporter reads no Secret"
            );
        }
    }
}

#[test]
fn operator_service_account_is_bound_to_its_roles() {
    let objects = install();
    one(objects, "ServiceAccount", NAME);
    let pod = &deployment()["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"], NAME,
        "the Deployment's service account"
    );
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "the Deployment needs its token"
    );
    for (binding_kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let binding = one(objects, binding_kind, NAME);
        assert_eq!(binding["roleRef"]["kind"], role_kind, "{}", id(binding));
        assert_eq!(binding["roleRef"]["name"], NAME, "{}", id(binding));
        let subjects = binding["subjects"]
            .as_array()
            .expect("the binding has subjects");
        assert_eq!(subjects.len(), 1, "{} binds only the operator", id(binding));
        assert_eq!(subjects[0]["kind"], "ServiceAccount", "{}", id(binding));
        assert_eq!(subjects[0]["name"], NAME, "{}", id(binding));
        assert_eq!(subjects[0]["namespace"], NAMESPACE, "{}", id(binding));
    }
}

#[test]
fn deployment_runs_non_root_with_read_only_root_filesystem() {
    let pod_security = &deployment()["spec"]["template"]["spec"]["securityContext"];
    let security = &manager()["securityContext"];
    assert_eq!(
        pod_security["runAsNonRoot"], true,
        "pod securityContext.runAsNonRoot"
    );
    assert_eq!(
        security["runAsNonRoot"], true,
        "container securityContext.runAsNonRoot"
    );
    for ctx in [pod_security, security] {
        for field in ["runAsUser", "runAsGroup"] {
            let id = ctx[field].as_u64();
            assert!(
                matches!(id, Some(id) if id != 0),
                "{field} must be a non-root id: {ctx}"
            );
        }
        assert_eq!(
            ctx["seccompProfile"]["type"], "RuntimeDefault",
            "seccompProfile: {ctx}"
        );
    }
    assert_eq!(
        security["readOnlyRootFilesystem"], true,
        "readOnlyRootFilesystem"
    );
    assert_eq!(
        security["allowPrivilegeEscalation"], false,
        "allowPrivilegeEscalation"
    );
    assert_ne!(security["privileged"], true, "privileged");
}

#[test]
fn deployment_drops_all_capabilities() {
    let capabilities = &manager()["securityContext"]["capabilities"];
    assert_eq!(strings(&capabilities["drop"]), ["ALL"], "capabilities.drop");
    assert!(
        strings(&capabilities["add"]).is_empty(),
        "capabilities.add must be empty: {capabilities}"
    );
}

#[test]
fn deployment_probes_use_the_health_port() {
    let container = manager();
    let health = container_port(container, "healthz");
    assert_eq!(health["containerPort"], 8081, "the healthz port");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}.httpGet.path");
        assert!(
            get["port"] == "healthz" || get["port"] == 8081,
            "{probe} must target the health port: {get}"
        );
    }
}

#[test]
fn deployment_serves_metrics_on_http_prom_8080() {
    let objects = install();
    let container = manager();
    assert_eq!(
        container_port(container, "http-prom")["containerPort"],
        8080
    );

    let template = &deployment()["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8080");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let service = one(objects, "Service", NAME);
    let ports = service["spec"]["ports"]
        .as_array()
        .expect("the Service has ports");
    let port = ports
        .iter()
        .find(|p| p["name"] == "http-prom")
        .expect("the Service has a port named http-prom");
    assert_eq!(port["port"], 8080, "Service port http-prom");
    assert_eq!(port["targetPort"], "http-prom", "Service targetPort");
    let selector = service["spec"]["selector"]
        .as_object()
        .expect("the Service selects pods");
    assert!(!selector.is_empty(), "the Service selector is empty");
    for (key, value) in selector {
        assert_eq!(
            &template["metadata"]["labels"][key], value,
            "the Service selects {key}={value}, which the pod template does not carry"
        );
    }
}

#[test]
fn deployment_reads_runtime_namespace_from_the_downward_api() {
    let env = manager()["env"]
        .as_array()
        .expect("the manager container has env");
    let var = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("the manager container has no {n}"))
    };
    assert_eq!(
        var("RUNTIME_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
}

#[test]
fn deployment_runs_the_operator_with_leader_election() {
    let container = manager();
    let args = strings(&container["args"]);
    assert_eq!(args.first(), Some(&"run"), "args: {args:?}");
    assert!(args.contains(&"--leader-elect"), "args: {args:?}");
    assert_eq!(deployment()["spec"]["replicas"], 1, "replicas");
    let image = container["image"].as_str().unwrap_or_default();
    assert!(
        image.starts_with("ghcr.io/flux-reporter/flux-reporter:"),
        "image {image}: the kustomize `images` override matches this name"
    );
}

#[test]
fn deployment_sets_resources() {
    let resources = &manager()["resources"];
    for path in [
        ["requests", "cpu"],
        ["requests", "memory"],
        ["limits", "memory"],
    ] {
        assert!(
            resources[path[0]][path[1]].is_string(),
            "resources.{}.{} is not set: {resources}",
            path[0],
            path[1]
        );
    }
}

#[test]
fn nothing_is_labelled_part_of_flux() {
    // The components section counts Deployments with this label as Flux controllers.
    for obj in install() {
        let mut hits = Vec::new();
        find_pair(
            obj,
            "app.kubernetes.io/part-of",
            "flux",
            String::new(),
            &mut hits,
        );
        assert!(
            hits.is_empty(),
            "{} carries app.kubernetes.io/part-of: flux at {hits:?}",
            id(obj)
        );
    }
}

#[test]
fn every_namespaced_object_is_in_flux_system() {
    for obj in install() {
        assert_ne!(
            kind(obj),
            "Namespace",
            "the install must not own a Namespace: flux-system belongs to Flux"
        );
        if CLUSTER_SCOPED.contains(&kind(obj)) {
            assert_eq!(namespace(obj), None, "{} is cluster-scoped", id(obj));
        } else {
            assert_eq!(namespace(obj), Some(NAMESPACE), "{}", id(obj));
        }
    }
}

#[test]
fn both_crds_are_present() {
    let crds: BTreeSet<&str> = of_kind(install(), "CustomResourceDefinition")
        .into_iter()
        .map(name)
        .collect();
    for wanted in [
        "fluxreports.fluxcd.controlplane.io",
        "fluxinstances.fluxcd.controlplane.io",
    ] {
        assert!(
            crds.contains(wanted),
            "CRD {wanted} is missing from config/default: {crds:?}"
        );
    }
}

#[test]
fn samples_render_the_singletons() {
    let samples = render(&config_dir("samples")).unwrap_or_else(|err| panic!("{err}"));
    for k in ["FluxInstance", "FluxReport"] {
        let obj = one(&samples, k, "flux");
        assert_eq!(
            obj["apiVersion"],
            "fluxcd.controlplane.io/v1",
            "{}",
            id(obj)
        );
        assert_eq!(namespace(obj), Some(NAMESPACE), "{}", id(obj));
    }
}

#[test]
fn notification_config_renders_a_read_only_role_for_notification_controller() {
    let objects = render(&config_dir("notification")).unwrap_or_else(|e| panic!("{e}"));
    let role = one(
        &objects,
        "ClusterRole",
        "flux-reporter-notification-controller",
    );
    for rule in role["rules"].as_array().unwrap() {
        assert!(!strings(&rule["resources"]).contains(&"*"), "{rule}");
        assert!(!strings(&rule["verbs"]).contains(&"*"), "{rule}");
        assert!(!strings(&rule["verbs"]).contains(&"delete"), "{rule}");
    }
    let binding = one(
        &objects,
        "ClusterRoleBinding",
        "flux-reporter-notification-controller",
    );
    assert_eq!(binding["subjects"][0]["name"], "notification-controller");
}

#[test]
fn notification_samples_alert_on_fluxinstance_and_fluxreport_events() {
    let objects = render(&config_dir("notification/samples")).unwrap_or_else(|e| panic!("{e}"));
    let alert = of_kind(&objects, "Alert")[0];
    let kinds: Vec<&str> = alert["spec"]["eventSources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"FluxInstance") && kinds.contains(&"FluxReport"),
        "{kinds:?}"
    );
    assert!(!of_kind(&objects, "Provider").is_empty());
}

// ---- Authenticated metrics (opt-in): config/default-secure and config/monitoring-secure ----

/// `config/default-secure` (the install with `config/metrics-secure`), rendered once.
fn secure_install() -> &'static [Value] {
    static RENDERED: OnceLock<Result<Vec<Value>, String>> = OnceLock::new();
    match RENDERED.get_or_init(|| render(&config_dir("default-secure"))) {
        Ok(objects) => objects,
        Err(err) => panic!("{err}"),
    }
}

const METRICS_AUTH: &str = "flux-reporter-metrics-auth";
const METRICS_READER: &str = "flux-reporter-metrics-reader";

fn secure_manager() -> &'static Value {
    one(secure_install(), "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "manager"))
        .expect("the secure Deployment has a container named manager")
}

#[test]
fn secure_install_is_the_default_install_plus_the_metrics_auth_objects() {
    let (plain, secure) = (install(), secure_install());
    let changed = [("Deployment", NAME), ("Service", NAME)];
    for obj in plain {
        let same = secure.iter().find(|s| id(s) == id(obj));
        let same = same.unwrap_or_else(|| panic!("{} is missing from default-secure", id(obj)));
        if !changed.contains(&(kind(obj), name(obj))) {
            assert_eq!(same, obj, "{} differs in default-secure", id(obj));
        }
    }
    let added: BTreeSet<String> = secure
        .iter()
        .filter(|s| !plain.iter().any(|p| id(p) == id(s)))
        .map(id)
        .collect();
    let want: BTreeSet<String> = [
        format!("ClusterRole/{METRICS_AUTH}"),
        format!("ClusterRoleBinding/{METRICS_AUTH}"),
        format!("ClusterRole/{METRICS_READER}"),
        format!("NetworkPolicy/{NAMESPACE}/flux-reporter-metrics"),
    ]
    .into();
    assert_eq!(added, want);
}

#[test]
fn secure_install_lets_the_operator_review_tokens_and_nothing_more() {
    let objects = secure_install();
    let role = one(objects, "ClusterRole", METRICS_AUTH);
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        ]),
        "{}",
        id(role)
    );
    let binding = one(objects, "ClusterRoleBinding", METRICS_AUTH);
    assert_eq!(
        (&binding["roleRef"]["kind"], &binding["roleRef"]["name"]),
        (&Value::from("ClusterRole"), &Value::from(METRICS_AUTH))
    );
    // The subject is the operator: the ServiceAccount the Deployment runs as.
    let pod = &one(objects, "Deployment", NAME)["spec"]["template"]["spec"];
    one(objects, "ServiceAccount", NAME);
    assert_eq!(pod["serviceAccountName"], NAME);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}])
    );

    // The reader role grants the one URL, and the install binds nobody to it (the scraper's
    // ServiceAccount depends on how Prometheus was installed).
    let reader = one(objects, "ClusterRole", METRICS_READER);
    assert_eq!(
        reader["rules"],
        serde_json::json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    for b in of_kind(objects, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(objects, "RoleBinding"))
    {
        assert_ne!(
            b["roleRef"]["name"],
            METRICS_READER,
            "{} binds the reader role",
            id(b)
        );
    }
}

#[test]
fn secure_install_runs_with_metrics_secure_on_a_port_named_https() {
    let container = secure_manager();
    let args = strings(&container["args"]);
    assert!(args.contains(&"--metrics-secure"), "args: {args:?}");
    assert_eq!(
        args.iter()
            .filter(|a| a.starts_with("--metrics-secure"))
            .count(),
        1
    );
    let port = container_port(container, "https");
    assert_eq!(port["containerPort"], 8080);
    // The probes stay plain HTTP on their own port.
    assert_eq!(container["livenessProbe"], manager()["livenessProbe"]);
    assert_eq!(container["readinessProbe"], manager()["readinessProbe"]);
    assert!(container["livenessProbe"]["httpGet"]["scheme"].is_null());
    let service = one(secure_install(), "Service", NAME);
    assert_eq!(
        service["spec"]["ports"],
        serde_json::json!([{"name": "https", "port": 8080, "protocol": "TCP", "targetPort": "https"}])
    );
}

#[test]
fn secure_install_admits_metrics_scrapes_only_from_the_monitoring_namespace() {
    let objects = secure_install();
    let policy = one(objects, "NetworkPolicy", "flux-reporter-metrics");
    assert_eq!(namespace(policy), Some(NAMESPACE));
    let spec = &policy["spec"];
    // It selects the operator's pods.
    let pod_labels = &one(objects, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"];
    let selector = spec["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector.matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k], v,
            "podSelector {k} must match the pod template"
        );
    }
    assert_eq!(strings(&spec["policyTypes"]), ["Ingress"]);
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"port": "https", "protocol": "TCP"}],
        }]),
        "one rule: the monitoring namespace, the metrics port"
    );
    container_port(secure_manager(), "https");
}

#[test]
fn secure_service_monitor_scrapes_https_with_the_service_account_token() {
    let objects = render(&config_dir("monitoring-secure")).unwrap_or_else(|e| panic!("{e}"));
    let plain = render(&config_dir("monitoring")).unwrap_or_else(|e| panic!("{e}"));
    let monitor = one(&objects, "ServiceMonitor", NAME);
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["port"], "https",
        "the port config/metrics-secure names"
    );
    assert_eq!(
        endpoint["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(
        endpoint["tlsConfig"],
        serde_json::json!({"insecureSkipVerify": true})
    );
    // The rest as config/monitoring: path, interval, honorLabels, the selector, the other objects.
    let plain_monitor = one(&plain, "ServiceMonitor", NAME);
    for field in ["path", "interval", "scrapeTimeout", "honorLabels"] {
        assert_eq!(
            endpoint[field], plain_monitor["spec"]["endpoints"][0][field],
            "{field}"
        );
    }
    assert_eq!(
        monitor["spec"]["selector"],
        plain_monitor["spec"]["selector"]
    );
    for obj in plain.iter().filter(|o| kind(o) != "ServiceMonitor") {
        assert!(
            objects.contains(obj),
            "{} differs in monitoring-secure",
            id(obj)
        );
    }
    // The Service it selects has that port.
    let service = one(secure_install(), "Service", NAME);
    let labels = &service["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &labels[k], v,
            "the ServiceMonitor selects the metrics Service"
        );
    }
}

/// The secure ServiceMonitor's fields are those of the Prometheus Operator's CRD: the real API
/// server validates it against the CRD schema with strict field validation, and stores it as
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_service_monitor_passes_the_crd_schema() {
    let objects = render(&config_dir("monitoring-secure")).unwrap_or_else(|e| panic!("{e}"));
    let monitor = one(&objects, "ServiceMonitor", NAME).clone();
    let env = Env::new("manifests_secure_service_monitor").await;
    ensure_prometheus_operator_crds(&env).await;
    let applied = strict_apply(&env, &monitor, false)
        .await
        .unwrap_or_else(|e| panic!("apply the secure ServiceMonitor: {e}"));
    assert_eq!(
        applied["spec"], monitor["spec"],
        "the schema changed nothing"
    );
}

/// What a user applies of `config/` (`kubectl apply --server-side -k`), every overlay whose
/// kinds the test cluster has (the Flux notification CRDs of `notification/samples` are not in
/// the fixtures): the real API server accepts every object with strict field validation (a
/// server-side dry run: the CRDs, RBAC and Deployment are validated and admitted, nothing is
/// stored; namespaced objects go to the test's namespace instead of `flux-system`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_passes_the_api_servers_strict_validation() {
    let env = Env::new("manifests_every_overlay").await;
    ensure_prometheus_operator_crds(&env).await;
    for overlay in [
        "default",
        "default-secure",
        "monitoring",
        "monitoring-secure",
        "samples",
        "notification",
    ] {
        let objects = render(&config_dir(overlay)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!objects.is_empty(), "config/{overlay} renders nothing");
        strict_apply_all(&env, &format!("config/{overlay}"), &objects, true).await;
    }
    // The server's checks are real: a misspelt field of the Deployment is refused (server-side
    // apply says "field not declared in schema", with a 500 for now:
    // https://github.com/kubernetes/kubernetes/issues/139253).
    let mut misspelt = deployment().clone();
    misspelt["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoots"] =
        Value::Bool(true);
    let e = strict_apply(&env, &misspelt, true).await.unwrap_err();
    assert!(
        e.contains("field not declared in schema") && e.contains("securityContext.runAsNonRoots"),
        "{e}"
    );
}
