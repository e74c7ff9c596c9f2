//! What went through the proxy: requests, requests in flight (and the most seen at once), and
//! the time until their answers' headers. Tests read it to see that a client's requests
//! overlapped (never to time anything).
//!
//! Watches are left out: they stay open for minutes and are not work done per request. The
//! real kube-apiserver has counterparts on its `/metrics` (`apiserver_request_total`,
//! `apiserver_current_inflight_requests`), for all its clients together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Serving {
    requests: AtomicU64,
    gets: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    busy_nanos: AtomicU64,
}

/// A snapshot of what went through the proxy (watches left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServingStats {
    /// Requests received, whatever their answer.
    pub requests: u64,
    /// Of which `GET`s (gets and lists).
    pub gets: u64,
    /// Requests being handled right now.
    pub in_flight: u64,
    /// The most requests handled at the same time since the start or the last
    /// [`crate::Proxy::reset_peak_in_flight`].
    pub peak_in_flight: u64,
    /// The time summed over requests, from reading the request to the answer's headers (an
    /// injected latency included), in nanoseconds. Requests in flight at the same time each
    /// count their own time.
    pub busy_nanos: u64,
}

/// Counts one request while it is handled; dropping it (answered, or abandoned by the client)
/// ends it.
pub(crate) struct InFlight<'a> {
    serving: &'a Serving,
    started: Instant,
}

impl Serving {
    pub(crate) fn start(&self, method: &str) -> InFlight<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if method == "GET" {
            self.gets.fetch_add(1, Ordering::Relaxed);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight {
            serving: self,
            started: Instant::now(),
        }
    }

    pub(crate) fn stats(&self) -> ServingStats {
        ServingStats {
            requests: self.requests.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            peak_in_flight: self.peak_in_flight.load(Ordering::SeqCst),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset_peak(&self) {
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.serving.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.serving.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
