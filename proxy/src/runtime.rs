//! Runtime tables: what a validated `Config` becomes so that the request path can route with
//! no lock and no allocation. Built whole on every (re)load and swapped in through `ArcSwap`;
//! a request keeps the `Arc<Runtime>` it began with until it ends.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use augur_config::{Config, HealthCheck, ListenerKind};
use augur_predictor::{
    Attempt, BackendId, BuildPolicy, EjectionPolicy, Failure, HealthChange, HealthState, Live,
    Member, PickContext, Policy, PredictiveParams, RetryBudget, Tried, UpstreamHealth, Verdicts,
};
use augur_segmenter::Table;

use crate::stats::{ListenerStats, UpstreamStats};
use crate::tunnel::{Tunnel, Tunnels};

/// Identity of a loaded config: a content hash, when it was loaded, and a generation counter.
#[derive(Debug, Clone)]
pub struct ConfigVersion {
    /// FNV-1a 64 of the file's bytes, hex.
    pub hash: String,
    /// Wall-clock load time.
    pub loaded_at: SystemTime,
    /// 1 for the config the process started with, +1 per successful reload.
    pub generation: u64,
}

/// Everything the request path reads, for one config generation.
#[derive(Debug)]
pub struct Runtime {
    /// The validated config this was built from.
    pub config: Config,
    /// Which config this is.
    pub version: ConfigVersion,
    /// How long a backend back from an outage takes to reach its full share, ns
    /// (`predictor.slow_start`).
    pub slow_start_nanos: u64,
    /// Indexed by listener slot (the order of listeners when the process started), so a
    /// service finds its table without a lookup by name.
    pub listeners: Vec<ListenerTable>,
    /// Indexed like `config.upstreams`.
    pub upstreams: Vec<UpstreamTable>,
    /// The compiled segmentation: accept and per-request decisions, and their counters
    /// (carried over from the previous generation, so they survive the reload).
    pub segments: Table,
}

/// Routing table of one listener.
#[derive(Debug)]
pub struct ListenerTable {
    /// Listener name.
    pub name: String,
    /// HTTP routes, first match wins (empty for TCP listeners).
    pub routes: Vec<RouteEntry>,
    /// The upstream of a TCP listener, and how long its sessions may idle.
    pub tcp_upstream: Option<(usize, Duration)>,
    /// Counters, stable across reloads.
    pub stats: Arc<ListenerStats>,
    /// This listener's index in `Runtime::segments` (the config's listener order, which a
    /// reload may change while slots stay put).
    pub segment_index: usize,
}

/// One HTTP route.
#[derive(Debug)]
pub struct RouteEntry {
    host: Option<String>,
    path_prefix: Option<String>,
    /// Index into `Runtime::upstreams`.
    pub upstream: usize,
}

impl RouteEntry {
    /// Whether a request for `host` (any case, port allowed) and `path` matches.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        if let Some(want) = &self.host {
            if !strip_port(host).eq_ignore_ascii_case(want) {
                return false;
            }
        }
        match &self.path_prefix {
            Some(prefix) => path.starts_with(prefix.as_str()),
            None => true,
        }
    }
}

/// `host[:port]` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A backend pool as the request path sees it.
#[derive(Debug)]
pub struct UpstreamTable {
    /// Upstream name.
    pub name: String,
    /// Selection policy over `members`.
    pub policy: Box<dyn Policy>,
    /// One record per backend, in config order.
    pub backends: Box<[Backend]>,
    /// The policy's view of `backends`: each one's `member`, in the same order (built with
    /// them in `UpstreamTable::view`, never apart).
    members: Box<[Member]>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Per-read timeout towards the backend.
    pub read_timeout: Duration,
    /// Per-write timeout towards the backend.
    pub write_timeout: Duration,
    /// Idle time after which a pooled connection is closed.
    pub idle_timeout: Duration,
    /// Connect failures retried on another backend.
    pub retries: u32,
    /// What retries may add to the requests (rebuilt at reload).
    pub retry_budget: RetryBudget,
    /// Active checks, if any (the health thread runs them).
    pub health_check: Option<HealthCheck>,
    /// Passive ejection settings.
    pub ejection: EjectionPolicy,
    /// Below this share of serving backends, health is ignored.
    pub panic_threshold: f64,
    /// Ejected count and panic state, recounted from the members at build and every sweep.
    pub health: UpstreamHealth,
    /// Counters, stable across reloads.
    pub stats: Arc<UpstreamStats>,
}

impl UpstreamTable {
    /// How selection sees the backends: `members()[b]` is `backends[b].member`.
    fn view(backends: &[Backend]) -> Box<[Member]> {
        backends.iter().map(|b| b.member.clone()).collect()
    }

    /// Every backend as selection sees it, in config order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The backend (its index in `backends`) the policy picks for a request, among those not
    /// in `tried`.
    pub fn pick(&self, cx: &PickContext<'_>, tried: &Tried) -> Option<usize> {
        self.policy.pick(cx, &self.members, tried)
    }

    /// Whether the upstream is in panic: health is ignored when picking.
    pub fn ignore_health(&self) -> bool {
        self.health.panic()
    }

    /// Whether a failed attempt (the `attempts`-th) may be retried on another backend:
    /// within `retries`, with an untried backend left, and within the retry budget. Counts
    /// the retry, or the refusal for lack of budget.
    pub fn may_retry(&self, attempts: u32, tried: &Tried, now: u64) -> bool {
        if attempts > self.retries || tried.len() >= self.backends.len() {
            return false;
        }
        if !self.retry_budget.try_retry(now) {
            self.stats
                .retries_over_budget
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Tells member `b`'s health how `attempt` went (`None`: well), once per attempt, and
    /// logs the change if it ejected the backend.
    pub fn judge(&self, b: usize, attempt: &mut Attempt, failure: Option<Failure>, now: u64) {
        let rules = Verdicts {
            ejection: &self.ejection,
            upstream: &self.health,
        };
        if let Some(change) = attempt.judge(failure, now, rules) {
            self.log_change(&self.backends[b], &change);
            self.recount_health();
        }
    }

    /// Logs a backend's change of state once: leaving service as a warning, returning as
    /// info. Every change is made by `augur_predictor::Health` and logged here, by the
    /// request path (ejections) or the health thread (checks, sweeps, paths).
    pub fn log_change(&self, backend: &Backend, change: &HealthChange) {
        let (upstream, backend) = (self.name.as_str(), backend.label.as_str());
        let (from, to, reason) = (change.from.name(), change.to.name(), change.reason);
        if change.to == HealthState::Up {
            tracing::info!(upstream, backend, from, to, %reason, "backend health change");
        } else {
            tracing::warn!(upstream, backend, from, to, %reason, "backend health change");
        }
    }

    /// Recounts the ejected share and panic state from the members (after a change, and
    /// every sweep).
    pub fn recount_health(&self) {
        self.health.recount(
            self.members.iter().map(|m| &m.live.health),
            self.panic_threshold,
        );
    }
}

/// One backend of an upstream: how selection sees it and where to connect.
#[derive(Debug)]
pub struct Backend {
    /// How selection, health and the predictor see it.
    pub member: Member,
    /// Where to connect.
    pub addr: SocketAddr,
    /// `addr` as text.
    pub label: String,
    /// The tunnel it is reached through, if any.
    pub via: Option<Arc<Tunnel>>,
}

/// Every backend the process has known, keyed by (upstream name, address): its stable
/// `BackendId` (the predictor's index) and its live counters. Entries are never removed, so a
/// backend that leaves and comes back keeps its identity and what was learned about it.
#[derive(Debug, Default)]
pub struct BackendRegistry {
    known: Mutex<HashMap<BackendKey, (BackendId, Arc<Live>)>>,
}

/// A backend's stable key: its upstream's name and its address.
type BackendKey = (String, SocketAddr);

impl BackendRegistry {
    /// The identity and counters of a backend, created on first sight.
    pub fn entry(&self, upstream: &str, addr: SocketAddr) -> (BackendId, Arc<Live>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let next = BackendId::try_from(known.len()).unwrap_or(BackendId::MAX);
        let (id, live) = known
            .entry((upstream.to_owned(), addr))
            .or_insert_with(|| (next, Arc::new(Live::default())));
        (*id, Arc::clone(live))
    }

    /// Every identity handed out so far, in order (0..n).
    pub fn ids(&self) -> Vec<BackendId> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        (0..BackendId::try_from(known.len()).unwrap_or(BackendId::MAX)).collect()
    }
}

/// A seed for the sampling policies: differs per process and per upstream.
fn seed(name: &str) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = now ^ u64::from(std::process::id()).rotate_left(32);
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Runtime {
    /// Builds the tables for `config`. Backends get their identity and counters from
    /// `registry`; listener, upstream and segment counters (and learned flows) are reused from
    /// `previous` by name.
    /// `slots` names the listeners in the order the process started with.
    pub fn build(
        config: Config,
        version: ConfigVersion,
        previous: Option<&Runtime>,
        slots: &[String],
        registry: &BackendRegistry,
        tunnels: &Tunnels,
    ) -> Runtime {
        let mut old_upstream: HashMap<&str, &Arc<UpstreamStats>> = HashMap::new();
        let mut old_listener: HashMap<&str, &Arc<ListenerStats>> = HashMap::new();
        // Backends serving before this build: any other joins a running upstream.
        let mut serving: HashSet<(&str, SocketAddr)> = HashSet::new();
        if let Some(prev) = previous {
            for u in &prev.upstreams {
                old_upstream.insert(&u.name, &u.stats);
                serving.extend(u.backends.iter().map(|b| (u.name.as_str(), b.addr)));
            }
            for l in &prev.listeners {
                old_listener.insert(&l.name, &l.stats);
            }
        }

        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let backends: Box<[Backend]> = u
                    .backends
                    .iter()
                    .map(|b| {
                        let (id, live) = registry.entry(&u.name, b.addr);
                        // A backend a reload adds ramps up like one back from an outage
                        // (every backend of the first config starts together, at full share).
                        if previous.is_some() && !serving.contains(&(u.name.as_str(), b.addr)) {
                            live.health.start_slow_start(crate::clock::now_nanos());
                        }
                        Backend {
                            member: Member {
                                id,
                                weight: b.weight,
                                cost: b.cost,
                                local: u.prefer_region.is_none() || b.region == u.prefer_region,
                                standby: b.standby,
                                capacity: b.capacity,
                                warmup_nanos: b.warmup.as_nanos() as u64,
                                live,
                            },
                            addr: b.addr,
                            label: b.addr.to_string(),
                            via: b
                                .via
                                .and_then(|t| tunnels.get(&config.tunnels[t].name))
                                .map(Arc::clone),
                        }
                    })
                    .collect();
                let members = UpstreamTable::view(&backends);
                let params = PredictiveParams {
                    load_weight: u.predictive.load_weight,
                    cost_weight: u.predictive.cost_weight,
                    overload_threshold: u.predictive.overload_threshold,
                };
                let policy = u.policy.build(&members, params, seed(&u.name));
                let health = UpstreamHealth::default();
                health.recount(members.iter().map(|m| &m.live.health), u.panic_threshold);
                let outlier = &u.outlier_detection;
                UpstreamTable {
                    name: u.name.clone(),
                    policy,
                    backends,
                    members,
                    connect_timeout: u.connect_timeout,
                    read_timeout: u.read_timeout,
                    write_timeout: u.write_timeout,
                    idle_timeout: u.idle_timeout,
                    retries: u.retries,
                    retry_budget: RetryBudget::new(
                        u.retry_budget.ratio,
                        u.retry_budget.min_per_second,
                    ),
                    health_check: u.health_check.clone(),
                    ejection: EjectionPolicy {
                        consecutive_failures: outlier.consecutive_failures,
                        base_nanos: outlier.base_ejection.as_nanos() as u64,
                        max_nanos: outlier.max_ejection.as_nanos() as u64,
                        max_percent: outlier.max_ejection_percent,
                    },
                    panic_threshold: u.panic_threshold,
                    health,
                    stats: old_upstream
                        .get(u.name.as_str())
                        .map_or_else(Default::default, |s| Arc::clone(s)),
                }
            })
            .collect();

        let segments = Table::from_config(&config, previous.map(|p| &p.segments));
        let listeners = slots
            .iter()
            .map(|name| {
                let listener = config.listeners.iter().find(|l| &l.name == name);
                let (routes, tcp_upstream) = match listener.map(|l| &l.kind) {
                    Some(ListenerKind::Http { routes } | ListenerKind::Https { routes, .. }) => (
                        routes
                            .iter()
                            .map(|r| RouteEntry {
                                host: r.host.clone(),
                                path_prefix: r.path_prefix.clone(),
                                upstream: r.upstream,
                            })
                            .collect(),
                        None,
                    ),
                    Some(ListenerKind::Tcp {
                        upstream,
                        idle_timeout,
                    }) => (Vec::new(), Some((*upstream, *idle_timeout))),
                    None => (Vec::new(), None),
                };
                ListenerTable {
                    name: name.clone(),
                    routes,
                    tcp_upstream,
                    stats: old_listener
                        .get(name.as_str())
                        .map_or_else(Default::default, |s| Arc::clone(s)),
                    // A slot whose listener left the config gets the table's "no listener"
                    // answer (`segmentation.default`, uncounted); reload refuses that
                    // change anyway.
                    segment_index: segments.listener_index(name).unwrap_or(usize::MAX),
                }
            })
            .collect();

        Runtime {
            slow_start_nanos: config.predictor.slow_start.as_nanos() as u64,
            config,
            version,
            listeners,
            upstreams,
            segments,
        }
    }

    /// The route (its index in the listener's `routes`) and upstream serving `host` +
    /// `path` on listener `slot`, first match wins.
    pub fn route(&self, slot: usize, host: &str, path: &str) -> Option<(usize, usize)> {
        self.listeners
            .get(slot)?
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(host, path))
            .map(|(i, r)| (i, r.upstream))
    }
}

/// FNV-1a 64-bit hash as 16 hex digits: a stable content hash for config versions.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: Option<&str>) -> RouteEntry {
        RouteEntry {
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
            upstream: 0,
        }
    }

    #[test]
    fn host_matching_ignores_case_and_port() {
        let r = route(Some("api.example.com"), Some("/v1"));
        assert!(r.matches("API.example.com:8080", "/v1/users"));
        assert!(!r.matches("api.example.com", "/v2"));
        assert!(!r.matches("www.example.com", "/v1"));
        let any = route(None, None);
        assert!(any.matches("", "/"));
    }

    #[test]
    fn port_is_stripped_from_every_host_form() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
    }

    #[test]
    fn content_hash_is_stable() {
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
