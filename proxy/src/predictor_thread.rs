//! The predictor thread: every tick it drains the recorder, updates the models, plans standby
//! capacity, and publishes the next snapshot (and the figures `/status` and `/metrics` show)
//! through `ArcSwap`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use augur_predictor::{
    finish_tick, Decision, DemandEvent, PlannedUpstream, Predictor, PredictorSettings, Scaling,
    StandbyPlanning,
};
use serde_json::json;

use crate::clock;
use crate::feedback::Feedback;
use crate::feedback::PredictorView;
use crate::peers::Peers;
use crate::routing::Routing;
use crate::runtime::Runtime;
use crate::scale_hook::{HookCall, Hooks};
use crate::services::{Service, Stop};

/// Test-only fault injection: `AUGUR_TEST_PANIC=predictor:N` makes the predictor panic once,
/// right after publishing its N-th snapshot, so that the end-to-end tests can watch it being
/// restarted. Read once at start; nothing else sets or reads it.
const TEST_PANIC: &str = "AUGUR_TEST_PANIC";

/// A snapshot older than this many ticks is flagged stale in `/status`.
pub const STALE_TICKS: u32 = 10;

/// Starts the predictor service with the config's settings, and the scale hook service it
/// sends standby transitions to; returns both (predictor first).
pub fn spawn(
    routing: Arc<Routing>,
    feedback: Arc<Feedback>,
    config: &augur_config::Predictor,
) -> std::io::Result<(Service, Service)> {
    let settings = PredictorSettings {
        tick: config.tick,
        horizon: config.horizon,
        lead: config.lead,
        ..PredictorSettings::default()
    };
    let (hooks, hook_service) = crate::scale_hook::spawn()?;
    let mut panic_after = injected_panic();
    // Standby planning's state outlives a restart (the models start over).
    let mut standby = Standby {
        planning: StandbyPlanning::new(),
        hooks,
    };
    let predictor = Service::start("predictor", move |stop| {
        run(
            &routing,
            &feedback,
            settings,
            &mut standby,
            stop,
            &mut panic_after,
        );
        Ok(())
    })?;
    Ok((predictor, hook_service))
}

/// The tick after which `AUGUR_TEST_PANIC=predictor:N` asks for a panic (tests only).
fn injected_panic() -> Option<u64> {
    let value = std::env::var(TEST_PANIC).ok()?;
    let n = value.strip_prefix("predictor:")?.parse().ok()?;
    tracing::warn!(%value, "{TEST_PANIC} is set: the predictor will panic (test-only fault injection)");
    Some(n)
}

/// Standby planning's state, and where its decisions go.
struct Standby {
    planning: StandbyPlanning,
    /// The scale hook service.
    hooks: Hooks,
}

fn run(
    routing: &Routing,
    feedback: &Feedback,
    settings: PredictorSettings,
    standby: &mut Standby,
    stop: &Stop,
    panic_after: &mut Option<u64>,
) {
    let mut predictor = Predictor::new(settings);
    // A restart starts new models, but the snapshot version and the tick count carry on from
    // what the last run published: they only ever go up (dashboards and alerts rely on it).
    let (base_version, base_ticks) = (
        routing.snapshot.load().version,
        feedback.predictor_view.load().ticks,
    );
    let mut next = Instant::now() + settings.tick;
    loop {
        // A fixed-rate ticker: the models take one step per tick.
        if stop.sleep(next.saturating_duration_since(Instant::now())) {
            return;
        }
        next += settings.tick;
        let started = Instant::now();
        let ids = routing.registry.ids();
        for &id in &ids {
            predictor.track(id);
        }
        while let Some(observation) = feedback.recorder.pop() {
            predictor.observe(&observation);
        }
        let now = clock::now_nanos();
        let rt = routing.runtime.load_full();
        standby.planning.set_events(events(feedback, &rt, now));
        let upstreams = planned(&rt, &feedback.peers);
        let (mut snapshot, step) = finish_tick(
            &mut predictor,
            &mut standby.planning,
            now,
            &upstreams,
            settings.horizon.as_nanos() as u64,
        );
        snapshot.version += base_version;
        announce(&standby.hooks, &rt, &step.decisions);
        let (pools, concurrency) = (step.pools, step.concurrency);
        routing.snapshot.store(Arc::new(snapshot));
        let reports = (0..ids.len() as u32)
            .map(|id| predictor.report(id))
            .collect();
        feedback.predictor_view.store(Arc::new(PredictorView {
            reports,
            pools,
            concurrency,
            ticks: base_ticks + predictor.ticks(),
            last_tick: started.elapsed(),
        }));
        if *panic_after == Some(predictor.ticks()) {
            *panic_after = None;
            panic!("{TEST_PANIC}: injected predictor panic");
        }
        // After a long stall (suspended process), do not try to catch up tick by tick.
        if next < Instant::now() {
            next = Instant::now() + settings.tick;
        }
    }
}

/// The config's events and those announced through `POST /events`, on the predictor clock.
fn events(feedback: &Feedback, rt: &Runtime, now_nanos: u64) -> Vec<DemandEvent> {
    let wall = SystemTime::now();
    let to_nanos = |t: SystemTime| match t.duration_since(wall) {
        Ok(ahead) => now_nanos.saturating_add(ahead.as_nanos() as u64),
        Err(behind) => now_nanos.saturating_sub(behind.duration().as_nanos() as u64),
    };
    let announced = feedback
        .events
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
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

/// Every upstream as standby planning and the finished snapshot see it.
fn planned<'a>(rt: &'a Runtime, peers: &Peers) -> Vec<PlannedUpstream<'a>> {
    rt.config
        .upstreams
        .iter()
        .zip(rt.upstreams.iter())
        .map(|(config, table)| PlannedUpstream {
            name: &table.name,
            members: table.members(),
            scaling: Scaling {
                activate_at: config.scale.activate_at,
                min_hold_nanos: config.scale.min_hold.as_nanos() as u64,
            },
            peers: peers.concurrency(&table.name),
        })
        .collect()
}

/// Logs standby planning's decisions and hands them to the scale hook.
fn announce(hooks: &Hooks, rt: &Runtime, decisions: &[Decision]) {
    for d in decisions {
        let (t, upstream) = (&d.transition, &rt.config.upstreams[d.upstream]);
        let backend = &rt.upstreams[d.upstream].backends[d.member].label;
        let action = if t.wake { "activate" } else { "deactivate" };
        tracing::info!(upstream = %t.upstream, %backend, action, demand = t.demand, active_capacity = t.active_capacity, "standby capacity change");
        if let Some(command) = &upstream.scale.hook {
            let warmup = rt.upstreams[d.upstream].backends[d.member]
                .member
                .warmup_nanos;
            let payload = json!({
                "action": action,
                "upstream": t.upstream,
                "backend": backend,
                "predicted_demand": t.demand,
                "active_capacity": t.active_capacity,
                "warmup_seconds": Duration::from_nanos(warmup).as_secs_f64(),
            })
            .to_string();
            hooks.call(HookCall {
                command: command.clone(),
                payload,
            });
        }
    }
}
