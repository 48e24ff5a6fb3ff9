//! A pool's demand forecast for standby planning: the concurrency its serving members see,
//! forecast as one series, trusted only as far as its own track record allows.
//!
//! Why one series and not the sum of per-backend forecasts: a backend's arrival rate is
//! mostly the balancer's own doing. When routing moves traffic from one backend to another,
//! one trend rises and one falls; extrapolated separately (and bounded below by zero, above
//! only by a growth cap) their sum rises although the pool's demand did not, which woke
//! standby backends at start-up in the scenario simulator. The pool's total is what clients
//! send; routing does not move it.
//!
//! The series is the pool's concurrency (requests in flight to its serving members, sampled
//! each tick, so queued requests count and a long request counts while it lasts, not when it
//! ends) averaged over 1 s buckets (a tick longer than a bucket fills as many), fed to a
//! responsive [`Holt`] model (α = 0.5, β = 0.2). Not the self-refitting
//! [`crate::models::AdaptiveForecaster`] of the backend models: ranked by one-step error on
//! a flat stretch, it settles on its smoothest candidate, whose trend then needs tens of
//! seconds to show a rise (measured in the scenario simulator: standbys woke 6 s into S9's
//! rise and some seeds broke the SLO; with this model none did). A responsive trend also
//! reads noise as rises, which is what the track record below discounts.
//!
//! A forecast `h` ahead is the level now plus the forecast rise, less the rise this model has
//! recently forecast `h` ahead and not seen happen (the 90th percentile of its over-forecasts
//! at that lead time over the last minute, measured: what was forecast `h` ago against what
//! came, 0 when it came in under). Until there is such a record at that lead time, no rise
//! is trusted at all and the forecast is the level now (planning is then reactive), which is
//! what a young forecast deserves: a trend read from a few seconds, extrapolated over a 30 s
//! warm-up, is noise. A forecast fall is taken as it is (the planner never sleeps below the
//! level now anyway).
//!
//! Time is an argument; nothing here reads a clock.

use std::collections::VecDeque;

use crate::models::{Forecaster, Holt};

/// Width of a bucket of the series, ns.
pub const BUCKET_NANOS: u64 = 1_000_000_000;
/// Most buckets one observation closes (a long tick, or the first after a stall).
const MAX_FILL: u64 = 60;
/// Over-forecasts at a horizon are kept for this many buckets.
const TRACK_WINDOW: usize = 60;
/// A forecast rise counts only net of the over-forecast this model has exceeded in only this
/// share of its recent forecasts at the same lead time (its 90th percentile).
pub const OVER_QUANTILE: f64 = 0.9;
/// Buckets the model sees before its forecasts are tracked (or trusted): its first trend is
/// the difference of its first two buckets, and start-up transients would stay in the record
/// for a whole window, discounting real rises a minute later.
const SETTLE: u64 = 10;
/// A rise at a horizon is trusted only once this many forecasts at it have been checked.
const MIN_TRACK: usize = 10;
/// Smoothing of the level and of the trend.
const ALPHA: f64 = 0.5;
const BETA: f64 = 0.2;
/// A forecast may exceed the level now by at most this factor.
const MAX_GROWTH: f64 = 3.0;

/// The forecast of one pool's demand; see the module documentation.
#[derive(Debug, Clone)]
pub struct DemandModel {
    forecaster: Holt,
    /// Start of the bucket being filled, ns.
    bucket_start: Option<u64>,
    bucket_sum: f64,
    bucket_count: u32,
    /// Buckets closed so far.
    buckets: u64,
    /// The last second's values (time, value), for the level now.
    recent: VecDeque<(u64, f64)>,
    tracks: Vec<Track>,
}

/// The track record of forecasts `steps` buckets ahead.
#[derive(Debug, Clone)]
struct Track {
    steps: usize,
    /// Forecasts made in the last `steps` buckets, oldest first.
    pending: VecDeque<f64>,
    /// Recent over-forecasts (forecast − actual, 0 when under), newest last.
    over: VecDeque<f64>,
}

impl Default for DemandModel {
    fn default() -> Self {
        Self::new()
    }
}

impl DemandModel {
    /// A model with no history.
    pub fn new() -> Self {
        Self {
            forecaster: Holt::new(ALPHA, BETA),
            bucket_start: None,
            bucket_sum: 0.0,
            bucket_count: 0,
            buckets: 0,
            recent: VecDeque::new(),
            tracks: Vec::new(),
        }
    }

    /// Takes the pool's concurrency observed at `now` (one value per predictor tick).
    /// `horizons` are the lead times, ns, the planner will ask for: each gets a track
    /// record from now on, and the records of lead times no longer asked for are dropped.
    pub fn observe(&mut self, now: u64, concurrency: f64, horizons: &[u64]) {
        self.tracks
            .retain(|t| horizons.iter().any(|&h| steps(h) == t.steps));
        for &h in horizons {
            let steps = steps(h);
            if !self.tracks.iter().any(|t| t.steps == steps) {
                self.tracks.push(Track {
                    steps,
                    pending: VecDeque::new(),
                    over: VecDeque::new(),
                });
            }
        }
        let value = if concurrency.is_finite() {
            concurrency.max(0.0)
        } else {
            0.0
        };
        self.recent.push_back((now, value));
        while self
            .recent
            .front()
            .is_some_and(|&(t, _)| now.saturating_sub(t) >= BUCKET_NANOS)
        {
            self.recent.pop_front();
        }
        let start = *self.bucket_start.get_or_insert(now);
        let elapsed = now.saturating_sub(start) / BUCKET_NANOS;
        if elapsed > 0 && self.bucket_count > 0 {
            // Buckets stay 1 s wide and aligned; a tick longer than that fills several with
            // its mean (at most a minute's worth, after a long stall).
            let mean = self.bucket_sum / f64::from(self.bucket_count);
            for _ in 0..elapsed.min(MAX_FILL) {
                self.close_bucket(mean);
            }
            self.bucket_start = Some(start + elapsed * BUCKET_NANOS);
            self.bucket_sum = 0.0;
            self.bucket_count = 0;
        }
        self.bucket_sum += value;
        self.bucket_count += 1;
    }

    fn close_bucket(&mut self, actual: f64) {
        self.forecaster.observe(actual);
        self.buckets += 1;
        if self.buckets < SETTLE {
            return;
        }
        for track in &mut self.tracks {
            if track.pending.len() == track.steps {
                let made = track.pending.pop_front().unwrap_or(f64::NAN);
                if made.is_finite() {
                    track.over.push_back((made - actual).max(0.0));
                    if track.over.len() > TRACK_WINDOW {
                        track.over.pop_front();
                    }
                }
            }
            track
                .pending
                .push_back(self.forecaster.forecast(track.steps));
        }
    }

    /// Concurrency over the last second.
    pub fn level(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().map(|&(_, v)| v).sum::<f64>() / self.recent.len() as f64
    }

    /// Demand forecast `ahead_nanos` from the last observation; see the module documentation.
    pub fn forecast(&self, ahead_nanos: u64) -> f64 {
        let level = self.level();
        if ahead_nanos == 0 {
            return level;
        }
        let steps = steps(ahead_nanos);
        let raw = self.forecaster.forecast(steps);
        if !raw.is_finite() {
            return level;
        }
        let rise = raw - level;
        if rise <= 0.0 {
            return raw.max(0.0);
        }
        let Some(over) = self.over_forecast(steps) else {
            return level;
        };
        (level + (rise - over).max(0.0)).min(MAX_GROWTH * level)
    }

    /// The over-forecast `steps` buckets ahead that this model has exceeded only a tenth of
    /// the time lately ([`OVER_QUANTILE`]); `None` without enough record.
    pub fn over_forecast(&self, steps: usize) -> Option<f64> {
        let track = self.tracks.iter().find(|t| t.steps == steps)?;
        let n = track.over.len();
        if n < MIN_TRACK {
            return None;
        }
        let mut sorted = [0.0; TRACK_WINDOW];
        for (out, &v) in sorted.iter_mut().zip(&track.over) {
            *out = v;
        }
        let sorted = &mut sorted[..n];
        let rank = ((OVER_QUANTILE * n as f64).ceil() as usize).clamp(1, n) - 1;
        let (_, q, _) = sorted.select_nth_unstable_by(rank, f64::total_cmp);
        Some(*q)
    }
}

/// Most upstreams a peer's demand answer may list.
pub const MAX_PEER_UPSTREAMS: usize = 10_000;

/// Parses the body of another augur instance's `200` answer to `GET /demand`: one
/// `NAME CONCURRENCY` line per upstream it plans (the concurrency it sees itself, a finite
/// number >= 0; the name is everything before the last space). The bytes come from the
/// network: anything else is an error, never a panic.
pub fn parse_peer_demand(body: &[u8]) -> Result<Vec<(String, f64)>, String> {
    let body = std::str::from_utf8(body).map_err(|_| "body not UTF-8")?;
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in body.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if i >= MAX_PEER_UPSTREAMS {
            return Err(format!("more than {MAX_PEER_UPSTREAMS} upstreams"));
        }
        let (name, value) = line
            .trim()
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {}: expected NAME CONCURRENCY", i + 1))?;
        let name = name.trim();
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("line {}: expected a concurrency >= 0", i + 1))?;
        if name.is_empty() || !seen.insert(name) {
            return Err(format!("line {}: empty or repeated upstream name", i + 1));
        }
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// Buckets covering `ahead_nanos` (at least one).
fn steps(ahead_nanos: u64) -> usize {
    usize::try_from(ahead_nanos.div_ceil(BUCKET_NANOS))
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 100_000_000;
    const SEC: u64 = 1_000_000_000;

    /// Feeds `value(t)` every tick from `from` to `to` (seconds).
    fn feed(m: &mut DemandModel, from: u64, to: u64, value: impl Fn(f64) -> f64) {
        for k in from * 10..to * 10 {
            let t = k * TICK;
            m.observe(t, value(t as f64 / SEC as f64), &[10 * SEC, 30 * SEC]);
        }
    }

    #[test]
    fn a_young_model_forecasts_the_level_now_and_no_rise() {
        let mut m = DemandModel::new();
        feed(&mut m, 0, 8, |t| 10.0 + 2.0 * t);
        let level = m.level();
        assert!((level - 25.0).abs() < 1.0, "{level}");
        assert_eq!(m.forecast(30 * SEC), level);
    }

    #[test]
    fn a_steady_rise_with_a_record_is_extrapolated() {
        let mut m = DemandModel::new();
        // Flat for a minute, then rising 1 per second.
        feed(&mut m, 0, 60, |_| 20.0);
        feed(&mut m, 60, 80, |t| 20.0 + (t - 60.0));
        let level = m.level();
        let ahead = m.forecast(10 * SEC);
        assert!(ahead > level + 5.0, "level {level}, 10 s ahead {ahead}");
        assert!(ahead < level + 15.0, "level {level}, 10 s ahead {ahead}");
    }

    #[test]
    fn noise_without_a_trend_forecasts_no_material_rise() {
        let mut m = DemandModel::new();
        // A deterministic wobble of ±20 % with a 7 s and a 3 s cycle.
        feed(&mut m, 0, 200, |t| {
            30.0 * (1.0 + 0.1 * (t * 0.9).sin() + 0.1 * (t * 2.1).cos())
        });
        let ahead = m.forecast(30 * SEC);
        assert!(ahead < 1.2 * 30.0, "30 s ahead {ahead}");
    }

    #[test]
    fn rises_read_from_noise_are_discounted_by_the_measured_over_forecast() {
        let mut m = DemandModel::new();
        let mut seed = 7u64;
        let (mut raw_high, mut high) = (0, 0);
        for k in 0..3000u64 {
            // Uniform noise of ±30 % around 30, independent per tick.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
            m.observe(k * TICK, 30.0 * (0.7 + 0.6 * u), &[30 * SEC]);
            if k >= 1000 && k % 10 == 0 {
                raw_high += usize::from(m.forecaster.forecast(30) > 33.0);
                high += usize::from(m.forecast(30 * SEC) > 33.0);
            }
        }
        // The bare trend forecasts 10 % more demand 30 s ahead now and then; net of its own
        // record of over-forecasting it does so far less often.
        assert!(raw_high >= 10, "{raw_high}");
        assert!(high * 4 <= raw_high, "{high} of {raw_high}");
    }

    #[test]
    fn a_peers_demand_body_parses_and_anything_else_is_an_error() {
        assert_eq!(
            parse_peer_demand(b"api 6.5\nmy pool 0\n").unwrap(),
            vec![("api".to_owned(), 6.5), ("my pool".to_owned(), 0.0)]
        );
        assert_eq!(parse_peer_demand(b"").unwrap(), vec![]);
        for bad in [
            &b"api"[..],
            b"api -1",
            b"api NaN",
            b"api 1\napi 2",
            b"\xff 1",
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        ] {
            assert!(
                parse_peer_demand(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_tick_longer_than_a_bucket_keeps_lead_times_in_seconds() {
        let mut m = DemandModel::new();
        // One observation every 2 s of a demand rising 1 per second.
        for k in 0..100u64 {
            let t = 2 * k * SEC;
            m.observe(t, 20.0 + (2 * k) as f64, &[10 * SEC]);
        }
        let rise = m.forecast(10 * SEC) - m.level();
        assert!((5.0..15.0).contains(&rise), "10 s ahead: +{rise}");
    }

    #[test]
    fn a_falling_forecast_is_taken_as_it_is() {
        let mut m = DemandModel::new();
        feed(&mut m, 0, 60, |t| 100.0 - t);
        assert!(m.forecast(10 * SEC) < m.level());
    }
}
