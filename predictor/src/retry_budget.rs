//! A retry budget: retries may add at most a share of the recent requests (plus a small
//! floor per second for quiet upstreams), so that when every backend is failing, retries
//! cannot multiply the outage. Finagle's and linkerd's budgets work the same way.
//!
//! Counts are kept per second in a ring of ten atomics buckets; recording a request is one
//! increment, asking for a retry sums the ring (ten loads). No lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds the budget looks back.
pub const WINDOW_SECS: u64 = 10;

/// An upstream's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries allowed per request, in thousandths.
    ratio_milli: u64,
    /// Retries always allowed per second.
    min_per_second: u64,
    buckets: [Bucket; WINDOW_SECS as usize],
}

#[derive(Debug)]
struct Bucket {
    /// The second (`now / 1 s`) the counts belong to.
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            second: AtomicU64::new(u64::MAX),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }
}

impl RetryBudget {
    /// A budget of `ratio` retries per request over the window, plus `min_per_second`.
    pub fn new(ratio: f64, min_per_second: u32) -> RetryBudget {
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        RetryBudget {
            ratio_milli: (ratio * 1000.0).round() as u64,
            min_per_second: u64::from(min_per_second),
            buckets: Default::default(),
        }
    }

    /// The bucket of the second `now_nanos` falls in, emptied if it held an older second.
    fn bucket(&self, now_nanos: u64) -> &Bucket {
        let second = now_nanos / 1_000_000_000;
        let b = &self.buckets[(second % WINDOW_SECS) as usize];
        let held = b.second.load(Ordering::Relaxed);
        if held != second
            && b.second
                .compare_exchange(held, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            b.requests.store(0, Ordering::Relaxed);
            b.retries.store(0, Ordering::Relaxed);
        }
        b
    }

    /// Counts a request's first attempt.
    pub fn record_request(&self, now_nanos: u64) {
        self.bucket(now_nanos)
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if there is one left; false means "do not retry".
    pub fn try_retry(&self, now_nanos: u64) -> bool {
        let second = now_nanos / 1_000_000_000;
        let current = self.bucket(now_nanos);
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in &self.buckets {
            let s = b.second.load(Ordering::Relaxed);
            if s <= second && second - s < WINDOW_SECS {
                requests += b.requests.load(Ordering::Relaxed);
                retries += b.retries.load(Ordering::Relaxed);
            }
        }
        let allowed_milli = requests * self.ratio_milli + self.min_per_second * WINDOW_SECS * 1000;
        if retries * 1000 >= allowed_milli {
            return false;
        }
        current.retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn retries_are_held_to_the_ratio_plus_the_floor() {
        let budget = RetryBudget::new(0.2, 1);
        for i in 0..1000 {
            budget.record_request(5 * SEC + i);
        }
        // 0.2 × 1000 + 1 × 10 s.
        let granted = (0..1000)
            .filter(|_| budget.try_retry(5 * SEC + 999))
            .count();
        assert_eq!(granted, 210);
    }

    #[test]
    fn the_window_moves_on() {
        let budget = RetryBudget::new(0.0, 1);
        let granted = (0..100).filter(|_| budget.try_retry(SEC)).count();
        assert_eq!(granted, 10);
        assert!(!budget.try_retry(5 * SEC));
        // Ten seconds later the old retries are forgotten.
        let granted = (0..100).filter(|_| budget.try_retry(11 * SEC)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn a_zero_budget_never_retries() {
        let budget = RetryBudget::new(0.0, 0);
        budget.record_request(0);
        assert!(!budget.try_retry(0));
        let nan = RetryBudget::new(f64::NAN, 0);
        nan.record_request(0);
        assert!(!nan.try_retry(0));
    }
}
