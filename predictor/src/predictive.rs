//! The `predictive` policy: power of d choices (d = 4) on a score built from the predictor's
//! forecast, the live queue, and the backend's cost.
//!
//! For a candidate backend `i` (lower wins):
//!
//! ```text
//! score_i = latency_i² × queue_i × (1 + load_weight × overload_i) × (1 + cost_weight × cost_i)
//!
//! latency_i  = max(predicted_ms_i, observed_ms_i, peak_rtt_ms_i, silent_ms_i) × anomaly_penalty_i
//!              (peak_rtt: the live peak-EWMA RTT that p2c_peak_ewma uses, read with a
//!              1 s decay instead of 10 s; silent: how long requests have waited there with
//!              no response arriving, 0 if none waits; floor 0.01 ms)
//! queue_i    = (in_flight_i + 1) / (weight_i × slow_start_i)     (slow start in [0.05, 1])
//! overload_i = max(0, min(predicted_utilisation_i, 1) − max(utilisation_now_i, θ)) / (1 − θ)
//!              (θ = overload_threshold)
//! ```
//!
//! Every factor is a positive ratio, so the product is well defined (no division by zero, no
//! unit mixing; scores are only ever compared with each other, so the unit of the squared
//! latency cancels): `latency × queue` is linkerd's cost (expected wait) with the *predicted*
//! latency raising the peak-sensitive RTT whenever the forecast sees a slowdown coming, so the
//! cost rises before requests slow down (and never falls below what p2c_peak_ewma would use).
//! Latency counts twice because the goal is the tail, not the mean: expected wait is what
//! minimises the mean, but a request's tail scales with its backend's latency (service times
//! spread in proportion to their mean), so an idle slot on a backend 2.5× slower is worse for
//! p99 than a short queue on a fast one (measured in the scenario simulator, periodic
//! degradation: p99 0.90 → 0.81 of p2c_peak_ewma, with the other scenarios within ±0.02; a cube
//! was no better there and worse on stalls);
//! `overload` is the part of the predicted utilisation above θ that is not there yet (0 when
//! nothing above θ is coming, 1 for a backend at or below θ now forecast at capacity), so
//! traffic leaves a backend forecast to cross θ within the horizon before its latency rises,
//! while a backend steadily busy is judged by its queue and latency alone; `cost`
//! makes a dearer backend (another region, a paid one) worth using only when it is clearly
//! better. Four candidates are drawn at random (power of d choices, not one global argmin) so
//! that many augur instances reading similar snapshots do not herd.
//!
//! Region preference: members are `local` or not. Candidates are drawn among local members;
//! only when the better local candidate is predicted past θ is a remote member drawn and
//! compared (its cost factor included), so traffic spills over only on predicted overload.

use crate::policy::{Member, PickContext, Policy, Tried};
use crate::sampling::{sample_open_where, P2cPeakEwma, Rng};

/// Candidates drawn per pick (power of d choices). Measured in the scenario simulator with
/// four independent instances: against two, three cut S3's p99 from 0.81 to 0.75 of
/// p2c_peak_ewma and p99.9 from 0.87 to 0.74, and timeouts under overload by a sixth, with
/// every other scenario equal or better. Four (full run beside three, same commit): S3
/// 0.73 / 0.68 against 0.75 / 0.75, S6 and S7 a few points better, nothing worse; a pick
/// from 64 backends takes 87 ns on a quiet machine (three: 71 ns; budget 100 ns; an earlier
/// 105 ns was measured while a benchmark ran beside it). Still a random sample, not an
/// argmin over the pool, so instances reading similar snapshots do not all pick one backend.
const CANDIDATES: usize = 4;

/// Time constant over which the live peak RTT decays when read by this policy. The models
/// carry the memory here (the latency forecast relaxes over `predictor.relax`, anomalies decay
/// over seconds), so the live term only has to hold the last peak, not ten seconds of it as in
/// p2c_peak_ewma, where it is the only memory. Measured in the scenario simulator: 1 s against
/// 10 s cut timeouts under overload by a quarter to a third (S5, S7) and left the other
/// scenarios within noise.
const LIVE_RTT_DECAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Weights of the predictive score (from the upstream's config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveParams {
    /// Weight of the predicted-overload factor.
    pub load_weight: f64,
    /// Weight of the backend's cost.
    pub cost_weight: f64,
    /// Predicted utilisation above which a backend is being overloaded (0 < θ < 1).
    pub overload_threshold: f64,
}

impl Default for PredictiveParams {
    fn default() -> Self {
        PredictiveParams {
            load_weight: 4.0,
            cost_weight: 1.0,
            overload_threshold: 0.8,
        }
    }
}

/// The predictive policy.
#[derive(Debug)]
pub struct Predictive {
    rng: Rng,
    params: PredictiveParams,
}

impl Predictive {
    /// A predictive policy with these weights, seeded with `seed`.
    pub fn new(params: PredictiveParams, seed: u64) -> Self {
        let threshold = if params.overload_threshold > 0.0 && params.overload_threshold < 1.0 {
            params.overload_threshold
        } else {
            PredictiveParams::default().overload_threshold
        };
        Predictive {
            rng: Rng::new(seed),
            params: PredictiveParams {
                overload_threshold: threshold,
                load_weight: params.load_weight.max(0.0),
                cost_weight: params.cost_weight.max(0.0),
            },
        }
    }

    /// Predicted utilisation of a member, 0 when unknown.
    fn utilization(&self, cx: &PickContext<'_>, m: &Member) -> f64 {
        cx.snapshot
            .backends
            .get(m.id as usize)
            .map_or(0.0, |f| f.utilization)
    }

    /// The score documented at the top of this file.
    pub fn score(&self, cx: &PickContext<'_>, m: &Member) -> f64 {
        // The live peak-EWMA RTT is the floor (it is what keeps tails down); the forecast adds
        // what is coming on top of it.
        let rtt_ms = m.live.rtt.decayed(
            cx.now_nanos,
            P2cPeakEwma::DEFAULT_RTT.as_nanos() as f64,
            LIVE_RTT_DECAY.as_nanos() as f64,
        ) / 1e6;
        // Requests waiting unanswered this long are at least this late: a stall shows here
        // at once, long before any completion can report it.
        let silent_ms = m.live.silent_nanos(cx.now_nanos) as f64 / 1e6;
        let rtt_ms = rtt_ms.max(silent_ms);
        let (latency_ms, anomaly, utilization_now, utilization) =
            match cx.snapshot.backends.get(m.id as usize) {
                Some(f) => (
                    finite_at_least(f.latency_ms, 0.0)
                        .max(finite_at_least(f.observed_latency_ms, 0.0))
                        .max(rtt_ms),
                    f.anomaly_penalty,
                    f.utilization_now,
                    f.utilization,
                ),
                None => (rtt_ms, 1.0, 0.0, 0.0),
            };
        // Squared: see `score_i` at the top of this file.
        let latency = (finite_at_least(latency_ms, 0.01) * finite_at_least(anomaly, 1.0)).powi(2);
        // A backend back from an outage, or new to a running upstream, ramps up (the same
        // slow start every policy applies).
        let weight = f64::from(m.weight.max(1)) * cx.slow_start(m);
        let queue = (m.live.in_flight() + 1) as f64 / weight;
        let theta = self.params.overload_threshold;
        // Only the rise still to come counts: what the queue shows now is already in
        // `queue` and `latency`, and a backend steady at θ is not penalised again.
        let now = finite_at_least(utilization_now, 0.0).max(theta);
        let overload =
            ((finite_at_least(utilization, 0.0).min(1.0) - now) / (1.0 - theta)).max(0.0);
        let cost = finite_at_least(m.cost, 0.0);
        latency
            * queue
            * (1.0 + self.params.load_weight * overload)
            * (1.0 + self.params.cost_weight * cost)
    }

    fn better(
        &self,
        cx: &PickContext<'_>,
        members: &[Member],
        a: usize,
        b: Option<usize>,
    ) -> usize {
        match b {
            Some(b) if self.score(cx, &members[b]) < self.score(cx, &members[a]) => b,
            _ => a,
        }
    }
}

fn finite_at_least(x: f64, floor: f64) -> f64 {
    if x.is_finite() {
        x.max(floor)
    } else {
        floor
    }
}

impl Predictive {
    /// The best-scoring of `first` and up to `CANDIDATES - 1` more members drawn at random
    /// among the open ones `want` accepts. The extra draws share one 64-bit random number
    /// (16 bits each: one atomic step instead of several); a draw that repeats one, lands on a
    /// closed member or on one `want` refuses is skipped, so fewer may be compared.
    fn best_of(
        &self,
        cx: &PickContext<'_>,
        members: &[Member],
        tried: &Tried,
        first: usize,
        want: impl Fn(&Member) -> bool,
    ) -> usize {
        let mut best = first;
        let mut best_score = self.score(cx, &members[first]);
        // Draws among the others: uniform over the n − 1 members that are not `first`.
        let others = members.len().saturating_sub(1);
        if others == 0 {
            return first;
        }
        let mut bits = self.rng.next_u64();
        for _ in 1..CANDIDATES {
            let k = if others <= 1 << 16 {
                (((bits & 0xffff) as usize) * others) >> 16
            } else {
                self.rng.below(others)
            };
            bits >>= 16;
            let c = if k >= first { k + 1 } else { k };
            if c == best || !want(&members[c]) || !cx.open(members, c, tried) {
                continue;
            }
            let score = self.score(cx, &members[c]);
            if score < best_score {
                (best, best_score) = (c, score);
            }
        }
        best
    }
}

impl Policy for Predictive {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let local = |m: &Member| m.local;
        let Some(a) = sample_open_where(&self.rng, cx, members, tried, None, local) else {
            // No local member is open: choose among everything that is.
            let a = sample_open_where(&self.rng, cx, members, tried, None, |_| true)?;
            return Some(self.best_of(cx, members, tried, a, |_| true));
        };
        let best = self.best_of(cx, members, tried, a, local);
        if self.utilization(cx, &members[best]) < self.params.overload_threshold {
            return Some(best);
        }
        // The local choice is predicted past the threshold: let a remote member compete.
        let remote = sample_open_where(&self.rng, cx, members, tried, None, |m| !m.local);
        Some(self.better(cx, members, best, remote))
    }

    fn name(&self) -> &'static str {
        "predictive"
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::snapshot::{Forecast, Snapshot};
    use crate::testing::members;

    fn snapshot(forecasts: &[(f64, f64, f64)]) -> Snapshot {
        Snapshot {
            version: 1,
            built_at_nanos: 0,
            backends: forecasts
                .iter()
                .map(|&(latency_ms, observed_latency_ms, utilization)| Forecast {
                    latency_ms,
                    observed_latency_ms,
                    utilization,
                    ..Forecast::default()
                })
                .collect(),
        }
    }

    fn shares(policy: &Predictive, snap: &Snapshot, m: &[Member], picks: usize) -> Vec<usize> {
        let cx = PickContext {
            now_nanos: 1,
            snapshot: snap,
            ignore_health: false,
            slow_start_nanos: 0,
        };
        let mut counts = vec![0; m.len()];
        for _ in 0..picks {
            counts[policy.pick(&cx, m, &Tried::default()).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn predicted_latency_rise_moves_traffic_before_it_is_observed() {
        let m = members(2);
        let p = Predictive::new(PredictiveParams::default(), 1);
        // Both observed at 10 ms; backend 0 is forecast to reach 50 ms.
        let counts = shares(
            &p,
            &snapshot(&[(50.0, 10.0, 0.0), (10.0, 10.0, 0.0)]),
            &m,
            1000,
        );
        assert_eq!(counts, vec![0, 1000]);
    }

    #[test]
    fn predicted_overload_moves_traffic_before_latency_rises() {
        let m = members(3);
        let p = Predictive::new(PredictiveParams::default(), 2);
        // Same latency everywhere; backend 0 forecast at 95% utilisation (θ = 0.8).
        let snap = snapshot(&[(10.0, 10.0, 0.95), (10.0, 10.0, 0.3), (10.0, 10.0, 0.3)]);
        let counts = shares(&p, &snap, &m, 3000);
        assert!(counts[0] < 100, "{counts:?}");
        // Below the threshold utilisation does not matter.
        let snap = snapshot(&[(10.0, 10.0, 0.7), (10.0, 10.0, 0.3), (10.0, 10.0, 0.3)]);
        let counts = shares(&p, &snap, &m, 3000);
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn remote_backends_take_traffic_only_when_local_ones_are_predicted_to_overload() {
        let mut m = members(4);
        for r in &mut m[2..] {
            r.local = false;
            r.cost = 0.4;
        }
        let p = Predictive::new(PredictiveParams::default(), 3);
        // Picks of 2000 that go remote, with both locals at `local` (latency ms, utilisation)
        // and both remotes at `remote`.
        let remote_picks = |local: (f64, f64), remote: (f64, f64)| {
            let at = |(ms, utilization)| (ms, ms, utilization);
            let snap = snapshot(&[at(local), at(local), at(remote), at(remote)]);
            let counts = shares(&p, &snap, &m, 2000);
            counts[2] + counts[3]
        };
        assert_eq!(
            remote_picks((10.0, 0.5), (5.0, 0.1)),
            0,
            "remote is faster but local is not overloaded"
        );
        let spilled = remote_picks((10.0, 0.99), (10.0, 0.1));
        assert!(
            spilled > 1500,
            "local predicted past capacity spills over: {spilled} of 2000"
        );
    }

    #[test]
    fn cost_and_slow_start_lower_a_backends_share() {
        let mut m = members(2);
        m[0].cost = 0.4;
        let p = Predictive::new(PredictiveParams::default(), 4);
        let snap = snapshot(&[(10.0, 10.0, 0.0), (10.0, 10.0, 0.0)]);
        assert_eq!(shares(&p, &snap, &m, 500), vec![0, 500]);
        m[0].cost = 0.0;
        // Backend 1 has just joined: a 20th of its share, 10 s of slow start to go.
        m[1].live.health.start_slow_start(1);
        let cx = PickContext {
            now_nanos: 1,
            snapshot: &snap,
            ignore_health: false,
            slow_start_nanos: 10_000_000_000,
        };
        let mut counts = [0; 2];
        for _ in 0..500 {
            counts[p.pick(&cx, &m, &Tried::default()).unwrap()] += 1;
        }
        assert_eq!(counts, [500, 0]);
    }

    #[test]
    fn without_forecasts_it_falls_back_to_the_live_peak_rtt() {
        let m = members(2);
        let p = Predictive::new(PredictiveParams::default(), 5);
        m[0].live.rtt.observe(100e6, 1, 30e6, 10e9);
        m[1].live.rtt.observe(10e6, 1, 30e6, 10e9);
        assert_eq!(shares(&p, &Snapshot::default(), &m, 200), vec![0, 200]);
    }

    #[test]
    fn a_stall_is_seen_before_any_response_reports_it() {
        let m = members(2);
        let p = Predictive::new(PredictiveParams::default(), 8);
        let snap = snapshot(&[(10.0, 10.0, 0.3), (10.0, 10.0, 0.3)]);
        // One request each, sent at t = 0; backend 1 answers at 5 ms and takes another,
        // backend 0 says nothing for 200 ms.
        for member in &m {
            member.live.acquire(0);
        }
        m[1].live.answered(5_000_000);
        m[1].live.release(true);
        m[1].live.acquire(190_000_000);
        let cx = PickContext {
            now_nanos: 200_000_000,
            snapshot: &snap,
            ignore_health: false,
            slow_start_nanos: 0,
        };
        assert!(p.score(&cx, &m[0]) > 4.0 * p.score(&cx, &m[1]));
        let picks = (0..200)
            .filter(|_| p.pick(&cx, &m, &Tried::default()) == Some(0))
            .count();
        assert_eq!(picks, 0);
    }

    #[test]
    fn nonsense_forecasts_do_not_break_the_score() {
        let m = members(2);
        let p = Predictive::new(PredictiveParams::default(), 6);
        let snap = snapshot(&[
            (f64::NAN, f64::INFINITY, f64::NAN),
            (-5.0, 0.0, f64::NEG_INFINITY),
        ]);
        let cx = PickContext {
            now_nanos: 1,
            snapshot: &snap,
            ignore_health: false,
            slow_start_nanos: 0,
        };
        for member in &m {
            let s = p.score(&cx, member);
            assert!(s.is_finite() && s > 0.0, "{s}");
        }
        assert!(p.pick(&cx, &m, &Tried::default()).is_some());
    }

    #[test]
    fn only_the_rise_still_to_come_counts_as_overload() {
        let m = members(3);
        let p = Predictive::new(PredictiveParams::default(), 7);
        // Backend 0 forecast at 0.95 and already there: its latency and queue speak for it,
        // so utilisation adds nothing and the three share evenly.
        let mut snap = snapshot(&[(10.0, 10.0, 0.95), (10.0, 10.0, 0.3), (10.0, 10.0, 0.3)]);
        snap.backends[0].utilization_now = 0.95;
        let counts = shares(&p, &snap, &m, 3000);
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        // The same forecast from 0.5 now: a crossing to come, so traffic leaves it.
        snap.backends[0].utilization_now = 0.5;
        let counts = shares(&p, &snap, &m, 3000);
        assert!(counts[0] < 100, "{counts:?}");
        // Busy now (0.85) and forecast at capacity: the rise still to come moves some away.
        snap.backends[0].utilization_now = 0.85;
        snap.backends[0].utilization = 1.2;
        let counts = shares(&p, &snap, &m, 3000);
        assert!(counts[0] < 700, "{counts:?}");
    }
}
