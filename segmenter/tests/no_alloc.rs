//! Proves that the accept path allocates nothing: decisions, route checks, learning a flow
//! and asking for a log permit (the promise the issue makes for a flood of connections).

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use augur_segmenter::{ListenerRules, Prefix, Rules, Segment, SegmentDefault, SegmentMode, Table};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn decisions_do_not_allocate() {
    // 200 segments (more than one 64-bit word of membership) of v4 and v6 prefixes.
    let segments: Vec<Segment> = (0..200u32)
        .map(|s| Segment {
            name: format!("s{s}"),
            sources: vec![
                Prefix::containing(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | s << 12)), 20).unwrap(),
                Prefix::containing(
                    IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(s) << 80)),
                    48,
                )
                .unwrap(),
            ],
        })
        .collect();
    let listener = |name: &str, mode| ListenerRules {
        name: name.into(),
        allow: Some((0..200).step_by(3).collect()),
        mode,
        routes: vec![Some(vec![1, 2, 3]), None],
    };
    let rules = Rules {
        default: SegmentDefault::Deny,
        segments,
        listeners: vec![
            listener("enforce", SegmentMode::Enforce),
            listener("audit", SegmentMode::Audit),
            listener("learn", SegmentMode::Learn),
        ],
    };
    let table = Table::compile(&rules, None);
    let sources: Vec<IpAddr> = (0..256u32)
        .flat_map(|i| {
            [
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i << 12 | 7)),
                IpAddr::V6(Ipv4Addr::from(0x0a00_0000 | i << 12).to_ipv6_mapped()),
                IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i) << 80 | 9)),
            ]
        })
        .collect();
    let peers: Vec<SocketAddr> = sources
        .iter()
        .map(|ip| SocketAddr::new(*ip, 40_000))
        .collect();
    // The first round claims a flow slot for each new flow, later rounds count into it:
    // both are measured.
    let region = Region::new(GLOBAL);
    let mut admitted = 0usize;
    for round in 0..20u64 {
        for (source, peer) in sources.iter().zip(&peers) {
            for listener in 0..3 {
                admitted += usize::from(table.decide(listener, *source).admits());
                admitted += usize::from(table.decide_peer(listener, Some(peer)).admits());
                admitted += usize::from(table.check(listener, *source).admits());
                admitted += usize::from(table.decide_route(listener, 0, *source).admits());
                table.learn(listener, Some(1), *source);
                table.log_permit(listener, round);
            }
        }
        table.decide_peer(0, None);
    }
    let stats = region.change();
    assert!(admitted > 0);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
    assert!(!table.flows().observed().is_empty());
}
