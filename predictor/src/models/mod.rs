//! Time-series models of backend latency and load.
//!
//! Each tick the predictor feeds every backend's two series, latency and load, one value
//! each. [`PeakEwma`] is the time-decayed latency estimate that `p2c_peak_ewma` routes by; it
//! takes the time of each sample and read as an argument and needs no ticks. The rest model
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
//! accept negative values as ordinary ones; `PeakEwma` ignores negative and non-finite
//! samples; the detector and accuracy tracker ignore non-finite values. Each model's docs say
//! exactly what it does. Time is always an argument (nanoseconds or steps); memory is
//! allocated at construction (and in `set_period`), never in `observe` or `forecast`.
//!
//! **Cost per tick.** The predictor must tick 1,000 backends × 2 series in 1 ms, i.e.
//! 500 ns per series. Per `observe`, counting float operations:
//!
//! | model | cost |
//! |---|---|
//! | [`PeakEwma`] (per sample) | 1 `exp`, 1 division, about 5 flops |
//! | [`Holt`] | about 10 flops |
//! | [`HoltWinters`] | about 15 flops, one seasonal read and write |
//! | [`AdaptiveForecaster`] | about 130 flops (6 candidates); 350 with a period (14) |
//! | [`ResidualDetector`] | about 8·window comparisons and flops (250 for a window of 32) |
//! | [`Accuracy`] | about 10 flops |
//!
//! So a series with a period, a 32-residual detector and an accuracy tracker costs about 600
//! simple operations, well under the budget on one core if its state is in cache; the
//! seasonal buffers (8 candidates × 8·period bytes per series) are what can fall out of it.

pub mod accuracy;
pub mod anomaly;
pub mod holt;
pub mod holt_winters;
pub mod peak_ewma;
pub mod refit;
pub mod seasonality;

#[cfg(test)]
mod testutil;

pub use accuracy::Accuracy;
pub use anomaly::ResidualDetector;
pub use holt::Holt;
pub use holt_winters::HoltWinters;
pub use peak_ewma::{decay_weight, PeakEwma};
pub use refit::{AdaptiveForecaster, Params};
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
