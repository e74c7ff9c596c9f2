//! The API server double's TokenRequest, TokenReview and SubjectAccessReview, checked against what
//! kube-apiserver v1.32 answers (the shapes, codes and messages of its transcripts): tokens for
//! ServiceAccounts, their review with and without audiences, garbage and empty tokens, RBAC
//! decisions with their reason, `system:masters`, and the 422s of a malformed review.

// Shared helpers: each test binary uses only part of them.
#[allow(dead_code, unused_imports)]
mod apiserver_common;

use anyhow::Result;
use flux_reporter_e2e::ApiServer;
use serde_json::{Value, json};

use apiserver_common::*;

const NS: &str = "transcript-auth";

async fn post(server: &ApiServer, path: &str, body: Value) -> Result<(u16, Value)> {
    let (code, _, text) = raw(
        server,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await?;
    Ok((code, serde_json::from_str(&text)?))
}

/// The transcripts' fixtures: two ServiceAccounts, a metrics-reader ClusterRole bound to one.
fn fixtures(server: &ApiServer) {
    for sa in ["transcript-reporter", "transcript-nobody"] {
        server
            .insert(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": NS}}))
            .unwrap();
    }
    server
        .insert(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "transcript-metrics-reader"},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
        }))
        .unwrap();
    server
        .insert(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "transcript-metrics-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "transcript-metrics-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "transcript-reporter", "namespace": NS}],
        }))
        .unwrap();
}

async fn token(server: &ApiServer, sa: &str, spec: Value) -> Result<(u16, Value)> {
    post(
        server,
        &format!("/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token"),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
    )
    .await
}

async fn review(server: &ApiServer, spec: Value) -> Result<(u16, Value)> {
    post(
        server,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}),
    )
    .await
}

async fn access(server: &ApiServer, spec: Value) -> Result<(u16, Value)> {
    post(
        server,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}),
    )
    .await
}

const SA_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:transcript-auth",
    "system:authenticated",
];

#[tokio::test]
async fn token_requests_mint_tokens_that_token_reviews_authenticate() -> Result<()> {
    let server = ApiServer::start().await?;
    fixtures(&server);
    let (code, minted) = token(
        &server,
        "transcript-reporter",
        json!({"expirationSeconds": 3600}),
    )
    .await?;
    assert_eq!(code, 201, "{minted}");
    assert_eq!(minted["kind"], "TokenRequest");
    assert_eq!(minted["metadata"]["name"], "transcript-reporter");
    assert_eq!(minted["metadata"]["namespace"], NS);
    assert_eq!(
        minted["spec"],
        json!({"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600, "boundObjectRef": null})
    );
    assert_eq!(
        minted["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:expirationSeconds": {}}})
    );
    assert_eq!(
        minted["metadata"]["managedFields"][0]["subresource"],
        "token"
    );
    let jwt = minted["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(jwt.split('.').count(), 3, "JWT-shaped: {jwt}");
    assert!(
        minted["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // 2.1: no audiences in the review.
    let (code, reviewed) = review(&server, json!({"token": jwt})).await?;
    assert_eq!(code, 201);
    assert_eq!(reviewed["metadata"]["creationTimestamp"], Value::Null);
    assert_eq!(reviewed["spec"], json!({"token": jwt}), "spec echoed");
    let status = &reviewed["status"];
    assert_eq!(status["authenticated"], true);
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:transcript-auth:transcript-reporter"
    );
    assert_eq!(status["user"]["groups"], json!(SA_GROUPS));
    let sa = server
        .get("v1", "ServiceAccount", Some(NS), "transcript-reporter")
        .unwrap();
    assert_eq!(status["user"]["uid"], sa["metadata"]["uid"]);
    let credential = status["user"]["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .unwrap();
    assert!(credential.starts_with("JTI="), "{credential}");
    assert_eq!(
        status["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );

    // 2.2: reviewed for an audience the token does not have.
    let (code, reviewed) = review(
        &server,
        json!({"token": jwt, "audiences": ["flux-reporter"]}),
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(
        reviewed["status"],
        json!({"user": {}, "error": "[invalid bearer token, token audiences [\"https://kubernetes.default.svc.cluster.local\"] is invalid for the target audiences [\"flux-reporter\"]]"})
    );
    // 2.3: minted for that audience.
    let (_, minted) = token(
        &server,
        "transcript-reporter",
        json!({"audiences": ["flux-reporter"]}),
    )
    .await?;
    let for_us = minted["status"]["token"].as_str().unwrap();
    let (_, reviewed) = review(
        &server,
        json!({"token": for_us, "audiences": ["flux-reporter"]}),
    )
    .await?;
    assert_eq!(reviewed["status"]["authenticated"], true);
    assert_eq!(reviewed["status"]["audiences"], json!(["flux-reporter"]));

    // 2.4 garbage, 2.6 empty.
    let (code, reviewed) = review(&server, json!({"token": "garbage.token.value"})).await?;
    assert_eq!(code, 201);
    assert_eq!(
        reviewed["status"],
        json!({"user": {}, "error": "invalid bearer token"})
    );
    let (code, status) = review(&server, json!({"token": ""})).await?;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "token is required for TokenReview in authentication"
    );

    // A deleted ServiceAccount's tokens stop working.
    server.remove("v1", "ServiceAccount", Some(NS), "transcript-reporter");
    let (_, reviewed) = review(&server, json!({"token": jwt})).await?;
    assert!(reviewed["status"]["authenticated"].is_null(), "{reviewed}");
    // And no token for a ServiceAccount that is not there; none shorter than 10 minutes.
    let (code, status) = token(&server, "transcript-reporter", json!({})).await?;
    assert_eq!((code, status["reason"].clone()), (404, json!("NotFound")));
    let (code, status) = token(
        &server,
        "transcript-nobody",
        json!({"expirationSeconds": 599}),
    )
    .await?;
    assert_eq!(code, 422, "{status}");
    Ok(())
}

#[tokio::test]
async fn subject_access_reviews_evaluate_the_stored_rbac() -> Result<()> {
    let server = ApiServer::start().await?;
    fixtures(&server);
    let metrics = |verb: &str, user: &str| json!({"nonResourceAttributes": {"path": "/metrics", "verb": verb}, "user": user, "groups": SA_GROUPS});
    // 3.1
    let (code, answer) = access(
        &server,
        metrics(
            "get",
            "system:serviceaccount:transcript-auth:transcript-reporter",
        ),
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(
        answer["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"transcript-metrics-reader\" of ClusterRole \"transcript-metrics-reader\" to ServiceAccount \"transcript-reporter/transcript-auth\""})
    );
    assert_eq!(
        answer["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:groups": {}, "f:nonResourceAttributes": {".": {}, "f:path": {}, "f:verb": {}}, "f:user": {}}})
    );
    // 3.2, 3.3
    for spec in [
        metrics(
            "get",
            "system:serviceaccount:transcript-auth:transcript-nobody",
        ),
        metrics(
            "post",
            "system:serviceaccount:transcript-auth:transcript-reporter",
        ),
    ] {
        let (code, answer) = access(&server, spec.clone()).await?;
        assert_eq!(
            (code, &answer["status"]),
            (201, &json!({"allowed": false})),
            "{spec}"
        );
        assert_eq!(answer["spec"], spec, "spec echoed");
    }
    // 3.4
    let (_, answer) = access(
        &server,
        json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}, "user": "someone", "groups": ["system:masters"]}),
    )
    .await?;
    assert_eq!(answer["status"], json!({"allowed": true}));
    // 3.5
    let (_, answer) = access(
        &server,
        json!({"resourceAttributes": {"namespace": NS, "verb": "list", "group": "example.toolkit.fluxcd.io", "resource": "widgets"},
               "user": "system:serviceaccount:transcript-auth:transcript-reporter", "groups": SA_GROUPS}),
    )
    .await?;
    assert_eq!(answer["status"], json!({"allowed": false}));
    // 3.6, 3.7
    let (code, status) = access(&server, json!({"user": "someone"})).await?;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        ".authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
    );
    assert_eq!(
        status["details"],
        json!({"group": "authorization.k8s.io", "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified", "field": "spec.resourceAttributes"}]})
    );
    let (code, status) = access(
        &server,
        json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}),
    )
    .await?;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        ".authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"
    );

    // A namespaced grant: a RoleBinding of a Role, with the reason naming binding/namespace.
    server.insert(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "widget-reader", "namespace": NS},
        "rules": [{"apiGroups": ["example.toolkit.fluxcd.io"], "resources": ["widgets"], "verbs": ["list"]}],
    })).unwrap();
    server.insert(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "widget-reader", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "widget-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "transcript-nobody"}],
    })).unwrap();
    let widgets = |ns: &str| {
        json!({"resourceAttributes": {"namespace": ns, "verb": "list", "group": "example.toolkit.fluxcd.io", "resource": "widgets"},
               "user": "system:serviceaccount:transcript-auth:transcript-nobody", "groups": SA_GROUPS})
    };
    let (_, answer) = access(&server, widgets(NS)).await?;
    assert_eq!(
        answer["status"]["reason"],
        "RBAC: allowed by RoleBinding \"widget-reader/transcript-auth\" of Role \"widget-reader\" to ServiceAccount \"transcript-nobody/transcript-auth\""
    );
    let (_, answer) = access(&server, widgets("elsewhere")).await?;
    assert_eq!(answer["status"], json!({"allowed": false}));
    Ok(())
}
