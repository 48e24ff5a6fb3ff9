//! Micro-segmentation on the wire: the accept-time gate (Pingora's `ConnectionFilter`, run
//! in the accept loop before TLS and before a byte is read), the per-request route check,
//! and the re-checks that revoke open connections once a reload withdraws their admission.
//!
//! Every decision reads the current `Runtime` with one `ArcSwap::load` (no lock, no
//! refcount, no allocation) and asks its compiled `augur_segmenter::Table`. Denials are
//! logged through the table's per-listener budget: a flood costs the log a few lines a
//! second, and the counters (exported in `/metrics`) carry the rest.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::ConnectionFilter;

use augur_segmenter::{Decision, LogPermit, Table};

use crate::runtime::{ListenerTable, Runtime};
use crate::state::Shared;

/// How often an open TCP relay re-checks its source against the newest table: twice a
/// second, so a revoked relay is closed within a second of the reload.
pub const REVOCATION_CHECK: Duration = Duration::from_millis(500);

/// The accept-time check of one listener.
#[derive(Debug)]
pub struct SegmentGate {
    shared: Arc<Shared>,
    slot: usize,
    /// Record learn-mode flows at accept: a TCP connection has no request to record them
    /// with (HTTP listeners record per request, with the route).
    learn_at_accept: bool,
}

impl SegmentGate {
    /// The gate of the listener in start-up slot `slot`.
    pub fn new(shared: Arc<Shared>, slot: usize, learn_at_accept: bool) -> SegmentGate {
        SegmentGate {
            shared,
            slot,
            learn_at_accept,
        }
    }

    /// Decides on a new connection from `peer`, counts it, logs a denial (rate-limited) and
    /// records a learn-mode flow; returns whether the connection goes on.
    pub fn admit(&self, peer: Option<&SocketAddr>) -> bool {
        let rt = self.shared.routing.runtime.load();
        let Some(listener) = rt.listeners.get(self.slot) else {
            return true;
        };
        let table = &rt.segments;
        let index = listener.segment_index;
        let decision = table.decide_peer(index, peer);
        let source = peer.map(SocketAddr::ip);
        match (decision, source) {
            (Decision::Learn, Some(ip)) if self.learn_at_accept => {
                table.learn(index, None, ip);
            }
            (Decision::Deny | Decision::WouldDeny, _) => {
                log_denial(
                    &self.shared,
                    table,
                    listener,
                    source,
                    decision,
                    Stage::Accept,
                );
            }
            _ => {}
        }
        decision.admits()
    }
}

#[async_trait]
impl ConnectionFilter for SegmentGate {
    async fn should_accept(&self, peer: Option<&SocketAddr>) -> bool {
        self.admit(peer)
    }
}

/// What a request meets after the connection-level and route-level checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCheck {
    /// Serve it.
    Pass,
    /// A reload withdrew the source's admission to the listener since the connection was
    /// accepted: answer 403 and close the connection.
    Revoked,
    /// The matched route's `allow` does not admit the source: answer 403.
    RouteDenied,
}

/// Checks a request from `source` (the TCP peer, never a header) on listener `slot` that
/// matched `route` (`None`: no route matched). Counts route decisions, logs denials and
/// records learn-mode flows.
pub fn check_request(
    shared: &Shared,
    rt: &Runtime,
    slot: usize,
    route: Option<usize>,
    source: Option<IpAddr>,
) -> RequestCheck {
    let (Some(listener), Some(ip)) = (rt.listeners.get(slot), source) else {
        return RequestCheck::Pass;
    };
    // The connection was admitted by the table of its day; without a reload since, this
    // says the same (and is not counted again).
    if !still_admitted(shared, rt, slot, ip) {
        return RequestCheck::Revoked;
    }
    let table = &rt.segments;
    let index = listener.segment_index;
    if let Some(route) = route {
        let decision = table.decide_route(index, route, ip);
        if decision.is_denial() {
            log_denial(shared, table, listener, source, decision, Stage::Route);
        }
        if !decision.admits() {
            return RequestCheck::RouteDenied;
        }
    }
    table.learn(index, route, ip);
    RequestCheck::Pass
}

/// Resolves once the newest table no longer admits `source` to listener `slot` (checked
/// every [`REVOCATION_CHECK`], and only after a reload); never resolves otherwise. Race it
/// against a TCP relay to close the relay when its admission is withdrawn.
pub async fn revoked(shared: &Shared, slot: usize, source: IpAddr) {
    let mut tick = tokio::time::interval(REVOCATION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checked = 0;
    loop {
        tick.tick().await;
        let rt = shared.routing.runtime.load();
        if rt.version.generation == checked {
            continue;
        }
        checked = rt.version.generation;
        if !still_admitted(shared, &rt, slot, source) {
            return;
        }
    }
}

/// Whether `rt`'s table still admits `source`, whose connection to listener `slot` was
/// admitted by an earlier one; a revocation is counted and logged.
pub fn still_admitted(shared: &Shared, rt: &Runtime, slot: usize, source: IpAddr) -> bool {
    let Some(listener) = rt.listeners.get(slot) else {
        return true;
    };
    if rt.segments.check(listener.segment_index, source) != Decision::Deny {
        return true;
    }
    listener.stats.revoked.fetch_add(1, Ordering::Relaxed);
    log_denial(
        shared,
        &rt.segments,
        listener,
        Some(source),
        Decision::Deny,
        Stage::Revoked,
    );
    false
}

/// Where a denial happened, for its log line.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// A new connection, at accept.
    Accept,
    /// A request, by its route's `allow`.
    Route,
    /// An open connection, after a reload.
    Revoked,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Accept => "accept",
            Stage::Route => "route",
            Stage::Revoked => "revoked",
        }
    }
}

/// A source address for logs: `unknown` when the socket had none.
struct Source(Option<IpAddr>);

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// Writes the denial's log line if the listener's budget allows one now, saying how many
/// were held back since the last.
fn log_denial(
    shared: &Shared,
    table: &Table,
    listener: &ListenerTable,
    source: Option<IpAddr>,
    decision: Decision,
    stage: Stage,
) {
    let now = shared.lifecycle.started.elapsed().as_secs();
    if let LogPermit::Log { suppressed } = table.log_permit(listener.segment_index, now) {
        tracing::warn!(
            listener = %listener.name,
            source = %Source(source),
            decision = decision.name(),
            stage = stage.name(),
            suppressed,
            "segment denial"
        );
    }
}
