//! The health thread: runs active checks off the request path and sweeps ejections.
//!
//! Every [`SWEEP`] it ends ejections whose time is up, takes backends behind a down tunnel
//! out (and back), brings back backends whose upstream no longer has checks, recounts each upstream's ejected share and panic state, and starts
//! the checks that are due. A backend's checks are spaced by the upstream's `interval`, each
//! jittered by up to 10% so that checks of many backends spread out instead of firing
//! together; the first check of a backend lands at a random point of its first interval.
//!
//! State changes are made by `augur_predictor::Health` and logged here (or by the request
//! path, for ejections) exactly once, through `UpstreamTable::log_change`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use augur_config::{CheckKind, HealthCheck};
use augur_predictor::{BackendId, Failure, Live, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::response::parse_head;
use crate::client::Request;
use crate::clock;
use crate::routing::Routing;
use crate::runtime::{Backend, Runtime};
use crate::services::{self, Service};

/// How often ejections are swept and due checks started.
pub const SWEEP: Duration = Duration::from_millis(50);

/// The longest response head a check reads.
const HEAD_MAX: usize = 16 << 10;

/// Starts the health service (its own single-threaded runtime, apart from Pingora's; a
/// restart starts a new one, and checks that were under way are dropped with the old).
pub fn spawn(routing: Arc<Routing>) -> std::io::Result<Service> {
    Service::start("health", move |stop| {
        let rt = services::runtime()?;
        services::until_stopped(&rt, stop, run(Arc::clone(&routing)));
        Ok(())
    })
}

async fn run(routing: Arc<Routing>) {
    let rng = Rng::new(clock::now_nanos() | 1);
    // When each backend's next check is due (ns), by stable identity.
    let mut due: HashMap<BackendId, u64> = HashMap::new();
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rt = routing.runtime.load_full();
        let now = clock::now_nanos();
        for (u, upstream) in rt.upstreams.iter().enumerate() {
            for (b, entry) in upstream.backends.iter().enumerate() {
                let member = &entry.member;
                let health = &member.live.health;
                if let Some(change) = health.sweep(now, &upstream.ejection, &upstream.health) {
                    upstream.log_change(entry, &change);
                }
                // A backend behind a down tunnel is out at once (no request or check has to
                // fail first) and back through slow start when the tunnel is, or when a
                // reload no longer sends it through one.
                let path_up = entry.via.as_ref().is_none_or(|tunnel| tunnel.reachable());
                if let Some(change) = health.set_path(path_up, now, &upstream.health) {
                    upstream.log_change(entry, &change);
                }
                let Some(check) = &upstream.health_check else {
                    if let Some(change) = health.reset_checks(now) {
                        upstream.log_change(entry, &change);
                    }
                    continue;
                };
                if !path_up {
                    // Nothing to probe: checks resume when the path is back.
                    continue;
                }
                let interval = check.interval.as_nanos() as u64;
                let next = due
                    .entry(member.id)
                    .or_insert_with(|| now + rng.next_u64() % interval.max(1));
                if *next > now {
                    continue;
                }
                // 0.9 to 1.1 times the interval.
                let jitter = rng.next_u64() % (interval / 5).max(1);
                *next = now + interval - interval / 10 + jitter;
                tokio::spawn(check_once(
                    Arc::clone(&rt),
                    u,
                    b,
                    check.clone(),
                    Arc::clone(&member.live),
                ));
            }
            upstream.recount_health();
        }
    }
}

/// Runs one check of a backend of upstream `u` and records it.
async fn check_once(rt: Arc<Runtime>, u: usize, b: usize, check: HealthCheck, live: Arc<Live>) {
    let entry = &rt.upstreams[u].backends[b];
    let failure =
        match tokio::time::timeout(check.timeout, probe(&check.kind, entry, check.timeout)).await {
            Ok(result) => result.err(),
            Err(_) => Some(Failure::Timeout),
        };
    let upstream = &rt.upstreams[u];
    let now = clock::now_nanos();
    let change = live
        .health
        .record_check(failure, now, check.rise, check.fall, &upstream.health);
    if let Some(change) = change {
        upstream.log_change(entry, &change);
        upstream.recount_health();
    }
}

/// One probe: a TCP connect, or an HTTP/1.1 `GET` whose status must be in `expect`. Only
/// the head is read: the status decides, whatever the body.
async fn probe(kind: &CheckKind, entry: &Backend, timeout: Duration) -> Result<(), Failure> {
    let mut conn = entry.dial(timeout).await.map_err(|_| Failure::Connect)?;
    let CheckKind::Http { path, expect } = kind else {
        return Ok(());
    };
    let request = Request::get(path).user_agent("augur-health-check");
    conn.write_all(&request.encode(entry.addr, true))
        .await
        .map_err(|_| Failure::Reset)?;
    let mut buf = Vec::new();
    let head = loop {
        match parse_head(&buf, HEAD_MAX) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(_) => return Err(Failure::Status),
        }
        let had = buf.len();
        buf.resize(had + 4096, 0);
        let n = conn
            .read(&mut buf[had..])
            .await
            .map_err(|_| Failure::Reset)?;
        if n == 0 {
            return Err(Failure::Reset);
        }
        buf.truncate(had + n);
    };
    if expect.contains(head.status) {
        Ok(())
    } else {
        Err(Failure::Status)
    }
}
