//! Which segments contain an address: the prefixes of every segment cut into sorted,
//! disjoint ranges per address family, each range naming the set of segments that contain
//! it. A lookup is one binary search over the range starts; nothing is allocated.
//!
//! Sets are interned: ranges with the same segments share one set id, so what depends on
//! the set (which of a listener's segments admit it) is computed once per set at compile
//! time, not per range and never per lookup.

use std::collections::HashMap;
use std::net::IpAddr;

use augur_config::{Prefix, Segment};
use ipnet::IpNet;

/// The set id of "in no segment"; always present.
pub const EMPTY_SET: u32 = 0;

/// Sorted, disjoint ranges that cover one address family from its lowest address up.
#[derive(Debug)]
pub struct Ranges<T> {
    /// First address of each range, strictly increasing; `starts[0]` is the family's
    /// lowest address.
    starts: Box<[T]>,
    /// Set id of each range.
    sets: Box<[u32]>,
}

impl<T: Copy + Ord> Ranges<T> {
    /// The set id of the range that contains `addr`: the last range starting at or
    /// before it. The search narrows by halves with a select rather than a branch, so a
    /// random source costs no mispredicted jumps (std's `partition_point` compiled to
    /// branches in some call sites and took twice as long).
    #[inline]
    pub fn set_at(&self, addr: T) -> u32 {
        let starts = &self.starts[..];
        // `starts[0]` is the family's lowest address, so it is always at or before `addr`.
        let mut base = 0;
        let mut size = starts.len();
        while size > 1 {
            let half = size / 2;
            let mid = base + half;
            base = if starts[mid] <= addr { mid } else { base };
            size -= half;
        }
        self.sets.get(base).copied().unwrap_or(EMPTY_SET)
    }

    /// How many ranges there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }
}

/// Every segment's prefixes, compiled.
#[derive(Debug)]
pub struct Membership {
    /// IPv4, and IPv4-mapped IPv6.
    pub v4: Ranges<u32>,
    /// IPv6 other than IPv4-mapped.
    pub v6: Ranges<u128>,
}

/// The segments of each set id, as bitsets of equal length (bit `s` = segment `s`).
pub type Sets = Vec<Box<[u64]>>;

impl Membership {
    /// Cuts the segments' prefixes into ranges; returns them and what each set id holds.
    pub fn compile(segments: &[Segment]) -> (Membership, Sets) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            for prefix in &segment.sources {
                match intervals(*prefix) {
                    Covered::V4(lo, hi) => v4.push(Interval {
                        lo: u128::from(lo),
                        hi: u128::from(hi),
                        segment: index,
                    }),
                    Covered::V6(lo, hi) => v6.push(Interval {
                        lo,
                        hi,
                        segment: index,
                    }),
                }
            }
        }
        let mut interner = Interner::new(segments.len());
        let v4 = sweep(v4, u128::from(u32::MAX), &mut interner);
        let v6 = sweep(v6, u128::MAX, &mut interner);
        let membership = Membership {
            v4: Ranges {
                // Every point came from a u32 interval, so none is cut here.
                starts: v4.iter().map(|(start, _)| *start as u32).collect(),
                sets: v4.iter().map(|(_, set)| *set).collect(),
            },
            v6: Ranges {
                starts: v6.iter().map(|(start, _)| *start).collect(),
                sets: v6.iter().map(|(_, set)| *set).collect(),
            },
        };
        (membership, interner.sets)
    }

    /// The set id of the ranges that contain `ip`; an IPv4-mapped IPv6 address is looked
    /// up as the IPv4 address it carries.
    #[inline]
    pub fn set_of(&self, ip: IpAddr) -> u32 {
        match ip {
            IpAddr::V4(a) => self.v4.set_at(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => self.v4.set_at(u32::from(a)),
                None => self.v6.set_at(u128::from(a)),
            },
        }
    }
}

/// Addresses `lo..=hi` belong to `segment`.
#[derive(Debug, Clone, Copy)]
struct Interval {
    lo: u128,
    hi: u128,
    segment: u32,
}

/// The addresses a prefix covers. A prefix inside `::ffff:0:0/96` is the IPv4 prefix it
/// maps, since lookups turn mapped addresses into IPv4 ones; a wider IPv6 prefix keeps the
/// mapped block in its interval, where no lookup goes. This is `Prefix::contains`,
/// organised for lookup.
fn intervals(prefix: Prefix) -> Covered {
    match prefix.unmapped() {
        IpNet::V4(net) => Covered::V4(u32::from(net.network()), u32::from(net.broadcast())),
        IpNet::V6(net) => Covered::V6(u128::from(net.network()), u128::from(net.broadcast())),
    }
}

/// First and last address a prefix covers, in the family it is looked up in.
enum Covered {
    V4(u32, u32),
    V6(u128, u128),
}

/// Gives each distinct set of segments a small id; id 0 is the empty set.
struct Interner {
    ids: HashMap<Box<[u64]>, u32>,
    sets: Vec<Box<[u64]>>,
}

impl Interner {
    fn new(segments: usize) -> Interner {
        let empty: Box<[u64]> = vec![0; words(segments)].into_boxed_slice();
        Interner {
            ids: HashMap::from([(empty.clone(), EMPTY_SET)]),
            sets: vec![empty],
        }
    }

    fn intern(&mut self, bits: &[u64]) -> u32 {
        if let Some(id) = self.ids.get(bits) {
            return *id;
        }
        // At most two ids per interval, and intervals are counted in `u32`s of segments'
        // prefixes: ids stay far below `u32::MAX` for any config that fits in memory.
        let id = u32::try_from(self.sets.len()).unwrap_or(u32::MAX);
        let bits: Box<[u64]> = bits.into();
        self.ids.insert(bits.clone(), id);
        self.sets.push(bits);
        id
    }
}

/// Words of a bitset of `segments` bits (at least one).
pub fn words(segments: usize) -> usize {
    segments.div_ceil(64).max(1)
}

/// Whether bit `segment` is set.
#[inline]
pub fn has(bits: &[u64], segment: usize) -> bool {
    bits.get(segment / 64)
        .is_some_and(|word| word & (1 << (segment % 64)) != 0)
}

/// The lowest segment in the set, if any.
pub fn first(bits: &[u64]) -> Option<usize> {
    bits.iter()
        .enumerate()
        .find(|(_, word)| **word != 0)
        .map(|(i, word)| i * 64 + word.trailing_zeros() as usize)
}

/// Sweeps the intervals of one family (addresses `0..=max`) from low to high, noting each
/// address where the set of containing segments changes. Returns `(start, set id)`
/// pairs, strictly increasing and starting at 0, with no two neighbours sharing a set.
fn sweep(intervals: Vec<Interval>, max: u128, interner: &mut Interner) -> Vec<(u128, u32)> {
    // (address, segment, +1 entering / -1 leaving); leaving happens one past `hi`.
    let mut events: Vec<(u128, u32, bool)> = Vec::with_capacity(intervals.len() * 2);
    for interval in &intervals {
        events.push((interval.lo, interval.segment, true));
        if interval.hi < max {
            events.push((interval.hi + 1, interval.segment, false));
        }
    }
    events.sort_unstable_by_key(|(at, _, _)| *at);
    let segments = interner.sets[0].len() * 64;
    let mut depth = vec![0u32; segments];
    let mut bits = vec![0u64; interner.sets[0].len()];
    let mut out: Vec<(u128, u32)> = Vec::with_capacity(events.len() + 1);
    if events.first().is_none_or(|(at, _, _)| *at != 0) {
        out.push((0, EMPTY_SET));
    }
    let mut i = 0;
    while let Some(&(at, _, _)) = events.get(i) {
        while let Some(&(here, segment, entering)) = events.get(i) {
            if here != at {
                break;
            }
            let s = segment as usize;
            let (word, bit) = (s / 64, 1u64 << (s % 64));
            if entering {
                depth[s] += 1;
                bits[word] |= bit;
            } else {
                depth[s] -= 1;
                if depth[s] == 0 {
                    bits[word] &= !bit;
                }
            }
            i += 1;
        }
        let id = interner.intern(&bits);
        if out.last().is_none_or(|(_, last)| *last != id) {
            out.push((at, id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str, sources: &[&str]) -> Segment {
        Segment {
            name: name.into(),
            sources: sources.iter().map(|s| Prefix::parse(s).unwrap()).collect(),
        }
    }

    fn members((m, sets): &(Membership, Sets), ip: &str) -> Vec<usize> {
        let bits = &sets[m.set_of(ip.parse().unwrap()) as usize];
        (0..64).filter(|s| has(bits, *s)).collect()
    }

    #[test]
    fn overlapping_and_duplicate_prefixes() {
        let m = Membership::compile(&[
            segment("a", &["10.0.0.0/8", "10.0.0.0/8", "10.1.0.0/16"]),
            segment("b", &["10.1.2.0/24", "fd00::/8"]),
            segment("c", &["255.255.255.255", "0.0.0.0"]),
        ]);
        assert_eq!(members(&m, "9.255.255.255"), [] as [usize; 0]);
        assert_eq!(members(&m, "10.0.0.0"), [0]);
        assert_eq!(members(&m, "10.1.2.3"), [0, 1]);
        assert_eq!(members(&m, "10.1.3.0"), [0]);
        assert_eq!(members(&m, "10.255.255.255"), [0]);
        assert_eq!(members(&m, "11.0.0.0"), [] as [usize; 0]);
        assert_eq!(members(&m, "255.255.255.255"), [2]);
        assert_eq!(members(&m, "0.0.0.0"), [2]);
        assert_eq!(members(&m, "fd12::1"), [1]);
        assert_eq!(members(&m, "fe00::"), [] as [usize; 0]);
        assert_eq!(members(&m, "::ffff:10.1.2.3"), [0, 1]);
        // Neighbouring ranges never share a set.
        assert!(m.0.v4.sets.windows(2).all(|w| w[0] != w[1]));
        assert!(m.0.v4.starts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_mapped_block_is_ipv4_space() {
        let m = Membership::compile(&[
            segment("mapped", &["::ffff:10.0.0.0/104"]),
            segment("all", &["::/0"]),
            segment("block", &["::ffff:0:0/96"]),
            segment("narrow", &["::/97"]),
        ]);
        assert_eq!(members(&m, "10.2.3.4"), [0, 2]);
        assert_eq!(members(&m, "::ffff:10.2.3.4"), [0, 2]);
        assert_eq!(members(&m, "11.2.3.4"), [2]);
        assert_eq!(members(&m, "::1"), [1, 3]);
        assert_eq!(members(&m, "2001:db8::1"), [1]);
    }

    #[test]
    fn empty_table_and_many_segments() {
        let (m, sets) = Membership::compile(&[]);
        assert_eq!(m.set_of("1.2.3.4".parse().unwrap()), EMPTY_SET);
        assert_eq!(m.set_of("::".parse().unwrap()), EMPTY_SET);
        assert_eq!(sets.len(), 1);
        let many: Vec<Segment> = (0..130)
            .map(|i| segment(&format!("s{i}"), &[&format!("10.0.{i}.0/24")]))
            .collect();
        let (m, sets) = Membership::compile(&many);
        let bits = &sets[m.set_of("10.0.129.1".parse().unwrap()) as usize];
        assert_eq!(bits.len(), 3);
        assert!(has(bits, 129));
        assert!(!has(bits, 128));
        assert_eq!(first(bits), Some(129));
        let bits = &sets[m.set_of("10.1.0.0".parse().unwrap()) as usize];
        assert_eq!(first(bits), None);
    }
}
