//! Backend selection policies.
//!
//! A policy picks one member of an upstream from an immutable member list plus the members'
//! live counters. Picking takes no lock and allocates nothing: the list is built once per
//! config (re)load and every counter is an atomic.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::live::Live;
use crate::snapshot::{BackendId, Snapshot};

/// One backend as selection sees it: identity, static figures and live counters.
#[derive(Debug, Clone)]
pub struct Member {
    /// Stable identity: the backend's entry in the predictor's snapshot.
    pub id: BackendId,
    /// Relative weight, at least 1.
    pub weight: u32,
    /// Relative cost of sending work there (0 = free; 0.4 = 40% dearer), from the config.
    pub cost: f64,
    /// In the upstream's preferred region (always true when it prefers none).
    pub local: bool,
    /// A reserve backend: closed unless the snapshot says the planner woke it.
    pub standby: bool,
    /// Concurrent requests it can serve (`capacity` in the config), for standby planning.
    pub capacity: Option<u32>,
    /// Time from waking to serving, ns (a standby backend's `warmup`).
    pub warmup_nanos: u64,
    /// Counters shared with the request path, stable across reloads.
    pub live: Arc<Live>,
}

impl Member {
    /// Backend `id` with weight 1, free, local, not standby, no capacity given, and fresh
    /// counters: the plain member tests, benches and the simulator start from.
    pub fn new(id: BackendId) -> Member {
        Member {
            id,
            weight: 1,
            cost: 0.0,
            local: true,
            standby: false,
            capacity: None,
            warmup_nanos: 0,
            live: Arc::new(Live::default()),
        }
    }
}

/// What a pick may consult besides the members: the time and the predictor's newest view.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// Monotonic clock, nanoseconds (the caller's; policies never read a clock).
    pub now_nanos: u64,
    /// The newest published snapshot.
    pub snapshot: &'a Snapshot,
    /// Take unhealthy members too: the upstream is in panic (too few healthy members).
    pub ignore_health: bool,
    /// How long a backend back from an outage takes to reach its full share (0: at once).
    pub slow_start_nanos: u64,
}

impl PickContext<'_> {
    /// The share a member takes of what its weight gives it, in [0.05, 1]: below 1 while it
    /// ramps up after coming back from an outage (slow start; see `Health::slow_start`).
    pub fn slow_start(&self, m: &Member) -> f64 {
        m.live
            .health
            .slow_start(self.now_nanos, self.slow_start_nanos)
    }

    /// Whether a member may take a new request and was not already tried: not tried, and
    /// open by the one eligibility decision (`crate::eligibility`).
    pub fn open(&self, members: &[Member], i: usize, tried: &Tried) -> bool {
        !tried.contains(i)
            && crate::eligibility::open(&members[i], self.snapshot, self.ignore_health)
    }
}

/// Chooses a member of an upstream for the next request.
pub trait Policy: Send + Sync + Debug {
    /// Index of the chosen member: never one in `tried` nor one the snapshot marks as not
    /// taking traffic; `None` when no member is left.
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize>;
    /// The policy's name as written in the config.
    fn name(&self) -> &'static str;
}

/// The members a request has already tried (so a retry goes elsewhere).
///
/// A fixed bitset: members past `Tried::CAPACITY` are never marked, which only means a retry
/// could land on such a member twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried {
    bits: [u64; 4],
}

impl Tried {
    /// How many member indices the set can hold.
    pub const CAPACITY: usize = 256;

    /// Marks a member as tried.
    pub fn insert(&mut self, index: usize) {
        if index < Self::CAPACITY {
            self.bits[index / 64] |= 1 << (index % 64);
        }
    }

    /// Whether a member was tried.
    pub fn contains(&self, index: usize) -> bool {
        index < Self::CAPACITY && self.bits[index / 64] & (1 << (index % 64)) != 0
    }

    /// How many members were tried.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Whether nothing was tried yet.
    pub fn is_empty(&self) -> bool {
        self.bits == [0; 4]
    }
}

/// A number in [0, 1) from a pick's clock, turn and member: for slow start's coin, with no
/// state to share between threads.
fn unit(now_nanos: u64, turn: usize, member: usize) -> f64 {
    let mut x = now_nanos
        ^ (turn as u64).rotate_left(32)
        ^ (member as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Smooth weighted round robin (nginx's interleaving: weights 5,1,1 give a a b a c a a, not
/// a a a a a b c), precomputed into a schedule so that a pick is one atomic increment.
#[derive(Debug)]
pub struct RoundRobin {
    schedule: Box<[u32]>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Builds the schedule for these members' weights (reduced by their common divisor).
    pub fn new(members: &[Member]) -> Self {
        let divisor = members.iter().map(|m| m.weight.max(1)).fold(0, gcd).max(1);
        let weights: Vec<i64> = members
            .iter()
            .map(|m| i64::from(m.weight.max(1) / divisor))
            .collect();
        let total: i64 = weights.iter().sum();
        let mut current = vec![0i64; weights.len()];
        let mut schedule = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            schedule.push(u32::try_from(best).unwrap_or(u32::MAX));
        }
        RoundRobin {
            schedule: schedule.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Policy for RoundRobin {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 || tried.len() >= members.len() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let turn = |k: usize| self.schedule[(start.wrapping_add(k)) % len] as usize;
        // A member in slow start lets its turn pass with the share it has not ramped up to
        // yet; if every open member did, the first open one takes it anyway.
        (0..len)
            .map(turn)
            .find(|&i| {
                i < members.len()
                    && cx.open(members, i, tried)
                    && unit(cx.now_nanos, start, i) < cx.slow_start(&members[i])
            })
            .or_else(|| {
                (0..len)
                    .map(turn)
                    .find(|&i| i < members.len() && cx.open(members, i, tried))
            })
    }

    fn name(&self) -> &'static str {
        "round_robin"
    }
}

/// Fewest in-flight requests relative to weight; ties go to the next member in rotation, so
/// an idle upstream is still spread evenly.
#[derive(Debug, Default)]
pub struct LeastConn {
    rotor: AtomicUsize,
}

impl LeastConn {
    /// A new least-connections policy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for LeastConn {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.rotor.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = start.wrapping_add(k) % n;
            if !cx.open(members, i, tried) {
                continue;
            }
            let m = &members[i];
            let load = m.live.in_flight() + 1;
            // Weight in thousandths, scaled by slow start.
            let weight = ((f64::from(m.weight.max(1)) * 1000.0 * cx.slow_start(m)) as u64).max(1);
            // load / weight < best_load / best_weight, without division.
            let better = match best {
                None => true,
                Some((_, bl, bw)) => {
                    u128::from(load) * u128::from(bw) < u128::from(bl) * u128::from(weight)
                }
            };
            if better {
                best = Some((i, load, weight));
            }
        }
        best.map(|(i, _, _)| i)
    }

    fn name(&self) -> &'static str {
        "least_conn"
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Forecast;
    use crate::testing::members_weighted as members;

    fn cx(snapshot: &Snapshot) -> PickContext<'_> {
        PickContext {
            now_nanos: 0,
            snapshot,
            ignore_health: false,
            slow_start_nanos: 0,
        }
    }

    #[test]
    fn round_robin_interleaves_by_weight() {
        let m = members(&[5, 1, 1]);
        let rr = RoundRobin::new(&m);
        let picks: Vec<usize> = (0..7)
            .map(|_| {
                rr.pick(&cx(&Snapshot::default()), &m, &Tried::default())
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn round_robin_shares_follow_weights() {
        let m = members(&[1, 2, 3]);
        let rr = RoundRobin::new(&m);
        let mut counts = [0; 3];
        for _ in 0..600 {
            counts[rr
                .pick(&cx(&Snapshot::default()), &m, &Tried::default())
                .unwrap()] += 1;
        }
        assert_eq!(counts, [100, 200, 300]);
    }

    #[test]
    fn round_robin_skips_tried_and_gives_up_when_all_tried() {
        let m = members(&[1, 1, 1]);
        let rr = RoundRobin::new(&m);
        let mut tried = Tried::default();
        tried.insert(0);
        tried.insert(2);
        for _ in 0..5 {
            assert_eq!(rr.pick(&cx(&Snapshot::default()), &m, &tried), Some(1));
        }
        tried.insert(1);
        assert_eq!(rr.pick(&cx(&Snapshot::default()), &m, &tried), None);
    }

    #[test]
    fn least_conn_prefers_fewest_in_flight_per_weight() {
        let m = members(&[1, 1, 2]);
        let _a = [m[0].live.begin(), m[0].live.begin()];
        let _b = m[1].live.begin();
        let _c = [m[2].live.begin(), m[2].live.begin()];
        // loads: 3/1, 2/1, 3/2 -> member 2
        for _ in 0..4 {
            assert_eq!(
                LeastConn::new().pick(&cx(&Snapshot::default()), &m, &Tried::default()),
                Some(2)
            );
        }
        let mut tried = Tried::default();
        tried.insert(2);
        assert_eq!(
            LeastConn::new().pick(&cx(&Snapshot::default()), &m, &tried),
            Some(1)
        );
    }

    #[test]
    fn least_conn_rotates_among_equals() {
        let m = members(&[1, 1, 1]);
        let lc = LeastConn::new();
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[lc
                .pick(&cx(&Snapshot::default()), &m, &Tried::default())
                .unwrap()] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn a_backend_back_from_an_outage_ramps_up_under_every_weighted_policy() {
        use crate::health::{Failure, UpstreamHealth};
        use crate::sampling::{P2cLeastRequest, P2cPeakEwma, Random};
        const SEC: u64 = 1_000_000_000;
        let m = members(&[1, 1, 1]);
        let upstream = UpstreamHealth::default();
        // Member 0 went down and came back at t = 1 s; slow start lasts 10 s.
        m[0].live
            .health
            .record_check(Some(Failure::Connect), 1, 1, 1, &upstream);
        m[0].live.health.record_check(None, SEC, 1, 1, &upstream);
        let snapshot = Snapshot {
            backends: vec![Forecast::default(); 3],
            ..Snapshot::default()
        };
        let policies: Vec<Box<dyn Policy>> = vec![
            Box::new(RoundRobin::new(&m)),
            Box::new(LeastConn::new()),
            Box::new(Random::new(3)),
            Box::new(P2cLeastRequest::new(4)),
            Box::new(P2cPeakEwma::new(5)),
        ];
        for policy in &policies {
            let share_at = |now: u64| {
                let cx = PickContext {
                    now_nanos: now,
                    snapshot: &snapshot,
                    ignore_health: false,
                    slow_start_nanos: 10 * SEC,
                };
                let picks = 3000;
                let zeros = (0..picks)
                    .filter(|k| {
                        let cx = PickContext {
                            now_nanos: cx.now_nanos + k,
                            ..cx
                        };
                        policy.pick(&cx, &m, &Tried::default()) == Some(0)
                    })
                    .count();
                zeros as f64 / picks as f64
            };
            // 1 s in: a tenth of its share (a third); after the window: all of it.
            let early = share_at(2 * SEC);
            let late = share_at(12 * SEC);
            assert!(early < 0.1, "{}: {early}", policy.name());
            assert!(late > 0.2, "{}: {late}", policy.name());
        }
    }

    #[test]
    fn ineligible_members_are_skipped_by_every_policy() {
        let mut m = members(&[1, 1, 1]);
        let mut snapshot = Snapshot {
            backends: vec![Forecast::default(); 3],
            ..Snapshot::default()
        };
        // Drained by an operator, and a standby the planner holds.
        m[0].live.set_drained(true);
        m[2].standby = true;
        let rr = RoundRobin::new(&m);
        let lc = LeastConn::new();
        for _ in 0..10 {
            assert_eq!(rr.pick(&cx(&snapshot), &m, &Tried::default()), Some(1));
            assert_eq!(lc.pick(&cx(&snapshot), &m, &Tried::default()), Some(1));
        }
        m[1].live.set_drained(true);
        assert_eq!(rr.pick(&cx(&snapshot), &m, &Tried::default()), None);
        assert_eq!(lc.pick(&cx(&snapshot), &m, &Tried::default()), None);
        m[1].live.set_drained(false);
        // The planner wakes the standby: it is open.
        snapshot.backends[2].woken = true;
        let mut tried = Tried::default();
        tried.insert(1);
        assert_eq!(lc.pick(&cx(&snapshot), &m, &tried), Some(2));
        snapshot.backends[2].woken = false;
        // Out of service by health: closed, unless the upstream is in panic.
        let upstream = crate::health::UpstreamHealth::default();
        upstream.recount(m.iter().map(|m| &m.live.health), 0.0);
        let policy = crate::health::EjectionPolicy {
            consecutive_failures: 1,
            base_nanos: 1_000_000_000,
            max_nanos: 1_000_000_000,
            max_percent: 100,
        };
        m[1].live.health.record_request(
            Some(crate::health::Failure::Connect),
            1,
            &policy,
            &upstream,
        );
        assert_eq!(rr.pick(&cx(&snapshot), &m, &Tried::default()), None);
        let mut panic = cx(&snapshot);
        panic.ignore_health = true;
        assert_eq!(rr.pick(&panic, &m, &Tried::default()), Some(1));
        // Behind a down tunnel: closed even in panic.
        m[1].live.health.set_path(false, 2, &upstream);
        assert_eq!(rr.pick(&panic, &m, &Tried::default()), None);
        // A standby member the predictor has not seen yet is closed; others are open.
        let mut m = members(&[1, 1]);
        m[0].standby = true;
        let empty = Snapshot::default();
        for _ in 0..5 {
            assert_eq!(rr.pick(&cx(&empty), &m, &Tried::default()), Some(1));
        }
    }

    #[test]
    fn tried_set_counts_and_ignores_out_of_range() {
        let mut t = Tried::default();
        assert!(t.is_empty());
        t.insert(3);
        t.insert(200);
        t.insert(3);
        t.insert(Tried::CAPACITY + 5);
        assert_eq!(t.len(), 2);
        assert!(t.contains(200) && !t.contains(Tried::CAPACITY + 5));
    }
}
