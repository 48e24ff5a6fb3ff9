//! Step 1 of 3: the file as written. These structs mirror the YAML schema one to one and
//! check nothing but shape; every value stays as the user typed it (addresses, durations and
//! names are strings) so that validation can report each problem at its own place.
//!
//! Keys that the schema requires are still `Option` here: a missing one is reported by
//! validation together with every other problem instead of stopping the parse.

use serde::Deserialize;

use crate::policy::PolicyKind;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `listeners` and `upstreams`"
)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub admin: Option<RawAdmin>,
    pub predictor: Option<RawPredictor>,
    pub events: Option<Vec<RawEvent>>,
    pub segments: Option<Vec<RawSegment>>,
    pub segmentation: Option<RawSegmentation>,
    pub listeners: Option<Vec<RawListener>>,
    pub upstreams: Option<Vec<RawUpstream>>,
    pub tunnels: Option<Vec<RawTunnel>>,
}

/// One entry of `tunnels:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawTunnel {
    pub name: Option<String>,
    pub private_key_file: Option<String>,
    pub address: Option<String>,
    pub mtu: Option<i64>,
    pub listen_port: Option<i64>,
    pub peer: Option<RawTunnelPeer>,
    pub forward: Option<Vec<RawForward>>,
}

/// `tunnels[i].peer:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawTunnelPeer {
    pub public_key: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Option<Vec<String>>,
    /// A duration, or `off`.
    pub persistent_keepalive: Option<String>,
    pub preshared_key_file: Option<String>,
}

/// One entry of `tunnels[i].forward:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawForward {
    pub port: Option<i64>,
    pub to: Option<String>,
}

/// One entry of `events:`: an announced surge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawEvent {
    pub upstream: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub multiplier: Option<f64>,
}

/// One entry of `segments:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawSegment {
    pub name: Option<String>,
    pub sources: Option<Vec<String>>,
}

/// `segmentation:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawSegmentation {
    pub default: Option<RawSegmentDefault>,
}

/// `segmentation.default:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSegmentDefault {
    Allow,
    Deny,
}

/// `listeners[i].segment_mode:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSegmentMode {
    Enforce,
    Audit,
    Learn,
}

/// `predictor:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawPredictor {
    pub tick: Option<String>,
    pub horizon: Option<String>,
    pub lead: Option<String>,
    pub slow_start: Option<String>,
    pub keep_load_reports: Option<bool>,
    pub peers: Option<Vec<String>>,
}

/// `server:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawServer {
    pub threads: Option<i64>,
    pub grace_period: Option<String>,
    pub upgrade_sock: Option<String>,
    pub pid_file: Option<String>,
    pub log_level: Option<String>,
    pub access_log: Option<RawAccessLog>,
}

/// `server.access_log:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawAccessLog {
    pub path: Option<String>,
    pub format: Option<RawAccessLogFormat>,
}

/// `server.access_log.format:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawAccessLogFormat {
    Json,
    Text,
}

/// `admin:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawAdmin {
    pub bind: Option<String>,
}

/// One entry of `listeners:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawListener {
    pub name: Option<String>,
    pub bind: Option<String>,
    pub protocol: Option<RawProtocol>,
    pub routes: Option<Vec<RawRoute>>,
    pub upstream: Option<String>,
    pub tls: Option<RawTls>,
    pub allow: Option<Vec<String>>,
    pub segment_mode: Option<RawSegmentMode>,
    pub idle_timeout: Option<String>,
}

/// `listeners[i].protocol:`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawProtocol {
    Http,
    Https,
    Tcp,
}

/// `listeners[i].tls:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// One entry of `listeners[i].routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub upstream: Option<String>,
    pub allow: Option<Vec<String>>,
}

/// `listeners[i].routes[j].match:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawMatch {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}

/// One entry of `upstreams:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawUpstream {
    pub name: Option<String>,
    pub policy: Option<PolicyKind>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retries: Option<i64>,
    pub prefer_region: Option<String>,
    pub predictive: Option<RawPredictive>,
    pub scale: Option<RawScale>,
    pub health_check: Option<RawHealthCheck>,
    pub outlier_detection: Option<RawOutlierDetection>,
    pub panic_threshold: Option<f64>,
    pub retry_budget: Option<RawRetryBudget>,
    pub backends: Option<Vec<RawBackend>>,
}

/// `upstreams[i].health_check:` active checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawHealthCheck {
    pub kind: Option<RawCheckKind>,
    pub path: Option<String>,
    /// `204` or `200-399`; a bare number arrives as its text.
    pub expect: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

/// `upstreams[i].health_check.kind:`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawCheckKind {
    Tcp,
    Http,
}

/// `upstreams[i].outlier_detection:` passive ejection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawOutlierDetection {
    pub consecutive_failures: Option<i64>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
    pub max_ejection_percent: Option<i64>,
}

/// `upstreams[i].retry_budget:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub min_per_second: Option<i64>,
}

/// `upstreams[i].scale:` standby activation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawScale {
    pub activate_at: Option<f64>,
    pub min_hold: Option<String>,
    pub hook: Option<String>,
}

/// `upstreams[i].predictive:` weights of the predictive score.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawPredictive {
    pub load_weight: Option<f64>,
    pub cost_weight: Option<f64>,
    pub overload_threshold: Option<f64>,
}

/// One entry of `upstreams[i].backends:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping")]
pub struct RawBackend {
    pub addr: Option<String>,
    pub weight: Option<i64>,
    pub region: Option<String>,
    pub cost: Option<f64>,
    pub capacity: Option<i64>,
    pub standby: Option<bool>,
    pub warmup: Option<String>,
    pub via: Option<String>,
}
