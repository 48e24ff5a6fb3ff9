//! What the predictor side publishes each tick: the models' step, standby planning, and every
//! backend's eligibility as of now, in one call, so that the snapshot picks read is finished
//! here and nowhere else.

use crate::eligibility;
use crate::predict::Predictor;
use crate::snapshot::Snapshot;
use crate::standby::{PlannedUpstream, StandbyPlanning, StandbyStep};

/// One tick at `now` over every upstream: the models' forecasts, standby planning (looking
/// `horizon_nanos` ahead; upstreams without standby members are not planned), and each
/// member's eligibility (drain, standby plan, health). Returns the finished snapshot and what
/// planning decided (for the scale hook and the log, which are the caller's).
pub fn finish_tick(
    predictor: &mut Predictor,
    planning: &mut StandbyPlanning,
    now: u64,
    upstreams: &[PlannedUpstream<'_>],
    horizon_nanos: u64,
) -> (Snapshot, StandbyStep) {
    let mut snapshot = predictor.tick(now);
    let step = planning.plan(now, upstreams, horizon_nanos, &mut snapshot);
    eligibility::finish(&mut snapshot, upstreams.iter().flat_map(|u| u.members));
    (snapshot, step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Scaling;
    use crate::health::{EjectionPolicy, Failure, UpstreamHealth};
    use crate::predict::PredictorSettings;
    use crate::snapshot::Eligibility;
    use crate::testing::members;

    #[test]
    fn a_finished_snapshot_carries_drain_standby_and_health() {
        let mut m = members(4);
        for member in &mut m {
            member.capacity = Some(10);
        }
        m[1].live.set_drained(true);
        m[2].standby = true;
        let upstream = UpstreamHealth::default();
        upstream.recount(m.iter().map(|m| &m.live.health), 0.0);
        let policy = EjectionPolicy {
            consecutive_failures: 1,
            base_nanos: 1_000_000_000,
            max_nanos: 1_000_000_000,
            max_percent: 100,
        };
        let ejected = m[3]
            .live
            .health
            .record_request(Some(Failure::Reset), 1, &policy, &upstream);
        assert!(ejected.is_some());
        let mut predictor = Predictor::new(PredictorSettings::default());
        for member in &m {
            predictor.track(member.id);
        }
        let mut planning = StandbyPlanning::new();
        let upstreams = [PlannedUpstream {
            name: "api",
            members: &m,
            scaling: Scaling {
                activate_at: 0.9,
                min_hold_nanos: 0,
            },
            peers: 0.0,
        }];
        let (snapshot, step) = finish_tick(
            &mut predictor,
            &mut planning,
            100_000_000,
            &upstreams,
            1_000_000_000,
        );
        let marks: Vec<Eligibility> = snapshot.backends.iter().map(|f| f.eligibility).collect();
        assert_eq!(
            marks,
            [
                Eligibility::Active,
                Eligibility::Draining,
                Eligibility::Standby,
                Eligibility::Ejected
            ]
        );
        assert_eq!(snapshot.version, 1);
        assert_eq!(
            step.pools.len(),
            1,
            "the upstream with a standby is planned"
        );
        for (member, mark) in m.iter().zip(marks) {
            assert_eq!(crate::eligibility(member, &snapshot), mark, "picks agree");
        }
    }
}
