//! A table built from fuzzer-chosen prefixes decides like the naive scan of
//! `Prefix::contains` over every source (`augur_segmenter::reference`): for each segment
//! alone, and for an allow list of several, at the edges of every prefix and at
//! fuzzer-chosen addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use augur_segmenter::reference::{compare, edges};
use augur_segmenter::{ListenerRules, Prefix, Rules, Segment, SegmentDefault, SegmentMode, Table};
use libfuzzer_sys::fuzz_target;

/// Segments a case may have (each also gets a one-segment listener).
const MAX_SEGMENTS: usize = 8;
/// Prefixes a case may have.
const MAX_PREFIXES: usize = 64;

/// Reads fixed-size fields off the front of the input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }

    /// An address: IPv4, IPv6, or IPv4 written as IPv4-mapped IPv6.
    fn addr(&mut self) -> Option<IpAddr> {
        Some(match self.byte()? % 3 {
            0 => IpAddr::V4(Ipv4Addr::from(self.bytes::<4>()?)),
            1 => IpAddr::V6(Ipv6Addr::from(self.bytes::<16>()?)),
            _ => IpAddr::V6(Ipv4Addr::from(self.bytes::<4>()?).to_ipv6_mapped()),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(header) = input.byte() else {
        return;
    };
    let segment_count = 1 + usize::from(header) % MAX_SEGMENTS;
    let mut segments: Vec<Segment> = (0..segment_count)
        .map(|s| Segment {
            name: format!("s{s}"),
            sources: Vec::new(),
        })
        .collect();
    let prefix_count = usize::from(input.byte().unwrap_or(0)) % (MAX_PREFIXES + 1);
    for _ in 0..prefix_count {
        let (Some(segment), Some(length), Some(addr)) = (input.byte(), input.byte(), input.addr())
        else {
            break;
        };
        let max = if addr.is_ipv4() { 33 } else { 129 };
        let Some(prefix) = Prefix::containing(addr, length % max) else {
            continue;
        };
        segments[usize::from(segment) % segment_count]
            .sources
            .push(prefix);
    }
    // Every segment alone, then an allow list of the segments whose bit is set.
    let mixed = input.byte().unwrap_or(0);
    let mixed_allow: Vec<usize> = (0..segment_count)
        .filter(|s| mixed & (1 << s) != 0)
        .collect();
    let mut listeners: Vec<ListenerRules> = (0..segment_count)
        .map(|s| ListenerRules {
            name: format!("only-s{s}"),
            allow: Some(vec![s]),
            mode: SegmentMode::Enforce,
            routes: vec![None],
        })
        .collect();
    listeners.push(ListenerRules {
        name: "mixed".into(),
        allow: (!mixed_allow.is_empty()).then(|| mixed_allow.clone()),
        mode: SegmentMode::Audit,
        routes: vec![Some(mixed_allow.clone())],
    });
    let deny_by_default = header & 0x80 != 0;
    let rules = Rules {
        default: if deny_by_default {
            SegmentDefault::Deny
        } else {
            SegmentDefault::Allow
        },
        segments,
        listeners,
    };
    let mut probes = edges(&rules);
    while let Some(addr) = input.addr() {
        probes.push(addr);
    }
    let table = Table::compile(&rules, None);
    let mixed = rules.listeners.len() - 1;
    for source in probes {
        if let Err(e) = compare(&table, &rules, source) {
            panic!("{e}");
        }
        assert_eq!(table.decide(mixed, source), table.check(mixed, source));
    }
});
