//! What to do with a connection or request, as the listener's mode says.

use augur_config::SegmentMode;

/// The outcome of checking a source against a listener's (or route's) segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The source is in an allowed segment, or the listener admits everyone.
    Allow,
    /// Enforce mode, source not admitted: close the connection (or answer 403).
    Deny,
    /// Audit mode, source not admitted: let it through, log and count it.
    WouldDeny,
    /// Learn mode: let it through; the flow is worth recording.
    Learn,
}

impl Decision {
    /// What `mode` makes of a source that is, or is not, admitted.
    #[inline]
    pub fn in_mode(mode: SegmentMode, admitted: bool) -> Decision {
        match (mode, admitted) {
            (SegmentMode::Learn, _) => Decision::Learn,
            (_, true) => Decision::Allow,
            (SegmentMode::Enforce, false) => Decision::Deny,
            (SegmentMode::Audit, false) => Decision::WouldDeny,
        }
    }

    /// Whether the connection or request goes on (everything but `Deny`).
    #[inline]
    pub fn admits(self) -> bool {
        self != Decision::Deny
    }

    /// Whether this is a denial, real or not, that deserves a (rate-limited) log line.
    #[inline]
    pub fn is_denial(self) -> bool {
        matches!(self, Decision::Deny | Decision::WouldDeny)
    }

    /// A short name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would_deny",
            Decision::Learn => "learn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        use SegmentMode::*;
        assert_eq!(Decision::in_mode(Enforce, true), Decision::Allow);
        assert_eq!(Decision::in_mode(Enforce, false), Decision::Deny);
        assert_eq!(Decision::in_mode(Audit, true), Decision::Allow);
        assert_eq!(Decision::in_mode(Audit, false), Decision::WouldDeny);
        assert_eq!(Decision::in_mode(Learn, false), Decision::Learn);
        assert_eq!(Decision::in_mode(Learn, true), Decision::Learn);
        assert!(!Decision::Deny.admits());
        assert!(Decision::WouldDeny.admits() && Decision::WouldDeny.is_denial());
        assert!(!Decision::Learn.is_denial());
    }
}
