//! Tokens and reviews, as the kube-apiserver v1.32 transcripts show them:
//!
//! - `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (TokenRequest, what `kubectl
//!   create token` sends) mints a token for an existing ServiceAccount: JWT-shaped, with the
//!   claims a real one has, but only this server knows it (the signature is random bytes).
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` authenticates a token it minted (still
//!   valid, its ServiceAccount still there, the audiences matching) as
//!   `system:serviceaccount:<ns>:<name>` with the ServiceAccount groups, or the double's own
//!   kubeconfig token as a `system:masters` user; anything else gets `status.error`.
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` evaluates the stored RBAC objects
//!   (ClusterRoleBindings, then RoleBindings of the namespace; rules with `nonResourceURLs`,
//!   `apiGroups`/`resources`/`resourceNames`, `*`), `system:masters` first, with the reason the
//!   RBAC authorizer gives.
//!
//! Both reviews answer 201 and echo the request's `spec`. What the double does not do: it
//! authenticates no caller (so never answers 403 to a caller that may not create reviews), has
//! none of the bootstrap ClusterRoles, and does not aggregate ClusterRoles (e2e/README.md).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::Shared;
use super::handlers::parse_body;
use super::http::{Req, Resp, error_resp, value_resp};
use super::status::{ApiError, ApiResult, FieldError};
use super::store::State;
use super::util::{new_uid, now_rfc3339, random_u64};

/// The issuer and default audience of ServiceAccount tokens, as on a kubeadm or kind cluster.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The token of the kubeconfig the double writes (`ApiServer::kubeconfig_yaml`).
pub(crate) const KUBECONFIG_TOKEN: &str = "apiserver-double-token";
const KUBECONFIG_USER: &str = "apiserver-double";

/// A token this server minted.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    /// The ServiceAccount's uid when minted: a re-created ServiceAccount does not inherit it.
    sa_uid: String,
    audiences: Vec<String>,
    expires: i64,
    jti: String,
}

/// The tokens minted so far.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
}

/// An authenticated user, as a TokenReview returns it.
struct User {
    username: String,
    uid: String,
    groups: Vec<String>,
    extra: Option<Value>,
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `fieldsV1` of what a client set in `spec`: nested objects get `"."`, as the server writes.
fn fields_of(spec: &Value) -> Value {
    fn inner(v: &Value, top: bool) -> Value {
        match v.as_object() {
            Some(m) => {
                let mut out = Map::new();
                if !top {
                    out.insert(".".into(), json!({}));
                }
                for (k, child) in m {
                    if !child.is_null() {
                        out.insert(format!("f:{k}"), inner(child, false));
                    }
                }
                Value::Object(out)
            }
            None => json!({}),
        }
    }
    json!({ "f:spec": inner(spec, true) })
}

fn managed_fields(req: &Req, api_version: &str, spec: &Value, subresource: Option<&str>) -> Value {
    let mut entry = json!({
        "manager": req.manager(),
        "operation": "Update",
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_of(spec),
    });
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    json!([entry])
}

/// A review's answer: the request echoed, its status set, `creationTimestamp: null`.
fn review_answer(req: &Req, api_version: &str, kind: &str, spec: Value, status: Value) -> Resp {
    value_resp(
        201,
        &json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {
                "creationTimestamp": null,
                "managedFields": managed_fields(req, api_version, &spec, None),
            },
            "spec": spec,
            "status": status,
        }),
    )
}

fn post_only(req: &Req) -> ApiResult<()> {
    if req.method == "POST" {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A stored object of a built-in kind.
fn stored(
    state: &State,
    plural: &str,
    group: &str,
    namespace: &str,
    name: &str,
) -> Option<Arc<Value>> {
    let version = "v1";
    let rt = state.registry.get(group, version, plural)?;
    state.get(&rt.storage_key, &(namespace.to_string(), name.to_string()))
}

/// Every stored object of a built-in kind, in key order.
fn all_stored(state: &State, plural: &str, group: &str) -> Vec<Arc<Value>> {
    state
        .registry
        .get(group, "v1", plural)
        .and_then(|rt| state.collections.get(&rt.storage_key))
        .map(|c| c.values().cloned().collect())
        .unwrap_or_default()
}

// ---- TokenRequest ----

/// `POST .../serviceaccounts/<name>/token`.
pub(crate) fn token_request(shared: &Arc<Shared>, req: &Req, namespace: &str, name: &str) -> Resp {
    token_request_inner(shared, req, namespace, name).unwrap_or_else(error_resp)
}

fn token_request_inner(
    shared: &Arc<Shared>,
    req: &Req,
    namespace: &str,
    name: &str,
) -> ApiResult<Resp> {
    post_only(req)?;
    let body = parse_body(req)?;
    let mut spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                seconds.to_string(),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let client_spec = spec.clone();
    let mut audiences = strings(&spec["audiences"]);
    if audiences.is_empty() {
        audiences = vec![ISSUER.to_string()];
    }
    let sa_uid = {
        let state = shared.state();
        let sa = stored(&state, "serviceaccounts", "", namespace, name)
            .ok_or_else(|| ApiError::not_found("serviceaccounts", "", name))?;
        str_of(&sa["metadata"], "uid").to_string()
    };
    let now = now_unix();
    let jti = new_uid();
    let claims = json!({
        "aud": audiences,
        "exp": now + seconds,
        "iat": now,
        "iss": ISSUER,
        "jti": jti,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid}},
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    let signature: Vec<u8> = (0..4).flat_map(|_| random_u64().to_be_bytes()).collect();
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"apiserver-double"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    );
    shared.tokens().issued.insert(
        token.clone(),
        Issued {
            namespace: namespace.to_string(),
            name: name.to_string(),
            sa_uid,
            audiences: audiences.clone(),
            expires: now + seconds,
            jti,
        },
    );
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(seconds);
    spec["boundObjectRef"] = spec.get("boundObjectRef").cloned().unwrap_or(Value::Null);
    Ok(value_resp(
        201,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": now_rfc3339(),
                "managedFields": managed_fields(req, "authentication.k8s.io/v1", &client_spec, Some("token")),
            },
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(now + seconds)},
        }),
    ))
}

// ---- TokenReview ----

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub(crate) fn token_review(shared: &Arc<Shared>, req: &Req) -> Resp {
    token_review_inner(shared, req).unwrap_or_else(error_resp)
}

fn token_review_inner(shared: &Arc<Shared>, req: &Req) -> ApiResult<Resp> {
    post_only(req)?;
    let body = parse_body(req)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = str_of(&spec, "token").to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let wanted = strings(&spec["audiences"]);
    let status = match authenticate(shared, &token, &wanted) {
        Ok((user, audiences)) => {
            let mut u = json!({
                "username": user.username,
                "uid": user.uid,
                "groups": user.groups,
            });
            if let Some(extra) = user.extra {
                u["extra"] = extra;
            }
            json!({"authenticated": true, "user": u, "audiences": audiences})
        }
        Err(error) => json!({"user": {}, "error": error}),
    };
    Ok(review_answer(
        req,
        "authentication.k8s.io/v1",
        "TokenReview",
        spec,
        status,
    ))
}

fn quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// The user a token stands for and the audiences it is valid for, or `status.error`.
fn authenticate(
    shared: &Arc<Shared>,
    token: &str,
    wanted: &[String],
) -> Result<(User, Vec<String>), String> {
    let server_audiences = vec![ISSUER.to_string()];
    let wanted = if wanted.is_empty() {
        server_audiences.clone()
    } else {
        wanted.to_vec()
    };
    if token == KUBECONFIG_TOKEN {
        return if wanted.contains(&ISSUER.to_string()) {
            Ok((
                User {
                    username: KUBECONFIG_USER.into(),
                    uid: KUBECONFIG_USER.into(),
                    groups: vec!["system:masters".into(), "system:authenticated".into()],
                    extra: None,
                },
                server_audiences,
            ))
        } else {
            Err("invalid bearer token".into())
        };
    }
    let Some(issued) = shared.tokens().issued.get(token).cloned() else {
        return Err("invalid bearer token".into());
    };
    let audiences: Vec<String> = wanted
        .iter()
        .filter(|a| issued.audiences.contains(a))
        .cloned()
        .collect();
    if audiences.is_empty() {
        return Err(format!(
            "[invalid bearer token, token audiences {} is invalid for the target audiences {}]",
            quoted_list(&issued.audiences),
            quoted_list(&wanted)
        ));
    }
    if issued.expires <= now_unix() {
        return Err("[invalid bearer token, service account token has expired]".into());
    }
    let state = shared.state();
    let live_uid = stored(
        &state,
        "serviceaccounts",
        "",
        &issued.namespace,
        &issued.name,
    )
    .map(|sa| str_of(&sa["metadata"], "uid").to_string());
    if live_uid.as_deref() != Some(issued.sa_uid.as_str()) {
        return Err(format!(
            "[invalid bearer token, service account {}/{} has been deleted]",
            issued.namespace, issued.name
        ));
    }
    Ok((
        User {
            username: format!("system:serviceaccount:{}:{}", issued.namespace, issued.name),
            uid: issued.sa_uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", issued.namespace),
                "system:authenticated".into(),
            ],
            extra: Some(json!({
                "authentication.kubernetes.io/credential-id": [format!("JTI={}", issued.jti)]
            })),
        },
        audiences,
    ))
}

// ---- SubjectAccessReview ----

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`.
pub(crate) fn subject_access_review(shared: &Arc<Shared>, req: &Req) -> Resp {
    subject_access_review_inner(shared, req).unwrap_or_else(error_resp)
}

fn present(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|x| !x.is_null())
}

fn subject_access_review_inner(shared: &Arc<Shared>, req: &Req) -> ApiResult<Resp> {
    post_only(req)?;
    let body = parse_body(req)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut errs = Vec::new();
    let (resource, non_resource) = (
        present(&spec, "resourceAttributes"),
        present(&spec, "nonResourceAttributes"),
    );
    if resource && non_resource {
        errs.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            "\"object\"",
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if !resource && !non_resource {
        errs.push(FieldError::invalid(
            "spec.resourceAttributes",
            "\"null\"",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let user = str_of(&spec, "user").to_string();
    let groups = strings(&spec["groups"]);
    if user.is_empty() && groups.is_empty() {
        errs.push(FieldError::invalid(
            "spec.user",
            "\"\"",
            "at least one of user or group must be specified",
        ));
    }
    if !errs.is_empty() {
        // The internal object has no kind: the message starts with ".authorization.k8s.io".
        let all: Vec<String> = errs.iter().map(FieldError::error_string).collect();
        let detail = if all.len() == 1 {
            all[0].clone()
        } else {
            format!("[{}]", all.join(", "))
        };
        return Err(ApiError::new(
            422,
            format!(".authorization.k8s.io \"\" is invalid: {detail}"),
            Some("Invalid"),
            Some(json!({
                "group": "authorization.k8s.io",
                "causes": errs.iter().map(FieldError::cause).collect::<Vec<_>>(),
            })),
        ));
    }
    let request = if non_resource {
        let a = &spec["nonResourceAttributes"];
        Request::NonResource {
            verb: str_of(a, "verb").to_string(),
            path: str_of(a, "path").to_string(),
        }
    } else {
        let a = &spec["resourceAttributes"];
        Request::Resource {
            verb: str_of(a, "verb").to_string(),
            namespace: str_of(a, "namespace").to_string(),
            group: str_of(a, "group").to_string(),
            resource: str_of(a, "resource").to_string(),
            subresource: str_of(a, "subresource").to_string(),
            name: str_of(a, "name").to_string(),
        }
    };
    let status = match authorize(&shared.state(), &user, &groups, &request) {
        Decision::Masters => json!({"allowed": true}),
        Decision::Rbac(reason) => json!({"allowed": true, "reason": reason}),
        Decision::NoOpinion => json!({"allowed": false}),
    };
    Ok(review_answer(
        req,
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        spec,
        status,
    ))
}

/// What is asked.
#[derive(Debug)]
enum Request {
    NonResource {
        verb: String,
        path: String,
    },
    Resource {
        verb: String,
        namespace: String,
        group: String,
        resource: String,
        subresource: String,
        name: String,
    },
}

#[derive(Debug, PartialEq)]
enum Decision {
    /// `system:masters`: allowed before RBAC is asked, no reason.
    Masters,
    /// Allowed by RBAC, with the authorizer's reason.
    Rbac(String),
    /// RBAC found no rule: `allowed: false` and no reason.
    NoOpinion,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|s| s == "*" || s == want)
}

fn rule_allows(rule: &Value, request: &Request) -> bool {
    let verbs = strings(&rule["verbs"]);
    match request {
        Request::NonResource { verb, path } => {
            has(&verbs, verb)
                && strings(&rule["nonResourceURLs"]).iter().any(|url| {
                    url == "*"
                        || url == path
                        || url
                            .strip_suffix('*')
                            .is_some_and(|prefix| path.starts_with(prefix))
                })
        }
        Request::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resources = strings(&rule["resources"]);
            let resource_ok = resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && *r == format!("*/{subresource}"))
            });
            let names = strings(&rule["resourceNames"]);
            has(&verbs, verb)
                && has(&strings(&rule["apiGroups"]), group)
                && resource_ok
                && (names.is_empty() || names.contains(name))
        }
    }
}

/// The subject of a binding that names this user, described as the RBAC authorizer does.
fn matching_subject(
    binding: &Value,
    binding_ns: &str,
    user: &str,
    groups: &[String],
) -> Option<String> {
    binding["subjects"].as_array()?.iter().find_map(|s| {
        let (kind, name) = (str_of(s, "kind"), str_of(s, "name"));
        match kind {
            "User" if name == user => Some(format!("User {name:?}")),
            "Group" if groups.iter().any(|g| g == name) => Some(format!("Group {name:?}")),
            "ServiceAccount" => {
                let ns = match str_of(s, "namespace") {
                    "" => binding_ns,
                    ns => ns,
                };
                (!ns.is_empty() && user == format!("system:serviceaccount:{ns}:{name}"))
                    .then(|| format!("ServiceAccount {:?}", format!("{name}/{ns}")))
            }
            _ => None,
        }
    })
}

fn role_allows(role: Option<Arc<Value>>, request: &Request) -> bool {
    role.is_some_and(|r| {
        r["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|rule| rule_allows(rule, request)))
    })
}

fn authorize(state: &State, user: &str, groups: &[String], request: &Request) -> Decision {
    if groups.iter().any(|g| g == "system:masters") {
        return Decision::Masters;
    }
    const RBAC: &str = "rbac.authorization.k8s.io";
    for binding in all_stored(state, "clusterrolebindings", RBAC) {
        let Some(subject) = matching_subject(&binding, "", user, groups) else {
            continue;
        };
        let role_name = str_of(&binding["roleRef"], "name");
        if str_of(&binding["roleRef"], "kind") == "ClusterRole"
            && role_allows(stored(state, "clusterroles", RBAC, "", role_name), request)
        {
            return Decision::Rbac(format!(
                "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role_name:?} to {subject}",
                str_of(&binding["metadata"], "name")
            ));
        }
    }
    let Request::Resource { namespace, .. } = request else {
        return Decision::NoOpinion;
    };
    if namespace.is_empty() {
        return Decision::NoOpinion;
    }
    for binding in all_stored(state, "rolebindings", RBAC) {
        if str_of(&binding["metadata"], "namespace") != namespace {
            continue;
        }
        let Some(subject) = matching_subject(&binding, namespace, user, groups) else {
            continue;
        };
        let (kind, role_name) = (
            str_of(&binding["roleRef"], "kind"),
            str_of(&binding["roleRef"], "name"),
        );
        let role = match kind {
            "Role" => stored(state, "roles", RBAC, namespace, role_name),
            "ClusterRole" => stored(state, "clusterroles", RBAC, "", role_name),
            _ => None,
        };
        if role_allows(role, request) {
            return Decision::Rbac(format!(
                "RBAC: allowed by RoleBinding {:?} of {kind} {role_name:?} to {subject}",
                format!("{}/{namespace}", str_of(&binding["metadata"], "name"))
            ));
        }
    }
    Decision::NoOpinion
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_resource(verb: &str, path: &str) -> Request {
        Request::NonResource {
            verb: verb.into(),
            path: path.into(),
        }
    }

    #[test]
    fn non_resource_rules_match_exact_paths_prefixes_and_stars() {
        let rule = json!({"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]});
        assert!(rule_allows(&rule, &non_resource("get", "/metrics")));
        assert!(!rule_allows(&rule, &non_resource("post", "/metrics")));
        assert!(!rule_allows(&rule, &non_resource("get", "/metrics/x")));
        assert!(rule_allows(&rule, &non_resource("get", "/debug/pprof")));
        assert!(rule_allows(
            &json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
            &non_resource("put", "/anything")
        ));
        // A resource rule grants no URL.
        assert!(!rule_allows(
            &json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
            &non_resource("get", "/metrics")
        ));
    }

    #[test]
    fn resource_rules_match_groups_resources_subresources_and_names() {
        let req = |verb: &str, sub: &str, name: &str| Request::Resource {
            verb: verb.into(),
            namespace: "ns".into(),
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: sub.into(),
            name: name.into(),
        };
        let rule =
            json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]});
        assert!(rule_allows(&rule, &req("get", "", "x")));
        assert!(!rule_allows(&rule, &req("get", "status", "x")));
        assert!(!rule_allows(&rule, &req("delete", "", "x")));
        let status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]});
        assert!(rule_allows(&status, &req("get", "status", "x")));
        let named = json!({"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["a"], "verbs": ["get"]});
        assert!(rule_allows(&named, &req("get", "", "a")));
        assert!(!rule_allows(&named, &req("get", "", "b")));
    }

    #[test]
    fn subjects_are_described_as_the_rbac_authorizer_does() {
        let binding = json!({"subjects": [
            {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"},
            {"kind": "Group", "name": "ops"},
            {"kind": "User", "name": "jane"},
        ]});
        assert_eq!(
            matching_subject(
                &binding,
                "",
                "system:serviceaccount:monitoring:prometheus",
                &[]
            ),
            Some("ServiceAccount \"prometheus/monitoring\"".into())
        );
        assert_eq!(
            matching_subject(&binding, "", "bob", &["ops".into()]),
            Some("Group \"ops\"".into())
        );
        assert_eq!(
            matching_subject(&binding, "", "jane", &[]),
            Some("User \"jane\"".into())
        );
        assert_eq!(
            matching_subject(&binding, "", "system:serviceaccount:other:prometheus", &[]),
            None
        );
    }

    #[test]
    fn managed_fields_mark_nested_objects_as_the_server_does() {
        assert_eq!(
            fields_of(
                &json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}, "user": "u", "groups": ["g"]})
            ),
            json!({"f:spec": {
                "f:groups": {},
                "f:nonResourceAttributes": {".": {}, "f:path": {}, "f:verb": {}},
                "f:user": {}
            }})
        );
    }
}
