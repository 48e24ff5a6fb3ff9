//! The discrete-event loop: one scenario, one policy, one seed, on a virtual clock.
//!
//! Events, earliest first (ties in this order, so a run is a pure function of its inputs):
//! a backend's speed changes, a backend completes a request, a client times out, the
//! predictors tick (every 100 ms), a backend joins, a request arrives. Arrivals, their
//! instance and their service time come from one random stream and speed changes from
//! another, both seeded by the seed alone: every policy meets exactly the same requests in
//! a seed (common random numbers), so per-seed ratios compare like with like.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::backend::{Backend, Slot};
use augur_predictor::Attempt;

use crate::balancer::{Balancer, PolicyKind};
use crate::dist::exponential;
use crate::rng::SimRng;
use crate::scenario::{Scenario, INSTANCES, LIMIT, MS, SEC, TIMEOUT};
use crate::stats::Histogram;

/// Predictor tick.
pub const TICK: u64 = 100 * MS;

/// What a scenario may add to the loop (S9's standby activation and per-second figures).
pub trait Hooks {
    /// Every tick, right after each instance's predictor ticked (fresh snapshots).
    fn tick(&mut self, _now: u64, _balancers: &mut [Balancer]) {}
    /// A measured request finished at `now`: answered after `latency`, or timed out
    /// (`latency` = the timeout).
    fn finished(&mut self, _now: u64, _latency: u64) {}
}

/// No additions.
#[derive(Debug)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// What one cell (scenario × policy × seed) measured, over requests that arrived after the
/// warm-up.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    /// Client-seen latency; a timed-out request counts as the timeout.
    pub latency: Histogram,
    /// Each measured request's service time at full speed: what it would take with no
    /// queueing and no slow-down, a floor no routing can beat (the same in every policy's
    /// cell of a seed).
    pub floor: Histogram,
    /// Requests that timed out (or found no backend open).
    pub errors: u64,
    /// Requests sent to each backend.
    pub routed: Vec<u64>,
    /// Per backend: requests sent to it while it was slowed, and all requests sent (to any
    /// backend) in that time.
    pub while_slowed: Vec<(u64, u64)>,
    /// What instance 0's predictor said of each backend.
    pub views: Vec<SnapshotView>,
}

/// Means over the measured ticks of one backend's forecast in instance 0's snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotView {
    /// Ticks summed.
    pub ticks: u64,
    /// Σ predicted latency, ms.
    pub latency_ms: f64,
    /// Σ observed latency, ms.
    pub observed_ms: f64,
    /// Σ predicted utilisation.
    pub utilization: f64,
    /// Σ anomaly penalty.
    pub penalty: f64,
    /// Ticks with a penalty above 1.5.
    pub penalised_ticks: u64,
    /// Season the predictor had found at the end, ticks.
    pub period: Option<usize>,
    /// Anomalies flagged by the end.
    pub anomalies: u64,
    /// Σ predicted latency over ticks when the backend was slowed, ms.
    pub slowed_latency_ms: f64,
    /// Ticks when the backend was slowed.
    pub slowed_ticks: u64,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    arrived: u64,
    instance: u16,
    generation: u32,
    client_done: bool,
    measured: bool,
}

/// Request table with slot reuse: a slot is freed once both the client and the backend are
/// done with it.
#[derive(Debug, Default)]
struct Requests {
    table: Vec<Request>,
    /// Each request's attempt at its backend, until its client is answered or gives up.
    attempts: Vec<Option<Attempt>>,
    free: Vec<Slot>,
}

impl Requests {
    fn insert(&mut self, mut r: Request, attempt: Attempt) -> Slot {
        if let Some(s) = self.free.pop() {
            r.generation = self.table[s as usize].generation;
            self.table[s as usize] = r;
            self.attempts[s as usize] = Some(attempt);
            s
        } else {
            self.table.push(r);
            self.attempts.push(Some(attempt));
            (self.table.len() - 1) as Slot
        }
    }

    /// The attempt of the request in slot `s`, once: its answer or its timeout ends it.
    fn take_attempt(&mut self, s: Slot) -> Option<Attempt> {
        self.attempts[s as usize].take()
    }

    /// Frees a slot; its generation moves on, so a deadline still queued for the request
    /// that held it no longer matches.
    fn release(&mut self, s: Slot) {
        let r = &mut self.table[s as usize];
        r.generation = r.generation.wrapping_add(1);
        self.free.push(s);
    }
}

/// The next arrival after `t` (thinning a Poisson process at the run's peak rate), or None
/// once arrivals stop.
fn next_arrival(rng: &mut SimRng, sc: &Scenario, capacity: f64, t: u64) -> Option<u64> {
    let peak = sc.load.max() * capacity / SEC as f64;
    let mut at = t as f64;
    loop {
        at += exponential(rng, 1.0 / peak);
        if at >= sc.duration as f64 {
            return None;
        }
        let rate = sc.load.at(at as u64, sc.duration) * capacity / SEC as f64;
        if rng.unit() * peak < rate {
            return Some(at as u64);
        }
    }
}

/// Seed of instance `i`'s policy.
fn policy_seed(seed: u64, i: usize) -> u64 {
    SimRng::stream(seed, 100 + i as u64).next_u64()
}

/// Runs one cell.
pub fn run(sc: &Scenario, kind: PolicyKind, seed: u64) -> CellResult {
    run_with(sc, kind, seed, &mut NoHooks)
}

/// Runs one cell with `hooks` called along the way.
pub fn run_with<H: Hooks>(sc: &Scenario, kind: PolicyKind, seed: u64, hooks: &mut H) -> CellResult {
    let mut arrivals = SimRng::stream(seed, 1);
    let timeline = sc.timeline(&mut SimRng::stream(seed, 2));
    let capacity = sc.capacity();
    let mut balancers: Vec<Balancer> = (0..INSTANCES)
        .map(|i| Balancer::new(kind, sc.initial, policy_seed(seed, i)))
        .collect();
    for b in (0..sc.initial).filter(|&b| sc.is_standby(b)) {
        for bal in &mut balancers {
            bal.set_standby(b);
        }
    }
    let mut backends: Vec<Backend> = (0..sc.backends).map(|_| Backend::new(LIMIT)).collect();
    let mut completions: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
    let mut deadlines: VecDeque<(u64, Slot, u32)> = VecDeque::new();
    let mut requests = Requests::default();
    let mut out = CellResult {
        routed: vec![0; sc.backends],
        while_slowed: vec![(0, 0); sc.backends],
        views: vec![SnapshotView::default(); sc.backends],
        ..CellResult::default()
    };
    // Measured requests routed so far, and that count when each backend was last slowed.
    let mut routed_total = 0u64;
    let mut slowed_since: Vec<Option<(u64, u64)>> = vec![None; sc.backends];

    let mut arrival = next_arrival(&mut arrivals, sc, capacity, 0);
    let mut tick_at = TICK;
    let mut change = 0usize;
    let mut join_at = sc.join_at;
    let end = sc.duration + TIMEOUT + TICK;

    let schedule = |b: usize, backend: &mut Backend, heap: &mut BinaryHeap<_>| {
        if let (Some(at), generation) = backend.reschedule() {
            heap.push(Reverse((at, b as u32, generation)));
        }
    };

    loop {
        let change_at = timeline.get(change).map_or(u64::MAX, |c| c.at);
        let done_at = completions.peek().map_or(u64::MAX, |Reverse(e)| e.0);
        let deadline_at = deadlines.front().map_or(u64::MAX, |d| d.0);
        let now = change_at
            .min(done_at)
            .min(deadline_at)
            .min(tick_at)
            .min(join_at.unwrap_or(u64::MAX))
            .min(arrival.unwrap_or(u64::MAX));
        if now >= end {
            break;
        }
        if change_at == now {
            let c = timeline[change];
            change += 1;
            let b = &mut backends[c.backend];
            b.set_multiplier(now, c.multiplier);
            schedule(c.backend, b, &mut completions);
            let slowed = c.multiplier != 1.0;
            match (slowed, slowed_since[c.backend]) {
                (true, None) => {
                    slowed_since[c.backend] = Some((routed_total, out.routed[c.backend]))
                }
                (false, Some((total_then, mine_then))) => {
                    let (mine, all) = &mut out.while_slowed[c.backend];
                    *mine += out.routed[c.backend] - mine_then;
                    *all += routed_total - total_then;
                    slowed_since[c.backend] = None;
                }
                _ => {}
            }
        } else if done_at == now {
            let Some(Reverse((_, b, generation))) = completions.pop() else {
                break;
            };
            let b = b as usize;
            if generation != backends[b].generation() {
                continue;
            }
            let Some(slot) = backends[b].finish_next(now) else {
                continue;
            };
            while backends[b].has_room() {
                let Some((s, work)) = backends[b].pop_queued() else {
                    break;
                };
                if requests.table[s as usize].client_done {
                    requests.release(s);
                } else {
                    backends[b].start(now, s, work);
                }
            }
            schedule(b, &mut backends[b], &mut completions);
            // The utilisation the backend reports with the response: what it has in service
            // as this request leaves (the next queued one already started). Sampled at
            // departures that is, for Poisson-like traffic, a fair sample of the time
            // average; counting the departing request too would read about 1/c high.
            let busy = backends[b].in_service();
            let r = requests.table[slot as usize];
            if !r.client_done {
                let latency = now - r.arrived;
                let load = sc.reports.then_some(busy as f32 / LIMIT as f32);
                if let Some(attempt) = requests.take_attempt(slot) {
                    balancers[r.instance as usize].responded(now, attempt, load);
                }
                if r.measured {
                    out.latency.record_nanos(latency);
                    hooks.finished(now, latency);
                }
            }
            requests.release(slot);
        } else if deadline_at == now {
            let Some((_, slot, generation)) = deadlines.pop_front() else {
                break;
            };
            let r = &mut requests.table[slot as usize];
            if r.generation != generation || r.client_done {
                continue;
            }
            // Given up on: a queued request is dropped when it reaches the head of the
            // queue; one in service keeps the backend busy until it completes.
            r.client_done = true;
            let r = *r;
            if let Some(attempt) = requests.take_attempt(slot) {
                balancers[r.instance as usize].timed_out(now, attempt);
            }
            if r.measured {
                out.latency.record_nanos(TIMEOUT);
                out.errors += 1;
                hooks.finished(now, TIMEOUT);
            }
        } else if tick_at == now {
            tick_at += TICK;
            for bal in &mut balancers {
                bal.tick(now);
            }
            hooks.tick(now, &mut balancers);
            if now >= sc.warmup {
                observe_snapshot(&balancers[0], &slowed_since, &mut out.views);
            }
        } else if join_at == Some(now) {
            join_at = None;
            for bal in &mut balancers {
                bal.join(now, sc.initial);
            }
        } else {
            arrival = next_arrival(&mut arrivals, sc, capacity, now);
            let instance = arrivals.below(INSTANCES);
            let work = sc.service.sample(&mut arrivals);
            let measured = now >= sc.warmup;
            let Some((b, attempt)) = balancers[instance].pick(now) else {
                // Never happens while every backend is active; counted if it does.
                out.errors += u64::from(measured);
                continue;
            };
            if measured {
                out.routed[b] += 1;
                routed_total += 1;
                out.floor.record_nanos(work as u64);
            }
            let slot = requests.insert(
                Request {
                    arrived: now,
                    instance: instance as u16,
                    generation: 0,
                    client_done: false,
                    measured,
                },
                attempt,
            );
            deadlines.push_back((
                now + TIMEOUT,
                slot,
                requests.table[slot as usize].generation,
            ));
            let backend = &mut backends[b];
            if backend.has_room() {
                backend.start(now, slot, work);
                schedule(b, backend, &mut completions);
            } else {
                backend.enqueue(slot, work);
            }
        }
    }
    for (b, since) in slowed_since.iter().enumerate() {
        if let Some((total_then, mine_then)) = since {
            out.while_slowed[b].0 += out.routed[b] - mine_then;
            out.while_slowed[b].1 += routed_total - total_then;
        }
    }
    for (b, v) in out.views.iter_mut().enumerate() {
        if let Some(r) = balancers[0].predictor().report(b as u32) {
            v.period = r.period;
            v.anomalies = r.anomalies;
        }
    }
    out
}

fn observe_snapshot(bal: &Balancer, slowed: &[Option<(u64, u64)>], views: &mut [SnapshotView]) {
    for (b, f) in bal.snapshot().backends.iter().enumerate() {
        let Some(v) = views.get_mut(b) else { break };
        v.ticks += 1;
        v.latency_ms += f.latency_ms;
        v.observed_ms += f.observed_latency_ms;
        v.utilization += f.utilization;
        v.penalty += f.anomaly_penalty;
        v.penalised_ticks += u64::from(f.anomaly_penalty > 1.5);
        if slowed[b].is_some() {
            v.slowed_latency_ms += f.latency_ms;
            v.slowed_ticks += 1;
        }
    }
}
