//! Learn mode's record of who connects: flows (source network, listener, route) with a
//! count each, in a fixed table that the accept path fills without locks.
//!
//! Sources are aggregated to their /24 (IPv4) or /64 (IPv6): that is the granularity of the
//! segments proposed from them, and it keeps a busy network to a handful of entries.
//!
//! The table is open addressing over a fixed array allocated once. A flow seen before
//! costs one atomic add; a new flow claims an empty slot with one compare-and-swap. Nothing
//! waits: when no slot is free within a few probes, or a neighbour is still being written,
//! the flow is dropped and counted ([`Flows::dropped`]). A slot skipped because another
//! thread was writing it may leave one flow in two slots; reading merges them, so counts
//! stay exact.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use augur_config::Prefix;

/// Slots of the table a [`crate::Table`] creates (about 256 KiB).
pub const DEFAULT_FLOW_SLOTS: usize = 8192;

/// Slots looked at before a new flow is dropped.
const MAX_PROBES: usize = 32;

/// Prefix lengths flows are aggregated to.
const V4_AGGREGATE: u8 = 24;
const V6_AGGREGATE: u8 = 64;

/// Route codes are 24 bits: 0 for "no route", otherwise the route index + 1.
const ROUTE_BITS: u32 = 24;
const V6_TAG: u64 = 1 << 62;

const EMPTY: u8 = 0;
const CLAIMED: u8 = 1;
const READY: u8 = 2;

/// One slot; `net`, `tag` and the first `count` are written before `state` turns `READY`.
#[derive(Default)]
struct Slot {
    state: AtomicU8,
    /// The source's network bits: the top 24 of IPv4 or the top 64 of IPv6.
    net: AtomicU64,
    /// Family, listener key and route code.
    tag: AtomicU64,
    count: AtomicU64,
}

/// Observed flows, bounded and lock-free to record into.
pub struct Flows {
    slots: Box<[Slot]>,
    dropped: AtomicU64,
    /// Listener names by key; locked only when a table is compiled and when flows are read.
    listeners: Mutex<Vec<String>>,
}

/// One observed flow (duplicates merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Listener name.
    pub listener: String,
    /// Route index in the listener's `routes`, if the flow was recorded with one.
    pub route: Option<usize>,
    /// Source network: a /24 or a /64.
    pub source: Prefix,
    /// Times seen.
    pub count: u64,
}

impl Flows {
    /// A table of `slots` slots, rounded up to a power of two (at least 64).
    pub fn new(slots: usize) -> Flows {
        let slots = slots.max(64).checked_next_power_of_two().unwrap_or(1 << 20);
        Flows {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            dropped: AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// The key under which flows of listener `name` are recorded; the same name always
    /// gets the same key. Takes a lock: call it when compiling, not per connection.
    pub fn listener_key(&self, name: &str) -> u32 {
        let mut names = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = names.iter().position(|n| n == name) {
            return key as u32;
        }
        names.push(name.to_owned());
        (names.len() - 1) as u32
    }

    /// Counts one flow. Returns `false` when it was dropped (table full or busy, or a route
    /// index beyond 2^24 - 2). Never blocks, never allocates.
    pub fn record(&self, listener_key: u32, route: Option<usize>, source: IpAddr) -> bool {
        let Some((net, tag)) = key(listener_key, route, source) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let mask = self.slots.len() - 1;
        let start = mix(net ^ tag.rotate_left(29)) as usize;
        for probe in 0..MAX_PROBES {
            let slot = &self.slots[(start + probe) & mask];
            let mut state = slot.state.load(Ordering::Acquire);
            if state == EMPTY {
                match slot.state.compare_exchange(
                    EMPTY,
                    CLAIMED,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        slot.net.store(net, Ordering::Relaxed);
                        slot.tag.store(tag, Ordering::Relaxed);
                        slot.count.store(1, Ordering::Relaxed);
                        slot.state.store(READY, Ordering::Release);
                        return true;
                    }
                    Err(now) => state = now,
                }
            }
            if state == READY
                && slot.net.load(Ordering::Relaxed) == net
                && slot.tag.load(Ordering::Relaxed) == tag
            {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Flows not recorded because the table was full or busy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Every flow recorded so far, merged, ordered by listener name, source, then route.
    pub fn observed(&self) -> Vec<Flow> {
        let names = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut merged: BTreeMap<(&str, Prefix, Option<usize>), u64> = BTreeMap::new();
        for slot in self.slots.iter() {
            if slot.state.load(Ordering::Acquire) != READY {
                continue;
            }
            let (net, tag) = (
                slot.net.load(Ordering::Relaxed),
                slot.tag.load(Ordering::Relaxed),
            );
            let (listener, route, source) = unkey(net, tag);
            let Some(listener) = names.get(listener as usize) else {
                continue;
            };
            *merged.entry((listener, source, route)).or_default() +=
                slot.count.load(Ordering::Relaxed);
        }
        merged
            .into_iter()
            .map(|((listener, source, route), count)| Flow {
                listener: listener.to_owned(),
                route,
                source,
                count,
            })
            .collect()
    }

    /// A `segments:` + `allow:` YAML fragment that admits exactly the flows seen so far:
    /// one segment `learned-<listener>` per listener, listing its /24 and /64 networks with
    /// flow counts as comments; deterministic, whatever order flows were recorded in.
    pub fn suggest(&self) -> String {
        crate::suggest::render(&self.observed(), self.dropped())
    }
}

impl Default for Flows {
    fn default() -> Self {
        Flows::new(DEFAULT_FLOW_SLOTS)
    }
}

impl fmt::Debug for Flows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flows")
            .field("capacity", &self.slots.len())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// `(net, tag)` of a flow; `None` for a route index too large to encode.
fn key(listener: u32, route: Option<usize>, source: IpAddr) -> Option<(u64, u64)> {
    let route = match route {
        None => 0,
        Some(r) if r < (1 << ROUTE_BITS) - 1 => r as u64 + 1,
        Some(_) => return None,
    };
    let listener = u64::from(listener) << ROUTE_BITS;
    let source = match source {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(source, IpAddr::V4),
        IpAddr::V4(_) => source,
    };
    Some(match source {
        IpAddr::V4(a) => (u64::from(u32::from(a) >> 8), listener | route),
        IpAddr::V6(a) => ((u128::from(a) >> 64) as u64, V6_TAG | listener | route),
    })
}

/// The listener key, route and source network of a slot.
fn unkey(net: u64, tag: u64) -> (u32, Option<usize>, Prefix) {
    let route = (tag & ((1 << ROUTE_BITS) - 1)) as usize;
    let listener = ((tag & !V6_TAG) >> ROUTE_BITS) as u32;
    let source = if tag & V6_TAG != 0 {
        let addr = IpAddr::V6(Ipv6Addr::from(u128::from(net) << 64));
        Prefix::containing(addr, V6_AGGREGATE)
    } else {
        let addr = IpAddr::V4(Ipv4Addr::from((net as u32) << 8));
        Prefix::containing(addr, V4_AGGREGATE)
    };
    // Both lengths are valid for their family, so `containing` always answers.
    let source = source.unwrap_or_else(|| Prefix::host(IpAddr::from([0u8; 4])));
    (listener, route.checked_sub(1), source)
}

/// A 64-bit finaliser (from splitmix64): spreads neighbouring networks over the table.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn prefix(text: &str) -> Prefix {
        Prefix::parse(text).unwrap()
    }

    #[test]
    fn sources_are_aggregated_and_counted() {
        let flows = Flows::new(64);
        let web = flows.listener_key("web");
        let db = flows.listener_key("db");
        assert_eq!(flows.listener_key("web"), web);
        assert!(flows.record(web, Some(0), ip("10.1.2.3")));
        assert!(flows.record(web, Some(0), ip("10.1.2.200")));
        assert!(flows.record(web, Some(0), ip("::ffff:10.1.2.9")));
        assert!(flows.record(web, Some(1), ip("10.1.2.3")));
        assert!(flows.record(web, None, ip("fd00:1:2:3:4:5:6:7")));
        assert!(flows.record(db, None, ip("10.1.3.1")));
        let seen = flows.observed();
        let flow = |listener: &str, route, source: &str, count| Flow {
            listener: listener.into(),
            route,
            source: prefix(source),
            count,
        };
        assert_eq!(
            seen,
            [
                flow("db", None, "10.1.3.0/24", 1),
                flow("web", Some(0), "10.1.2.0/24", 3),
                flow("web", Some(1), "10.1.2.0/24", 1),
                flow("web", None, "fd00:1:2:3::/64", 1),
            ]
        );
        assert_eq!(flows.dropped(), 0);
    }

    #[test]
    fn a_full_table_drops_and_counts() {
        let flows = Flows::new(64);
        let web = flows.listener_key("web");
        let mut recorded = Vec::new();
        for i in 0..1_000u32 {
            let source = IpAddr::from((i << 8).to_be_bytes());
            if flows.record(web, None, source) {
                recorded.push(source);
            }
        }
        assert!(
            recorded.len() <= 64 && recorded.len() >= 32,
            "{}",
            recorded.len()
        );
        assert_eq!(flows.dropped(), 1_000 - recorded.len() as u64);
        assert_eq!(flows.observed().len(), recorded.len());
        // A flow already in the table is still counted.
        assert!(flows.record(web, None, recorded[0]));
        assert!(!flows.record(web, Some(usize::MAX), recorded[0]));
    }

    #[test]
    fn concurrent_recording_keeps_exact_counts() {
        let flows = Flows::new(4096);
        let web = flows.listener_key("web");
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let flows = &flows;
                scope.spawn(move || {
                    for i in 0..10_000u32 {
                        let source = IpAddr::from([10, t % 2, (i % 50) as u8, 1]);
                        flows.record(web, Some((i % 3) as usize), source);
                    }
                });
            }
        });
        let seen = flows.observed();
        assert_eq!(flows.dropped(), 0);
        assert_eq!(seen.len(), 2 * 50 * 3);
        assert_eq!(seen.iter().map(|f| f.count).sum::<u64>(), 40_000);
    }
}
