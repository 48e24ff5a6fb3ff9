//! The JSON side of the admin listener: `GET /status`, and `GET /demand` (what peers poll).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use augur_config::ListenerKind;
use augur_predictor::{Eligibility, STATUS_CLASSES};

use crate::runtime::Runtime;
use crate::services::State;
use crate::state::Shared;

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A backend's state for `/status`: the decision picks make (`augur_predictor::eligibility`),
/// with a drained backend that has nothing left in flight shown as drained.
fn backend_state(shared: &Shared, m: &augur_predictor::Member) -> &'static str {
    match augur_predictor::eligibility(m, &shared.routing.snapshot.load()) {
        Eligibility::Draining if m.live.in_flight() == 0 => "drained",
        e => e.as_str(),
    }
}

/// A float for JSON: `null` when not finite.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The predictor's figures for one backend.
/// `warmth` is the share of its weight slow start lets it take now (what every pick uses).
fn predicted(shared: &Shared, rt: &Runtime, m: &augur_predictor::Member) -> Value {
    let id = m.id;
    let snapshot = shared.routing.snapshot.load();
    let view = shared.feedback.predictor_view.load();
    let f = snapshot.get(id);
    let mut v = json!({
        "latency_ms": num(f.latency_ms),
        "utilization": num(f.utilization),
        "anomaly_penalty": num(f.anomaly_penalty),
        "error_rate": num(f.error_rate),
        "warmth": num(m.live.health.slow_start(crate::clock::now_nanos(), rt.slow_start_nanos)),
        "eligibility": f.eligibility.as_str(),
    });
    if let Some(Some(r)) = view.reports.get(id as usize) {
        v["rate_per_second"] = num(r.rate);
        v["forecast_mae_ms"] = r.mae_ms.map_or(Value::Null, num);
        v["forecast_mape"] = r.mape.map_or(Value::Null, num);
        v["anomalies"] = json!(r.anomalies);
        v["season_ticks"] = json!(r.period);
        v["model"] = json!(r.model);
        // The last tick with traffic's: an avoided backend keeps its last figure, never 0.
        v["observed_latency_ms"] = num(r.observed_ms);
        // How old the latest latency sample is: an avoided backend sends none, so its
        // "observed" figure may be old news (null before any sample).
        v["sample_age_ms"] = r.last_sample_at_nanos.map_or(Value::Null, |at| {
            num(crate::clock::now_nanos().saturating_sub(at) as f64 / 1e6)
        });
    }
    v
}

/// The `/status` document.
pub fn status(shared: &Shared) -> Value {
    let rt = shared.routing.runtime.load();
    let last_reload = shared.lifecycle.last_reload.load();
    let listeners: Vec<Value> = rt
        .config
        .listeners
        .iter()
        .map(|l| {
            let (protocol, routes) = match &l.kind {
                ListenerKind::Http { routes } => ("http", Some(routes)),
                ListenerKind::Https { routes, .. } => ("https", Some(routes)),
                ListenerKind::Tcp { .. } => ("tcp", None),
            };
            let mut v = json!({"name": l.name, "bind": l.bind.to_string(), "protocol": protocol});
            if let Some(routes) = routes {
                v["routes"] = routes
                    .iter()
                    .map(|r| json!({"host": r.host, "path_prefix": r.path_prefix, "upstream": rt.config.upstreams[r.upstream].name}))
                    .collect();
            }
            if let ListenerKind::Tcp { upstream, .. } = l.kind {
                v["upstream"] = json!(rt.config.upstreams[upstream].name);
            }
            if let Some(t) = rt.listeners.iter().find(|t| t.name == l.name) {
                let by_class: serde_json::Map<String, Value> = STATUS_CLASSES
                    .iter()
                    .zip(&t.stats.by_class)
                    .map(|(c, n)| ((*c).to_owned(), json!(n.load(Ordering::Relaxed))))
                    .collect();
                v["requests"] = Value::Object(by_class);
                v["unrouted"] = json!(t.stats.unrouted.load(Ordering::Relaxed));
            }
            v
        })
        .collect();
    let upstreams: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let backends: Vec<Value> = u
                .backends
                .iter()
                .map(|b| {
                    let m = &b.member;
                    let f = m.live.figures();
                    json!({
                        "addr": b.label, "weight": m.weight, "cost": m.cost, "local": m.local,
                        "state": backend_state(shared, m),
                        "in_flight": f.in_flight, "requests": f.requests, "errors": f.errors,
                        "connect_failures": f.connect_failures,
                        "health": super::health::backend(m),
                        "predicted": predicted(shared, &rt, m),
                        "via": b.via.as_ref().map(|t| t.name()),
                    })
                })
                .collect();
            let view = shared.feedback.predictor_view.load();
            let seen = view.concurrency.iter().find(|c| c.upstream == u.name);
            let capacity = view
                .pools
                .iter()
                .find(|p| p.upstream == u.name)
                .map(|p| {
                    json!({
                        "concurrency": seen.map(|c| num(c.own)),
                        "peer_concurrency": seen.map(|c| num(c.peers)),
                        "predicted_demand": num(p.demand),
                        "active_capacity": p.active_capacity,
                        "total_capacity": p.total_capacity,
                        "demand_exceeds_capacity": p.demand_exceeds_capacity,
                    })
                });
            json!({
                "name": u.name, "policy": u.policy.name(), "capacity": capacity, "retries": u.stats.retries.load(Ordering::Relaxed),
                "no_backend": u.stats.no_backend.load(Ordering::Relaxed),
                "health": super::health::upstream(u), "backends": backends,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": shared.lifecycle.started.elapsed().as_secs_f64(),
        "draining": shared.lifecycle.draining.load(Ordering::Relaxed),
        "in_flight": shared.lifecycle.in_flight.load(Ordering::Relaxed),
        "connections": shared.lifecycle.connections.load(Ordering::Relaxed),
        "peers": shared.feedback.peers.status(),
        "services": shared.services.status(),
        "config": {
            "path": shared.lifecycle.config_path.as_ref().map(|p| p.display().to_string()),
            "hash": rt.version.hash,
            "generation": rt.version.generation,
            "loaded_at_unix": unix_secs(rt.version.loaded_at),
        },
        "last_reload": last_reload.as_ref().as_ref().map(|r| json!({
            "at_unix": unix_secs(r.at), "ok": r.ok, "error": r.error, "changes": r.changes,
        })),
        "reloads": {"ok": shared.lifecycle.reloads_ok.load(Ordering::Relaxed), "failed": shared.lifecycle.reloads_failed.load(Ordering::Relaxed)},
        "predictor": predictor_status(shared),
        "segmentation": crate::segment_report::status(&rt),
        "listeners": listeners,
        "upstreams": upstreams,
        "tunnels": shared.routing.tunnels.status(),
    })
}

fn predictor_status(shared: &Shared) -> Value {
    let snapshot = shared.routing.snapshot.load();
    let view = shared.feedback.predictor_view.load();
    let rt = shared.routing.runtime.load();
    // Backends under an anomaly penalty now, with how many anomalies each has had.
    let anomalous: Vec<Value> = super::backends(&rt)
        .filter(|(_, _, m)| snapshot.get(m.id).anomaly_penalty > 1.05)
        .map(|(u, b, m)| {
            let anomalies = view
                .reports
                .get(m.id as usize)
                .and_then(|r| r.as_ref())
                .map(|r| r.anomalies);
            json!({
                "upstream": u.name,
                "backend": b.label,
                "penalty": num(snapshot.get(m.id).anomaly_penalty),
                "anomalies": anomalies,
            })
        })
        .collect();
    // Before the first snapshot this is the time since start: a predictor that never
    // publishes turns stale as well.
    let age = crate::clock::now_nanos().saturating_sub(snapshot.built_at_nanos);
    let stale_after = rt.config.predictor.tick * crate::predictor_thread::STALE_TICKS;
    let service = shared.services.get("predictor");
    json!({
        "running": service.as_ref().is_some_and(|h| h.state() == State::Running),
        "restarts": service.as_ref().map_or(0, |h| h.restarts()),
        "stale": u128::from(age) > stale_after.as_nanos(),
        "snapshot_version": snapshot.version,
        "snapshot_age_ms": if snapshot.version == 0 { Value::Null } else { num(age as f64 / 1e6) },
        "ticks": view.ticks,
        "last_tick_us": view.last_tick.as_micros() as u64,
        "observations": shared.feedback.recorder.pushed(),
        "observations_dropped": shared.feedback.recorder.dropped(),
        "invalid_load_reports": shared.feedback.bad_load_reports.load(Ordering::Relaxed),
        "anomalous": anomalous,
    })
}

/// `GET /demand`: per upstream with standby planning, the concurrency this instance sees
/// itself (`NAME CONCURRENCY` lines), what peers (`predictor.peers`) poll.
pub fn demand(shared: &Shared) -> String {
    let mut out = String::new();
    for c in &shared.feedback.predictor_view.load().concurrency {
        let _ = writeln!(out, "{} {}", c.upstream, c.own_last_second);
    }
    out
}
