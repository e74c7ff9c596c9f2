//! The fault-injecting proxy (`flux_reporter_e2e::proxy`) in front of the real API server:
//! it forwards as the admin or as the caller's own token, injects each kind of fault on a
//! method/path match, drops watches, refuses connections, and logs what went through.

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::time::Duration;

use flux_reporter_e2e::Fault;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use common::Env;
use common::env::client_from as client;

fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_as_the_admin_and_injects_status_latency_and_continue_expiry() {
    let env = Env::new("proxy_forwards_as_the_admin").await;
    let proxy = env.proxy().await;
    let through = client(&env.proxied_kubeconfig(&env.kubeconfig).await).await;
    let namespaces: Api<Namespace> = Api::all(through.clone());
    assert!(namespaces.get_opt(&env.ns).await.unwrap().is_some());

    let cms: Api<ConfigMap> = Api::namespaced(through.clone(), &env.ns);
    for i in 0..3 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }

    let path = format!("/api/v1/namespaces/{}/configmaps", env.ns);
    // (kube's client retries 429, 503 and 504 by itself: 500 and 404 show a fault as it is.)
    let fault = proxy
        .faults()
        .inject(Fault::status(500).method("GET").path_prefix(&path).times(1));
    let e = cms.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(status_of(&e), Some(500), "{e}");
    assert_eq!(proxy.faults().hits(fault), 1);
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    // A write answered by the proxy never reaches the server.
    let once = proxy
        .faults()
        .inject(Fault::status(409).method("POST").times(1));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cm-9"}})).unwrap();
    let e = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert_eq!(status_of(&e), Some(409), "{e}");
    assert_eq!(proxy.faults().hits(once), 1);
    assert!(cms.get_opt("cm-9").await.unwrap().is_none());

    // A continue token expires: 410 Expired, then a fresh list works.
    proxy.faults().expire_next_continue();
    let first = cms.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    let e = cms
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(410), "{e}");

    // Latency: the request is held, then answered by the server.
    let slow = proxy
        .faults()
        .inject(Fault::latency(Duration::from_millis(300)).path_prefix(&path));
    let t = std::time::Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    proxy.faults().remove(slow);

    let log = proxy.requests();
    assert!(
        log.iter()
            .any(|r| r.path == path && r.status == 500 && r.method == "GET"),
        "{log:#?}"
    );
    assert!(log.iter().any(|r| r.path == path && r.status == 200));
    assert!(log.iter().any(|r| r.status == 410));
    assert!(proxy.serving().requests >= 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_forwarded_so_rbac_applies_to_the_caller() {
    let env = Env::new("proxy_forwards_a_token").await;
    env.apply(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}}),
    )
    .await;
    let token = env.token_for("nobody").await;
    let direct = env.dir.join("kubeconfig-nobody");
    common::env::write_token_kubeconfig(&env.kubeconfig, &direct, &token, &env.ns);
    let through = client(&env.proxied_kubeconfig(&direct).await).await;
    let e = Api::<ConfigMap>::namespaced(through, &env.ns)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(403), "{e}");
    let kube::Error::Api(s) = &e else { panic!() };
    assert!(
        s.message
            .contains(&format!("system:serviceaccount:{}:nobody", env.ns)),
        "the server saw the caller, not the proxy's admin: {}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_dropped_and_connections_refused_on_demand() {
    let env = Env::new("proxy_drops_watches").await;
    let proxy = env.proxy().await;
    let through = client(&env.proxied_kubeconfig(&env.kubeconfig).await).await;
    let cms: Api<ConfigMap> = Api::namespaced(through, &env.ns);
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .expect("a resourceVersion");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "w"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let added = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event")
        .expect("the stream is open")
        .unwrap();
    assert!(matches!(added, WatchEvent::Added(_)), "{added:?}");
    proxy.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the watch ends");
    assert!(end.is_none(), "{end:?}");
    assert!(proxy.requests().iter().any(|r| r.watch));

    proxy.faults().stop_serving().await;
    assert!(!proxy.faults().is_serving());
    let refused = tokio::net::TcpStream::connect(proxy.addr()).await;
    assert!(refused.is_err(), "connection refused while stopped");
    proxy.faults().start_serving().unwrap();
    assert!(cms.get_opt("w").await.unwrap().is_some());
}
