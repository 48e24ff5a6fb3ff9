//! Latency percentiles (a log-linear histogram in the manner of HdrHistogram, written here)
//! and bootstrap confidence intervals over seeds.

use crate::rng::SimRng;

/// Sub-buckets per power of two: values are kept to within 1/1024 (0.1%).
const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets up to 2^42 µs (far beyond any client timeout).
const BUCKETS: usize = ((42 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of latencies in microseconds, exact below 2048 µs and within 0.1% above.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

/// Bucket of a value: exact below 2·SUB, then SUB buckets per power of two.
fn bucket(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - SUB_BITS;
    (shift as usize * SUB as usize + (v >> shift) as usize).min(BUCKETS - 1)
}

/// Lowest value and width of a bucket.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, 1);
    }
    let shift = i / SUB - 1;
    let mantissa = i - shift * SUB;
    (mantissa << shift, 1 << shift)
}

impl Histogram {
    /// Records one latency given in nanoseconds.
    pub fn record_nanos(&mut self, nanos: u64) {
        let micros = nanos / 1000;
        self.counts[bucket(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded, ms.
    pub fn max_ms(&self) -> f64 {
        self.max as f64 / 1000.0
    }

    /// The `q`-quantile (0 < q <= 1) in ms: the smallest recorded value with at least
    /// q·count values at or below it (nearest rank), as its bucket's midpoint, never above
    /// the maximum. NaN when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bucket_range(i);
                let mid = lo as f64 + (width as f64 - 1.0) / 2.0;
                return mid.min(self.max as f64) / 1000.0;
            }
        }
        self.max_ms()
    }
}

/// Mean of `values` with a 95% percentile-bootstrap interval (`resamples` resamples drawn
/// with `rng`). With one value the interval is that value.
pub fn bootstrap_mean(values: &[f64], resamples: usize, rng: &mut SimRng) -> (f64, f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    if means.is_empty() {
        return (mean, mean, mean);
    }
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    (mean, at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for v in 0..5_000_000u64 {
            let b = bucket(v);
            assert!(b == last || b == last + 1, "{v}: {b} after {last}");
            let (lo, width) = bucket_range(b);
            assert!(lo <= v && v < lo + width, "{v} in [{lo}, +{width})");
            assert!(width == 1 || (width as f64) / (lo as f64) <= 1.0 / SUB as f64);
            last = b;
        }
    }

    #[test]
    fn quantiles_match_the_sorted_values() {
        let mut rng = SimRng::new(9);
        let mut h = Histogram::default();
        let mut values: Vec<u64> = (0..100_000)
            .map(|_| (rng.unit() * rng.unit() * 3e9) as u64)
            .collect();
        for &v in &values {
            h.record_nanos(v);
        }
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = values[((q * values.len() as f64).ceil() as usize).max(1) - 1] as f64 / 1e6;
            let got = h.quantile_ms(q);
            assert!((got / exact - 1.0).abs() < 0.002, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn merged_histograms_add_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record_nanos(1_000_000);
        b.record_nanos(3_000_000);
        b.record_nanos(2_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile_ms(0.5), 2.0);
        assert_eq!(a.max_ms(), 3.0);
        assert!(Histogram::default().quantile_ms(0.5).is_nan());
    }

    #[test]
    fn bootstrap_brackets_the_mean() {
        let mut rng = SimRng::new(1);
        let values = [0.9, 1.0, 1.1, 1.0, 0.95];
        let (mean, lo, hi) = bootstrap_mean(&values, 1000, &mut rng);
        assert!((mean - 0.99).abs() < 1e-12);
        assert!(
            lo < mean && mean < hi && lo >= 0.9 && hi <= 1.1,
            "{lo} {hi}"
        );
        assert_eq!(bootstrap_mean(&[2.0], 100, &mut rng), (2.0, 2.0, 2.0));
    }
}
