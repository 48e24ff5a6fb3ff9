//! Holt's linear method: exponential smoothing of a level and an additive trend.

use super::{smoothing_factor, Forecaster};

/// Double exponential smoothing with an additive trend (Holt, 1957).
///
/// ```text
/// level_t     = α·y_t + (1 − α)·(level_{t−1} + trend_{t−1})
/// trend_t     = β·(level_t − level_{t−1}) + (1 − β)·trend_{t−1}
/// forecast(h) = level_t + h·trend_t
/// ```
///
/// The first observation sets the level (trend 0), the second sets the trend to the
/// difference; the equations apply from the third. A non-finite observation is a missing
/// step: the model advances as if it had seen its own one-step forecast (so the time axis
/// stays aligned), and is ignored before the first finite value. Negative values are ordinary
/// values. If the state ever overflows, the model restarts from the current observation.
/// Forecasts are 0 before the first observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Holt {
    alpha: f64,
    beta: f64,
    level: f64,
    trend: f64,
    seen: u64,
}

impl Holt {
    /// A model with level smoothing `alpha` and trend smoothing `beta`, each clamped to
    /// `[0, 1]` (NaN takes 0.5 and 0.1 respectively).
    pub fn new(alpha: f64, beta: f64) -> Self {
        Self {
            alpha: smoothing_factor(alpha, 0.5),
            beta: smoothing_factor(beta, 0.1),
            level: 0.0,
            trend: 0.0,
            seen: 0,
        }
    }

    /// The level smoothing factor α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The trend smoothing factor β.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The smoothed level after the last observation.
    pub fn level(&self) -> f64 {
        self.level
    }

    /// The smoothed change per step after the last observation.
    pub fn trend(&self) -> f64 {
        self.trend
    }

    /// How many steps (observed or missing) the model has taken since it started.
    pub fn steps(&self) -> u64 {
        self.seen
    }

    /// Forgets everything observed, keeping α and β.
    pub fn reset(&mut self) {
        *self = Self::new(self.alpha, self.beta);
    }
}

impl Forecaster for Holt {
    fn observe(&mut self, value: f64) {
        if !value.is_finite() {
            if self.seen > 0 {
                let next = self.level + self.trend;
                if next.is_finite() {
                    self.level = next;
                }
                self.seen = self.seen.saturating_add(1);
            }
            return;
        }
        match self.seen {
            0 => {
                self.level = value;
                self.trend = 0.0;
            }
            1 => {
                self.trend = value - self.level;
                self.level = value;
            }
            _ => {
                let prior = self.level;
                self.level = self.alpha * value + (1.0 - self.alpha) * (prior + self.trend);
                self.trend = self.beta * (self.level - prior) + (1.0 - self.beta) * self.trend;
            }
        }
        if !(self.level.is_finite() && self.trend.is_finite()) {
            self.level = value;
            self.trend = 0.0;
            self.seen = 0;
        }
        self.seen = self.seen.saturating_add(1);
    }

    fn forecast(&self, steps: usize) -> f64 {
        self.level + steps.max(1) as f64 * self.trend
    }

    fn name(&self) -> &'static str {
        "holt"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::Noise;

    #[test]
    fn tracks_a_noisy_linear_ramp() {
        for (alpha, beta) in [(0.5, 0.2), (0.2, 0.05), (0.8, 0.2)] {
            let mut noise = Noise::new(11);
            let mut holt = Holt::new(alpha, beta);
            for t in 0..50 {
                holt.observe(2.0 * t as f64 + noise.gaussian());
            }
            let truth = 2.0 * (49 + 10) as f64;
            let forecast = holt.forecast(10);
            assert!(
                (forecast - truth).abs() <= 0.05 * truth,
                "alpha {alpha} beta {beta}: forecast {forecast}, truth {truth}"
            );
        }
    }

    #[test]
    fn an_exact_ramp_is_forecast_exactly_even_with_gaps() {
        let mut holt = Holt::new(0.3, 0.1);
        for t in 0..40 {
            let y = 5.0 - 3.0 * t as f64;
            holt.observe(if t % 5 == 4 { f64::NAN } else { y });
            if t >= 1 {
                assert!((holt.forecast(1) - (5.0 - 3.0 * (t + 1) as f64)).abs() < 1e-9);
            }
        }
        assert_eq!(holt.steps(), 40, "missing values advance the clock");
        assert!((holt.forecast(7) - (5.0 - 3.0 * 46.0)).abs() < 1e-9);
    }

    #[test]
    fn a_constant_is_forecast_at_every_horizon() {
        let mut holt = Holt::new(0.5, 0.2);
        for _ in 0..10 {
            holt.observe(42.5);
        }
        for h in [0, 1, 5, 1000, usize::MAX] {
            assert_eq!(holt.forecast(h), 42.5, "horizon {h}");
        }
    }

    #[test]
    fn ignores_non_finite_values_before_the_first_one() {
        let mut holt = Holt::new(0.5, 0.2);
        assert_eq!(holt.forecast(3), 0.0);
        holt.observe(f64::NAN);
        holt.observe(f64::NEG_INFINITY);
        assert_eq!(holt.steps(), 0);
        holt.observe(-7.0);
        assert_eq!(holt.forecast(1), -7.0);
    }

    #[test]
    fn restarts_instead_of_overflowing() {
        let mut holt = Holt::new(0.5, 0.2);
        holt.observe(f64::MAX);
        holt.observe(-f64::MAX);
        assert!(holt.forecast(1).is_finite());
        holt.observe(f64::MAX);
        assert!(holt.level().is_finite() && holt.trend().is_finite());
    }

    #[test]
    fn parameters_are_clamped() {
        let holt = Holt::new(7.0, f64::NAN);
        assert_eq!((holt.alpha(), holt.beta()), (1.0, 0.1));
        let holt = Holt::new(-1.0, f64::INFINITY);
        assert_eq!((holt.alpha(), holt.beta()), (0.0, 1.0));
    }
}
