//! What the request path routes from: the config's tables, the predictor's newest snapshot,
//! every backend's stable identity and counters, and the running tunnels.

use arc_swap::ArcSwap;

use augur_predictor::Snapshot;

use crate::runtime::{BackendRegistry, Runtime};
use crate::tunnel::Tunnels;

/// The routing tables and the predictor's view, each swapped whole (`ArcSwap`); requests only
/// load them.
#[derive(Debug)]
pub struct Routing {
    /// The tables every request routes from (replaced by a reload).
    pub runtime: ArcSwap<Runtime>,
    /// The predictor's newest view of every backend (replaced every tick).
    pub snapshot: ArcSwap<Snapshot>,
    /// Stable backend identities and counters, across reloads.
    pub registry: BackendRegistry,
    /// The running tunnels (started once; a reload may only move a peer's endpoint).
    pub tunnels: Tunnels,
}

impl Routing {
    /// Routing from the first runtime, before the predictor's first snapshot.
    pub fn new(runtime: Runtime, registry: BackendRegistry, tunnels: Tunnels) -> Routing {
        Routing {
            runtime: ArcSwap::from_pointee(runtime),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            registry,
            tunnels,
        }
    }
}
