//! The Kubernetes client every command uses: a connect timeout and a request
//! timeout on every request, so a silent API server fails a request in
//! seconds, and a reachability probe that turns a server that does not answer
//! into one clear line for the one-shot commands.

use std::time::Duration;

use flux_reporter_report::duration::format_run;
use flux_reporter_report::source::{error_chain, is_timeout};

/// The time limits of every API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect and TLS handshake.
    pub connect: Duration,
    /// From sending a request to the end of its answer (and, on a watch, the
    /// longest silence between two reads).
    pub request: Duration,
}

/// A client and the server it talks to.
#[derive(Clone)]
pub struct ApiClient {
    pub client: kube::Client,
    /// The same server without kube's own retry of 429, 503 and 504
    /// (`Config::default_retry`), for the report's reads: the live source
    /// retries them itself (a few attempts, `Retry-After` honoured) and then
    /// names the status it got. Under kube's retry (15 attempts, backoff
    /// doubling from 5 ms) a throttled or unavailable kind is retried until
    /// the request timeout and fails as "no answer within …", after costing
    /// the whole timeout. Writes, events and watches keep kube's retry.
    pub reads: kube::Client,
    /// The server URL, for messages.
    pub server: String,
    pub timeouts: Timeouts,
}

/// Why a client could not be made or the server cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no cluster configured: set KUBECONFIG, run in a pod with a service account, or use --from FILE ({0})"
    )]
    NoCluster(String),
    #[error("cannot build a Kubernetes client for {server}: {cause}")]
    Build { server: String, cause: String },
    #[error(
        "the Kubernetes API server {server} did not answer within {waited} \
         (--connect-timeout {connect}, --request-timeout {request})"
    )]
    Silent {
        server: String,
        waited: String,
        connect: String,
        request: String,
    },
    #[error(
        "cannot reach the Kubernetes API server {server}: {cause} \
         (--connect-timeout {connect}, --request-timeout {request})"
    )]
    Unreachable {
        server: String,
        cause: String,
        connect: String,
        request: String,
    },
}

impl ApiClient {
    /// A client from `KUBECONFIG` or the in-cluster service account, with the
    /// timeouts on every request.
    pub async fn new(timeouts: Timeouts) -> Result<ApiClient, ClientError> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| ClientError::NoCluster(first_line(&e.to_string())))?;
        let server = config.cluster_url.to_string();
        config.connect_timeout = Some(timeouts.connect);
        config.read_timeout = Some(timeouts.request);
        config.write_timeout = Some(timeouts.request);
        // Count the read timeout from the request, not from when a pooled
        // connection went idle.
        config.reset_reader_on_write = true;
        let mut reads = config.clone();
        reads.default_retry = false;
        let build = |config: kube::Config| {
            kube::Client::try_from(config).map_err(|e| ClientError::Build {
                server: server.clone(),
                cause: error_chain(&e),
            })
        };
        Ok(ApiClient {
            client: build(config)?,
            reads: build(reads)?,
            server,
            timeouts,
        })
    }

    /// `GET /version`: Ok when the server answers anything at all (even an
    /// error status: then the requests that follow say what is wrong).
    pub async fn probe(&self) -> Result<(), ClientError> {
        let limit = self.timeouts.connect + self.timeouts.request;
        let started = std::time::Instant::now();
        match tokio::time::timeout(limit, self.client.apiserver_version()).await {
            Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => Ok(()),
            Ok(Err(e)) if is_timeout(&e) => Err(self.silent(started.elapsed())),
            Ok(Err(e)) => Err(ClientError::Unreachable {
                server: self.server.clone(),
                cause: error_chain(&e),
                connect: format_run(self.timeouts.connect),
                request: format_run(self.timeouts.request),
            }),
            Err(_) => Err(self.silent(limit)),
        }
    }

    fn silent(&self, waited: Duration) -> ClientError {
        ClientError::Silent {
            server: self.server.clone(),
            waited: format_run(waited),
            connect: format_run(self.timeouts.connect),
            request: format_run(self.timeouts.request),
        }
    }

    /// The server-side timeout of watches: below the request timeout, so that
    /// a quiet but healthy watch is closed by the server (and reopened) before
    /// the client's read timeout takes it for a dead one.
    pub fn watch_timeout_secs(&self) -> u32 {
        let secs = self
            .timeouts
            .request
            .as_secs()
            .saturating_sub(5)
            .clamp(1, 290);
        u32::try_from(secs).unwrap_or(290)
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silent_message_names_the_server_and_both_timeouts() {
        let e = ClientError::Silent {
            server: "https://127.0.0.1:18099/".into(),
            waited: "40s".into(),
            connect: "10s".into(),
            request: "30s".into(),
        };
        assert_eq!(
            e.to_string(),
            "the Kubernetes API server https://127.0.0.1:18099/ did not answer within 40s \
             (--connect-timeout 10s, --request-timeout 30s)"
        );
    }

    #[test]
    fn io_timeouts_anywhere_in_the_chain_are_timeouts() {
        use flux_reporter_report::source::is_timeout;
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline",
        ));
        assert!(is_timeout(&e));
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(!is_timeout(&e));
    }
}
