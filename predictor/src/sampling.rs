//! Policies that sample: `random`, `p2c_least_request`, `p2c_peak_ewma`.
//!
//! Power of two choices: draw two distinct open members at random and take the cheaper. It
//! keeps most of the benefit of picking the global best while several independent balancers
//! do not all herd onto the same backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::policy::{Member, PickContext, Policy, Tried};

/// A lock-free random source: splitmix64 over an atomic counter.
#[derive(Debug)]
pub struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A generator starting from `seed` (the simulator seeds it; the proxy uses the clock).
    pub fn new(seed: u64) -> Self {
        Rng {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (> 0).
    pub fn below(&self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A uniformly random open member other than `not`.
pub fn sample_open(
    rng: &Rng,
    cx: &PickContext<'_>,
    members: &[Member],
    tried: &Tried,
    not: Option<usize>,
) -> Option<usize> {
    sample_open_where(rng, cx, members, tried, not, |_| true)
}

/// A uniformly random open member other than `not` that satisfies `want`: a few rejection
/// draws, then a scan from a random start (allocation-free, and it terminates when few
/// members qualify).
pub fn sample_open_where(
    rng: &Rng,
    cx: &PickContext<'_>,
    members: &[Member],
    tried: &Tried,
    not: Option<usize>,
    want: impl Fn(&Member) -> bool,
) -> Option<usize> {
    let n = members.len();
    if n == 0 {
        return None;
    }
    let ok = |i: usize| Some(i) != not && want(&members[i]) && cx.open(members, i, tried);
    for _ in 0..4 {
        let i = rng.below(n);
        if ok(i) {
            return Some(i);
        }
    }
    let start = rng.below(n);
    (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
}

/// Two distinct open members (or one when only one is open), each uniformly random.
fn two_choices(
    rng: &Rng,
    cx: &PickContext<'_>,
    members: &[Member],
    tried: &Tried,
) -> Option<(usize, Option<usize>)> {
    let a = sample_open(rng, cx, members, tried, None)?;
    Some((a, sample_open(rng, cx, members, tried, Some(a))))
}

/// Weighted random choice among open members.
#[derive(Debug)]
pub struct Random {
    rng: Rng,
}

impl Random {
    /// A random policy seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Random {
            rng: Rng::new(seed),
        }
    }
}

impl Policy for Random {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        // Tickets: weight in thousandths, scaled by slow start.
        let tickets =
            |m: &Member| ((f64::from(m.weight.max(1)) * 1000.0 * cx.slow_start(m)) as u64).max(1);
        let total: u64 = (0..members.len())
            .filter(|&i| cx.open(members, i, tried))
            .map(|i| tickets(&members[i]))
            .sum();
        if total == 0 {
            return None;
        }
        let mut ticket = self.rng.next_u64() % total;
        for (i, m) in members.iter().enumerate() {
            if !cx.open(members, i, tried) {
                continue;
            }
            let w = tickets(m);
            if ticket < w {
                return Some(i);
            }
            ticket -= w;
        }
        None
    }

    fn name(&self) -> &'static str {
        "random"
    }
}

/// Power of two choices on in-flight requests per unit of weight (Envoy's least_request).
#[derive(Debug)]
pub struct P2cLeastRequest {
    rng: Rng,
}

impl P2cLeastRequest {
    /// A p2c_least_request policy seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        P2cLeastRequest {
            rng: Rng::new(seed),
        }
    }
}

impl Policy for P2cLeastRequest {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        let (a, b) = two_choices(&self.rng, cx, members, tried)?;
        let Some(b) = b else { return Some(a) };
        let load = |i: usize| {
            let m = &members[i];
            (m.live.in_flight() + 1) as f64 / (f64::from(m.weight.max(1)) * cx.slow_start(m))
        };
        Some(if load(b) < load(a) { b } else { a })
    }

    fn name(&self) -> &'static str {
        "p2c_least_request"
    }
}

/// linkerd2-proxy's balancer: power of two choices on `peak-EWMA RTT × (pending + 1)`.
///
/// Defaults as in linkerd2-proxy/tower: 30 ms RTT before the first sample, 10 s decay. The
/// RTT is fed by the proxy on every response (`Live::rtt`); weights are not used.
#[derive(Debug)]
pub struct P2cPeakEwma {
    rng: Rng,
    default_rtt_ns: f64,
    decay_ns: f64,
}

impl P2cPeakEwma {
    /// Default RTT before the first sample.
    pub const DEFAULT_RTT: Duration = Duration::from_millis(30);
    /// Decay period of the estimate.
    pub const DECAY: Duration = Duration::from_secs(10);

    /// A p2c_peak_ewma policy with linkerd's defaults, seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        P2cPeakEwma {
            rng: Rng::new(seed),
            default_rtt_ns: Self::DEFAULT_RTT.as_nanos() as f64,
            decay_ns: Self::DECAY.as_nanos() as f64,
        }
    }

    /// The cost linkerd compares: decayed RTT estimate × (pending + 1).
    pub fn cost(&self, cx: &PickContext<'_>, m: &Member) -> f64 {
        let rtt = m
            .live
            .rtt
            .decayed(cx.now_nanos, self.default_rtt_ns, self.decay_ns);
        // Slow start (1 but for a backend ramping up after an outage) divides the cost.
        rtt * (m.live.in_flight() + 1) as f64 / cx.slow_start(m)
    }
}

impl Policy for P2cPeakEwma {
    fn pick(&self, cx: &PickContext<'_>, members: &[Member], tried: &Tried) -> Option<usize> {
        let (a, b) = two_choices(&self.rng, cx, members, tried)?;
        let Some(b) = b else { return Some(a) };
        let (ca, cb) = (self.cost(cx, &members[a]), self.cost(cx, &members[b]));
        Some(if cb < ca { b } else { a })
    }

    fn name(&self) -> &'static str {
        "p2c_peak_ewma"
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::snapshot::Snapshot;
    use crate::testing::members;

    fn cx(snapshot: &Snapshot, now_nanos: u64) -> PickContext<'_> {
        PickContext {
            now_nanos,
            snapshot,
            ignore_health: false,
            slow_start_nanos: 0,
        }
    }

    #[test]
    fn rng_is_uniform_enough() {
        let rng = Rng::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn sampling_finds_the_only_open_member_and_two_distinct_ones() {
        let m = members(5);
        let snap = Snapshot::default();
        let rng = Rng::new(1);
        let mut tried = Tried::default();
        for i in [0, 1, 3, 4] {
            tried.insert(i);
        }
        for _ in 0..50 {
            assert_eq!(sample_open(&rng, &cx(&snap, 0), &m, &tried, None), Some(2));
            assert_eq!(sample_open(&rng, &cx(&snap, 0), &m, &tried, Some(2)), None);
        }
        for _ in 0..200 {
            let (a, b) = two_choices(&rng, &cx(&snap, 0), &m, &Tried::default()).unwrap();
            assert_ne!(Some(a), b);
        }
    }

    #[test]
    fn random_follows_weights() {
        let mut m = members(2);
        m[1].weight = 3;
        let policy = Random::new(3);
        let snap = Snapshot::default();
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[policy.pick(&cx(&snap, 0), &m, &Tried::default()).unwrap()] += 1;
        }
        assert!((29_000..31_000).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn p2c_least_request_avoids_the_busiest() {
        let m = members(3);
        let _busy: Vec<_> = (0..10).map(|_| m[0].live.begin()).collect();
        let policy = P2cLeastRequest::new(5);
        let snap = Snapshot::default();
        // Member 0 wins only when both draws... never: distinct draws always include a lighter one.
        for _ in 0..1000 {
            assert_ne!(policy.pick(&cx(&snap, 0), &m, &Tried::default()), Some(0));
        }
    }

    #[test]
    fn p2c_peak_ewma_prefers_the_faster_and_retries_the_avoided_after_decay() {
        let m = members(2);
        let policy = P2cPeakEwma::new(9);
        let snap = Snapshot::default();
        let ms = 1e6;
        m[0].live
            .rtt
            .observe(200.0 * ms, 0, policy.default_rtt_ns, policy.decay_ns);
        m[1].live
            .rtt
            .observe(20.0 * ms, 0, policy.default_rtt_ns, policy.decay_ns);
        for _ in 0..100 {
            assert_eq!(policy.pick(&cx(&snap, 0), &m, &Tried::default()), Some(1));
        }
        // Pending requests on the fast one make it dearer: 20 ms × 11 > 200 ms × 1.
        let _pending: Vec<_> = (0..10).map(|_| m[1].live.begin()).collect();
        assert_eq!(policy.pick(&cx(&snap, 0), &m, &Tried::default()), Some(0));
    }
}
