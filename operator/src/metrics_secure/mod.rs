//! `--metrics-secure`: `/metrics` over HTTPS, readable only with a bearer token that the
//! Kubernetes API server authenticates (TokenReview) and authorizes for `get` on `/metrics`
//! (SubjectAccessReview), as kubebuilder operators do with controller-runtime's
//! `filters.WithAuthenticationAndAuthorization`. The health probes stay plain HTTP on their own
//! port. Why this shape, and the cache: docs/design.md "Secure metrics".

mod auth;
mod cache;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{Authorizer, Decision, ReviewError, bearer_token, require_review};
pub use cache::CacheConfig;
pub use tls::{CertError, CertStore, TlsListener, load_files, self_signed, server_config};

use crate::cli::MetricsSecureArgs;

/// How often provided certificate files are checked for a renewal.
pub const CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Everything the secure metrics server needs, made at start.
pub struct Secure {
    pub certs: Arc<CertStore>,
    pub tls: Arc<rustls::ServerConfig>,
    pub authorizer: Arc<Authorizer>,
}

/// The certificate and key files of the flags, when a directory is given.
pub fn cert_files(args: &MetricsSecureArgs) -> Option<(PathBuf, PathBuf)> {
    let dir = args.metrics_cert_path.as_ref()?;
    Some((
        dir.join(&args.metrics_cert_name),
        dir.join(&args.metrics_cert_key),
    ))
}

/// The names a generated certificate is made for: loopback and the Service of
/// `config/manager` in `namespace`. Scrapers of a generated certificate cannot verify it anyway
/// (no CA to trust); the names only make it tidy.
pub fn self_signed_names(namespace: &str) -> Vec<String> {
    vec![
        "localhost".into(),
        "127.0.0.1".into(),
        format!("flux-reporter.{namespace}.svc"),
        format!("flux-reporter.{namespace}.svc.cluster.local"),
    ]
}

impl Secure {
    /// Loads the certificate of the flags, or generates one, and sets up the reviews through
    /// `client`. An unusable certificate is an error naming the file.
    pub fn new(
        args: &MetricsSecureArgs,
        client: kube::Client,
        namespace: &str,
    ) -> Result<Secure, CertError> {
        let certs = match cert_files(args) {
            Some((cert, key)) => CertStore::from_files(&cert, &key)?,
            None => CertStore::fixed(self_signed(self_signed_names(namespace))?),
        };
        let certs = Arc::new(certs);
        Ok(Secure {
            tls: server_config(certs.clone())?,
            certs,
            authorizer: Arc::new(Authorizer::new(client, CacheConfig::default())),
        })
    }
}
