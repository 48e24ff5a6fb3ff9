//! What flows back from requests to the predictor, and from the predictor (and peers and
//! operators) to the admin pages: observations, the predictor's figures, the peers' demand,
//! announced events, load-report counts.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use augur_predictor::{BackendReport, PoolConcurrency, PoolReport, Recorder};

use crate::peers::Peers;

/// The feedback loop's shared state.
#[derive(Debug)]
pub struct Feedback {
    /// Observations on their way from requests to the predictor.
    pub recorder: Recorder,
    /// The predictor's figures for the admin pages.
    pub predictor_view: ArcSwap<PredictorView>,
    /// What the other instances (`predictor.peers`) said of their demand.
    pub peers: Arc<Peers>,
    /// Demand events announced through `POST /events` (admin only, never on requests).
    pub events: Mutex<Vec<augur_config::Event>>,
    /// Whether backends' load reports are passed on to clients.
    pub keep_load_reports: bool,
    /// Load report headers that did not parse (ignored).
    pub bad_load_reports: AtomicU64,
}

impl Feedback {
    /// Empty feedback; `keep_load_reports` from the config.
    pub fn new(keep_load_reports: bool) -> Feedback {
        Feedback {
            recorder: Recorder::new(65_536),
            predictor_view: ArcSwap::from_pointee(PredictorView::default()),
            peers: Arc::new(Peers::default()),
            events: Mutex::new(Vec::new()),
            keep_load_reports,
            bad_load_reports: AtomicU64::new(0),
        }
    }
}

/// What the predictor publishes besides the snapshot, for the admin pages.
#[derive(Debug, Default)]
pub struct PredictorView {
    /// Per `BackendId`: what the predictor knows.
    pub reports: Vec<Option<BackendReport>>,
    /// Per upstream with standby planning: demand against capacity.
    pub pools: Vec<PoolReport>,
    /// Per upstream with standby planning: the concurrency it saw in the last tick.
    pub concurrency: Vec<PoolConcurrency>,
    /// Ticks so far.
    pub ticks: u64,
    /// How long the last tick took.
    pub last_tick: Duration,
}
