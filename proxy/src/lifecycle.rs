//! The process's life: when it started, what is in progress (the drain waits on it), whether
//! it is draining, and its config file's reloads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

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

/// Work in progress, drain state and reloads.
#[derive(Debug)]
pub struct Lifecycle {
    /// Process start, for uptime.
    pub started: Instant,
    /// HTTP requests and TCP sessions in progress, across all listeners (drain waits on it).
    pub in_flight: AtomicU64,
    /// Downstream HTTP connections open, idle or not (drain waits for them to close).
    pub connections: AtomicU64,
    /// Set once SIGTERM or an upgrade hand-over starts the drain.
    pub draining: AtomicBool,
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
    /// Woken after every successful reload (open connections re-check their admission).
    pub reloaded: tokio::sync::Notify,
}

impl Lifecycle {
    /// A process starting now with this config file and listener slots.
    pub fn new(config_path: Option<PathBuf>, slots: Vec<String>) -> Lifecycle {
        Lifecycle {
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            config_path,
            slots,
            last_reload: ArcSwap::from_pointee(None),
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            reloaded: tokio::sync::Notify::new(),
        }
    }

    /// Counts a request or session as started; the guard ends it.
    pub fn enter(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }
}

/// One request or session in progress, counted in `Lifecycle::in_flight` until dropped.
#[derive(Debug)]
pub struct Busy(Arc<Lifecycle>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
