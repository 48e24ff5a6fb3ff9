//! The predictor's published view of every backend: an immutable `Snapshot`, built once per
//! tick and read by every request through `ArcSwap::load`.

/// Stable identity of a backend for the life of the process (index into a snapshot).
///
/// Assigned by the proxy from the backend's (upstream, address) key on first sight and never
/// reused, so learned state survives reloads that keep the backend.
pub type BackendId = u32;

/// Whether a backend may take new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eligibility {
    /// Takes traffic.
    #[default]
    Active,
    /// Held in reserve until predicted demand needs it.
    Standby,
    /// Takes no new requests; in-flight ones finish.
    Draining,
    /// Out of service by health checks or outlier detection, when the snapshot was made.
    /// Picks read the backend's live `Health` instead (so that a return, or an upstream's
    /// panic, takes effect at once); this mark is what the predictor and `/status` see.
    Ejected,
}

impl Eligibility {
    /// Whether the snapshot keeps new requests from the backend: standby and draining
    /// backends take none; an ejected one is left to its live health state.
    pub fn takes_traffic(self) -> bool {
        matches!(self, Eligibility::Active | Eligibility::Ejected)
    }

    /// Name as shown in `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Eligibility::Active => "active",
            Eligibility::Standby => "standby",
            Eligibility::Draining => "draining",
            Eligibility::Ejected => "ejected",
        }
    }
}

/// What the predictor expects of one backend over its horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Predicted time to complete a request, milliseconds (peak of the horizon).
    pub latency_ms: f64,
    /// Latency observed over the last tick, milliseconds (0 when idle).
    pub observed_latency_ms: f64,
    /// Predicted utilisation over the horizon (1.0 = at capacity); 0 when unknown.
    pub utilization: f64,
    /// Utilisation now (smoothed reports); 0 when unknown.
    pub utilization_now: f64,
    /// Multiplier (>= 1) on the latency of a backend flagged anomalous; decays back to 1.
    pub anomaly_penalty: f64,
    /// Share of recent requests that failed.
    pub error_rate: f64,
    /// Whether new requests may go there.
    pub eligibility: Eligibility,
    /// Slow-start share in (0, 1]: a new or returning backend ramps up.
    pub warmth: f64,
}

impl Default for Forecast {
    fn default() -> Self {
        Forecast {
            latency_ms: 0.0,
            observed_latency_ms: 0.0,
            utilization: 0.0,
            utilization_now: 0.0,
            anomaly_penalty: 1.0,
            error_rate: 0.0,
            eligibility: Eligibility::Active,
            warmth: 1.0,
        }
    }
}

/// One tick's forecasts for every backend the process knows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases by one per published snapshot (0 = none published yet).
    pub version: u64,
    /// Predictor clock (nanoseconds) when it was built.
    pub built_at_nanos: u64,
    /// Indexed by `BackendId`; a backend the predictor has not seen yet has no entry.
    pub backends: Vec<Forecast>,
}

impl Snapshot {
    /// The forecast for `id`, or the neutral default when the predictor has none yet.
    pub fn get(&self, id: BackendId) -> Forecast {
        self.backends.get(id as usize).copied().unwrap_or_default()
    }
}
