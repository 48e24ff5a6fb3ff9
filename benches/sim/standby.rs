//! Activation strategies for standby backends that S9 compares with augur's own planner:
//!
//! - *reactive*: wakes the next standby when the in-flight count the instances observe,
//!   averaged over the last second, exceeds `activate_at` × the capacity provisioned, and
//!   puts the last one back when it falls below 0.8 × the capacity left without it; like the
//!   planner it keeps every state at least `min_hold` and changes one backend per tick;
//! - *oracle*: knows the arrival-rate curve; wakes each standby exactly its warm-up before
//!   the true demand (rate × μ) exceeds `activate_at` × the capacity before it, and puts it
//!   back once true demand stays below 0.8 × that capacity for a warm-up ahead.
//!
//! Both keep states as the planner does: a woken backend is warming until its warm-up has
//! passed, then awake (serving).

use std::collections::VecDeque;

use augur_predictor::capacity::SLEEP_BELOW;
use augur_predictor::{PoolMember, Standby};

use crate::engine::TICK;
use crate::scenario::SEC;

/// Share of provisioned capacity demand may reach before a standby wakes (augur's default).
pub const ACTIVATE_AT: f64 = 0.9;
/// Shortest time in a state (augur's default `min_hold`).
pub const MIN_HOLD: u64 = 60 * SEC;
/// Samples of the reactive strategy's moving average (one second of ticks).
const WINDOW: usize = (SEC / TICK) as usize;

/// Standby states kept by the reactive and oracle strategies, as the planner keeps them:
/// per member, its state and when it last changed (`None`: never).
#[derive(Debug, Clone)]
pub struct States {
    of: Vec<(Standby, Option<u64>)>,
}

impl States {
    fn new(n: usize) -> Self {
        States {
            of: vec![(Standby::Asleep, None); n],
        }
    }

    /// A member's state (non-standby members are always awake).
    pub fn state(&self, i: usize) -> Standby {
        self.of[i].0
    }

    fn held(&self, i: usize, now: u64, hold: u64) -> bool {
        self.of[i]
            .1
            .is_none_or(|since| now.saturating_sub(since) >= hold)
    }

    fn wake(&mut self, i: usize, now: u64, warmup: u64) {
        let ready_at = now.saturating_add(warmup);
        self.of[i] = (Standby::Warming { ready_at }, Some(now));
    }

    fn sleep(&mut self, i: usize, now: u64) {
        self.of[i] = (Standby::Asleep, Some(now));
    }

    /// Warming members whose warm-up has passed start serving.
    fn promote(&mut self, now: u64) {
        for s in &mut self.of {
            if let Standby::Warming { ready_at } = s.0 {
                if now >= ready_at {
                    s.0 = Standby::Awake;
                }
            }
        }
    }

    /// Capacity of the members serving or warming.
    fn provisioned_capacity(&self, members: &[PoolMember]) -> f64 {
        members
            .iter()
            .enumerate()
            .filter(|(i, m)| !m.standby || self.state(*i) != Standby::Asleep)
            .map(|(_, m)| m.capacity)
            .sum()
    }
}

/// The reactive baseline.
#[derive(Debug, Clone)]
pub struct Reactive {
    /// Standby states.
    pub states: States,
    samples: VecDeque<f64>,
}

impl Reactive {
    /// Every standby asleep.
    pub fn new(members: usize) -> Self {
        Reactive {
            states: States::new(members),
            samples: VecDeque::with_capacity(WINDOW),
        }
    }

    /// One tick: `in_flight` is the requests the instances have outstanding now (queued at
    /// the backends included). Returns the change made, if any: (member, woken).
    pub fn step(
        &mut self,
        now: u64,
        members: &[PoolMember],
        in_flight: f64,
    ) -> Option<(usize, bool)> {
        self.states.promote(now);
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(in_flight);
        let observed = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
        let provisioned = self.states.provisioned_capacity(members);
        let s = &self.states;
        let sleeping = (0..members.len()).find(|&i| {
            members[i].standby && s.state(i) == Standby::Asleep && s.held(i, now, MIN_HOLD)
        });
        if let Some(i) = sleeping {
            if observed > ACTIVATE_AT * provisioned {
                self.states.wake(i, now, members[i].warmup_nanos);
                return Some((i, true));
            }
        }
        let awake = (0..members.len()).rev().find(|&i| {
            members[i].standby && s.state(i) == Standby::Awake && s.held(i, now, MIN_HOLD)
        })?;
        if observed < SLEEP_BELOW * (provisioned - members[awake].capacity) {
            self.states.sleep(awake, now);
            return Some((awake, false));
        }
        None
    }
}

/// The oracle.
#[derive(Debug, Clone)]
pub struct Oracle {
    /// Standby states.
    pub states: States,
}

impl Oracle {
    /// Every standby asleep.
    pub fn new(members: usize) -> Self {
        Oracle {
            states: States::new(members),
        }
    }

    /// One tick with the true demand curve `demand(t)`. Standby `k` is needed while demand
    /// exceeds `activate_at` × the capacity of the members before it: woken when that will
    /// happen within its warm-up, put back when demand stays below 0.8 × that capacity for
    /// a warm-up ahead. Returns the changes: (member, woken).
    pub fn step(
        &mut self,
        now: u64,
        members: &[PoolMember],
        demand: impl Fn(u64) -> f64,
    ) -> Vec<(usize, bool)> {
        self.states.promote(now);
        let mut changes = Vec::new();
        let mut before: f64 = members
            .iter()
            .filter(|m| !m.standby)
            .map(|m| m.capacity)
            .sum();
        for (i, m) in members.iter().enumerate().filter(|(_, m)| m.standby) {
            let ahead = m.warmup_nanos.div_ceil(TICK);
            let peak = (0..=ahead)
                .map(|k| demand(now + k * TICK))
                .fold(0.0, f64::max);
            let asleep = self.states.state(i) == Standby::Asleep;
            if asleep && peak > ACTIVATE_AT * before {
                self.states.wake(i, now, m.warmup_nanos);
                changes.push((i, true));
            } else if !asleep && peak < SLEEP_BELOW * before {
                self.states.sleep(i, now);
                changes.push((i, false));
            }
            before += m.capacity;
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two active members of capacity 10, two standby ones (warm-up 1 s and 2 s).
    fn tiny() -> Vec<PoolMember> {
        (0..4)
            .map(|i| PoolMember {
                id: i,
                capacity: 10.0,
                standby: i >= 2,
                warmup_nanos: if i >= 2 { u64::from(i - 1) * SEC } else { 0 },
            })
            .collect()
    }

    /// Steps `r` over ticks `from..to` with `in_flight`, returning the changes by tick.
    fn drive(r: &mut Reactive, from: u64, to: u64, in_flight: f64) -> Vec<(u64, (usize, bool))> {
        let members = tiny();
        (from..to)
            .filter_map(|t| Some((t, r.step(t * TICK, &members, in_flight)?)))
            .collect()
    }

    #[test]
    fn reactive_wakes_on_the_observed_mean_and_sleeps_after_the_hold() {
        let mut r = Reactive::new(4);
        // 17 in flight < 0.9 × 20: nothing. Then 25: the one-second mean first exceeds 18
        // on the second tick of it ((8 × 17 + 2 × 25) / 10 = 18.6).
        assert!(drive(&mut r, 0, 20, 17.0).is_empty());
        assert_eq!(drive(&mut r, 20, 25, 25.0), vec![(21, (2, true))]);
        assert_eq!(
            r.states.state(2),
            Standby::Warming {
                ready_at: 31 * TICK
            }
        );
        // 25 < 0.9 × 30 = 27 (warming capacity counts): the next stays asleep.
        assert!(drive(&mut r, 25, 40, 25.0).is_empty());
        assert_eq!(
            r.states.state(2),
            Standby::Awake,
            "serving after its 1 s warm-up"
        );
        // In flight drops to 10 < 0.8 × 20: it sleeps once held 60 s (2.1 s + 60 s).
        assert_eq!(drive(&mut r, 40, 900, 10.0), vec![(621, (2, false))]);
        assert_eq!(r.states.state(2), Standby::Asleep);
        // Overload at 90 s: member 2 changed state 27.9 s ago and is held asleep, so the
        // next one in order (member 3) wakes; then nothing is left to wake.
        assert_eq!(drive(&mut r, 900, 905, 100.0), vec![(900, (3, true))]);
    }

    #[test]
    fn oracle_wakes_each_standby_one_warmup_before_it_is_needed() {
        let members = tiny();
        let mut o = Oracle::new(4);
        // Demand 10 + 1/s from t = 0 to 20 s, then 10 again: exceeds 18 (0.9 × 20) at 8 s
        // and 27 (0.9 × 30) at 17 s; below 0.8 × 30 = 24 from 20 s, below 16 from 20 s too.
        let demand = |t: u64| {
            if t < 20 * SEC {
                10.0 + t as f64 / SEC as f64
            } else {
                10.0
            }
        };
        let mut log = Vec::new();
        for t in 0..300 {
            for c in o.step(t * TICK, &members, demand) {
                log.push((t, c));
            }
        }
        // Member 2 (1 s warm-up) is woken at 7.1 s (demand at 8.1 s > 18), member 3 (2 s)
        // at 15.1 s (demand at 17.1 s > 27), each serving from the moment it is needed; both
        // go back at 20 s, when demand is below their bars for a warm-up ahead.
        assert_eq!(
            log,
            vec![
                (71, (2, true)),
                (151, (3, true)),
                (200, (2, false)),
                (200, (3, false))
            ]
        );
        assert_eq!(o.states.state(2), Standby::Asleep);
    }
}
