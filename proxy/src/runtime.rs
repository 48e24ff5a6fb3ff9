//! Runtime tables: what a validated `Config` becomes so that the request path can route with
//! no lock and no allocation. Built whole on every (re)load and swapped in through `ArcSwap`;
//! a request keeps the `Arc<Runtime>` it began with until it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use augur_config::{Config, ListenerKind, PolicyKind};
use augur_predictor::{LeastConn, Live, Member, Policy, RoundRobin};

use crate::stats::{ListenerStats, UpstreamStats};

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
    /// Indexed by listener slot (the order of listeners when the process started), so a
    /// service finds its table without a lookup by name.
    pub listeners: Vec<ListenerTable>,
    /// Indexed like `config.upstreams`.
    pub upstreams: Vec<UpstreamTable>,
}

/// Routing table of one listener.
#[derive(Debug)]
pub struct ListenerTable {
    /// Listener name.
    pub name: String,
    /// HTTP routes, first match wins (empty for TCP listeners).
    pub routes: Vec<RouteEntry>,
    /// The upstream of a TCP listener.
    pub tcp_upstream: Option<usize>,
    /// Counters, stable across reloads.
    pub stats: Arc<ListenerStats>,
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
    /// Weights and live counters, parallel to `backends`.
    pub members: Box<[Member]>,
    /// Addresses, parallel to `members`.
    pub backends: Box<[BackendEntry]>,
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
    /// Counters, stable across reloads.
    pub stats: Arc<UpstreamStats>,
}

/// One backend's address, with its label form precomputed for metrics and logs.
#[derive(Debug)]
pub struct BackendEntry {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `addr` as text.
    pub label: String,
}

impl Runtime {
    /// Builds the tables for `config`, reusing counters from `previous` for every listener,
    /// upstream and backend that keeps its identity. `slots` names the listeners in the
    /// order the process started with.
    pub fn build(
        config: Config,
        version: ConfigVersion,
        previous: Option<&Runtime>,
        slots: &[String],
    ) -> Runtime {
        let mut old_live: HashMap<(&str, SocketAddr), &Arc<Live>> = HashMap::new();
        let mut old_upstream: HashMap<&str, &Arc<UpstreamStats>> = HashMap::new();
        let mut old_listener: HashMap<&str, &Arc<ListenerStats>> = HashMap::new();
        if let Some(prev) = previous {
            for u in &prev.upstreams {
                old_upstream.insert(&u.name, &u.stats);
                for (b, m) in u.backends.iter().zip(u.members.iter()) {
                    old_live.insert((&u.name, b.addr), &m.live);
                }
            }
            for l in &prev.listeners {
                old_listener.insert(&l.name, &l.stats);
            }
        }

        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let members: Box<[Member]> = u
                    .backends
                    .iter()
                    .map(|b| Member {
                        weight: b.weight,
                        live: old_live
                            .get(&(u.name.as_str(), b.addr))
                            .map_or_else(Default::default, |l| Arc::clone(l)),
                    })
                    .collect();
                let policy: Box<dyn Policy> = match u.policy {
                    PolicyKind::RoundRobin => Box::new(RoundRobin::new(&members)),
                    PolicyKind::LeastConn => Box::new(LeastConn::new()),
                };
                UpstreamTable {
                    name: u.name.clone(),
                    policy,
                    backends: u
                        .backends
                        .iter()
                        .map(|b| BackendEntry {
                            addr: b.addr,
                            label: b.addr.to_string(),
                        })
                        .collect(),
                    members,
                    connect_timeout: u.connect_timeout,
                    read_timeout: u.read_timeout,
                    write_timeout: u.write_timeout,
                    idle_timeout: u.idle_timeout,
                    retries: u.retries,
                    stats: old_upstream
                        .get(u.name.as_str())
                        .map_or_else(Default::default, |s| Arc::clone(s)),
                }
            })
            .collect();

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
                    Some(ListenerKind::Tcp { upstream }) => (Vec::new(), Some(*upstream)),
                    None => (Vec::new(), None),
                };
                ListenerTable {
                    name: name.clone(),
                    routes,
                    tcp_upstream,
                    stats: old_listener
                        .get(name.as_str())
                        .map_or_else(Default::default, |s| Arc::clone(s)),
                }
            })
            .collect();

        Runtime {
            config,
            version,
            listeners,
            upstreams,
        }
    }

    /// The upstream serving `host` + `path` on listener `slot`, first match wins.
    pub fn route(&self, slot: usize, host: &str, path: &str) -> Option<usize> {
        self.listeners
            .get(slot)?
            .routes
            .iter()
            .find(|r| r.matches(host, path))
            .map(|r| r.upstream)
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
