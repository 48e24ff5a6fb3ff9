//! Holt–Winters: Holt's level and trend plus an additive seasonal component.

use super::{smoothing_factor, Forecaster, Holt};

/// Longest season accepted, in steps (29 hours of 100 ms ticks; 8 MiB of state).
pub const MAX_PERIOD: usize = 1 << 20;

/// Additive seasonal exponential smoothing (Holt–Winters) with a season of `period` steps.
///
/// ```text
/// level_t     = α·(y_t − s_{t−m}) + (1 − α)·(level_{t−1} + trend_{t−1})
/// trend_t     = β·(level_t − level_{t−1}) + (1 − β)·trend_{t−1}
/// s_t         = γ·(y_t − level_t) + (1 − γ)·s_{t−m}
/// forecast(h) = level_t + h·trend_t + s_{t−m+1+((h−1) mod m)}
/// ```
///
/// **Start.** The first two periods are collected (in the seasonal buffer itself, so the
/// state is `period` values). With `ȳ₁`, `ȳ₂` their means: trend = `(ȳ₂ − ȳ₁)/m`, the line
/// through `ȳ₁` at the middle of period one gives the level at the end of period two, and
/// `s_i` is the mean over both periods of `y − line` at phase `i` (which sums to zero). Until
/// then the model forecasts as a [`Holt`] with the same α and β fed the same values. A series
/// that is exactly linear plus a repeating pattern is therefore forecast exactly from the
/// third period on.
///
/// **Input.** A non-finite observation is a missing step: the model advances on its own
/// one-step forecast, so the seasonal phase stays aligned with time (a non-finite value
/// before any finite one is ignored). Negative values are ordinary values. If the state ever
/// overflows, the model starts over from the current observation.
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWinters {
    alpha: f64,
    beta: f64,
    gamma: f64,
    /// Seasonal offsets by phase once initialised; during warm-up, period one's values and
    /// then the per-phase means of both periods.
    seasonal: Vec<f64>,
    level: f64,
    trend: f64,
    /// Phase of the next observation.
    phase: usize,
    /// Values taken during warm-up; `2·period` once initialised.
    collected: usize,
    period_sums: [f64; 2],
    warm_up: Holt,
}

impl HoltWinters {
    /// A model with smoothing factors `alpha`, `beta`, `gamma` (each clamped to `[0, 1]`; NaN
    /// takes 0.5, 0.1 and 0.1) and a season of `period` steps (clamped to
    /// `1..=`[`MAX_PERIOD`]). Allocates the seasonal state here and nowhere else.
    pub fn new(alpha: f64, beta: f64, gamma: f64, period: usize) -> Self {
        let alpha = smoothing_factor(alpha, 0.5);
        let beta = smoothing_factor(beta, 0.1);
        Self {
            alpha,
            beta,
            gamma: smoothing_factor(gamma, 0.1),
            seasonal: vec![0.0; period.clamp(1, MAX_PERIOD)],
            level: 0.0,
            trend: 0.0,
            phase: 0,
            collected: 0,
            period_sums: [0.0; 2],
            warm_up: Holt::new(alpha, beta),
        }
    }

    /// The season length in steps.
    pub fn period(&self) -> usize {
        self.seasonal.len()
    }

    /// The smoothing factors (α, β, γ).
    pub fn factors(&self) -> (f64, f64, f64) {
        (self.alpha, self.beta, self.gamma)
    }

    /// Whether two periods have been seen, so forecasts are seasonal.
    pub fn is_initialised(&self) -> bool {
        self.collected == 2 * self.period()
    }

    /// Forgets everything observed, keeping the factors, the period and the allocation.
    pub fn reset(&mut self) {
        self.seasonal.fill(0.0);
        self.level = 0.0;
        self.trend = 0.0;
        self.phase = 0;
        self.collected = 0;
        self.period_sums = [0.0; 2];
        self.warm_up.reset();
    }

    fn collect(&mut self, value: f64) {
        let period = self.period();
        if self.collected < period {
            self.seasonal[self.collected] = value;
            self.period_sums[0] += value;
        } else {
            let slot = &mut self.seasonal[self.collected - period];
            *slot = 0.5 * *slot + 0.5 * value;
            self.period_sums[1] += value;
        }
        self.warm_up.observe(value);
        self.collected += 1;
        if self.collected == 2 * period {
            self.initialise();
        }
    }

    fn initialise(&mut self) {
        let m = self.period() as f64;
        let first_mean = self.period_sums[0] / m;
        let trend = (self.period_sums[1] / m - first_mean) / m;
        // Phase i's two values sit at i and m + i; the line through the first mean at
        // (m − 1)/2 averages to first_mean + trend·(i + 1/2) there.
        for (i, slot) in self.seasonal.iter_mut().enumerate() {
            *slot -= first_mean + trend * (i as f64 + 0.5);
        }
        self.level = first_mean + trend * (3.0 * m - 1.0) / 2.0;
        self.trend = trend;
        self.phase = 0;
        let finite = self.level.is_finite()
            && self.trend.is_finite()
            && self.seasonal.iter().all(|s| s.is_finite());
        if !finite {
            self.reset();
        }
    }
}

impl Forecaster for HoltWinters {
    fn observe(&mut self, value: f64) {
        if !self.is_initialised() {
            if value.is_finite() {
                self.collect(value);
            } else if self.collected > 0 {
                let fill = self.warm_up.forecast(1);
                if fill.is_finite() {
                    self.collect(fill);
                }
            }
            return;
        }
        let y = if value.is_finite() {
            value
        } else {
            self.forecast(1)
        };
        let phase = self.phase;
        let prior_season = self.seasonal[phase];
        let prior_level = self.level;
        self.level =
            self.alpha * (y - prior_season) + (1.0 - self.alpha) * (prior_level + self.trend);
        self.trend = self.beta * (self.level - prior_level) + (1.0 - self.beta) * self.trend;
        self.seasonal[phase] = self.gamma * (y - self.level) + (1.0 - self.gamma) * prior_season;
        self.phase = if phase + 1 == self.period() {
            0
        } else {
            phase + 1
        };
        let finite =
            self.level.is_finite() && self.trend.is_finite() && self.seasonal[phase].is_finite();
        if !finite {
            self.reset();
            if value.is_finite() {
                self.collect(value);
            }
        }
    }

    fn forecast(&self, steps: usize) -> f64 {
        if !self.is_initialised() {
            return self.warm_up.forecast(steps);
        }
        let steps = steps.max(1);
        let period = self.period();
        let index = (self.phase + (steps - 1) % period) % period;
        self.level + steps as f64 * self.trend + self.seasonal[index]
    }

    fn name(&self) -> &'static str {
        "holt_winters"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::Noise;

    const PATTERN: [f64; 6] = [3.0, -1.0, 4.0, -1.5, -2.5, -2.0];

    fn trend_plus_pattern(t: usize) -> f64 {
        10.0 + 0.5 * t as f64 + PATTERN[t % PATTERN.len()]
    }

    #[test]
    fn trend_plus_pattern_is_forecast_exactly_after_two_periods() {
        let mut hw = HoltWinters::new(0.3, 0.1, 0.2, PATTERN.len());
        for t in 0..2 * PATTERN.len() {
            assert!(!hw.is_initialised());
            hw.observe(trend_plus_pattern(t));
        }
        assert!(hw.is_initialised());
        for t in 2 * PATTERN.len()..5 * PATTERN.len() {
            for h in 1..=13 {
                let expected = trend_plus_pattern(t - 1 + h);
                assert!((hw.forecast(h) - expected).abs() < 1e-9, "t {t} h {h}");
            }
            hw.observe(trend_plus_pattern(t));
        }
    }

    #[test]
    fn missing_values_keep_the_phase() {
        let mut hw = HoltWinters::new(0.3, 0.1, 0.2, PATTERN.len());
        for t in 0..60 {
            let missing = t >= 2 * PATTERN.len() && (t % 7 == 3 || t == 20 || t == 21);
            hw.observe(if missing {
                f64::NAN
            } else {
                trend_plus_pattern(t)
            });
        }
        assert!(hw.is_initialised());
        for h in 1..=12 {
            assert!(
                (hw.forecast(h) - trend_plus_pattern(59 + h)).abs() < 1e-9,
                "h {h}"
            );
        }
    }

    #[test]
    fn forecasts_like_holt_while_warming_up() {
        let mut hw = HoltWinters::new(0.4, 0.15, 0.3, 10);
        let mut holt = Holt::new(0.4, 0.15);
        let mut noise = Noise::new(3);
        for _ in 0..19 {
            let y = 100.0 + 5.0 * noise.gaussian();
            hw.observe(y);
            holt.observe(y);
            assert_eq!(hw.forecast(1), holt.forecast(1));
            assert_eq!(hw.forecast(8), holt.forecast(8));
        }
        hw.observe(f64::INFINITY);
        assert!(
            hw.is_initialised(),
            "a missing value still counts as a step"
        );
    }

    #[test]
    fn beats_holt_on_a_noisy_seasonal_series() {
        let period = 24;
        let horizon = 5;
        let steps = 12 * period;
        let mut noise = Noise::new(42);
        let series: Vec<f64> = (0..steps)
            .map(|t| {
                let phase = std::f64::consts::TAU * t as f64 / period as f64;
                50.0 + 0.05 * t as f64 + 10.0 * phase.sin() + noise.gaussian()
            })
            .collect();
        let mut hw = HoltWinters::new(0.3, 0.05, 0.3, period);
        let mut holt = Holt::new(0.3, 0.05);
        let (mut hw_forecasts, mut holt_forecasts) = (vec![0.0; steps], vec![0.0; steps]);
        let (mut hw_error, mut holt_error) = (0.0, 0.0);
        for (t, &y) in series.iter().enumerate() {
            if t >= steps - 3 * period {
                hw_error += (y - hw_forecasts[t]).abs();
                holt_error += (y - holt_forecasts[t]).abs();
            }
            hw.observe(y);
            holt.observe(y);
            if t + horizon < steps {
                hw_forecasts[t + horizon] = hw.forecast(horizon);
                holt_forecasts[t + horizon] = holt.forecast(horizon);
            }
        }
        assert!(
            hw_error < 0.5 * holt_error,
            "Holt–Winters {hw_error:.1} vs Holt {holt_error:.1}"
        );
        // And it is close to the noise floor: mean absolute error of N(0, 1) is 0.8.
        assert!(hw_error / ((3 * period) as f64) < 1.6, "{hw_error}");
    }

    #[test]
    fn odd_inputs_do_not_panic_or_poison() {
        let mut hw = HoltWinters::new(f64::NAN, 2.0, -1.0, 0);
        assert_eq!(hw.period(), 1);
        assert_eq!(hw.factors(), (0.5, 1.0, 0.0));
        for y in [
            f64::NAN,
            1.0,
            f64::MAX,
            -f64::MAX,
            f64::INFINITY,
            3.0,
            3.0,
            3.0,
        ] {
            hw.observe(y);
            let _ = hw.forecast(usize::MAX);
        }
        assert!(hw.forecast(1).is_finite());
        let huge = HoltWinters::new(0.5, 0.1, 0.1, usize::MAX);
        assert_eq!(huge.period(), MAX_PERIOD);
        assert_eq!(huge.forecast(usize::MAX), 0.0);
    }
}
