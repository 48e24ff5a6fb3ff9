//! Helpers shared by the crate's unit tests.

use crate::policy::Member;
use crate::snapshot::BackendId;

/// Members with these weights, ids 0.., free, local, not standby, fresh counters.
pub fn members_weighted(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(id, &weight)| Member {
            weight,
            ..Member::new(id as BackendId)
        })
        .collect()
}

/// `n` members of weight 1.
pub fn members(n: usize) -> Vec<Member> {
    members_weighted(&vec![1; n])
}
