//! Segmentation in the admin API: the `segmentation` object of `/status` and the
//! `augur_segment_*` series of `/metrics`.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use augur_config::{ListenerKind, Route};
use augur_segmenter::Counts;

use crate::exposition::{families, Exposition};
use crate::runtime::Runtime;

/// The HTTP routes of a listener (none for TCP).
fn routes_of(kind: &ListenerKind) -> &[Route] {
    match kind {
        ListenerKind::Http { routes } | ListenerKind::Https { routes, .. } => routes,
        ListenerKind::Tcp { .. } => &[],
    }
}

fn counts(c: Counts) -> Value {
    json!({
        "allowed": c.allowed,
        "denied": c.denied,
        "would_deny": c.would_deny,
        "learned": c.learned,
    })
}

/// The `segmentation` object of `/status`: every segment with the listeners and routes that
/// admit it and the connections attributed to it; every listener's mode, allow list and
/// counters; every narrowing route's counters.
pub fn status(rt: &Runtime) -> Value {
    let config = &rt.config;
    let table = &rt.segments;
    let names = |allow: &Option<Vec<usize>>| -> Value {
        allow.as_ref().map_or(Value::Null, |allow| {
            allow
                .iter()
                .filter_map(|s| config.segments.get(*s))
                .map(|s| json!(s.name))
                .collect()
        })
    };
    let segments: Vec<Value> = config
        .segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let admits =
                |allow: &Option<Vec<usize>>| allow.as_ref().is_some_and(|a| a.contains(&i));
            let listeners: Vec<&str> = config
                .listeners
                .iter()
                .filter(|l| admits(&l.allow))
                .map(|l| l.name.as_str())
                .collect();
            let routes: Vec<Value> = config
                .listeners
                .iter()
                .flat_map(|l| {
                    routes_of(&l.kind)
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| admits(&r.allow))
                        .map(|(r, _)| json!({"listener": l.name, "route": r}))
                })
                .collect();
            let total = table
                .connection_counts()
                .filter(|c| c.segment == Some(segment.name.as_str()))
                .fold(Counts::default(), |a, c| a + c.counts);
            json!({
                "name": segment.name,
                "sources": segment.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "listeners": listeners,
                "routes": routes,
                "connections": counts(total),
            })
        })
        .collect();
    let listeners: Vec<Value> = config
        .listeners
        .iter()
        .map(|l| {
            let index = table.listener_index(&l.name).unwrap_or(usize::MAX);
            let revoked = rt
                .listeners
                .iter()
                .find(|t| t.name == l.name)
                .map_or(0, |t| t.stats.revoked.load(Ordering::Relaxed));
            json!({
                "name": l.name,
                "mode": l.segment_mode.name(),
                "allow": names(&l.allow),
                "connections": counts(table.listener_counts(index)),
                "revoked": revoked,
                "denial_log_lines_suppressed": table.suppressed_log_lines(index),
            })
        })
        .collect();
    let routes: Vec<Value> = table
        .route_counts()
        .map(|rc| {
            let allow = config
                .listeners
                .iter()
                .find(|l| l.name == rc.listener)
                .and_then(|l| routes_of(&l.kind).get(rc.route))
                .map_or(Value::Null, |r| names(&r.allow));
            json!({
                "listener": rc.listener,
                "route": rc.route,
                "allow": allow,
                "requests": counts(rc.counts),
            })
        })
        .collect();
    json!({
        "default": config.segmentation.default.name(),
        "segments": segments,
        "listeners": listeners,
        "routes": routes,
        "learned_flows_dropped": table.flows().dropped(),
    })
}

/// The four decisions of a reading, with their label values.
fn by_decision(c: Counts) -> [(&'static str, u64); 4] {
    [
        ("allow", c.allowed),
        ("deny", c.denied),
        ("would_deny", c.would_deny),
        ("learn", c.learned),
    ]
}

families! {
    /// Connections decided at accept, by listener, the segment the source was attributed to
    /// (empty: in no segment) and decision.
    CONNECTIONS: Counter augur_segment_connections_total{listener, segment, decision};
    /// Requests decided by a route's own allow list, by decision.
    ROUTE_REQUESTS: Counter augur_segment_route_requests_total{listener, route, decision};
    /// Requests refused and TCP sessions closed because a reload stopped admitting their source
    /// while the connection was open.
    REVOKED: Counter augur_segment_revoked_total{listener};
    /// Denial log lines held back by the rate limit and not yet reported by a later line.
    DENIAL_LOG_LINES_SUPPRESSED: Gauge augur_segment_denial_log_lines_suppressed{listener};
    /// Learn-mode flows not recorded because the flow table was full.
    LEARNED_FLOWS_DROPPED: Counter augur_segment_learned_flows_dropped_total{};
}

/// Writes the `augur_segment_*` families of `/metrics`. Listener × segment pairs (and routes)
/// that never saw a connection are left out.
pub fn metrics(doc: &mut Exposition, rt: &Runtime) {
    let table = &rt.segments;
    doc.family(&CONNECTIONS, |s| {
        for row in table.connection_counts() {
            if row.counts == Counts::default() {
                continue;
            }
            let segment = row.segment.unwrap_or("");
            for (decision, n) in by_decision(row.counts) {
                s.sample([row.listener, segment, decision], n);
            }
        }
    });
    doc.family(&ROUTE_REQUESTS, |s| {
        for row in table.route_counts() {
            if row.counts == Counts::default() {
                continue;
            }
            let route = row.route.to_string();
            for (decision, n) in by_decision(row.counts) {
                s.sample([row.listener, &route, decision], n);
            }
        }
    });
    doc.family(&REVOKED, |s| {
        for l in &rt.listeners {
            s.sample([&l.name], l.stats.revoked.load(Ordering::Relaxed));
        }
    });
    doc.family(&DENIAL_LOG_LINES_SUPPRESSED, |s| {
        for l in &rt.listeners {
            s.sample([&l.name], table.suppressed_log_lines(l.segment_index));
        }
    });
    doc.family(&LEARNED_FLOWS_DROPPED, |s| {
        s.sample([], table.flows().dropped());
    });
}
