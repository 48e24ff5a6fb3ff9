//! Time-series models of backend latency and load.
//!
//! Each tick the predictor feeds every backend's two series, latency and load, one value
//! each (the time-decayed peak-EWMA that `p2c_peak_ewma` routes by is not here: it is
//! updated by every response, lock-free, as `crate::live::PeakRtt`). These model
//! regularly sampled series through the [`Forecaster`] trait: [`Holt`] (level and trend) and
//! [`HoltWinters`] (plus an additive season) are run side by side by
//! [`AdaptiveForecaster`], which scores a small fixed grid of them by their recent one-step
//! errors and forecasts with the best, so the parameters are refitted online rather than by
//! offline retraining. Now and then (not every tick) [`detect_period`] looks for a season in
//! a history buffer, and the predictor hands what it finds to
//! [`AdaptiveForecaster::set_period`]. [`ResidualDetector`] flags forecast errors far
//! outside the recent ones (the snapshot's anomaly flag), and [`Accuracy`] keeps the rolling
//! MAE and MAPE of the published forecasts for the status page.
//!
//! **Input.** Nothing here panics on any `f64`. Forecasters treat a non-finite value as a
//! missing step (they advance on their own forecast, so seasons stay aligned with time) and
//! accept negative values as ordinary ones; the detector and accuracy tracker ignore
//! non-finite values. Each model's docs say exactly what it does. Time is always an argument (nanoseconds or steps); memory is
//! allocated at construction (and in `set_period`), never in `observe` or `forecast`.
//!
//! **Cost per tick.** The predictor must tick 1,000 backends × 2 series in 1 ms: 500 ns per
//! series. Per `observe`, counting float operations:
//!
//! | model | cost |
//! |---|---|
//! | [`Holt`] | about 10 flops |
//! | [`HoltWinters`] | about 15 flops, one seasonal read and write |
//! | [`AdaptiveForecaster`] | about 130 flops with 6 candidates, 350 with a period (14) |
//! | [`ResidualDetector`] | a window copy, two selections: about 8·window comparisons and flops |
//! | [`Accuracy`] | about 10 flops |
//!
//! A series with a period, a detector over 32 residuals and an accuracy tracker is about 700
//! simple operations, most of them the detector's branchy selections: that fits the budget on
//! one core, but not by a wide margin, so keep detector windows at 16–32. The seasonal state
//! (8 candidates × 8·period bytes per series) is what may fall out of cache.

pub mod accuracy;
pub mod anomaly;
mod candidate;
pub mod holt;
pub mod holt_winters;
pub mod refit;
pub mod seasonality;

#[cfg(test)]
mod testutil;

pub use accuracy::Accuracy;
pub use anomaly::ResidualDetector;
pub use candidate::Params;
pub use holt::Holt;
pub use holt_winters::HoltWinters;
pub use refit::AdaptiveForecaster;
pub use seasonality::detect_period;

/// A forecaster of one regularly sampled series (one value per predictor tick).
pub trait Forecaster: Send {
    /// Feeds the value observed at the next step.
    fn observe(&mut self, value: f64);
    /// The forecast `steps` (>= 1) steps after the last observation.
    fn forecast(&self, steps: usize) -> f64;
    /// Short model name for status pages.
    fn name(&self) -> &'static str;
}

/// A smoothing factor clamped to `[0, 1]`, or `fallback` for NaN.
fn smoothing_factor(value: f64, fallback: f64) -> f64 {
    if value.is_nan() {
        fallback
    } else {
        value.clamp(0.0, 1.0)
    }
}
