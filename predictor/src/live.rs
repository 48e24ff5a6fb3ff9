//! Per-backend live counters: the only per-request shared state on the request path.
//!
//! A `Live` is keyed by a backend's stable identity (upstream name + address) and is carried
//! over from one runtime table to the next on reload, so counters and in-flight figures survive
//! a config change.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::health::Health;

/// Status classes counted per backend: 1xx..5xx, plus requests that got no response.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Lock-free counters for one backend.
#[derive(Debug, Default)]
pub struct Live {
    /// Peak-EWMA round-trip estimate (see `PeakRtt`), updated by every response.
    pub rtt: PeakRtt,
    /// Active-check and outlier state.
    pub health: Health,
    drained: AtomicBool,
    in_flight: AtomicU64,
    /// Requests sent and still waiting for their response header.
    awaiting: AtomicU64,
    /// When the last response header arrived, or when a request was sent while none was
    /// waiting (ns, the caller's clock).
    quiet_since: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    connect_failures: AtomicU64,
    by_class: [AtomicU64; 6],
}

/// A snapshot of a backend's counters, for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveFigures {
    /// Requests (or TCP sessions) currently being served.
    pub in_flight: u64,
    /// Requests (or TCP sessions) completed.
    pub requests: u64,
    /// Completed requests that ended in an error (5xx from us or a transport failure).
    pub errors: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Completed requests by status class, in `STATUS_CLASSES` order.
    pub by_class: [u64; 6],
}

impl Live {
    /// Marks the start of a request; the returned guard ends it when dropped.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { live: self }
    }

    /// Takes an in-flight slot for a request sent at `now_nanos`, without a guard; pair with
    /// exactly one `release`. For state machines (a proxy's request context) that cannot hold
    /// a borrowing guard.
    pub fn acquire(&self, now_nanos: u64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.awaiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.quiet_since.store(now_nanos, Ordering::Relaxed);
        }
    }

    /// The response header of a request taken with `acquire` arrived at `now_nanos`.
    pub fn answered(&self, now_nanos: u64) {
        self.quiet_since.store(now_nanos, Ordering::Relaxed);
        decrement(&self.awaiting);
    }

    /// Gives back a slot taken with `acquire`; `answered` says whether `answered` was called
    /// for it (if not, it stops waiting now).
    pub fn release(&self, answered: bool) {
        decrement(&self.in_flight);
        if !answered {
            decrement(&self.awaiting);
        }
    }

    /// How long requests have been waiting at this backend with no response header arriving:
    /// 0 when none waits. A lower bound on the age of the oldest waiting request (while any
    /// waited, either none has been answered since `quiet_since`, or one sent before it is
    /// still waiting), so it grows through a stall that completions cannot report.
    pub fn silent_nanos(&self, now_nanos: u64) -> u64 {
        if self.awaiting.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        now_nanos.saturating_sub(self.quiet_since.load(Ordering::Relaxed))
    }

    /// Drains the backend (no new requests) or puts it back.
    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    /// Whether an operator drained the backend.
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a completed request with its HTTP status (0 = no response) and error flag.
    pub fn record(&self, status: u16, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed connection attempt.
    pub fn record_connect_failure(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads all counters (each individually atomic; the set is not a transaction).
    pub fn figures(&self) -> LiveFigures {
        let mut by_class = [0; 6];
        for (out, c) in by_class.iter_mut().zip(&self.by_class) {
            *out = c.load(Ordering::Relaxed);
        }
        LiveFigures {
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            by_class,
        }
    }
}

/// Subtracts one, never below zero (a mispaired release must not wrap a counter).
fn decrement(counter: &AtomicU64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

/// Index into `STATUS_CLASSES` for an HTTP status (anything outside 100..600 is "none").
pub fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// Holds one in-flight slot of a backend; releases it when dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    live: &'a Live,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A peak-sensitive EWMA of round-trip time, lock-free, with tower/linkerd2-proxy semantics:
/// a sample above the estimate replaces it at once; a lower one pulls the estimate toward it
/// by `1 - exp(-elapsed / decay)`; reading it for a pick decays it toward zero the same way
/// and stores the result (so a backend that is avoided looks better as time passes and is
/// tried again).
///
/// State is one `AtomicU64`: the estimate as f32 nanoseconds (high half) and the time of the
/// last update in 16 µs units (low half, wrapping every ~19 hours; elapsed times are taken
/// with wrapping arithmetic, so only a backend untouched for 19 hours decays wrongly, and by
/// then any estimate has decayed to nothing anyway). Updates race benignly through CAS.
#[derive(Debug, Default)]
pub struct PeakRtt {
    state: AtomicU64,
}

const TICK_SHIFT: u32 = 14; // 2^14 ns = 16.384 µs

fn pack(estimate_ns: f64, now_nanos: u64) -> u64 {
    let est = (estimate_ns as f32).to_bits() as u64;
    let stamp = (now_nanos >> TICK_SHIFT) & 0xffff_ffff;
    (est << 32) | stamp
}

fn unpack(state: u64, now_nanos: u64) -> (f64, f64) {
    let est = f64::from(f32::from_bits((state >> 32) as u32));
    let now_ticks = ((now_nanos >> TICK_SHIFT) & 0xffff_ffff) as u32;
    let elapsed_ticks = now_ticks.wrapping_sub(state as u32);
    (
        est,
        f64::from(elapsed_ticks) * f64::from(1u32 << TICK_SHIFT),
    )
}

impl PeakRtt {
    /// The estimate at `now`, decayed toward zero since the last update and stored back;
    /// `default_ns` until the first sample. Cost for p2c_peak_ewma = this × (pending + 1).
    pub fn decayed(&self, now_nanos: u64, default_ns: f64, decay_ns: f64) -> f64 {
        self.update(now_nanos, decay_ns, default_ns, |est, w| est * w)
    }

    /// Feeds a completed round trip of `rtt_ns` observed at `now`.
    pub fn observe(&self, rtt_ns: f64, now_nanos: u64, default_ns: f64, decay_ns: f64) {
        if !rtt_ns.is_finite() || rtt_ns < 0.0 {
            return;
        }
        self.update(now_nanos, decay_ns, default_ns, |est, w| {
            if est < rtt_ns {
                rtt_ns
            } else {
                est * w + rtt_ns * (1.0 - w)
            }
        });
    }

    fn update(
        &self,
        now_nanos: u64,
        decay_ns: f64,
        default_ns: f64,
        next: impl Fn(f64, f64) -> f64,
    ) -> f64 {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (est, elapsed) = if current == 0 {
                (default_ns, 0.0)
            } else {
                unpack(current, now_nanos)
            };
            let weight = (-elapsed / decay_ns.max(1.0)).exp();
            let value = next(est, weight).max(f64::from(f32::MIN_POSITIVE));
            let packed = pack(value, now_nanos).max(1);
            match self.state.compare_exchange_weak(
                current,
                packed,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return value,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const DECAY: f64 = 10_000.0 * MS;

    #[test]
    fn peak_rtt_starts_at_the_default_jumps_to_peaks_and_decays() {
        let rtt = PeakRtt::default();
        assert!((rtt.decayed(0, 30.0 * MS, DECAY) - 30.0 * MS).abs() < 1.0);
        // A higher sample replaces the estimate at once.
        rtt.observe(100.0 * MS, 1_000_000_000, 30.0 * MS, DECAY);
        let est = rtt.decayed(1_000_000_000, 30.0 * MS, DECAY);
        assert!((est - 100.0 * MS).abs() < 0.01 * MS, "{est}");
        // Ten seconds later (one decay period) a pick sees it decayed by 1/e.
        let later = rtt.decayed(11_000_000_000, 30.0 * MS, DECAY);
        assert!(
            (later / (100.0 * MS) - (-1.0f64).exp()).abs() < 0.01,
            "{later}"
        );
        // A lower sample right away barely moves it; after a long gap it takes over.
        rtt.observe(1.0 * MS, 11_000_000_000, 30.0 * MS, DECAY);
        let same = rtt.decayed(11_000_000_000, 30.0 * MS, DECAY);
        assert!((same / later - 1.0).abs() < 0.01, "{same} vs {later}");
        rtt.observe(1.0 * MS, 111_000_000_000, 30.0 * MS, DECAY);
        let low = rtt.decayed(111_000_000_000, 30.0 * MS, DECAY);
        assert!((low - 1.0 * MS).abs() < 0.01 * MS, "{low}");
    }

    #[test]
    fn peak_rtt_ignores_nonsense() {
        let rtt = PeakRtt::default();
        rtt.observe(f64::NAN, 5, 30.0 * MS, DECAY);
        rtt.observe(-1.0, 5, 30.0 * MS, DECAY);
        assert!((rtt.decayed(5, 30.0 * MS, DECAY) - 30.0 * MS).abs() < 1.0);
    }

    #[test]
    fn in_flight_guard_counts_up_and_down() {
        let live = Live::default();
        let a = live.begin();
        let b = live.begin();
        assert_eq!(live.in_flight(), 2);
        drop(a);
        assert_eq!(live.in_flight(), 1);
        drop(b);
        assert_eq!(live.in_flight(), 0);
    }

    #[test]
    fn silence_grows_while_requests_wait_unanswered() {
        let live = Live::default();
        assert_eq!(live.silent_nanos(100), 0);
        live.acquire(1_000);
        live.acquire(2_000);
        assert_eq!(live.silent_nanos(5_000), 4_000, "since the first was sent");
        live.answered(6_000);
        assert_eq!(live.silent_nanos(9_000), 3_000, "since the last answer");
        live.release(true);
        assert_eq!(live.in_flight(), 1);
        // The other one gives up unanswered: nothing waits, nothing is silent.
        live.release(false);
        assert_eq!((live.in_flight(), live.silent_nanos(50_000)), (0, 0));
        // A mispaired release does not wrap the counters.
        live.release(false);
        assert_eq!((live.in_flight(), live.silent_nanos(60_000)), (0, 0));
        // A new request after a quiet spell starts the clock afresh.
        live.acquire(70_000);
        assert_eq!(live.silent_nanos(71_000), 1_000);
    }

    #[test]
    fn statuses_land_in_their_class() {
        let live = Live::default();
        live.record(200, false);
        live.record(204, false);
        live.record(502, true);
        live.record(0, true);
        let f = live.figures();
        assert_eq!(f.requests, 4);
        assert_eq!(f.errors, 2);
        assert_eq!(f.by_class, [0, 2, 0, 0, 1, 1]);
    }
}
