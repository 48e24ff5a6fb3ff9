//! State shared by every service of one augur process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

use augur_predictor::{Recorder, Snapshot};

use crate::access_log::AccessLog;
use crate::predictor_thread::PredictorView;
use crate::runtime::{BackendRegistry, Runtime};
use crate::tunnel::Tunnels;

/// Outcome of the most recent reload attempt, for `/status`.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// When it was attempted.
    pub at: SystemTime,
    /// Whether the new config was swapped in.
    pub ok: bool,
    /// The refusal, as `check` would print it (empty when ok).
    pub error: String,
    /// What changed (empty when refused).
    pub changes: Vec<String>,
}

/// Process-wide shared state.
#[derive(Debug)]
pub struct Shared {
    /// The tables every request routes from.
    pub runtime: ArcSwap<Runtime>,
    /// The predictor's newest view of every backend.
    pub snapshot: ArcSwap<Snapshot>,
    /// Stable backend identities and counters, across reloads.
    pub registry: BackendRegistry,
    /// The running tunnels (started once; a reload may only move a peer's endpoint).
    pub tunnels: Tunnels,
    /// Observations on their way from requests to the predictor.
    pub recorder: Recorder,
    /// The predictor's figures for the admin pages.
    pub predictor_view: ArcSwap<PredictorView>,
    /// What the other instances (`predictor.peers`) said of their demand.
    pub peers: crate::peers::Peers,
    /// Whether backends' load reports are passed on to clients.
    pub keep_load_reports: bool,
    /// Load report headers that did not parse (ignored).
    pub bad_load_reports: AtomicU64,
    /// Demand events announced through `POST /events` (admin only, never on requests).
    pub events: Mutex<Vec<augur_config::Event>>,
    /// The file reloads read (`None` for `augur demo`, which has no file).
    pub config_path: Option<PathBuf>,
    /// Listener names in start-up order: the slot each service was built for.
    pub slots: Vec<String>,
    /// The last reload attempt, if any.
    pub last_reload: ArcSwap<Option<ReloadOutcome>>,
    /// Serialises reloads (SIGHUP and `POST /reload` may race); never taken by requests.
    pub reload_lock: Mutex<()>,
    /// Successful reloads.
    pub reloads_ok: AtomicU64,
    /// Refused reloads.
    pub reloads_failed: AtomicU64,
    /// HTTP requests and TCP sessions in progress, across all listeners (drain waits on it).
    pub in_flight: AtomicU64,
    /// Downstream HTTP connections open, idle or not (drain waits for them to close).
    pub connections: AtomicU64,
    /// Set once SIGTERM or an upgrade hand-over starts the drain.
    pub draining: AtomicBool,
    /// Process start, for uptime.
    pub started: Instant,
    /// Woken after every successful reload (open connections re-check their admission).
    pub reloaded: tokio::sync::Notify,
    /// Where access log lines go, if enabled.
    pub access_log: Option<AccessLog>,
    /// The background services' health, for `/status` and `/metrics`.
    pub services: crate::services::Services,
}

impl Shared {
    /// Creates the shared state around the first runtime.
    pub fn new(
        runtime: Runtime,
        registry: BackendRegistry,
        tunnels: Tunnels,
        config_path: Option<PathBuf>,
        slots: Vec<String>,
        access_log: Option<AccessLog>,
    ) -> Arc<Shared> {
        let keep_load_reports = runtime.config.predictor.keep_load_reports;
        Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            keep_load_reports,
            bad_load_reports: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
            registry,
            tunnels,
            recorder: Recorder::new(65_536),
            predictor_view: ArcSwap::from_pointee(PredictorView::default()),
            peers: crate::peers::Peers::default(),
            config_path,
            slots,
            last_reload: ArcSwap::from_pointee(None),
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            reloaded: tokio::sync::Notify::new(),
            access_log,
            services: crate::services::Services::default(),
        })
    }

    /// Counts a request or session as started; the guard ends it.
    pub fn enter(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }
}

/// One request or session in progress, counted in `Shared::in_flight` until dropped.
#[derive(Debug)]
pub struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
