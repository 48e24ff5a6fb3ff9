//! The predictor's tick: drain observations, update each backend's models, forecast over the
//! horizon, flag anomalies, and build the next `Snapshot`.
//!
//! Per backend and tick: the mean latency of the requests that completed in the tick, and
//! their arrival rate, each feed an `AdaptiveForecaster` (Holt, or Holt-Winters once a season
//! is detected, parameters refitted online). The forecast for the next tick is compared with
//! what happened: a residual far outside the recent ones (`ResidualDetector`, median/MAD)
//! flags an anomaly, which multiplies the backend's latency by a penalty that decays back
//! to one: with a 2 s half-life, or 0.5 s once the backend answers at the latency expected
//! before the anomaly again (a stall that is over). Utilisation comes from the backend's own load reports (ORCA), scaled by the predicted
//! change in its arrival rate over the horizon. A backend that gets no traffic has its
//! latency estimate relaxed toward zero over `relax` (as a peak-EWMA decays), so one that
//! was avoided after a stall is tried again. Everything takes `now` from the caller.

use std::time::Duration;

use crate::models::{detect_period, Accuracy, AdaptiveForecaster, Forecaster, ResidualDetector};
use crate::recorder::{Observation, Outcome};
use crate::snapshot::{BackendId, Forecast, Snapshot};

/// Settings of the predictor (from the config's `predictor:` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictorSettings {
    /// Time between ticks.
    pub tick: Duration,
    /// How far ahead utilisation is forecast.
    pub horizon: Duration,
    /// How far ahead latency is forecast (traffic moves this much before a predicted rise).
    pub lead: Duration,
    /// Time over which an idle backend's latency estimate relaxes (1/e).
    pub relax: Duration,
    /// Robust z-score above which a forecast error is an anomaly.
    pub anomaly_k: f64,
}

impl Default for PredictorSettings {
    fn default() -> Self {
        PredictorSettings {
            tick: Duration::from_millis(100),
            horizon: Duration::from_secs(5),
            lead: Duration::from_secs(1),
            relax: Duration::from_secs(10),
            anomaly_k: 5.0,
        }
    }
}

/// Ticks of history kept per backend for season detection (one minute at 100 ms).
const HISTORY: usize = 600;
/// Seasons are looked for in the history averaged over this many ticks (autocorrelation
/// costs samples × lags, so this divides its cost by DECIMATE²).
const DECIMATE: usize = 5;
/// Season detection runs for each backend every this many ticks (staggered by backend).
const SEASON_EVERY: u64 = 50;
/// Residuals the anomaly detector looks back over.
const RESIDUAL_WINDOW: usize = 16;
/// Pairs the accuracy figures are computed over.
const ACCURACY_WINDOW: usize = 100;
/// Weight of each tick's mean report in the smoothed utilisation.
const UTILIZATION_SMOOTHING: f64 = 0.3;
/// The most a backend's own predicted slow-down may scale its utilisation forecast by.
const MAX_SLOWDOWN: f64 = 3.0;
/// A predicted slow-down counts only when the rise exceeds this many mean absolute errors
/// of the latency model's forecasts at the horizon (measured, what was predicted then against
/// what happened).
const SIGNIFICANT_ERRORS: f64 = 2.0;
/// A latency above its forecast by at least this share is material enough to be an anomaly.
const MATERIAL_SHARE: f64 = 0.5;
/// Largest anomaly penalty.
const MAX_PENALTY: f64 = 10.0;

/// Half-life of an anomaly penalty once the backend answers at its normal latency again.
const RECOVERED_HALF_LIFE_SECS: f64 = 0.5;
/// How long the recent latency peak is remembered (1/e), in seconds.
const PEAK_MEMORY_SECS: f64 = 60.0;
/// The lead-time forecast may exceed the recent peak by at most this factor: enough to
/// extrapolate a real ramp or a learned seasonal rise, not a trend read from one step.
const PEAK_HEADROOM: f64 = 1.5;

/// Everything the predictor keeps about one backend.
#[derive(Debug)]
struct BackendModel {
    // This tick's accumulation.
    completed: u32,
    latency_sum_ms: f64,
    failures: u32,
    reported_sum: f64,
    reported_count: u32,
    // Models.
    latency: AdaptiveForecaster,
    rate: AdaptiveForecaster,
    residuals: ResidualDetector,
    accuracy: Accuracy,
    history: Vec<f64>,
    history_next: usize,
    // State carried between ticks.
    forecast_next_ms: f64,
    last_observed_ms: f64,
    /// When the latest latency sample (a request answered, even with a 5xx) completed, ns.
    last_sample_at: Option<u64>,
    /// Running maximum of observed latency, decaying over `PEAK_MEMORY`.
    recent_peak_ms: f64,
    /// The latency estimate in the last snapshot.
    published_ms: f64,
    rate_now: f64,
    utilization: f64,
    error_rate: f64,
    penalty: f64,
    /// The latency expected just before the current anomaly was flagged: back at it, the
    /// backend has recovered and its penalty may go faster.
    normal_ms: f64,
    idle_ticks: u64,
    age_ticks: u64,
    anomalies: u64,
}

impl BackendModel {
    fn new(horizon_steps: usize, anomaly_k: f64) -> Self {
        BackendModel {
            completed: 0,
            latency_sum_ms: 0.0,
            failures: 0,
            reported_sum: 0.0,
            reported_count: 0,
            latency: AdaptiveForecaster::new(),
            rate: AdaptiveForecaster::new(),
            residuals: ResidualDetector::new(RESIDUAL_WINDOW, anomaly_k),
            accuracy: Accuracy::new(horizon_steps, ACCURACY_WINDOW),
            history: vec![f64::NAN; HISTORY],
            history_next: 0,
            forecast_next_ms: f64::NAN,
            last_observed_ms: f64::NAN,
            last_sample_at: None,
            recent_peak_ms: 0.0,
            published_ms: 0.0,
            rate_now: 0.0,
            utilization: 0.0,
            error_rate: 0.0,
            penalty: 1.0,
            normal_ms: f64::NAN,
            idle_ticks: 0,
            age_ticks: 0,
            anomalies: 0,
        }
    }
}

/// What the predictor knows of one backend, for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendReport {
    /// Latency observed in the last tick with traffic, ms (NaN before any).
    pub observed_ms: f64,
    /// Latency forecast for the next tick, ms (NaN before any data).
    pub forecast_ms: f64,
    /// Requests per second in the last tick.
    pub rate: f64,
    /// Mean absolute error of the latency forecast made one horizon ago.
    pub mae_ms: Option<f64>,
    /// Mean absolute percentage error of the same.
    pub mape: Option<f64>,
    /// Anomalies flagged so far.
    pub anomalies: u64,
    /// Season found in the latency series, in ticks.
    pub period: Option<usize>,
    /// The latency model currently chosen.
    pub model: &'static str,
    /// When the latest latency sample completed (the caller's clock, ns); `None` before any.
    /// An avoided backend sends none: its age says how stale what is known of it is.
    pub last_sample_at_nanos: Option<u64>,
}

/// The predictor: models for every backend, and the snapshot they produce each tick.
#[derive(Debug)]
pub struct Predictor {
    settings: PredictorSettings,
    models: Vec<Option<BackendModel>>,
    version: u64,
    ticks: u64,
    scratch: Vec<f64>,
    series: Vec<f64>,
    horizon_steps: usize,
    lead_steps: usize,
}

impl Predictor {
    /// A predictor with no backends yet.
    pub fn new(settings: PredictorSettings) -> Self {
        let tick = settings.tick.as_secs_f64().max(1e-3);
        let steps = |d: Duration| ((d.as_secs_f64() / tick).round() as usize).max(1);
        Predictor {
            settings,
            models: Vec::new(),
            version: 0,
            ticks: 0,
            scratch: vec![0.0; HISTORY / DECIMATE / 2 + 1],
            series: vec![0.0; HISTORY / DECIMATE],
            horizon_steps: steps(settings.horizon),
            lead_steps: steps(settings.lead),
        }
    }

    fn model(&mut self, id: BackendId) -> &mut BackendModel {
        let i = id as usize;
        if self.models.len() <= i {
            self.models.resize_with(i + 1, || None);
        }
        let (horizon, k) = (self.horizon_steps, self.settings.anomaly_k);
        self.models[i].get_or_insert_with(|| BackendModel::new(horizon, k))
    }

    /// Makes sure `id` has a model (so it appears in snapshots before its first request).
    pub fn track(&mut self, id: BackendId) {
        self.model(id);
    }

    /// Feeds one observation into the current tick.
    pub fn observe(&mut self, o: &Observation) {
        let m = self.model(o.backend);
        match o.outcome {
            Outcome::Ok | Outcome::ServerError => {
                m.completed += 1;
                m.latency_sum_ms += o.total_nanos as f64 / 1e6;
                m.last_sample_at = Some(m.last_sample_at.map_or(o.at_nanos, |t| t.max(o.at_nanos)));
                if o.outcome == Outcome::ServerError {
                    m.failures += 1;
                }
            }
            Outcome::ConnectFailure | Outcome::Broken => m.failures += 1,
        }
        if let Some(u) = o
            .reported_utilization
            .map(f64::from)
            .filter(|u| u.is_finite() && *u >= 0.0)
        {
            m.reported_sum += u;
            m.reported_count += 1;
        }
    }

    /// Closes the tick at `now_nanos`: updates every model and returns the next snapshot.
    pub fn tick(&mut self, now_nanos: u64) -> Snapshot {
        self.ticks += 1;
        self.version += 1;
        let settings = self.settings;
        let tick_secs = settings.tick.as_secs_f64().max(1e-3);
        let relax_factor = (-tick_secs / settings.relax.as_secs_f64().max(1e-3)).exp();
        let peak_decay = (-tick_secs / PEAK_MEMORY_SECS).exp();
        let penalty_decay = 0.5f64.powf(tick_secs / 2.0); // half-life 2 s
        let recovered_decay = 0.5f64.powf(tick_secs / RECOVERED_HALF_LIFE_SECS);
        let (horizon, lead) = (self.horizon_steps, self.lead_steps);

        let mut backends = Vec::with_capacity(self.models.len());
        for (id, slot) in self.models.iter_mut().enumerate() {
            let Some(m) = slot.as_mut() else {
                backends.push(Forecast::default());
                continue;
            };
            m.age_ticks += 1;
            let observed = if m.completed > 0 {
                m.latency_sum_ms / f64::from(m.completed)
            } else {
                f64::NAN
            };
            let attempts = m.completed + m.failures;
            m.rate_now = f64::from(m.completed) / tick_secs;
            if attempts > 0 {
                let share = f64::from(m.failures) / f64::from(attempts);
                m.error_rate = 0.8 * m.error_rate + 0.2 * share;
            }

            // Anomaly: this tick against what was forecast for it.
            if observed.is_finite() && m.forecast_next_ms.is_finite() {
                let residual = observed - m.forecast_next_ms;
                // Flag only what is both unusual and material: half again the forecast.
                let material = residual > MATERIAL_SHARE * m.forecast_next_ms.max(1.0);
                if m.residuals.observe(residual) && material {
                    m.anomalies += 1;
                    let jump = 1.0 + residual / m.forecast_next_ms.max(1.0);
                    if m.penalty < 1.05 || !m.normal_ms.is_finite() {
                        m.normal_ms = m.forecast_next_ms;
                    } else {
                        m.normal_ms = m.normal_ms.min(m.forecast_next_ms);
                    }
                    m.penalty = m.penalty.max(jump).min(MAX_PENALTY);
                }
            }
            // Answers back at the latency expected before the anomaly: the penalty goes
            // faster (a stall that is over); otherwise it fades over its half-life.
            let recovered = observed.is_finite()
                && m.normal_ms.is_finite()
                && observed <= (1.0 + MATERIAL_SHARE) * m.normal_ms.max(1.0);
            let decay = if recovered {
                recovered_decay
            } else {
                penalty_decay
            };
            m.penalty = 1.0 + (m.penalty - 1.0) * decay;

            // Models (an idle tick is a missing value: the model advances on its forecast).
            m.latency.observe(observed);
            m.rate.observe(m.rate_now);
            m.recent_peak_ms *= peak_decay;
            if observed.is_finite() {
                m.recent_peak_ms = m.recent_peak_ms.max(observed);
                m.last_observed_ms = observed;
                m.idle_ticks = 0;
            } else {
                m.idle_ticks += 1;
            }
            m.history[m.history_next] = if observed.is_finite() {
                observed
            } else {
                m.latency.forecast(1)
            };
            m.history_next = (m.history_next + 1) % HISTORY;
            let due = (self.ticks + id as u64).is_multiple_of(SEASON_EVERY);
            if due && m.age_ticks as usize >= HISTORY {
                // Oldest first, averaged over DECIMATE ticks.
                for (k, out) in self.series.iter_mut().enumerate() {
                    let sum: f64 = (0..DECIMATE)
                        .map(|j| m.history[(m.history_next + k * DECIMATE + j) % HISTORY])
                        .sum();
                    *out = sum / DECIMATE as f64;
                }
                let period =
                    detect_period(&self.series, 2, HISTORY / DECIMATE / 2, &mut self.scratch)
                        .map(|(p, _)| p * DECIMATE);
                m.latency.set_period(period);
            }

            let next = m.latency.forecast(1);
            m.forecast_next_ms = next;
            m.accuracy.observe(m.latency.forecast(horizon), observed);

            // Latency over the lead time, relaxed while idle, and bounded by what was actually
            // observed lately: an idle model advances on its own trend, which must not grow
            // the estimate of a backend nobody is sending to.
            let ahead = next.max(m.latency.forecast(lead));
            let ahead = if m.recent_peak_ms > 0.0 {
                ahead.min(PEAK_HEADROOM * m.recent_peak_ms)
            } else {
                ahead
            };
            let latency_ms = if m.idle_ticks > 0 {
                // Avoided: decay from the last estimate published while traffic flowed.
                m.published_ms * relax_factor
            } else if ahead.is_finite() {
                ahead.max(0.0)
            } else {
                0.0
            };
            m.published_ms = latency_ms;

            // Utilisation: this tick's reports averaged and smoothed across ticks, then scaled
            // by this backend's own predicted slow-down over the horizon (its latency
            // forecast against the next tick's: at the same arrival rate, a backend that serves
            // k times slower is k times as busy). Its arrival rate is not extrapolated: that
            // rate is mostly the balancer's own doing (traffic moved to or from it), and
            // extrapolating it fed routing back into routing; demand growth of the whole pool
            // is what standby planning forecasts (`crate::demand`).
            if m.reported_count > 0 {
                let tick_mean = m.reported_sum / f64::from(m.reported_count);
                m.utilization += UTILIZATION_SMOOTHING * (tick_mean - m.utilization);
            }
            let slowdown = if m.idle_ticks == 0 && next.is_finite() && next > 0.0 {
                let cap = if m.recent_peak_ms > 0.0 {
                    PEAK_HEADROOM * m.recent_peak_ms
                } else {
                    f64::INFINITY
                };
                let peak = [horizon / 4, horizon / 2, horizon]
                    .into_iter()
                    .map(|h| m.latency.forecast(h.max(1)).min(cap))
                    .filter(|l| l.is_finite())
                    .fold(next, f64::max);
                // A rise within the model's own measured error at the horizon is not a
                // forecast of anything.
                let error = m.accuracy.mae().unwrap_or(f64::INFINITY);
                if peak - next > SIGNIFICANT_ERRORS * error {
                    (peak / next).clamp(1.0, MAX_SLOWDOWN)
                } else {
                    1.0
                }
            } else {
                1.0
            };

            backends.push(Forecast {
                latency_ms,
                observed_latency_ms: if m.idle_ticks == 0 { observed } else { 0.0 },
                utilization: (m.utilization * slowdown).min(10.0),
                utilization_now: m.utilization,
                anomaly_penalty: m.penalty,
                error_rate: m.error_rate,
                eligibility: Default::default(),
                woken: false,
            });
            m.completed = 0;
            m.latency_sum_ms = 0.0;
            m.failures = 0;
            m.reported_sum = 0.0;
            m.reported_count = 0;
        }
        Snapshot {
            version: self.version,
            built_at_nanos: now_nanos,
            backends,
        }
    }

    /// What the predictor knows of `id`.
    pub fn report(&self, id: BackendId) -> Option<BackendReport> {
        let m = self.models.get(id as usize)?.as_ref()?;
        Some(BackendReport {
            observed_ms: m.last_observed_ms,
            forecast_ms: m.forecast_next_ms,
            rate: m.rate_now,
            mae_ms: m.accuracy.mae(),
            mape: m.accuracy.mape(),
            anomalies: m.anomalies,
            period: m.latency.period(),
            model: m.latency.best().0,
            last_sample_at_nanos: m.last_sample_at,
        })
    }

    /// Ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 100_000_000;

    fn request(backend: BackendId, at: u64, ms: f64) -> Observation {
        Observation {
            backend,
            at_nanos: at,
            first_byte_nanos: (ms * 1e6) as u64,
            total_nanos: (ms * 1e6) as u64,
            outcome: Outcome::Ok,
            bytes: 0,
            reported_utilization: None,
        }
    }

    #[test]
    fn steady_backends_get_their_latency_forecast() {
        let mut p = Predictor::new(PredictorSettings::default());
        let mut snap = Snapshot::default();
        for t in 0..100 {
            for _ in 0..10 {
                p.observe(&request(0, t * TICK, 5.0));
                p.observe(&request(1, t * TICK, 20.0));
            }
            snap = p.tick(t * TICK);
        }
        assert!(
            (snap.backends[0].latency_ms - 5.0).abs() < 0.5,
            "{:?}",
            snap.backends[0]
        );
        assert!(
            (snap.backends[1].latency_ms - 20.0).abs() < 2.0,
            "{:?}",
            snap.backends[1]
        );
        assert_eq!(snap.version, 100);
        let r = p.report(1).unwrap();
        assert!(r.mae_ms.unwrap() < 1.0, "{r:?}");
        assert!((r.rate - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_rising_trend_is_forecast_before_it_arrives() {
        let mut p = Predictor::new(PredictorSettings::default());
        let mut snap = Snapshot::default();
        for t in 0..60 {
            p.observe(&request(0, t * TICK, 10.0 + t as f64));
            snap = p.tick(t * TICK);
        }
        // Observed now ~69 ms; one second (10 ticks) ahead the trend says ~79.
        let f = snap.backends[0];
        assert!(f.latency_ms > f.observed_latency_ms + 5.0, "{f:?}");
    }

    #[test]
    fn a_sudden_stall_is_flagged_and_penalised_then_forgiven() {
        let mut p = Predictor::new(PredictorSettings::default());
        // Two backends alike, both stall once.
        for t in 0..50 {
            for b in 0..2 {
                p.observe(&request(b, t * TICK, 10.0 + (t % 3) as f64 * 0.1));
            }
            p.tick(t * TICK);
        }
        for b in 0..2 {
            p.observe(&request(b, 50 * TICK, 300.0));
        }
        let snap = p.tick(50 * TICK);
        let excess = snap.backends[0].anomaly_penalty - 1.0;
        assert!(excess > 1.0, "{:?}", snap.backends[0]);
        assert_eq!(p.report(0).unwrap().anomalies, 1);
        // Backend 0 answers at its normal latency again: the stall is over, the penalty
        // goes with a 0.5 s half-life. Backend 1 is not asked (avoided): 2 s half-life.
        let mut snap = snap;
        for t in 51..=70 {
            p.observe(&request(0, t * TICK, 10.0));
            snap = p.tick(t * TICK);
        }
        let recovered = (snap.backends[0].anomaly_penalty - 1.0) / excess;
        let avoided = (snap.backends[1].anomaly_penalty - 1.0) / excess;
        assert!((recovered - 1.0 / 16.0).abs() < 0.01, "{recovered}");
        assert!((avoided - 0.5).abs() < 0.02, "{avoided}");
        for t in 71..=250 {
            p.observe(&request(0, t * TICK, 10.0));
            snap = p.tick(t * TICK);
        }
        assert!(snap.backends[0].anomaly_penalty < 1.001);
        assert!(snap.backends[1].anomaly_penalty < 1.01);
    }

    #[test]
    fn a_report_says_when_the_latest_sample_came() {
        let mut p = Predictor::new(PredictorSettings::default());
        p.track(0);
        p.tick(TICK);
        assert_eq!(p.report(0).unwrap().last_sample_at_nanos, None);
        p.observe(&request(0, 5 * TICK, 10.0));
        // Observations may arrive out of order: the latest stays.
        p.observe(&request(0, 3 * TICK, 10.0));
        let failed = Observation {
            outcome: Outcome::ConnectFailure,
            ..request(0, 9 * TICK, 0.0)
        };
        p.observe(&failed);
        p.tick(10 * TICK);
        let report = p.report(0).unwrap();
        assert_eq!(
            report.last_sample_at_nanos,
            Some(5 * TICK),
            "a failure is no sample"
        );
    }

    #[test]
    fn idle_backends_relax_and_new_ones_appear() {
        let mut p = Predictor::new(PredictorSettings::default());
        for t in 0..20 {
            p.observe(&request(0, t * TICK, 100.0));
            p.tick(t * TICK);
        }
        let mut snap = Snapshot::default();
        for t in 20..120 {
            snap = p.tick(t * TICK);
        }
        // 10 s idle with a 10 s relax time: about 1/e of the estimate is left.
        let f = snap.backends[0];
        assert!(f.latency_ms < 45.0 && f.latency_ms > 25.0, "{f:?}");
        p.track(3);
        let snap = p.tick(120 * TICK);
        assert_eq!(snap.backends.len(), 4);
        assert_eq!(snap.backends[2], Forecast::default());
    }

    /// Feeds `ticks` ticks of `per_tick` requests at `latency(t)` ms, each reporting 50% busy.
    fn run_reporting(
        p: &mut Predictor,
        ticks: u64,
        per_tick: impl Fn(u64) -> u64,
        latency: impl Fn(u64) -> f64,
    ) -> Forecast {
        let mut snap = Snapshot::default();
        for t in 0..ticks {
            for _ in 0..per_tick(t) {
                let mut o = request(0, t * TICK, latency(t));
                o.reported_utilization = Some(0.5);
                p.observe(&o);
            }
            snap = p.tick(t * TICK);
        }
        snap.backends[0]
    }

    #[test]
    fn reported_utilisation_is_scaled_by_a_predicted_slowdown() {
        // Service slows steadily: at the same arrivals the backend will be busier.
        let mut p = Predictor::new(PredictorSettings::default());
        let f = run_reporting(&mut p, 120, |_| 10, |t| 5.0 + 0.1 * t as f64);
        assert!((f.utilization_now - 0.5).abs() < 1e-6, "{f:?}");
        assert!(f.utilization > 0.6, "the slow-down ahead raises it: {f:?}");
    }

    #[test]
    fn neither_arrival_growth_nor_noise_scales_utilisation() {
        // More arrivals at one backend are mostly the balancer's own doing: not extrapolated.
        let mut p = Predictor::new(PredictorSettings::default());
        let f = run_reporting(&mut p, 120, |t| 10 + t, |_| 5.0);
        assert!((f.utilization - 0.5).abs() < 1e-6, "{f:?}");
        // Latency that only jitters predicts no slow-down.
        let mut p = Predictor::new(PredictorSettings::default());
        let f = run_reporting(&mut p, 120, |_| 10, |t| if t % 3 == 0 { 9.0 } else { 4.0 });
        assert!((f.utilization - 0.5).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn a_thousand_backends_tick_without_trouble() {
        let mut p = Predictor::new(PredictorSettings::default());
        for t in 0..5 {
            for b in 0..1000 {
                p.observe(&request(b, t * TICK, 5.0 + f64::from(b % 7)));
            }
            let snap = p.tick(t * TICK);
            assert_eq!(snap.backends.len(), 1000);
        }
    }

    #[test]
    fn a_periodic_degradation_is_learned_and_forecast_before_it_comes() {
        // 20 s square wave: 10 s at 10 ms, 10 s at 40 ms (S3's antagonist).
        let period = 200u64;
        let latency = |t: u64| {
            if (t % period) < period / 2 {
                10.0
            } else {
                40.0
            }
        };
        let mut p = Predictor::new(PredictorSettings::default());
        let mut early_warnings = 0;
        let mut rises = 0;
        for t in 0..2400u64 {
            for _ in 0..5 {
                p.observe(&request(0, t * TICK, latency(t)));
            }
            let snap = p.tick(t * TICK);
            // Five ticks (0.5 s) before each rise, after the first two minutes.
            if t >= 1200 && t % period == period / 2 - 5 {
                rises += 1;
                let f = snap.backends[0];
                assert_eq!(f.observed_latency_ms, 10.0);
                if f.latency_ms > 25.0 {
                    early_warnings += 1;
                }
            }
        }
        let r = p.report(0).unwrap();
        assert!(r.period.is_some_and(|p| (190..=210).contains(&p)), "{r:?}");
        assert_eq!(r.model, "holt_winters", "{r:?}");
        assert!(
            early_warnings * 10 >= rises * 8,
            "{early_warnings} of {rises} rises forecast: {r:?}"
        );
    }

    #[test]
    fn a_single_step_is_not_extrapolated_into_a_runaway_trend() {
        let mut p = Predictor::new(PredictorSettings::default());
        let mut snap = Snapshot::default();
        for t in 0..100 {
            let ms = if t < 90 { 8.0 } else { 65.0 };
            p.observe(&request(0, t * TICK, ms));
            snap = p.tick(t * TICK);
        }
        let f = snap.backends[0];
        assert!((60.0..=1.5 * 65.0 + 1e-9).contains(&f.latency_ms), "{f:?}");
        // Then it is avoided (no more samples): the estimate only relaxes, never grows.
        let mut last = f.latency_ms;
        for t in 100..400 {
            let f = p.tick(t * TICK).backends[0];
            assert!(
                f.latency_ms <= last + 1e-9,
                "grew at tick {t}: {last} -> {}",
                f.latency_ms
            );
            last = f.latency_ms;
        }
        assert!(last < 10.0, "relaxed after 30 s idle: {last}");
    }
}
