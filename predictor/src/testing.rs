//! Helpers shared by the crate's unit tests.

use std::sync::Arc;

use crate::live::Live;
use crate::policy::Member;
use crate::snapshot::BackendId;

/// Members with these weights, ids 0.., free, local, not standby, fresh counters.
pub fn members_weighted(weights: &[u32]) -> Vec<Member> {
    weights
        .iter()
        .enumerate()
        .map(|(id, &weight)| Member {
            id: id as BackendId,
            weight,
            cost: 0.0,
            local: true,
            standby: false,
            capacity: None,
            warmup_nanos: 0,
            live: Arc::new(Live::default()),
        })
        .collect()
}

/// `n` members of weight 1.
pub fn members(n: usize) -> Vec<Member> {
    members_weighted(&vec![1; n])
}
