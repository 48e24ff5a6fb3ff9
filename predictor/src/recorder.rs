//! The request path's hand-off to the predictor: a bounded lock-free queue of compact
//! observations. Pushing never blocks: when the queue is full the observation is dropped and
//! counted (the predictor then works from a sample, which is fine for its estimates).

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::snapshot::BackendId;

/// How a request to a backend ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Ok,
    /// A 5xx response.
    ServerError,
    /// Connecting failed (refused, timed out).
    ConnectFailure,
    /// The backend stopped answering mid-way (timeout, reset).
    Broken,
}

/// One completed request (or TCP session) as the predictor sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Which backend served it.
    pub backend: BackendId,
    /// Completion time (process clock, ns).
    pub at_nanos: u64,
    /// Time to the response header (or to connect, for TCP), ns.
    pub first_byte_nanos: u64,
    /// Time to the end of the response, ns.
    pub total_nanos: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Body bytes sent back to the client.
    pub bytes: u64,
    /// Utilisation the backend reported with this response (ORCA), if any.
    pub reported_utilization: Option<f32>,
}

/// The bounded queue between request threads and the predictor thread.
#[derive(Debug)]
pub struct Recorder {
    queue: ArrayQueue<Observation>,
    dropped: AtomicU64,
    pushed: AtomicU64,
}

impl Recorder {
    /// A recorder holding at most `capacity` observations between ticks.
    pub fn new(capacity: usize) -> Self {
        Recorder {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
        }
    }

    /// Hands an observation over, or drops and counts it when the queue is full.
    pub fn push(&self, observation: Observation) {
        if self.queue.push(observation).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.pushed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the next queued observation (predictor thread).
    pub fn pop(&self) -> Option<Observation> {
        self.queue.pop()
    }

    /// Observations dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Observations accepted.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(backend: BackendId) -> Observation {
        Observation {
            backend,
            at_nanos: 1,
            first_byte_nanos: 1,
            total_nanos: 2,
            outcome: Outcome::Ok,
            bytes: 0,
            reported_utilization: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let r = Recorder::new(2);
        for i in 0..5 {
            r.push(obs(i));
        }
        assert_eq!((r.pushed(), r.dropped()), (2, 3));
        assert_eq!(r.pop().map(|o| o.backend), Some(0));
        assert_eq!(r.pop().map(|o| o.backend), Some(1));
        assert_eq!(r.pop(), None);
    }
}
