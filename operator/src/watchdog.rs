//! The liveness watchdog of the report loop. `/healthz` fails once no report
//! run has reached the API server for longer than the stall limit, so that
//! Kubernetes restarts a pod whose loop is stuck or whose connection to the
//! API server is dead (a half-open load balancer path, a wedged client), as
//! it would restart any other stuck controller.
//!
//! The limit is three report intervals plus the report timeout: a healthy
//! loop makes progress at least once per interval plus one run, so three
//! missed intervals are no accident. While reporting is disabled the
//! watchdog is disarmed: an idle loop is not a stuck one.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use flux_reporter_report::duration::format_run;

/// How many intervals without progress make the loop stuck.
pub const STALL_INTERVALS: u32 = 3;

#[derive(Debug)]
pub struct Watchdog {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last_progress: Instant,
    /// `None` while disarmed.
    limit: Option<Limit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    interval: Duration,
    report_timeout: Duration,
}

impl Limit {
    fn total(self) -> Duration {
        self.interval * STALL_INTERVALS + self.report_timeout
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog::new()
    }
}

impl Watchdog {
    /// Disarmed, with the clock starting now.
    pub fn new() -> Self {
        Watchdog {
            state: Mutex::new(State {
                last_progress: Instant::now(),
                limit: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Expect progress every `interval` (runs take up to `report_timeout`).
    /// Arming a disarmed watchdog restarts its clock.
    pub fn arm(&self, interval: Duration, report_timeout: Duration) {
        let mut s = self.lock();
        if s.limit.is_none() {
            s.last_progress = Instant::now();
        }
        s.limit = Some(Limit {
            interval,
            report_timeout,
        });
    }

    /// Expect nothing (reporting disabled).
    pub fn disarm(&self) {
        self.lock().limit = None;
    }

    /// A report run reached the API server.
    pub fn progress(&self) {
        self.lock().last_progress = Instant::now();
    }

    /// `Err` with the reason once the loop has made no progress for longer
    /// than the limit.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), String> {
        let s = self.lock();
        let Some(limit) = s.limit else {
            return Ok(());
        };
        let quiet = now.saturating_duration_since(s.last_progress);
        if quiet <= limit.total() {
            return Ok(());
        }
        Err(format!(
            "no report run has reached the Kubernetes API server for {} (limit {} = \
             {STALL_INTERVALS} x the {} interval + the {} report timeout)",
            format_run(quiet),
            format_run(limit.total()),
            format_run(limit.interval),
            format_run(limit.report_timeout),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);
    const TIMEOUT: Duration = Duration::from_secs(20);

    #[test]
    fn a_disarmed_watchdog_never_fails() {
        let w = Watchdog::new();
        assert_eq!(
            w.check_at(Instant::now() + Duration::from_secs(3600)),
            Ok(())
        );
    }

    #[test]
    fn no_progress_for_three_intervals_plus_the_report_timeout_fails() {
        let w = Watchdog::new();
        w.arm(INTERVAL, TIMEOUT);
        let start = Instant::now();
        assert_eq!(w.check_at(start + Duration::from_secs(49)), Ok(()));
        let err = w
            .check_at(start + Duration::from_secs(52))
            .expect_err("stalled");
        assert!(err.contains("limit 50s"), "{err}");
        assert!(
            err.contains("3 x the 10s interval + the 20s report timeout"),
            "{err}"
        );
    }

    #[test]
    fn progress_restarts_the_clock() {
        let w = Watchdog::new();
        w.arm(INTERVAL, TIMEOUT);
        w.progress();
        let after = Instant::now();
        assert_eq!(w.check_at(after + Duration::from_secs(49)), Ok(()));
        assert!(w.check_at(after + Duration::from_secs(51)).is_err());
    }

    #[test]
    fn disarming_pauses_and_rearming_restarts_the_clock() {
        let w = Watchdog::new();
        w.arm(INTERVAL, TIMEOUT);
        w.disarm();
        assert_eq!(
            w.check_at(Instant::now() + Duration::from_secs(3600)),
            Ok(())
        );
        w.arm(INTERVAL, TIMEOUT);
        let armed = Instant::now();
        assert_eq!(w.check_at(armed + Duration::from_secs(49)), Ok(()));
        // Re-arming an armed watchdog (every run does) keeps its clock.
        w.arm(INTERVAL, TIMEOUT);
        assert!(w.check_at(armed + Duration::from_secs(51)).is_err());
    }
}
