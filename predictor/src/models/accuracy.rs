//! Rolling accuracy of forecasts made a fixed number of steps ahead.

/// Actuals at most this far from zero are left out of the MAPE (their percentage error is
/// meaningless), though they still count in the MAE.
pub const NEAR_ZERO: f64 = 1e-9;

/// Rolling mean absolute error (MAE) and mean absolute percentage error (MAPE) of forecasts
/// made `horizon_steps` ahead, over the last `window` forecast–actual pairs.
///
/// Each step, [`Accuracy::observe`] takes the forecast made now for `horizon_steps` ahead and
/// the actual value observed now; the actual is paired with the forecast given
/// `horizon_steps` calls earlier. A pair with a non-finite forecast or actual is skipped (it
/// does not enter the window) but the step still counts, so pairing stays aligned with time.
/// Cost per observe: about ten float operations (the sums are kept running and recomputed
/// from the window once per `window` pairs, so rounding does not accumulate).
#[derive(Debug, Clone)]
pub struct Accuracy {
    /// Forecasts waiting for their actual, by step modulo the horizon.
    pending: Vec<f64>,
    slot: usize,
    primed: bool,
    absolute_errors: Vec<f64>,
    /// Relative errors, NaN where the actual was near zero.
    relative_errors: Vec<f64>,
    next: usize,
    filled: usize,
    absolute_sum: f64,
    relative_sum: f64,
    relative_count: usize,
    since_resum: usize,
}

impl Accuracy {
    /// Accuracy of `horizon_steps`-ahead forecasts (at least 1) over the last `window` pairs
    /// (at least 1). Allocates here and nowhere else.
    pub fn new(horizon_steps: usize, window: usize) -> Self {
        let window = window.max(1);
        Self {
            pending: vec![f64::NAN; horizon_steps.max(1)],
            slot: 0,
            primed: false,
            absolute_errors: vec![0.0; window],
            relative_errors: vec![f64::NAN; window],
            next: 0,
            filled: 0,
            absolute_sum: 0.0,
            relative_sum: 0.0,
            relative_count: 0,
            since_resum: 0,
        }
    }

    /// How many steps ahead the forecasts are.
    pub fn horizon(&self) -> usize {
        self.pending.len()
    }

    /// Takes this step's forecast (for `horizon` steps ahead) and this step's actual value.
    pub fn observe(&mut self, forecast: f64, actual: f64) {
        if self.primed {
            let made = self.pending[self.slot];
            self.record(made, actual);
        }
        self.pending[self.slot] = forecast;
        self.slot += 1;
        if self.slot == self.pending.len() {
            self.slot = 0;
            self.primed = true;
        }
    }

    /// Mean absolute error over the window, `None` until there is a pair.
    pub fn mae(&self) -> Option<f64> {
        (self.filled > 0).then(|| self.absolute_sum.max(0.0) / self.filled as f64)
    }

    /// Mean absolute percentage error over the window as a fraction (0.05 is 5 %), `None`
    /// until there is a pair with an actual away from zero.
    pub fn mape(&self) -> Option<f64> {
        (self.relative_count > 0).then(|| self.relative_sum.max(0.0) / self.relative_count as f64)
    }

    /// How many pairs the window holds.
    pub fn pairs(&self) -> usize {
        self.filled
    }

    fn record(&mut self, forecast: f64, actual: f64) {
        let absolute = (actual - forecast).abs();
        if !absolute.is_finite() {
            return;
        }
        let relative = if actual.abs() > NEAR_ZERO {
            absolute / actual.abs()
        } else {
            f64::NAN
        };
        let relative = if relative.is_finite() {
            relative
        } else {
            f64::NAN
        };
        if self.filled == self.absolute_errors.len() {
            self.absolute_sum -= self.absolute_errors[self.next];
            let old = self.relative_errors[self.next];
            if !old.is_nan() {
                self.relative_sum -= old;
                self.relative_count -= 1;
            }
        } else {
            self.filled += 1;
        }
        self.absolute_errors[self.next] = absolute;
        self.relative_errors[self.next] = relative;
        self.absolute_sum += absolute;
        if !relative.is_nan() {
            self.relative_sum += relative;
            self.relative_count += 1;
        }
        self.next = (self.next + 1) % self.absolute_errors.len();
        self.since_resum += 1;
        if self.since_resum >= self.absolute_errors.len() {
            self.resum();
        }
    }

    fn resum(&mut self) {
        let live = ..self.filled;
        self.absolute_sum = self.absolute_errors[live].iter().sum();
        let relative = self.relative_errors[live].iter().filter(|r| !r.is_nan());
        self.relative_sum = relative.clone().sum();
        self.relative_count = relative.count();
        self.since_resum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn pairs_each_actual_with_the_forecast_from_horizon_steps_ago() {
        let mut accuracy = Accuracy::new(2, 3);
        accuracy.observe(10.0, 100.0);
        accuracy.observe(20.0, 100.0);
        assert_eq!((accuracy.mae(), accuracy.mape()), (None, None));
        accuracy.observe(30.0, 12.0); // pairs 10 with 12: error 2, 1/6
        assert!(close(accuracy.mae(), 2.0));
        assert!(close(accuracy.mape(), 1.0 / 6.0));
        accuracy.observe(40.0, 0.0); // pairs 20 with 0: error 20, no percentage
        accuracy.observe(50.0, 25.0); // pairs 30 with 25: error 5, 0.2
        assert_eq!(accuracy.pairs(), 3);
        assert!(close(accuracy.mae(), 27.0 / 3.0));
        assert!(close(accuracy.mape(), (1.0 / 6.0 + 0.2) / 2.0));
        accuracy.observe(60.0, 44.0); // pairs 40 with 44: error 4, 1/11; drops the first
        assert!(close(accuracy.mae(), 29.0 / 3.0));
        assert!(close(accuracy.mape(), (0.2 + 1.0 / 11.0) / 2.0));
        accuracy.observe(70.0, -60.0); // pairs 50 with −60: error 110, 110/60
        assert!(close(accuracy.mae(), 119.0 / 3.0));
        assert!(close(
            accuracy.mape(),
            (0.2 + 1.0 / 11.0 + 110.0 / 60.0) / 3.0
        ));
    }

    #[test]
    fn horizon_one_and_zero_pair_with_the_previous_step() {
        for horizon in [0, 1] {
            let mut accuracy = Accuracy::new(horizon, 10);
            assert_eq!(accuracy.horizon(), 1);
            accuracy.observe(5.0, 1.0);
            assert_eq!(accuracy.mae(), None);
            accuracy.observe(7.0, 4.0);
            assert!(close(accuracy.mae(), 1.0));
            assert!(close(accuracy.mape(), 0.25));
        }
    }

    #[test]
    fn only_near_zero_actuals_give_no_mape() {
        let mut accuracy = Accuracy::new(1, 4);
        accuracy.observe(1.0, 0.0);
        accuracy.observe(1.0, 1e-12);
        assert!(close(accuracy.mae(), 1.0));
        assert_eq!(accuracy.mape(), None);
    }

    #[test]
    fn non_finite_pairs_are_skipped_but_keep_alignment() {
        let mut accuracy = Accuracy::new(2, 8);
        accuracy.observe(f64::NAN, 1.0);
        accuracy.observe(3.0, f64::INFINITY);
        accuracy.observe(4.0, 2.0); // pairs NaN: skipped
        assert_eq!(accuracy.pairs(), 0);
        accuracy.observe(f64::MAX, f64::NAN); // pairs 3 with NaN: skipped
        accuracy.observe(5.0, 6.0); // pairs 4 with 6
        assert!(close(accuracy.mae(), 2.0));
        accuracy.observe(1.0, -f64::MAX); // pairs MAX with −MAX: overflow, skipped
        assert_eq!(accuracy.pairs(), 1);
    }

    #[test]
    fn long_runs_stay_exact() {
        let mut accuracy = Accuracy::new(3, 50);
        let actual = |t: u64| 1e6 + (t % 97) as f64;
        for t in 0..100_000u64 {
            // Off by 0.1 and 0.3 alternately.
            accuracy.observe(actual(t + 3) + 0.1 + (t % 2) as f64 * 0.2, actual(t));
        }
        assert!(close(accuracy.mae().map(|m| (m * 1e6).round() / 1e6), 0.2));
    }
}
