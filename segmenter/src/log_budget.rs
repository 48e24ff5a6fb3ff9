//! Rate-limited logging of denials: a flood of refused connections must cost the log a few
//! lines a second, not one per connection.
//!
//! The crate logs nothing itself (it has no logger): [`LogBudget::permit`] says whether the
//! caller should write a line, and how many lines were held back since the last one, so
//! the proxy writes its own `tracing` event with the listener, source and that count.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lines per second per listener the proxy's denial log may write.
pub const DENIAL_LOG_LINES_PER_SECOND: u32 = 10;

/// Bits of the window word that hold the count; the rest hold the second.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A budget of log lines per second: lock-free, O(1), no allocation.
#[derive(Debug)]
pub struct LogBudget {
    per_second: u64,
    /// `second << COUNT_BITS | lines written in that second`.
    window: AtomicU64,
    /// Lines held back since the last one written.
    suppressed: AtomicU64,
}

/// What [`LogBudget::permit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPermit {
    /// Write the line, and say that `suppressed` earlier ones were not written.
    Log {
        /// Lines held back since the last line written.
        suppressed: u64,
    },
    /// Do not write it (it has been counted as suppressed).
    Suppress,
}

impl LogBudget {
    /// At most `per_second` lines in each second (at least 1, at most 2^24 - 1).
    pub fn new(per_second: u32) -> LogBudget {
        LogBudget {
            per_second: u64::from(per_second).clamp(1, COUNT_MASK),
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written at `now_secs` (seconds on any clock the caller keeps
    /// monotonic, e.g. since the process started).
    pub fn permit(&self, now_secs: u64) -> LogPermit {
        let second = now_secs & (u64::MAX >> COUNT_BITS);
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window, written) = (current >> COUNT_BITS, current & COUNT_MASK);
            let next = if window != second {
                second << COUNT_BITS | 1
            } else if written < self.per_second {
                current + 1
            } else {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return LogPermit::Suppress;
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
                    return LogPermit::Log { suppressed };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Lines held back and not yet reported by a later line.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_lines_per_second_and_the_rest_reported() {
        let budget = LogBudget::new(3);
        let permits: Vec<LogPermit> = (0..10).map(|_| budget.permit(100)).collect();
        let written = permits
            .iter()
            .filter(|p| matches!(p, LogPermit::Log { .. }))
            .count();
        assert_eq!(written, 3);
        assert_eq!(budget.suppressed(), 7);
        assert_eq!(budget.permit(101), LogPermit::Log { suppressed: 7 });
        assert_eq!(budget.permit(101), LogPermit::Log { suppressed: 0 });
        assert_eq!(budget.suppressed(), 0);
        // A clock that steps back starts a new window rather than going silent.
        assert_eq!(budget.permit(50), LogPermit::Log { suppressed: 0 });
    }

    #[test]
    fn threads_share_one_budget() {
        let budget = LogBudget::new(5);
        let written = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        if let LogPermit::Log { .. } = budget.permit(7) {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(written.load(Ordering::Relaxed), 5);
        assert_eq!(budget.suppressed(), 3_995);
    }
}
