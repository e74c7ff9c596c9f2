//! A fault-injecting HTTPS proxy between a client (the operator, the CLI, a test) and a real
//! Kubernetes API server. Faults are injected here, on a method and path match, and never by a
//! fake server: a status code with a `Status` body (403, 404, 409, 410 on a `continue`, 429 with
//! `Retry-After`, 500, 503), latency, a hang past the client's timeout, a mute path, dropped
//! watches, refused connections ([`Faults`]). Everything else is forwarded to the real server.
//!
//! It terminates TLS with a certificate of its own (a CA made at start; [`Proxy::kubeconfig`]
//! writes a copy of a kubeconfig that trusts it) and forwards each request over a TLS connection
//! of its own to the server: with the caller's `Authorization` header when it sent one (a
//! ServiceAccount token, so RBAC applies to the caller), else with the client certificate of the
//! upstream kubeconfig (the admin's; a client certificate cannot be passed through a proxy that
//! terminates TLS). It keeps a request log and counts requests in flight ([`ServingStats`]).
//!
//! One upstream connection per request: simple, and a TLS handshake on loopback costs about a
//! millisecond, which no test times.

mod faults;
mod serving;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use faults::{Fault, FaultId, Faults};
use serving::Serving;
pub use serving::ServingStats;

/// One request the proxy saw, with the status it answered (or the server answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    /// The HTTP status of the answer (0 when none was given: mute, or the client gave up).
    pub status: u16,
    pub watch: bool,
}

impl RecordedRequest {
    /// The value of a query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The upstream server and how to reach it, read from a kubeconfig.
struct Upstream {
    /// `host:port`.
    addr: String,
    server_name: ServerName<'static>,
    /// TLS with the kubeconfig's client certificate (requests without `Authorization`).
    admin: TlsConnector,
    /// TLS without a client certificate (requests that carry their own `Authorization`).
    anonymous: TlsConnector,
    /// The kubeconfig's bearer token, for requests without `Authorization` when the kubeconfig
    /// authenticates with a token instead of a certificate.
    token: Option<String>,
}

pub(crate) struct Shared {
    pub(crate) faults: Faults,
    serving: Serving,
    log: Mutex<Vec<RecordedRequest>>,
    upstream: Upstream,
    addr: SocketAddr,
    tls: TlsAcceptor,
    /// The accept loop and every connection, aborted by [`Faults::stop_serving`].
    tasks: Mutex<Option<JoinSet<()>>>,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    shared: Arc<Shared>,
    ca_pem: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What went wrong starting a proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {0}: {1}")]
    Kubeconfig(String, String),
    #[error("certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn kubeconfig_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Kubeconfig(path.display().to_string(), what.to_string())
}

/// The current context's cluster and user entries of a kubeconfig.
fn current(config: &Value, path: &Path) -> Result<(Value, Value), Error> {
    let name = config["current-context"]
        .as_str()
        .ok_or_else(|| kubeconfig_err(path, "no current-context"))?;
    let named = |list: &str, name: &str| {
        config[list]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .cloned()
            .ok_or_else(|| kubeconfig_err(path, format!("no {list} entry {name:?}")))
    };
    let context = named("contexts", name)?;
    let cluster = named(
        "clusters",
        context["context"]["cluster"].as_str().unwrap_or(""),
    )?;
    let user = match context["context"]["user"].as_str() {
        Some(u) => named("users", u)?,
        None => json!({}),
    };
    Ok((cluster, user))
}

/// `<key>-data` (base64) or `<key>` (a file) of a kubeconfig entry.
fn data_or_file(entry: &Value, key: &str, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    if let Some(d) = entry[format!("{key}-data")].as_str() {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| kubeconfig_err(path, format!("{key}-data: {e}")));
    }
    match entry[key].as_str() {
        Some(file) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            std::fs::read(&file)
                .map(Some)
                .map_err(|e| kubeconfig_err(path, format!("{}: {e}", file.display())))
        }
        None => Ok(None),
    }
}

fn read_kubeconfig(path: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| kubeconfig_err(path, e))?;
    serde_saphyr::from_str(&text).map_err(|e| kubeconfig_err(path, e))
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Io(std::io::Error::other(format!("certificate PEM: {e}"))))
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::Io(std::io::Error::other(format!("private key PEM: {e}"))))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Upstream {
    fn from_kubeconfig(path: &Path) -> Result<Upstream, Error> {
        let config = read_kubeconfig(path)?;
        let (cluster, user) = current(&config, path)?;
        let server = cluster["cluster"]["server"]
            .as_str()
            .ok_or_else(|| kubeconfig_err(path, "no cluster.server"))?;
        let uri: http::Uri = server
            .parse()
            .map_err(|e| kubeconfig_err(path, format!("server {server}: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| kubeconfig_err(path, "no server host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let mut roots = rustls::RootCertStore::empty();
        let ca = data_or_file(&cluster["cluster"], "certificate-authority", path)?
            .ok_or_else(|| kubeconfig_err(path, "no certificate-authority(-data)"))?;
        for c in certs(&ca)? {
            roots.add(c)?;
        }
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots.clone()))
        };
        let u = &user["user"];
        let admin = match (
            data_or_file(u, "client-certificate", path)?,
            data_or_file(u, "client-key", path)?,
        ) {
            (Some(c), Some(k)) => builder()?.with_client_auth_cert(certs(&c)?, key(&k)?)?,
            _ => builder()?.with_no_client_auth(),
        };
        let anonymous = builder()?.with_no_client_auth();
        Ok(Upstream {
            addr: format!("{host}:{port}"),
            server_name: ServerName::try_from(host)
                .map_err(|e| kubeconfig_err(path, e))?
                .to_owned(),
            admin: TlsConnector::from(Arc::new(admin)),
            anonymous: TlsConnector::from(Arc::new(anonymous)),
            token: u["token"].as_str().map(str::to_string),
        })
    }
}

/// The proxy's own CA and serving certificate for 127.0.0.1 and localhost.
fn serving_tls() -> Result<(String, TlsAcceptor), Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "flux-reporter e2e proxy CA");
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?
        .signed_by(&key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_pem, TlsAcceptor::from(Arc::new(config))))
}

impl Proxy {
    /// Listens on a free loopback port and forwards to the server of `kubeconfig`'s current
    /// context, authenticating as its user where the caller does not.
    pub async fn start(kubeconfig: &Path) -> Result<Proxy, Error> {
        let upstream = Upstream::from_kubeconfig(kubeconfig)?;
        let (ca_pem, tls) = serving_tls()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shared = Arc::new(Shared {
            faults: Faults::new(),
            serving: Serving::default(),
            log: Mutex::new(Vec::new()),
            upstream,
            addr: listener.local_addr()?,
            tls,
            tasks: Mutex::new(None),
            connections: Mutex::new(Vec::new()),
        });
        *lock(&shared.faults.shared) = Arc::downgrade(&shared);
        shared.listen(listener);
        Ok(Proxy { shared, ca_pem })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The PEM of the CA that signed the proxy's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    pub fn serving(&self) -> ServingStats {
        self.shared.serving.stats()
    }

    /// Starts counting [`ServingStats::peak_in_flight`] again from the requests in flight now.
    pub fn reset_peak_in_flight(&self) {
        self.shared.serving.reset_peak();
    }

    /// Writes a copy of `kubeconfig` whose current cluster is this proxy (its URL and CA); the
    /// user entry is kept, so a token still authenticates the caller.
    pub fn kubeconfig(&self, kubeconfig: &Path, out: &Path) -> Result<(), Error> {
        let mut config = read_kubeconfig(kubeconfig)?;
        let (cluster, _) = current(&config, kubeconfig)?;
        let name = cluster["name"].clone();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        if let Some(clusters) = config.get_mut("clusters").and_then(Value::as_array_mut) {
            for c in clusters.iter_mut().filter(|c| c["name"] == name) {
                c["cluster"] = json!({"server": self.url(), "certificate-authority-data": b64});
            }
        }
        // Relative file paths of the user entry stay valid beside the original.
        let dir = kubeconfig.parent().unwrap_or(Path::new("."));
        if let Some(users) = config.get_mut("users").and_then(Value::as_array_mut) {
            for u in users.iter_mut() {
                for key in ["client-certificate", "client-key", "tokenFile"] {
                    if let Some(f) = u["user"].get(key).and_then(Value::as_str) {
                        let abs = dir.join(f).display().to_string();
                        u["user"][key] = json!(abs);
                    }
                }
            }
        }
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| kubeconfig_err(kubeconfig, e))?;
        std::fs::write(out, text)?;
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut tasks) = self.shared.stop_listening() {
            tasks.abort_all();
            tasks.detach_all();
        }
    }
}

impl Shared {
    fn listen(self: &Arc<Self>, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let me = Arc::downgrade(self);
        tasks.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Some(shared) = me.upgrade() else { return };
                let task = tokio::spawn(shared.clone().serve(tcp));
                let mut conns = lock(&shared.connections);
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        });
        *lock(&self.tasks) = Some(tasks);
    }

    /// Stops accepting and aborts every connection; the returned set ends once the listening
    /// socket is closed (await its `shutdown` to be sure a connect is refused).
    pub(crate) fn stop_listening(&self) -> Option<JoinSet<()>> {
        let tasks = lock(&self.tasks).take();
        for c in lock(&self.connections).drain(..) {
            c.abort();
        }
        tasks
    }

    pub(crate) fn start_listening(self: &Arc<Self>) -> std::io::Result<()> {
        if self.is_listening() {
            return Ok(());
        }
        let std = std::net::TcpListener::bind(self.addr)?;
        std.set_nonblocking(true)?;
        self.listen(TcpListener::from_std(std)?);
        Ok(())
    }

    pub(crate) fn is_listening(&self) -> bool {
        lock(&self.tasks).is_some()
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream) {
        let Ok(tls) = self.tls.accept(tcp).await else {
            return;
        };
        let me = self.clone();
        let service = hyper::service::service_fn(move |req| me.clone().handle(req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }

    fn record(&self, r: RecordedRequest) -> usize {
        let mut log = lock(&self.log);
        log.push(r);
        log.len() - 1
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(r) = lock(&self.log).get_mut(index) {
            r.status = status;
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let recorded = RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: header("content-type"),
            accept: header("accept"),
            user_agent: header("user-agent"),
            status: 0,
            watch: false,
        };
        let watch = recorded
            .query_param("watch")
            .is_some_and(|w| w == "true" || w == "1");
        let has_continue = recorded
            .query_param("continue")
            .is_some_and(|c| !c.is_empty());
        let index = self.record(RecordedRequest { watch, ..recorded });
        let _in_flight = (!watch).then(|| self.serving.start(&method));

        let decision = self.faults.decide(&method, &path, watch);
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        if decision.mute {
            // Never answer; the future ends when the client gives up and the connection closes.
            std::future::pending::<()>().await;
        }
        let answer = if let Some((code, message, retry_after)) = decision.status {
            status_answer(code, message, retry_after)
        } else if has_continue && method == "GET" && self.faults.take_continue_expiry(&path) {
            status_answer(
                410,
                Some(
                    "The provided continue parameter is too old to display a consistent list \
                     result. You can start a new list without the continue parameter."
                        .into(),
                ),
                None,
            )
        } else {
            match self.forward(req, watch).await {
                Ok(r) => r,
                Err(e) => status_answer(502, Some(format!("proxy: {e}")), None),
            }
        };
        self.set_status(index, answer.status().as_u16());
        Ok(answer)
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        watch: bool,
    ) -> Result<Response<ProxyBody>, Box<dyn std::error::Error + Send + Sync>> {
        let (mut parts, body) = req.into_parts();
        let authorized = parts.headers.contains_key(http::header::AUTHORIZATION);
        let up = &self.upstream;
        let tls = if authorized { &up.anonymous } else { &up.admin };
        if !authorized && let Some(token) = &up.token {
            parts.headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))?,
            );
        }
        for h in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            parts.headers.remove(h);
        }
        parts
            .headers
            .insert(http::header::HOST, HeaderValue::from_str(&up.addr)?);
        let tcp = TcpStream::connect(&up.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls.connect(up.server_name.clone(), tcp).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let response = sender
            .send_request(Request::from_parts(parts, body))
            .await?;
        let (parts, body) = response.into_parts();
        let body = if watch {
            DroppableWatch::new(body, self.faults.watch_generation()).boxed()
        } else {
            body.boxed()
        };
        Ok(Response::from_parts(parts, body))
    }
}

/// An answer the real server would give for this status: a `Status` object with its reason.
fn status_answer(
    code: u16,
    message: Option<String>,
    retry_after: Option<u64>,
) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    };
    let message = message.unwrap_or_else(|| match code {
        403 => "forbidden: injected by the e2e proxy".into(),
        404 => "the server could not find the requested resource".into(),
        409 => "Operation cannot be fulfilled: the object has been modified; please apply your \
                changes to the latest version and try again"
            .into(),
        429 => "Too many requests, please try again later.".into(),
        500 => "Internal error occurred: injected by the e2e proxy".into(),
        503 => "the server is currently unable to handle the request".into(),
        _ => status.canonical_reason().unwrap_or("error").into(),
    });
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(s) = retry_after {
        body["details"] = json!({"retryAfterSeconds": s});
    }
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut response = Response::new(
        http_body_util::Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    response
}

/// A watch response that ends (cleanly, as a watch timing out does) when
/// [`Faults::drop_watches`] is called.
struct DroppableWatch {
    inner: Incoming,
    dropped: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
}

impl DroppableWatch {
    fn new(inner: Incoming, mut generation: tokio::sync::watch::Receiver<u64>) -> Self {
        let start = *generation.borrow_and_update();
        DroppableWatch {
            inner,
            dropped: Box::pin(async move {
                let _ = generation.wait_for(|g| *g != start).await;
            }),
        }
    }
}

impl Body for DroppableWatch {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.dropped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}
