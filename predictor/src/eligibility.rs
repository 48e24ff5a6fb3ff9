//! Whether a backend may take new requests: the one decision that picks, the predictor's
//! finished snapshot and `/status` all make through `eligibility`.
//!
//! Inputs, in order of precedence:
//! 1. drain (an operator's, live on the member): `Draining`;
//! 2. standby planning (a standby member is held unless the newest snapshot says the planner
//!    woke it; one the predictor has not reported yet is held): `Standby`;
//! 3. health (checks, outlier ejection, the path to it; live): `Ejected`;
//! 4. otherwise `Active`.
//!
//! Drain and health are read live rather than from the snapshot, so a drain, an ejection, a
//! return or an upstream's panic takes effect on the next pick, not the next tick.

use crate::policy::Member;
use crate::snapshot::{Eligibility, Snapshot};

/// Whether `m` may take new requests, given the newest snapshot.
pub fn eligibility(m: &Member, snapshot: &Snapshot) -> Eligibility {
    if m.live.is_drained() {
        Eligibility::Draining
    } else if m.standby
        && !snapshot
            .backends
            .get(m.id as usize)
            .is_some_and(|f| f.woken)
    {
        Eligibility::Standby
    } else if !m.live.health.serving() {
        Eligibility::Ejected
    } else {
        Eligibility::Active
    }
}

/// Whether `m` may take a request now: active, or (while its upstream is in panic and health
/// is ignored) out of service by health but still reachable: a request into a down tunnel
/// cannot succeed.
pub fn open(m: &Member, snapshot: &Snapshot, ignore_health: bool) -> bool {
    match eligibility(m, snapshot) {
        Eligibility::Active => true,
        Eligibility::Ejected => ignore_health && m.live.health.reachable(),
        Eligibility::Standby | Eligibility::Draining => false,
    }
}

/// Finishes a tick's snapshot: marks every member's eligibility as of now (what the predictor
/// and the admin pages see of it; picks decide live with the same function). `members` are
/// every upstream's members; standby planning has set `woken` before this.
pub fn finish<'a>(snapshot: &mut Snapshot, members: impl IntoIterator<Item = &'a Member>) {
    for m in members {
        let e = eligibility(m, snapshot);
        if let Some(f) = snapshot.backends.get_mut(m.id as usize) {
            f.eligibility = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{EjectionPolicy, Failure, UpstreamHealth};
    use crate::snapshot::Forecast;
    use crate::testing::members;

    fn eject(m: &Member) -> UpstreamHealth {
        let upstream = UpstreamHealth::default();
        upstream.recount([&m.live.health], 0.0);
        let policy = EjectionPolicy {
            consecutive_failures: 1,
            base_nanos: 1_000_000_000,
            max_nanos: 1_000_000_000,
            max_percent: 100,
        };
        let change = m
            .live
            .health
            .record_request(Some(Failure::Connect), 1, &policy, &upstream);
        assert!(change.is_some());
        upstream
    }

    #[test]
    fn drain_then_standby_then_health_decide_in_that_order() {
        let mut m = members(1).remove(0);
        let mut snapshot = Snapshot {
            backends: vec![Forecast::default()],
            ..Snapshot::default()
        };
        assert_eq!(eligibility(&m, &snapshot), Eligibility::Active);
        let upstream = eject(&m);
        assert_eq!(eligibility(&m, &snapshot), Eligibility::Ejected);
        m.standby = true;
        assert_eq!(eligibility(&m, &snapshot), Eligibility::Standby, "held");
        snapshot.backends[0].woken = true;
        assert_eq!(
            eligibility(&m, &snapshot),
            Eligibility::Ejected,
            "woken, but down"
        );
        m.live.set_drained(true);
        assert_eq!(eligibility(&m, &snapshot), Eligibility::Draining);
        m.live.set_drained(false);
        m.live.health.clear_ejection(&upstream);
        assert_eq!(eligibility(&m, &snapshot), Eligibility::Active);
        // A standby the predictor has not reported yet is held.
        assert_eq!(eligibility(&m, &Snapshot::default()), Eligibility::Standby);
    }

    #[test]
    fn panic_opens_unhealthy_members_but_never_unreachable_ones() {
        let m = members(1).remove(0);
        let snapshot = Snapshot::default();
        let upstream = eject(&m);
        assert!(!open(&m, &snapshot, false));
        assert!(open(&m, &snapshot, true));
        m.live.health.set_path(false, 2, &upstream);
        assert!(!open(&m, &snapshot, true));
    }

    #[test]
    fn panic_never_opens_a_held_standby() {
        let mut m = members(1).remove(0);
        m.standby = true;
        let snapshot = Snapshot::default();
        assert!(!open(&m, &snapshot, true), "healthy and held");
        let _upstream = eject(&m);
        assert!(!open(&m, &snapshot, true), "ejected and held");
    }

    #[test]
    fn a_finished_snapshot_shows_what_picks_decide() {
        let mut m = members(3);
        m[1].standby = true;
        m[2].live.set_drained(true);
        let mut snapshot = Snapshot {
            backends: vec![Forecast::default(); 3],
            ..Snapshot::default()
        };
        finish(&mut snapshot, &m);
        let marks: Vec<Eligibility> = snapshot.backends.iter().map(|f| f.eligibility).collect();
        assert_eq!(
            marks,
            [
                Eligibility::Active,
                Eligibility::Standby,
                Eligibility::Draining
            ]
        );
        for (i, member) in m.iter().enumerate() {
            assert_eq!(eligibility(member, &snapshot), marks[i]);
        }
    }
}
