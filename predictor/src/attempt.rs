//! One request's (or TCP session's) attempt at one backend, from the pick to the observation.
//!
//! The HTTP proxy, the TCP relay and the simulator all drive the same lifecycle through an
//! `Attempt`, so that what the simulator measures is what production does:
//!
//! ```text
//! pick ─► Attempt::begin ─► answered (first byte / connected) ─► judge (health) ─► finish ─► Observation
//!                       └─► judge (health) ─► fail (connect failure, broken) ─────────────► Observation
//! ```
//!
//! `begin` takes the backend's in-flight slot and starts its "waiting for an answer" clock
//! (what `Live::silent_nanos` reads, so a backend that stalls is seen before any request
//! completes); `answered` feeds the peak-EWMA round trip; `finish` and `fail` classify how the
//! attempt ended and return the `Observation` for the predictor. Dropping the attempt gives
//! the slot back, whichever way it ended. Nothing else touches a backend's live counters.

use std::sync::Arc;

use crate::health::{EjectionPolicy, Failure, HealthChange, UpstreamHealth};
use crate::live::Live;
use crate::policy::Member;
use crate::recorder::{Observation, Outcome};
use crate::sampling::P2cPeakEwma;
use crate::snapshot::BackendId;

/// What an attempt carries to its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// An HTTP request: answered by its response header; its latency runs to the end of the
    /// response.
    Request,
    /// A relayed TCP session: answered when the connection is made. The session then lasts
    /// as long as the client likes, so the latency the balancer can judge is the connect.
    Session,
}

/// The rules a health verdict is judged by: the upstream's outlier detection settings and
/// its ejection count.
#[derive(Debug, Clone, Copy)]
pub struct Verdicts<'a> {
    /// Outlier detection settings.
    pub ejection: &'a EjectionPolicy,
    /// The upstream's ejected share and panic state.
    pub upstream: &'a UpstreamHealth,
}

/// One attempt at one backend; gives its in-flight slot back when dropped.
#[derive(Debug)]
pub struct Attempt {
    live: Arc<Live>,
    backend: BackendId,
    exchange: Exchange,
    /// When the backend was picked (the caller's clock, ns): the round trip's start.
    sent_at: u64,
    /// When the answer came (0 = not yet).
    answered_at: u64,
    /// Utilisation the backend reported with its answer, if it did.
    reported: Option<f32>,
    /// The backend's health was told how this attempt went.
    judged: bool,
}

impl Attempt {
    /// Starts an attempt at `member`, picked at `now`: takes one of its in-flight slots.
    pub fn begin(member: &Member, exchange: Exchange, now: u64) -> Attempt {
        member.live.acquire(now);
        Attempt {
            live: Arc::clone(&member.live),
            backend: member.id,
            exchange,
            sent_at: now,
            answered_at: 0,
            reported: None,
            judged: false,
        }
    }

    /// Whether the backend answered (response header, or connection made).
    pub fn is_answered(&self) -> bool {
        self.answered_at != 0
    }

    /// The backend answered at `now`: it stops waiting, and the round trip feeds the
    /// backend's peak-EWMA estimate (the constants `p2c_peak_ewma` reads it with). Only the
    /// first answer counts.
    pub fn answered(&mut self, now: u64) {
        if self.is_answered() {
            return;
        }
        let now = now.max(1);
        self.answered_at = now;
        self.live.answered(now);
        self.live.rtt.observe(
            now.saturating_sub(self.sent_at) as f64,
            now,
            P2cPeakEwma::DEFAULT_RTT.as_nanos() as f64,
            P2cPeakEwma::DECAY.as_nanos() as f64,
        );
    }

    /// The utilisation the backend reported with its answer (ORCA), if it did.
    pub fn reported(&mut self, utilization: Option<f32>) {
        self.reported = utilization;
    }

    /// Tells the backend's health how the attempt went (`None`: well), once per attempt;
    /// later verdicts are ignored. Returns the state change it caused, if any, for the caller
    /// to log (and to recount its upstream).
    pub fn judge(
        &mut self,
        failure: Option<Failure>,
        now: u64,
        rules: Verdicts<'_>,
    ) -> Option<HealthChange> {
        if self.judged {
            return None;
        }
        self.judged = true;
        self.live
            .health
            .record_request(failure, now, rules.ejection, rules.upstream)
    }

    /// The attempt failed at `now` with no answer worth keeping (`ConnectFailure` or
    /// `Broken`; a retry may follow elsewhere): counts a connect failure, and returns the
    /// observation. The slot is given back here.
    pub fn fail(self, now: u64, outcome: Outcome) -> Observation {
        if outcome == Outcome::ConnectFailure {
            self.live.record_connect_failure();
        }
        Observation {
            backend: self.backend,
            at_nanos: now,
            first_byte_nanos: 0,
            total_nanos: now.saturating_sub(self.sent_at),
            outcome,
            bytes: 0,
            reported_utilization: None,
        }
    }

    /// The request (or session) ended at `now` on this attempt with `status` (0: none
    /// reached the client) and `bytes` of body sent back; `error` says whether it ended in an
    /// error (a transport failure, or one of ours). Counts it on the backend and returns the
    /// observation, classified: a request never answered is `Broken`; a 5xx is
    /// `ServerError`; an error after the answer is `Broken`. A session is `Ok` below 500 and
    /// `Broken` otherwise, and its latency is the connect. The slot is given back here.
    pub fn finish(self, now: u64, status: u16, error: bool, bytes: u64) -> Observation {
        let failed = error || status >= 500 || status == 0;
        self.live.record(status, failed);
        let answered = self.answered_at.saturating_sub(self.sent_at);
        let (first_byte_nanos, total_nanos, outcome) = match self.exchange {
            Exchange::Request => {
                let outcome = match status {
                    _ if !self.is_answered() => Outcome::Broken,
                    500.. => Outcome::ServerError,
                    _ if error => Outcome::Broken,
                    _ => Outcome::Ok,
                };
                (answered, now.saturating_sub(self.sent_at), outcome)
            }
            Exchange::Session => {
                let outcome = if status < 500 {
                    Outcome::Ok
                } else {
                    Outcome::Broken
                };
                (answered, answered, outcome)
            }
        };
        Observation {
            backend: self.backend,
            at_nanos: now,
            first_byte_nanos,
            total_nanos,
            outcome,
            bytes,
            reported_utilization: self.reported,
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.live.release(self.is_answered());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::members;

    const MS: u64 = 1_000_000;

    fn rules(m: &[Member]) -> (EjectionPolicy, UpstreamHealth) {
        let upstream = UpstreamHealth::default();
        upstream.recount(m.iter().map(|m| &m.live.health), 0.0);
        let policy = EjectionPolicy {
            consecutive_failures: 2,
            base_nanos: 1_000 * MS,
            max_nanos: 10_000 * MS,
            max_percent: 100,
        };
        (policy, upstream)
    }

    #[test]
    fn a_request_holds_its_slot_waits_then_answers_and_is_observed() {
        let m = members(1);
        let live = &m[0].live;
        let mut a = Attempt::begin(&m[0], Exchange::Request, 10 * MS);
        assert_eq!(live.in_flight(), 1);
        assert_eq!(live.silent_nanos(15 * MS), 5 * MS, "waiting for its answer");
        a.answered(60 * MS);
        a.reported(Some(0.5));
        assert_eq!(live.silent_nanos(70 * MS), 0);
        // Above the 30 ms default, so the peak-EWMA estimate jumps to it.
        let est = live.rtt.decayed(60 * MS, 1.0, 1e12);
        assert!(
            (est - 50e6).abs() < 1e3,
            "peak-EWMA fed the round trip: {est}"
        );
        let o = a.finish(80 * MS, 200, false, 7);
        assert_eq!(
            o,
            Observation {
                backend: m[0].id,
                at_nanos: 80 * MS,
                first_byte_nanos: 50 * MS,
                total_nanos: 70 * MS,
                outcome: Outcome::Ok,
                bytes: 7,
                reported_utilization: Some(0.5),
            }
        );
        assert_eq!(live.in_flight(), 0);
        assert_eq!(live.figures().requests, 1);
    }

    #[test]
    fn outcomes_are_classified_once_for_every_user() {
        let m = members(1);
        let finish = |answered: bool, status, error| {
            let mut a = Attempt::begin(&m[0], Exchange::Request, MS);
            if answered {
                a.answered(2 * MS);
            }
            a.finish(3 * MS, status, error, 0).outcome
        };
        assert_eq!(finish(true, 200, false), Outcome::Ok);
        assert_eq!(finish(true, 503, false), Outcome::ServerError);
        assert_eq!(finish(true, 200, true), Outcome::Broken);
        assert_eq!(finish(false, 502, true), Outcome::Broken);
        assert_eq!(m[0].live.figures().errors, 3);
        assert_eq!(m[0].live.in_flight(), 0);
    }

    #[test]
    fn a_session_is_judged_by_its_connect_and_a_stalled_connect_is_silent() {
        let m = members(1);
        let mut a = Attempt::begin(&m[0], Exchange::Session, MS);
        // The TCP relay's connect counts as waiting: a backend that stops accepting is seen.
        assert_eq!(m[0].live.silent_nanos(4 * MS), 3 * MS);
        a.answered(3 * MS);
        let o = a.finish(60_000 * MS, 200, false, 100);
        assert_eq!((o.first_byte_nanos, o.total_nanos), (2 * MS, 2 * MS));
        assert_eq!(o.outcome, Outcome::Ok);
        let mut b = Attempt::begin(&m[0], Exchange::Session, MS);
        b.answered(2 * MS);
        assert_eq!(b.finish(5 * MS, 502, true, 0).outcome, Outcome::Broken);
    }

    #[test]
    fn a_failed_attempt_counts_its_connect_failure_and_frees_its_slot() {
        let m = members(1);
        let a = Attempt::begin(&m[0], Exchange::Request, MS);
        let o = a.fail(4 * MS, Outcome::ConnectFailure);
        assert_eq!((o.total_nanos, o.first_byte_nanos), (3 * MS, 0));
        assert_eq!(m[0].live.figures().connect_failures, 1);
        assert_eq!(
            (m[0].live.in_flight(), m[0].live.silent_nanos(9 * MS)),
            (0, 0)
        );
        let b = Attempt::begin(&m[0], Exchange::Request, MS);
        assert_eq!(b.fail(2 * MS, Outcome::Broken).outcome, Outcome::Broken);
        assert_eq!(m[0].live.figures().connect_failures, 1);
    }

    #[test]
    fn health_hears_each_attempt_once() {
        let m = members(1);
        let (policy, upstream) = rules(&m);
        let rules = Verdicts {
            ejection: &policy,
            upstream: &upstream,
        };
        let mut a = Attempt::begin(&m[0], Exchange::Request, MS);
        assert_eq!(a.judge(Some(Failure::Reset), MS, rules), None);
        // A second verdict on the same attempt would double-count the failure.
        assert_eq!(a.judge(Some(Failure::Reset), MS, rules), None);
        drop(a);
        let mut b = Attempt::begin(&m[0], Exchange::Request, 2 * MS);
        let change = b.judge(Some(Failure::Timeout), 2 * MS, rules);
        assert!(change.is_some(), "the second failure in a row ejects");
        assert!(!m[0].live.health.serving());
    }

    #[test]
    fn dropping_an_attempt_anywhere_gives_the_slot_back() {
        let m = members(1);
        let a = Attempt::begin(&m[0], Exchange::Request, MS);
        let mut b = Attempt::begin(&m[0], Exchange::Request, MS);
        b.answered(2 * MS);
        assert_eq!(m[0].live.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(
            (m[0].live.in_flight(), m[0].live.silent_nanos(9 * MS)),
            (0, 0)
        );
    }
}
