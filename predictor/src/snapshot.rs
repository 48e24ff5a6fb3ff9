//! The predictor's published view of every backend: an immutable `Snapshot`, built once per
//! tick and read by every request through `ArcSwap::load`.

/// Stable identity of a backend for the life of the process (index into a snapshot).
///
/// Assigned by the proxy from the backend's (upstream, address) key on first sight and never
/// reused, so learned state survives reloads that keep the backend.
pub type BackendId = u32;

/// Whether a backend may take new requests (decided by `crate::eligibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eligibility {
    /// Takes traffic.
    #[default]
    Active,
    /// Held in reserve until predicted demand needs it.
    Standby,
    /// Drained by an operator: takes no new requests; in-flight ones finish.
    Draining,
    /// Out of service by health checks, outlier detection or a lost path (its tunnel is
    /// down); takes requests only while its upstream is in panic, and only if reachable.
    Ejected,
}

impl Eligibility {
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
    /// Whether new requests may go there, as of this tick (picks and `/status` decide live
    /// with the same function: `crate::eligibility`).
    pub eligibility: Eligibility,
    /// A standby backend that standby planning woke (ignored for other backends).
    pub woken: bool,
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
            woken: false,
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
