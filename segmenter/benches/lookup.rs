//! Cost of one accept decision against 10,000 prefixes (mixed IPv4 and IPv6, 100 segments,
//! overlapping), beside baselines measured in the same run: a `HashSet` hit on the exact
//! address (what a plain blocklist of hosts costs, and about the least a lookup can) and a
//! naive linear scan over every prefix (what the compiled table replaces). Also what a
//! reload pays to compile that table.

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use augur_segmenter::{ListenerRules, Prefix, Rules, Segment, SegmentDefault, SegmentMode, Table};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fastrand::Rng;

/// The generator's seed: the same prefixes and sources every run.
const SEED: u64 = 0x0bad_5eed_1234_5678;

const PREFIXES: usize = 10_000;
const SEGMENTS: usize = 100;

/// 7,000 IPv4 prefixes (/16 to /32) and 3,000 IPv6 ones (/32 to /128), dealt round-robin to
/// 100 segments.
fn rules(rng: &mut Rng) -> Rules {
    let mut segments: Vec<Segment> = (0..SEGMENTS)
        .map(|s| Segment {
            name: format!("segment-{s}"),
            sources: Vec::new(),
        })
        .collect();
    for i in 0..PREFIXES {
        let prefix = if i % 10 < 7 {
            let length = rng.u8(16..=32);
            Prefix::containing(IpAddr::V4(Ipv4Addr::from(rng.u32(..))), length)
        } else {
            let length = rng.u8(32..=128);
            let addr =
                (0x2001_0db8_u128 << 96) | u128::from(rng.u64(..)) << 32 | u128::from(rng.u32(..));
            Prefix::containing(IpAddr::V6(Ipv6Addr::from(addr)), length)
        };
        segments[i % SEGMENTS]
            .sources
            .push(prefix.expect("valid length"));
    }
    Rules {
        default: SegmentDefault::Deny,
        segments,
        listeners: vec![ListenerRules {
            name: "web".into(),
            allow: Some((0..SEGMENTS).step_by(2).collect()),
            mode: SegmentMode::Enforce,
            routes: Vec::new(),
        }],
    }
}

/// Sources: half inside some prefix, half random.
fn sources(rules: &Rules, rng: &mut Rng, v6: bool) -> Vec<IpAddr> {
    let all: Vec<Prefix> = rules
        .segments
        .iter()
        .flat_map(|s| s.sources.iter().copied())
        .filter(|p| p.addr().is_ipv6() == v6)
        .collect();
    (0..1024)
        .map(|i| {
            if i % 2 == 0 {
                all[rng.usize(..all.len())].addr()
            } else if v6 {
                IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) | u128::from(rng.u64(..)) << 32,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.u32(..)))
            }
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut rng = Rng::with_seed(SEED);
    let rules = rules(&mut rng);
    let table = Table::compile(&rules, None);
    let all: Vec<Prefix> = rules
        .segments
        .iter()
        .flat_map(|s| s.sources.iter().copied())
        .collect();
    let mut group = c.benchmark_group("decide_10k_prefixes");
    let v4 = sources(&rules, &mut rng, false);
    // The same IPv4 sources as a dual-stack socket reports them.
    let mapped: Vec<IpAddr> = v4
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            other => *other,
        })
        .collect();
    let v6 = sources(&rules, &mut rng, true);
    for (family, sources) in [("v4", &v4), ("v6", &v6), ("v4_mapped", &mapped)] {
        let hosts: HashSet<IpAddr> = sources.iter().step_by(2).copied().collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("baseline_hashset_exact", family), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(hosts.contains(black_box(&sources[i])))
            })
        });
        group.bench_function(BenchmarkId::new("table_decide", family), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(table.decide(0, black_box(sources[i])))
            })
        });
        if family != "v4_mapped" {
            group.bench_function(BenchmarkId::new("naive_scan", family), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let source = black_box(sources[i]);
                    black_box(all.iter().any(|p| p.contains(source)))
                })
            });
        }
    }
    group.finish();
}

/// What a reload pays to compile the same 10,000 prefixes (not on the request path).
fn compile(c: &mut Criterion) {
    let rules = rules(&mut Rng::with_seed(SEED));
    let previous = Table::compile(&rules, None);
    let mut group = c.benchmark_group("compile_10k_prefixes");
    group.sample_size(20);
    group.bench_function("table_compile", |b| {
        b.iter(|| black_box(Table::compile(black_box(&rules), Some(&previous))))
    });
    group.finish();
}

criterion_group!(benches, lookup, compile);
criterion_main!(benches);
