//! The set of policies by name: the one place that turns a policy's name into a policy, used
//! by the proxy on every (re)load and by the scenario simulator.

use crate::policy::{LeastConn, Member, Policy, RoundRobin};
use crate::predictive::{Predictive, PredictiveParams};
use crate::sampling::{P2cLeastRequest, P2cPeakEwma, Random};

/// A selection policy, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// `round_robin`
    RoundRobin,
    /// `least_conn`
    LeastConn,
    /// `random`
    Random,
    /// `p2c_least_request`
    P2cLeastRequest,
    /// `p2c_peak_ewma`
    P2cPeakEwma,
    /// `predictive`
    Predictive,
}

impl PolicyKind {
    /// Every policy.
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::RoundRobin,
        PolicyKind::LeastConn,
        PolicyKind::Random,
        PolicyKind::P2cLeastRequest,
        PolicyKind::P2cPeakEwma,
        PolicyKind::Predictive,
    ];

    /// The name as written in augur's config.
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

    /// Builds the policy for `members`; `seed` seeds the sampling ones, `params` weighs
    /// `predictive`.
    pub fn build(self, members: &[Member], params: PredictiveParams, seed: u64) -> Box<dyn Policy> {
        match self {
            PolicyKind::RoundRobin => Box::new(RoundRobin::new(members)),
            PolicyKind::LeastConn => Box::new(LeastConn::new()),
            PolicyKind::Random => Box::new(Random::new(seed)),
            PolicyKind::P2cLeastRequest => Box::new(P2cLeastRequest::new(seed)),
            PolicyKind::P2cPeakEwma => Box::new(P2cPeakEwma::new(seed)),
            PolicyKind::Predictive => Box::new(Predictive::new(params, seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_reports_the_name_it_is_built_from() {
        let members = crate::testing::members(3);
        for kind in PolicyKind::ALL {
            assert_eq!(
                kind.build(&members, PredictiveParams::default(), 1).name(),
                kind.name()
            );
        }
    }
}
