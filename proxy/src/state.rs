//! State shared by every service of one augur process, in the parts modules need: the
//! request path's `Routing`, the predictor's `Feedback`, the process's `Lifecycle`. A module
//! that needs one part is given that part; the request path and the admin pages take the
//! whole.

use std::path::PathBuf;
use std::sync::Arc;

use crate::access_log::AccessLog;
use crate::feedback::Feedback;
use crate::lifecycle::Lifecycle;
use crate::routing::Routing;
use crate::runtime::{BackendRegistry, Runtime};
use crate::services::Services;
use crate::tunnel::Tunnels;

/// Process-wide shared state.
#[derive(Debug)]
pub struct Shared {
    /// What requests route from.
    pub routing: Arc<Routing>,
    /// What flows back to the predictor and the admin pages.
    pub feedback: Arc<Feedback>,
    /// Work in progress, drain and reloads.
    pub lifecycle: Arc<Lifecycle>,
    /// Where access log lines go, if enabled.
    pub access_log: Option<AccessLog>,
    /// The background services' health, for `/status` and `/metrics`.
    pub services: Services,
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
            routing: Arc::new(Routing::new(runtime, registry, tunnels)),
            feedback: Arc::new(Feedback::new(keep_load_reports)),
            lifecycle: Arc::new(Lifecycle::new(config_path, slots)),
            access_log,
            services: Services::default(),
        })
    }
}
