//! Per-backend live counters: the only per-request shared state on the request path.
//!
//! A `Live` is keyed by a backend's stable identity (upstream name + address) and is carried
//! over from one runtime table to the next on reload, so counters and in-flight figures survive
//! a config change.

use std::sync::atomic::{AtomicU64, Ordering};

/// Status classes counted per backend: 1xx..5xx, plus requests that got no response.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Lock-free counters for one backend.
#[derive(Debug, Default)]
pub struct Live {
    in_flight: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    connect_failures: AtomicU64,
    by_class: [AtomicU64; 6],
}

/// A snapshot of a backend's counters, for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveFigures {
    /// Requests (or TCP sessions) currently being served.
    pub in_flight: u64,
    /// Requests (or TCP sessions) completed.
    pub requests: u64,
    /// Completed requests that ended in an error (5xx from us or a transport failure).
    pub errors: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Completed requests by status class, in `STATUS_CLASSES` order.
    pub by_class: [u64; 6],
}

impl Live {
    /// Marks the start of a request; the returned guard ends it when dropped.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { live: self }
    }

    /// Takes an in-flight slot without a guard; pair with exactly one `release`. For state
    /// machines (a proxy's request context) that cannot hold a borrowing guard.
    pub fn acquire(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives back a slot taken with `acquire`.
    pub fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a completed request with its HTTP status (0 = no response) and error flag.
    pub fn record(&self, status: u16, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed connection attempt.
    pub fn record_connect_failure(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads all counters (each individually atomic; the set is not a transaction).
    pub fn figures(&self) -> LiveFigures {
        let mut by_class = [0; 6];
        for (out, c) in by_class.iter_mut().zip(&self.by_class) {
            *out = c.load(Ordering::Relaxed);
        }
        LiveFigures {
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            by_class,
        }
    }
}

/// Index into `STATUS_CLASSES` for an HTTP status (anything outside 100..600 is "none").
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// Holds one in-flight slot of a backend; releases it when dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    live: &'a Live,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_guard_counts_up_and_down() {
        let live = Live::default();
        let a = live.begin();
        let b = live.begin();
        assert_eq!(live.in_flight(), 2);
        drop(a);
        assert_eq!(live.in_flight(), 1);
        drop(b);
        assert_eq!(live.in_flight(), 0);
    }

    #[test]
    fn statuses_land_in_their_class() {
        let live = Live::default();
        live.record(200, false);
        live.record(204, false);
        live.record(502, true);
        live.record(0, true);
        let f = live.figures();
        assert_eq!(f.requests, 4);
        assert_eq!(f.errors, 2);
        assert_eq!(f.by_class, [0, 2, 0, 0, 1, 1]);
    }
}
