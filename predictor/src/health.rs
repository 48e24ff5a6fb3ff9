//! Backend health: active checks (rise/fall), passive outlier ejection, and the upstream-wide
//! limits on both (never eject more than a share at once; below a share of healthy backends,
//! ignore health rather than crush the survivors).
//!
//! Everything here is atomics and takes `now` (nanoseconds, the caller's clock) as an
//! argument. The request path calls [`Health::serving`] (two relaxed loads) and
//! [`Health::record_request`]; the checker calls [`Health::record_check`]; a sweep calls
//! [`Health::sweep`] to end ejections whose time is up and [`UpstreamHealth::recount`] to
//! refresh the upstream's counts. Each call that changes a backend's state returns the
//! [`HealthChange`], so the caller logs it exactly once.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Whether a backend takes traffic, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Taking traffic.
    Up,
    /// Failed its active checks `fall` times in a row.
    Down,
    /// Ejected by outlier detection until its ejection time is up.
    Ejected,
}

impl HealthState {
    /// The state's name in `/status`, `/metrics` and logs.
    pub fn name(self) -> &'static str {
        match self {
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Ejected => "ejected",
        }
    }
}

/// Why a request or a check failed (the last failure is kept as the reason of a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    /// The TCP connect failed or was refused.
    Connect = 1,
    /// No answer within the timeout.
    Timeout = 2,
    /// The connection was reset or closed before the answer was complete.
    Reset = 3,
    /// The backend answered 5xx (requests) or outside `expect` (checks).
    Status = 4,
}

impl Failure {
    fn from_u8(v: u8) -> Option<Failure> {
        Some(match v {
            1 => Failure::Connect,
            2 => Failure::Timeout,
            3 => Failure::Reset,
            4 => Failure::Status,
            _ => return None,
        })
    }

    /// The failure's name in logs and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect failure",
            Failure::Timeout => "timeout",
            Failure::Reset => "reset",
            Failure::Status => "bad status",
        }
    }
}

/// What made a backend change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `count` consecutive failed active checks, the last one `last`.
    ChecksFailed { count: u32, last: Failure },
    /// `count` consecutive passed active checks.
    ChecksPassed { count: u32 },
    /// `count` consecutive failed requests, the last one `last`; the `nth` ejection in a
    /// row, for `for_ms`.
    Ejected {
        count: u32,
        last: Failure,
        nth: u32,
        for_ms: u64,
    },
    /// The ejection time is up.
    EjectionOver,
    /// A reload removed the upstream's active checks.
    ChecksRemoved,
    /// The way to the backend is gone: the tunnel it is reached through is down.
    PathDown,
    /// The way to the backend is back: its tunnel is up again.
    PathUp,
}

impl Reason {
    /// Packs the reason into one word (kind, failure, count, nth, for_ms), so that the last
    /// one can be kept in an atomic.
    fn pack(self) -> u64 {
        let (kind, failure, count, nth, for_ms) = match self {
            Reason::ChecksFailed { count, last } => (1, last as u64, count, 0, 0),
            Reason::ChecksPassed { count } => (2, 0, count, 0, 0),
            Reason::Ejected {
                count,
                last,
                nth,
                for_ms,
            } => (3, last as u64, count, nth, for_ms),
            Reason::EjectionOver => (4, 0, 0, 0, 0),
            Reason::ChecksRemoved => (5, 0, 0, 0, 0),
            Reason::PathDown => (6, 0, 0, 0, 0),
            Reason::PathUp => (7, 0, 0, 0, 0),
        };
        kind | failure << 4
            | u64::from(count.min(0xffff)) << 8
            | u64::from(nth.min(0xff)) << 24
            | for_ms.min(0xffff_ffff) << 32
    }

    fn unpack(word: u64) -> Option<Reason> {
        let failure = || Failure::from_u8(((word >> 4) & 0xf) as u8);
        let count = ((word >> 8) & 0xffff) as u32;
        Some(match word & 0xf {
            1 => Reason::ChecksFailed {
                count,
                last: failure()?,
            },
            2 => Reason::ChecksPassed { count },
            3 => Reason::Ejected {
                count,
                last: failure()?,
                nth: ((word >> 24) & 0xff) as u32,
                for_ms: word >> 32,
            },
            4 => Reason::EjectionOver,
            5 => Reason::ChecksRemoved,
            6 => Reason::PathDown,
            7 => Reason::PathUp,
            _ => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::ChecksFailed { count, last } => {
                write!(f, "{count} failed checks in a row (last: {})", last.name())
            }
            Reason::ChecksPassed { count } => write!(f, "{count} passed checks in a row"),
            Reason::Ejected {
                count,
                last,
                nth,
                for_ms,
            } => write!(
                f,
                "{count} failed requests in a row (last: {}); ejection {nth} for {:.1}s",
                last.name(),
                for_ms as f64 / 1000.0
            ),
            Reason::EjectionOver => f.write_str("ejection time over"),
            Reason::ChecksRemoved => f.write_str("active checks removed"),
            Reason::PathDown => f.write_str("its tunnel is down"),
            Reason::PathUp => f.write_str("its tunnel is up again"),
        }
    }
}

/// One change of a backend's state, to be logged and counted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// State before.
    pub from: HealthState,
    /// State after.
    pub to: HealthState,
    /// Why.
    pub reason: Reason,
}

/// Outlier detection settings, in the units the atomics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionPolicy {
    /// Consecutive failed requests that eject (0: never).
    pub consecutive_failures: u32,
    /// First ejection, ns; the n-th in a row lasts n times this.
    pub base_nanos: u64,
    /// Longest ejection, ns.
    pub max_nanos: u64,
    /// Percentage of the upstream that may be ejected at once.
    pub max_percent: u32,
}

/// A backend's health, shared by the request path, the checker and the sweep.
#[derive(Debug)]
pub struct Health {
    /// False once active checks took the backend down (true without checks).
    checks_up: AtomicBool,
    /// False while the way to the backend is gone (its tunnel is down).
    path_up: AtomicBool,
    /// Passed (positive) or failed (negative) checks in a row.
    check_streak: AtomicU32,
    /// Failed requests in a row.
    failures: AtomicU32,
    /// Ejected until this time (ns); 0 when not ejected.
    ejected_until: AtomicU64,
    /// Ejections in a row: reset when the backend serves a full base ejection time without
    /// being ejected again.
    ejections: AtomicU32,
    /// The last failure seen (a `Failure` code).
    last_failure: AtomicU8,
    /// When the state last changed (ns), and when the backend last came back.
    since: AtomicU64,
    /// The last change's `Reason`, packed (0: none yet).
    reason: AtomicU64,
    returned_at: AtomicU64,
    /// Counters of changes into each state: up, down, ejected.
    into: [AtomicU64; 3],
}

impl Default for Health {
    fn default() -> Self {
        Health {
            checks_up: AtomicBool::new(true),
            path_up: AtomicBool::new(true),
            check_streak: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            last_failure: AtomicU8::new(0),
            since: AtomicU64::new(0),
            reason: AtomicU64::new(0),
            returned_at: AtomicU64::new(0),
            into: Default::default(),
        }
    }
}

/// Read-only figures of a backend's health, for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthFigures {
    /// Current state.
    pub state: HealthState,
    /// Since when (ns, the caller's clock; 0 = since start).
    pub since_nanos: u64,
    /// When an ejection ends (ns), if ejected.
    pub ejected_until_nanos: Option<u64>,
    /// Failed requests in a row now.
    pub consecutive_failures: u32,
    /// Ejections in a row.
    pub ejections: u32,
    /// The last failure seen.
    pub last_failure: Option<Failure>,
    /// Why the state last changed (`None`: it never did).
    pub reason: Option<Reason>,
    /// Changes into up, down and ejected so far.
    pub transitions: [u64; 3],
}

impl Health {
    /// Whether the backend takes traffic: not down by checks or by its path, and not
    /// ejected. Three relaxed loads; an ejection whose time is up ends at the next sweep.
    pub fn serving(&self) -> bool {
        self.checks_up.load(Ordering::Relaxed)
            && self.path_up.load(Ordering::Relaxed)
            && self.ejected_until.load(Ordering::Relaxed) == 0
    }

    /// Whether there is a way to the backend at all (its tunnel, if any, is not down).
    /// Unlike health, this holds in panic too: a request into a down tunnel cannot succeed.
    pub fn reachable(&self) -> bool {
        self.path_up.load(Ordering::Relaxed)
    }

    /// The current state (ejection wins over a failed check: it names the more recent cause
    /// only if checks still pass).
    pub fn state(&self) -> HealthState {
        if !self.path_up.load(Ordering::Relaxed) {
            // A lost path explains any failure (and ends any ejection; see `set_path`).
            HealthState::Down
        } else if self.ejected_until.load(Ordering::Relaxed) != 0 {
            HealthState::Ejected
        } else if !self.checks_up.load(Ordering::Relaxed) {
            HealthState::Down
        } else {
            HealthState::Up
        }
    }

    /// When the backend last came back into service (ns; 0 = never left), for slow start.
    pub fn returned_at(&self) -> u64 {
        self.returned_at.load(Ordering::Relaxed)
    }

    /// Starts the backend's slow start at `now` as if it had just come back: for a backend
    /// that joins a running upstream (a reload that adds it), which must not take a full share
    /// before its first answer any more than one back from an outage.
    pub fn start_slow_start(&self, now: u64) {
        self.returned_at.store(now.max(1), Ordering::Relaxed);
    }

    /// The share of its weight a backend takes `window` after coming back from an outage:
    /// rising linearly from 0.05 to 1 over `window`; 1 for one that never left (a start-up
    /// is not an outage: every backend starts together) or whose window is over.
    pub fn slow_start(&self, now: u64, window: u64) -> f64 {
        let back = self.returned_at.load(Ordering::Relaxed);
        if back == 0 || window == 0 {
            return 1.0;
        }
        let elapsed = now.saturating_sub(back);
        if elapsed >= window {
            1.0
        } else {
            (elapsed as f64 / window as f64).max(0.05)
        }
    }

    /// Figures for the admin pages.
    pub fn figures(&self) -> HealthFigures {
        let until = self.ejected_until.load(Ordering::Relaxed);
        HealthFigures {
            state: self.state(),
            since_nanos: self.since.load(Ordering::Relaxed),
            ejected_until_nanos: (until != 0).then_some(until),
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
            last_failure: Failure::from_u8(self.last_failure.load(Ordering::Relaxed)),
            reason: Reason::unpack(self.reason.load(Ordering::Relaxed)),
            transitions: [
                self.into[0].load(Ordering::Relaxed),
                self.into[1].load(Ordering::Relaxed),
                self.into[2].load(Ordering::Relaxed),
            ],
        }
    }

    /// Records the outcome of a request (`None`: it succeeded). On the `policy`'s
    /// consecutive failure, ejects the backend if `upstream` has room for one more ejection.
    pub fn record_request(
        &self,
        failure: Option<Failure>,
        now: u64,
        policy: &EjectionPolicy,
        upstream: &UpstreamHealth,
    ) -> Option<HealthChange> {
        let Some(failure) = failure else {
            // A relaxed store of zero only when needed: the common case is a load.
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return None;
        };
        self.last_failure.store(failure as u8, Ordering::Relaxed);
        let count = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if policy.consecutive_failures == 0
            || !self.path_up.load(Ordering::Relaxed)
            || count < policy.consecutive_failures
            || self.ejected_until.load(Ordering::Relaxed) != 0
            || !upstream.try_eject(policy.max_percent)
        {
            return None;
        }
        let from = self.state();
        let nth = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let for_nanos = policy
            .base_nanos
            .saturating_mul(u64::from(nth))
            .min(policy.max_nanos.max(policy.base_nanos));
        // `now + 1` at least, so an ejection is never stored as "not ejected".
        let until = now.saturating_add(for_nanos).max(1);
        if self
            .ejected_until
            .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another request ejected it first.
            upstream.ejection_ended();
            self.ejections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.failures.store(0, Ordering::Relaxed);
        let reason = Reason::Ejected {
            count,
            last: failure,
            nth,
            for_ms: for_nanos / 1_000_000,
        };
        Some(self.changed(now, from, HealthState::Ejected, reason))
    }

    /// Records an active check (`None`: it passed) against `rise` and `fall`.
    ///
    /// Passing checks also end an ejection (as Envoy's
    /// `successful_active_health_check_uneject_host` does) when they contradict its cause:
    /// the backend was ejected for failed connects (a crash, say; it may be restarted
    /// before any check fails) or checks took it down too. An ejection for bad answers
    /// that the checks do not see (503 to requests, a TCP check passing) runs its time.
    pub fn record_check(
        &self,
        failure: Option<Failure>,
        now: u64,
        rise: u32,
        fall: u32,
        upstream: &UpstreamHealth,
    ) -> Option<HealthChange> {
        if !self.path_up.load(Ordering::Relaxed) {
            // A check that raced the path going: the path explains it.
            return None;
        }
        // The streak is kept as i32 in a u32: positive passes, negative failures.
        let streak = self.check_streak.load(Ordering::Relaxed) as i32;
        let streak = match failure {
            None => streak.max(0).saturating_add(1),
            Some(f) => {
                self.last_failure.store(f as u8, Ordering::Relaxed);
                streak.min(0).saturating_sub(1)
            }
        };
        self.check_streak.store(streak as u32, Ordering::Relaxed);
        let up = self.checks_up.load(Ordering::Relaxed);
        let from = self.state();
        let passed = streak >= rise.max(1) as i32;
        let (change, reason) = match failure {
            None if passed && (!up || self.ejected_for_connect_failures()) => (
                true,
                Reason::ChecksPassed {
                    count: streak.unsigned_abs(),
                },
            ),
            Some(last) if up && -streak >= fall.max(1) as i32 => (
                false,
                Reason::ChecksFailed {
                    count: streak.unsigned_abs(),
                    last,
                },
            ),
            _ => return None,
        };
        self.checks_up.store(change, Ordering::Relaxed);
        if change {
            self.clear_ejection(upstream);
        }
        let to = self.state();
        if to == from {
            // Down by checks while ejected (or back while still ejected): the state shown
            // is still the ejection.
            return None;
        }
        Some(self.changed(now, from, to, reason))
    }

    /// Whether the backend is ejected, and was for failed connects.
    fn ejected_for_connect_failures(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
            && matches!(
                Reason::unpack(self.reason.load(Ordering::Relaxed)),
                Some(Reason::Ejected {
                    last: Failure::Connect,
                    ..
                })
            )
    }

    /// Ends an ejection whose time is up, and forgets an old run of ejections once the
    /// backend has served `base_nanos` since its last return. Call it every sweep.
    pub fn sweep(
        &self,
        now: u64,
        policy: &EjectionPolicy,
        upstream: &UpstreamHealth,
    ) -> Option<HealthChange> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            let back = self.returned_at.load(Ordering::Relaxed);
            if self.ejections.load(Ordering::Relaxed) != 0
                && now.saturating_sub(back) >= policy.base_nanos
            {
                self.ejections.store(0, Ordering::Relaxed);
            }
            return None;
        }
        if now < until
            || self
                .ejected_until
                .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        upstream.ejection_ended();
        self.failures.store(0, Ordering::Relaxed);
        let to = self.state();
        Some(self.changed(now, HealthState::Ejected, to, Reason::EjectionOver))
    }

    /// Takes the backend out of ejection at once (an operator's undrain, or a reload that
    /// turned outlier detection off).
    pub fn clear_ejection(&self, upstream: &UpstreamHealth) {
        if self.ejected_until.swap(0, Ordering::Relaxed) != 0 {
            upstream.ejection_ended();
        }
    }
}

impl Health {
    /// Notes a change (time, reason, counter) and returns it.
    fn changed(
        &self,
        now: u64,
        from: HealthState,
        to: HealthState,
        reason: Reason,
    ) -> HealthChange {
        self.since.store(now, Ordering::Relaxed);
        self.reason.store(reason.pack(), Ordering::Relaxed);
        if to == HealthState::Up {
            self.returned_at.store(now, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
        self.into[state_index(to)].fetch_add(1, Ordering::Relaxed);
        HealthChange { from, to, reason }
    }

    /// Records whether the way to the backend exists (its tunnel is not down). A backend
    /// whose path goes is down at once, without a failed request or check. The lost path
    /// explains what failed before it: an ejection ends (its slot goes back to `upstream`)
    /// and failed checks are forgotten, so that when the path is back the backend returns
    /// through slow start and its checks judge it afresh. Results of requests and checks
    /// while the path is gone are not held against it.
    pub fn set_path(&self, up: bool, now: u64, upstream: &UpstreamHealth) -> Option<HealthChange> {
        if self.path_up.load(Ordering::Relaxed) == up {
            return None;
        }
        let from = self.state();
        if !up {
            self.clear_ejection(upstream);
            self.checks_up.store(true, Ordering::Relaxed);
            self.check_streak.store(0, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
        self.path_up.store(up, Ordering::Relaxed);
        let to = self.state();
        let reason = if up { Reason::PathUp } else { Reason::PathDown };
        if to == from {
            // Down by checks before, down by the path now: the reason shown is the path.
            self.reason.store(reason.pack(), Ordering::Relaxed);
            return None;
        }
        Some(self.changed(now, from, to, reason))
    }

    /// Brings a backend that checks took down back at once: the upstream no longer has
    /// active checks (a reload removed them).
    pub fn reset_checks(&self, now: u64) -> Option<HealthChange> {
        self.check_streak.store(0, Ordering::Relaxed);
        if self.checks_up.swap(true, Ordering::Relaxed) {
            return None;
        }
        let to = self.state();
        (to == HealthState::Up)
            .then(|| self.changed(now, HealthState::Down, to, Reason::ChecksRemoved))
    }
}

fn state_index(state: HealthState) -> usize {
    match state {
        HealthState::Up => 0,
        HealthState::Down => 1,
        HealthState::Ejected => 2,
    }
}

/// An upstream's health counts: how many backends it has, how many are ejected, and whether
/// it is in panic (too few healthy backends: health is ignored).
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    members: AtomicU32,
    ejected: AtomicU32,
    panic: AtomicBool,
}

impl UpstreamHealth {
    /// Whether health is ignored for now: fewer than the panic threshold's share of the
    /// backends are serving.
    pub fn panic(&self) -> bool {
        self.panic.load(Ordering::Relaxed)
    }

    /// Ejected backends now.
    pub fn ejected(&self) -> u32 {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Counts one more ejection if that keeps the ejected share within `max_percent`.
    fn try_eject(&self, max_percent: u32) -> bool {
        let members = u64::from(self.members.load(Ordering::Relaxed));
        let allowed = members * u64::from(max_percent.min(100)) / 100;
        self.ejected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (u64::from(n) < allowed).then_some(n + 1)
            })
            .is_ok()
    }

    fn ejection_ended(&self) {
        let _ = self
            .ejected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Recounts from the members' own states (after a reload, and every sweep, so the
    /// counts never drift) and decides panic: fewer than `panic_threshold` × members serving.
    pub fn recount<'a>(&self, members: impl IntoIterator<Item = &'a Health>, panic_threshold: f64) {
        let (mut total, mut ejected, mut serving) = (0u32, 0u32, 0u32);
        for h in members {
            // A member nothing can reach (its tunnel is down) is left out: a remote site
            // going away must not put the local members into panic.
            if !h.reachable() {
                continue;
            }
            total += 1;
            ejected += u32::from(h.ejected_until.load(Ordering::Relaxed) != 0);
            serving += u32::from(h.serving());
        }
        self.members.store(total, Ordering::Relaxed);
        self.ejected.store(ejected, Ordering::Relaxed);
        let panic = total > 0 && f64::from(serving) < panic_threshold * f64::from(total);
        self.panic.store(panic, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn policy() -> EjectionPolicy {
        EjectionPolicy {
            consecutive_failures: 3,
            base_nanos: 10 * SEC,
            max_nanos: 25 * SEC,
            max_percent: 50,
        }
    }

    /// `n` healthy members and their upstream's counts.
    fn members(n: usize) -> (Vec<Health>, UpstreamHealth) {
        let hs: Vec<Health> = (0..n).map(|_| Health::default()).collect();
        let u = UpstreamHealth::default();
        u.recount(&hs, 0.5);
        (hs, u)
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let (hs, u) = members(4);
        let h = &hs[0];
        let p = policy();
        assert_eq!(h.record_request(Some(Failure::Status), 1, &p, &u), None);
        assert_eq!(h.record_request(Some(Failure::Status), 2, &p, &u), None);
        assert_eq!(h.record_request(None, 3, &p, &u), None);
        assert_eq!(h.record_request(Some(Failure::Connect), 4, &p, &u), None);
        assert_eq!(h.record_request(Some(Failure::Connect), 5, &p, &u), None);
        assert!(h.serving());
        let t = h.record_request(Some(Failure::Timeout), 6, &p, &u).unwrap();
        assert_eq!((t.from, t.to), (HealthState::Up, HealthState::Ejected));
        assert_eq!(
            t.reason.to_string(),
            "3 failed requests in a row (last: timeout); ejection 1 for 10.0s"
        );
        assert!(!h.serving());
        assert_eq!(u.ejected(), 1);
        // Further failures while ejected change nothing.
        for now in 7..20 {
            assert_eq!(h.record_request(Some(Failure::Reset), now, &p, &u), None);
        }
        assert_eq!(h.figures().transitions, [0, 0, 1]);
    }

    #[test]
    fn a_lost_path_takes_the_backend_out_at_once_and_its_return_brings_it_back_slowly() {
        let (hs, u) = members(2);
        let h = &hs[0];
        assert_eq!(
            h.set_path(true, SEC, &u),
            None,
            "no change, nothing to note"
        );
        let out = h.set_path(false, 2 * SEC, &u).unwrap();
        assert_eq!((out.from, out.to), (HealthState::Up, HealthState::Down));
        assert_eq!(out.reason.to_string(), "its tunnel is down");
        assert!(!h.serving() && !h.reachable());
        assert_eq!(h.set_path(false, 3 * SEC, &u), None);
        let back = h.set_path(true, 4 * SEC, &u).unwrap();
        assert_eq!((back.to, back.reason), (HealthState::Up, Reason::PathUp));
        assert!(h.serving() && h.reachable());
        assert_eq!(h.returned_at(), 4 * SEC, "slow start from the return");
        assert_eq!(h.figures().transitions, [1, 1, 0]);

        // Down by checks, then the path goes: the path is the reason shown, and the failed
        // checks are forgotten, so the backend comes back with the path.
        let fail = Some(Failure::Connect);
        assert!(h.record_check(fail, 5 * SEC, 1, 1, &u).is_some());
        assert_eq!(h.set_path(false, 6 * SEC, &u), None, "already down");
        assert_eq!(h.figures().reason, Some(Reason::PathDown));
        assert_eq!(
            h.record_check(fail, 7 * SEC, 1, 1, &u),
            None,
            "not held against it"
        );
        let back = h.set_path(true, 8 * SEC, &u).unwrap();
        assert_eq!((back.from, back.to), (HealthState::Down, HealthState::Up));

        // Ejected, then the path goes: the ejection ends (its slot is given back), failed
        // requests while the path is gone eject nothing, and the upstream leaves the member
        // out of its panic count.
        let p = policy();
        let ejected = (0..3)
            .filter_map(|i| h.record_request(fail, 9 * SEC + i, &p, &u))
            .last()
            .unwrap();
        assert_eq!(ejected.to, HealthState::Ejected);
        assert_eq!(u.ejected(), 1);
        let out = h.set_path(false, 10 * SEC, &u).unwrap();
        assert_eq!(
            (out.from, out.to),
            (HealthState::Ejected, HealthState::Down)
        );
        assert_eq!(u.ejected(), 0);
        for i in 0..5 {
            assert_eq!(h.record_request(fail, 11 * SEC + i, &p, &u), None);
        }
        u.recount(&hs, 0.6);
        assert!(!u.panic(), "the one reachable member serves");
        assert_eq!(h.set_path(true, 12 * SEC, &u).unwrap().to, HealthState::Up);
    }

    #[test]
    fn ejection_ends_at_the_sweep_after_its_time_and_repeats_grow_up_to_the_cap() {
        let (hs, u) = members(2);
        let h = &hs[0];
        let p = policy();
        let mut now = SEC;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let t = (0..3)
                .filter_map(|_| h.record_request(Some(Failure::Status), now, &p, &u))
                .last()
                .unwrap();
            let Reason::Ejected { for_ms, .. } = t.reason else {
                panic!("{t:?}")
            };
            lengths.push(for_ms / 1000);
            assert_eq!(h.sweep(now + for_ms * 1_000_000 - 1, &p, &u), None);
            now += for_ms * 1_000_000;
            let back = h.sweep(now, &p, &u).unwrap();
            assert_eq!(back.to, HealthState::Up);
            assert_eq!(back.reason, Reason::EjectionOver);
            assert!(h.serving());
            assert_eq!(h.returned_at(), now);
            assert_eq!(u.ejected(), 0);
        }
        assert_eq!(lengths, [10, 20, 25, 25]);
        // A base ejection time of good service forgets the run.
        assert_eq!(h.sweep(now + 10 * SEC, &p, &u), None);
        assert_eq!(h.figures().ejections, 0);
    }

    #[test]
    fn never_more_than_the_allowed_share_is_ejected() {
        let (hs, u) = members(5);
        let p = policy();
        let ejected = hs
            .iter()
            .filter(|h| {
                (0..3)
                    .filter_map(|_| h.record_request(Some(Failure::Connect), 1, &p, &u))
                    .count()
                    > 0
            })
            .count();
        // 50% of 5 is 2.
        assert_eq!(ejected, 2);
        assert_eq!(u.ejected(), 2);
        assert_eq!(hs.iter().filter(|h| h.serving()).count(), 3);
    }

    #[test]
    fn checks_take_a_backend_down_after_fall_and_up_after_rise() {
        let h = Health::default();
        let u = UpstreamHealth::default();
        let check = |failure: Option<Failure>, now: u64| h.record_check(failure, now, 2, 3, &u);
        // Two failures, a pass (which restarts the count), two failures: fall 3 not reached.
        for (now, failure) in [
            (1, Some(Failure::Timeout)),
            (2, Some(Failure::Timeout)),
            (3, None),
            (4, Some(Failure::Status)),
            (5, Some(Failure::Status)),
        ] {
            assert_eq!(check(failure, now), None, "check at {now}");
        }
        let down = check(Some(Failure::Connect), 6).unwrap();
        assert_eq!((down.from, down.to), (HealthState::Up, HealthState::Down));
        assert_eq!(
            down.reason.to_string(),
            "3 failed checks in a row (last: connect failure)"
        );
        assert!(!h.serving());
        // A failure, then one pass: rise 2 not reached.
        assert_eq!(check(Some(Failure::Connect), 7), None);
        assert_eq!(check(None, 8), None);
        let up = check(None, 9).unwrap();
        assert_eq!((up.from, up.to), (HealthState::Down, HealthState::Up));
        assert_eq!(up.reason, Reason::ChecksPassed { count: 2 });
        assert!(h.serving());
        assert_eq!(h.returned_at(), 9);
        assert_eq!(h.figures().transitions, [1, 1, 0]);
    }

    #[test]
    fn a_flapping_backend_changes_state_only_at_rise_and_fall() {
        // Alternating pass/fail never reaches rise 2 or fall 3: no change at all.
        let (h, u) = (Health::default(), UpstreamHealth::default());
        for i in 0..100 {
            let failure = (i % 2 == 0).then_some(Failure::Status);
            assert_eq!(h.record_check(failure, i, 2, 3, &u), None);
        }
        assert!(h.serving());
    }

    #[test]
    fn the_last_reason_is_kept_with_the_state() {
        let (hs, u) = members(2);
        let h = &hs[0];
        assert_eq!(h.figures().reason, None);
        for now in 0..3 {
            h.record_request(Some(Failure::Reset), now, &policy(), &u);
        }
        let f = h.figures();
        assert_eq!(f.state, HealthState::Ejected);
        assert_eq!(f.since_nanos, 2);
        assert_eq!(f.ejected_until_nanos, Some(2 + 10 * SEC));
        assert_eq!(
            f.reason,
            Some(Reason::Ejected {
                count: 3,
                last: Failure::Reset,
                nth: 1,
                for_ms: 10_000
            })
        );
        for reason in [
            Reason::ChecksFailed {
                count: 3,
                last: Failure::Status,
            },
            Reason::ChecksPassed { count: 2 },
            Reason::EjectionOver,
            Reason::ChecksRemoved,
        ] {
            assert_eq!(Reason::unpack(reason.pack()), Some(reason));
        }
    }

    #[test]
    fn passing_checks_end_an_ejection_only_after_checks_took_the_backend_down() {
        let (hs, u) = members(2);
        let p = policy();
        // A crash: requests fail (ejected), then checks fail too.
        let crashed = &hs[0];
        for now in 0..3 {
            crashed.record_request(Some(Failure::Connect), now, &p, &u);
        }
        assert_eq!(u.ejected(), 1);
        for now in 3..6 {
            // Down by checks while ejected: the state shown is still the ejection.
            assert_eq!(
                crashed.record_check(Some(Failure::Connect), now, 2, 3, &u),
                None
            );
        }
        assert_eq!(crashed.record_check(None, 6, 2, 3, &u), None);
        let back = crashed.record_check(None, 7, 2, 3, &u).unwrap();
        assert_eq!(
            (back.from, back.to),
            (HealthState::Ejected, HealthState::Up)
        );
        assert_eq!(u.ejected(), 0);
        assert!(crashed.serving());
        // A crash and a restart before any check failed: one passing check ends it.
        let restarted = &hs[1];
        for now in 10..13 {
            restarted.record_request(Some(Failure::Connect), now, &p, &u);
        }
        assert_eq!(restarted.state(), HealthState::Ejected);
        let back = restarted.record_check(None, 13, 1, 3, &u).unwrap();
        assert_eq!(
            (back.from, back.to),
            (HealthState::Ejected, HealthState::Up)
        );
        // A backend whose requests fail but whose checks pass stays ejected its time.
        let sick = &hs[1];
        for now in 0..3 {
            sick.record_request(Some(Failure::Status), now, &p, &u);
        }
        for now in 3..10 {
            assert_eq!(sick.record_check(None, now, 2, 3, &u), None);
        }
        assert_eq!(sick.state(), HealthState::Ejected);
    }

    #[test]
    fn removing_checks_brings_a_down_backend_back() {
        let (h, u) = (Health::default(), UpstreamHealth::default());
        for now in 0..3 {
            h.record_check(Some(Failure::Timeout), now, 2, 3, &u);
        }
        assert_eq!(h.state(), HealthState::Down);
        let back = h.reset_checks(10).unwrap();
        assert_eq!((back.from, back.to), (HealthState::Down, HealthState::Up));
        assert_eq!(back.reason, Reason::ChecksRemoved);
        assert_eq!(h.reset_checks(11), None);
    }

    #[test]
    fn panic_when_too_few_serve() {
        let (hs, u) = members(4);
        assert!(!u.panic());
        for h in &hs[..3] {
            for now in 0..3 {
                h.record_check(Some(Failure::Connect), now, 2, 3, &u);
            }
        }
        u.recount(&hs, 0.5);
        assert!(u.panic(), "1 of 4 serving is below half");
        u.recount(&hs, 0.0);
        assert!(!u.panic(), "a threshold of 0 never panics");
    }
}
