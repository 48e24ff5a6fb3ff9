//! The validated configuration: what the runtime sees. Every value here has been checked;
//! names are resolved to indices, addresses parsed, durations converted.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::policy::PolicyKind;
use crate::prefix::Prefix;

/// A complete, validated augur configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Process-wide settings (threads, grace period, logging).
    pub server: Server,
    /// The admin listener, if configured.
    pub admin: Option<Admin>,
    /// The predictor thread's settings.
    pub predictor: Predictor,
    /// Announced surges the demand forecast includes.
    pub events: Vec<Event>,
    /// Named sets of source networks, in file order; listeners and routes refer to them by
    /// index.
    pub segments: Vec<Segment>,
    /// What a listener without `allow` admits.
    pub segmentation: Segmentation,
    /// Client-facing listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Upstreams (backend pools), in file order; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// WireGuard tunnels, in file order; backends refer to them by index.
    pub tunnels: Vec<Tunnel>,
}

/// Process-wide settings, from the optional top-level `server:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Worker threads per listener service (default 1).
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests before exiting (default 10s).
    pub grace_period: Duration,
    /// Unix socket through which `--upgrade` receives listening sockets.
    pub upgrade_sock: PathBuf,
    /// PID file written at start (used by `augur reload` when there is no admin listener).
    pub pid_file: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax), overridden by `RUST_LOG` (default "info").
    pub log_level: String,
    /// Where to write access logs; `None` disables them.
    pub access_log: Option<AccessLog>,
}

/// An announced surge: demand on `upstream` (or all) multiplied between `start` and `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Upstream it applies to (`None` = all).
    pub upstream: Option<String>,
    /// Start (wall clock).
    pub start: std::time::SystemTime,
    /// End (wall clock).
    pub end: std::time::SystemTime,
    /// Expected demand multiplier, > 0.
    pub multiplier: f64,
}

/// Settings of the predictor thread, from the optional `predictor:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictor {
    /// Time between forecasts (default 100ms).
    pub tick: Duration,
    /// How far ahead load is forecast (default 5s).
    pub horizon: Duration,
    /// How far ahead latency is forecast: traffic moves this long before a predicted rise
    /// (default 1s).
    pub lead: Duration,
    /// Time a new backend takes to reach its full share (default 10s).
    pub slow_start: Duration,
    /// Pass backends' `endpoint-load-metrics` headers on to clients (default: strip them).
    pub keep_load_reports: bool,
    /// Admin listeners of the other augur instances in front of the same upstreams: standby
    /// planning adds the demand they see to this instance's own (default: none).
    pub peers: Vec<SocketAddr>,
}

impl Default for Predictor {
    fn default() -> Self {
        Predictor {
            tick: Duration::from_millis(100),
            horizon: Duration::from_secs(5),
            lead: Duration::from_secs(1),
            slow_start: Duration::from_secs(10),
            keep_load_reports: false,
            peers: Vec::new(),
        }
    }
}

/// Access log destination and format.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// File path, or `-` for stdout.
    pub path: PathBuf,
    /// One JSON object per line, or a common-log-like text line.
    pub format: AccessLogFormat,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per request.
    Json,
    /// A space-separated text line.
    Text,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Address of the admin HTTP listener (loopback by default).
    pub bind: SocketAddr,
}

/// A client-facing listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique listener name.
    pub name: String,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// What the listener speaks and where its traffic goes.
    pub kind: ListenerKind,
    /// Segments whose sources may connect (indices into `Config::segments`); `None` leaves
    /// it to `segmentation.default`.
    pub allow: Option<Vec<usize>>,
    /// What a connection from outside `allow` meets (default `enforce`).
    pub segment_mode: SegmentMode,
}

/// Listener protocol with its protocol-specific settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// Plain HTTP/1.1.
    Http {
        /// First match wins.
        routes: Vec<Route>,
    },
    /// HTTP/1.1 and HTTP/2 (ALPN) over TLS (rustls).
    Https {
        /// Certificate chain and key files.
        tls: Tls,
        /// First match wins.
        routes: Vec<Route>,
    },
    /// L4: bytes relayed both ways to a backend of `upstream`.
    Tcp {
        /// Index into `Config::upstreams`.
        upstream: usize,
        /// A session with no byte either way for this long is closed (default 1h).
        idle_timeout: Duration,
    },
}

/// TLS material of an HTTPS listener. Both files were readable at validation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// An HTTP route: match conditions and the upstream that serves them.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Exact host to match (lower-cased, without port); `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match; `None` matches any path.
    pub path_prefix: Option<String>,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// Segments whose sources may use this route (indices into `Config::segments`), checked
    /// per request on top of the listener's `allow`; `None` narrows nothing.
    pub allow: Option<Vec<usize>>,
}

/// A named set of source networks, from `segments:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Unique segment name.
    pub name: String,
    /// Networks whose hosts belong to the segment, as written (overlaps allowed; at least one).
    pub sources: Vec<Prefix>,
}

/// The optional top-level `segmentation:` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segmentation {
    /// What a listener without `allow` admits (default `allow`).
    pub default: SegmentDefault,
}

/// What a listener without `allow` admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentDefault {
    /// Every source.
    #[default]
    Allow,
    /// No source.
    Deny,
}

impl SegmentDefault {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            SegmentDefault::Allow => "allow",
            SegmentDefault::Deny => "deny",
        }
    }
}

/// What a listener does with a connection its segments do not admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentMode {
    /// Close it at accept (and answer 403 to a request a route does not admit).
    #[default]
    Enforce,
    /// Let it through, but log and count it as "would deny".
    Audit,
    /// Let everything through and record who connects, to propose segments from.
    Learn,
}

impl SegmentMode {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            SegmentMode::Enforce => "enforce",
            SegmentMode::Audit => "audit",
            SegmentMode::Learn => "learn",
        }
    }
}

/// A named pool of backends with its selection policy and timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Unique upstream name.
    pub name: String,
    /// Backend selection policy.
    pub policy: PolicyKind,
    /// TCP connect timeout (default 1s).
    pub connect_timeout: Duration,
    /// Timeout for each read from the backend (default 30s).
    pub read_timeout: Duration,
    /// Timeout for each write to the backend (default 30s).
    pub write_timeout: Duration,
    /// How long an idle pooled upstream connection is kept (default 60s).
    pub idle_timeout: Duration,
    /// How many times a failed connect is retried on another backend (default 2).
    pub retries: u32,
    /// Region whose backends are preferred; others take traffic only on predicted overload.
    pub prefer_region: Option<String>,
    /// Weights of the `predictive` score.
    pub predictive: PredictiveWeights,
    /// When standby backends are woken and put back to sleep.
    pub scale: Scale,
    /// Active health checks of the backends, from `health_check:` (default: none).
    pub health_check: Option<HealthCheck>,
    /// Passive ejection of failing backends, from `outlier_detection:` (on by default).
    pub outlier_detection: OutlierDetection,
    /// When fewer than this share of the backends are healthy, health is ignored and traffic
    /// spreads over all of them rather than crushing the survivors (default 0.5; 0 = never).
    pub panic_threshold: f64,
    /// How many retries the upstream may spend, from `retry_budget:`.
    pub retry_budget: RetryBudget,
    /// The backends, in file order (at least one).
    pub backends: Vec<Backend>,
}

/// Active health checking, from an upstream's `health_check:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// What a check does.
    pub kind: CheckKind,
    /// Time between two checks of one backend (default 2s; each is jittered by up to 10%).
    pub interval: Duration,
    /// A check that takes longer fails (default 1s; must be below `interval`).
    pub timeout: Duration,
    /// Consecutive passes that make a down backend up again (default 2).
    pub rise: u32,
    /// Consecutive failures that take an up backend down (default 3).
    pub fall: u32,
}

/// The kind of an active check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect that succeeds within the timeout passes.
    Tcp,
    /// `GET path` answered with a status in `expect` within the timeout passes.
    Http {
        /// Request path, starting with `/` (default `/healthz`).
        path: String,
        /// Passing statuses, inclusive (default 200-399).
        expect: StatusRange,
    },
}

/// An inclusive range of HTTP statuses, written `200-399` or `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest passing status.
    pub low: u16,
    /// Highest passing status.
    pub high: u16,
}

impl StatusRange {
    /// Whether `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// Passive ejection, from an upstream's `outlier_detection:` table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    /// Consecutive failed requests (connect failure, timeout, reset, 5xx) that eject a
    /// backend (default 5; 0 turns passive ejection off).
    pub consecutive_failures: u32,
    /// First ejection time; the n-th ejection in a row lasts n times this (default 30s).
    pub base_ejection: Duration,
    /// Longest ejection (default 300s).
    pub max_ejection: Duration,
    /// Never more than this percentage of the upstream's backends ejected at once
    /// (default 50).
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// A retry budget, from an upstream's `retry_budget:` table: retries may add at most `ratio`
/// of the recent requests, plus `min_per_second`, so that retries cannot multiply an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Retries per request allowed over the last ten seconds (default 0.2).
    pub ratio: f64,
    /// Retries per second always allowed, for quiet upstreams (default 3).
    pub min_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            min_per_second: 3,
        }
    }
}

/// Standby activation of an upstream, from its optional `scale:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Wake a standby backend when demand predicted one warm-up ahead exceeds this share of
    /// the active capacity (default 0.9).
    pub activate_at: f64,
    /// Shortest time a woken backend stays active, and a sleeping one stays asleep (default 60s).
    pub min_hold: Duration,
    /// Command run with a JSON description of each activation or deactivation on stdin.
    pub hook: Option<String>,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            activate_at: 0.9,
            min_hold: Duration::from_secs(60),
            hook: None,
        }
    }
}

/// Weights of the `predictive` score (see the README's routing section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveWeights {
    /// Weight of the predicted-overload factor (default 4).
    pub load_weight: f64,
    /// Weight of a backend's cost (default 1).
    pub cost_weight: f64,
    /// Predicted utilisation above which traffic moves away, in (0, 1) (default 0.8).
    pub overload_threshold: f64,
}

impl Default for PredictiveWeights {
    fn default() -> Self {
        PredictiveWeights {
            load_weight: 4.0,
            cost_weight: 1.0,
            overload_threshold: 0.8,
        }
    }
}

/// One backend server.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// Relative weight, 1..=256 (default 1).
    pub weight: u32,
    /// Region (data centre) the backend is in, if given.
    pub region: Option<String>,
    /// Relative cost of using it, 0..=100 (default 0; 0.4 = 40% dearer).
    pub cost: f64,
    /// Concurrent requests it can serve, if declared (needed for standby planning).
    pub capacity: Option<u32>,
    /// Held in reserve until predicted demand needs it.
    pub standby: bool,
    /// Time it needs after being woken before it can serve (default 10s).
    pub warmup: Duration,
    /// Index into `Config::tunnels` of the tunnel it is dialled through; `None` = directly.
    pub via: Option<usize>,
}

/// A WireGuard tunnel to one peer, from `tunnels:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Unique tunnel name.
    pub name: String,
    /// Where the private key was read from (resolved against the config file's directory).
    pub private_key_file: PathBuf,
    /// Our private key, as read at validation time.
    pub private_key: Key,
    /// Our own address inside the tunnel.
    pub address: IpAddr,
    /// Largest packet sent into the tunnel, 576..=9000 (default 1420; at least 1280 for an
    /// IPv6 address).
    pub mtu: u16,
    /// UDP port bound on all IPv4 addresses (`None` = an ephemeral port); needed when the
    /// peer initiates.
    pub listen_port: Option<u16>,
    /// The one peer at the other end.
    pub peer: TunnelPeer,
    /// Connections arriving through the tunnel that are relayed to local addresses.
    pub forward: Vec<Forward>,
}

/// The peer of a [`Tunnel`], from its `peer:` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The peer's public key.
    pub public_key: [u8; 32],
    /// Where to send the first handshake; `None` waits for the peer to initiate and learns
    /// its address from it.
    pub endpoint: Option<Endpoint>,
    /// Networks the peer may send from and that are sent to it (at least one).
    pub allowed_ips: Vec<Prefix>,
    /// Time between keepalives sent to hold NAT mappings open, whole seconds from 1 to
    /// 65535 (`None` = none).
    pub persistent_keepalive: Option<Duration>,
    /// Where the preshared key was read from, if one is configured.
    pub preshared_key_file: Option<PathBuf>,
    /// The preshared key mixed into the handshake, as read at validation time.
    pub preshared_key: Option<Key>,
}

/// Where a tunnel's peer is reached, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `IP:PORT`.
    Addr(SocketAddr),
    /// `HOST:PORT`: resolved by the proxy when it starts and at each reload (the validator
    /// checks only its form).
    Host {
        /// The host name.
        name: String,
        /// The UDP port, from 1.
        port: u16,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            Endpoint::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// A port of a tunnel's own address whose connections are relayed to a local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// TCP port on the tunnel's `address`, unique within the tunnel.
    pub port: u16,
    /// Address the connections are relayed to.
    pub to: SocketAddr,
}

/// A 32-byte secret (private or preshared key). Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Key {
    fn from(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_value_but_never_show() {
        let key = Key::from([0x2a; 32]);
        assert_eq!(format!("{key:?}"), "Key(<redacted>)");
        assert_eq!(format!("{:?}", Some(key.clone())), "Some(Key(<redacted>))");
        assert_eq!(format!("{key:#?}"), "Key(<redacted>)");
        assert_eq!(key.bytes(), &[0x2a; 32]);
        assert_eq!(key, Key::from([0x2a; 32]));
        assert_ne!(key, Key::from([0x2b; 32]));
    }
}
