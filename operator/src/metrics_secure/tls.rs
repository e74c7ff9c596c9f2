//! HTTPS for `/metrics`: rustls with the ring provider kube's client already uses, a certificate
//! from files (re-read when they change, as cert-manager renews them) or one generated at start,
//! and a listener that hands axum connections whose TLS handshake has completed.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A certificate and key that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read the metrics certificate {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the metrics certificate file {0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the metrics key {path} is not a usable private key")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the metrics key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot generate a self-signed metrics certificate")]
    Generate(#[source] rcgen::Error),
    #[error("cannot set up TLS for the metrics endpoint")]
    Tls(#[source] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
    key_path: &Path,
) -> Result<CertifiedKey, CertError> {
    let signing = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| CertError::Key {
            path: key_path.to_path_buf(),
            source,
        })?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The certificate chain (leaf first) and key of two PEM files.
pub fn load_files(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| CertError::Read {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate(cert.to_path_buf()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|source| CertError::Read {
        path: key.to_path_buf(),
        source,
    })?;
    let certified = certified(chain, &der, key)?;
    certified.keys_match().map_err(|_| CertError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })?;
    Ok(certified)
}

/// A self-signed certificate for `names` (DNS names or IP addresses), valid from now on.
pub fn self_signed(names: Vec<String>) -> Result<CertifiedKey, CertError> {
    let generated = rcgen::generate_simple_self_signed(names).map_err(CertError::Generate)?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    certified(
        vec![generated.cert.der().clone()],
        &key,
        Path::new("(generated)"),
    )
}

/// The certificate served, swapped when its files change.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files and the bytes last loaded from them; `None` for a generated certificate.
    files: Option<Files>,
}

#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    loaded: RwLock<(Vec<u8>, Vec<u8>)>,
}

impl CertStore {
    /// Serves a generated certificate, never reloaded.
    pub fn fixed(key: CertifiedKey) -> CertStore {
        CertStore {
            current: RwLock::new(Arc::new(key)),
            files: None,
        }
    }

    /// Loads the certificate and key files (an error names the file).
    pub fn from_files(cert: &Path, key: &Path) -> Result<CertStore, CertError> {
        let bytes = (
            std::fs::read(cert).unwrap_or_default(),
            std::fs::read(key).unwrap_or_default(),
        );
        let certified = load_files(cert, key)?;
        Ok(CertStore {
            current: RwLock::new(Arc::new(certified)),
            files: Some(Files {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                loaded: RwLock::new(bytes),
            }),
        })
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files when their bytes changed: `Ok(true)` when a new certificate is served.
    /// A pair that does not load (a half-written renewal) keeps the previous one.
    pub fn reload(&self) -> Result<bool, CertError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let bytes = (
            std::fs::read(&files.cert).unwrap_or_default(),
            std::fs::read(&files.key).unwrap_or_default(),
        );
        if *files.loaded.read().unwrap_or_else(PoisonError::into_inner) == bytes {
            return Ok(false);
        }
        let certified = load_files(&files.cert, &files.key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        *files.loaded.write().unwrap_or_else(PoisonError::into_inner) = bytes;
        Ok(true)
    }

    /// Calls [`CertStore::reload`] every `every` until the store is dropped elsewhere, logging
    /// each change and each failure.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        if self.files.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.reload() {
                Ok(true) => tracing::info!("metrics certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    error = %flux_reporter_report::source::error_chain(&e),
                    "cannot reload the metrics certificate; serving the previous one"
                ),
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server side of TLS: TLS 1.2 and 1.3, HTTP/1.1, the certificate of `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, CertError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(CertError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client that does not finish its handshake within this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `axum::serve` accepts from: TLS connections whose handshake completed. Handshakes run
/// on their own tasks, so a slow or silent client never holds up the others.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "cannot accept a metrics connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        // Plain HTTP on the HTTPS port, scanners, clients that hang up.
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "metrics TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "metrics TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task ended (it only does when aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
        let generated = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (cert, key, generated.cert.der().to_vec())
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flux-reporter-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_load_and_reload_when_they_change() {
        let dir = temp_dir("reload");
        let (cert, key, der) = write_pair(&dir, &["localhost"]);
        let store = CertStore::from_files(&cert, &key).expect("load");
        assert_eq!(store.current().cert[0].as_ref(), der.as_slice());
        assert!(!store.reload().unwrap(), "unchanged files: nothing to do");

        let (_, _, renewed) = write_pair(&dir, &["localhost", "127.0.0.1"]);
        assert!(store.reload().unwrap());
        assert_eq!(store.current().cert[0].as_ref(), renewed.as_slice());

        // A half-written renewal keeps the certificate served.
        std::fs::write(&key, "not a key").unwrap();
        let err = store.reload().expect_err("a broken key");
        assert!(err.to_string().contains("tls.key"), "{err}");
        assert_eq!(store.current().cert[0].as_ref(), renewed.as_slice());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = temp_dir("bad");
        let (cert, key, _) = write_pair(&dir, &["localhost"]);
        let missing = dir.join("missing.crt");
        let err = CertStore::from_files(&missing, &key).unwrap_err();
        assert!(err.to_string().contains("missing.crt"), "{err}");

        let empty = dir.join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let err = CertStore::from_files(&empty, &key).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the metrics certificate file {} holds no certificate",
                empty.display()
            )
        );

        // The key of another certificate.
        let other = temp_dir("bad-other");
        let (_, other_key, _) = write_pair(&other, &["localhost"]);
        let err = CertStore::from_files(&cert, &other_key).unwrap_err();
        assert!(matches!(err, CertError::Mismatch { .. }), "{err}");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(other);
    }

    #[test]
    fn a_generated_certificate_is_usable() {
        let key = self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("generate");
        key.keys_match().expect("key matches");
        assert_eq!(key.cert.len(), 1);
        server_config(Arc::new(CertStore::fixed(key))).expect("a server config");
    }
}
