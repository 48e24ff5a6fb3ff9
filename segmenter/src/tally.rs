//! Decision counters the proxy exports: atomics bumped on the accept path, read by
//! `/metrics` and `/status`. They outlive reloads (a new table takes over the old one's),
//! so a Prometheus counter never goes backwards because the config changed.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Decision;

/// Counts of each decision, shared by every table generation that has the same key.
#[derive(Debug, Default)]
pub struct Tally {
    allowed: AtomicU64,
    denied: AtomicU64,
    would_deny: AtomicU64,
    learned: AtomicU64,
}

impl Tally {
    /// Counts one decision.
    #[inline]
    pub fn count(&self, decision: Decision) {
        let counter = match decision {
            Decision::Allow => &self.allowed,
            Decision::Deny => &self.denied,
            Decision::WouldDeny => &self.would_deny,
            Decision::Learn => &self.learned,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            allowed: self.allowed.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            would_deny: self.would_deny.load(Ordering::Relaxed),
            learned: self.learned.load(Ordering::Relaxed),
        }
    }
}

/// A reading of a [`Tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Admitted (enforce or audit mode).
    pub allowed: u64,
    /// Refused (enforce mode).
    pub denied: u64,
    /// Not admitted but let through (audit mode).
    pub would_deny: u64,
    /// Let through in learn mode.
    pub learned: u64,
}

impl std::ops::Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            allowed: self.allowed + other.allowed,
            denied: self.denied + other.denied,
            would_deny: self.would_deny + other.would_deny,
            learned: self.learned + other.learned,
        }
    }
}

/// Connection decisions of one listener attributed to one segment: the first of the
/// listener's allowed segments that contains the source when admitted, otherwise the first
/// segment (in file order) that contains it, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCounts<'t> {
    /// Listener name.
    pub listener: &'t str,
    /// Segment name; `None` for sources in no segment.
    pub segment: Option<&'t str>,
    /// The counts.
    pub counts: Counts,
}

/// Request decisions of one route that has an `allow` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteCounts<'t> {
    /// Listener name.
    pub listener: &'t str,
    /// Index of the route in the listener's `routes`.
    pub route: usize,
    /// The counts.
    pub counts: Counts,
}
