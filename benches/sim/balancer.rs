//! One simulated augur instance: its own members (own `Live` counters, so in-flight is what
//! this instance sees), its own policy object, and its own `Predictor` fed only by its own
//! observations, ticked on the virtual clock.

use augur_predictor::BuildPolicy;
use augur_predictor::{
    Attempt, BackendId, Exchange, Member, PickContext, Policy, PredictiveParams, Predictor,
    PredictorSettings, Snapshot, Tried,
};

/// The policies compared, in table order (`PolicyKind::ALL`).
pub use augur_predictor::PolicyKind;

/// Slow start, the config's default (`predictor.slow_start`): a joining backend ramps up
/// over it, as in the proxy.
const SLOW_START_NANOS: u64 = 10_000_000_000;

/// One balancer instance.
#[derive(Debug)]
pub struct Balancer {
    kind: PolicyKind,
    seed: u64,
    members: Vec<Member>,
    policy: Box<dyn Policy>,
    predictor: Predictor,
    snapshot: Snapshot,
}

impl Balancer {
    /// An instance routing over backends `0..backends` with `kind`, its policy seeded with
    /// `seed`.
    pub fn new(kind: PolicyKind, backends: usize, seed: u64) -> Self {
        let members: Vec<Member> = (0..backends).map(member).collect();
        let mut predictor = Predictor::new(PredictorSettings::default());
        for m in &members {
            predictor.track(m.id);
        }
        Balancer {
            kind,
            seed,
            policy: kind.build(&members, PredictiveParams::default(), seed),
            members,
            predictor,
            snapshot: Snapshot::default(),
        }
    }

    /// Adds a backend at `now`, as a config reload that adds it would: live counters of the
    /// others are kept, the policy object is rebuilt over the new member list, the newcomer
    /// slow-starts and the predictor starts tracking it.
    pub fn join(&mut self, now: u64, backend: usize) {
        debug_assert_eq!(backend, self.members.len(), "member index = backend id");
        let newcomer = member(backend);
        newcomer.live.health.start_slow_start(now);
        self.members.push(newcomer);
        self.predictor.track(backend as BackendId);
        self.policy = self
            .kind
            .build(&self.members, PredictiveParams::default(), self.seed);
    }

    /// The backend the policy picks for a request at `now`, and the attempt at it (the
    /// proxy's request lifecycle: it holds the backend's in-flight slot).
    pub fn pick(&self, now: u64) -> Option<(usize, Attempt)> {
        let cx = PickContext {
            now_nanos: now,
            snapshot: &self.snapshot,
            ignore_health: false,
            slow_start_nanos: SLOW_START_NANOS,
        };
        let i = self.policy.pick(&cx, &self.members, &Tried::default())?;
        Some((i, Attempt::begin(&self.members[i], Exchange::Request, now)))
    }

    /// The response to `attempt` reached this instance at `now`, with the utilisation the
    /// backend reported, if it did.
    pub fn responded(&mut self, now: u64, mut attempt: Attempt, load: Option<f32>) {
        attempt.answered(now);
        attempt.reported(load);
        self.predictor.observe(&attempt.finish(now, 200, false, 0));
    }

    /// The client gave up on `attempt` at `now`. As in the proxy (a read timeout is a 504
    /// with no response header), the peak-EWMA RTT is not fed.
    pub fn timed_out(&mut self, now: u64, attempt: Attempt) {
        self.predictor.observe(&attempt.finish(now, 504, true, 0));
    }

    /// The predictor's tick: the new snapshot is what picks read until the next one.
    pub fn tick(&mut self, now: u64) {
        self.snapshot = self.predictor.tick(now);
    }

    /// Makes `backend` a standby member (closed unless the snapshot says otherwise), as a
    /// config with `standby = true` on it would; the policy object is rebuilt.
    pub fn set_standby(&mut self, backend: usize) {
        self.members[backend].standby = true;
        self.policy = self
            .kind
            .build(&self.members, PredictiveParams::default(), self.seed);
    }

    /// Marks a standby `backend` woken (or held) in the current snapshot, as the proxy's
    /// standby planning does (the next tick's snapshot starts afresh).
    pub fn set_woken(&mut self, backend: usize, woken: bool) {
        if let Some(f) = self.snapshot.backends.get_mut(backend) {
            f.woken = woken;
        }
    }

    /// Requests this instance has in flight, to all backends.
    pub fn in_flight_total(&self) -> u64 {
        self.members.iter().map(|m| m.live.in_flight()).sum()
    }

    /// The newest snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The predictor (for its per-backend reports).
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// Requests this instance has in flight to `backend`.
    pub fn in_flight(&self, backend: usize) -> u64 {
        self.members.get(backend).map_or(0, |m| m.live.in_flight())
    }
}

fn member(backend: usize) -> Member {
    Member::new(backend as BackendId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_follows_picks_responses_and_timeouts() {
        let mut b = Balancer::new(PolicyKind::RoundRobin, 3, 1);
        let mut picks: Vec<(usize, Attempt)> = (0..3).map(|_| b.pick(0).unwrap()).collect();
        assert_eq!(picks.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        let (last, first) = (picks.pop().unwrap(), picks.remove(0));
        b.responded(5, first.1, Some(0.5));
        b.timed_out(6, picks.remove(0).1);
        let _still_waiting = last;
        assert_eq!((b.in_flight(0), b.in_flight(1), b.in_flight(2)), (0, 0, 1));
        b.tick(100_000_000);
        assert_eq!(b.snapshot().backends.len(), 3);
        b.join(100_000_000, 3);
        b.tick(200_000_000);
        assert_eq!(b.snapshot().backends.len(), 4);
        // A newcomer slow-starts: a twentieth of its share at first.
        let picks = (0..400)
            .filter(|_| b.pick(200_000_000).unwrap().0 == 3)
            .count();
        assert!(picks < 40, "{picks} of 400 picks to the newcomer");
    }
}
