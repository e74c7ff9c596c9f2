//! Waiting for the operator: poll a check until it passes or a deadline passes. Never a fixed
//! long sleep.

use std::future::Future;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Ok`, and returns its value; panics with the last error after
/// `timeout`, saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_every(what, timeout, EVERY, check).await
}

/// [`eventually`], polling every `every`: for loops that wait hundreds of times, where 100 ms
/// of polling slack per wait adds up.
pub async fn eventually_every<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() >= timeout {
                    panic!("timed out after {timeout:?} waiting for {what}: {last}");
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// `Ok(())` when `cond` holds, else `Err` with the message: for the checks of [`eventually`].
pub fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}
