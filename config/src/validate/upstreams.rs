//! `upstreams:`: names, policies, timeouts, retries, retry budgets and backends (health
//! settings are in `health.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::names::Names;
use super::tunnels::TunnelNames;
use super::{defaults, Checks};
use crate::issue::quoted;
use crate::model::{Backend, PredictiveWeights, RetryBudget, Scale, Upstream};
use crate::raw::{RawBackend, RawPredictive, RawRetryBudget, RawScale, RawUpstream};

/// The upstreams as built (if all were valid), and their names for resolving references.
pub(super) struct CheckedUpstreams {
    pub built: Option<Vec<Upstream>>,
    pub names: UpstreamNames,
}

/// Upstream names, for routes and tcp listeners to refer to.
pub(super) type UpstreamNames = Names;

impl Checks<'_> {
    /// `upstreams:`: required, and every entry valid.
    pub(super) fn upstreams(
        &mut self,
        raw: Option<Vec<RawUpstream>>,
        tunnels: &TunnelNames,
    ) -> CheckedUpstreams {
        let Some(raw) = raw else {
            self.missing("", "upstreams", "");
            return CheckedUpstreams {
                built: None,
                names: Names::new("upstream", ""),
            };
        };
        let mut names = Names::new("upstream", "");
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (i, upstream) in raw.into_iter().enumerate() {
            let path = format!("upstreams[{i}]");
            if let Some(name) = &upstream.name {
                self.define(&mut names, name, i, ());
            }
            let checked = self.upstream(upstream, &path, tunnels);
            built = built.zip(checked).map(|(mut all, one)| {
                all.push(one);
                all
            });
        }
        CheckedUpstreams { built, names }
    }

    /// One upstream, defaults filled in.
    fn upstream(
        &mut self,
        raw: RawUpstream,
        path: &str,
        tunnels: &TunnelNames,
    ) -> Option<Upstream> {
        let name = self
            .required(raw.name.as_deref(), path, "name")
            .and_then(|name| {
                // Names travel in line-based text (`GET /demand`, logs, metrics labels).
                if name.trim() != name || name.chars().any(char::is_control) {
                    self.report(
                        &format!("{path}.name"),
                        format!(
                            "upstream name {} has surrounding spaces or control characters",
                            crate::issue::quoted(name)
                        ),
                    );
                    return None;
                }
                Some(name)
            });
        let policy = raw.policy.unwrap_or_default();
        let predictive = self.predictive(raw.predictive.as_ref(), path);
        let scale = self.scale(raw.scale.as_ref(), path);
        let mut timeout = |text: Option<&str>, key: &str, default: Duration| {
            self.timeout(text, &format!("{path}.{key}"), default)
        };
        let connect_timeout = timeout(
            raw.connect_timeout.as_deref(),
            "connect_timeout",
            defaults::CONNECT_TIMEOUT,
        );
        let read_timeout = timeout(
            raw.read_timeout.as_deref(),
            "read_timeout",
            defaults::READ_TIMEOUT,
        );
        let write_timeout = timeout(
            raw.write_timeout.as_deref(),
            "write_timeout",
            defaults::WRITE_TIMEOUT,
        );
        let idle_timeout = timeout(
            raw.idle_timeout.as_deref(),
            "idle_timeout",
            defaults::IDLE_TIMEOUT,
        );
        let retries = match raw.retries {
            None => Some(defaults::RETRIES),
            Some(n) => self
                .number(n, 0, 10, &format!("{path}.retries"))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let retry_budget = self.retry_budget(raw.retry_budget.as_ref(), path);
        let health_check = self.health_check(raw.health_check.as_ref(), path);
        let outlier_detection = self.outlier_detection(raw.outlier_detection.as_ref(), path);
        let panic_threshold = self.panic_threshold(raw.panic_threshold, path);
        let backends = self.backends(raw.backends, path, tunnels);
        let prefer_region = match (&raw.prefer_region, &backends) {
            (Some(region), Some(list))
                if !list.iter().any(|b| b.region.as_ref() == Some(region)) =>
            {
                self.report(
                    &format!("{path}.prefer_region"),
                    format!(
                        "no backend of this upstream is in region {}",
                        quoted(region)
                    ),
                );
                None
            }
            (region, _) => Some(region.clone()),
        };
        Some(Upstream {
            name: name?.to_owned(),
            policy,
            connect_timeout: connect_timeout?,
            read_timeout: read_timeout?,
            write_timeout: write_timeout?,
            idle_timeout: idle_timeout?,
            retries: retries?,
            prefer_region: prefer_region?,
            predictive: predictive?,
            scale: scale?,
            health_check: health_check?,
            outlier_detection: outlier_detection?,
            panic_threshold: panic_threshold?,
            retry_budget: retry_budget?,
            backends: backends?,
        })
    }

    /// `retry_budget:`, defaults for what is left out.
    fn retry_budget(&mut self, raw: Option<&RawRetryBudget>, path: &str) -> Option<RetryBudget> {
        let defaults = RetryBudget::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let ratio = match raw.ratio {
            None => Some(defaults.ratio),
            Some(v) => self.number(v, 0.0, 10.0, &format!("{path}.retry_budget.ratio")),
        };
        let min_per_second = match raw.min_per_second {
            None => Some(defaults.min_per_second),
            Some(n) => self
                .number(n, 0, 10_000, &format!("{path}.retry_budget.min_per_second"))
                .and_then(|n| u32::try_from(n).ok()),
        };
        Some(RetryBudget {
            ratio: ratio?,
            min_per_second: min_per_second?,
        })
    }

    /// `scale:`, defaults for what is left out.
    fn scale(&mut self, raw: Option<&RawScale>, path: &str) -> Option<Scale> {
        let defaults = Scale::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let activate_at = match raw.activate_at {
            None => Some(defaults.activate_at),
            Some(v) if v.is_finite() && v > 0.0 && v <= 10.0 => Some(v),
            Some(v) => {
                self.report(
                    &format!("{path}.scale.activate_at"),
                    format!("expected a share of capacity above 0 and at most 10, found {v}"),
                );
                None
            }
        };
        let min_hold = match &raw.min_hold {
            None => Some(defaults.min_hold),
            Some(text) => self.duration(text, &format!("{path}.scale.min_hold")),
        };
        let hook = match &raw.hook {
            Some(h) if h.trim().is_empty() => {
                self.report(
                    &format!("{path}.scale.hook"),
                    "expected a command, found an empty string",
                );
                None
            }
            h => Some(h.clone()),
        };
        Some(Scale {
            activate_at: activate_at?,
            min_hold: min_hold?,
            hook: hook?,
        })
    }

    /// `predictive:` weights, defaults for what is left out.
    fn predictive(&mut self, raw: Option<&RawPredictive>, path: &str) -> Option<PredictiveWeights> {
        let defaults = PredictiveWeights::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let mut ok = true;
        let mut take =
            |value: Option<f64>, key: &str, default: f64, min: f64, max: f64, open: bool| {
                let Some(v) = value else { return default };
                let inside = if open {
                    v > min && v < max
                } else {
                    v >= min && v <= max
                };
                if !v.is_finite() || !inside {
                    let range = if open { "between" } else { "from" };
                    let and = if open { "and" } else { "to" };
                    self.report(
                        &format!("{path}.predictive.{key}"),
                        format!("expected a number {range} {min} {and} {max}, found {v}"),
                    );
                    ok = false;
                }
                v
            };
        let weights = PredictiveWeights {
            load_weight: take(
                raw.load_weight,
                "load_weight",
                defaults.load_weight,
                0.0,
                100.0,
                false,
            ),
            cost_weight: take(
                raw.cost_weight,
                "cost_weight",
                defaults.cost_weight,
                0.0,
                100.0,
                false,
            ),
            overload_threshold: take(
                raw.overload_threshold,
                "overload_threshold",
                defaults.overload_threshold,
                0.0,
                1.0,
                true,
            ),
        };
        ok.then_some(weights)
    }

    /// A timeout: a duration greater than zero.
    pub(super) fn timeout(
        &mut self,
        text: Option<&str>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        let duration = self.duration(text, path)?;
        if duration.is_zero() {
            self.report(
                path,
                format!(
                    "expected a timeout greater than zero, found {}",
                    quoted(text)
                ),
            );
            return None;
        }
        Some(duration)
    }

    /// `backends:` of the upstream at `path`: at least one, addresses unique.
    fn backends(
        &mut self,
        raw: Option<Vec<RawBackend>>,
        path: &str,
        tunnels: &TunnelNames,
    ) -> Option<Vec<Backend>> {
        let why = "an upstream needs at least one backend";
        let raw = self.non_empty_list(raw, &format!("{path}.backends"), why, "backend")?;
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        let any_standby = raw.iter().any(|b| b.standby == Some(true));
        let mut built = Some(Vec::with_capacity(raw.len()));
        for (j, backend) in raw.into_iter().enumerate() {
            let backend_path = format!("{path}.backends[{j}]");
            let addr = self.backend_addr(backend.addr.as_deref(), &backend_path);
            if let Some(addr) = addr {
                if let Some(&first) = seen.get(&addr) {
                    self.report(
                        &format!("{backend_path}.addr"),
                        format!("duplicate backend {addr}; backends[{first}] has it too"),
                    );
                } else {
                    seen.insert(addr, j);
                }
            }
            let weight = match backend.weight {
                None => Some(defaults::WEIGHT),
                Some(n) => self
                    .number(n, 1, 256, &format!("{backend_path}.weight"))
                    .and_then(|n| u32::try_from(n).ok()),
            };
            let cost = match backend.cost {
                None => Some(0.0),
                Some(c) => self.number(c, 0.0, 100.0, &format!("{backend_path}.cost")),
            };
            let capacity = match backend.capacity {
                None => Some(None),
                Some(n) => self
                    .number(n, 1, 1_000_000, &format!("{backend_path}.capacity"))
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some),
            };
            let standby = backend.standby.unwrap_or(false);
            if standby && backend.capacity.is_none() {
                self.report(
                    &format!("{backend_path}.standby"),
                    "a standby backend needs a `capacity` (concurrent requests) so augur can tell when it is needed",
                );
            }
            if any_standby && !standby && backend.capacity.is_none() {
                // Planning compares demand with the capacity serving: without this backend's
                // share it could not plan at all, and the standby backends would never wake.
                self.report(
                    &backend_path,
                    "missing required key `capacity`; an upstream with standby backends needs \
                     the capacity (concurrent requests) of every backend",
                );
            }
            let warmup = match &backend.warmup {
                None => Some(Duration::from_secs(10)),
                Some(text) => self.duration_within(
                    text,
                    &format!("{backend_path}.warmup"),
                    Duration::ZERO,
                    Duration::from_secs(3600),
                ),
            };
            let region = match backend.region {
                Some(r) if r.trim().is_empty() => {
                    self.report(
                        &format!("{backend_path}.region"),
                        "expected a region name, found an empty string",
                    );
                    None
                }
                r => Some(r),
            };
            let via = match backend.via.as_deref() {
                None => Some(None),
                Some(name) => self.via(name, addr, &backend_path, tunnels).map(Some),
            };
            let extra = capacity.zip(warmup).zip(via);
            built = built
                .zip(addr.zip(weight))
                .zip(cost.zip(region))
                .zip(extra)
                .map(
                    |(((mut all, (addr, weight)), (cost, region)), ((capacity, warmup), via))| {
                        all.push(Backend {
                            addr,
                            weight,
                            region,
                            cost,
                            capacity,
                            standby,
                            warmup,
                            via,
                        });
                        all
                    },
                );
        }
        built
    }

    /// A backend's `addr`: an `IP:PORT` with a non-zero port.
    fn backend_addr(&mut self, text: Option<&str>, path: &str) -> Option<SocketAddr> {
        let addr_path = format!("{path}.addr");
        let addr = self.required(text, path, "addr")?;
        self.destination(addr, &addr_path)
    }
}
