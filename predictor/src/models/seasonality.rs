//! Season-length detection by autocorrelation, for [`AdaptiveForecaster::set_period`].
//!
//! [`AdaptiveForecaster::set_period`]: super::AdaptiveForecaster::set_period

/// Smallest autocorrelation reported as a season.
pub const MIN_AUTOCORRELATION: f64 = 0.5;

/// How far a peak must rise above the lowest autocorrelation at a shorter lag. Without it, a
/// ripple of noise on the slow fall of a smooth series' autocorrelation from 1 would count
/// as a peak that is higher than the true season's.
pub const MIN_PROMINENCE: f64 = 0.1;

/// The season length of `series` in `[min_period, max_period]` steps, with its
/// autocorrelation, or `None` if there is no clear one.
///
/// The answer is the lag with the highest autocorrelation among the local peaks of the
/// autocorrelation function (higher than the lag before, at least the lag after, and
/// [`MIN_PROMINENCE`] above the dip before it), reported only if that autocorrelation is at
/// least [`MIN_AUTOCORRELATION`]. Ties go to the shorter lag. The estimator is the usual
/// biased one (every lag divides by the whole series' sum of squares), which shrinks longer
/// lags and so prefers a period over its multiples; it needs at least 2·lag samples for a lag
/// and in practice 3 or more periods. `min_period` is raised to 2.
///
/// `None` for a series that is flat (relative spread below 1e-9), too short for
/// `min_period`, or contains a non-finite value. `scratch` holds the autocorrelations
/// (`scratch.len() >= max_period + 1` examines every lag; lags beyond `scratch.len() − 1` are
/// not examined). Nothing is allocated. Cost: about `n·max_period` multiply-adds for `n`
/// samples, so run it now and then over a history buffer, not every tick.
pub fn detect_period(
    series: &[f64],
    min_period: usize,
    max_period: usize,
    scratch: &mut [f64],
) -> Option<(usize, f64)> {
    let n = series.len();
    let min_period = min_period.max(2);
    let max_period = max_period.min(n / 2).min(scratch.len().saturating_sub(1));
    if min_period > max_period {
        return None;
    }
    let mean = series.iter().sum::<f64>() / n as f64;
    let sum_of_squares: f64 = series.iter().map(|x| (x - mean) * (x - mean)).sum();
    let variance = sum_of_squares / n as f64;
    let flat = variance.is_nan() || variance <= (1e-9 * mean).powi(2) || variance == 0.0;
    if !mean.is_finite() || !variance.is_finite() || flat {
        return None;
    }
    let acf = |lag: usize| {
        let covariance: f64 = series
            .iter()
            .zip(&series[lag..])
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum();
        covariance / sum_of_squares
    };
    scratch[0] = 1.0;
    for (lag, slot) in scratch.iter_mut().enumerate().take(max_period + 1).skip(1) {
        *slot = acf(lag);
    }
    // max_period <= n/2, so the lag after it still has samples.
    let after_last = acf(max_period + 1);

    let mut best: Option<(usize, f64)> = None;
    let mut valley = f64::INFINITY;
    for lag in 1..=max_period {
        let here = scratch[lag];
        if lag >= min_period {
            let after = if lag < max_period {
                scratch[lag + 1]
            } else {
                after_last
            };
            let peak = here > scratch[lag - 1] && here >= after && here - valley >= MIN_PROMINENCE;
            if peak && best.is_none_or(|(_, value)| here > value) {
                best = Some((lag, here));
            }
        }
        valley = valley.min(here);
    }
    best.filter(|&(_, value)| value >= MIN_AUTOCORRELATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::Noise;
    use std::f64::consts::TAU;

    fn noisy_sine(period: f64, len: usize, noise_level: f64, seed: u64) -> Vec<f64> {
        let mut noise = Noise::new(seed);
        (0..len)
            .map(|t| 20.0 + 5.0 * (TAU * t as f64 / period).sin() + noise_level * noise.gaussian())
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_noisy_sine() {
        let mut scratch = [0.0; 201];
        for seed in 1..=5 {
            let series = noisy_sine(50.0, 600, 1.5, seed);
            let (period, acf) = detect_period(&series, 2, 200, &mut scratch).expect("a season");
            assert!((49..=51).contains(&period), "seed {seed}: period {period}");
            assert!(acf >= MIN_AUTOCORRELATION, "seed {seed}: acf {acf}");
        }
    }

    #[test]
    fn a_range_above_the_period_finds_a_multiple() {
        let series = noisy_sine(50.0, 600, 1.0, 9);
        let mut scratch = [0.0; 160];
        let (period, _) = detect_period(&series, 60, 150, &mut scratch).expect("a multiple");
        assert!((99..=101).contains(&period), "period {period}");
    }

    #[test]
    fn a_wandering_level_does_not_pass_for_a_short_period() {
        // A weak season on a random walk: the autocorrelation falls slowly from 1 with
        // ripples, which must not count as peaks (seed 2 has one at lag 2 above 0.8).
        let mut scratch = [0.0; 301];
        for seed in 1..=6 {
            let mut noise = Noise::new(seed);
            let mut walk = 0.0;
            let series: Vec<f64> = (0..900)
                .map(|t| {
                    walk += 0.2 * noise.gaussian();
                    20.0 + 2.0 * (TAU * t as f64 / 50.0).sin() + walk + noise.gaussian()
                })
                .collect();
            let found = detect_period(&series, 2, 300, &mut scratch).map(|p| p.0);
            assert!(
                found.is_some_and(|p| (47..=53).contains(&p)),
                "seed {seed}: {found:?}"
            );
        }
    }

    #[test]
    fn white_noise_has_no_season() {
        let mut scratch = [0.0; 201];
        for seed in 1..=5 {
            let mut noise = Noise::new(seed);
            let series: Vec<f64> = (0..600).map(|_| 10.0 + noise.gaussian()).collect();
            assert_eq!(detect_period(&series, 2, 200, &mut scratch), None);
        }
    }

    #[test]
    fn flat_ramps_and_odd_series_have_no_season() {
        let mut scratch = [0.0; 101];
        assert_eq!(detect_period(&[0.1; 500], 2, 100, &mut scratch), None);
        assert_eq!(detect_period(&[0.0; 500], 2, 100, &mut scratch), None);
        let ramp: Vec<f64> = (0..500).map(|t| t as f64).collect();
        assert_eq!(detect_period(&ramp, 2, 100, &mut scratch), None);
        let mut with_nan = noisy_sine(20.0, 500, 0.1, 1);
        with_nan[7] = f64::NAN;
        assert_eq!(detect_period(&with_nan, 2, 100, &mut scratch), None);
        assert_eq!(detect_period(&[], 2, 100, &mut scratch), None);
        assert_eq!(detect_period(&[1.0, 2.0, 1.0], 0, 100, &mut scratch), None);
        assert_eq!(
            detect_period(&[f64::MAX, -f64::MAX, 0.0, 1.0], 2, 3, &mut scratch),
            None
        );
    }

    #[test]
    fn needs_two_periods_and_enough_scratch() {
        let short = noisy_sine(50.0, 99, 0.0, 1);
        let long = noisy_sine(50.0, 600, 0.0, 1);
        for (series, scratch_len, found, why) in [
            (&short, 201, None, "under 2 periods"),
            (&long, 40, None, "lags cut at 39"),
            (&long, 51, Some(50), "enough scratch"),
        ] {
            let mut scratch = vec![0.0; scratch_len];
            let period = detect_period(series, 2, 200, &mut scratch).map(|p| p.0);
            assert_eq!(period, found, "{why}");
        }
    }
}
