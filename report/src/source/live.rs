//! The live cluster as a source: raw paginated GETs through the kube client,
//! each page decoded straight into the slim types of [`crate::observed`].
//!
//! Retries: connection errors, timeouts, 429 and 5xx are retried a few times
//! with backoff. A 410 Gone on a continue token restarts that list from the
//! start. A 403 or 404 fails the one read it answers.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Request, StatusCode};
use kube::Client;
use kube::client::Body;
use serde::de::DeserializeOwned;

use super::{ErrorKind, ObjectSink, Source, SourceError};
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
    /// Attempts for a retryable failure (connection, timeout, 429, 5xx).
    pub attempts: u32,
    /// First backoff; doubles each attempt.
    pub backoff: Duration,
    /// Restarts allowed when a continue token expires.
    pub list_restarts: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            page_size: 500,
            request_timeout: Duration::from_secs(60),
            attempts: 3,
            backoff: Duration::from_millis(200),
            list_restarts: 3,
        }
    }
}

pub struct LiveSource {
    client: Client,
    config: LiveConfig,
}

/// The answer to one GET: a body, or the classified failure with its status.
enum Answer {
    Body(Vec<u8>),
    Gone(String),
}

impl LiveSource {
    pub fn new(client: Client, config: LiveConfig) -> Self {
        LiveSource { client, config }
    }

    /// One GET with retries. `410 Gone` is returned as such for the caller to handle.
    async fn get_raw(&self, path: &str) -> Result<Answer, SourceError> {
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            match self.get_once(path).await {
                Err((e, retry_after))
                    if e.kind == ErrorKind::Unavailable && attempt < self.config.attempts =>
                {
                    let wait = retry_after.unwrap_or(delay).min(Duration::from_secs(10));
                    tracing::debug!(path, attempt, error = %e, "retrying after {wait:?}");
                    tokio::time::sleep(wait).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    async fn get_once(&self, path: &str) -> Result<Answer, (SourceError, Option<Duration>)> {
        let request = Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| {
                (
                    SourceError::new(ErrorKind::Other, format!("bad request {path}: {e}")),
                    None,
                )
            })?;
        let unavailable = |msg: String| (SourceError::new(ErrorKind::Unavailable, msg), None);
        let work = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| unavailable(format!("GET {path}: {}", error_chain(&e))))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response.into_body().collect_bytes().await.map_err(|e| {
                unavailable(format!("GET {path}: reading the body: {}", error_chain(&e)))
            })?;
            Ok::<_, (SourceError, Option<Duration>)>((status, retry_after, body.to_vec()))
        };
        let (status, retry_after, body) = tokio::time::timeout(self.config.request_timeout, work)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "GET {path}: timed out after {:?}",
                    self.config.request_timeout
                ))
            })??;
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
        Err((SourceError::new(kind, message), retry_after))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, SourceError> {
        match self.get_raw(path).await? {
            Answer::Body(body) => decode(path, &body),
            Answer::Gone(message) => Err(SourceError::new(ErrorKind::Other, message)),
        }
    }

    /// Every page of a list, each handed to `on_page`. Restarts on an expired
    /// continue token after calling `on_restart`.
    async fn list_pages<T, F, R>(
        &self,
        base: &str,
        mut on_page: F,
        mut on_restart: R,
    ) -> Result<(), SourceError>
    where
        Page<T>: DeserializeOwned,
        F: FnMut(Vec<Item<T>>),
        R: FnMut(),
    {
        let mut restarts = 0;
        let mut token: Option<String> = None;
        loop {
            let sep = if base.contains('?') { '&' } else { '?' };
            let mut path = format!("{base}{sep}limit={}", self.config.page_size);
            if let Some(t) = &token {
                path.push_str("&continue=");
                path.push_str(&encode_query(t));
            }
            match self.get_raw(&path).await? {
                Answer::Body(body) => {
                    let page: Page<T> = decode(base, &body)?;
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
                    tracing::info!(path = base, %message, "continue token expired; restarting the list");
                    restarts += 1;
                    token = None;
                    on_restart();
                }
                Answer::Gone(message) => return Err(SourceError::new(ErrorKind::Other, message)),
            }
        }
    }
}

impl LiveSource {
    /// Every valid item of a (small) list; a restarted list starts over.
    async fn collect<T>(&self, base: &str) -> Result<Vec<T>, SourceError>
    where
        Page<T>: DeserializeOwned,
    {
        // Both closures touch the output; a mutex keeps the future `Send`.
        let out = std::sync::Mutex::new(Vec::new());
        self.list_pages::<T, _, _>(
            base,
            |items| lock(&out).extend(items.into_iter().filter_map(|i| i.value.into_option())),
            || lock(&out).clear(),
        )
        .await?;
        Ok(out.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Percent-encode a query value (continue tokens are base64 with `=`, `+`, `/`).
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

const FLUX_SELECTOR_QUERY: &str = "labelSelector=app.kubernetes.io%2Fpart-of%3Dflux";

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
            "/api/v1/nodes",
            |items| {
                count.fetch_add(items.len() as i64, std::sync::atomic::Ordering::Relaxed);
            },
            || count.store(0, std::sync::atomic::Ordering::Relaxed),
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
        let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
        match self.get_json::<Object>(&path).await {
            Ok(obj) => Ok(Some(
                obj.metadata
                    .get()
                    .and_then(|m| m.labels.get().cloned())
                    .unwrap_or_default(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn flux_crds(&self) -> Result<Vec<Crd>, SourceError> {
        let base = format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?{FLUX_SELECTOR_QUERY}"
        );
        self.collect(&base).await
    }

    async fn deployments(&self, namespace: &str) -> Result<Vec<Deployment>, SourceError> {
        let base =
            format!("/apis/apps/v1/namespaces/{namespace}/deployments?{FLUX_SELECTOR_QUERY}");
        self.collect(&base).await
    }

    async fn list_objects(
        &self,
        kind: &FluxKind,
        sink: &mut (dyn ObjectSink + Send),
    ) -> Result<(), SourceError> {
        // The sink is borrowed by both closures; a mutex lets each take a turn
        // and keeps the future `Send`.
        let sink = std::sync::Mutex::new(sink);
        self.list_pages::<FluxObject, _, _>(
            &kind.list_path(),
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

    async fn get_object(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FluxObject>, SourceError> {
        match self
            .get_json::<FluxObject>(&kind.object_path(namespace, name))
            .await
        {
            Ok(obj) => Ok(Some(obj)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_are_percent_encoded() {
        assert_eq!(encode_query("eyJ2Ijo=+/"), "eyJ2Ijo%3D%2B%2F");
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
