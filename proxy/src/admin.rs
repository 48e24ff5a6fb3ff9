//! The admin listener: `GET /status` (JSON), `GET /metrics` (Prometheus text), `GET /demand`
//! (what `predictor.peers` poll), `POST /reload`, `GET /segments/suggest` (learn mode's
//! proposed policy, YAML), `POST /events`, `POST /upstreams/NAME/drain|undrain`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use augur_config::ListenerKind;
use augur_predictor::{Eligibility, STATUS_CLASSES};

use crate::drain::{DrainError, EventError};
use crate::reload::{reload, ReloadError};
use crate::state::Shared;

/// The admin HTTP application.
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// Admin app over the process's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Admin { shared }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (method, path.as_str()) {
            (Method::GET, "/status") => reply(
                StatusCode::OK,
                "application/json",
                status(&self.shared).to_string(),
            ),
            (Method::GET, "/demand") => reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                demand(&self.shared),
            ),
            (Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics(&self.shared),
            ),
            (Method::GET, "/segments/suggest") => reply(
                StatusCode::OK,
                "application/yaml; charset=utf-8",
                self.shared.runtime.load().segments.suggest(),
            ),
            (Method::POST, p) if p.starts_with("/upstreams/") && (p.ends_with("/drain") || p.ends_with("/undrain")) => {
                let on = p.ends_with("/drain");
                let name = p
                    .trim_start_matches("/upstreams/")
                    .trim_end_matches(if on { "/drain" } else { "/undrain" });
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = session.read_request_body().await {
                    if body.len() + chunk.len() > 64 * 1024 {
                        return reply(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "body too large\n".into());
                    }
                    body.extend_from_slice(&chunk);
                }
                match crate::drain::apply(&self.shared, name, &body, on) {
                    Ok(v) => reply(StatusCode::OK, "application/json", v.to_string()),
                    Err(e) => reply(
                        refusal_status(Refusal::Drain(&e)),
                        "application/json",
                        json!({ "error": e.to_string() }).to_string(),
                    ),
                }
            }
            (Method::POST, "/events") => {
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = session.read_request_body().await {
                    if body.len() + chunk.len() > 64 * 1024 {
                        return reply(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "body too large\n".into());
                    }
                    body.extend_from_slice(&chunk);
                }
                match crate::drain::announce(&self.shared, &body) {
                    Ok(v) => reply(StatusCode::OK, "application/json", v.to_string()),
                    Err(e) => reply(
                        refusal_status(Refusal::Event(&e)),
                        "application/json",
                        json!({ "error": e.to_string() }).to_string(),
                    ),
                }
            }
            (Method::POST, "/reload") => {
                let shared = Arc::clone(&self.shared);
                let result = tokio::task::spawn_blocking(move || reload(&shared))
                    .await
                    .unwrap_or_else(|e| Err(ReloadError::Failed(e.to_string())));
                match result {
                    Ok(changes) => reply(
                        StatusCode::OK,
                        "application/json",
                        json!({"ok": true, "changes": changes}).to_string(),
                    ),
                    Err(error) => reply(
                        refusal_status(Refusal::Reload(&error)),
                        "application/json",
                        json!({"ok": false, "error": error.to_string()}).to_string(),
                    ),
                }
            }
            (_, "/status" | "/metrics" | "/demand" | "/reload" | "/segments/suggest") => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n".into(),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found; try GET /status, GET /metrics, GET /demand, GET /segments/suggest, POST /reload, POST /upstreams/NAME/drain\n".into(),
            ),
        }
    }
}

/// A refused drain, event or reload, for [`refusal_status`].
enum Refusal<'a> {
    Drain(&'a DrainError),
    Event(&'a EventError),
    Reload(&'a ReloadError),
}

/// The HTTP status of every refusal of a state-changing request, decided here only: the
/// request is wrong (400), names nothing known (404), or cannot be carried out (422).
fn refusal_status(refusal: Refusal<'_>) -> StatusCode {
    match refusal {
        Refusal::Drain(
            DrainError::Body(_)
            | DrainError::CountAndBackends
            | DrainError::NothingChosen
            | DrainError::UndrainCount,
        )
        | Refusal::Event(
            EventError::Body(_)
            | EventError::Time(_)
            | EventError::Duration(_)
            | EventError::EndOrDuration
            | EventError::EndBeforeStart
            | EventError::Multiplier(_),
        ) => StatusCode::BAD_REQUEST,
        Refusal::Drain(DrainError::UnknownUpstream(_) | DrainError::UnknownBackend { .. })
        | Refusal::Event(EventError::UnknownUpstream(_)) => StatusCode::NOT_FOUND,
        Refusal::Drain(DrainError::WouldLeaveNone { .. })
        | Refusal::Reload(
            ReloadError::NoFile
            | ReloadError::Read { .. }
            | ReloadError::Invalid(_)
            | ReloadError::NeedsNewProcess { .. }
            | ReloadError::Endpoint { .. },
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Reload(ReloadError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    let body = body.into_bytes();
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A backend's state for `/status`: an operator drain first, then the predictor's view.
fn backend_state(shared: &Shared, m: &augur_predictor::Member) -> &'static str {
    match (m.live.is_drained(), m.live.in_flight()) {
        (true, 0) => "drained",
        (true, _) => "draining",
        // Before the predictor's first word on a backend, as picks see it (`PickContext::open`).
        (false, _) => match shared.snapshot.load().backends.get(m.id as usize) {
            Some(f) => f.eligibility.as_str(),
            None if m.standby => Eligibility::Standby.as_str(),
            None => Eligibility::Active.as_str(),
        },
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
fn predicted(shared: &Shared, id: augur_predictor::BackendId) -> Value {
    let snapshot = shared.snapshot.load();
    let view = shared.predictor_view.load();
    let f = snapshot.get(id);
    let mut v = json!({
        "latency_ms": num(f.latency_ms),
        "observed_latency_ms": num(f.observed_latency_ms),
        "utilization": num(f.utilization),
        "anomaly_penalty": num(f.anomaly_penalty),
        "error_rate": num(f.error_rate),
        "warmth": num(f.warmth),
        "eligibility": f.eligibility.as_str(),
    });
    if let Some(Some(r)) = view.reports.get(id as usize) {
        v["rate_per_second"] = num(r.rate);
        v["forecast_mae_ms"] = r.mae_ms.map_or(Value::Null, num);
        v["forecast_mape"] = r.mape.map_or(Value::Null, num);
        v["anomalies"] = json!(r.anomalies);
        v["season_ticks"] = json!(r.period);
        v["model"] = json!(r.model);
    }
    v
}

/// The `/status` document.
pub fn status(shared: &Shared) -> Value {
    let rt = shared.runtime.load();
    let last_reload = shared.last_reload.load();
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
                .zip(u.members.iter())
                .map(|(b, m)| {
                    let f = m.live.figures();
                    json!({
                        "addr": b.label, "weight": m.weight, "cost": m.cost, "local": m.local,
                        "state": backend_state(shared, m),
                        "in_flight": f.in_flight, "requests": f.requests, "errors": f.errors,
                        "connect_failures": f.connect_failures,
                        "health": crate::health_report::backend(m),
                        "predicted": predicted(shared, m.id),
                        "via": b.via.as_ref().map(|t| t.name()),
                    })
                })
                .collect();
            let view = shared.predictor_view.load();
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
                "health": crate::health_report::upstream(u), "backends": backends,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": shared.started.elapsed().as_secs_f64(),
        "draining": shared.draining.load(Ordering::Relaxed),
        "in_flight": shared.in_flight.load(Ordering::Relaxed),
        "connections": shared.connections.load(Ordering::Relaxed),
        "peers": shared.peers.status(),
        "config": {
            "path": shared.config_path.as_ref().map(|p| p.display().to_string()),
            "hash": rt.version.hash,
            "generation": rt.version.generation,
            "loaded_at_unix": unix_secs(rt.version.loaded_at),
        },
        "last_reload": last_reload.as_ref().as_ref().map(|r| json!({
            "at_unix": unix_secs(r.at), "ok": r.ok, "error": r.error, "changes": r.changes,
        })),
        "reloads": {"ok": shared.reloads_ok.load(Ordering::Relaxed), "failed": shared.reloads_failed.load(Ordering::Relaxed)},
        "predictor": predictor_status(shared),
        "segmentation": crate::segment_report::status(&rt),
        "listeners": listeners,
        "upstreams": upstreams,
        "tunnels": shared.tunnels.status(),
    })
}

fn predictor_status(shared: &Shared) -> Value {
    let snapshot = shared.snapshot.load();
    let view = shared.predictor_view.load();
    let rt = shared.runtime.load();
    // Backends under an anomaly penalty now, with how many anomalies each has had.
    let anomalous: Vec<Value> = rt
        .upstreams
        .iter()
        .flat_map(|u| {
            u.backends
                .iter()
                .zip(u.members.iter())
                .map(move |(b, m)| (u, b, m))
        })
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
    let age = crate::clock::now_nanos().saturating_sub(snapshot.built_at_nanos);
    json!({
        "snapshot_version": snapshot.version,
        "snapshot_age_ms": if snapshot.version == 0 { Value::Null } else { num(age as f64 / 1e6) },
        "ticks": view.ticks,
        "last_tick_us": view.last_tick.as_micros() as u64,
        "observations": shared.recorder.pushed(),
        "observations_dropped": shared.recorder.dropped(),
        "invalid_load_reports": shared.bad_load_reports.load(Ordering::Relaxed),
        "anomalous": anomalous,
    })
}

/// `GET /demand`: per upstream with standby planning, the concurrency this instance sees
/// itself (`NAME CONCURRENCY` lines), what peers (`predictor.peers`) poll.
pub fn demand(shared: &Shared) -> String {
    let mut out = String::new();
    for c in &shared.predictor_view.load().concurrency {
        let _ = writeln!(out, "{} {}", c.upstream, c.own_last_second);
    }
    out
}

/// The `/metrics` document in Prometheus text format.
pub fn metrics(shared: &Shared) -> String {
    let rt = shared.runtime.load();
    let mut out = String::with_capacity(8192);
    let _ = writeln!(out, "# HELP augur_listener_requests_total Requests (HTTP) or sessions (TCP) completed, by status class.");
    let _ = writeln!(out, "# TYPE augur_listener_requests_total counter");
    for l in &rt.listeners {
        for (class, n) in STATUS_CLASSES.iter().zip(&l.stats.by_class) {
            let _ = writeln!(
                out,
                "augur_listener_requests_total{{listener=\"{}\",class=\"{class}\"}} {}",
                l.name,
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP augur_listener_unrouted_total HTTP requests that matched no route."
    );
    let _ = writeln!(out, "# TYPE augur_listener_unrouted_total counter");
    for l in &rt.listeners {
        let _ = writeln!(
            out,
            "augur_listener_unrouted_total{{listener=\"{}\"}} {}",
            l.name,
            l.stats.unrouted.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP augur_backend_requests_total Requests completed by a backend, by status class."
    );
    let _ = writeln!(out, "# TYPE augur_backend_requests_total counter");
    for u in &rt.upstreams {
        for (b, m) in u.backends.iter().zip(u.members.iter()) {
            let f = m.live.figures();
            for (class, n) in STATUS_CLASSES.iter().zip(f.by_class) {
                let _ = writeln!(
                    out,
                    "augur_backend_requests_total{{upstream=\"{}\",backend=\"{}\",class=\"{class}\"}} {n}",
                    u.name, b.label
                );
            }
        }
    }
    for (name, help, kind, pick) in [
        (
            "augur_backend_in_flight",
            "Requests in flight to a backend.",
            "gauge",
            0,
        ),
        (
            "augur_backend_errors_total",
            "Requests to a backend that ended in an error.",
            "counter",
            1,
        ),
        (
            "augur_backend_connect_failures_total",
            "Failed connection attempts to a backend.",
            "counter",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for u in &rt.upstreams {
            for (b, m) in u.backends.iter().zip(u.members.iter()) {
                let f = m.live.figures();
                let v = [f.in_flight, f.errors, f.connect_failures][pick];
                let _ = writeln!(
                    out,
                    "{name}{{upstream=\"{}\",backend=\"{}\"}} {v}",
                    u.name, b.label
                );
            }
        }
    }
    for (name, help, pick) in [
        (
            "augur_upstream_retries_total",
            "Failed attempts (connect failures, unanswered idempotent requests) retried on another backend.",
            0,
        ),
        (
            "augur_upstream_no_backend_total",
            "Requests for which no backend was left to try.",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for u in &rt.upstreams {
            let v = [&u.stats.retries, &u.stats.no_backend][pick].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {v}", u.name);
        }
    }
    crate::health_report::write_metrics(&mut out, &rt);
    let _ = writeln!(
        out,
        "# HELP augur_upstream_request_duration_seconds Request duration through an upstream."
    );
    let _ = writeln!(
        out,
        "# TYPE augur_upstream_request_duration_seconds histogram"
    );
    for u in &rt.upstreams {
        u.stats.latency.write_prometheus(
            &mut out,
            "augur_upstream_request_duration_seconds",
            &format!("upstream=\"{}\"", u.name),
        );
    }
    let snapshot = shared.snapshot.load();
    let view = shared.predictor_view.load();
    type Figure =
        fn(&augur_predictor::Forecast, Option<&augur_predictor::BackendReport>) -> Option<f64>;
    let figures: [(&str, &str, &str, Figure); 7] = [
        (
            "augur_backend_predicted_latency_ms",
            "Latency the predictor expects over its lead time.",
            "gauge",
            |f, _| Some(f.latency_ms),
        ),
        (
            "augur_backend_observed_latency_ms",
            "Latency observed in the predictor's last tick with traffic.",
            "gauge",
            |f, _| Some(f.observed_latency_ms),
        ),
        (
            "augur_backend_predicted_utilization",
            "Utilisation the predictor expects over its horizon (1 = capacity).",
            "gauge",
            |f, _| Some(f.utilization),
        ),
        (
            "augur_backend_anomaly_penalty",
            "Latency multiplier of a backend flagged anomalous (1 = none).",
            "gauge",
            |f, _| Some(f.anomaly_penalty),
        ),
        (
            "augur_backend_forecast_mae_ms",
            "Mean absolute error of the latency forecast made one horizon ago.",
            "gauge",
            |_, r| r.and_then(|r| r.mae_ms),
        ),
        (
            "augur_backend_forecast_mape",
            "Mean absolute percentage error (fraction) of the same forecast.",
            "gauge",
            |_, r| r.and_then(|r| r.mape),
        ),
        (
            "augur_backend_anomalies_total",
            "Forecast errors flagged as anomalies.",
            "counter",
            |_, r| r.map(|r| r.anomalies as f64),
        ),
    ];
    for (name, help, kind, figure) in figures {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for u in &rt.upstreams {
            for (b, m) in u.backends.iter().zip(u.members.iter()) {
                let report = view.reports.get(m.id as usize).and_then(|r| r.as_ref());
                if let Some(v) = figure(&snapshot.get(m.id), report).filter(|v| v.is_finite()) {
                    let _ = writeln!(
                        out,
                        "{name}{{upstream=\"{}\",backend=\"{}\"}} {v}",
                        u.name, b.label
                    );
                }
            }
        }
    }
    for (name, help, figure) in [
        (
            "augur_upstream_predicted_demand",
            "Concurrent requests forecast over the horizon (upstreams with standby planning).",
            0,
        ),
        (
            "augur_upstream_active_capacity",
            "Concurrent requests the serving and woken backends can take.",
            1,
        ),
        (
            "augur_upstream_demand_exceeds_capacity",
            "1 when forecast demand exceeds even the capacity with every standby backend.",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for p in &view.pools {
            let v = [
                p.demand,
                p.active_capacity,
                f64::from(u8::from(p.demand_exceeds_capacity)),
            ][figure];
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {v}", p.upstream);
        }
    }
    let age = crate::clock::now_nanos().saturating_sub(snapshot.built_at_nanos) as f64 / 1e9;
    for (name, help, kind, value) in [
        (
            "augur_predictor_snapshot_version",
            "Version of the newest snapshot.",
            "gauge",
            snapshot.version as f64,
        ),
        (
            "augur_predictor_snapshot_age_seconds",
            "Age of the newest snapshot.",
            "gauge",
            age,
        ),
        (
            "augur_predictor_tick_seconds",
            "Duration of the last predictor tick.",
            "gauge",
            view.last_tick.as_secs_f64(),
        ),
        (
            "augur_predictor_observations_total",
            "Observations handed to the predictor.",
            "counter",
            shared.recorder.pushed() as f64,
        ),
        (
            "augur_predictor_observations_dropped_total",
            "Observations dropped because the predictor's queue was full.",
            "counter",
            shared.recorder.dropped() as f64,
        ),
        (
            "augur_load_reports_invalid_total",
            "Backend load report headers that did not parse.",
            "counter",
            shared.bad_load_reports.load(Ordering::Relaxed) as f64,
        ),
        (
            "augur_in_flight",
            "Requests and TCP sessions in progress.",
            "gauge",
            shared.in_flight.load(Ordering::Relaxed) as f64,
        ),
        (
            "augur_connections",
            "Downstream HTTP connections open, idle ones included.",
            "gauge",
            shared.connections.load(Ordering::Relaxed) as f64,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(out, "# HELP augur_reloads_total Config reloads by outcome.");
    let _ = writeln!(out, "# TYPE augur_reloads_total counter");
    let _ = writeln!(
        out,
        "augur_reloads_total{{outcome=\"ok\"}} {}",
        shared.reloads_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "augur_reloads_total{{outcome=\"failed\"}} {}",
        shared.reloads_failed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP augur_config_generation Generation of the running config (1 at start)."
    );
    let _ = writeln!(out, "# TYPE augur_config_generation gauge");
    let _ = writeln!(out, "augur_config_generation {}", rt.version.generation);
    crate::segment_report::metrics(&rt, &mut out);
    shared.tunnels.write_metrics(&mut out);
    if let Some(log) = &shared.access_log {
        let _ = writeln!(out, "# HELP augur_access_log_dropped_total Access log lines dropped because the writer was behind.");
        let _ = writeln!(out, "# TYPE augur_access_log_dropped_total counter");
        let _ = writeln!(
            out,
            "augur_access_log_dropped_total {}",
            log.dropped.load(Ordering::Relaxed)
        );
    }
    out
}
