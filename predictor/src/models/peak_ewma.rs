//! Peak-EWMA latency estimate, with the semantics linkerd2-proxy and tower balance by.
//!
//! With `E` the stored estimate, `t` the time it was stored, `d` the decay and
//! `w(Δ) = exp(−Δ / d)`:
//!
//! - **read** at `now`: `E · w(now − t)`. With no new samples the estimate decays toward
//!   zero, so a backend that has gone quiet is tried again; this is tower's `load()` (which
//!   updates with an RTT of 0) and linkerd2-proxy's `Ewma::get_at`.
//! - **sample** `s` at `now`: if `s` exceeds the estimate read at `now`, `E := s` at once
//!   (the peak); otherwise `E := E · w + s · (1 − w)`, i.e. the old estimate keeps the weight
//!   `w(now − t)` and the sample gets the rest. Then `t := now`.
//! - **cost** with `n` requests in flight: `read(now) · (n + 1)` (tower's `Cost`).
//!
//! Two deliberate differences from tower, both following linkerd2-proxy's `linkerd/ewma`:
//! reading does not write the decayed value back (tower's `load()` does, so there the read
//! cadence changes the estimate; here the predictor and any status page may read freely), and
//! the peak test compares with the estimate decayed to `now` (`add_peak`), which is what
//! tower's comparison with its stored value amounts to when picks read it often. The default
//! RTT stands in, undecayed, until the first sample, which then replaces it outright (as a
//! first value replaces linkerd2-proxy's initial sentinel); tower instead lets its default
//! decay from construction.

use std::time::Duration;

/// Smallest decay used: a zero decay would divide by zero (linkerd2-proxy clamps the same way).
pub const MIN_DECAY: Duration = Duration::from_millis(1);

/// Weight the old estimate keeps after `elapsed_nanos`: `exp(−elapsed / decay)`, in `[0, 1]`.
///
/// Pure so that a lock-free (atomic) estimate elsewhere shares the exact math. Time that is
/// zero, negative or NaN has not elapsed (weight 1); a decay that is zero, negative or NaN
/// forgets at once (weight 0 once any time has elapsed).
pub fn decay_weight(elapsed_nanos: f64, decay_nanos: f64) -> f64 {
    if elapsed_nanos.is_nan() || elapsed_nanos <= 0.0 {
        return 1.0;
    }
    if decay_nanos.is_nan() || decay_nanos <= 0.0 {
        return 0.0;
    }
    let weight = (-elapsed_nanos / decay_nanos).exp();
    // Only ∞/∞ gets here as NaN; keeping the estimate is the conservative reading.
    if weight.is_nan() {
        1.0
    } else {
        weight.clamp(0.0, 1.0)
    }
}

/// The estimate after sample `sample` arrives `elapsed_nanos` after the estimate `prior` was
/// stored: the peak rule, else the time-weighted blend (see the module docs).
pub fn next_estimate(prior: f64, sample: f64, elapsed_nanos: f64, decay_nanos: f64) -> f64 {
    let weight = decay_weight(elapsed_nanos, decay_nanos);
    if sample > prior * weight {
        sample
    } else {
        prior * weight + sample * (1.0 - weight)
    }
}

/// A backend's peak-sensitive, time-decayed round-trip-time estimate, in nanoseconds.
///
/// Samples that are NaN, infinite or negative are ignored (the state is left as it was); a
/// timestamp earlier than the last update counts as no time elapsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    decay_nanos: f64,
    default_rtt_nanos: f64,
    estimate_nanos: f64,
    updated_at: u64,
    sampled: bool,
}

impl PeakEwma {
    /// linkerd2-proxy's default decay.
    pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);
    /// The estimate before the first sample, unless configured otherwise.
    pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

    /// An estimate that decays over `decay` (at least [`MIN_DECAY`]) and reads `default_rtt`
    /// until its first sample.
    pub fn new(decay: Duration, default_rtt: Duration) -> Self {
        Self {
            decay_nanos: nanos(decay.max(MIN_DECAY)),
            default_rtt_nanos: nanos(default_rtt),
            estimate_nanos: nanos(default_rtt),
            updated_at: 0,
            sampled: false,
        }
    }

    /// Records a round-trip time of `rtt_nanos` that completed at `now_nanos`.
    pub fn observe(&mut self, rtt_nanos: f64, now_nanos: u64) {
        if !rtt_nanos.is_finite() || rtt_nanos < 0.0 {
            return;
        }
        if self.sampled {
            let elapsed = now_nanos.saturating_sub(self.updated_at) as f64;
            self.estimate_nanos =
                next_estimate(self.estimate_nanos, rtt_nanos, elapsed, self.decay_nanos);
            self.updated_at = self.updated_at.max(now_nanos);
        } else {
            self.estimate_nanos = rtt_nanos;
            self.updated_at = now_nanos;
            self.sampled = true;
        }
    }

    /// The estimate at `now_nanos`, in nanoseconds: the stored estimate decayed toward zero.
    pub fn get(&self, now_nanos: u64) -> f64 {
        if !self.sampled {
            return self.default_rtt_nanos;
        }
        let elapsed = now_nanos.saturating_sub(self.updated_at) as f64;
        self.estimate_nanos * decay_weight(elapsed, self.decay_nanos)
    }

    /// tower's load cost: the estimate at `now_nanos` times one more than `in_flight`.
    pub fn cost(&self, now_nanos: u64, in_flight: u32) -> f64 {
        self.get(now_nanos) * (f64::from(in_flight) + 1.0)
    }

    /// Whether a sample has been recorded (before that, reads give the default RTT).
    pub fn has_sample(&self) -> bool {
        self.sampled
    }

    /// The decay, in nanoseconds, as used by [`decay_weight`].
    pub fn decay_nanos(&self) -> f64 {
        self.decay_nanos
    }
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new(Self::DEFAULT_DECAY, Self::DEFAULT_RTT)
    }
}

fn nanos(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const SEC: u64 = 1_000_000_000;

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs().max(1e-12)
    }

    #[test]
    fn default_rtt_until_the_first_sample_then_replaced() {
        let mut ewma = PeakEwma::default();
        assert!(!ewma.has_sample());
        assert_eq!(ewma.get(0), 30.0 * MS);
        assert_eq!(
            ewma.get(3_600 * SEC),
            30.0 * MS,
            "the default does not decay"
        );
        assert_eq!(ewma.cost(0, 2), 90.0 * MS);
        // A first sample below the default replaces it rather than blending.
        ewma.observe(5.0 * MS, 7 * SEC);
        assert!(ewma.has_sample());
        assert_eq!(ewma.get(7 * SEC), 5.0 * MS);
    }

    #[test]
    fn a_peak_is_taken_at_once() {
        let mut ewma = PeakEwma::default();
        ewma.observe(10.0 * MS, SEC);
        ewma.observe(100.0 * MS, SEC + 1_000);
        assert_eq!(ewma.get(SEC + 1_000), 100.0 * MS);
        // Higher than the decayed estimate but lower than the stored one is still a peak.
        let later = SEC + 1_000 + 20 * SEC;
        let decayed = ewma.get(later);
        ewma.observe(decayed * 1.5, later);
        assert_eq!(ewma.get(later), decayed * 1.5);
    }

    #[test]
    fn decays_halfway_after_decay_times_ln2() {
        let mut ewma = PeakEwma::default();
        let start = 5 * SEC;
        ewma.observe(100.0 * MS, start);
        let half_life = (10.0 * std::f64::consts::LN_2 * SEC as f64).round() as u64;
        // Read: halfway toward zero.
        assert!(close(ewma.get(start + half_life), 50.0 * MS, 1e-6));
        // A lower sample: halfway toward the sample.
        ewma.observe(10.0 * MS, start + half_life);
        assert!(close(ewma.get(start + half_life), 55.0 * MS, 1e-6));
        // After one decay period the estimate reads e^-1 of itself.
        let read = ewma.get(start + half_life + 10 * SEC);
        assert!(close(read, 55.0 * MS * (-1.0f64).exp(), 1e-9));
    }

    #[test]
    fn no_elapsed_time_changes_nothing_but_peaks() {
        let mut ewma = PeakEwma::default();
        ewma.observe(40.0 * MS, SEC);
        ewma.observe(1.0 * MS, SEC);
        assert_eq!(ewma.get(SEC), 40.0 * MS);
        // A timestamp from the past counts as no elapsed time, both ways.
        ewma.observe(1.0 * MS, SEC / 2);
        assert_eq!(ewma.get(SEC), 40.0 * MS);
        ewma.observe(41.0 * MS, SEC / 2);
        assert_eq!(ewma.get(SEC), 41.0 * MS);
        assert_eq!(
            ewma.get(0),
            41.0 * MS,
            "reads before the update do not grow"
        );
    }

    #[test]
    fn invalid_samples_are_ignored() {
        let mut ewma = PeakEwma::default();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            ewma.observe(bad, SEC);
        }
        assert!(!ewma.has_sample());
        ewma.observe(20.0 * MS, SEC);
        for bad in [f64::NAN, f64::INFINITY, -5.0 * MS] {
            ewma.observe(bad, 2 * SEC);
        }
        assert_eq!(ewma.get(SEC), 20.0 * MS);
        // Zero is a valid (fast) sample.
        ewma.observe(0.0, SEC + 10 * SEC);
        assert!(close(ewma.get(11 * SEC), 20.0 * MS * (-1.0f64).exp(), 1e-9));
    }

    #[test]
    fn a_zero_decay_is_clamped_and_stays_finite() {
        let mut ewma = PeakEwma::new(Duration::ZERO, Duration::from_millis(1));
        assert_eq!(ewma.decay_nanos(), 1e6);
        ewma.observe(5.0 * MS, 0);
        ewma.observe(1.0 * MS, u64::MAX);
        assert!(ewma.get(u64::MAX).is_finite());
        assert!(close(ewma.get(u64::MAX), 1.0 * MS, 1e-9));
        assert_eq!(ewma.get(u64::MAX - 1), 1.0 * MS);
    }

    #[test]
    fn decay_weight_edges() {
        assert_eq!(decay_weight(0.0, 1e9), 1.0);
        assert_eq!(decay_weight(-3.0, 1e9), 1.0);
        assert_eq!(decay_weight(f64::NAN, 1e9), 1.0);
        assert_eq!(decay_weight(1.0, 0.0), 0.0);
        assert_eq!(decay_weight(1.0, f64::NAN), 0.0);
        assert_eq!(decay_weight(f64::INFINITY, 1e9), 0.0);
        assert_eq!(decay_weight(1e9, f64::INFINITY), 1.0);
        assert_eq!(decay_weight(f64::INFINITY, f64::INFINITY), 1.0);
        assert!(close(decay_weight(1e9, 1e9), (-1.0f64).exp(), 1e-15));
    }

    #[test]
    fn next_estimate_matches_the_stateful_model() {
        let mut ewma = PeakEwma::default();
        ewma.observe(80.0 * MS, SEC);
        ewma.observe(20.0 * MS, 4 * SEC);
        let by_hand = next_estimate(80.0 * MS, 20.0 * MS, 3.0 * SEC as f64, 10.0 * SEC as f64);
        assert_eq!(ewma.get(4 * SEC), by_hand);
        let w = (-0.3f64).exp();
        assert!(close(by_hand, 80.0 * MS * w + 20.0 * MS * (1.0 - w), 1e-12));
    }
}
