//! HTTP plumbing: reading requests, fault decisions, routing, and response helpers.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::registry::ResourceType;
use super::status::{ApiError, ErrorBody};
use super::{RecordedRequest, Shared, auth, discovery, handlers};

pub(crate) type Resp = http::Response<Body>;

/// A request, body read.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// A query parameter (the first occurrence), empty values included.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body, lower-cased, without parameters.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true") | Some("1"))
    }

    /// The field manager: `fieldManager`, else the User-Agent up to the first `/`.
    pub fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let ua = self.header("user-agent").unwrap_or("unknown");
        ua.split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

fn base(code: u16, content_type: &str, body: Body) -> Resp {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        "audit-id",
        HeaderValue::from_str(&super::util::audit_id()).unwrap_or(HeaderValue::from_static("0")),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        h.insert("content-type", ct);
    }
    resp
}

/// A JSON body (already serialized).
pub(crate) fn bytes_resp(code: u16, body: Vec<u8>) -> Resp {
    base(code, "application/json", Body::from(body))
}

pub(crate) fn value_resp(code: u16, v: &Value) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    bytes_resp(code, body)
}

pub(crate) fn text_resp(code: u16, content_type: &str, text: String) -> Resp {
    base(code, content_type, Body::from(text))
}

pub(crate) fn error_resp(err: ApiError) -> Resp {
    let mut resp = match &err.body {
        ErrorBody::Status(v) => value_resp(err.code, v),
        ErrorBody::Text(t) => {
            let mut r = text_resp(err.code, "text/plain; charset=utf-8", (*t).to_string());
            r.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }
    };
    for (k, v) in &err.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().append(*k, v);
        }
    }
    resp
}

pub(crate) fn add_warnings(resp: &mut Resp, warnings: &[String]) {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append("warning", v);
        }
    }
}

/// What the Accept header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Table(&'static str),
    Metadata(&'static str),
}

pub(crate) fn negotiate(accept: Option<&str>) -> Output {
    let Some(accept) = accept else {
        return Output::Json;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "*/*" | "application/*") {
            continue;
        }
        let mut as_ = None;
        let mut g = None;
        let mut v = None;
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = Some(x),
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                _ => {}
            }
        }
        let version = match v {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            _ => {
                if as_.is_none() {
                    return Output::Json;
                }
                continue;
            }
        };
        match (as_, g) {
            (None, _) => return Output::Json,
            (Some("Table"), Some("meta.k8s.io")) => return Output::Table(version),
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Output::Metadata(version);
            }
            _ => continue,
        }
    }
    Output::Json
}

/// Serves one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: http::Request<hyper::body::Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let watch = method == "GET"
        && query
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if path == super::SERVING_PATH {
        let stats = serde_json::to_value(shared.serving.stats()).unwrap_or_default();
        return value_resp(200, &stats);
    }
    // Counted until answered or abandoned; watches are not per-request work.
    let _in_flight = (!watch).then(|| shared.serving.start(&method));
    let mut record = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: raw_query,
        content_type: header("content-type"),
        accept: header("accept"),
        user_agent: header("user-agent"),
        status: 0,
        watch,
    };

    let decision = shared.faults.decide(&method, &path, watch);
    if decision.mute {
        // Recorded with status 0 (no answer); the handler then waits until the client hangs up
        // or the server stops.
        shared.record(record);
        return std::future::pending().await;
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let resp = if let Some((code, message, retry_after)) = decision.status {
        let mut err = ApiError::for_code(code, message.as_deref());
        if let Some(secs) = retry_after {
            err = err.with_header("retry-after", secs.to_string());
        }
        error_resp(err)
    } else {
        match axum::body::to_bytes(Body::new(body), 256 << 20).await {
            Ok(body) => {
                let req = Req {
                    method,
                    path,
                    query,
                    headers: parts.headers,
                    body,
                };
                route(&shared, &req)
            }
            Err(_) => error_resp(ApiError::new(
                413,
                "the request entity is too large",
                Some("RequestEntityTooLarge"),
                None,
            )),
        }
    };
    record.status = resp.status().as_u16();
    shared.record(record);
    resp
}

const VERSION: &str = r#"{
  "major": "1",
  "minor": "32",
  "gitVersion": "v1.32.13",
  "gitCommit": "63adf010aa20e104c0b7043b47f42f50c9f72b17",
  "gitTreeState": "clean",
  "buildDate": "2026-11-22T03:23:53Z",
  "goVersion": "go1.23.5",
  "compiler": "gc",
  "platform": "linux/amd64"
}"#;

fn route(shared: &Arc<Shared>, req: &Req) -> Resp {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => text_resp(200, "application/json", VERSION.to_string()),
        ["healthz"] | ["livez"] | ["readyz"] => {
            text_resp(200, "text/plain; charset=utf-8", "ok".to_string())
        }
        ["api"] => discovery::api(shared, req),
        ["apis"] => discovery::apis(shared, req),
        ["api", "v1"] => discovery::group_version(shared, req, "", "v1"),
        ["apis", group] => discovery::group(shared, req, group),
        ["apis", group, version] => discovery::group_version(shared, req, group, version),
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => auth::token_review(shared, req),
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
            auth::subject_access_review(shared, req)
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] => auth::token_request(shared, req, ns, name),
        ["api", "v1", rest @ ..] => resource(shared, req, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource(shared, req, group, version, rest),
        ["openapi", "v3"] => discovery::openapi_index(shared, req),
        ["openapi", "v3", rest @ ..] => discovery::openapi_document(shared, req, rest),
        _ => error_resp(ApiError::page_not_found()),
    }
}

/// A resolved resource path.
pub(crate) struct Target {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn resource(shared: &Arc<Shared>, req: &Req, group: &str, version: &str, segs: &[&str]) -> Resp {
    let registry = shared.state().registry.clone();
    if !registry.has_group_version(group, version) {
        return error_resp(ApiError::page_not_found());
    }
    let unknown = || {
        if group.is_empty() {
            error_resp(ApiError::resource_not_found())
        } else {
            error_resp(ApiError::page_not_found())
        }
    };
    let (namespace, rest) = match segs {
        ["namespaces", ns, plural, rest @ ..]
            if registry
                .get(group, version, plural)
                .is_some_and(|t| t.namespaced) =>
        {
            (
                Some(ns.to_string()),
                std::iter::once(*plural)
                    .chain(rest.iter().copied())
                    .collect::<Vec<_>>(),
            )
        }
        _ => (None, segs.to_vec()),
    };
    let Some(plural) = rest.first() else {
        return unknown();
    };
    let Some(rt) = registry.get(group, version, plural) else {
        return unknown();
    };
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3
        || (rt.namespaced && namespace.is_none() && name.is_some())
        || (!rt.namespaced && namespace.is_some())
        || subresource
            .as_deref()
            .is_some_and(|s| s != "status" || !rt.status_subresource)
    {
        return error_resp(ApiError::resource_not_found());
    }
    let warning = rt.deprecation_warning.clone();
    let target = Target {
        rt,
        namespace,
        name,
        subresource,
    };
    let mut resp = handlers::dispatch(shared, req, target);
    if let Some(w) = warning {
        add_warnings(&mut resp, &[w]);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_kubectl_and_kube_send() {
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Output::Table("v1")
        );
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
            Output::Table("v1beta1")
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Output::Metadata("v1")
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Output::Json
        );
        assert_eq!(negotiate(None), Output::Json);
    }
}
