//! The live cluster as a source: raw paginated GETs through the kube client,
//! each page decoded straight into the slim types of [`crate::observed`].
//!
//! Retries: connection errors, 429 and 5xx are retried a few times with
//! backoff. A 410 Gone on a continue token restarts that list from the start.
//! A 403 or 404 fails the one read it answers.
//!
//! Silence: every request has a timeout and is not retried once it timed out
//! (it already cost the whole timeout). After a request times out or cannot
//! connect, `GET /version` tells a slow path from a mute server: when that
//! fails too, the rest of the run fails at once with the cause instead of
//! waiting out one timeout per request. A run deadline
//! ([`LiveSource::with_deadline`]) bounds the whole run.
//!
//! Concurrency: the engine lists up to [`LiveConfig::list_concurrency`] kinds
//! at once through one `LiveSource` (docs/design.md "Listing kinds
//! concurrently"). Each list still fetches its pages one by one, so no more
//! pages than that are held at once. The mute verdict is shared: once one
//! request finds the server mute, the requests still in flight are abandoned
//! at once, and only one `/version` probe runs at a time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::Resource;
use kube::api::{GetParams, ListParams};
use kube::client::Body;
use serde::de::DeserializeOwned;

use super::{ErrorKind, ObjectSink, Source, SourceError, error_chain, is_timeout};
use crate::crds::FluxKind;
use crate::lenient::Item;
use crate::observed::{Crd, Deployment, FluxObject, Meta, Page, ServerVersion};

/// Tuning of the live source.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Objects per page (`limit`).
    pub page_size: u32,
    /// Time allowed for one request, body included.
    pub request_timeout: Duration,
    /// Time allowed for `GET /version` when telling a slow path from a mute server.
    pub probe_timeout: Duration,
    /// Attempts for a retryable failure (connection refused or reset, 429, 5xx).
    pub attempts: u32,
    /// First backoff; doubles each attempt.
    pub backoff: Duration,
    /// Restarts allowed when a continue token expires.
    pub list_restarts: u32,
    /// Flux kinds listed at once (at least 1); pages of one kind are still
    /// fetched and decoded one after the other.
    pub list_concurrency: usize,
}

/// The default of [`LiveConfig::list_concurrency`] and of `--list-concurrency`.
pub const DEFAULT_LIST_CONCURRENCY: usize = 4;

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            page_size: 500,
            request_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(200),
            list_restarts: 3,
            list_concurrency: DEFAULT_LIST_CONCURRENCY,
        }
    }
}

pub struct LiveSource {
    client: Client,
    config: LiveConfig,
    /// When the run must end, and the budget it was given (for messages).
    deadline: Option<(tokio::time::Instant, Duration)>,
    /// Set once the server is found mute: why, for every request not tried.
    /// A watch channel so that requests in flight (other kinds listed at the
    /// same time) are abandoned as soon as it is set.
    mute: tokio::sync::watch::Sender<Option<String>>,
    /// Held while `/version` is probed, so that kinds timing out together
    /// probe once rather than once each.
    probing: tokio::sync::Mutex<()>,
    /// Whether any request of this source got an HTTP answer (errors count).
    answered: AtomicBool,
}

/// The answer to one GET: a body, or the classified failure with its status.
enum Answer {
    Body(Vec<u8>),
    Gone(String),
}

/// One failed attempt.
struct Failed {
    error: SourceError,
    retry_after: Option<Duration>,
    /// No HTTP answer at all: refused, reset, timed out.
    transport: bool,
    timed_out: bool,
}

impl Failed {
    fn answered(error: SourceError, retry_after: Option<Duration>) -> Self {
        Failed {
            error,
            retry_after,
            transport: false,
            timed_out: false,
        }
    }
    fn transport(message: String, timed_out: bool, source: Option<kube::Error>) -> Self {
        let error = SourceError::new(ErrorKind::Unavailable, message);
        Failed {
            error: match source {
                Some(e) => error.with_source(e),
                None => error,
            },
            retry_after: None,
            transport: true,
            timed_out,
        }
    }
}

impl LiveSource {
    pub fn new(client: Client, config: LiveConfig) -> Self {
        LiveSource {
            client,
            config,
            deadline: None,
            mute: tokio::sync::watch::Sender::new(None),
            probing: tokio::sync::Mutex::new(()),
            answered: AtomicBool::new(false),
        }
    }

    /// Every request of this source ends by `budget` from now: what has not
    /// finished by then fails, naming the deadline.
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some((tokio::time::Instant::now() + budget, budget));
        self
    }

    /// Why the server was found mute during this run, if it was.
    pub fn mute_cause(&self) -> Option<String> {
        self.mute.borrow().clone()
    }

    /// Whether the API server answered this source and was not found mute
    /// since: a run that got through, as opposed to one that met only
    /// silence, refusals or its deadline.
    pub fn got_through(&self) -> bool {
        self.answered.load(Ordering::Relaxed) && self.mute_cause().is_none()
    }

    /// Why no request should be sent now (the server was found mute, or the
    /// run deadline passed), if so.
    fn stopped(&self) -> Option<SourceError> {
        if let Some(cause) = self.mute_cause() {
            return Some(SourceError::new(
                ErrorKind::Unavailable,
                format!("not tried: {cause}"),
            ));
        }
        match self.deadline {
            Some((deadline, budget)) if tokio::time::Instant::now() >= deadline => {
                Some(SourceError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "not tried: the report run deadline of {} passed",
                        crate::duration::format_run(budget)
                    ),
                ))
            }
            _ => None,
        }
    }

    /// One GET with retries. `410 Gone` is returned as such for the caller to handle.
    async fn get_raw(&self, path: &str) -> Result<Answer, SourceError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            match self.get_once(path).await {
                // No retry once the run is over for every request (mute
                // server, deadline): the failure stands as it is.
                Err(f)
                    if f.error.kind == ErrorKind::Unavailable
                        && !f.timed_out
                        && attempt < self.config.attempts
                        && self.stopped().is_none() =>
                {
                    let wait = f.retry_after.unwrap_or(delay).min(Duration::from_secs(10));
                    tracing::debug!(path, attempt, error = %f.error, "retrying after {wait:?}");
                    tokio::time::sleep(wait).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(f) => {
                    if f.transport {
                        self.check_server(path, &f).await;
                    }
                    return Err(f.error);
                }
                Ok(answer) => return Ok(answer),
            }
        }
    }

    /// After a request got no answer: does the server answer `GET /version`?
    /// If not, it is mute, and the rest of the run is not tried.
    async fn check_server(&self, path: &str, failed: &Failed) {
        // One probe at a time: kinds listed together that time out together
        // wait for the first probe's verdict instead of each probing.
        let _probing = self.probing.lock().await;
        if self.mute_cause().is_some() {
            return;
        }
        // When the failed request was `/version` itself, there is nothing
        // more to ask; otherwise the probe says how the server is.
        let probe_failure = if path == "/version" {
            None
        } else {
            let timeout = self.config.probe_timeout.min(self.config.request_timeout);
            match self.exchange("/version", timeout).await {
                Err(f) if f.transport => Some(f.error.to_string()),
                Ok((status, _, _)) => {
                    tracing::debug!(path, %status, "the server answers /version: only this request failed");
                    return;
                }
                Err(_) => return,
            }
        };
        let what = if failed.timed_out {
            "does not answer"
        } else {
            "cannot be reached"
        };
        let error = &failed.error;
        let cause = match probe_failure {
            None => format!("the Kubernetes API server {what} ({error})"),
            Some(probe) => format!("the Kubernetes API server {what} ({error}; then {probe})"),
        };
        tracing::warn!(%cause, "the rest of this report run is not tried");
        self.mute.send_replace(Some(cause));
    }

    /// Send a GET and read the whole answer within `timeout` (and the run deadline).
    async fn exchange(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), Failed> {
        let request = Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| {
                Failed::answered(
                    SourceError::new(ErrorKind::Other, format!("bad request {path}: {e}")),
                    None,
                )
            })?;
        // The client's own read timeout (the request timeout) and ours race:
        // either way the message is the same, the kube error kept as the source.
        let no_answer = || format!("no answer within {}", crate::duration::format_run(timeout));
        let work = async {
            let response = self.client.send(request).await.map_err(|e| {
                let timed_out = is_timeout(&e);
                let what = if timed_out {
                    no_answer()
                } else {
                    error_chain(&e)
                };
                Failed::transport(format!("GET {path}: {what}"), timed_out, Some(e))
            })?;
            self.answered.store(true, Ordering::Relaxed);
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response.into_body().collect_bytes().await.map_err(|e| {
                let timed_out = is_timeout(&e);
                let what = if timed_out {
                    no_answer()
                } else {
                    error_chain(&e)
                };
                Failed::transport(
                    format!("GET {path}: reading the body: {what}"),
                    timed_out,
                    Some(e),
                )
            })?;
            // `Vec::from` takes the buffer over when it can instead of copying it.
            Ok((status, retry_after, Vec::from(body)))
        };
        let by_timeout = tokio::time::Instant::now() + timeout;
        // The run deadline, when it comes before the request's own timeout.
        let cut = self.deadline.filter(|(deadline, _)| *deadline < by_timeout);
        let until = cut.map_or(by_timeout, |(deadline, _)| deadline);
        // Another request of this run found the server mute: stop waiting.
        let mut mute = self.mute.subscribe();
        let found_mute = async {
            // (The guard is dropped before any other await: the future stays `Send`.)
            let cause = mute
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|c| c.clone());
            match cause {
                Some(cause) => cause,
                // The sender lives as long as `self`: never reached.
                None => std::future::pending().await,
            }
        };
        let timed = tokio::select! {
            timed = tokio::time::timeout_at(until, work) => timed,
            cause = found_mute => {
                return Err(Failed::answered(
                    SourceError::new(
                        ErrorKind::Unavailable,
                        format!("GET {path}: abandoned: {cause}"),
                    ),
                    None,
                ));
            }
        };
        match timed {
            Ok(result) => result,
            Err(_) => Err(match cut {
                Some((_, budget)) => Failed::answered(
                    SourceError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "GET {path}: did not finish within the report run deadline of {}",
                            crate::duration::format_run(budget)
                        ),
                    ),
                    None,
                ),
                None => Failed::transport(
                    format!(
                        "GET {path}: no answer within {}",
                        crate::duration::format_run(timeout)
                    ),
                    true,
                    None,
                ),
            }),
        }
    }

    async fn get_once(&self, path: &str) -> Result<Answer, Failed> {
        let (status, retry_after, body) = self.exchange(path, self.config.request_timeout).await?;
        if status.is_success() {
            return Ok(Answer::Body(body));
        }
        let message = status_message(&body).unwrap_or_else(|| format!("GET {path}: HTTP {status}"));
        let kind = match status {
            StatusCode::GONE => return Ok(Answer::Gone(message)),
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ErrorKind::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::Unavailable,
            s if s.is_server_error() => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        };
        Err(Failed::answered(
            SourceError::new(kind, message),
            retry_after,
        ))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        match self.get_raw(path).await? {
            Answer::Body(body) => decode(path, &body),
            Answer::Gone(message) => Err(SourceError::new(ErrorKind::Other, message)),
        }
    }

    /// Every page of a list, each handed to `on_page`. Restarts on an expired
    /// continue token after calling `on_restart`. The URL of each page,
    /// `limit`, `continue` and `labelSelector` included, is kube's
    /// ([`kube::core::Request::list`]), so the query is encoded as kube encodes it.
    async fn list_pages<T, F, R>(
        &self,
        collection: &str,
        label_selector: Option<&str>,
        mut on_page: F,
        mut on_restart: R,
    ) -> Result<(), SourceError>
    where
        Page<T>: DeserializeOwned,
        F: FnMut(Vec<Item<T>>),
        R: FnMut(),
    {
        let target = kube::core::Request::new(collection);
        let mut restarts = 0;
        let mut token: Option<String> = None;
        loop {
            let params = ListParams {
                label_selector: label_selector.map(str::to_string),
                limit: Some(self.config.page_size),
                continue_token: token.clone(),
                ..ListParams::default()
            };
            let path = request_path(collection, target.list(&params))?;
            match self.get_raw(&path).await? {
                Answer::Body(body) => {
                    let page: Page<T> = decode(collection, &body)?;
                    on_page(page.items);
                    token = page
                        .metadata
                        .get()
                        .and_then(|m| m.continue_.non_empty())
                        .map(str::to_string);
                    if token.is_none() {
                        return Ok(());
                    }
                }
                Answer::Gone(message)
                    if token.is_some() && restarts < self.config.list_restarts =>
                {
                    // Not `message`: JSON logs would carry two.
                    tracing::info!(path = collection, error = %message, "continue token expired; restarting the list");
                    restarts += 1;
                    token = None;
                    on_restart();
                }
                Answer::Gone(message) => return Err(SourceError::new(ErrorKind::Other, message)),
            }
        }
    }

    /// One object of `collection`, `Ok(None)` when it does not exist.
    async fn get_named<T: DeserializeOwned>(
        &self,
        collection: &str,
        name: &str,
    ) -> Result<Option<T>, SourceError> {
        let request = kube::core::Request::new(collection).get(name, &GetParams::default());
        match self
            .get_json::<T>(&request_path(collection, request)?)
            .await
        {
            Ok(obj) => Ok(Some(obj)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl LiveSource {
    /// Every valid item of a (small) list; a restarted list starts over.
    async fn collect<T>(
        &self,
        collection: &str,
        label_selector: &str,
    ) -> Result<Vec<T>, SourceError>
    where
        Page<T>: DeserializeOwned,
    {
        // Both closures touch the output; a mutex keeps the future `Send`.
        let out = Mutex::new(Vec::new());
        self.list_pages::<T, _, _>(
            collection,
            Some(label_selector),
            |items| lock(&out).extend(items.into_iter().filter_map(|i| i.value.into_option())),
            || lock(&out).clear(),
        )
        .await?;
        Ok(out.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, SourceError> {
    serde_json::from_slice(body).map_err(|e| {
        SourceError::new(
            ErrorKind::Invalid,
            format!("GET {path}: undecodable answer: {e}"),
        )
    })
}

/// The message of a `Status` body, if the body is one.
fn status_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Status>(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
}

/// The path and query of a request built by kube (a name kube rejects, for
/// instance, is an invalid question rather than a server answer).
fn request_path(
    collection: &str,
    request: Result<Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<String, SourceError> {
    request
        .map(|r| r.uri().to_string())
        .map_err(|e| SourceError::new(ErrorKind::Invalid, format!("{collection}: {e}")))
}

/// The label every Flux CRD and controller Deployment carries.
const FLUX_SELECTOR: &str = "app.kubernetes.io/part-of=flux";

/// The collection of CustomResourceDefinitions.
fn crd_collection() -> String {
    CustomResourceDefinition::url_path(&(), None)
}

impl Source for LiveSource {
    async fn server_version(&self) -> Result<ServerVersion, SourceError> {
        self.get_json("/version").await
    }

    async fn node_count(&self) -> Result<i64, SourceError> {
        #[derive(serde::Deserialize, Default)]
        struct Node {}
        crate::lenient_struct!(Node);
        let count = std::sync::atomic::AtomicI64::new(0);
        self.list_pages::<Node, _, _>(
            &k8s_openapi::api::core::v1::Node::url_path(&(), None),
            None,
            |items| {
                count.fetch_add(items.len() as i64, Ordering::Relaxed);
            },
            || count.store(0, Ordering::Relaxed),
        )
        .await?;
        Ok(count.into_inner())
    }

    async fn crd_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        #[derive(serde::Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: crate::lenient::Lenient<Meta>,
        }
        let crd = self.get_named::<Object>(&crd_collection(), name).await?;
        Ok(crd.map(|obj| {
            obj.metadata
                .get()
                .and_then(|m| m.labels.get().cloned())
                .unwrap_or_default()
        }))
    }

    async fn flux_crds(&self) -> Result<Vec<Crd>, SourceError> {
        self.collect(&crd_collection(), FLUX_SELECTOR).await
    }

    async fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, SourceError> {
        let collection = k8s_openapi::api::apps::v1::Deployment::url_path(&(), Some(namespace));
        self.collect(&collection, FLUX_SELECTOR).await
    }

    async fn list_objects(
        &self,
        kind: &FluxKind,
        sink: &mut (dyn ObjectSink + Send),
    ) -> Result<(), SourceError> {
        // The sink is borrowed by both closures; a mutex lets each take a turn
        // and keeps the future `Send`.
        let sink = Mutex::new(sink);
        self.list_pages::<FluxObject, _, _>(
            &kind.collection(None),
            None,
            |items| {
                let mut sink = lock(&sink);
                for item in items {
                    sink.push(item.value.into_option(), item.invalid_fields);
                }
            },
            || lock(&sink).reset(),
        )
        .await
    }

    fn list_concurrency(&self) -> usize {
        self.config.list_concurrency.max(1)
    }

    async fn get_object(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FluxObject>, SourceError> {
        let ns = kind.namespaced.then_some(namespace);
        self.get_named(&kind.collection(ns), name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_kubes() {
        let params = ListParams {
            label_selector: Some(FLUX_SELECTOR.into()),
            limit: Some(500),
            continue_token: Some("eyJ2Ijo=+/".into()),
            ..ListParams::default()
        };
        let path = request_path(
            "/apis/apps/v1/namespaces/flux-system/deployments",
            kube::core::Request::new("/apis/apps/v1/namespaces/flux-system/deployments")
                .list(&params),
        )
        .unwrap();
        // `?&` is how kube starts every list query; API servers ignore the empty pair.
        assert_eq!(
            path,
            "/apis/apps/v1/namespaces/flux-system/deployments\
             ?&labelSelector=app.kubernetes.io%2Fpart-of%3Dflux&limit=500&continue=eyJ2Ijo%3D%2B%2F"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_kubes_error_as_the_source() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let source = LiveSource::new(
            Client::try_from(config).unwrap(),
            LiveConfig {
                attempts: 1,
                ..LiveConfig::default()
            },
        );
        let e = source.server_version().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        let cause = std::error::Error::source(&e).expect("the kube error is kept");
        assert!(cause.is::<kube::Error>(), "{cause:?}");
        assert!(e.message.starts_with("GET /version: "), "{}", e.message);
    }

    #[test]
    fn a_name_kube_rejects_is_an_invalid_question() {
        let e = request_path(
            "/apis/x/v1/ys",
            kube::core::Request::new("/apis/x/v1/ys").get("", &GetParams::default()),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
    }

    #[test]
    fn status_bodies_give_their_message() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"gitrepositories.source.toolkit.fluxcd.io is forbidden","reason":"Forbidden","code":403}"#;
        assert_eq!(
            status_message(body).as_deref(),
            Some("gitrepositories.source.toolkit.fluxcd.io is forbidden")
        );
        assert_eq!(status_message(b"<html>"), None);
    }
}
