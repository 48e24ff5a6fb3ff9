//! Demand seen by the other augur instances in front of the same upstreams.
//!
//! Each instance sees only the requests sent to it, so with N instances its own demand is
//! about 1/N of the pool's while the capacity it plans against is the whole pool's: alone,
//! it would wake standby backends N times too late. With `predictor.peers` (the other
//! instances' admin listeners) a thread asks each peer's `GET /demand` once a second for the
//! concurrency it sees itself per upstream (never what it got from its own peers, so nothing
//! is counted twice), and standby planning adds the fresh figures
//! to this instance's own. Peers are asked at once, each within `TIMEOUT`. A failed poll
//! keeps a peer's last figures until they are `STALE` (one lost answer is no reason to
//! forget a peer's demand); after that the peer counts as zero (what it would be if it were
//! gone). Each peer's state and last error are in `/status`.
//!
//! Every instance plans on the same total, so they wake and sleep standby backends at about
//! the same time; each calls its own `scale.hook`, which must therefore be idempotent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{self, Budget, Limits, Request};
use crate::routing::Routing;
use crate::services::Service;

/// Time between polls of every peer.
const EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a peer's whole answer, connect included.
const TIMEOUT: Duration = Duration::from_millis(500);
/// A peer's figures older than this count as zero.
const STALE: Duration = Duration::from_secs(3);
/// Largest `/demand` answer read from a peer (its body; the head is capped apart).
const LIMITS: Limits = Limits {
    head: 8 << 10,
    body: 64 << 10,
};

/// What the peers said last.
#[derive(Debug, Default)]
pub struct Peers {
    by_peer: Mutex<HashMap<SocketAddr, PeerState>>,
}

#[derive(Debug, Default, Clone)]
struct PeerState {
    /// When it last answered, and its concurrency per upstream then.
    answered: Option<(Instant, HashMap<String, f64>)>,
    /// The last poll's error, if it failed.
    error: Option<String>,
}

impl Peers {
    /// The concurrency that fresh peers see on `upstream`, summed.
    pub fn concurrency(&self, upstream: &str) -> f64 {
        let Ok(by_peer) = self.by_peer.lock() else {
            return 0.0;
        };
        by_peer
            .values()
            .filter_map(|p| p.answered.as_ref())
            .filter(|(at, _)| at.elapsed() < STALE)
            .filter_map(|(_, figures)| figures.get(upstream))
            .fold(0.0, |sum, c| sum + c)
    }

    /// Each peer for `/status`: address, seconds since its last answer, last error.
    pub fn status(&self) -> Value {
        let Ok(by_peer) = self.by_peer.lock() else {
            return json!([]);
        };
        let mut peers: Vec<(&SocketAddr, &PeerState)> = by_peer.iter().collect();
        peers.sort_by_key(|(addr, _)| **addr);
        peers
            .into_iter()
            .map(|(addr, p)| {
                let age = p
                    .answered
                    .as_ref()
                    .map(|(at, _)| at.elapsed().as_secs_f64());
                json!({
                    "addr": addr.to_string(),
                    "answered_seconds_ago": age,
                    "fresh": age.is_some_and(|a| a < STALE.as_secs_f64()),
                    "error": p.error,
                })
            })
            .collect()
    }

    fn record(&self, peer: SocketAddr, result: Result<HashMap<String, f64>, String>) {
        let Ok(mut by_peer) = self.by_peer.lock() else {
            return;
        };
        let state = by_peer.entry(peer).or_default();
        match result {
            Ok(figures) => {
                state.answered = Some((Instant::now(), figures));
                state.error = None;
            }
            Err(e) => state.error = Some(e),
        }
    }

    /// Forgets peers no longer configured.
    fn keep_only(&self, peers: &[SocketAddr]) {
        if let Ok(mut by_peer) = self.by_peer.lock() {
            by_peer.retain(|addr, _| peers.contains(addr));
        }
    }
}

/// Starts the service that polls the configured peers (the list is read anew every round, so
/// a reload applies). Each round asks every peer at once, each on its own scoped thread, so a
/// slow or unreachable peer costs the others nothing.
pub fn spawn(routing: Arc<Routing>, demand: Arc<Peers>) -> std::io::Result<Service> {
    Service::start("peers", move |stop| loop {
        let started = Instant::now();
        let peers = routing.runtime.load().config.predictor.peers.clone();
        demand.keep_only(&peers);
        std::thread::scope(|scope| {
            for &peer in &peers {
                let demand = &demand;
                let _ = std::thread::Builder::new()
                    .name("augur-peer".into())
                    .spawn_scoped(scope, move || {
                        let result = fetch(peer);
                        if let Err(e) = &result {
                            tracing::debug!(%peer, error = %e, "peer demand");
                        }
                        demand.record(peer, result);
                    });
            }
        });
        if stop.sleep(EVERY.saturating_sub(started.elapsed())) {
            return Ok(());
        }
    })
}

/// One peer's own concurrency per upstream, from its `/demand`, within `TIMEOUT` in all.
fn fetch(peer: SocketAddr) -> Result<HashMap<String, f64>, String> {
    let budget = Budget {
        connect: TIMEOUT,
        total: TIMEOUT,
        limits: LIMITS,
    };
    let answer =
        client::fetch(peer, &Request::get("/demand"), budget).map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!("answered {}", answer.status));
    }
    Ok(augur_predictor::demand::parse_peer_demand(&answer.body)?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_failed_peers_count_as_zero() {
        let peers = Peers::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        peers.record(a, Ok(HashMap::from([("api".to_owned(), 4.0)])));
        peers.record(b, Err("refused".into()));
        assert_eq!(peers.concurrency("api"), 4.0);
        assert_eq!(peers.concurrency("other"), 0.0);
        if let Some(state) = peers.by_peer.lock().unwrap().get_mut(&a) {
            state.answered.as_mut().unwrap().0 -= STALE;
        }
        assert_eq!(peers.concurrency("api"), 0.0);
        peers.keep_only(&[b]);
        assert_eq!(peers.status().as_array().unwrap().len(), 1);
    }
}
