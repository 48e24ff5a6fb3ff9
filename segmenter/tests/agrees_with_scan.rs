//! Property: every decision of a compiled table agrees with a naive linear scan of
//! `Prefix::contains` over every source of every segment, on random prefixes that overlap
//! a lot and on addresses at and around every prefix's edges, in both families and in
//! IPv4-mapped form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use augur_segmenter::{
    Decision, ListenerRules, Prefix, Rules, Segment, SegmentDefault, SegmentMode, Table,
};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A few networks that prefixes and probes crowd around, so that they overlap.
const V4_ANCHORS: [u32; 7] = [
    0x0a00_0000,
    0x0a01_0200,
    0xc0a8_0100,
    0,
    1,
    0xffff_fffe,
    0xffff_ffff,
];
const V6_ANCHORS: [u128; 6] = [
    0xfd00_0001_0000_0000_0000_0000_0000_0000,
    0,
    u128::MAX - 1,
    u128::MAX,
    0xffff_0000_0000, // ::ffff:0:0, the IPv4-mapped block
    0xffff_ffff_ffff, // ::ffff:255.255.255.255, its last address
];

fn random_v4(rng: &mut Rng) -> u32 {
    if rng.chance(80) {
        let anchor = V4_ANCHORS[rng.below(V4_ANCHORS.len() as u64) as usize];
        if rng.chance(20) {
            return anchor;
        }
        anchor ^ (rng.next() as u32 >> rng.below(33).min(31))
    } else {
        rng.next() as u32
    }
}

fn random_v6(rng: &mut Rng) -> u128 {
    if rng.chance(80) {
        let anchor = V6_ANCHORS[rng.below(V6_ANCHORS.len() as u64) as usize];
        if rng.chance(20) {
            return anchor;
        }
        let noise = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        anchor ^ (noise >> (rng.below(129).min(127)))
    } else {
        (u128::from(rng.next()) << 64) | u128::from(rng.next())
    }
}

fn random_prefix(rng: &mut Rng) -> Prefix {
    let (addr, max) = match rng.below(10) {
        0..=4 => (IpAddr::V4(Ipv4Addr::from(random_v4(rng))), 32),
        5..=7 => (IpAddr::V6(Ipv6Addr::from(random_v6(rng))), 128),
        // Written as IPv4-mapped IPv6.
        _ => (
            IpAddr::V6(Ipv4Addr::from(random_v4(rng)).to_ipv6_mapped()),
            128,
        ),
    };
    let length = if rng.chance(30) {
        max - rng.below(4) as u8
    } else {
        rng.below(u64::from(max) + 1) as u8
    };
    Prefix::containing(addr, length).unwrap()
}

/// First and last address of a prefix, and their outside neighbours, in every form.
fn edges(prefix: Prefix, out: &mut Vec<IpAddr>) {
    let length = u32::from(prefix.length());
    match prefix.addr() {
        IpAddr::V4(net) => {
            let lo = u32::from(net);
            let hi = lo | u32::MAX.checked_shr(length).unwrap_or(0);
            for a in [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)] {
                let a = Ipv4Addr::from(a);
                out.push(IpAddr::V4(a));
                out.push(IpAddr::V6(a.to_ipv6_mapped()));
            }
        }
        IpAddr::V6(net) => {
            let lo = u128::from(net);
            let hi = lo | u128::MAX.checked_shr(length).unwrap_or(0);
            for a in [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)] {
                let a = Ipv6Addr::from(a);
                out.push(IpAddr::V6(a));
                if let Some(v4) = a.to_ipv4_mapped() {
                    out.push(IpAddr::V4(v4));
                }
            }
        }
    }
}

fn random_allow(rng: &mut Rng, segments: usize) -> Vec<usize> {
    let count = 1 + rng.below(segments as u64 + 1) as usize;
    // Out-of-range indices are ignored by the table, and so by the scan below.
    (0..count)
        .map(|_| rng.below(segments as u64 + 1) as usize)
        .collect()
}

fn random_mode(rng: &mut Rng) -> SegmentMode {
    [SegmentMode::Enforce, SegmentMode::Audit, SegmentMode::Learn][rng.below(3) as usize]
}

#[test]
fn table_agrees_with_a_linear_scan() {
    let mut rng = Rng(0x5eed_0f5e_6a3e_7b1d);
    let mut probes_checked = 0usize;
    for case in 0..400 {
        let segment_count = 1 + rng.below(if case % 10 == 0 { 90 } else { 8 }) as usize;
        let mut segments: Vec<Segment> = (0..segment_count)
            .map(|s| Segment {
                name: format!("s{s}"),
                sources: (0..rng.below(12))
                    .map(|_| random_prefix(&mut rng))
                    .collect(),
            })
            .collect();
        if case % 20 == 0 {
            // Single addresses at both ends of each family, where ranges start and stop.
            for edge in [
                "0.0.0.0",
                "255.255.255.254",
                "::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
                "::ffff:255.255.255.254",
                "::ffff:0.0.0.0",
            ] {
                let s = rng.below(segment_count as u64) as usize;
                segments[s].sources.push(Prefix::parse(edge).unwrap());
            }
        }
        let default = if rng.chance(50) {
            SegmentDefault::Allow
        } else {
            SegmentDefault::Deny
        };
        // One enforcing listener per segment reads that segment's membership directly;
        // the others mix allow lists, modes and routes.
        let mut listeners: Vec<ListenerRules> = (0..segment_count)
            .map(|s| ListenerRules {
                name: format!("only-s{s}"),
                allow: Some(vec![s]),
                mode: SegmentMode::Enforce,
                routes: Vec::new(),
            })
            .collect();
        for l in 0..4 {
            listeners.push(ListenerRules {
                name: format!("mixed-{l}"),
                allow: (l > 0).then(|| random_allow(&mut rng, segment_count)),
                mode: random_mode(&mut rng),
                routes: (0..3)
                    .map(|_| {
                        rng.chance(70)
                            .then(|| random_allow(&mut rng, segment_count))
                    })
                    .collect(),
            });
        }
        let rules = Rules {
            default,
            segments,
            listeners,
        };
        let table = Table::compile(&rules, None);

        let mut probes = Vec::new();
        for segment in &rules.segments {
            for prefix in &segment.sources {
                edges(*prefix, &mut probes);
            }
        }
        for _ in 0..50 {
            probes.push(IpAddr::V4(Ipv4Addr::from(random_v4(&mut rng))));
            probes.push(IpAddr::V6(Ipv6Addr::from(random_v6(&mut rng))));
        }

        for &source in &probes {
            let inside: Vec<bool> = rules
                .segments
                .iter()
                .map(|s| s.sources.iter().any(|p| p.contains(source)))
                .collect();
            let admits = |allow: &[usize]| allow.iter().any(|s| inside.get(*s) == Some(&true));
            for (index, listener) in rules.listeners.iter().enumerate() {
                let admitted = match &listener.allow {
                    Some(allow) => admits(allow),
                    None => default == SegmentDefault::Allow,
                };
                let expected = Decision::in_mode(listener.mode, admitted);
                assert_eq!(
                    table.check(index, source),
                    expected,
                    "case {case}: {source} on {} ({:?}); segments {:?}",
                    listener.name,
                    listener.allow,
                    rules.segments
                );
                for (route, allow) in listener.routes.iter().enumerate() {
                    let expected = match allow {
                        None => Decision::Allow,
                        Some(allow) => Decision::in_mode(listener.mode, admits(allow)),
                    };
                    assert_eq!(
                        table.check_route(index, route, source),
                        expected,
                        "case {case}: {source} on {} route {route}",
                        listener.name
                    );
                }
            }
            probes_checked += 1;
        }
    }
    assert!(probes_checked > 20_000, "{probes_checked}");
}
