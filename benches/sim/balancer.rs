//! One simulated augur instance: its own members (own `Live` counters, so in-flight is what
//! this instance sees), its own policy object, and its own `Predictor` fed only by its own
//! observations, ticked on the virtual clock.

use std::sync::Arc;

use augur_predictor::BuildPolicy;
use augur_predictor::{
    BackendId, Eligibility, Live, Member, Observation, Outcome, P2cPeakEwma, PickContext, Policy,
    PredictiveParams, Predictor, PredictorSettings, Snapshot, Tried,
};

/// The policies compared, in table order (`PolicyKind::ALL`).
pub use augur_predictor::PolicyKind;

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

const DEFAULT_RTT_NS: f64 = P2cPeakEwma::DEFAULT_RTT.as_nanos() as f64;
const DECAY_NS: f64 = P2cPeakEwma::DECAY.as_nanos() as f64;

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

    /// Adds a backend, as a config reload that adds it would: live counters of the others
    /// are kept, the policy object is rebuilt over the new member list, the predictor starts
    /// tracking the newcomer (and slow-starts it).
    pub fn join(&mut self, backend: usize) {
        debug_assert_eq!(backend, self.members.len(), "member index = backend id");
        self.members.push(member(backend));
        self.predictor.track(backend as BackendId);
        self.policy = self
            .kind
            .build(&self.members, PredictiveParams::default(), self.seed);
    }

    /// The backend the policy picks for a request at `now`, with its in-flight slot taken.
    pub fn pick(&self, now: u64) -> Option<usize> {
        let cx = PickContext {
            now_nanos: now,
            snapshot: &self.snapshot,
            ignore_health: false,
            slow_start_nanos: 0,
        };
        let i = self.policy.pick(&cx, &self.members, &Tried::default())?;
        self.members[i].live.acquire(now);
        Some(i)
    }

    /// A response from `backend` reached this instance at `now` after `latency_ns`.
    pub fn responded(&mut self, now: u64, backend: usize, latency_ns: u64, load: Option<f32>) {
        let live = &self.members[backend].live;
        live.answered(now);
        live.release(true);
        live.rtt
            .observe(latency_ns as f64, now, DEFAULT_RTT_NS, DECAY_NS);
        live.record(200, false);
        self.predictor.observe(&Observation {
            backend: backend as BackendId,
            at_nanos: now,
            first_byte_nanos: latency_ns,
            total_nanos: latency_ns,
            outcome: Outcome::Ok,
            bytes: 0,
            reported_utilization: load,
        });
    }

    /// The client gave up on a request to `backend` at `now` after `waited_ns`. As in the
    /// proxy (a read timeout is a 504 with no response header), the peak-EWMA RTT is not fed.
    pub fn timed_out(&mut self, now: u64, backend: usize, waited_ns: u64) {
        let live = &self.members[backend].live;
        live.release(false);
        live.record(504, true);
        self.predictor.observe(&Observation {
            backend: backend as BackendId,
            at_nanos: now,
            first_byte_nanos: 0,
            total_nanos: waited_ns,
            outcome: Outcome::Broken,
            bytes: 0,
            reported_utilization: None,
        });
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

    /// Marks `backend`'s eligibility in the current snapshot, as the proxy's predictor
    /// thread does after planning (the next tick's snapshot starts afresh).
    pub fn set_eligibility(&mut self, backend: usize, eligibility: Eligibility) {
        if let Some(f) = self.snapshot.backends.get_mut(backend) {
            f.eligibility = eligibility;
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
    Member {
        id: backend as BackendId,
        weight: 1,
        cost: 0.0,
        local: true,
        standby: false,
        live: Arc::new(Live::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_follows_picks_responses_and_timeouts() {
        let mut b = Balancer::new(PolicyKind::RoundRobin, 3, 1);
        let picks: Vec<usize> = (0..3).map(|_| b.pick(0).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
        b.responded(5, 0, 5, Some(0.5));
        b.timed_out(6, 1, 6);
        assert_eq!((b.in_flight(0), b.in_flight(1), b.in_flight(2)), (0, 0, 1));
        b.tick(100_000_000);
        assert_eq!(b.snapshot().backends.len(), 3);
        b.join(3);
        b.tick(200_000_000);
        let s = b.snapshot();
        assert_eq!(s.backends.len(), 4);
        assert!(s.backends[3].warmth < 0.05, "a newcomer slow-starts");
    }
}
