//! A small HTTP backend served by augur itself: the three backends of `augur demo`, and a real
//! server process for tests (`augur backend`). It answers every request with one JSON line
//! describing what it received, after an optional delay.
//!
//! Query parameters shape a reply: `delay_ms=N` waits N ms more, `status=N` answers with that
//! status, `size=N` sends N bytes of body instead of the JSON line, `orca=P` reports P %
//! application utilisation in an ORCA `endpoint-load-metrics` header, `orca_bad=1` sends a
//! malformed one.
//!
//! For the loopback routing benchmark a backend can also model a real service: at most
//! `concurrency` requests in service at once (the rest queue), service times drawn from a
//! distribution, a seasonal slowdown and periodic stalls (see [`ServiceModel`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use serde_json::json;
use tokio::sync::Semaphore;

/// One backend: a name to tell replies apart and a base delay before each reply.
pub struct DemoBackend {
    name: String,
    delay: Duration,
    degradation: Option<Degradation>,
    model: ServiceModel,
    /// Service slots when `model.concurrency` is set: a request holds one while in service.
    slots: Option<Semaphore>,
    /// State of the service-time generator (splitmix64).
    rng: AtomicU64,
}

/// How service times are drawn around the mean (`--delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DelayDist {
    /// Always exactly the mean.
    #[default]
    Fixed,
    /// Normal with standard deviation = mean; negative draws are served at once (so the
    /// realised mean is about 1.08 × the nominal one).
    Normal,
    /// Log-normal with mean and standard deviation both = mean (long right tail).
    Lognormal,
}

/// A seasonal slowdown: for `length` of every `period`, starting `phase` into each period,
/// service times are multiplied by `factor`. Cycles are counted from the Unix epoch so that
/// separate backend processes share one calendar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Season {
    /// Cycle length.
    pub period: Duration,
    /// Slow part of each cycle.
    pub length: Duration,
    /// Service-time multiplier while slow.
    pub factor: f64,
    /// Where in the cycle the slow part starts.
    pub phase: Duration,
}

impl Season {
    /// The service-time multiplier at `now` (time since the Unix epoch).
    pub fn factor_at(&self, now: Duration) -> f64 {
        let period = self.period.as_nanos().max(1);
        let into = (now.as_nanos() + period - self.phase.as_nanos() % period) % period;
        if into < self.length.as_nanos() {
            self.factor
        } else {
            1.0
        }
    }
}

/// Periodic stalls: around every `every` (± `jitter`, drawn per stall from `seed`) the backend
/// completes nothing for `length`; requests finishing their service inside a stall are held
/// until it ends (a GC pause, a noisy neighbour, a blocked disk).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// Mean distance between stall starts.
    pub every: Duration,
    /// Largest shift of a stall start away from its slot.
    pub jitter: Duration,
    /// How long each stall lasts.
    pub length: Duration,
    /// Seed of the per-stall jitter (so two backends stall at different moments).
    pub seed: u64,
}

impl Stalls {
    /// Start of stall number `k` (time since the Unix epoch, in ns).
    fn start_ns(&self, k: u128) -> u128 {
        let slot = k * self.every.as_nanos();
        let jitter = self.jitter.as_nanos();
        if jitter == 0 {
            return slot;
        }
        // Uniform in [-jitter, +jitter], a pure function of (seed, k).
        let draw = u128::from(splitmix64(self.seed ^ (k as u64).wrapping_mul(0x9E37_79B9)));
        let shift = draw % (2 * jitter + 1);
        (slot + shift).saturating_sub(jitter)
    }

    /// When `now` (time since the Unix epoch) falls inside a stall, the moment it ends.
    pub fn stalled_until(&self, now: Duration) -> Option<Duration> {
        let every = self.every.as_nanos().max(1);
        let t = now.as_nanos();
        let k = t / every;
        // A stall start can be shifted by up to `jitter` (< every / 2), so only the
        // neighbouring slots can cover `t`.
        for slot in [k.saturating_sub(1), k, k + 1] {
            let start = self.start_ns(slot);
            let end = start + self.length.as_nanos();
            if start <= t && t < end {
                return Some(Duration::from_nanos(u64::try_from(end).unwrap_or(u64::MAX)));
            }
        }
        None
    }
}

/// What shapes a backend's service time beyond the base delay.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceModel {
    /// Most requests in service at once; `None` for no limit.
    pub concurrency: Option<usize>,
    /// Distribution of service times around the base delay.
    pub dist: DelayDist,
    /// Seasonal slowdown.
    pub season: Option<Season>,
    /// Periodic stalls.
    pub stalls: Option<Stalls>,
}

/// One step of splitmix64: a tiny, good-enough generator for service times and jitter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in (0, 1] from 64 random bits.
fn unit(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A service time with the given `mean`, shaped by `dist`, from two uniform draws in (0, 1].
pub fn service_time(mean: Duration, dist: DelayDist, u1: f64, u2: f64) -> Duration {
    if dist == DelayDist::Fixed {
        return mean;
    }
    let m = mean.as_secs_f64();
    // Box-Muller: a standard normal from two uniforms.
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let secs = match dist {
        DelayDist::Fixed => m, // returned above, exactly
        DelayDist::Normal => m + m * z,
        DelayDist::Lognormal => {
            if m <= 0.0 {
                0.0
            } else {
                // Standard deviation = mean: sigma^2 = ln(1 + 1) and mu = ln(m) - sigma^2 / 2.
                let s2 = std::f64::consts::LN_2;
                (m.ln() - s2 / 2.0 + s2.sqrt() * z).exp()
            }
        }
    };
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO)
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// A periodic slowdown: for `length` out of every `period`, replies take `extra` longer
/// (an antagonist sharing the machine, a batch job, a cron).
#[derive(Debug, Clone, Copy)]
pub struct Degradation {
    /// Cycle length.
    pub period: Duration,
    /// Slow part of each cycle (at its end).
    pub length: Duration,
    /// Added delay while slow.
    pub extra: Duration,
    /// Start of the first cycle.
    pub since: std::time::Instant,
}

impl Degradation {
    /// The added delay at `now`.
    pub fn extra_at(&self, now: std::time::Instant) -> Duration {
        let period = self.period.as_nanos().max(1);
        let phase = now.saturating_duration_since(self.since).as_nanos() % period;
        if phase >= period - self.length.as_nanos().min(period) {
            self.extra
        } else {
            Duration::ZERO
        }
    }
}

impl DemoBackend {
    /// A backend called `name` that waits `delay` before answering.
    pub fn new(name: impl Into<String>, delay: Duration) -> Self {
        DemoBackend {
            name: name.into(),
            delay,
            degradation: None,
            model: ServiceModel::default(),
            slots: None,
            rng: AtomicU64::new(0),
        }
    }

    /// The same backend, serving requests as `model` says; `seed` drives its service times.
    pub fn modelled(mut self, model: ServiceModel, seed: u64) -> Self {
        self.slots = model.concurrency.map(Semaphore::new);
        self.model = model;
        self.rng = AtomicU64::new(seed);
        self
    }

    fn next_random(&self) -> u64 {
        splitmix64(self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed))
    }

    /// Serve one request's base part: queue for a slot, take a service time, and hold the
    /// reply through any stall it ends in. The slot is held until then.
    async fn serve(&self) {
        let _slot = match &self.slots {
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        };
        let (u1, u2) = (unit(self.next_random()), unit(self.next_random()));
        let mut delay = service_time(self.delay, self.model.dist, u1, u2);
        if let Some(season) = self.model.season {
            delay = delay.mul_f64(season.factor_at(since_epoch()).max(0.0));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(stalls) = self.model.stalls {
            // A stall can end inside the next one only if stalls overlap; loop regardless.
            while let Some(end) = stalls.stalled_until(since_epoch()) {
                tokio::time::sleep(end.saturating_sub(since_epoch())).await;
            }
        }
    }

    /// The same backend, slowing down periodically.
    pub fn degrading(mut self, degradation: Degradation) -> Self {
        self.degradation = Some(degradation);
        self
    }
}

fn query_param(query: &str, key: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

#[async_trait]
impl ServeHttp for DemoBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body_bytes = 0u64;
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => body_bytes += chunk.len() as u64,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "backend could not read the request body");
                    break;
                }
            }
        }
        let req = session.req_header();
        let query = req.uri.query().unwrap_or("");
        let extra = query_param(query, "delay_ms").map_or(Duration::ZERO, Duration::from_millis);
        let status = query_param(query, "status")
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let body = match query_param(query, "size") {
            Some(size) => vec![b'x'; usize::try_from(size).unwrap_or(0)],
            None => {
                let mut line = json!({
                    "backend": self.name,
                    "method": req.method.as_str(),
                    "path": req.uri.path(),
                    "host": header("host"),
                    "x_forwarded_for": header("x-forwarded-for"),
                    "x_forwarded_proto": header("x-forwarded-proto"),
                    "body_bytes": body_bytes,
                })
                .to_string();
                line.push('\n');
                line.into_bytes()
            }
        };
        let periodic = self
            .degradation
            .map_or(Duration::ZERO, |d| d.extra_at(std::time::Instant::now()));
        self.serve().await;
        let delay = extra + periodic;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut reply = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header("x-backend", self.name.as_str());
        if let Some(percent) = query_param(query, "orca") {
            let load = format!("TEXT application_utilization={}", percent as f64 / 100.0);
            reply = reply.header("endpoint-load-metrics", load);
        }
        if query_param(query, "orca_bad").is_some() {
            reply = reply.header("endpoint-load-metrics", "TEXT cpu_utilization=NaN");
        }
        reply.body(body).unwrap_or_default()
    }
}

/// FNV-1a of a backend's name: a stable per-backend seed.
pub fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs one backend as its own process (`augur backend`) until it is stopped.
pub fn run(
    listen: SocketAddr,
    name: String,
    delay: Duration,
    model: ServiceModel,
) -> anyhow::Result<()> {
    crate::logging::init("warn");
    std::net::TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        upgrade_sock: format!("/tmp/augur_backend_{}.sock", listen.port()),
        pid_file: format!("/tmp/augur_backend_{}.pid", listen.port()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let seed = name_seed(&name);
    let app = DemoBackend::new(name.clone(), delay).modelled(model, seed);
    let mut svc = Service::new(name, app);
    svc.add_tcp(&listen.to_string());
    server.add_service(svc);
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{query_param, service_time, splitmix64, unit, DelayDist, Season, Stalls};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn season_is_slow_from_its_phase_for_its_length() {
        let s = Season {
            period: Duration::from_secs(20),
            length: Duration::from_secs(10),
            factor: 2.5,
            phase: Duration::from_secs(7),
        };
        let at = |secs: u64| s.factor_at(Duration::from_secs(secs));
        assert_eq!(at(0), 1.0);
        assert_eq!(at(6), 1.0);
        assert_eq!(at(7), 2.5);
        assert_eq!(at(16), 2.5);
        assert_eq!(at(17), 1.0);
        assert_eq!(at(27), 2.5);
        // The slow part wraps around the cycle end.
        let late = Season {
            phase: Duration::from_secs(15),
            ..s
        };
        assert_eq!(late.factor_at(Duration::from_secs(3)), 2.5);
        assert_eq!(late.factor_at(Duration::from_secs(6)), 1.0);
    }

    #[test]
    fn stalls_hold_until_their_end_and_stay_within_the_jitter() {
        let s = Stalls {
            every: Duration::from_secs(10),
            jitter: Duration::ZERO,
            length: 200 * MS,
            seed: 1,
        };
        assert_eq!(
            s.stalled_until(Duration::from_secs(20) + 50 * MS),
            Some(Duration::from_secs(20) + 200 * MS)
        );
        assert_eq!(s.stalled_until(Duration::from_secs(20) + 200 * MS), None);
        assert_eq!(s.stalled_until(Duration::from_secs(25)), None);

        let jittery = Stalls {
            jitter: Duration::from_secs(1),
            ..s
        };
        // Exactly one stall of 200 ms per 10 s slot, starting within ±1 s of the slot.
        for k in 5..50u64 {
            let slot = Duration::from_secs(10 * k);
            let stalled: Vec<Duration> = (0..2400u32)
                .map(|i| slot - Duration::from_secs(1) - MS + i * MS)
                .filter(|t| jittery.stalled_until(*t).is_some())
                .collect();
            assert!(
                (199..=201).contains(&stalled.len()),
                "slot {k}: {}",
                stalled.len()
            );
            let end = jittery.stalled_until(stalled[0]).expect("stalled");
            assert!(end > stalled[0] && end <= stalled[0] + 200 * MS);
        }
    }

    #[test]
    fn service_times_have_the_requested_mean() {
        let mean = Duration::from_millis(50);
        let mut state = 7u64;
        let mut draw = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            unit(splitmix64(state))
        };
        for (dist, lo, hi) in [
            (DelayDist::Fixed, 50.0, 50.0),
            // Negative normal draws are clamped to zero: E[max(X, 0)] = 1.083 × mean.
            (DelayDist::Normal, 52.5, 55.8),
            (DelayDist::Lognormal, 48.5, 51.5),
        ] {
            let n = 40_000;
            let total: f64 = (0..n)
                .map(|_| service_time(mean, dist, draw(), draw()).as_secs_f64() * 1e3)
                .sum();
            let avg = total / n as f64;
            assert!(avg >= lo - 1e-9 && avg <= hi + 1e-9, "{dist:?}: mean {avg}");
        }
    }

    #[test]
    fn degradation_is_on_at_the_end_of_each_cycle() {
        let since = std::time::Instant::now();
        let d = super::Degradation {
            period: Duration::from_secs(30),
            length: Duration::from_secs(10),
            extra: Duration::from_millis(60),
            since,
        };
        let at = |s: u64| d.extra_at(since + Duration::from_secs(s));
        assert_eq!(at(5), Duration::ZERO);
        assert_eq!(at(25), Duration::from_millis(60));
        assert_eq!(at(35), Duration::ZERO);
        assert_eq!(at(59), Duration::from_millis(60));
    }

    #[test]
    fn query_parameters_are_found_by_key() {
        assert_eq!(query_param("a=1&delay_ms=25&size=3", "delay_ms"), Some(25));
        assert_eq!(query_param("a=1", "size"), None);
        assert_eq!(query_param("size=x", "size"), None);
    }
}
