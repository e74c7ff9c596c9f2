//! The HTTP side of forwarding: one POST per attempt, the retry policy, and why a delivery
//! failed ([`NotifyError`], with the hyper or I/O error kept as its source).

use std::time::Duration;

use flux_reporter_report::source::error_chain;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, sleep, timeout_at};

use super::{FluxEvent, MAX_BACKOFF, NotifierConfig};

/// Why an event could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid address {address:?}")]
    InvalidAddress {
        address: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("unsupported address {0:?}: want http://host[:port]/path")]
    UnsupportedAddress(String),
    #[error("cannot encode the event")]
    Encode(#[source] serde_json::Error),
    #[error("cannot build the request")]
    Request(#[source] http::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connection refused or reset, DNS: hyper's error and its causes.
    #[error(transparent)]
    Transport(hyper_util::client::legacy::Error),
    #[error("notification-controller answered {0}")]
    Status(StatusCode),
}

/// The receiver's URL: `http://host[:port]/path` only (notification-controller serves plain HTTP
/// in the cluster).
pub(super) fn parse_address(address: &str) -> Result<Uri, NotifyError> {
    let uri = address
        .parse::<Uri>()
        .map_err(|source| NotifyError::InvalidAddress {
            address: address.to_string(),
            source,
        })?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        _ => Err(NotifyError::UnsupportedAddress(address.to_string())),
    }
}

/// How one event's delivery ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Delivered {
        attempts: u32,
    },
    /// A status that retrying cannot change (4xx, 3xx, 501); 429 means "duplicate".
    Rejected {
        status: StatusCode,
        attempts: u32,
    },
    /// Every attempt failed (connection error, 5xx), one timed out, or the address is unusable.
    GaveUp {
        attempts: u32,
        error: NotifyError,
    },
}

impl Outcome {
    pub(super) fn log(&self, event: &FluxEvent, address: &str) {
        match self {
            Outcome::Delivered { attempts } => {
                tracing::debug!(reason = %event.reason, attempts, "event forwarded to notification-controller");
            }
            Outcome::Rejected { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                tracing::debug!(reason = %event.reason, "notification-controller already has this event (429)");
            }
            Outcome::Rejected { status, attempts } => tracing::warn!(
                reason = %event.reason,
                %address,
                attempts,
                error = %NotifyError::Status(*status),
                "cannot forward event to notification-controller"
            ),
            Outcome::GaveUp { attempts, error } => tracing::warn!(
                reason = %event.reason,
                %address,
                attempts,
                error = %error_chain(error),
                "cannot forward event to notification-controller"
            ),
        }
    }
}

/// The HTTP side: one client (connection pool) for the worker's lifetime.
pub(super) struct Poster {
    pub(super) address: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

impl Poster {
    pub(super) fn new(config: &NotifierConfig) -> Poster {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Poster {
            address: config.address.clone(),
            client,
            timeout: config.timeout,
            attempts: config.attempts.max(1),
            backoff: config.backoff,
        }
    }

    pub(super) async fn deliver(&self, event: &FluxEvent) -> Outcome {
        // Parsed per event (cheap) so that the error is a fresh typed value each time.
        let uri = match parse_address(&self.address) {
            Ok(uri) => uri,
            Err(error) => return Outcome::GaveUp { attempts: 0, error },
        };
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                return Outcome::GaveUp {
                    attempts: 0,
                    error: NotifyError::Encode(e),
                };
            }
        };
        let mut backoff = self.backoff;
        let mut attempt = 1;
        loop {
            let error = match self.post_once(&uri, body.clone()).await {
                Ok(status) if status.is_success() => {
                    return Outcome::Delivered { attempts: attempt };
                }
                Ok(status) if retryable(status) => NotifyError::Status(status),
                Ok(status) => {
                    return Outcome::Rejected {
                        status,
                        attempts: attempt,
                    };
                }
                // The request went out and the receiver may have it: another POST could
                // notify twice for one event.
                Err(error @ NotifyError::Timeout(_)) => {
                    return Outcome::GaveUp {
                        attempts: attempt,
                        error,
                    };
                }
                Err(e) => e,
            };
            if attempt >= self.attempts {
                return Outcome::GaveUp {
                    attempts: attempt,
                    error,
                };
            }
            tracing::debug!(reason = %event.reason, attempt, error = %error_chain(&error), "forwarding failed; retrying in {backoff:?}");
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// One POST: the status, or why there is none (connection error, timeout).
    async fn post_once(&self, uri: &Uri, body: Bytes) -> Result<StatusCode, NotifyError> {
        let request = http::Request::post(uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("flux-reporter/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(NotifyError::Request)?;
        let deadline = Instant::now() + self.timeout;
        let response = match timeout_at(deadline, self.client.request(request)).await {
            Err(_) => return Err(NotifyError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(NotifyError::Transport(e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        // Read the (small) body so the connection can be reused; its content does not matter.
        let _ = timeout_at(deadline, response.into_body().collect()).await;
        Ok(status)
    }
}

/// Connection errors are retried by the caller (a timeout is not: see `deliver`); of the
/// statuses, the 5xx ones, except 501 (as go-retryablehttp, which Flux's recorder uses).
pub(super) fn retryable(status: StatusCode) -> bool {
    status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
}
