//! The naive answers a compiled [`Table`](crate::Table) is checked against, in the crate's
//! tests and its fuzz target: [`Prefix::contains`](crate::Prefix::contains) over every source
//! of every segment. Public only for them; the proxy never uses it (too slow for accept).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Decision, Prefix, Rules, SegmentDefault, Table};

/// A decision on which a table and the scan differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The source address decided on.
    pub source: IpAddr,
    /// The listener's name.
    pub listener: String,
    /// The route, when the decision was a route's.
    pub route: Option<usize>,
    /// What the table decided.
    pub table: Decision,
    /// What the scan decided.
    pub scan: Decision,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.source, self.listener)?;
        if let Some(route) = self.route {
            write!(f, " route {route}")?;
        }
        write!(
            f,
            ": the table says {:?}, the scan {:?}",
            self.table, self.scan
        )
    }
}

/// Checks `table`'s decision for `source`, compiled from `rules`, on every listener and
/// every route against the scan; the first that differs.
pub fn compare(table: &Table, rules: &Rules, source: IpAddr) -> Result<(), Disagreement> {
    let scan = Scan::new(rules, source);
    for (index, listener) in rules.listeners.iter().enumerate() {
        let routes = (0..listener.routes.len()).map(Some);
        for route in std::iter::once(None).chain(routes) {
            let (table, scan) = match route {
                None => (table.check(index, source), scan.check(index)),
                Some(route) => (
                    table.check_route(index, route, source),
                    scan.check_route(index, route),
                ),
            };
            if table != scan {
                return Err(Disagreement {
                    source,
                    listener: listener.name.clone(),
                    route,
                    table,
                    scan,
                });
            }
        }
    }
    Ok(())
}

/// One source looked up by a linear scan, answering what [`Table::check`] and
/// [`Table::check_route`] should.
struct Scan<'r> {
    rules: &'r Rules,
    /// Per segment, whether one of its sources contains the address.
    inside: Vec<bool>,
}

impl<'r> Scan<'r> {
    fn new(rules: &'r Rules, source: IpAddr) -> Scan<'r> {
        let inside = rules
            .segments
            .iter()
            .map(|s| s.sources.iter().any(|p| p.contains(source)))
            .collect();
        Scan { rules, inside }
    }

    /// Whether one of `allow`'s segments holds the source (out-of-range indices ignored, as
    /// the table ignores them).
    fn admits(&self, allow: &[usize]) -> bool {
        allow.iter().any(|s| self.inside.get(*s) == Some(&true))
    }

    fn check(&self, listener: usize) -> Decision {
        let listener = &self.rules.listeners[listener];
        let admitted = match &listener.allow {
            Some(allow) => self.admits(allow),
            None => self.rules.default == SegmentDefault::Allow,
        };
        Decision::in_mode(listener.mode, admitted)
    }

    fn check_route(&self, listener: usize, route: usize) -> Decision {
        let listener = &self.rules.listeners[listener];
        match &listener.routes[route] {
            None => Decision::Allow,
            Some(allow) => Decision::in_mode(listener.mode, self.admits(allow)),
        }
    }
}

/// The first and last address of every source prefix of `rules` and their outside
/// neighbours, each also in its other form (IPv4 as IPv4-mapped IPv6 and back): where a
/// compiled table's ranges start and stop.
pub fn edges(rules: &Rules) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for prefix in rules.segments.iter().flat_map(|s| &s.sources) {
        prefix_edges(*prefix, &mut out);
    }
    out
}

fn prefix_edges(prefix: Prefix, out: &mut Vec<IpAddr>) {
    let length = u32::from(prefix.length());
    match prefix.addr() {
        IpAddr::V4(net) => {
            let lo = u32::from(net);
            let hi = lo | u32::MAX.checked_shr(length).unwrap_or(0);
            for a in [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)].map(Ipv4Addr::from) {
                out.extend([IpAddr::V4(a), IpAddr::V6(a.to_ipv6_mapped())]);
            }
        }
        IpAddr::V6(net) => {
            let lo = u128::from(net);
            let hi = lo | u128::MAX.checked_shr(length).unwrap_or(0);
            for a in [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)].map(Ipv6Addr::from) {
                out.push(IpAddr::V6(a));
                out.extend(a.to_ipv4_mapped().map(IpAddr::V4));
            }
        }
    }
}
