//! Anomalous forecast errors, by a robust z-score over a window of recent ones.

/// Residuals needed in the window before any can be flagged.
pub const MIN_SAMPLES: usize = 8;

/// Default smallest spread, in the residuals' own units: far below any real change of a
/// latency in nanoseconds or a load fraction, far above rounding noise for values up to 1e9.
pub const DEFAULT_MIN_SCALE: f64 = 1e-6;

/// MAD × this estimates the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Mean absolute deviation × this (√(π/2)) estimates the standard deviation of normal data.
const MEAN_DEVIATION_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Flags forecast errors (residuals) that lie far outside the recent ones.
///
/// A residual `r` is anomalous when `|r − median| / scale > k`, with the median and the scale
/// taken over the last `window` residuals *before* `r` is added. The scale is `1.4826·MAD`; if
/// the MAD is 0 (more than half the residuals equal, e.g. quantised values) it falls back to
/// `1.2533 ×` the mean absolute deviation from the median, and it is never below `min_scale`,
/// so a perfectly steady series flags a real jump but not rounding noise. Every finite
/// residual joins the window, flagged or not (the median and MAD shrug off a few outliers).
/// Non-finite residuals are ignored: never flagged, never added.
///
/// Cost per observe: a copy of the window, two selections and two passes over it, about
/// `8·window` comparisons and float operations; keep windows at a few dozen per series.
#[derive(Debug, Clone)]
pub struct ResidualDetector {
    residuals: Vec<f64>,
    next: usize,
    filled: usize,
    scratch: Vec<f64>,
    k: f64,
    min_scale: f64,
    anomalies: u64,
}

impl ResidualDetector {
    /// A detector over the last `window` residuals (at least [`MIN_SAMPLES`]) that flags
    /// robust z-scores above `k` (a NaN `k` never flags). Allocates here and nowhere else.
    pub fn new(window: usize, k: f64) -> Self {
        let window = window.max(MIN_SAMPLES);
        Self {
            residuals: vec![0.0; window],
            next: 0,
            filled: 0,
            scratch: vec![0.0; window],
            k,
            min_scale: DEFAULT_MIN_SCALE,
            anomalies: 0,
        }
    }

    /// The same detector with a different floor on the scale (ignored unless finite and
    /// non-negative).
    pub fn with_min_scale(mut self, min_scale: f64) -> Self {
        if min_scale.is_finite() && min_scale >= 0.0 {
            self.min_scale = min_scale;
        }
        self
    }

    /// Adds a residual and says whether it was anomalous against the window before it.
    pub fn observe(&mut self, residual: f64) -> bool {
        if !residual.is_finite() {
            return false;
        }
        let anomalous = self.filled >= MIN_SAMPLES && self.robust_z(residual) > self.k;
        self.residuals[self.next] = residual;
        self.next = (self.next + 1) % self.residuals.len();
        self.filled = (self.filled + 1).min(self.residuals.len());
        if anomalous {
            self.anomalies = self.anomalies.saturating_add(1);
        }
        anomalous
    }

    /// How many residuals have been flagged since construction.
    pub fn anomalies_total(&self) -> u64 {
        self.anomalies
    }

    /// How many residuals the window holds now.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    fn robust_z(&mut self, residual: f64) -> f64 {
        let n = self.filled;
        // Until the ring is full its values are residuals[..filled].
        let values = &mut self.scratch[..n];
        values.copy_from_slice(&self.residuals[..n]);
        let median = median_in_place(values);
        let mut total_deviation = 0.0;
        for value in values.iter_mut() {
            *value = (*value - median).abs();
            total_deviation += *value;
        }
        let mut scale = MAD_TO_SIGMA * median_in_place(values);
        if scale <= 0.0 {
            scale = MEAN_DEVIATION_TO_SIGMA * total_deviation / n as f64;
        }
        (residual - median).abs() / scale.max(self.min_scale)
    }
}

/// The median of a non-empty slice, reordering it.
fn median_in_place(values: &mut [f64]) -> f64 {
    let len = values.len();
    let (lower, upper_middle, _) = values.select_nth_unstable_by(len / 2, f64::total_cmp);
    let upper_middle = *upper_middle;
    if len % 2 == 1 {
        return upper_middle;
    }
    let lower_middle = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    0.5 * lower_middle + 0.5 * upper_middle
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::Noise;

    #[test]
    fn median_of_odd_and_even_slices() {
        assert_eq!(median_in_place(&mut [5.0]), 5.0);
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_in_place(&mut [7.0, 7.0, -1.0, 7.0]), 7.0);
    }

    #[test]
    fn flags_a_ten_sigma_spike_in_gaussian_noise() {
        let mut noise = Noise::new(1);
        let mut detector = ResidualDetector::new(64, 4.0);
        for _ in 0..200 {
            detector.observe(3.0 * noise.gaussian());
        }
        let before = detector.anomalies_total();
        assert!(detector.observe(30.0), "+10σ");
        assert!(detector.observe(-30.0), "−10σ");
        assert_eq!(detector.anomalies_total(), before + 2);
        assert!(!detector.observe(1.0), "ordinary noise right after");
    }

    #[test]
    fn rarely_flags_gaussian_noise() {
        for k in [3.5, 4.0] {
            let mut noise = Noise::new(2);
            let mut detector = ResidualDetector::new(64, k);
            let n = 20_000;
            let flagged = (0..n)
                .filter(|_| detector.observe(0.5 + 2.0 * noise.gaussian()))
                .count();
            assert!(flagged * 100 <= n, "k {k}: {flagged} of {n} flagged");
            assert_eq!(detector.anomalies_total(), flagged as u64);
        }
    }

    #[test]
    fn needs_eight_samples() {
        let mut detector = ResidualDetector::new(3, 3.0);
        assert_eq!(
            detector.residuals.len(),
            MIN_SAMPLES,
            "window raised to the minimum"
        );
        for i in 0..MIN_SAMPLES {
            let residual = if i == MIN_SAMPLES - 1 { 1e9 } else { 0.0 };
            assert!(!detector.observe(residual), "sample {i}");
        }
        assert!(detector.observe(-1e9), "the ninth can be flagged");
    }

    #[test]
    fn steady_series_flags_jumps_not_rounding_noise() {
        let mut detector = ResidualDetector::new(32, 3.5);
        for i in 0..40 {
            let rounding = if i % 3 == 0 { 2e-13 } else { -1e-13 };
            assert!(!detector.observe(rounding));
        }
        assert!(
            !detector.observe(1e-9),
            "rounding-sized error on a steady series"
        );
        assert!(detector.observe(0.25), "a real jump");
    }

    #[test]
    fn quantised_residuals_fall_back_to_mean_deviation() {
        let mut detector = ResidualDetector::new(40, 3.5);
        // 70 % zeros, the rest ±1: the MAD is 0 but ±1 is ordinary here.
        for i in 0..200 {
            let residual = match i % 10 {
                0 | 4 => 1.0,
                7 => -1.0,
                _ => 0.0,
            };
            assert!(!detector.observe(residual), "step {i}");
        }
        assert!(detector.observe(5.0));
        let mut strict = ResidualDetector::new(40, 3.5).with_min_scale(2.0);
        for _ in 0..20 {
            strict.observe(0.0);
        }
        assert!(!strict.observe(5.0), "5 / 2 is under k");
    }

    #[test]
    fn non_finite_residuals_are_ignored() {
        let mut detector = ResidualDetector::new(16, 3.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!detector.observe(bad));
        }
        assert!(detector.is_empty());
        let mut noise = Noise::new(5);
        for _ in 0..50 {
            detector.observe(noise.gaussian());
            assert!(!detector.observe(f64::NAN));
        }
        assert_eq!(detector.len(), 16);
        assert!(detector.observe(20.0));
        let mut never = ResidualDetector::new(8, f64::NAN);
        for i in 0..20 {
            assert!(!never.observe(if i == 19 { 1e12 } else { 0.0 }));
        }
        assert!(!ResidualDetector::new(8, 1.0).observe(f64::MAX));
    }
}
