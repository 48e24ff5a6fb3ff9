//! From a policy's name to a policy: the one place that builds one, used by the proxy on every
//! (re)load and by the scenario simulator. The list of names is the config's
//! ([`augur_config::PolicyKind`]).

use crate::policy::{LeastConn, Member, Policy, RoundRobin};
use crate::predictive::{Predictive, PredictiveParams};
use crate::sampling::{P2cLeastRequest, P2cPeakEwma, Random};

pub use augur_config::PolicyKind;

/// Builds the policy a [`PolicyKind`] names.
pub trait BuildPolicy {
    /// The policy for `members`; `seed` seeds the sampling ones, `params` weighs `predictive`.
    fn build(self, members: &[Member], params: PredictiveParams, seed: u64) -> Box<dyn Policy>;
}

impl BuildPolicy for PolicyKind {
    fn build(self, members: &[Member], params: PredictiveParams, seed: u64) -> Box<dyn Policy> {
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
