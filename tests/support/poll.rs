//! Waiting for something to become true: the one polling loop of the end-to-end tests.
//! Each wait names what it awaits and, when it gives up, the last value it saw, so that a
//! failure says what was wrong rather than only that time ran out.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How long `eventually` waits unless told otherwise.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Observes until `done` holds for what `observe` returns; `Err` carries the last value seen.
pub fn poll_until<T>(
    limit: Duration,
    mut observe: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T, T> {
    let deadline = Instant::now() + limit;
    loop {
        let seen = observe();
        if done(&seen) {
            return Ok(seen);
        }
        if Instant::now() >= deadline {
            return Err(seen);
        }
        // The pause between two looks, not a wait for anything: readiness is what `done` checks.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Observes until `done` holds (at most [`PATIENCE`]) and returns what was observed then;
/// panics naming `what` and the last value seen.
pub fn eventually<T: Debug>(
    what: &str,
    observe: impl FnMut() -> T,
    done: impl FnMut(&T) -> bool,
) -> T {
    eventually_within(PATIENCE, what, observe, done)
}

/// [`eventually`] with its own deadline.
pub fn eventually_within<T: Debug>(
    limit: Duration,
    what: &str,
    observe: impl FnMut() -> T,
    done: impl FnMut(&T) -> bool,
) -> T {
    poll_until(limit, observe, done).unwrap_or_else(|last| {
        panic!("timed out after {limit:?} waiting for {what}; last seen: {last:?}")
    })
}
