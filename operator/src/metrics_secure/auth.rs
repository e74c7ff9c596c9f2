//! Who may read `/metrics`: the bearer token must be authenticated by the API server
//! (`authentication.k8s.io/v1` TokenReview) and the user it names authorized for the request's
//! verb on its path (`authorization.k8s.io/v1` SubjectAccessReview with `nonResourceAttributes`),
//! as controller-runtime's `filters.WithAuthenticationAndAuthorization` does. Decisions are cached
//! briefly (`cache.rs`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flux_reporter_report::source::error_chain;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::cache::{Cache, CacheConfig, Key};

/// What the API server said about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and authorized.
    Allowed { user: String },
    /// The TokenReview did not authenticate the token (`status.error` says why).
    Unauthenticated { why: String },
    /// Authenticated, but the SubjectAccessReview did not allow the request.
    Forbidden { user: String, reason: String },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// A review the API server did not answer with a decision.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("cannot create a TokenReview (authentication.k8s.io/v1)")]
    TokenReview(#[source] kube::Error),
    #[error("cannot create a SubjectAccessReview (authorization.k8s.io/v1) for {user}")]
    SubjectAccessReview {
        user: String,
        #[source]
        source: kube::Error,
    },
}

impl ReviewError {
    fn kube(&self) -> &kube::Error {
        match self {
            ReviewError::TokenReview(e) => e,
            ReviewError::SubjectAccessReview { source, .. } => source,
        }
    }

    /// The API server refused the review itself: the operator lacks `create` on the review kind.
    pub fn is_forbidden(&self) -> bool {
        matches!(self.kube(), kube::Error::Api(s) if s.code == 403)
    }
}

/// Reviews requests with the API server, through the cache.
pub struct Authorizer {
    client: kube::Client,
    cache: Mutex<Cache>,
}

impl Authorizer {
    pub fn new(client: kube::Client, cache: CacheConfig) -> Authorizer {
        Authorizer {
            client,
            cache: Mutex::new(Cache::new(cache)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The decision for a bearer token asking `verb` on `path`: from the cache, else from a
    /// TokenReview and (when authenticated) a SubjectAccessReview. Errors are not cached.
    pub async fn decide(
        &self,
        token: &str,
        verb: &str,
        path: &str,
    ) -> Result<Decision, ReviewError> {
        let key = Key::new(token, verb, path);
        if let Some(decision) = self.cache().get(&key, Instant::now()) {
            return Ok(decision);
        }
        let decision = self.review(token, verb, path).await?;
        self.cache().insert(key, decision.clone(), Instant::now());
        Ok(decision)
    }

    async fn review(&self, token: &str, verb: &str, path: &str) -> Result<Decision, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                // None: the API server's own audiences, those of a ServiceAccount token.
                audiences: None,
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(ReviewError::TokenReview)?;
        let status = reviewed.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        if status.authenticated != Some(true) || username.is_empty() {
            return Ok(Decision::Unauthenticated {
                why: status
                    .error
                    .unwrap_or_else(|| "the token was not authenticated".into()),
            });
        }
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(username.clone()),
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some(verb.to_string()),
                }),
                resource_attributes: None,
            },
            ..Default::default()
        };
        let answered = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
            .map_err(|source| ReviewError::SubjectAccessReview {
                user: username.clone(),
                source,
            })?;
        let status = answered.status.unwrap_or_default();
        Ok(if status.allowed {
            Decision::Allowed { user: username }
        } else {
            Decision::Forbidden {
                user: username,
                reason: status.reason.unwrap_or_default(),
            }
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn plain(code: StatusCode, text: String) -> Response {
    let mut response = (code, text).into_response();
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// The axum middleware: 401 without a token or with one the API server does not authenticate,
/// 403 when the user may not `get` the path, 500 when the operator may not create the reviews
/// (its RBAC), 503 when the API server did not answer; otherwise the request goes through.
pub async fn require_review(
    State(authorizer): State<Arc<Authorizer>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return plain(StatusCode::UNAUTHORIZED, "Unauthorized\n".into());
    };
    // As the API server names verbs of non-resource requests: the lower-case HTTP method.
    let verb = request.method().as_str().to_ascii_lowercase();
    let path = request.uri().path().to_string();
    match authorizer.decide(token, &verb, &path).await {
        Ok(Decision::Allowed { .. }) => next.run(request).await,
        Ok(Decision::Unauthenticated { why }) => {
            tracing::debug!(%path, %why, "metrics request not authenticated");
            plain(StatusCode::UNAUTHORIZED, "Unauthorized\n".into())
        }
        Ok(Decision::Forbidden { user, reason }) => {
            tracing::debug!(%path, %user, %reason, "metrics request not authorized");
            plain(
                StatusCode::FORBIDDEN,
                format!("Authorization denied for user {user} ({verb} {path})\n"),
            )
        }
        Err(e) if e.is_forbidden() => {
            tracing::error!(
                error = %error_chain(&e),
                "cannot review a metrics request: the operator's ServiceAccount may not create \
                 tokenreviews and subjectaccessreviews (ClusterRole flux-reporter-metrics-auth \
                 of config/metrics-secure)"
            );
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Authorization error: the operator may not review tokens\n".into(),
            )
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "cannot review a metrics request");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "Authorization error: the Kubernetes API server did not answer the review\n".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&headers("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
