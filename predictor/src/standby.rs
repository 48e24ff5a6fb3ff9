//! Standby planning as the proxy runs it each tick: which upstreams are planned, what
//! concurrency each sees (its own, and what peer instances report), the planner's step, and
//! the `woken` marks the snapshot carries to picks. The scale hook and the log are the
//! caller's (they do I/O); this module takes time and figures as arguments.

use std::collections::{HashMap, VecDeque};

use crate::capacity::{
    CapacityPlanner, DemandEvent, Pool, PoolMember, PoolReport, Scaling, Transition,
};
use crate::policy::Member;
use crate::snapshot::{Eligibility, Snapshot};

/// One upstream as standby planning sees it.
#[derive(Debug, Clone, Copy)]
pub struct PlannedUpstream<'a> {
    /// Upstream name.
    pub name: &'a str,
    /// Its members, in config order (standby ones wake in this order).
    pub members: &'a [Member],
    /// When standby members wake, and how long they keep a state.
    pub scaling: Scaling,
    /// Concurrency that fresh peer instances report for it.
    pub peers: f64,
}

/// The concurrency standby planning saw on one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConcurrency {
    /// Upstream name.
    pub upstream: String,
    /// Requests in flight through this instance to the serving members, this tick.
    pub own: f64,
    /// The same averaged over the last second (what peers poll).
    pub own_last_second: f64,
    /// Reported by fresh peers.
    pub peers: f64,
}

/// A planning decision, with where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index of the upstream in the slice given to `plan`.
    pub upstream: usize,
    /// Index of the member in that upstream's `members`.
    pub member: usize,
    /// What was decided.
    pub transition: Transition,
}

/// What one planning step produced.
#[derive(Debug, Default)]
pub struct StandbyStep {
    /// Standby backends woken or put to sleep this tick.
    pub decisions: Vec<Decision>,
    /// Per planned upstream: demand against capacity.
    pub pools: Vec<PoolReport>,
    /// Per planned upstream: the concurrency it saw.
    pub concurrency: Vec<PoolConcurrency>,
}

/// Standby planning's state across ticks.
#[derive(Debug, Default)]
pub struct StandbyPlanning {
    planner: CapacityPlanner,
    /// Per planned upstream: this instance's own concurrency over the last second.
    recent: HashMap<String, VecDeque<(u64, f64)>>,
}

const SECOND: u64 = 1_000_000_000;

impl StandbyPlanning {
    /// Planning with every standby backend asleep.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the announced demand events.
    pub fn set_events(&mut self, events: Vec<DemandEvent>) {
        self.planner.set_events(events);
    }

    /// One step at `now` over `upstreams` (those without standby members, or without a
    /// capacity on every member, are not planned), looking `horizon_nanos` ahead; marks
    /// `woken` on the snapshot's standby members.
    pub fn plan(
        &mut self,
        now: u64,
        upstreams: &[PlannedUpstream<'_>],
        horizon_nanos: u64,
        snapshot: &mut Snapshot,
    ) -> StandbyStep {
        let planned: Vec<(usize, Vec<PoolMember>)> = upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| u.members.iter().any(|m| m.standby))
            .filter_map(|(i, u)| pool_members(u.members).map(|members| (i, members)))
            .collect();
        let pools: Vec<Pool<'_>> = planned
            .iter()
            .map(|(i, members)| Pool {
                name: upstreams[*i].name,
                members,
                scaling: upstreams[*i].scaling,
            })
            .collect();
        let seen = std::cell::RefCell::new(Vec::with_capacity(pools.len()));
        let (transitions, reports) = self.planner.plan(now, &pools, horizon_nanos, |name, ids| {
            // Requests in flight to the serving members (queued at the backend included; a
            // TCP session holds its slot while it lasts).
            let upstream = upstreams.iter().find(|u| u.name == name);
            let own = upstream.map_or(0.0, |u| {
                u.members
                    .iter()
                    .filter(|m| ids.contains(&m.id))
                    .map(|m| m.live.in_flight() as f64)
                    .sum()
            });
            let peers = upstream.map_or(0.0, |u| u.peers);
            seen.borrow_mut().push(PoolConcurrency {
                upstream: name.to_owned(),
                own,
                own_last_second: own,
                peers,
            });
            own + peers
        });
        let mut concurrency = seen.into_inner();
        self.average_over_a_second(now, &mut concurrency);
        for pool in &pools {
            for m in pool.members.iter().filter(|m| m.standby) {
                if let Some(f) = snapshot.backends.get_mut(m.id as usize) {
                    f.woken = self.planner.eligibility(m) == Eligibility::Active;
                }
            }
        }
        let decisions = transitions
            .into_iter()
            .filter_map(|t| {
                let upstream = upstreams.iter().position(|u| u.name == t.upstream)?;
                let member = upstreams[upstream]
                    .members
                    .iter()
                    .position(|m| m.id == t.backend)?;
                Some(Decision {
                    upstream,
                    member,
                    transition: t,
                })
            })
            .collect();
        StandbyStep {
            decisions,
            pools: reports,
            concurrency,
        }
    }

    /// What peers poll: this instance's own figure averaged over the last second, not one
    /// tick.
    fn average_over_a_second(&mut self, now: u64, seen: &mut [PoolConcurrency]) {
        self.recent
            .retain(|name, _| seen.iter().any(|c| &c.upstream == name));
        for c in seen {
            let recent = self.recent.entry(c.upstream.clone()).or_default();
            recent.push_back((now, c.own));
            while recent
                .front()
                .is_some_and(|&(t, _)| now.saturating_sub(t) >= SECOND)
            {
                recent.pop_front();
            }
            c.own_last_second = recent.iter().map(|&(_, v)| v).sum::<f64>() / recent.len() as f64;
        }
    }
}

/// The planner's view of an upstream's members, or `None` when one has no capacity. A member
/// out of service serves nothing: its capacity is replaced by standby members like any
/// shortfall.
fn pool_members(members: &[Member]) -> Option<Vec<PoolMember>> {
    members
        .iter()
        .map(|m| {
            let capacity = f64::from(m.capacity?);
            Some(PoolMember {
                id: m.id,
                capacity: if m.live.health.serving() {
                    capacity
                } else {
                    0.0
                },
                standby: m.standby,
                warmup_nanos: m.warmup_nanos,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Forecast;
    use crate::testing::members;

    const MS: u64 = 1_000_000;

    fn pool(with_standby: bool) -> Vec<Member> {
        let mut m = members(3);
        for member in &mut m {
            member.capacity = Some(10);
        }
        m[2].standby = with_standby;
        m
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            backends: vec![Forecast::default(); 3],
            ..Snapshot::default()
        }
    }

    fn upstream<'a>(members: &'a [Member], peers: f64) -> PlannedUpstream<'a> {
        PlannedUpstream {
            name: "api",
            members,
            scaling: Scaling {
                activate_at: 0.9,
                min_hold_nanos: 0,
            },
            peers,
        }
    }

    #[test]
    fn demand_over_active_capacity_wakes_the_standby_and_picks_see_it() {
        let m = pool(true);
        let mut planning = StandbyPlanning::new();
        let mut snap = snapshot();
        let step = planning.plan(0, &[upstream(&m, 0.0)], SECOND, &mut snap);
        assert!(step.decisions.is_empty());
        assert_eq!(crate::eligibility(&m[2], &snap), Eligibility::Standby);
        // 25 requests in flight here and 5 at a peer: over the 20 the two active members
        // take; the standby (no warm-up) wakes at once.
        let _busy: Vec<_> = (0..25).map(|i| m[i % 2].live.begin()).collect();
        let mut t = 0;
        let woke = loop {
            t += 100 * MS;
            assert!(t <= 10 * SECOND, "the standby never woke");
            let step = planning.plan(t, &[upstream(&m, 5.0)], SECOND, &mut snap);
            assert_eq!(step.concurrency[0].own, 25.0);
            assert_eq!(step.concurrency[0].peers, 5.0);
            if let Some(d) = step.decisions.into_iter().next() {
                break d;
            }
            assert_eq!(crate::eligibility(&m[2], &snap), Eligibility::Standby);
        };
        assert_eq!((woke.upstream, woke.member), (0, 2));
        assert!(woke.transition.wake);
        // Woken with no warm-up: it serves from the next step on.
        planning.plan(t + 100 * MS, &[upstream(&m, 5.0)], SECOND, &mut snap);
        assert_eq!(crate::eligibility(&m[2], &snap), Eligibility::Active);
    }

    #[test]
    fn upstreams_without_standby_or_capacity_are_not_planned() {
        let plain = pool(false);
        let mut no_capacity = pool(true);
        no_capacity[0].capacity = None;
        let mut planning = StandbyPlanning::new();
        let mut snap = snapshot();
        let step = planning.plan(
            0,
            &[upstream(&plain, 0.0), upstream(&no_capacity, 0.0)],
            SECOND,
            &mut snap,
        );
        assert!(step.pools.is_empty() && step.concurrency.is_empty());
        // Unplanned, the standby stays held.
        assert_eq!(
            crate::eligibility(&no_capacity[2], &snap),
            Eligibility::Standby
        );
    }

    #[test]
    fn own_concurrency_is_averaged_over_the_last_second() {
        let m = pool(true);
        let mut planning = StandbyPlanning::new();
        let mut snap = snapshot();
        let busy: Vec<_> = (0..4).map(|_| m[0].live.begin()).collect();
        planning.plan(0, &[upstream(&m, 0.0)], SECOND, &mut snap);
        drop(busy);
        let step = planning.plan(500 * MS, &[upstream(&m, 0.0)], SECOND, &mut snap);
        assert_eq!(step.concurrency[0].own, 0.0);
        assert_eq!(step.concurrency[0].own_last_second, 2.0);
        let step = planning.plan(1_000 * MS, &[upstream(&m, 0.0)], SECOND, &mut snap);
        assert_eq!(
            step.concurrency[0].own_last_second, 0.0,
            "the first sample aged out"
        );
    }
}
