//! Property: every decision of a compiled table agrees with a naive linear scan of
//! `Prefix::contains` over every source of every segment, on random prefixes that overlap
//! a lot and on addresses at and around every prefix's edges, in both families and in
//! IPv4-mapped form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use augur_segmenter::reference::{compare, edges};
use augur_segmenter::{ListenerRules, Prefix, Rules, Segment, SegmentDefault, SegmentMode, Table};
use fastrand::Rng;

/// True `percent` times in a hundred.
fn chance(rng: &mut Rng, percent: u8) -> bool {
    rng.u8(..100) < percent
}

/// A few networks that prefixes and probes crowd around, so that they overlap.
const V4_ANCHORS: [u128; 7] = [
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

/// A random number of `bits` bits (32 or 128) that 80 % of the time is one of `anchors`
/// or one with some of its low bits flipped.
fn near(rng: &mut Rng, anchors: &[u128], bits: u32) -> u128 {
    let noise = rng.u128(..) >> (128 - bits);
    if !chance(rng, 80) {
        return noise;
    }
    let anchor = anchors[rng.usize(..anchors.len())];
    if chance(rng, 20) {
        return anchor;
    }
    anchor ^ (noise >> rng.u32(..=bits).min(bits - 1))
}

fn random_v4(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::from(u32::try_from(near(rng, &V4_ANCHORS, 32)).expect("32 bits"))
}

fn random_v6(rng: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::from(near(rng, &V6_ANCHORS, 128))
}

fn random_prefix(rng: &mut Rng) -> Prefix {
    let (addr, max) = match rng.u8(..10) {
        0..=4 => (IpAddr::V4(random_v4(rng)), 32),
        5..=7 => (IpAddr::V6(random_v6(rng)), 128),
        // Written as IPv4-mapped IPv6.
        _ => (IpAddr::V6(random_v4(rng).to_ipv6_mapped()), 128),
    };
    let length = if chance(rng, 30) {
        max - rng.u8(..4)
    } else {
        rng.u8(..=max)
    };
    Prefix::containing(addr, length).unwrap()
}

fn random_allow(rng: &mut Rng, segments: usize) -> Vec<usize> {
    let count = 1 + rng.usize(..=segments);
    // Out-of-range indices are ignored by the table, and so by the scan.
    (0..count).map(|_| rng.usize(..=segments)).collect()
}

fn random_mode(rng: &mut Rng) -> SegmentMode {
    [SegmentMode::Enforce, SegmentMode::Audit, SegmentMode::Learn][rng.usize(..3)]
}

#[test]
fn table_agrees_with_a_linear_scan() {
    // Seeded, so that a failure reproduces.
    let mut rng = Rng::with_seed(0x5eed_0f5e_6a3e_7b1d);
    let mut probes_checked = 0usize;
    for case in 0..400 {
        let segment_count = 1 + rng.usize(..if case % 10 == 0 { 90 } else { 8 });
        let mut segments: Vec<Segment> = (0..segment_count)
            .map(|s| Segment {
                name: format!("s{s}"),
                sources: (0..rng.u8(..12)).map(|_| random_prefix(&mut rng)).collect(),
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
                let s = rng.usize(..segment_count);
                segments[s].sources.push(Prefix::parse(edge).unwrap());
            }
        }
        let default = if rng.bool() {
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
                    .map(|_| chance(&mut rng, 70).then(|| random_allow(&mut rng, segment_count)))
                    .collect(),
            });
        }
        let rules = Rules {
            default,
            segments,
            listeners,
        };
        let table = Table::compile(&rules, None);

        let mut probes = edges(&rules);
        for _ in 0..50 {
            probes.push(IpAddr::V4(random_v4(&mut rng)));
            probes.push(IpAddr::V6(random_v6(&mut rng)));
        }

        for &source in &probes {
            if let Err(e) = compare(&table, &rules, source) {
                panic!("case {case}: {e}; rules {rules:?}");
            }
            probes_checked += 1;
        }
    }
    assert!(probes_checked > 20_000, "{probes_checked}");
}
