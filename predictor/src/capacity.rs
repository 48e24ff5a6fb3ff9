//! Standby capacity: wake reserve backends before predicted demand needs them, and put them
//! back to sleep when predicted slack returns.
//!
//! Demand is the serving members' concurrency (requests in flight), forecast per upstream as one
//! series by a [`DemandModel`] (or given by the caller) and multiplied by any announced
//! event. A sleeping standby backend is woken when demand forecast one warm-up ahead (its
//! `warmup`) exceeds `activate_at` × active capacity; it serves once the warm-up has passed. An awake one is
//! put back to sleep when demand forecast over the horizon falls below 0.8 × the capacity
//! that would remain without it, for at least as long as it would take to wake it again.
//! Every backend keeps a state for at least `min_hold` (measured in the scenario simulator:
//! without the hold on sleeping backends, young, noisy forecasts made them flap), except that
//! a sleeping one wakes at once when demand over the whole active capacity is already here
//! rather than forecast (what reactive activation would do; the hold guards against forecasts, and
//! without this exception the simulator's S9-early peak met standbys held asleep), and at
//! most one backend per upstream changes per tick.

use std::collections::HashMap;

use crate::demand::DemandModel;
use crate::snapshot::{BackendId, Eligibility};

/// Below this share of the remaining capacity an awake standby backend goes back to sleep.
pub const SLEEP_BELOW: f64 = 0.8;

/// One backend of a pool as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolMember {
    /// Its identity.
    pub id: BackendId,
    /// Concurrent requests it can serve.
    pub capacity: f64,
    /// Whether it is a reserve backend.
    pub standby: bool,
    /// Time from waking to serving, ns.
    pub warmup_nanos: u64,
}

/// One upstream's members and scaling settings.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    /// Upstream name.
    pub name: &'a str,
    /// Members in config order (standby ones are woken in this order, put to sleep in reverse).
    pub members: &'a [PoolMember],
    /// When standby members wake, and how long they keep a state.
    pub scaling: Scaling,
}

/// An upstream's scaling settings (`scale:` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// Share of active capacity that predicted demand may reach before a standby wakes.
    pub activate_at: f64,
    /// Shortest time in a state, ns.
    pub min_hold_nanos: u64,
}

/// An announced surge: demand multiplied by `multiplier` between `start` and `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandEvent {
    /// Upstream it applies to (`None` = all).
    pub upstream: Option<String>,
    /// Start, predictor clock ns.
    pub start_nanos: u64,
    /// End, predictor clock ns.
    pub end_nanos: u64,
    /// Expected demand multiplier (> 0).
    pub multiplier: f64,
}

/// A standby backend's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standby {
    /// In reserve: no traffic.
    Asleep,
    /// Woken; serves from `ready_at` on.
    Warming {
        /// When it may take traffic, ns.
        ready_at: u64,
    },
    /// Serving.
    Awake,
}

/// A decision, for the scale hook and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Upstream name.
    pub upstream: String,
    /// The backend.
    pub backend: BackendId,
    /// True when woken, false when put to sleep.
    pub wake: bool,
    /// Demand (concurrency) that decided it.
    pub demand: f64,
    /// Active capacity at the time.
    pub active_capacity: f64,
    /// When, ns.
    pub at_nanos: u64,
}

/// One upstream's figures for the admin pages.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolReport {
    /// Upstream name.
    pub upstream: String,
    /// Demand forecast over the horizon (concurrency).
    pub demand: f64,
    /// Capacity of the members serving now.
    pub active_capacity: f64,
    /// Capacity including every standby member.
    pub total_capacity: f64,
    /// Whether demand is forecast to exceed even the total capacity.
    pub demand_exceeds_capacity: bool,
}

/// Where a planning step's demand forecast comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The serving members' concurrency now, forecast by the pool's [`DemandModel`].
    Observed(&'a dyn Fn(&str, &[BackendId]) -> f64),
    /// A forecast given by the caller: (members, ns ahead) -> concurrency.
    Forecast(&'a dyn Fn(&[BackendId], u64) -> f64),
}

/// Keeps standby states and decides transitions.
#[derive(Debug, Default)]
pub struct CapacityPlanner {
    states: HashMap<BackendId, (Standby, u64)>,
    events: Vec<DemandEvent>,
    /// Each pool's demand model, by upstream name.
    models: HashMap<String, DemandModel>,
}

impl CapacityPlanner {
    /// A planner with every standby backend asleep.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the announced events.
    pub fn set_events(&mut self, events: Vec<DemandEvent>) {
        self.events = events;
    }

    /// Announced events.
    pub fn events(&self) -> &[DemandEvent] {
        &self.events
    }

    /// The largest event multiplier for `upstream` at `at_nanos` (1 when none).
    pub fn multiplier(&self, upstream: &str, at_nanos: u64) -> f64 {
        multiplier(&self.events, upstream, at_nanos)
    }

    /// The state of a standby backend (asleep until woken).
    pub fn state(&self, id: BackendId) -> Standby {
        self.states.get(&id).map_or(Standby::Asleep, |s| s.0)
    }

    /// Whether a member takes traffic: non-standby members always, standby ones when awake.
    pub fn eligibility(&self, member: &PoolMember) -> Eligibility {
        if !member.standby || self.state(member.id) == Standby::Awake {
            Eligibility::Active
        } else {
            Eligibility::Standby
        }
    }

    /// One planning step at `now`. `concurrency(pool, ids)` is the concurrency the members
    /// `ids` of the pool named `pool` see now (requests in flight to them, queued at the
    /// backend included, summed over the balancer instances in front of the pool); each
    /// pool's [`DemandModel`] forecasts it. `horizon_nanos` is how far
    /// ahead slack must last before a backend sleeps.
    pub fn plan(
        &mut self,
        now: u64,
        pools: &[Pool<'_>],
        horizon_nanos: u64,
        concurrency: impl Fn(&str, &[BackendId]) -> f64,
    ) -> (Vec<Transition>, Vec<PoolReport>) {
        self.models
            .retain(|name, _| pools.iter().any(|p| p.name == name));
        self.plan_each(now, pools, horizon_nanos, Source::Observed(&concurrency))
    }

    /// [`CapacityPlanner::plan`] on a forecast given by the caller: `demand(ids, ahead_nanos)`
    /// is the concurrency the members `ids` will see `ahead_nanos` from now.
    pub fn plan_with_forecast(
        &mut self,
        now: u64,
        pools: &[Pool<'_>],
        horizon_nanos: u64,
        demand: impl Fn(&[BackendId], u64) -> f64,
    ) -> (Vec<Transition>, Vec<PoolReport>) {
        self.plan_each(now, pools, horizon_nanos, Source::Forecast(&demand))
    }

    fn plan_each(
        &mut self,
        now: u64,
        pools: &[Pool<'_>],
        horizon_nanos: u64,
        source: Source<'_>,
    ) -> (Vec<Transition>, Vec<PoolReport>) {
        let mut transitions = Vec::new();
        let mut reports = Vec::new();
        let events = std::mem::take(&mut self.events);
        for pool in pools {
            // Warming backends whose warm-up has passed start serving.
            for m in pool.members.iter().filter(|m| m.standby) {
                if let Some((Standby::Warming { ready_at }, since)) =
                    self.states.get(&m.id).copied()
                {
                    if now >= ready_at {
                        self.states.insert(m.id, (Standby::Awake, since));
                    }
                }
            }
            let serving: Vec<BackendId> = pool
                .members
                .iter()
                .filter(|m| self.eligibility(m) == Eligibility::Active)
                .map(|m| m.id)
                .collect();
            let active_capacity = self.active_capacity(pool);
            let mut models = std::mem::take(&mut self.models);
            if let Source::Observed(concurrency) = source {
                let mut horizons = vec![horizon_nanos];
                horizons.extend(
                    pool.members
                        .iter()
                        .filter(|m| m.standby)
                        .map(|m| m.warmup_nanos),
                );
                models.entry(pool.name.to_owned()).or_default().observe(
                    now,
                    concurrency(pool.name, &serving),
                    &horizons,
                );
            }
            let demand = |ahead: u64| match source {
                Source::Observed(_) => models.get(pool.name).map_or(0.0, |m| m.forecast(ahead)),
                Source::Forecast(demand) => demand(&serving, ahead),
            };
            let at = |ahead: u64| {
                demand(ahead) * multiplier(&events, pool.name, now.saturating_add(ahead))
            };
            let over_horizon = at(horizon_nanos).max(at(0));
            if let Some(t) = self.decide(now, pool, active_capacity, over_horizon, at) {
                transitions.push(t);
            }
            self.models = models;
            // The figures after this tick's decision.
            let total_capacity: f64 = pool.members.iter().map(|m| m.capacity).sum();
            reports.push(PoolReport {
                upstream: pool.name.to_owned(),
                demand: over_horizon,
                active_capacity: self.active_capacity(pool),
                total_capacity,
                demand_exceeds_capacity: over_horizon > total_capacity,
            });
        }
        self.events = events;
        (transitions, reports)
    }

    /// Capacity of the members serving or woken (they were asked for; they will serve).
    fn active_capacity(&self, pool: &Pool<'_>) -> f64 {
        pool.members
            .iter()
            .filter(|m| !m.standby || self.state(m.id) != Standby::Asleep)
            .map(|m| m.capacity)
            .sum()
    }

    /// At most one change for a pool: wake the first sleeping standby whose warm-up the
    /// forecast says is needed, or else put the last awake one back to sleep if the rest
    /// would still have slack.
    fn decide(
        &mut self,
        now: u64,
        pool: &Pool<'_>,
        active_capacity: f64,
        over_horizon: f64,
        at: impl Fn(u64) -> f64,
    ) -> Option<Transition> {
        let held = |planner: &Self, id: BackendId| {
            planner
                .states
                .get(&id)
                .is_none_or(|&(_, since)| now.saturating_sub(since) >= pool.scaling.min_hold_nanos)
        };
        let transition = |backend: BackendId, wake: bool, demand: f64| Transition {
            upstream: pool.name.to_owned(),
            backend,
            wake,
            demand,
            active_capacity,
            at_nanos: now,
        };
        // The hold keeps a backend asleep against forecasts, not against overload that is
        // already here (demand over the whole active capacity, not just over the threshold:
        // a backend put to sleep at 0.8 of the capacity left must not wake on the noise of
        // the next second).
        let here = at(0) > active_capacity;
        let sleeping = pool.members.iter().find(|m| {
            m.standby && self.state(m.id) == Standby::Asleep && (here || held(self, m.id))
        });
        if let Some(m) = sleeping {
            let needed = at(m.warmup_nanos).max(over_horizon);
            if needed > pool.scaling.activate_at * active_capacity {
                let ready_at = now.saturating_add(m.warmup_nanos);
                self.states
                    .insert(m.id, (Standby::Warming { ready_at }, now));
                return Some(transition(m.id, true, needed));
            }
        }
        let awake = pool
            .members
            .iter()
            .rev()
            .find(|m| m.standby && self.state(m.id) == Standby::Awake && held(self, m.id))?;
        // Sleep only if the slack lasts at least as long as it would take to wake it again.
        let slack_until = at(awake.warmup_nanos).max(over_horizon);
        if slack_until < SLEEP_BELOW * (active_capacity - awake.capacity) {
            self.states.insert(awake.id, (Standby::Asleep, now));
            return Some(transition(awake.id, false, slack_until));
        }
        None
    }
}

/// The largest multiplier of `events` for `upstream` at `at_nanos` (1 when none).
fn multiplier(events: &[DemandEvent], upstream: &str, at_nanos: u64) -> f64 {
    events
        .iter()
        .filter(|e| e.upstream.as_deref().is_none_or(|u| u == upstream))
        .filter(|e| e.start_nanos <= at_nanos && at_nanos < e.end_nanos)
        .map(|e| e.multiplier)
        .fold(1.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn pool_members() -> Vec<PoolMember> {
        (0..4)
            .map(|i| PoolMember {
                id: i,
                capacity: 10.0,
                standby: i >= 2,
                warmup_nanos: 10 * SEC,
            })
            .collect()
    }

    fn pool(members: &[PoolMember]) -> Pool<'_> {
        Pool {
            name: "api",
            members,
            scaling: Scaling {
                activate_at: 0.9,
                min_hold_nanos: 30 * SEC,
            },
        }
    }

    /// Demand that ramps linearly: `base + slope × (now + ahead)` in concurrency.
    fn ramp(base: f64, slope_per_sec: f64, now: u64) -> impl Fn(&[BackendId], u64) -> f64 {
        move |_, ahead| base + slope_per_sec * ((now + ahead) as f64 / SEC as f64)
    }

    #[test]
    fn a_standby_wakes_one_warmup_ahead_of_need_and_serves_after_warmup() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        // Active capacity 20; 0.9 × 20 = 18. Demand 10 + 0.2/s: reaches 18 at t = 40 s.
        let mut woke_at = None;
        for t in 0..60 {
            let now = t * SEC;
            let (transitions, _) =
                planner.plan_with_forecast(now, &[pool(&members)], 5 * SEC, ramp(10.0, 0.2, now));
            if let Some(tr) = transitions.first() {
                assert!(tr.wake && tr.backend == 2);
                woke_at.get_or_insert(t);
            }
        }
        // Woken as soon as demand one warm-up (10 s) ahead exceeds 18: at t = 31 s
        // (10 + 0.2 × 41 = 18.2), ten seconds before demand itself gets there.
        assert_eq!(woke_at, Some(31));
        assert_eq!(
            planner.eligibility(&members[2]),
            Eligibility::Active,
            "warm after 10 s"
        );
        assert_eq!(planner.eligibility(&members[3]), Eligibility::Standby);
    }

    #[test]
    fn an_awake_standby_sleeps_after_the_hold_when_slack_returns_and_does_not_flap() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        let high = |_: &[BackendId], _: u64| 19.0;
        let low = |_: &[BackendId], _: u64| 10.0;
        let (t, _) = planner.plan_with_forecast(0, &[pool(&members)], 5 * SEC, high);
        assert_eq!(t.len(), 1);
        // Awake after warm-up; demand drops at once, but the 30 s hold keeps it awake.
        let mut changes = Vec::new();
        for s in 1..=60 {
            let (t, _) = planner.plan_with_forecast(s * SEC, &[pool(&members)], 5 * SEC, low);
            changes.extend(t.into_iter().map(|tr| (s, tr.wake)));
        }
        // Remaining capacity without it: 20; 10 < 0.8 × 20, so it sleeps once held 30 s.
        assert_eq!(changes, vec![(30, false)]);
        assert_eq!(planner.eligibility(&members[2]), Eligibility::Standby);
        // Demand just below the wake threshold and above the sleep one: nothing moves.
        let middle = |_: &[BackendId], _: u64| 17.0;
        for s in 61..200 {
            let (t, _) = planner.plan_with_forecast(s * SEC, &[pool(&members)], 5 * SEC, middle);
            assert!(t.is_empty(), "flapped at {s}");
        }
    }

    #[test]
    fn announced_events_raise_the_forecast_before_the_surge() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        planner.set_events(vec![DemandEvent {
            upstream: Some("api".into()),
            start_nanos: 100 * SEC,
            end_nanos: 200 * SEC,
            multiplier: 3.0,
        }]);
        let flat = |_: &[BackendId], _: u64| 8.0;
        let mut woke = Vec::new();
        for s in 0..100 {
            let (t, reports) =
                planner.plan_with_forecast(s * SEC, &[pool(&members)], 5 * SEC, flat);
            woke.extend(t.iter().filter(|tr| tr.wake).map(|_| s));
            if s == 96 {
                assert!(reports[0].demand > 20.0, "{reports:?}");
            }
        }
        // 8 × 3 = 24 > 18: the first standby wakes one warm-up (10 s) before the start.
        assert_eq!(woke.first(), Some(&90));
        assert_eq!(planner.multiplier("api", 150 * SEC), 3.0);
        assert_eq!(planner.multiplier("other", 150 * SEC), 1.0);
    }

    #[test]
    fn the_gauge_says_when_demand_exceeds_all_capacity() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        let (_, reports) = planner.plan_with_forecast(0, &[pool(&members)], SEC, |_, _| 45.0);
        assert!(reports[0].demand_exceeds_capacity);
        assert_eq!(
            (reports[0].active_capacity, reports[0].total_capacity),
            (30.0, 40.0)
        );
    }

    #[test]
    fn sleep_waits_for_slack_lasting_a_warmup_and_the_hold_applies_both_ways() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        let (t, _) = planner.plan_with_forecast(0, &[pool(&members)], 5 * SEC, |_, _| 19.0);
        assert!(t[0].wake);
        // After the hold, slack now but demand back within the 10 s warm-up: stays awake.
        let back_soon = |_: &[BackendId], ahead: u64| if ahead >= 8 * SEC { 19.0 } else { 5.0 };
        let (t, _) = planner.plan_with_forecast(40 * SEC, &[pool(&members)], 5 * SEC, back_soon);
        assert!(t.is_empty(), "{t:?}");
        // Slack that lasts: it sleeps. Forecast to be needed again, the held one stays asleep
        // and the next standby, never held, is woken instead.
        let (t, _) = planner.plan_with_forecast(41 * SEC, &[pool(&members)], 5 * SEC, |_, _| 5.0);
        assert!(!t[0].wake && t[0].backend == 2);
        let coming = |_: &[BackendId], ahead: u64| if ahead > 0 { 19.0 } else { 5.0 };
        let (t, _) = planner.plan_with_forecast(42 * SEC, &[pool(&members)], 5 * SEC, coming);
        assert_eq!((t.len(), t[0].wake, t[0].backend), (1, true, 3));
    }

    #[test]
    fn the_hold_yields_to_overload_that_is_already_here() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        let (t, _) = planner.plan_with_forecast(0, &[pool(&members)], 5 * SEC, |_, _| 19.0);
        assert!(t[0].wake && t[0].backend == 2);
        let (t, _) = planner.plan_with_forecast(40 * SEC, &[pool(&members)], 5 * SEC, |_, _| 5.0);
        assert!(!t[0].wake && t[0].backend == 2);
        // Above the threshold (0.9 × 20) but within the active capacity: the held backend
        // stays asleep and the next one, never held, wakes.
        let mut other = CapacityPlanner::new();
        other.plan_with_forecast(0, &[pool(&members)], 5 * SEC, |_, _| 19.0);
        other.plan_with_forecast(40 * SEC, &[pool(&members)], 5 * SEC, |_, _| 5.0);
        let (t, _) = other.plan_with_forecast(41 * SEC, &[pool(&members)], 5 * SEC, |_, _| 19.0);
        assert_eq!((t.len(), t[0].wake, t[0].backend), (1, true, 3));
        // Over the whole active capacity now, not just forecast: the backend put to sleep
        // wakes at once, hold or not, as reactive activation would.
        let (t, _) = planner.plan_with_forecast(41 * SEC, &[pool(&members)], 5 * SEC, |_, _| 21.0);
        assert_eq!((t.len(), t[0].wake, t[0].backend), (1, true, 2));
    }

    #[test]
    fn the_pool_forecast_ignores_traffic_moving_between_members_and_wakes_ahead_of_a_real_rise() {
        let members = pool_members();
        let mut planner = CapacityPlanner::new();
        let mut woke = Vec::new();
        // Ticks of 100 ms. For two minutes routing moves traffic back and forth between the
        // two active members while their total stays 12; then the total rises 0.2 per second
        // and crosses 0.9 × 20 = 18 at t = 150 s.
        for k in 0..1600u64 {
            let now = k * SEC / 10;
            let t = now as f64 / SEC as f64;
            let total = 12.0 + 0.2 * (t - 120.0).max(0.0);
            let swing = 4.0 * (t / 5.0).sin();
            let per_member = |id: BackendId| match id {
                0 => total / 2.0 + swing,
                1 => total / 2.0 - swing,
                _ => 0.0,
            };
            let (t, _) = planner.plan(now, &[pool(&members)], 5 * SEC, |_, ids| {
                ids.iter().map(|&id| per_member(id)).sum()
            });
            woke.extend(t.iter().filter(|tr| tr.wake).map(|_| now / SEC));
        }
        let first = *woke.first().expect("a standby woke for the rise");
        assert!(
            (125..150).contains(&first),
            "woken at {first} s: not before the rise, and ahead of need"
        );
    }
}
