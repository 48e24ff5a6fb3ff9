//! Lock-free counters and latency histograms for listeners and upstreams.
//!
//! Like a backend's `Live`, these are keyed by a stable name and carried from one runtime
//! table to the next, so a reload does not reset what Prometheus has scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use augur_predictor::live::class_index;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le` labels).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative-on-export latency histogram with fixed buckets; recording is one atomic add.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Number of observations.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// `(upper bound, cumulative count)` per bucket, the last bound `f64::INFINITY`, as a
    /// Prometheus histogram exposes them.
    pub fn buckets(&self) -> [(f64, u64); LATENCY_BUCKETS.len() + 1] {
        let mut cumulative = 0;
        std::array::from_fn(|i| {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            (
                LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                cumulative,
            )
        })
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Requests (HTTP) or sessions (TCP) completed, by status class (`STATUS_CLASSES`).
    pub by_class: [AtomicU64; 6],
    /// HTTP requests that matched no route (answered 404).
    pub unrouted: AtomicU64,
    /// Requests refused (403) and TCP sessions closed because a reload withdrew their
    /// source's admission while the connection was open.
    pub revoked: AtomicU64,
}

impl ListenerStats {
    /// Counts a completed request by its status (0 = no response).
    pub fn record(&self, status: u16) {
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one upstream.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Request latency, first byte in to last byte out.
    pub latency: LatencyHistogram,
    /// Connect attempts retried on another backend.
    pub retries: AtomicU64,
    /// Requests that found no backend to try (all tried or none configured).
    pub no_backend: AtomicU64,
    /// Retries not made because the retry budget was spent.
    pub retries_over_budget: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_exports_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(20));
        assert_eq!(h.count(), 3);
        let buckets = h.buckets();
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[3], (0.005, 2));
        assert_eq!(buckets[13], (10.0, 2));
        assert_eq!(buckets[14], (f64::INFINITY, 3));
        assert!((h.sum_seconds() - 20.0033).abs() < 1e-9);
    }
}
