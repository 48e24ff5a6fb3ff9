//! The backend selection policies by name: the one list of them. The predictor builds a
//! policy from a [`PolicyKind`]; the scenario simulator compares them in [`PolicyKind::ALL`]
//! order.

use serde::Deserialize;

/// A backend selection policy, as `upstreams[i].policy` names it.
///
/// Parsing goes through serde, whose "unknown variant" error lists the variants in the order
/// they are declared here; the parser turns it into "did you mean" (see `parse::reword`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConn,
    /// Weighted random.
    Random,
    /// Power of two choices on in-flight requests per weight.
    P2cLeastRequest,
    /// Power of two choices on peak-EWMA RTT × (pending + 1), as linkerd2-proxy.
    P2cPeakEwma,
    /// Power of two choices on the predictor's forecast (the default).
    #[default]
    Predictive,
}

impl PolicyKind {
    /// Every policy, in the order the config error lists them.
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::RoundRobin,
        PolicyKind::LeastConn,
        PolicyKind::Random,
        PolicyKind::P2cLeastRequest,
        PolicyKind::P2cPeakEwma,
        PolicyKind::Predictive,
    ];

    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::LeastConn => "least_conn",
            PolicyKind::Random => "random",
            PolicyKind::P2cLeastRequest => "p2c_least_request",
            PolicyKind::P2cPeakEwma => "p2c_peak_ewma",
            PolicyKind::Predictive => "predictive",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_policy() {
        for kind in PolicyKind::ALL {
            let parsed: PolicyKind = serde_yaml::from_str(kind.name()).unwrap();
            assert_eq!(parsed, kind);
        }
    }

    #[test]
    fn all_lists_every_policy_once_in_declaration_order() {
        // An exhaustive match: a new variant fails to compile here until it is placed.
        let position = |kind: PolicyKind| match kind {
            PolicyKind::RoundRobin => 0,
            PolicyKind::LeastConn => 1,
            PolicyKind::Random => 2,
            PolicyKind::P2cLeastRequest => 3,
            PolicyKind::P2cPeakEwma => 4,
            PolicyKind::Predictive => 5,
        };
        for (i, kind) in PolicyKind::ALL.into_iter().enumerate() {
            assert_eq!(position(kind), i, "{kind:?}");
        }
    }
}
