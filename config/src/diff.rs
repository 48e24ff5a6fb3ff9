//! What a reload changes: the list logged when a new config replaces the old one, and the
//! changes a reload cannot apply because they need sockets bound anew.

mod tunnels;

use std::fmt;
use std::net::SocketAddr;

use crate::model::{
    Config, Listener, ListenerKind, PolicyKind, Route, Segment, SegmentDefault, SegmentMode,
    Tunnel, Upstream,
};

pub use tunnels::TunnelSetting;

/// One difference between two configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A process-wide `server:` setting changed.
    ServerSettingChanged(ServerSetting),
    /// The predictor's settings changed (they take a new process).
    PredictorChanged,
    /// `predictor.peers` changed (applied live).
    PeersChanged,
    /// The announced demand events changed.
    EventsChanged,
    /// The admin listener appeared, disappeared or moved (`None` = no admin listener).
    AdminChanged {
        /// Old admin address.
        from: Option<SocketAddr>,
        /// New admin address.
        to: Option<SocketAddr>,
    },
    /// A listener was added.
    ListenerAdded(String),
    /// A listener was removed.
    ListenerRemoved(String),
    /// A listener moved to another address.
    ListenerRebound {
        /// Listener name.
        name: String,
        /// Old address.
        from: SocketAddr,
        /// New address.
        to: SocketAddr,
    },
    /// A listener changed protocol (http, https, tcp).
    ListenerProtocolChanged {
        /// Listener name.
        name: String,
    },
    /// An https listener's certificate or key path changed.
    TlsChanged {
        /// Listener name.
        listener: String,
    },
    /// A listener's routes changed (for tcp: the upstream it forwards to), including a
    /// route's `allow` list.
    RoutesChanged {
        /// Listener name.
        listener: String,
    },
    /// A tcp listener's `idle_timeout` changed (applies to sessions that start after it).
    IdleTimeoutChanged {
        /// Listener name.
        listener: String,
    },
    /// A segment was added.
    SegmentAdded(String),
    /// A segment was removed.
    SegmentRemoved(String),
    /// A segment's sources changed (reordering them is no change).
    SegmentSourcesChanged(String),
    /// `segmentation.default` changed.
    SegmentationDefaultChanged {
        /// Old default.
        from: SegmentDefault,
        /// New default.
        to: SegmentDefault,
    },
    /// A listener's `allow` list changed (segments compared by name).
    ListenerAllowChanged {
        /// Listener name.
        listener: String,
    },
    /// A listener's `segment_mode` changed.
    SegmentModeChanged {
        /// Listener name.
        listener: String,
        /// Old mode.
        from: SegmentMode,
        /// New mode.
        to: SegmentMode,
    },
    /// An upstream was added.
    UpstreamAdded(String),
    /// An upstream was removed.
    UpstreamRemoved(String),
    /// An upstream changed its selection policy.
    PolicyChanged {
        /// Upstream name.
        upstream: String,
        /// Old policy.
        from: PolicyKind,
        /// New policy.
        to: PolicyKind,
    },
    /// Any of an upstream's connect, read, write or idle timeouts changed.
    TimeoutsChanged {
        /// Upstream name.
        upstream: String,
    },
    /// An upstream's retry count changed.
    RetriesChanged {
        /// Upstream name.
        upstream: String,
        /// Old retry count.
        from: u32,
        /// New retry count.
        to: u32,
    },
    /// One of an upstream's health or retry-budget settings changed.
    UpstreamSettingChanged {
        /// Upstream name.
        upstream: String,
        /// Which setting.
        setting: UpstreamSetting,
    },
    /// A backend was added to an upstream.
    BackendAdded {
        /// Upstream name.
        upstream: String,
        /// Backend address.
        addr: SocketAddr,
    },
    /// A backend was removed from an upstream.
    BackendRemoved {
        /// Upstream name.
        upstream: String,
        /// Backend address.
        addr: SocketAddr,
    },
    /// A backend's weight changed.
    BackendWeightChanged {
        /// Upstream name.
        upstream: String,
        /// Backend address.
        addr: SocketAddr,
        /// Old weight.
        from: u32,
        /// New weight.
        to: u32,
    },
    /// A backend is now dialled through another tunnel, or through one where it was
    /// dialled directly, or the other way round (tunnels compared by name).
    BackendViaChanged {
        /// Upstream name.
        upstream: String,
        /// Backend address.
        addr: SocketAddr,
        /// Old tunnel name (`None` = dialled directly).
        from: Option<String>,
        /// New tunnel name (`None` = dialled directly).
        to: Option<String>,
    },
    /// A tunnel was added.
    TunnelAdded(String),
    /// A tunnel was removed.
    TunnelRemoved(String),
    /// One of a tunnel's settings changed.
    TunnelChanged {
        /// Tunnel name.
        tunnel: String,
        /// Which setting.
        setting: TunnelSetting,
    },
}

/// The settings of the `server:` table, named for [`Change::ServerSettingChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSetting {
    /// `server.threads`.
    Threads,
    /// `server.grace_period`.
    GracePeriod,
    /// `server.upgrade_sock`.
    UpgradeSock,
    /// `server.pid_file`.
    PidFile,
    /// `server.log_level`.
    LogLevel,
    /// `server.access_log`.
    AccessLog,
}

impl ServerSetting {
    /// The key as written in the file.
    pub fn key(self) -> &'static str {
        match self {
            ServerSetting::Threads => "threads",
            ServerSetting::GracePeriod => "grace_period",
            ServerSetting::UpgradeSock => "upgrade_sock",
            ServerSetting::PidFile => "pid_file",
            ServerSetting::LogLevel => "log_level",
            ServerSetting::AccessLog => "access_log",
        }
    }
}

/// The health and retry-budget settings of an upstream, named for
/// [`Change::UpstreamSettingChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamSetting {
    /// `health_check` (added, removed or edited).
    HealthCheck,
    /// `outlier_detection`.
    OutlierDetection,
    /// `panic_threshold`.
    PanicThreshold,
    /// `retry_budget`.
    RetryBudget,
}

impl UpstreamSetting {
    /// The key as written in the file.
    pub fn key(self) -> &'static str {
        match self {
            UpstreamSetting::HealthCheck => "health_check",
            UpstreamSetting::OutlierDetection => "outlier_detection",
            UpstreamSetting::PanicThreshold => "panic_threshold",
            UpstreamSetting::RetryBudget => "retry_budget",
        }
    }
}

impl Change {
    /// Whether applying this change needs a new process: listening sockets or worker threads
    /// set up anew, or the predictor restarted. A reload never does that; the operator must
    /// use `--upgrade` instead.
    pub fn needs_new_process(&self) -> bool {
        match self {
            Change::ServerSettingChanged(setting) => {
                matches!(setting, ServerSetting::Threads | ServerSetting::UpgradeSock)
            }
            Change::AdminChanged { .. }
            | Change::PredictorChanged
            | Change::ListenerAdded(_)
            | Change::ListenerRemoved(_)
            | Change::ListenerRebound { .. }
            | Change::ListenerProtocolChanged { .. }
            | Change::TlsChanged { .. } => true,
            // A tunnel is a bound UDP socket with session state: only a new peer endpoint
            // is applied live (WireGuard roams anyway); any other change takes a new process.
            Change::TunnelChanged {
                setting: TunnelSetting::PeerEndpoint,
                ..
            } => false,
            Change::TunnelAdded(_) | Change::TunnelRemoved(_) | Change::TunnelChanged { .. } => {
                true
            }
            Change::RoutesChanged { .. }
            | Change::SegmentAdded(_)
            | Change::SegmentRemoved(_)
            | Change::SegmentSourcesChanged(_)
            | Change::SegmentationDefaultChanged { .. }
            | Change::ListenerAllowChanged { .. }
            | Change::SegmentModeChanged { .. }
            | Change::EventsChanged
            | Change::PeersChanged
            | Change::IdleTimeoutChanged { .. }
            | Change::UpstreamAdded(_)
            | Change::UpstreamRemoved(_)
            | Change::PolicyChanged { .. }
            | Change::TimeoutsChanged { .. }
            | Change::RetriesChanged { .. }
            | Change::UpstreamSettingChanged { .. }
            | Change::BackendAdded { .. }
            | Change::BackendRemoved { .. }
            | Change::BackendWeightChanged { .. }
            | Change::BackendViaChanged { .. } => false,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ServerSettingChanged(setting) => {
                write!(f, "server.{} changed", setting.key())
            }
            Change::PredictorChanged => write!(f, "predictor settings changed"),
            Change::PeersChanged => write!(f, "predictor peers changed"),
            Change::IdleTimeoutChanged { listener } => {
                write!(f, "listener {listener}: idle_timeout changed")
            }
            Change::EventsChanged => write!(f, "announced demand events changed"),
            Change::AdminChanged { from, to } => match (from, to) {
                (None, Some(to)) => write!(f, "admin listener added on {to}"),
                (Some(from), None) => write!(f, "admin listener on {from} removed"),
                (Some(from), Some(to)) => write!(f, "admin listener moved from {from} to {to}"),
                (None, None) => write!(f, "admin listener changed"),
            },
            Change::ListenerAdded(name) => write!(f, "listener {name} added"),
            Change::ListenerRemoved(name) => write!(f, "listener {name} removed"),
            Change::ListenerRebound { name, from, to } => {
                write!(f, "listener {name} moved from {from} to {to}")
            }
            Change::ListenerProtocolChanged { name } => {
                write!(f, "listener {name} changed protocol")
            }
            Change::TlsChanged { listener } => {
                write!(f, "listener {listener} changed its certificate or key file")
            }
            Change::RoutesChanged { listener } => write!(f, "listener {listener} routes changed"),
            Change::SegmentAdded(name) => write!(f, "segment {name} added"),
            Change::SegmentRemoved(name) => write!(f, "segment {name} removed"),
            Change::SegmentSourcesChanged(name) => write!(f, "segment {name} sources changed"),
            Change::SegmentationDefaultChanged { from, to } => write!(
                f,
                "segmentation default changed from {} to {}",
                from.name(),
                to.name()
            ),
            Change::ListenerAllowChanged { listener } => {
                write!(f, "listener {listener} allowed segments changed")
            }
            Change::SegmentModeChanged { listener, from, to } => write!(
                f,
                "listener {listener} segment mode changed from {} to {}",
                from.name(),
                to.name()
            ),
            Change::UpstreamAdded(name) => write!(f, "upstream {name} added"),
            Change::UpstreamRemoved(name) => write!(f, "upstream {name} removed"),
            Change::PolicyChanged { upstream, from, to } => write!(
                f,
                "upstream {upstream} policy changed from {} to {}",
                policy_name(*from),
                policy_name(*to)
            ),
            Change::TimeoutsChanged { upstream } => {
                write!(f, "upstream {upstream} timeouts changed")
            }
            Change::RetriesChanged { upstream, from, to } => {
                write!(f, "upstream {upstream} retries changed from {from} to {to}")
            }
            Change::UpstreamSettingChanged { upstream, setting } => {
                write!(f, "upstream {upstream} {} changed", setting.key())
            }
            Change::BackendAdded { upstream, addr } => {
                write!(f, "backend {addr} added to upstream {upstream}")
            }
            Change::BackendRemoved { upstream, addr } => {
                write!(f, "backend {addr} removed from upstream {upstream}")
            }
            Change::BackendWeightChanged {
                upstream,
                addr,
                from,
                to,
            } => write!(
                f,
                "backend {addr} of upstream {upstream} weight changed from {from} to {to}"
            ),
            Change::BackendViaChanged {
                upstream,
                addr,
                from,
                to,
            } => write!(
                f,
                "backend {addr} of upstream {upstream} via changed from {} to {}",
                Dialled(from.as_deref()),
                Dialled(to.as_deref())
            ),
            Change::TunnelAdded(name) => write!(f, "tunnel {name} added"),
            Change::TunnelRemoved(name) => write!(f, "tunnel {name} removed"),
            Change::TunnelChanged { tunnel, setting } => {
                write!(f, "tunnel {tunnel} {} changed", setting.key())
            }
        }
    }
}

/// The policy as written in the file.
fn policy_name(policy: PolicyKind) -> &'static str {
    policy.name()
}

/// Everything that differs between `old` and `new`: server settings, then the admin
/// listener, then segments, then listeners, tunnels and upstreams (matched by name, removals
/// first, then the rest in the new file's order), then backends (matched by address).
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut changes = Vec::new();
    let server_settings = [
        (
            ServerSetting::Threads,
            old.server.threads != new.server.threads,
        ),
        (
            ServerSetting::GracePeriod,
            old.server.grace_period != new.server.grace_period,
        ),
        (
            ServerSetting::UpgradeSock,
            old.server.upgrade_sock != new.server.upgrade_sock,
        ),
        (
            ServerSetting::PidFile,
            old.server.pid_file != new.server.pid_file,
        ),
        (
            ServerSetting::LogLevel,
            old.server.log_level != new.server.log_level,
        ),
        (
            ServerSetting::AccessLog,
            old.server.access_log != new.server.access_log,
        ),
    ];
    for (setting, changed) in server_settings {
        if changed {
            changes.push(Change::ServerSettingChanged(setting));
        }
    }
    let (old_admin, new_admin) = (
        old.admin.as_ref().map(|a| a.bind),
        new.admin.as_ref().map(|a| a.bind),
    );
    let settings = |p: &crate::model::Predictor| crate::model::Predictor {
        peers: Vec::new(),
        ..p.clone()
    };
    if settings(&old.predictor) != settings(&new.predictor) {
        changes.push(Change::PredictorChanged);
    }
    if old.predictor.peers != new.predictor.peers {
        changes.push(Change::PeersChanged);
    }
    if old.events != new.events {
        changes.push(Change::EventsChanged);
    }
    if old_admin != new_admin {
        changes.push(Change::AdminChanged {
            from: old_admin,
            to: new_admin,
        });
    }
    diff_segments(old, new, &mut changes);
    diff_listeners(old, new, &mut changes);
    tunnels::diff_tunnels(old, new, &mut changes);
    diff_upstreams(old, new, &mut changes);
    changes
}

/// An item a section lists by name (a segment, listener, tunnel or upstream).
pub(crate) trait Named: Sized {
    /// The change that says an item of this name was removed.
    const REMOVED: fn(String) -> Change;
    /// The change that says an item of this name was added.
    const ADDED: fn(String) -> Change;
    /// Its name, unique in its section.
    fn name(&self) -> &str;
    /// The section of `config` that lists it.
    fn section(config: &Config) -> &[Self];
}

macro_rules! named {
    ($($item:ty, in $section:ident: $removed:ident, $added:ident;)*) => {$(
        impl Named for $item {
            const REMOVED: fn(String) -> Change = Change::$removed;
            const ADDED: fn(String) -> Change = Change::$added;
            fn name(&self) -> &str {
                &self.name
            }
            fn section(config: &Config) -> &[Self] {
                &config.$section
            }
        }
    )*};
}
named! {
    Segment, in segments: SegmentRemoved, SegmentAdded;
    Listener, in listeners: ListenerRemoved, ListenerAdded;
    Tunnel, in tunnels: TunnelRemoved, TunnelAdded;
    Upstream, in upstreams: UpstreamRemoved, UpstreamAdded;
}

/// The items of one section matched by name: removed for each name only in `old`, then,
/// in `new`'s order, added for a name only in `new` and `changed` for a name in both.
pub(crate) fn by_name<'c, T: Named + 'c>(
    old: &'c Config,
    new: &'c Config,
    changes: &mut Vec<Change>,
    mut changed: impl FnMut(&'c T, &'c T, &mut Vec<Change>),
) {
    let (old, new) = (T::section(old), T::section(new));
    for item in old {
        if !new.iter().any(|n| n.name() == item.name()) {
            changes.push(T::REMOVED(item.name().to_owned()));
        }
    }
    for item in new {
        match old.iter().find(|o| o.name() == item.name()) {
            None => changes.push(T::ADDED(item.name().to_owned())),
            Some(before) => changed(before, item, changes),
        }
    }
}

/// Segment changes, matched by name, and the segmentation default.
fn diff_segments(old: &Config, new: &Config, changes: &mut Vec<Change>) {
    by_name(old, new, changes, |before: &Segment, segment, changes| {
        let sorted = |sources: &[crate::Prefix]| {
            let mut sources = sources.to_vec();
            sources.sort_unstable();
            sources.dedup();
            sources
        };
        if sorted(&before.sources) != sorted(&segment.sources) {
            changes.push(Change::SegmentSourcesChanged(segment.name.clone()));
        }
    });
    let (from, to) = (old.segmentation.default, new.segmentation.default);
    if from != to {
        changes.push(Change::SegmentationDefaultChanged { from, to });
    }
}

/// The names of the segments an `allow` list refers to, sorted; `None` for no list.
fn allowed_names<'c>(config: &'c Config, allow: Option<&[usize]>) -> Option<Vec<&'c str>> {
    allow.map(|indices| {
        let mut names: Vec<&str> = indices
            .iter()
            .filter_map(|i| config.segments.get(*i).map(|s| s.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

/// Listener changes, matched by name.
fn diff_listeners(old: &Config, new: &Config, changes: &mut Vec<Change>) {
    by_name(old, new, changes, |before: &Listener, listener, changes| {
        let name = listener.name.clone();
        if before.bind != listener.bind {
            changes.push(Change::ListenerRebound {
                name: name.clone(),
                from: before.bind,
                to: listener.bind,
            });
        }
        if allowed_names(old, before.allow.as_deref())
            != allowed_names(new, listener.allow.as_deref())
        {
            changes.push(Change::ListenerAllowChanged {
                listener: name.clone(),
            });
        }
        if before.segment_mode != listener.segment_mode {
            changes.push(Change::SegmentModeChanged {
                listener: name.clone(),
                from: before.segment_mode,
                to: listener.segment_mode,
            });
        }
        match (&before.kind, &listener.kind) {
            (ListenerKind::Http { routes: a }, ListenerKind::Http { routes: b }) => {
                if !same_routes(old, a, new, b) {
                    changes.push(Change::RoutesChanged { listener: name });
                }
            }
            (
                ListenerKind::Https {
                    tls: tls_a,
                    routes: a,
                },
                ListenerKind::Https {
                    tls: tls_b,
                    routes: b,
                },
            ) => {
                if tls_a != tls_b {
                    changes.push(Change::TlsChanged {
                        listener: name.clone(),
                    });
                }
                if !same_routes(old, a, new, b) {
                    changes.push(Change::RoutesChanged { listener: name });
                }
            }
            (
                ListenerKind::Tcp {
                    upstream: a,
                    idle_timeout: idle_a,
                },
                ListenerKind::Tcp {
                    upstream: b,
                    idle_timeout: idle_b,
                },
            ) => {
                if idle_a != idle_b {
                    changes.push(Change::IdleTimeoutChanged {
                        listener: name.clone(),
                    });
                }
                if upstream_name(old, *a) != upstream_name(new, *b) {
                    changes.push(Change::RoutesChanged { listener: name });
                }
            }
            // A new protocol brings new routes or TLS anyway; one change says it all.
            _ => changes.push(Change::ListenerProtocolChanged { name }),
        }
    });
}

/// Whether two route lists match the same requests from the same sources to the same
/// upstreams. Upstreams and segments are compared by name: one that only moved in the file
/// is the same one.
fn same_routes(old: &Config, a: &[Route], new: &Config, b: &[Route]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.host == b.host
                && a.path_prefix == b.path_prefix
                && upstream_name(old, a.upstream) == upstream_name(new, b.upstream)
                && allowed_names(old, a.allow.as_deref()) == allowed_names(new, b.allow.as_deref())
        })
}

/// The name of upstream `index`, if it exists.
fn upstream_name(config: &Config, index: usize) -> Option<&str> {
    config.upstreams.get(index).map(|u| u.name.as_str())
}

/// Upstream and backend changes, matched by name and by address.
fn diff_upstreams(old: &Config, new: &Config, changes: &mut Vec<Change>) {
    by_name(old, new, changes, |before: &Upstream, upstream, changes| {
        diff_upstream((old, before), (new, upstream), changes);
    });
}

/// Changes within one upstream that exists in both configs, each given with its config.
fn diff_upstream(
    (old_config, old): (&Config, &Upstream),
    (new_config, new): (&Config, &Upstream),
    changes: &mut Vec<Change>,
) {
    let upstream = || new.name.clone();
    if old.policy != new.policy {
        changes.push(Change::PolicyChanged {
            upstream: upstream(),
            from: old.policy,
            to: new.policy,
        });
    }
    let timeouts = |u: &Upstream| {
        (
            u.connect_timeout,
            u.read_timeout,
            u.write_timeout,
            u.idle_timeout,
        )
    };
    if timeouts(old) != timeouts(new) {
        changes.push(Change::TimeoutsChanged {
            upstream: upstream(),
        });
    }
    if old.retries != new.retries {
        changes.push(Change::RetriesChanged {
            upstream: upstream(),
            from: old.retries,
            to: new.retries,
        });
    }
    let settings = [
        (
            UpstreamSetting::HealthCheck,
            old.health_check != new.health_check,
        ),
        (
            UpstreamSetting::OutlierDetection,
            old.outlier_detection != new.outlier_detection,
        ),
        (
            UpstreamSetting::PanicThreshold,
            old.panic_threshold != new.panic_threshold,
        ),
        (
            UpstreamSetting::RetryBudget,
            old.retry_budget != new.retry_budget,
        ),
    ];
    for (setting, changed) in settings {
        if changed {
            changes.push(Change::UpstreamSettingChanged {
                upstream: upstream(),
                setting,
            });
        }
    }
    for backend in &old.backends {
        if !new.backends.iter().any(|b| b.addr == backend.addr) {
            changes.push(Change::BackendRemoved {
                upstream: upstream(),
                addr: backend.addr,
            });
        }
    }
    for backend in &new.backends {
        let Some(before) = old.backends.iter().find(|b| b.addr == backend.addr) else {
            changes.push(Change::BackendAdded {
                upstream: upstream(),
                addr: backend.addr,
            });
            continue;
        };
        if before.weight != backend.weight {
            changes.push(Change::BackendWeightChanged {
                upstream: upstream(),
                addr: backend.addr,
                from: before.weight,
                to: backend.weight,
            });
        }
        let from = before.via.and_then(|i| tunnels::name(old_config, i));
        let to = backend.via.and_then(|i| tunnels::name(new_config, i));
        if from != to {
            changes.push(Change::BackendViaChanged {
                upstream: upstream(),
                addr: backend.addr,
                from: from.map(str::to_owned),
                to: to.map(str::to_owned),
            });
        }
    }
}

/// How a backend is dialled, for [`Change::BackendViaChanged`]: `direct` or `tunnel NAME`.
struct Dialled<'a>(Option<&'a str>);

impl fmt::Display for Dialled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("direct"),
            Some(name) => write!(f, "tunnel {name}"),
        }
    }
}
