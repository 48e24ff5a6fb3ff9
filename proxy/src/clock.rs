//! The process's monotonic clock in nanoseconds, the unit every model and policy takes.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds from the process epoch to `at` (0 for instants before it).
pub fn nanos_at(at: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds from the process epoch to now.
pub fn now_nanos() -> u64 {
    nanos_at(Instant::now())
}
