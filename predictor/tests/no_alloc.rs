//! Proves that picking a backend allocates nothing (the request-path promise).

use std::alloc::System;
use std::sync::Arc;

use augur_predictor::{LeastConn, Live, Member, Policy, RoundRobin, Tried};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn picks_do_not_allocate() {
    let members: Vec<Member> = (1..=16)
        .map(|w| Member {
            weight: w,
            live: Arc::new(Live::default()),
        })
        .collect();
    let policies: Vec<Box<dyn Policy>> = vec![
        Box::new(RoundRobin::new(&members)),
        Box::new(LeastConn::new()),
    ];
    for policy in &policies {
        let region = Region::new(GLOBAL);
        let mut sum = 0usize;
        for i in 0..10_000 {
            let mut tried = Tried::default();
            tried.insert(i % 16);
            let pick = policy.pick(&members, &tried).expect("a member");
            let guard = members[pick].live.begin();
            members[pick].live.record(200, false);
            drop(guard);
            sum += pick;
        }
        let stats = region.change();
        assert!(sum > 0);
        assert_eq!(
            stats.allocations,
            0,
            "{} allocated: {stats:?}",
            policy.name()
        );
        assert_eq!(
            stats.reallocations,
            0,
            "{} reallocated: {stats:?}",
            policy.name()
        );
    }
}
