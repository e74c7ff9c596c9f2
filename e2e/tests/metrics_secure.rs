//! `flux-reporter run --metrics-secure` end to end: `/metrics` over HTTPS admits only a bearer
//! token that the API server authenticates (TokenReview) and authorizes for `get /metrics`
//! (SubjectAccessReview), with the project's ClusterRole `flux-reporter-metrics-reader`
//! (config/metrics-secure) bound to one ServiceAccount and not to another; tokens are minted
//! with the TokenRequest API, as `kubectl create token` does. Decisions are cached: a second
//! scrape within the TTL costs no review, counted on the request log of the test's proxy, which
//! the operator reaches the API server through. A provided certificate is served, and a renewed
//! one is picked up.
//!
//! The operator runs under the project RBAC: `config/rbac` plus the RBAC of
//! `config/metrics-secure` (`flux-reporter-metrics-auth`, which lets it create the reviews), so
//! the shipped ClusterRoles are what the real API server enforces; e2e/tests/manifests.rs checks
//! the rendered roles.
//!
//! Needs the real API server of `E2E_KUBECONFIG` (`hack/envtest.sh start` gives one). Build the
//! binary first: `cargo build -p flux-reporter` (or set `FLUX_REPORTER_BIN`).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::env::documents;
use common::scenario::soon;
use common::{Env, Operator, OperatorOpts, ensure, eventually};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trusts any certificate: the operator's default one is self-signed, made at start, so no
/// scraper can verify it (the ServiceMonitor of config/monitoring-secure skips verification too).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Every connection makes a full handshake: a resumed session shows the certificate of the
/// session it resumes, not the one served now.
fn fresh_handshakes(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

fn any_certificate_client() -> Arc<ClientConfig> {
    let provider = provider();
    fresh_handshakes(
        ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// A client that trusts only `ca`, and checks the server name as any careful scraper does.
fn verifying_client(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("the test CA");
    fresh_handshakes(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTPS exchange.
struct Reply {
    status: u16,
    body: String,
    /// The certificate the server presented (leaf).
    certificate: Vec<u8>,
}

/// `GET /metrics` over HTTPS to `addr` (as `localhost`), with `Authorization: Bearer <token>`
/// when a token is given.
async fn scrape(
    client: &Arc<ClientConfig>,
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<Reply, String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let name = ServerName::try_from("localhost").expect("a server name");
        let mut tls = TlsConnector::from(client.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET /metrics HTTP/1.0\r\nHost: localhost\r\nAccept: text/plain\r\n{auth}\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut raw = Vec::new();
        // A server that closes without close_notify still sent the whole answer.
        if let Err(e) = tls.read_to_end(&mut raw).await
            && raw.is_empty()
        {
            return Err(format!("read from {addr}: {e}"));
        }
        let (status, body) = common::prom::http_answer(addr, &raw)?;
        Ok(Reply {
            status,
            body,
            certificate,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("GET /metrics on {addr} timed out"))?
}

fn config_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name)
}

/// Two ServiceAccounts of the test namespace: `scraper`, bound to the project's ClusterRole
/// `flux-reporter-metrics-reader` (applied under a name suffixed with the namespace), and
/// `stranger`, bound to nothing. Returns their tokens (TokenRequest API).
async fn scraper_and_stranger(env: &Env) -> (String, String) {
    let suffix = format!("-{}", env.ns);
    let mut reader = documents(
        &config_dir("metrics-secure").join("metrics_reader_role.yaml"),
        &[],
    )
    .remove(0);
    assert_eq!(reader["metadata"]["name"], "flux-reporter-metrics-reader");
    let role = format!("flux-reporter-metrics-reader{suffix}");
    reader["metadata"]["name"] = json!(role);
    env.apply_cluster_object(reader).await;
    for sa in ["scraper", "stranger"] {
        env.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}))
            .await;
    }
    env.apply_cluster_object(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("scraper{suffix}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": env.ns}],
    }))
    .await;
    (
        env.token_for("scraper").await,
        env.token_for("stranger").await,
    )
}

/// The operator with `--metrics-secure` (and `extra`), under the project RBAC (it may create
/// the reviews through metrics-auth), through the test's proxy (which logs the reviews).
async fn start_secure(env: &Env, extra: &[&str]) -> Operator {
    let mut opts = OperatorOpts::every("1h").through_proxy();
    opts.args.push("--metrics-secure".into());
    opts.args.extend(extra.iter().map(|s| s.to_string()));
    opts.project_rbac = Some(true);
    opts.rbac_components = vec!["metrics-secure"];
    env.start_operator(opts).await
}

/// Waits until the HTTPS endpoint answers (anything), and returns that answer.
async fn wait_serving(env: &Env, op: &Operator, client: &Arc<ClientConfig>) -> Reply {
    eventually("the HTTPS metrics endpoint", soon(env), || async move {
        op.assert_alive();
        scrape(client, op.metrics_addr, None).await
    })
    .await
}

/// Scrapes with the bound ServiceAccount's token until it is let in (RBAC may take a moment to
/// reach the authorizer), and returns that answer.
async fn let_in(env: &Env, op: &Operator, client: &Arc<ClientConfig>, scraper: &str) -> Reply {
    eventually(
        "the bound ServiceAccount to be let in",
        soon(env),
        || async move {
            let reply = scrape(client, op.metrics_addr, Some(scraper)).await?;
            ensure(reply.status == 200, || {
                format!("{}: {}", reply.status, reply.body)
            })?;
            Ok(reply)
        },
    )
    .await
}

/// The reviews the operator has created so far: `(TokenReviews, SubjectAccessReviews)`, as the
/// proxy in front of the API server logged them.
async fn reviews(env: &Env) -> (usize, usize) {
    let log = env.proxy().await.requests();
    let count = |path: &str| {
        log.iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .count()
    };
    (count(TOKEN_REVIEWS), count(ACCESS_REVIEWS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_metrics_admit_only_authenticated_and_authorized_tokens() {
    let env = Env::new("secure_metrics_admit_only_authorized_tokens").await;
    let (scraper, stranger) = scraper_and_stranger(&env).await;
    let op = start_secure(&env, &[]).await;
    let client = any_certificate_client();
    let (env, op, client, scraper) = (&env, &op, &client, scraper.as_str());

    let anonymous = wait_serving(env, op, client).await;
    assert_eq!(anonymous.status, 401, "no token: {}", anonymous.body);
    assert!(
        !anonymous.certificate.is_empty(),
        "a certificate was served"
    );

    let garbage = scrape(client, op.metrics_addr, Some("garbage.token.value"))
        .await
        .unwrap();
    assert_eq!(garbage.status, 401, "a garbage token: {}", garbage.body);

    // Authenticated, not authorized. RBAC changes take a moment to reach the authorizer, which
    // the denied TTL (10 s) covers.
    let denied = scrape(client, op.metrics_addr, Some(&stranger))
        .await
        .unwrap();
    assert_eq!(
        denied.status, 403,
        "a token without the role: {}",
        denied.body
    );
    assert!(
        denied
            .body
            .contains(&format!("system:serviceaccount:{}:stranger", env.ns)),
        "the 403 names the user: {}",
        denied.body
    );

    let allowed = let_in(env, op, client, scraper).await;
    assert!(
        allowed.body.contains("# TYPE flux_reporter_info")
            && allowed.body.contains("flux_reporter_info{"),
        "Prometheus text: {}",
        allowed.body
    );

    // A new token of the bound ServiceAccount (the binding is known to the authorizer by now):
    // its first scrape costs one TokenReview and one SubjectAccessReview, and the same token
    // again within the allowed TTL asks the API server nothing.
    let fresh = env.token_for("scraper").await;
    let before = reviews(env).await;
    let first = scrape(client, op.metrics_addr, Some(&fresh)).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    let after_first = reviews(env).await;
    assert_eq!(
        (after_first.0 - before.0, after_first.1 - before.1),
        (1, 1),
        "the first scrape with a new token: one TokenReview, one SubjectAccessReview"
    );
    let again = scrape(client, op.metrics_addr, Some(&fresh)).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        reviews(env).await,
        after_first,
        "a second scrape within the TTL must not review the token again"
    );
    // Denials are cached too (for less long): a token the API server does not authenticate
    // costs one TokenReview (and no SubjectAccessReview), then none within the denied TTL.
    let before = reviews(env).await;
    let bogus = "bogus.token.value";
    let garbage = scrape(client, op.metrics_addr, Some(bogus)).await.unwrap();
    assert_eq!(garbage.status, 401, "{}", garbage.body);
    let after_first = reviews(env).await;
    assert_eq!(
        (after_first.0 - before.0, after_first.1 - before.1),
        (1, 0),
        "an unauthenticated token: one TokenReview, no SubjectAccessReview"
    );
    let garbage = scrape(client, op.metrics_addr, Some(bogus)).await.unwrap();
    assert_eq!(garbage.status, 401, "{}", garbage.body);
    assert_eq!(reviews(env).await, after_first, "a denied token is cached");

    // Plain HTTP on the metrics port gets no answer; the probes stay plain HTTP.
    let plain = common::prom::http_get(op.metrics_addr, "/metrics").await;
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP must not be served metrics: {plain:?}"
    );
    let (code, _) = common::prom::http_get(op.health_addr, "/healthz")
        .await
        .unwrap();
    assert_eq!(code, 200, "/healthz stays plain HTTP");
}

/// A leaf for `localhost` and 127.0.0.1 signed by `ca`: (its DER, its PEM, its key's PEM).
fn issue(ca: &rcgen::Issuer<'static, rcgen::KeyPair>) -> (Vec<u8>, String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
        .expect("leaf params")
        .signed_by(&key, ca)
        .expect("sign the leaf");
    (leaf.der().to_vec(), leaf.pem(), key.serialize_pem())
}

fn test_ca() -> (
    CertificateDer<'static>,
    rcgen::Issuer<'static, rcgen::KeyPair>,
) {
    let key = rcgen::KeyPair::generate().expect("a CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "flux-reporter e2e CA");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.der().clone(), rcgen::Issuer::new(params, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_metrics_serve_the_provided_certificate_and_its_renewal() {
    let env = Env::new("secure_metrics_serve_the_provided_certificate").await;
    let (scraper, _) = scraper_and_stranger(&env).await;
    let certs = env.dir.join("metrics-certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ca_der, ca) = test_ca();
    let (leaf, leaf_pem, key_pem) = issue(&ca);
    std::fs::write(certs.join("serving.crt"), &leaf_pem).unwrap();
    std::fs::write(certs.join("serving.key"), &key_pem).unwrap();
    let op = start_secure(
        &env,
        &[
            "--metrics-cert-path",
            certs.to_str().unwrap(),
            "--metrics-cert-name",
            "serving.crt",
            "--metrics-cert-key",
            "serving.key",
        ],
    )
    .await;
    // Verified against the test CA for `localhost`: the handshake fails unless the served
    // certificate chains to it.
    let client = verifying_client(&ca_der);
    let (env, op, client, scraper) = (&env, &op, &client, scraper.as_str());
    let first = wait_serving(env, op, client).await;
    assert_eq!(
        first.certificate, leaf,
        "the provided certificate is served"
    );
    assert_eq!(first.status, 401);
    let reply = let_in(env, op, client, scraper).await;
    assert!(reply.body.contains("flux_reporter_info{"), "{}", reply.body);

    // A renewal (cert-manager rewrites the Secret's files): served within the reload interval.
    let (renewed, renewed_pem, renewed_key) = issue(&ca);
    std::fs::write(certs.join("serving.key"), &renewed_key).unwrap();
    std::fs::write(certs.join("serving.crt"), &renewed_pem).unwrap();
    let renewed = &renewed;
    eventually(
        "the renewed certificate to be served",
        Duration::from_secs(30),
        || async move {
            let reply = scrape(client, op.metrics_addr, None).await?;
            ensure(reply.certificate == *renewed, || {
                "still the first certificate".into()
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_certificate_that_cannot_be_read_stops_the_start_with_its_name() {
    let env = Env::new("secure_metrics_bad_certificate").await;
    let missing = env.dir.join("no-such-dir");
    let op = start_secure(&env, &["--metrics-cert-path", missing.to_str().unwrap()]).await;
    let status = op
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the operator stops");
    assert!(!status.success(), "{status}");
    let log = op.log_text();
    assert!(
        log.contains("--metrics-secure")
            && log.contains(&missing.join("tls.crt").display().to_string()),
        "the error names the flag and the file: {log}"
    );
}
