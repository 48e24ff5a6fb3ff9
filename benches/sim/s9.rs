//! S9: standby backends woken ahead of a peak. Three activation strategies run on the same
//! arrivals per seed, each deciding once per predictor tick which standby backends are
//! provisioned, the decision applied to every instance's snapshot as the proxy's predictor
//! thread does:
//!
//! - *predictive*: augur's own `CapacityPlanner`, one for the pool, fed with the requests in
//!   flight to the serving members summed over the four instances (each instance sees only
//!   its own quarter of the traffic, as the proxy's instances share theirs through
//!   `predictor.peers`);
//! - *reactive* and *oracle*: see [`crate::standby`].
//!
//! A woken backend is provisioned (counted in backend-seconds) at once and serves once its
//! warm-up has passed.

use augur_predictor::{
    BackendId, CapacityPlanner, Eligibility, Pool, PoolMember, PredictorSettings, Scaling, Standby,
};

use crate::balancer::{Balancer, PolicyKind};
use crate::dist::ServiceTime;
use crate::engine::{self, CellResult, Hooks, TICK};
use crate::scenario::{Load, Scenario, Speed, LIMIT, MEAN_SERVICE, MS, SEC};
use crate::standby::{Oracle, Reactive, States, ACTIVATE_AT, MIN_HOLD};

/// A second breaks the SLO when the p99 latency of the requests finished in it exceeds
/// this (10 μ; a timed-out request counts as the 2 s timeout, so a second with more than 1%
/// errors breaks it too).
pub const SLO: u64 = 100 * MS;

/// How standby backends are woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// augur's capacity planner on the predictors' demand forecast.
    Predictive,
    /// On observed load.
    Reactive,
    /// On the true future demand.
    Oracle,
}

impl Strategy {
    /// Every strategy, in table order.
    pub const ALL: [Strategy; 3] = [Strategy::Predictive, Strategy::Reactive, Strategy::Oracle];

    /// Name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Predictive => "predictive",
            Strategy::Reactive => "reactive",
            Strategy::Oracle => "oracle",
        }
    }
}

/// Routing policies S9 runs under each strategy (predictive is the one the goal is about).
pub const ROUTING: [PolicyKind; 2] = [PolicyKind::Predictive, PolicyKind::P2cPeakEwma];

/// Warm-ups of S9's standby backends, in wake order.
pub const S9_WARMUPS: [u64; 4] = [10 * SEC, 15 * SEC, 20 * SEC, 30 * SEC];

/// S9: 6 active backends and 4 standby ones (warm-ups [`S9_WARMUPS`]). Load, as a share of
/// the 6 active backends' capacity: 0.6 for the first half of the run, rising over a tenth
/// of it to 1.4 (so all four standbys are needed), held for a fifth, falling back over a
/// tenth. The rise (30 s) is as long as the longest warm-up: over 60 s, in a trial run,
/// reacting on observed load was early enough and nothing broke the SLO. The peak comes
/// after the predictor has seen 150 s of traffic, more than twice augur's `min_hold` after
/// its start.
///
/// S9-early, a variant: the same curve with the rise from a fifth of the run (60 s): one
/// `min_hold` after the start, when whatever the planner woke at its start goes back to
/// sleep and is held there for another `min_hold`.
pub fn s9(quick: bool) -> Vec<Scenario> {
    let (duration, warmup) = if quick {
        (60 * SEC, 2 * SEC)
    } else {
        (300 * SEC, 10 * SEC)
    };
    let (rise, hold) = (duration / 10, duration / 5);
    let at = |key: &str, start: u64| Scenario {
        key: key.into(),
        family: "S9",
        title: format!(
            "standby capacity: 6 active + 4 standby backends (warm-up 10, 15, 20, 30 s); load \
             0.6 of active capacity, rising from t = {} s over {} s to 1.4, held {} s, back to \
             0.6 over {} s",
            start / SEC,
            rise / SEC,
            hold / SEC,
            rise / SEC
        ),
        backends: 10,
        initial: 10,
        join_at: None,
        service: ServiceTime::normal(MEAN_SERVICE),
        reports: true,
        duration,
        warmup,
        load: Load::Plateau {
            base: 0.6,
            peak: 1.4,
            start,
            rise,
            hold,
            fall: rise,
        },
        speed: Speed::Uniform,
        tagged: Vec::new(),
        standby: S9_WARMUPS.to_vec(),
    };
    vec![at("S9", duration / 2), at("S9-early", duration / 5)]
}

/// The pool as the planner sees it: backend `b` has id `b`, capacity c.
pub fn members(sc: &Scenario) -> Vec<PoolMember> {
    let first = sc.backends - sc.standby.len();
    (0..sc.backends)
        .map(|b| PoolMember {
            id: b as BackendId,
            capacity: LIMIT as f64,
            standby: sc.is_standby(b),
            warmup_nanos: b.checked_sub(first).map_or(0, |k| sc.standby[k]),
        })
        .collect()
}

/// True demand at `t`: arrival rate × mean service time (concurrency), 0 once arrivals stop.
pub fn true_demand(sc: &Scenario, t: u64) -> f64 {
    if t >= sc.duration {
        return 0.0;
    }
    sc.load.at(t, sc.duration) * sc.capacity() * sc.service.mean() / SEC as f64
}

/// One strategy's state.
#[derive(Debug)]
enum Control {
    Planned(CapacityPlanner),
    Reactive(Reactive),
    Oracle(Oracle),
}

/// A wake or sleep: when, which member, whether woken, the demand that decided it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// When, ns.
    pub at: u64,
    /// Member index.
    pub backend: usize,
    /// Woken (else put to sleep).
    pub wake: bool,
    /// The planner's demand behind it (NaN for the other strategies).
    pub demand: f64,
}

/// What S9 measures in one cell besides the latency histogram.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Per second of the measured window: requests finished, and how many within the SLO.
    pub seconds: Vec<(u32, u32)>,
    /// Σ over ticks of the measured window of provisioned backends × tick, ns.
    pub backend_nanos: u64,
    /// The same for standby backends only.
    pub standby_nanos: u64,
    /// Every change.
    pub changes: Vec<Change>,
    /// Predictive only, per phase of the load curve: (ticks, Σ `PoolReport.demand`, Σ true
    /// demand over the same horizon).
    pub forecast: Vec<(u64, f64, f64)>,
    /// Per phase: standby backends provisioned × tick, ns.
    pub phase_nanos: Vec<u64>,
}

impl Measured {
    /// Seconds whose p99 exceeds the SLO.
    pub fn violations(&self) -> u64 {
        self.violations_in(0, self.seconds.len())
    }

    /// The same over seconds `from..to` of the measured window.
    pub fn violations_in(&self, from: usize, to: usize) -> u64 {
        let broken =
            |&&(n, ok): &&(u32, u32)| n > 0 && u64::from(ok) < (0.99 * f64::from(n)).ceil() as u64;
        let to = to.min(self.seconds.len());
        self.seconds[from.min(to)..to].iter().filter(broken).count() as u64
    }

    /// Backend-seconds provisioned.
    pub fn backend_seconds(&self) -> f64 {
        self.backend_nanos as f64 / SEC as f64
    }
}

/// The phases of the run, as [start, end) times: the unmeasured start, and the parts of a
/// plateau load (or the rest of the run for any other load).
pub fn phases(sc: &Scenario) -> Vec<(&'static str, u64, u64)> {
    let mut out = vec![("start (not measured)", 0, sc.warmup)];
    out.extend(load_phases(sc));
    out
}

fn load_phases(sc: &Scenario) -> Vec<(&'static str, u64, u64)> {
    match sc.load {
        Load::Plateau {
            start,
            rise,
            hold,
            fall,
            ..
        } => {
            let (top, down, end) = (
                start + rise,
                start + rise + hold,
                start + rise + hold + fall,
            );
            vec![
                ("before", sc.warmup, start),
                ("rise", start, top),
                ("plateau", top, down),
                ("fall", down, end),
                ("after", end, sc.duration),
            ]
        }
        _ => vec![("run", sc.warmup, sc.duration)],
    }
}

/// The hooks S9 runs the engine with.
#[derive(Debug)]
struct Activation<'a> {
    sc: &'a Scenario,
    members: Vec<PoolMember>,
    control: Control,
    phases: Vec<(&'static str, u64, u64)>,
    out: Measured,
}

impl Activation<'_> {
    fn phase(&self, now: u64) -> Option<usize> {
        self.phases.iter().position(|p| p.1 <= now && now < p.2)
    }

    fn provisioned(&self, i: usize) -> bool {
        let m = &self.members[i];
        !m.standby
            || match &self.control {
                Control::Planned(p) => p.state(m.id) != Standby::Asleep,
                Control::Reactive(r) => r.states.state(i) != Standby::Asleep,
                Control::Oracle(o) => o.states.state(i) != Standby::Asleep,
            }
    }

    fn eligibility(&self, i: usize) -> Eligibility {
        let m = &self.members[i];
        let serving = |s: &States| !m.standby || s.state(i) == Standby::Awake;
        let on = match &self.control {
            Control::Planned(p) => return p.eligibility(m),
            Control::Reactive(r) => serving(&r.states),
            Control::Oracle(o) => serving(&o.states),
        };
        if on {
            Eligibility::Active
        } else {
            Eligibility::Standby
        }
    }
}

impl Hooks for Activation<'_> {
    fn tick(&mut self, now: u64, balancers: &mut [Balancer]) {
        let sc = self.sc;
        let mut changes: Vec<Change> = Vec::new();
        match &mut self.control {
            Control::Planned(planner) => {
                let horizon = PredictorSettings::default().horizon.as_nanos() as u64;
                let pool = Pool {
                    name: "s9",
                    members: &self.members,
                    scaling: Scaling {
                        activate_at: ACTIVATE_AT,
                        min_hold_nanos: MIN_HOLD,
                    },
                };
                let all: &[Balancer] = balancers;
                // Requests in flight to the serving members, as the proxy samples them.
                let (transitions, reports) = planner.plan(now, &[pool], horizon, |_, ids| {
                    all.iter()
                        .flat_map(|b| ids.iter().map(|&id| b.in_flight(id as usize) as f64))
                        .sum()
                });
                changes.extend(transitions.iter().map(|t| Change {
                    at: now,
                    backend: t.backend as usize,
                    wake: t.wake,
                    demand: t.demand,
                }));
                if let (Some(r), Some(p)) = (reports.first(), self.phase(now)) {
                    let truth = true_demand(sc, now).max(true_demand(sc, now + horizon));
                    let f = &mut self.out.forecast[p];
                    *f = (f.0 + 1, f.1 + r.demand, f.2 + truth);
                }
            }
            Control::Reactive(reactive) => {
                let in_flight: u64 = balancers.iter().map(Balancer::in_flight_total).sum();
                let change = reactive.step(now, &self.members, in_flight as f64);
                changes.extend(change.map(|(backend, wake)| Change {
                    at: now,
                    backend,
                    wake,
                    demand: f64::NAN,
                }));
            }
            Control::Oracle(oracle) => {
                let step = oracle.step(now, &self.members, |t| true_demand(sc, t));
                changes.extend(step.into_iter().map(|(backend, wake)| Change {
                    at: now,
                    backend,
                    wake,
                    demand: f64::NAN,
                }));
            }
        }
        self.out.changes.extend(changes);
        for i in (0..self.members.len()).filter(|&i| self.members[i].standby) {
            let e = self.eligibility(i);
            for bal in balancers.iter_mut() {
                bal.set_woken(i, e == Eligibility::Active);
            }
        }
        let provisioned: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.provisioned(i))
            .collect();
        let standbys = provisioned.iter().filter(|&&i| self.members[i].standby);
        let standby_nanos = TICK * standbys.count() as u64;
        if let Some(p) = self.phase(now) {
            self.out.phase_nanos[p] += standby_nanos;
        }
        if sc.warmup <= now && now < sc.duration {
            self.out.standby_nanos += standby_nanos;
            self.out.backend_nanos += TICK * provisioned.len() as u64;
        }
    }

    fn finished(&mut self, now: u64, latency: u64) {
        if self.sc.warmup <= now && now < self.sc.duration {
            let s = &mut self.out.seconds[((now - self.sc.warmup) / SEC) as usize];
            s.0 += 1;
            s.1 += u32::from(latency <= SLO);
        }
    }
}

/// One S9 cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Latency, errors, routing.
    pub cell: CellResult,
    /// Activation figures.
    pub measured: Measured,
}

/// Runs S9 with `strategy` activating and `kind` routing, on `seed`'s arrivals.
pub fn run(sc: &Scenario, strategy: Strategy, kind: PolicyKind, seed: u64) -> Cell {
    let members = members(sc);
    let control = match strategy {
        Strategy::Predictive => Control::Planned(CapacityPlanner::new()),
        Strategy::Reactive => Control::Reactive(Reactive::new(members.len())),
        Strategy::Oracle => Control::Oracle(Oracle::new(members.len())),
    };
    let phases = phases(sc);
    let mut hooks = Activation {
        sc,
        members,
        control,
        out: Measured {
            seconds: vec![(0, 0); (sc.duration - sc.warmup).div_ceil(SEC) as usize],
            forecast: vec![(0, 0.0, 0.0); phases.len()],
            phase_nanos: vec![0; phases.len()],
            ..Measured::default()
        },
        phases,
    };
    let cell = engine::run_with(sc, kind, seed, &mut hooks);
    Cell {
        cell,
        measured: hooks.out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_has_its_shape() {
        let s9 = s9(false).remove(0);
        assert!(
            (s9.capacity() - 4800.0).abs() < 1e-6,
            "standbys are not counted"
        );
        assert!(s9.is_standby(6) && !s9.is_standby(5));
        let m = members(&s9);
        assert_eq!(m[9].warmup_nanos, 30 * SEC);
        // Peak demand: 1.4 × 4,800 req/s × 10 ms = 67.2 concurrent; 0.9 × 72 = 64.8 < 67.2,
        // so the fourth standby is needed too.
        assert!((true_demand(&s9, 200 * SEC) - 67.2).abs() < 1e-9);
        assert_eq!(true_demand(&s9, 300 * SEC), 0.0);
    }

    #[test]
    fn violations_count_seconds_whose_p99_breaks_the_slo() {
        let m = Measured {
            seconds: vec![(100, 100), (100, 99), (100, 98), (0, 0), (1000, 989)],
            ..Measured::default()
        };
        assert_eq!(m.violations(), 2);
    }
}
