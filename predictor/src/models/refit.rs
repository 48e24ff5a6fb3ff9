//! Online model selection: a fixed grid of smoothing models run side by side, the best one
//! recently forecasting.

use super::candidate::{Candidate, Params};
use super::holt_winters::MAX_PERIOD;
use super::Forecaster;
#[cfg(doc)]
use super::{Holt, HoltWinters};

/// Most candidates ever run at once (bounds the CPU per observe).
pub const MAX_CANDIDATES: usize = 16;

/// Holt candidates, always present: α × β.
const HOLT_GRID: [(f64, f64); 6] = [
    (0.2, 0.05),
    (0.2, 0.2),
    (0.5, 0.05),
    (0.5, 0.2),
    (0.8, 0.05),
    (0.8, 0.2),
];

/// Holt–Winters candidates while a period is set: α × β × γ. No α = 0.8: a level that
/// follows each value that closely leaves the season nothing to explain.
const SEASONAL_GRID: [(f64, f64, f64); 8] = [
    (0.2, 0.05, 0.1),
    (0.2, 0.05, 0.3),
    (0.2, 0.2, 0.1),
    (0.2, 0.2, 0.3),
    (0.5, 0.05, 0.1),
    (0.5, 0.05, 0.3),
    (0.5, 0.2, 0.1),
    (0.5, 0.2, 0.3),
];

const _: () = assert!(HOLT_GRID.len() + SEASONAL_GRID.len() <= MAX_CANDIDATES);

/// A challenger replaces the current best only with a rank below this fraction of its
/// rank, so forecasts do not flap between near-equal candidates.
const SWITCH_MARGIN: f64 = 0.95;

/// Forecasts with whichever of a fixed grid of candidates has been most accurate lately: the
/// parameters are refitted online, every step, instead of by offline retraining.
///
/// Six [`Holt`] candidates always run (α ∈ {0.2, 0.5, 0.8} × β ∈ {0.05, 0.2}); while a period
/// is set, eight [`HoltWinters`] candidates run too (α ∈ {0.2, 0.5} × β ∈ {0.05, 0.2} ×
/// γ ∈ {0.1, 0.3}). Before each observation every candidate's one-step forecast is compared
/// with it, and the candidate's score is the exponentially weighted mean of those squared
/// errors (memory about 50 steps). A candidate may forecast once it has 10 scores (a seasonal
/// one also once it has seen two periods); seasonal scores are ranked 10 % worse, and the
/// best changes only for a challenger ranked 5 % better. Non-finite observations are
/// passed on as missing steps and not scored.
///
/// Cost per observe: each candidate makes a one-step forecast (3 flops), scores it
/// (7 flops) and updates (Holt 10, Holt–Winters 15 flops plus one seasonal read and write),
/// then the best is chosen in one pass: about 130 flops with 6 candidates and 350 with 14,
/// plus 14 comparisons. No allocation except in [`AdaptiveForecaster::set_period`].
#[derive(Debug, Clone)]
pub struct AdaptiveForecaster {
    candidates: Vec<Candidate>,
    best: usize,
    period: Option<usize>,
}

impl AdaptiveForecaster {
    /// A forecaster with the Holt candidates only; see [`AdaptiveForecaster::set_period`].
    pub fn new() -> Self {
        let mut candidates = Vec::with_capacity(MAX_CANDIDATES);
        candidates.extend(
            HOLT_GRID
                .iter()
                .map(|&(alpha, beta)| Candidate::trend(alpha, beta)),
        );
        Self {
            candidates,
            best: 0,
            period: None,
        }
    }

    /// Adds seasonal candidates for a season of `period` steps (at least 2, at most
    /// [`MAX_PERIOD`]), or removes them with `None` (or a period under 2). Setting the period
    /// already set changes nothing; a new one starts new seasonal candidates, which compete
    /// once they have seen two periods. Allocates their state (about `8·period` bytes each).
    pub fn set_period(&mut self, period: Option<usize>) {
        let period = period.filter(|&p| p >= 2).map(|p| p.min(MAX_PERIOD));
        if period == self.period {
            return;
        }
        self.period = period;
        self.candidates.truncate(HOLT_GRID.len());
        if self.best >= self.candidates.len() {
            self.best = 0;
            self.choose_best();
        }
        if let Some(period) = period {
            self.candidates.extend(
                SEASONAL_GRID
                    .iter()
                    .map(|&(alpha, beta, gamma)| Candidate::seasonal(alpha, beta, gamma, period)),
            );
        }
    }

    /// The season length the seasonal candidates assume, if any.
    pub fn period(&self) -> Option<usize> {
        self.period
    }

    /// The model name and parameters of the candidate now forecasting.
    pub fn best(&self) -> (&'static str, Params) {
        let best = &self.candidates[self.best];
        (best.name(), best.params())
    }

    /// Root mean squared one-step error of the candidate now forecasting (exponentially
    /// weighted over about 50 steps); infinite before its first scored step.
    pub fn recent_error(&self) -> f64 {
        self.candidates[self.best].mean_squared_error().sqrt()
    }

    /// How many candidates are running.
    pub fn candidates(&self) -> usize {
        self.candidates.len()
    }

    fn choose_best(&mut self) {
        let mut challenger: Option<(usize, f64)> = None;
        for (index, candidate) in self.candidates.iter().enumerate() {
            if !candidate.eligible() {
                continue;
            }
            let rank = candidate.rank();
            if challenger.is_none_or(|(_, best)| rank < best) {
                challenger = Some((index, rank));
            }
        }
        let Some((challenger, rank)) = challenger else {
            return;
        };
        let current = &self.candidates[self.best];
        if !current.eligible() || rank < SWITCH_MARGIN * current.rank() {
            self.best = challenger;
        }
    }
}

impl Default for AdaptiveForecaster {
    fn default() -> Self {
        Self::new()
    }
}

impl Forecaster for AdaptiveForecaster {
    fn observe(&mut self, value: f64) {
        for candidate in &mut self.candidates {
            candidate.observe(value);
        }
        self.choose_best();
    }

    fn forecast(&self, steps: usize) -> f64 {
        self.candidates[self.best].forecast(steps)
    }

    fn name(&self) -> &'static str {
        "adaptive"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::Noise;
    use std::f64::consts::TAU;

    fn ramp(t: usize, noise: &mut Noise) -> f64 {
        100.0 + 2.0 * t as f64 + noise.gaussian()
    }

    fn seasonal(t: usize, noise: &mut Noise) -> f64 {
        50.0 + 10.0 * (TAU * t as f64 / 24.0).sin() + noise.gaussian()
    }

    #[test]
    fn chooses_holt_winters_on_a_seasonal_series() {
        let mut noise = Noise::new(8);
        let mut adaptive = AdaptiveForecaster::new();
        adaptive.set_period(Some(24));
        assert_eq!(adaptive.candidates(), 14);
        for t in 0..20 * 24 {
            adaptive.observe(seasonal(t, &mut noise));
        }
        let (name, params) = adaptive.best();
        assert_eq!(name, "holt_winters", "{params}");
        assert_eq!(params.period, Some(24));
        let error = adaptive.recent_error();
        assert!(error < 1.4, "one-step RMSE {error} with unit noise");
        let truth = 50.0 + 10.0 * (TAU * (20 * 24 + 5) as f64 / 24.0).sin();
        assert!((adaptive.forecast(6) - truth).abs() < 3.0);
    }

    #[test]
    fn chooses_holt_on_a_ramp_even_with_a_period_set() {
        for seed in 1..=3 {
            let mut noise = Noise::new(seed);
            let mut adaptive = AdaptiveForecaster::new();
            adaptive.set_period(Some(24));
            for t in 0..20 * 24 {
                adaptive.observe(ramp(t, &mut noise));
            }
            let (name, params) = adaptive.best();
            assert_eq!(name, "holt", "seed {seed}: {params}");
            let error = adaptive.recent_error();
            assert!((0.8..1.5).contains(&error), "seed {seed}: RMSE {error}");
            let truth = 100.0 + 2.0 * (20 * 24 - 1 + 10) as f64;
            assert!((adaptive.forecast(10) - truth).abs() < 0.02 * truth);
        }
    }

    #[test]
    fn without_a_period_only_holt_runs() {
        let mut noise = Noise::new(4);
        let mut adaptive = AdaptiveForecaster::default();
        assert_eq!(adaptive.candidates(), HOLT_GRID.len());
        assert_eq!(adaptive.recent_error(), f64::INFINITY);
        for t in 0..200 {
            adaptive.observe(seasonal(t, &mut noise));
        }
        assert_eq!(adaptive.best().0, "holt");
        assert_eq!(adaptive.best().1.gamma, None);
        assert!(adaptive.recent_error().is_finite());
    }

    #[test]
    fn setting_the_same_period_keeps_the_state_and_none_drops_seasons() {
        let mut noise = Noise::new(6);
        let mut adaptive = AdaptiveForecaster::new();
        adaptive.set_period(Some(24));
        for t in 0..10 * 24 {
            adaptive.observe(seasonal(t, &mut noise));
        }
        let before = (adaptive.best(), adaptive.forecast(3));
        adaptive.set_period(Some(24));
        assert_eq!((adaptive.best(), adaptive.forecast(3)), before);
        assert_eq!(adaptive.best().0, "holt_winters");
        adaptive.set_period(Some(1));
        assert_eq!(adaptive.period(), None);
        assert_eq!(adaptive.candidates(), HOLT_GRID.len());
        assert_eq!(adaptive.best().0, "holt");
        assert!(adaptive.forecast(3).is_finite());
        adaptive.set_period(Some(usize::MAX));
        assert_eq!(adaptive.period(), Some(MAX_PERIOD));
        assert!(adaptive.candidates() <= MAX_CANDIDATES);
    }

    /// A period-5 forecaster fed 300 points of a noisy ramp, the point at `t` replaced by
    /// `damage(t)` where that is some; `check` looks at the forecaster after each point.
    fn feed_damaged_ramp(
        seed: u64,
        damage: impl Fn(usize) -> Option<f64>,
        mut check: impl FnMut(usize, &AdaptiveForecaster),
    ) -> AdaptiveForecaster {
        let mut noise = Noise::new(seed);
        let mut adaptive = AdaptiveForecaster::new();
        adaptive.set_period(Some(5));
        for t in 0..300 {
            adaptive.observe(damage(t).unwrap_or_else(|| ramp(t, &mut noise)));
            check(t, &adaptive);
        }
        adaptive
    }

    #[test]
    fn missing_values_do_not_poison_the_scores() {
        let damage = |t| match t % 37 {
            3 => Some(f64::NAN),
            4 => Some(f64::INFINITY),
            _ => None,
        };
        let error = feed_damaged_ramp(9, damage, |_, _| {}).recent_error();
        assert!(error.is_finite() && error < 2.0, "RMSE {error}");
    }

    #[test]
    fn absurd_values_give_no_nan() {
        let damage = |t| match t {
            70 | 71 => Some(f64::MAX),
            80 => Some(-f64::MAX),
            _ => None,
        };
        feed_damaged_ramp(10, damage, |t, adaptive| {
            assert!(!adaptive.forecast(2).is_nan(), "step {t}");
            assert!(!adaptive.recent_error().is_nan(), "step {t}");
        });
    }

    #[test]
    fn ranking_favours_the_incumbent_and_the_simpler_model() {
        let mut adaptive = AdaptiveForecaster::new();
        adaptive.set_period(Some(4));
        for _ in 0..20 {
            adaptive.observe(1.0);
        }
        let set = |adaptive: &mut AdaptiveForecaster, index: usize, mse: f64| {
            let candidate = &mut adaptive.candidates[index];
            assert!(candidate.eligible());
            candidate.set_mean_squared_error(mse);
        };
        for index in 0..adaptive.candidates() {
            set(&mut adaptive, index, 10.0);
        }
        adaptive.best = 0;
        set(&mut adaptive, 1, 9.7);
        adaptive.choose_best();
        assert_eq!(
            adaptive.best, 0,
            "3 % better is within the switching margin"
        );
        set(&mut adaptive, 1, 9.0);
        adaptive.choose_best();
        assert_eq!(adaptive.best, 1, "10 % better switches");
        let seasonal = HOLT_GRID.len();
        set(&mut adaptive, seasonal, 8.4);
        adaptive.choose_best();
        assert_eq!(adaptive.best, 1, "8.4 ranks as 9.24: not 5 % better than 9");
        set(&mut adaptive, seasonal, 7.0);
        adaptive.choose_best();
        assert_eq!(adaptive.best, seasonal);
        assert!((adaptive.recent_error() - 7.0f64.sqrt()).abs() < 1e-12);
    }
}
