//! The models together, as the predictor uses them on one series: detect a season from
//! history, forecast with the adaptive model, track accuracy, flag anomalous residuals.

use std::f64::consts::TAU;

use augur_predictor::models::{
    detect_period, Accuracy, AdaptiveForecaster, Forecaster, Holt, HoltWinters, ResidualDetector,
};
use augur_predictor::sampling::Rng;

/// Box–Muller over the policies' splitmix64: reproducible Gaussian noise.
struct Noise(Rng);

impl Noise {
    fn uniform(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (TAU * self.uniform()).cos()
    }
}

const PERIOD: usize = 30;
const HORIZON: usize = 5;
const SPIKE_AT: usize = 1_100;

/// A load-like series: a daily-style cycle, slow growth, noise, and one spike.
fn load(t: usize, noise: &mut Noise) -> f64 {
    let cycle = 20.0 * (TAU * t as f64 / PERIOD as f64).sin();
    let spike = if t == SPIKE_AT { 40.0 } else { 0.0 };
    200.0 + 0.02 * t as f64 + cycle + 2.0 * noise.gaussian() + spike
}

#[test]
fn models_pipeline_detects_the_season_forecasts_it_and_flags_the_spike() {
    let mut noise = Noise(Rng::new(2024));
    let mut history = Vec::with_capacity(1_200);
    let mut scratch = vec![0.0; 121];
    let mut adaptive = AdaptiveForecaster::new();
    let mut plain = AdaptiveForecaster::new();
    let mut accuracy = Accuracy::new(HORIZON, 3 * PERIOD);
    let mut plain_accuracy = Accuracy::new(HORIZON, 3 * PERIOD);
    let mut detector = ResidualDetector::new(32, 4.0);
    let mut flagged = Vec::new();

    for t in 0..1_200 {
        let value = load(t, &mut noise);
        if t >= PERIOD {
            let residual = value - adaptive.forecast(1);
            if detector.observe(residual) {
                flagged.push(t);
            }
        }
        adaptive.observe(value);
        plain.observe(value);
        history.push(value);
        // The predictor would do this now and then, not every tick.
        if t % 200 == 199 {
            let found = detect_period(&history, 2, 120, &mut scratch);
            adaptive.set_period(found.map(|(period, _)| period));
        }
        accuracy.observe(adaptive.forecast(HORIZON), value);
        plain_accuracy.observe(plain.forecast(HORIZON), value);
    }

    assert_eq!(adaptive.period(), Some(PERIOD));
    assert_eq!(adaptive.best().0, "holt_winters", "{}", adaptive.best().1);
    let (seasonal_mae, plain_mae) = (accuracy.mae().unwrap(), plain_accuracy.mae().unwrap());
    assert!(
        seasonal_mae < 0.5 * plain_mae,
        "MAE at horizon {HORIZON}: {seasonal_mae:.2} with the season, {plain_mae:.2} without"
    );
    assert!(accuracy.mape().unwrap() < 0.02);
    assert!(flagged.contains(&SPIKE_AT), "flagged {flagged:?}");
    assert!(flagged.len() <= 12, "too many false alarms: {flagged:?}");
    assert_eq!(detector.anomalies_total(), flagged.len() as u64);
}

#[test]
fn models_forecasters_work_as_trait_objects() {
    let mut forecasters: Vec<Box<dyn Forecaster>> = vec![
        Box::new(Holt::new(0.5, 0.1)),
        Box::new(HoltWinters::new(0.5, 0.1, 0.2, 4)),
        Box::new(AdaptiveForecaster::new()),
    ];
    for forecaster in &mut forecasters {
        for t in 0..100 {
            forecaster.observe(10.0 + t as f64);
        }
        let forecast = forecaster.forecast(1);
        assert!(
            (forecast - 110.0).abs() < 0.5,
            "{}: {forecast}",
            forecaster.name()
        );
    }
    let names: Vec<_> = forecasters.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["holt", "holt_winters", "adaptive"]);
}
