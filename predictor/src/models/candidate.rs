//! One model in [`AdaptiveForecaster`]'s grid, with the running score of its one-step errors.
//!
//! [`AdaptiveForecaster`]: super::AdaptiveForecaster

use std::fmt;

use super::{Forecaster, Holt, HoltWinters};

/// Weight of the newest squared error in a score: memory of about 1/0.02 = 50 steps.
const SCORE_WEIGHT: f64 = 0.02;
/// Scored steps a candidate needs before it may forecast.
const MIN_SCORED: u32 = 10;
/// A seasonal candidate's score is multiplied by this when ranked: the simpler model wins
/// unless the season clearly pays (on a season-less series the two differ only by noise).
const SEASONAL_PENALTY: f64 = 1.1;

/// A candidate's parameters, for status pages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Level smoothing factor.
    pub alpha: f64,
    /// Trend smoothing factor.
    pub beta: f64,
    /// Seasonal smoothing factor (seasonal candidates only).
    pub gamma: Option<f64>,
    /// Season length in steps (seasonal candidates only).
    pub period: Option<usize>,
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alpha={} beta={}", self.alpha, self.beta)?;
        if let (Some(gamma), Some(period)) = (self.gamma, self.period) {
            write!(f, " gamma={gamma} period={period}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Model {
    Trend(Holt),
    Seasonal(HoltWinters),
}

/// A model and the exponentially weighted mean of its squared one-step errors.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    model: Model,
    params: Params,
    /// Exponentially weighted sums of squared errors and of the weights: their ratio is an
    /// unbiased mean from the first error on.
    weighted_squares: f64,
    weights: f64,
    scored: u32,
}

impl Candidate {
    /// A Holt candidate.
    pub(super) fn trend(alpha: f64, beta: f64) -> Self {
        let params = Params {
            alpha,
            beta,
            gamma: None,
            period: None,
        };
        Self::new(Model::Trend(Holt::new(alpha, beta)), params)
    }

    /// A Holt–Winters candidate (allocates its seasonal state).
    pub(super) fn seasonal(alpha: f64, beta: f64, gamma: f64, period: usize) -> Self {
        let model = HoltWinters::new(alpha, beta, gamma, period);
        let params = Params {
            alpha,
            beta,
            gamma: Some(gamma),
            period: Some(model.period()),
        };
        Self::new(Model::Seasonal(model), params)
    }

    fn new(model: Model, params: Params) -> Self {
        Self {
            model,
            params,
            weighted_squares: 0.0,
            weights: 0.0,
            scored: 0,
        }
    }

    pub(super) fn params(&self) -> Params {
        self.params
    }

    // Matches rather than `&dyn Forecaster`: static calls the compiler can inline.
    pub(super) fn forecast(&self, steps: usize) -> f64 {
        match &self.model {
            Model::Trend(holt) => holt.forecast(steps),
            Model::Seasonal(holt_winters) => holt_winters.forecast(steps),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match &self.model {
            Model::Trend(holt) => holt.name(),
            Model::Seasonal(holt_winters) => holt_winters.name(),
        }
    }

    /// The weighted mean squared one-step error; infinite before the first.
    pub(super) fn mean_squared_error(&self) -> f64 {
        if self.weights > 0.0 {
            self.weighted_squares / self.weights
        } else {
            f64::INFINITY
        }
    }

    /// Whether the candidate has been scored enough (and, if seasonal, has seen two
    /// periods) to forecast.
    pub(super) fn eligible(&self) -> bool {
        self.scored >= MIN_SCORED
            && match &self.model {
                Model::Trend(_) => true,
                Model::Seasonal(holt_winters) => holt_winters.is_initialised(),
            }
    }

    /// The score candidates are compared by: lower is better.
    pub(super) fn rank(&self) -> f64 {
        match self.model {
            Model::Trend(_) => self.mean_squared_error(),
            Model::Seasonal(_) => SEASONAL_PENALTY * self.mean_squared_error(),
        }
    }

    /// Scores the forecast made before `value`, then feeds `value` to the model.
    pub(super) fn observe(&mut self, value: f64) {
        if value.is_finite() {
            let error = value - self.forecast(1);
            if error.is_finite() {
                // Capped so one absurd value cannot pin the score at infinity for good.
                let square = (error * error).min(f64::MAX);
                self.weighted_squares =
                    (1.0 - SCORE_WEIGHT) * self.weighted_squares + SCORE_WEIGHT * square;
                self.weights = (1.0 - SCORE_WEIGHT) * self.weights + SCORE_WEIGHT;
                self.scored = self.scored.saturating_add(1);
            }
        }
        match &mut self.model {
            Model::Trend(holt) => holt.observe(value),
            Model::Seasonal(holt_winters) => holt_winters.observe(value),
        }
    }

    #[cfg(test)]
    pub(super) fn set_mean_squared_error(&mut self, mean_squared_error: f64) {
        self.weighted_squares = mean_squared_error;
        self.weights = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_errors_made_before_each_observation() {
        let mut candidate = Candidate::trend(1.0, 0.0);
        assert_eq!(candidate.mean_squared_error(), f64::INFINITY);
        candidate.observe(4.0); // forecast was 0: error 4
        assert_eq!(candidate.mean_squared_error(), 16.0);
        candidate.observe(6.0); // forecast was 4: error 2
        let w = 1.0 - SCORE_WEIGHT;
        let expected = (w * 16.0 + 4.0) / (w + 1.0);
        assert!((candidate.mean_squared_error() - expected).abs() < 1e-12);
        candidate.observe(f64::NAN);
        assert!(
            (candidate.mean_squared_error() - expected).abs() < 1e-12,
            "not scored"
        );
    }

    #[test]
    fn eligibility_needs_scores_and_for_seasons_two_periods() {
        let mut trend = Candidate::trend(0.5, 0.1);
        let mut seasonal = Candidate::seasonal(0.5, 0.1, 0.1, 12);
        for step in 1..=24 {
            trend.observe(1.0);
            seasonal.observe(1.0);
            assert_eq!(trend.eligible(), step >= MIN_SCORED as usize, "step {step}");
            assert_eq!(seasonal.eligible(), step >= 24, "step {step}");
        }
        assert_eq!(
            seasonal.rank(),
            SEASONAL_PENALTY * seasonal.mean_squared_error()
        );
    }

    #[test]
    fn an_absurd_error_does_not_stick_at_infinity() {
        let mut candidate = Candidate::trend(0.5, 0.1);
        candidate.observe(-f64::MAX);
        candidate.observe(f64::MAX);
        assert!(candidate.mean_squared_error().is_finite());
    }

    #[test]
    fn params_display() {
        assert_eq!(
            Candidate::trend(0.2, 0.05).params().to_string(),
            "alpha=0.2 beta=0.05"
        );
        let seasonal = Candidate::seasonal(0.2, 0.05, 0.1, 12).params();
        assert_eq!(
            seasonal.to_string(),
            "alpha=0.2 beta=0.05 gamma=0.1 period=12"
        );
    }
}
