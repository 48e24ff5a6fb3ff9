//! The predictor thread: every tick it drains the recorder, updates the models, plans standby
//! capacity, and publishes the next snapshot (and the figures `/status` and `/metrics` show)
//! through `ArcSwap`.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use augur_predictor::{
    BackendReport, CapacityPlanner, DemandEvent, Eligibility, Pool, PoolMember, PoolReport,
    Predictor, PredictorSettings, Snapshot,
};
use serde_json::json;

use crate::clock;
use crate::peers::Peers;
use crate::runtime::Runtime;
use crate::scale_hook::HookCall;
use crate::state::Shared;

/// What the predictor publishes besides the snapshot, for the admin pages.
#[derive(Debug, Default)]
pub struct PredictorView {
    /// Per `BackendId`: what the predictor knows.
    pub reports: Vec<Option<BackendReport>>,
    /// Per upstream with standby planning: demand against capacity.
    pub pools: Vec<PoolReport>,
    /// Per upstream with standby planning: the concurrency it saw in the last tick.
    pub concurrency: Vec<PoolConcurrency>,
    /// Ticks so far.
    pub ticks: u64,
    /// How long the last tick took.
    pub last_tick: Duration,
}

/// The concurrency standby planning saw on one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConcurrency {
    /// Upstream name.
    pub upstream: String,
    /// Requests in flight through this instance to the serving members, this tick.
    pub own: f64,
    /// The same averaged over the last second (what `GET /demand` serves).
    pub own_last_second: f64,
    /// Reported by fresh peers (`predictor.peers`).
    pub peers: f64,
}

/// Starts the predictor thread with the config's settings.
pub fn spawn(shared: Arc<Shared>, config: &augur_config::Predictor) -> std::io::Result<()> {
    let settings = PredictorSettings {
        tick: config.tick,
        horizon: config.horizon,
        lead: config.lead,
        slow_start: config.slow_start,
        ..PredictorSettings::default()
    };
    let hooks = crate::scale_hook::spawn()?;
    std::thread::Builder::new()
        .name("augur-predictor".into())
        .spawn(move || {
            let mut standby = Standby {
                planner: CapacityPlanner::new(),
                hooks,
                recent: HashMap::new(),
            };
            run(&shared, settings, &mut standby)
        })?;
    Ok(())
}

/// Standby planning's state, and where its decisions go.
struct Standby {
    planner: CapacityPlanner,
    /// The scale hook's thread.
    hooks: Sender<HookCall>,
    /// Per planned upstream: this instance's own concurrency over the last second.
    recent: HashMap<String, VecDeque<(u64, f64)>>,
}

fn run(shared: &Shared, settings: PredictorSettings, standby: &mut Standby) {
    let mut predictor = Predictor::new(settings);
    let mut next = Instant::now() + settings.tick;
    loop {
        // A fixed-rate ticker: the models take one step per tick.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += settings.tick;
        let started = Instant::now();
        let ids = shared.registry.ids();
        for &id in &ids {
            predictor.track(id);
        }
        while let Some(observation) = shared.recorder.pop() {
            predictor.observe(&observation);
        }
        let now = clock::now_nanos();
        let rt = shared.runtime.load_full();
        // A backend out of service (down or ejected; picks skip it through its `Health`)
        // comes back through slow start.
        for m in rt.upstreams.iter().flat_map(|u| u.members.iter()) {
            if !m.live.health.serving() {
                predictor.restart_slow_start(m.id);
            }
        }
        let mut snapshot = predictor.tick(now);
        standby.planner.set_events(events(shared, &rt, now));
        let (pools, concurrency) = plan(
            standby,
            &rt,
            &mut snapshot,
            now,
            settings.horizon,
            &shared.peers,
        );
        // Health is part of the snapshot (picks read it live; see `Eligibility::Ejected`).
        for m in rt.upstreams.iter().flat_map(|u| u.members.iter()) {
            if !m.live.health.serving() {
                if let Some(f) = snapshot.backends.get_mut(m.id as usize) {
                    f.eligibility = Eligibility::Ejected;
                }
            }
        }
        shared.snapshot.store(Arc::new(snapshot));
        let reports = (0..ids.len() as u32)
            .map(|id| predictor.report(id))
            .collect();
        shared.predictor_view.store(Arc::new(PredictorView {
            reports,
            pools,
            concurrency,
            ticks: predictor.ticks(),
            last_tick: started.elapsed(),
        }));
        // After a long stall (suspended process), do not try to catch up tick by tick.
        if next < Instant::now() {
            next = Instant::now() + settings.tick;
        }
    }
}

/// The config's events and those announced through `POST /events`, on the predictor clock.
fn events(shared: &Shared, rt: &Runtime, now_nanos: u64) -> Vec<DemandEvent> {
    let wall = SystemTime::now();
    let to_nanos = |t: SystemTime| match t.duration_since(wall) {
        Ok(ahead) => now_nanos.saturating_add(ahead.as_nanos() as u64),
        Err(behind) => now_nanos.saturating_sub(behind.duration().as_nanos() as u64),
    };
    let announced = shared.events.lock().map(|e| e.clone()).unwrap_or_default();
    rt.config
        .events
        .iter()
        .chain(announced.iter())
        .map(|e| DemandEvent {
            upstream: e.upstream.clone(),
            start_nanos: to_nanos(e.start),
            end_nanos: to_nanos(e.end),
            multiplier: e.multiplier,
        })
        .collect()
}

/// Plans every upstream that has standby backends (and capacity on all of its backends),
/// marks standby eligibility in the snapshot, and sends transitions to the hook thread.
fn plan(
    standby: &mut Standby,
    rt: &Runtime,
    snapshot: &mut Snapshot,
    now: u64,
    horizon: Duration,
    peers: &Peers,
) -> (Vec<PoolReport>, Vec<PoolConcurrency>) {
    let mut members_of: Vec<(usize, Vec<PoolMember>)> = Vec::new();
    for (u, upstream) in rt.config.upstreams.iter().enumerate() {
        if !upstream.backends.iter().any(|b| b.standby) {
            continue;
        }
        let members: Option<Vec<PoolMember>> = upstream
            .backends
            .iter()
            .zip(rt.upstreams[u].members.iter())
            .map(|(b, m)| {
                // A backend out of service serves nothing: its capacity is replaced by
                // standby backends like any shortfall.
                let capacity = f64::from(b.capacity?);
                let capacity = if m.live.health.serving() {
                    capacity
                } else {
                    0.0
                };
                Some(PoolMember {
                    id: m.id,
                    capacity,
                    standby: b.standby,
                    warmup_nanos: b.warmup.as_nanos() as u64,
                })
            })
            .collect();
        match members {
            Some(members) => members_of.push((u, members)),
            None => {
                tracing::debug!(upstream = %upstream.name, "standby planning needs `capacity` on every backend")
            }
        }
    }
    let pools: Vec<Pool<'_>> = members_of
        .iter()
        .map(|(u, members)| Pool {
            name: &rt.config.upstreams[*u].name,
            members,
            activate_at: rt.config.upstreams[*u].scale.activate_at,
            min_hold_nanos: rt.config.upstreams[*u].scale.min_hold.as_nanos() as u64,
        })
        .collect();
    let seen = std::cell::RefCell::new(Vec::with_capacity(pools.len()));
    let (transitions, reports) =
        standby
            .planner
            .plan(now, &pools, horizon.as_nanos() as u64, |upstream, ids| {
                // Requests in flight to the serving members (queued at the backend included;
                // a TCP session holds its slot while it lasts).
                let own = rt
                    .upstreams
                    .iter()
                    .find(|u| u.name == upstream)
                    .map_or(0.0, |u| {
                        u.members
                            .iter()
                            .filter(|m| ids.contains(&m.id))
                            .fold(0.0, |sum, m| sum + m.live.in_flight() as f64)
                    });
                let peers = peers.concurrency(upstream);
                seen.borrow_mut().push(PoolConcurrency {
                    upstream: upstream.to_owned(),
                    own,
                    own_last_second: own,
                    peers,
                });
                own + peers
            });
    // What peers poll: this instance's own figure averaged over the last second, not one tick.
    let mut seen = seen.into_inner();
    standby
        .recent
        .retain(|name, _| seen.iter().any(|c| &c.upstream == name));
    for c in &mut seen {
        let recent = standby.recent.entry(c.upstream.clone()).or_default();
        recent.push_back((now, c.own));
        while recent
            .front()
            .is_some_and(|&(t, _)| now.saturating_sub(t) >= 1_000_000_000)
        {
            recent.pop_front();
        }
        c.own_last_second = recent.iter().map(|&(_, v)| v).sum::<f64>() / recent.len() as f64;
    }
    for pool in &pools {
        for m in pool.members.iter().filter(|m| m.standby) {
            if let Some(f) = snapshot.backends.get_mut(m.id as usize) {
                f.eligibility = standby.planner.eligibility(m);
            }
        }
    }
    for t in transitions {
        let (u, members) = members_of
            .iter()
            .find(|(u, _)| rt.config.upstreams[*u].name == t.upstream)
            .expect("a transition comes from a planned pool");
        let index = members.iter().position(|m| m.id == t.backend).unwrap_or(0);
        let upstream = &rt.config.upstreams[*u];
        let backend = upstream.backends[index].addr.to_string();
        let action = if t.wake { "activate" } else { "deactivate" };
        tracing::info!(upstream = %t.upstream, %backend, action, demand = t.demand, active_capacity = t.active_capacity, "standby capacity change");
        if let Some(command) = &upstream.scale.hook {
            let payload = json!({
                "action": action,
                "upstream": t.upstream,
                "backend": backend,
                "predicted_demand": t.demand,
                "active_capacity": t.active_capacity,
                "warmup_seconds": upstream.backends[index].warmup.as_secs_f64(),
            })
            .to_string();
            let _ = standby.hooks.send(HookCall {
                command: command.clone(),
                payload,
            });
        }
    }
    (reports, seen)
}
