//! Steps 2 and 3 of 3: check the raw structs and build the [`Config`] the runtime sees.
//!
//! Every check runs even after one fails, so a single `augur check` lists every problem.
//! A value that fails its check becomes `None`, and the config is only built when no
//! problem was found at all.

mod health;
mod key_files;
mod listeners;
mod names;
mod segments;
mod tls;
mod tunnels;
mod upstreams;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::issue::{quoted, Issue};
use crate::model::{AccessLog, AccessLogFormat, Admin, Config, Event, Listener, Predictor, Server};
use crate::raw::{
    RawAccessLog, RawAccessLogFormat, RawAdmin, RawConfig, RawEvent, RawPredictor, RawServer,
};

/// Defaults for keys the file leaves out.
mod defaults {
    use std::time::Duration;

    pub const THREADS: usize = 1;
    pub const GRACE_PERIOD: Duration = Duration::from_secs(10);
    pub const UPGRADE_SOCK: &str = "/tmp/augur_upgrade.sock";
    pub const PID_FILE: &str = "/tmp/augur.pid";
    pub const LOG_LEVEL: &str = "info";
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// A tcp listener's session idle timeout (Envoy's tcp_proxy default).
    pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const RETRIES: u32 = 2;
    pub const PANIC_THRESHOLD: f64 = 0.5;
    pub const CHECK_PATH: &str = "/healthz";
    pub const CHECK_EXPECT: crate::model::StatusRange = crate::model::StatusRange {
        low: 200,
        high: 399,
    };
    pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
    pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
    pub const CHECK_RISE: u32 = 2;
    pub const CHECK_FALL: u32 = 3;
    pub const WEIGHT: u32 = 1;
}

/// Checks `raw` and builds the config; relative TLS and key paths are taken from `base_dir`.
pub fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<Issue>> {
    let mut checks = Checks {
        issues: Vec::new(),
        base_dir,
    };
    let server = checks.server(raw.server.unwrap_or_default());
    let predictor = checks.predictor(raw.predictor.unwrap_or_default());
    let events = checks.events(raw.events.unwrap_or_default());
    let segments = checks.segments(raw.segments);
    let segmentation = segments::segmentation(raw.segmentation.unwrap_or_default());
    let tunnels = checks.tunnels(raw.tunnels);
    let upstreams = checks.upstreams(raw.upstreams, &tunnels.names);
    let listeners = checks.listeners(raw.listeners, &upstreams.names, &segments.names);
    let admin = match raw.admin {
        None => Some(None),
        Some(admin) => checks.admin(admin, &listeners.binds()).map(Some),
    };
    // A peer that is this instance would count its demand twice.
    if let (Some(Some(admin)), Some(predictor)) = (&admin, &predictor) {
        if let Some(i) = predictor.peers.iter().position(|&p| p == admin.bind) {
            checks.report(
                &format!("predictor.peers[{i}]"),
                format!(
                    "{} is this instance's own admin listener; list the other instances only",
                    admin.bind
                ),
            );
        }
    }
    let built = (|| {
        Some(Config {
            server: server?,
            admin: admin?,
            predictor: predictor?,
            events: events?,
            segments: segments.built?,
            segmentation,
            listeners: listeners.built?,
            upstreams: upstreams.built?,
            tunnels: tunnels.built?,
        })
    })();
    match built {
        Some(config) if checks.issues.is_empty() => Ok(config),
        _ => {
            if checks.issues.is_empty() {
                // Every check that returns `None` reports why; this is a bug, not a panic.
                checks.report("", "internal error: validation failed without a reason");
            }
            Err(checks.issues)
        }
    }
}

/// The problems found so far, and what the checks need to know about the file.
struct Checks<'a> {
    issues: Vec<Issue>,
    /// Directory that relative TLS and key paths are relative to.
    base_dir: &'a Path,
}

impl Checks<'_> {
    /// Records a problem with the value at `path`.
    fn report(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(Issue::at_value(path, message));
    }

    /// Records that the mapping at `parent` lacks `key`.
    fn missing(&mut self, parent: &str, key: &str, why: &str) {
        let message = if why.is_empty() {
            format!("missing required key `{key}`")
        } else {
            format!("missing required key `{key}`; {why}")
        };
        self.report(parent, message);
    }

    /// The list at `path` (`parent.key`), which must be there (`why` says what for) and hold
    /// at least one `what`.
    fn non_empty_list<T>(
        &mut self,
        raw: Option<Vec<T>>,
        path: &str,
        why: &str,
        what: &str,
    ) -> Option<Vec<T>> {
        let Some(raw) = raw else {
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
            self.missing(parent, key, why);
            return None;
        };
        if raw.is_empty() {
            self.report(path, format!("expected at least one {what}, found none"));
            return None;
        }
        Some(raw)
    }

    /// A required, non-empty string.
    fn required<'v>(&mut self, value: Option<&'v str>, parent: &str, key: &str) -> Option<&'v str> {
        match value {
            None => {
                self.missing(parent, key, "");
                None
            }
            Some(text) => self.non_empty(text, &join(parent, key)),
        }
    }

    /// A string that must not be empty.
    fn non_empty<'v>(&mut self, text: &'v str, path: &str) -> Option<&'v str> {
        if text.trim().is_empty() {
            self.report(path, "expected a non-empty value, found an empty one");
            None
        } else {
            Some(text)
        }
    }

    /// `IP:PORT`.
    fn socket_addr(&mut self, text: &str, path: &str) -> Option<SocketAddr> {
        match text.trim().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.report(
                    path,
                    format!("invalid socket address {}: expected IP:PORT", quoted(text)),
                );
                None
            }
        }
    }

    /// `IP:PORT` to connect to: the port must not be zero.
    fn destination(&mut self, text: &str, path: &str) -> Option<SocketAddr> {
        let addr = self.socket_addr(text, path)?;
        if addr.port() == 0 {
            self.report(
                path,
                format!("expected a port from 1 to 65535, found {addr}"),
            );
            return None;
        }
        Some(addr)
    }

    /// A humantime duration such as `1s`, `250ms` or `2m`.
    fn duration(&mut self, text: &str, path: &str) -> Option<Duration> {
        let expected = match humantime::parse_duration(text.trim()) {
            Ok(duration) => return Some(duration),
            Err(humantime::DurationError::NumberOverflow) => "expected at most a few centuries",
            Err(_) => "expected a number and a unit, like \"1s\", \"250ms\" or \"2m\"",
        };
        self.report(
            path,
            format!("invalid duration {}: {expected}", quoted(text)),
        );
        None
    }

    /// A duration from `min` to `max`, inclusive.
    fn duration_within(
        &mut self,
        text: &str,
        path: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let duration = self.duration(text, path)?;
        if duration < min || duration > max {
            self.report(
                path,
                format!(
                    "expected a duration from {} to {}, found {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max),
                    quoted(text)
                ),
            );
            return None;
        }
        Some(duration)
    }

    /// A number (integer or float) within `min..=max`; NaN is within no range, and every
    /// range given is finite.
    fn number<T: PartialOrd + Copy + std::fmt::Display>(
        &mut self,
        value: T,
        min: T,
        max: T,
        path: &str,
    ) -> Option<T> {
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.report(
                path,
                format!("expected a number from {min} to {max}, found {value}"),
            );
            None
        }
    }

    /// `events:`: times are RFC 3339 (`2026-11-24T18:00:00Z`), end after start.
    fn events(&mut self, raw: Vec<RawEvent>) -> Option<Vec<Event>> {
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, e) in raw.into_iter().enumerate() {
            let path = format!("events[{i}]");
            let mut time = |text: Option<&str>, key: &str| {
                let text = self.required(text, &path, key)?;
                match humantime::parse_rfc3339_weak(text.trim()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.report(
                            &format!("{path}.{key}"),
                            format!(
                                "expected an RFC 3339 time like \"2026-11-24T18:00:00Z\", found {}",
                                quoted(text)
                            ),
                        );
                        None
                    }
                }
            };
            let start = time(e.start.as_deref(), "start");
            let end = time(e.end.as_deref(), "end");
            if let (Some(s), Some(t)) = (start, end) {
                if t <= s {
                    self.report(
                        &format!("{path}.end"),
                        "expected an end after the start".to_owned(),
                    );
                }
            }
            let multiplier = match e.multiplier {
                Some(m) if m.is_finite() && m > 0.0 && m <= 1000.0 => Some(m),
                Some(m) => {
                    self.report(
                        &format!("{path}.multiplier"),
                        format!("expected a number above 0 and at most 1000, found {m}"),
                    );
                    None
                }
                None => {
                    self.missing(
                        &path,
                        "multiplier",
                        "how much demand is expected to grow, e.g. 3",
                    );
                    None
                }
            };
            let event = start
                .zip(end)
                .zip(multiplier)
                .map(|((start, end), multiplier)| Event {
                    upstream: e.upstream,
                    start,
                    end,
                    multiplier,
                });
            built = built.zip(event).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        built
    }

    /// `predictor:`, with defaults for what it leaves out.
    fn predictor(&mut self, raw: RawPredictor) -> Option<Predictor> {
        let d = Predictor::default();
        let mut within = |text: &Option<String>, key: &str, default, min, max| match text {
            None => Some(default),
            Some(text) => self.duration_within(text, &format!("predictor.{key}"), min, max),
        };
        let (ms, secs) = (Duration::from_millis, Duration::from_secs);
        let [tick, horizon, lead, slow_start] = [
            (&raw.tick, "tick", d.tick, ms(10), secs(10)),
            (&raw.horizon, "horizon", d.horizon, ms(10), secs(600)),
            (&raw.lead, "lead", d.lead, ms(10), secs(600)),
            (
                &raw.slow_start,
                "slow_start",
                d.slow_start,
                ms(0),
                secs(3600),
            ),
        ]
        .map(|(text, key, default, min, max)| within(text, key, default, min, max));
        let mut peers = Some(Vec::new());
        for (i, text) in raw.peers.iter().flatten().enumerate() {
            let peer = self.destination(text, &format!("predictor.peers[{i}]"));
            match (peer, peers.as_mut()) {
                (Some(peer), Some(all)) if all.contains(&peer) => {
                    self.report(
                        &format!("predictor.peers[{i}]"),
                        format!("peer {peer} is listed twice"),
                    );
                    peers = None;
                }
                (Some(peer), Some(all)) => all.push(peer),
                (_, _) => peers = None,
            }
        }
        let (tick, horizon, lead) = (tick?, horizon?, lead?);
        if horizon < tick || lead < tick || lead > horizon {
            self.report("predictor", "expected tick <= lead <= horizon".to_owned());
            return None;
        }
        Some(Predictor {
            tick,
            horizon,
            lead,
            slow_start: slow_start?,
            keep_load_reports: raw.keep_load_reports.unwrap_or(d.keep_load_reports),
            peers: peers?,
        })
    }

    /// `server:`, with defaults for what it leaves out.
    fn server(&mut self, raw: RawServer) -> Option<Server> {
        let threads = match raw.threads {
            None => Some(defaults::THREADS),
            Some(n) => self
                .number(n, 1, 64, "server.threads")
                .and_then(|n| usize::try_from(n).ok()),
        };
        let grace_period = match &raw.grace_period {
            None => Some(defaults::GRACE_PERIOD),
            Some(text) => self.duration(text, "server.grace_period"),
        };
        let mut path_or = |value: Option<String>, key: &str, default: &str| match value {
            None => Some(PathBuf::from(default)),
            Some(text) => self
                .non_empty(&text, &join("server", key))
                .map(PathBuf::from),
        };
        let upgrade_sock = path_or(raw.upgrade_sock, "upgrade_sock", defaults::UPGRADE_SOCK);
        let pid_file = path_or(raw.pid_file, "pid_file", defaults::PID_FILE);
        let log_level = match &raw.log_level {
            None => Some(defaults::LOG_LEVEL.to_owned()),
            Some(text) => self.non_empty(text, "server.log_level").map(str::to_owned),
        };
        let access_log = match raw.access_log {
            None => Some(None),
            Some(raw) => self.access_log(raw).map(Some),
        };
        Some(Server {
            threads: threads?,
            grace_period: grace_period?,
            upgrade_sock: upgrade_sock?,
            pid_file: pid_file?,
            log_level: log_level?,
            access_log: access_log?,
        })
    }

    /// `server.access_log:`.
    fn access_log(&mut self, raw: RawAccessLog) -> Option<AccessLog> {
        let path = self.required(raw.path.as_deref(), "server.access_log", "path");
        let format = match raw.format.unwrap_or(RawAccessLogFormat::Json) {
            RawAccessLogFormat::Json => AccessLogFormat::Json,
            RawAccessLogFormat::Text => AccessLogFormat::Text,
        };
        Some(AccessLog {
            path: PathBuf::from(path?),
            format,
        })
    }

    /// `admin:`; its address must not be one a listener uses.
    fn admin(&mut self, raw: RawAdmin, listener_binds: &[(&str, SocketAddr)]) -> Option<Admin> {
        let text = self.required(raw.bind.as_deref(), "admin", "bind")?;
        let bind = self.socket_addr(text, "admin.bind")?;
        if let Some((name, other)) = listener_binds
            .iter()
            .find(|(_, other)| overlaps(bind, *other))
        {
            self.report(
                "admin.bind",
                format!(
                    "admin address {bind} conflicts with listener {} on {other}",
                    quoted(name)
                ),
            );
            return None;
        }
        Some(Admin { bind })
    }
}

/// The built listeners (if all were valid) and what the admin check needs to know.
struct CheckedListeners {
    built: Option<Vec<Listener>>,
    /// Name and address of every listener whose address parsed.
    binds: Vec<(String, SocketAddr)>,
}

impl CheckedListeners {
    fn binds(&self) -> Vec<(&str, SocketAddr)> {
        self.binds
            .iter()
            .map(|(name, addr)| (name.as_str(), *addr))
            .collect()
    }
}

/// `parent.key`, or `key` at the top level.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether two listening sockets could not both be bound: the same port on the same IP,
/// or on any IP when one of them is the wildcard address.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_binds() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(overlaps(addr("[::]:80"), addr("127.0.0.1:80")));
        assert!(!overlaps(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!overlaps(addr("0.0.0.0:80"), addr("0.0.0.0:81")));
    }

    #[test]
    fn empty_raw_config_lists_every_missing_key() {
        let issues = validate(RawConfig::default(), Path::new("")).unwrap_err();
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("`listeners`")));
        assert!(messages.iter().any(|m| m.contains("`upstreams`")));
    }
}
