//! The compiled, immutable segmentation of one config generation, and the decisions the
//! proxy asks of it on the accept path and per request.
//!
//! Everything a decision needs is computed at compile time: the source's set of segments
//! comes from one binary search ([`crate::ranges`]), and for every (allow list, set) pair
//! the first admitting segment is already known, so a decision is a search plus two array
//! reads and one atomic add. Nothing is allocated and nothing is locked.
//!
//! State that must outlive a reload (counters, log budgets, learned flows) is held through
//! `Arc`s that [`Table::compile`] takes over from the previous table, keyed by listener
//! and segment names; connections still holding the old table count into the same atomics.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use augur_config::{Config, SegmentDefault, SegmentMode};

use crate::flows::{Flows, DEFAULT_FLOW_SLOTS};
use crate::log_budget::{LogBudget, LogPermit, DENIAL_LOG_LINES_PER_SECOND};
use crate::ranges::{self, Membership, Sets, EMPTY_SET};
use crate::rules::Rules;
use crate::tally::{ConnectionCounts, Counts, RouteCounts, Tally};
use crate::Decision;

/// "No segment" in the per-set tables.
const NONE: u32 = u32::MAX;

/// A compiled segmentation: share it as `Arc<Table>` and swap whole tables on reload.
pub struct Table {
    membership: Membership,
    /// Per set id: the lowest segment in it, or `NONE`.
    first_any: Box<[u32]>,
    /// Number of set ids (the row length of `first_allowed`).
    sets: usize,
    /// Per allow list (a row each), per set id: the lowest allowed segment in the set, or
    /// `NONE`.
    first_allowed: Box<[u32]>,
    segments: Box<[String]>,
    listeners: Box<[ListenerEntry]>,
    default: SegmentDefault,
    flows: Arc<Flows>,
}

/// What a listener admits at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// No `allow`, default allow.
    Everyone,
    /// No `allow`, default deny.
    Nobody,
    /// A row of `first_allowed`.
    Rule(u32),
}

/// One listener, compiled.
struct ListenerEntry {
    name: String,
    mode: SegmentMode,
    admit: Admit,
    /// Per route: its row of `first_allowed` and counter, when it narrows.
    routes: Box<[Option<Narrowing>]>,
    /// Per segment, then one for sources in no segment.
    tallies: Box<[Arc<Tally>]>,
    log: Arc<LogBudget>,
    flow_key: u32,
}

/// A route's `allow`: its row of `first_allowed`, and its counter.
type Narrowing = (u32, Arc<Tally>);

impl ListenerEntry {
    /// The counter of `segment` (or of "no segment" for `NONE`).
    #[inline]
    fn tally(&self, segment: u32) -> Option<&Tally> {
        self.tallies
            .get(segment as usize)
            .or_else(|| self.tallies.last())
            .map(Arc::as_ref)
    }
}

/// Counters and budgets of a previous table, by name, to be carried over.
struct Carried<'t> {
    tallies: HashMap<(&'t str, Option<&'t str>), &'t Arc<Tally>>,
    routes: HashMap<(&'t str, usize), &'t Arc<Tally>>,
    logs: HashMap<&'t str, &'t Arc<LogBudget>>,
}

impl<'t> Carried<'t> {
    fn over(previous: Option<&'t Table>) -> Carried<'t> {
        let mut carried = Carried {
            tallies: HashMap::new(),
            routes: HashMap::new(),
            logs: HashMap::new(),
        };
        let Some(previous) = previous else {
            return carried;
        };
        for listener in previous.listeners.iter() {
            let name = listener.name.as_str();
            carried.logs.insert(name, &listener.log);
            for (s, tally) in listener.tallies.iter().enumerate() {
                let segment = previous.segments.get(s).map(String::as_str);
                carried.tallies.insert((name, segment), tally);
            }
            for (r, route) in listener.routes.iter().enumerate() {
                if let Some((_, tally)) = route {
                    carried.routes.insert((name, r), tally);
                }
            }
        }
        carried
    }
}

impl Table {
    /// Compiles `rules`, taking counters, log budgets and learned flows over from
    /// `previous` (the table being replaced) so that they survive the reload.
    pub fn compile(rules: &Rules, previous: Option<&Table>) -> Table {
        let (membership, sets) = Membership::compile(&rules.segments);
        let segment_count = rules.segments.len();
        let first_any: Box<[u32]> = sets
            .iter()
            .map(|bits| ranges::first(bits).map_or(NONE, |s| s as u32))
            .collect();
        let mut allow_lists = AllowLists::new(segment_count, &sets);
        let carried = Carried::over(previous);
        let flows = previous.map_or_else(
            || Arc::new(Flows::new(DEFAULT_FLOW_SLOTS)),
            |p| Arc::clone(&p.flows),
        );
        let segments: Box<[String]> = rules.segments.iter().map(|s| s.name.clone()).collect();
        let listeners = rules
            .listeners
            .iter()
            .map(|listener| {
                let name = listener.name.as_str();
                let admit = match (&listener.allow, rules.default) {
                    (Some(allow), _) => Admit::Rule(allow_lists.row(allow)),
                    (None, SegmentDefault::Allow) => Admit::Everyone,
                    (None, SegmentDefault::Deny) => Admit::Nobody,
                };
                let routes = listener
                    .routes
                    .iter()
                    .enumerate()
                    .map(|(r, allow)| {
                        allow.as_ref().map(|allow| {
                            let tally = carried
                                .routes
                                .get(&(name, r))
                                .map_or_else(|| Arc::new(Tally::default()), |t| Arc::clone(t));
                            (allow_lists.row(allow), tally)
                        })
                    })
                    .collect();
                let tallies = (0..=segment_count)
                    .map(|s| {
                        let segment = segments.get(s).map(String::as_str);
                        carried
                            .tallies
                            .get(&(name, segment))
                            .map_or_else(|| Arc::new(Tally::default()), |t| Arc::clone(t))
                    })
                    .collect();
                let log = carried.logs.get(name).map_or_else(
                    || Arc::new(LogBudget::new(DENIAL_LOG_LINES_PER_SECOND)),
                    |l| Arc::clone(l),
                );
                ListenerEntry {
                    name: listener.name.clone(),
                    mode: listener.mode,
                    admit,
                    routes,
                    tallies,
                    log,
                    flow_key: flows.listener_key(name),
                }
            })
            .collect();
        Table {
            membership,
            first_any,
            sets: sets.len(),
            first_allowed: allow_lists.rows.into_boxed_slice(),
            segments,
            listeners,
            default: rules.default,
            flows,
        }
    }

    /// Compiles the segmentation of a validated config (see [`Table::compile`]).
    /// Listener indices are the config's listener order.
    pub fn from_config(config: &Config, previous: Option<&Table>) -> Table {
        Table::compile(&Rules::from_config(config), previous)
    }

    /// Decides on a new connection from `source` to listener `listener` and counts the
    /// decision. An index with no listener gets what `segmentation.default` says, uncounted.
    #[inline]
    pub fn decide(&self, listener: usize, source: IpAddr) -> Decision {
        self.decide_set(listener, self.membership.set_of(source), true)
    }

    /// [`Table::decide`] for a peer address as Pingora's `ConnectionFilter` gets it: a
    /// connection without one is in no segment.
    #[inline]
    pub fn decide_peer(&self, listener: usize, peer: Option<&SocketAddr>) -> Decision {
        let set = peer.map_or(EMPTY_SET, |peer| self.membership.set_of(peer.ip()));
        self.decide_set(listener, set, true)
    }

    /// What [`Table::decide`] would say, without counting: for re-checking connections
    /// that are already open when a new table arrives.
    #[inline]
    pub fn check(&self, listener: usize, source: IpAddr) -> Decision {
        self.decide_set(listener, self.membership.set_of(source), false)
    }

    /// Decides on a request from `source` that matched route `route` of `listener`, and
    /// counts it when the route narrows. A route without `allow` (or an index with no
    /// route) gives `Allow`: the connection was already admitted.
    #[inline]
    pub fn decide_route(&self, listener: usize, route: usize, source: IpAddr) -> Decision {
        self.route_decision(listener, route, source, true)
    }

    /// What [`Table::decide_route`] would say, without counting.
    #[inline]
    pub fn check_route(&self, listener: usize, route: usize, source: IpAddr) -> Decision {
        self.route_decision(listener, route, source, false)
    }

    /// Records a flow for learn mode when `listener` is in learn mode (a no-op otherwise);
    /// `route` is the matched route of an HTTP request, `None` for a TCP connection or a
    /// request no route matched. Returns whether a flow was recorded.
    #[inline]
    pub fn learn(&self, listener: usize, route: Option<usize>, source: IpAddr) -> bool {
        match self.listeners.get(listener) {
            Some(entry) if entry.mode == SegmentMode::Learn => {
                self.flows.record(entry.flow_key, route, source)
            }
            _ => false,
        }
    }

    /// Whether a denial on `listener` may be logged now (at most
    /// [`DENIAL_LOG_LINES_PER_SECOND`] lines a second per listener); `now_secs` is any
    /// monotonic clock in seconds.
    #[inline]
    pub fn log_permit(&self, listener: usize, now_secs: u64) -> LogPermit {
        match self.listeners.get(listener) {
            Some(entry) => entry.log.permit(now_secs),
            None => LogPermit::Suppress,
        }
    }

    /// The index of the listener called `name`.
    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.listeners.iter().position(|l| l.name == name)
    }

    /// Number of listeners.
    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// The mode of listener `listener`.
    pub fn listener_mode(&self, listener: usize) -> Option<SegmentMode> {
        self.listeners.get(listener).map(|l| l.mode)
    }

    /// The segment names, in config order.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(String::as_str)
    }

    /// Connection counts per listener and segment (every pair, zeros included).
    pub fn connection_counts(&self) -> impl Iterator<Item = ConnectionCounts<'_>> {
        self.listeners.iter().flat_map(move |listener| {
            listener
                .tallies
                .iter()
                .enumerate()
                .map(move |(s, tally)| ConnectionCounts {
                    listener: &listener.name,
                    segment: self.segments.get(s).map(String::as_str),
                    counts: tally.counts(),
                })
        })
    }

    /// Request counts of every route that narrows.
    pub fn route_counts(&self) -> impl Iterator<Item = RouteCounts<'_>> {
        self.listeners.iter().flat_map(|listener| {
            listener
                .routes
                .iter()
                .enumerate()
                .filter_map(move |(route, entry)| {
                    entry.as_ref().map(|(_, tally)| RouteCounts {
                        listener: &listener.name,
                        route,
                        counts: tally.counts(),
                    })
                })
        })
    }

    /// A listener's connection counts over all segments.
    pub fn listener_counts(&self, listener: usize) -> Counts {
        self.listeners
            .get(listener)
            .map(|l| {
                l.tallies
                    .iter()
                    .map(|t| t.counts())
                    .fold(Counts::default(), |a, b| a + b)
            })
            .unwrap_or_default()
    }

    /// Held-back denial log lines of a listener, not yet reported by a later line.
    pub fn suppressed_log_lines(&self, listener: usize) -> u64 {
        self.listeners
            .get(listener)
            .map_or(0, |l| l.log.suppressed())
    }

    /// The learned flows (shared with every table compiled from this one).
    pub fn flows(&self) -> &Arc<Flows> {
        &self.flows
    }

    /// The `segments:` + `allow:` YAML fragment that admits exactly the flows learned so far.
    pub fn suggest(&self) -> String {
        self.flows.suggest()
    }

    /// The decision for a source in set `set`, counted if `count`.
    #[inline]
    fn decide_set(&self, listener: usize, set: u32, count: bool) -> Decision {
        let Some(entry) = self.listeners.get(listener) else {
            return Decision::in_mode(SegmentMode::Enforce, self.default == SegmentDefault::Allow);
        };
        let any = self.first_any.get(set as usize).copied().unwrap_or(NONE);
        let (admitted, segment) = match entry.admit {
            Admit::Everyone => (true, any),
            Admit::Nobody => (false, any),
            Admit::Rule(row) => match self.first_allowed(row, set) {
                NONE => (false, any),
                allowed => (true, allowed),
            },
        };
        let decision = Decision::in_mode(entry.mode, admitted);
        if count {
            if let Some(tally) = entry.tally(segment) {
                tally.count(decision);
            }
        }
        decision
    }

    #[inline]
    fn route_decision(
        &self,
        listener: usize,
        route: usize,
        source: IpAddr,
        count: bool,
    ) -> Decision {
        let Some(entry) = self.listeners.get(listener) else {
            return Decision::Allow;
        };
        let Some(Some((row, tally))) = entry.routes.get(route) else {
            return Decision::Allow;
        };
        let set = self.membership.set_of(source);
        let admitted = self.first_allowed(*row, set) != NONE;
        let decision = Decision::in_mode(entry.mode, admitted);
        if count {
            tally.count(decision);
        }
        decision
    }

    /// The lowest segment of allow list `row` in set `set`, or `NONE`.
    #[inline]
    fn first_allowed(&self, row: u32, set: u32) -> u32 {
        self.first_allowed
            .get(row as usize * self.sets + set as usize)
            .copied()
            .unwrap_or(NONE)
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("segments", &self.segments.len())
            .field("listeners", &self.listeners.len())
            .field("v4_ranges", &self.membership.v4.len())
            .field("v6_ranges", &self.membership.v6.len())
            .field("sets", &self.sets)
            .field(
                "allow_lists",
                &(self.first_allowed.len() / self.sets.max(1)),
            )
            .field("flows", &self.flows)
            .finish()
    }
}

/// Allow lists being compiled: each distinct list becomes one row of "first allowed
/// segment per set".
struct AllowLists<'s> {
    segments: usize,
    sets: &'s Sets,
    rows: Vec<u32>,
    ids: HashMap<Vec<usize>, u32>,
}

impl<'s> AllowLists<'s> {
    fn new(segments: usize, sets: &'s Sets) -> AllowLists<'s> {
        AllowLists {
            segments,
            sets,
            rows: Vec::new(),
            ids: HashMap::new(),
        }
    }

    /// The row of the allow list `allow` (segment indices; out-of-range ones ignored).
    fn row(&mut self, allow: &[usize]) -> u32 {
        let mut allowed: Vec<usize> = allow
            .iter()
            .copied()
            .filter(|s| *s < self.segments)
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        if let Some(id) = self.ids.get(&allowed) {
            return *id;
        }
        let id = (self.rows.len() / self.sets.len().max(1)) as u32;
        let words = ranges::words(self.segments);
        // Scan the short list, or AND whole words when the list is longer than a set.
        let mask: Option<Vec<u64>> = (allowed.len() > words).then(|| {
            let mut mask = vec![0u64; words];
            for s in &allowed {
                mask[s / 64] |= 1 << (s % 64);
            }
            mask
        });
        for bits in self.sets.iter() {
            let first = match &mask {
                Some(mask) => bits.iter().zip(mask).enumerate().find_map(|(i, (a, b))| {
                    let both = a & b;
                    (both != 0).then(|| i * 64 + both.trailing_zeros() as usize)
                }),
                None => allowed.iter().copied().find(|s| ranges::has(bits, *s)),
            };
            self.rows.push(first.map_or(NONE, |s| s as u32));
        }
        self.ids.insert(allowed, id);
        id
    }
}
