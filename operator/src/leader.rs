//! Leader election with a `coordination.k8s.io/v1` Lease, following client-go's `leaderelection`
//! package: optimistic writes with the resourceVersion we read, expiry judged by when we saw the
//! record change (never by the remote clock), and release on shutdown.
//! Why not the kube-lease-manager crate: docs/design.md, "Leader election", and the tests in
//! `leader/vs_kube_lease_manager.rs`.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;

/// The Lease the operator's replicas compete for.
pub const DEFAULT_LEASE_NAME: &str = "flux-reporter-leader";

/// client-go's `JitterFactor`: an acquire attempt waits `retry_period * (1 + 1.2 * rand)`.
const JITTER_FACTOR: f64 = 1.2;

/// How to compete for the Lease. The defaults are client-go's (15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per process: see [`default_identity`].
    pub identity: String,
    /// How long others wait, from when they see the last renewal, before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failed renewal before it steps down.
    pub renew_deadline: Duration,
    /// The pause between attempts, and between renewals.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// The default Lease name and durations, in this namespace, as this identity.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderConfig {
            namespace: namespace.into(),
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// `leaseDurationSeconds`: whole seconds, rounded up, at least 1 (the API rejects 0).
    fn lease_duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// `POD_NAME` if set, else the hostname, then `_` and four random hex digits, so a restarted pod
/// with the same name is a new holder (as in `flux-reporter-7d9f8c6b5-x2x4z_4b1d`).
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "flux-reporter".to_string());
    format!("{base}_{:04x}", fastrand::u16(..))
}

/// The Lease as we last read or wrote it, and when its spec last changed in our eyes.
struct Observed {
    lease: Lease,
    at: Instant,
}

/// What one acquire-or-renew attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Our write went through: we hold the Lease.
    Holding,
    /// Another identity holds an unexpired Lease.
    HeldByOther,
    /// A read or write failed (error, timeout, or a 409 from a racing writer).
    Failed,
}

enum Renewal {
    Renewed,
    Lost(&'static str),
    Shutdown,
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    observed: Option<Observed>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderConfig) -> Self {
        if !(config.lease_duration > config.renew_deadline
            && config.renew_deadline.as_secs_f64()
                > config.retry_period.as_secs_f64() * JITTER_FACTOR)
        {
            tracing::warn!(
                lease_duration = ?config.lease_duration,
                renew_deadline = ?config.renew_deadline,
                retry_period = ?config.retry_period,
                "leader election wants lease_duration > renew_deadline > 1.2 * retry_period; two leaders may overlap"
            );
        }
        let api = Api::namespaced(client, &config.namespace);
        let (leading, _) = watch::channel(false);
        LeaderElector {
            api,
            config,
            leading,
            observed: None,
        }
    }

    /// `true` while we hold the Lease. The last value after [`LeaderElector::run`] returns is
    /// `false`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Competes for the Lease, and renews it while leading, until `shutdown` resolves; then, if
    /// the Lease is ours, releases it so another replica takes over at once. An API call in flight
    /// when `shutdown` resolves is finished first (each is bounded by `renew_deadline`), so we
    /// never leave behind a write we do not know the outcome of.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        'elect: loop {
            // Acquire: an attempt at once, then one every jittered retry period.
            loop {
                let deadline = Instant::now() + self.config.renew_deadline;
                if self.try_acquire_or_renew(deadline).await == Attempt::Holding {
                    break;
                }
                if pause(self.jittered_retry_period(), shutdown.as_mut()).await {
                    break 'elect;
                }
            }
            if self.set_leading(true) {
                tracing::info!(identity = %self.config.identity, lease = %self.config.lease_name, "became leader");
            }
            // Renew every retry period until a renewal fails for renew_deadline.
            loop {
                if pause(self.config.retry_period, shutdown.as_mut()).await {
                    break 'elect;
                }
                match self.renew(shutdown.as_mut()).await {
                    Renewal::Renewed => {}
                    Renewal::Lost(why) => {
                        self.set_leading(false);
                        tracing::info!(
                            identity = %self.config.identity,
                            lease = %self.config.lease_name,
                            reason = why,
                            "lost leadership"
                        );
                        if pause(self.jittered_retry_period(), shutdown.as_mut()).await {
                            break 'elect;
                        }
                        continue 'elect;
                    }
                    Renewal::Shutdown => break 'elect,
                }
            }
        }
        self.release().await;
    }

    /// Retries until a renewal succeeds or `renew_deadline` passes. Stops at once when another
    /// identity holds the Lease: it is no longer ours whatever happens next.
    async fn renew(
        &mut self,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Renewal {
        const LATE: &str = "could not renew the lease within renew_deadline";
        let deadline = Instant::now() + self.config.renew_deadline;
        loop {
            match self.try_acquire_or_renew(deadline).await {
                Attempt::Holding => return Renewal::Renewed,
                Attempt::HeldByOther => return Renewal::Lost("another identity holds the lease"),
                Attempt::Failed => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Renewal::Lost(LATE);
            }
            if pause(self.config.retry_period.min(left), shutdown.as_mut()).await {
                return Renewal::Shutdown;
            }
            if Instant::now() >= deadline {
                return Renewal::Lost(LATE);
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`, every API call bounded by `deadline`.
    async fn try_acquire_or_renew(&mut self, deadline: Instant) -> Attempt {
        // Fast path: the leader writes over the record it wrote last, without a read first.
        if let Some(mut lease) = self.our_valid_lease() {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now());
            match self.replace(&lease, deadline).await {
                Ok(written) => {
                    self.observe_write(written);
                    return Attempt::Holding;
                }
                Err(err) => tracing::debug!(
                    identity = %self.config.identity,
                    error = %err,
                    "renewing the lease failed; reading it again"
                ),
            }
        }
        let current = match self.read(deadline).await {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(identity = %self.config.identity, error = %err, "reading the lease failed");
                return Attempt::Failed;
            }
        };
        self.write(current, deadline).await
    }

    /// GETs the Lease and records the observation (its time only if the spec changed).
    async fn read(&mut self, deadline: Instant) -> Result<Option<Lease>, CallError> {
        let current = bounded(deadline, self.api.get_opt(&self.config.lease_name)).await?;
        if let Some(lease) = &current {
            self.observe_read(lease.clone());
        }
        Ok(current)
    }

    /// Creates the Lease if there is none, else takes it over (or renews it) with a PUT carrying
    /// the resourceVersion just read, unless another identity holds it unexpired.
    async fn write(&mut self, current: Option<Lease>, deadline: Instant) -> Attempt {
        let now = now();
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let created = bounded(deadline, self.api.create(&PostParams::default(), &lease)).await;
            return match created {
                Ok(created) => {
                    self.observe_write(created);
                    Attempt::Holding
                }
                Err(err) => {
                    // A 409 AlreadyExists is a race lost to another candidate, not a fault.
                    err.log(&self.config.identity, "creating the lease failed");
                    Attempt::Failed
                }
            };
        };
        let old = lease.spec.clone().unwrap_or_default();
        let holder = old.holder_identity.as_deref().unwrap_or_default();
        let ours = holder == self.config.identity;
        if !holder.is_empty() && !ours && self.observed_is_valid() {
            return Attempt::HeldByOther;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: if ours {
                old.acquire_time.clone().or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: if ours {
                old.lease_transitions
            } else {
                Some(old.lease_transitions.unwrap_or(0) + 1)
            },
            ..old
        });
        match self.replace(&lease, deadline).await {
            Ok(written) => {
                self.observe_write(written);
                Attempt::Holding
            }
            Err(err) => {
                // A 409 Conflict: someone wrote it since we read it.
                err.log(&self.config.identity, "writing the lease failed");
                Attempt::Failed
            }
        }
    }

    /// If the Lease is ours, hands it back: no holder, `leaseDurationSeconds` 1, so the next
    /// candidate that reads it takes over at once. Errors are logged, not returned.
    async fn release(&mut self) {
        let was_leading = self.set_leading(false);
        let Some(mut lease) = self.our_lease() else {
            if was_leading {
                tracing::info!(identity = %self.config.identity, lease = %self.config.lease_name, "stopped leading");
            }
            return;
        };
        // Up to two tries, the second after a 409 if a fresh read shows the Lease still ours; all
        // within one renew_deadline, so shutdown is not held up for long.
        let deadline = Instant::now() + self.config.renew_deadline;
        for _ in 0..2 {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
            let err = match self.replace(&lease, deadline).await {
                Ok(written) => {
                    self.observe_write(written);
                    tracing::info!(
                        identity = %self.config.identity,
                        lease = %self.config.lease_name,
                        "released the lease"
                    );
                    return;
                }
                Err(err) => err,
            };
            tracing::warn!(identity = %self.config.identity, error = %err, "releasing the lease failed");
            if !err.conflict {
                return;
            }
            match self.read(deadline).await {
                Ok(Some(_)) => match self.our_lease() {
                    Some(fresh) => lease = fresh,
                    None => return,
                },
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(identity = %self.config.identity, error = %err, "reading the lease to release it failed");
                    return;
                }
            }
        }
    }

    async fn replace(&self, lease: &Lease, deadline: Instant) -> Result<Lease, CallError> {
        let pp = PostParams::default();
        bounded(
            deadline,
            self.api.replace(&self.config.lease_name, &pp, lease),
        )
        .await
    }

    /// A read: the observation time moves only when the record changed (client-go compares the
    /// whole record; a new resourceVersion alone is not a renewal).
    fn observe_read(&mut self, lease: Lease) {
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.lease.spec != lease.spec);
        let at = match &self.observed {
            Some(o) if !changed => o.at,
            _ => Instant::now(),
        };
        self.observed = Some(Observed { lease, at });
    }

    fn observe_write(&mut self, lease: Lease) {
        self.observed = Some(Observed {
            lease,
            at: Instant::now(),
        });
    }

    /// The last observed Lease, if its holder is us.
    fn our_lease(&self) -> Option<Lease> {
        let o = self.observed.as_ref()?;
        let holder = o.lease.spec.as_ref()?.holder_identity.as_deref()?;
        (holder == self.config.identity).then(|| o.lease.clone())
    }

    /// The last observed Lease, if it is ours and has not expired by our clock.
    fn our_valid_lease(&self) -> Option<Lease> {
        self.our_lease().filter(|_| self.observed_is_valid())
    }

    /// client-go's `isLeaseValid`: observed time + the record's `leaseDurationSeconds` > now.
    fn observed_is_valid(&self) -> bool {
        let Some(o) = &self.observed else {
            return false;
        };
        let secs = o
            .lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(0);
        let secs = u64::try_from(secs).unwrap_or(0);
        o.at + Duration::from_secs(secs) > Instant::now()
    }

    fn jittered_retry_period(&self) -> Duration {
        self.config
            .retry_period
            .mul_f64(1.0 + JITTER_FACTOR * fastrand::f64())
    }

    /// Publishes a change of leadership (and only a change); `true` if it was one.
    fn set_leading(&self, leading: bool) -> bool {
        self.leading
            .send_if_modified(|v| std::mem::replace(v, leading) != leading)
    }
}

/// A failed API call; `conflict` for a 409 (Conflict or AlreadyExists): a race lost.
#[derive(Debug)]
struct CallError {
    conflict: bool,
    message: String,
}

impl CallError {
    /// Lost races are expected and logged at debug; anything else at warn.
    fn log(&self, identity: &str, what: &str) {
        if self.conflict {
            tracing::debug!(identity, error = %self, "{what}");
        } else {
            tracing::warn!(identity, error = %self, "{what}");
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs an API call, giving up at `deadline`.
async fn bounded<T>(
    deadline: Instant,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<T, CallError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(err)) => Err(CallError {
            conflict: matches!(&err, kube::Error::Api(s) if s.code == 409),
            message: err.to_string(),
        }),
        Err(_) => Err(CallError {
            conflict: false,
            message: "timed out".to_string(),
        }),
    }
}

/// Sleeps, or returns `true` as soon as `shutdown` resolves.
async fn pause(d: Duration, shutdown: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        () = shutdown => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// Now, cut to whole microseconds: a MicroTime (`2026-11-22T05:25:24.459934Z`) holds no more,
/// and the echo of our write then equals what we sent.
fn now() -> MicroTime {
    let now = Timestamp::now();
    MicroTime(Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now))
}

#[cfg(test)]
mod vs_kube_lease_manager;

#[cfg(test)]
mod tests;
