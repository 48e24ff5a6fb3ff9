//! `GET /metrics`: every family of the process in Prometheus text, read at scrape time from
//! the counters and snapshots the request path and background work keep. Health, segment and
//! tunnel families are defined beside the figures they read and written from here, in this
//! order (dashboards and tests rely on the names, types, help texts and labels, not the order).

use std::sync::atomic::Ordering;

use augur_predictor::{BackendReport, Forecast, LiveFigures, PoolReport, STATUS_CLASSES};

use super::backends;
use crate::exposition::{Exposition, Family, Number};
use crate::runtime::Runtime;
use crate::state::Shared;

/// Label names of a per-backend family.
const BACKEND: [&str; 2] = ["upstream", "backend"];

const LISTENER_REQUESTS: Family<2> = Family::counter(
    "augur_listener_requests_total",
    "Requests (HTTP) or sessions (TCP) completed, by status class.",
    ["listener", "class"],
);
const LISTENER_UNROUTED: Family<1> = Family::counter(
    "augur_listener_unrouted_total",
    "HTTP requests that matched no route.",
    ["listener"],
);
const BACKEND_REQUESTS: Family<3> = Family::counter(
    "augur_backend_requests_total",
    "Requests completed by a backend, by status class.",
    ["upstream", "backend", "class"],
);

/// A backend's figure from its live counters.
type LiveFigure = fn(&LiveFigures) -> u64;

const BACKEND_LIVE: [(Family<2>, LiveFigure); 3] = [
    (
        Family::gauge(
            "augur_backend_in_flight",
            "Requests in flight to a backend.",
            BACKEND,
        ),
        |f| f.in_flight,
    ),
    (
        Family::counter(
            "augur_backend_errors_total",
            "Requests to a backend that ended in an error.",
            BACKEND,
        ),
        |f| f.errors,
    ),
    (
        Family::counter(
            "augur_backend_connect_failures_total",
            "Failed connection attempts to a backend.",
            BACKEND,
        ),
        |f| f.connect_failures,
    ),
];

const UPSTREAM_RETRIES: Family<1> = Family::counter(
    "augur_upstream_retries_total",
    "Failed attempts (connect failures, unanswered idempotent requests) retried on another backend.",
    ["upstream"],
);
const UPSTREAM_NO_BACKEND: Family<1> = Family::counter(
    "augur_upstream_no_backend_total",
    "Requests for which no backend was left to try.",
    ["upstream"],
);
const UPSTREAM_DURATION: Family<1> = Family::histogram(
    "augur_upstream_request_duration_seconds",
    "Request duration through an upstream.",
    ["upstream"],
);

/// A backend's figure from the predictor's snapshot and last report (none: no sample).
type PredictorFigure = fn(&Forecast, Option<&BackendReport>) -> Option<f64>;

const BACKEND_PREDICTED: [(Family<2>, PredictorFigure); 7] = [
    (
        Family::gauge(
            "augur_backend_predicted_latency_ms",
            "Latency the predictor expects over its lead time.",
            BACKEND,
        ),
        |f, _| Some(f.latency_ms),
    ),
    (
        Family::gauge(
            "augur_backend_observed_latency_ms",
            "Latency observed in the predictor's last tick with traffic.",
            BACKEND,
        ),
        |f, _| Some(f.observed_latency_ms),
    ),
    (
        Family::gauge(
            "augur_backend_predicted_utilization",
            "Utilisation the predictor expects over its horizon (1 = capacity).",
            BACKEND,
        ),
        |f, _| Some(f.utilization),
    ),
    (
        Family::gauge(
            "augur_backend_anomaly_penalty",
            "Latency multiplier of a backend flagged anomalous (1 = none).",
            BACKEND,
        ),
        |f, _| Some(f.anomaly_penalty),
    ),
    (
        Family::gauge(
            "augur_backend_forecast_mae_ms",
            "Mean absolute error of the latency forecast made one horizon ago.",
            BACKEND,
        ),
        |_, r| r.and_then(|r| r.mae_ms),
    ),
    (
        Family::gauge(
            "augur_backend_forecast_mape",
            "Mean absolute percentage error (fraction) of the same forecast.",
            BACKEND,
        ),
        |_, r| r.and_then(|r| r.mape),
    ),
    (
        Family::counter(
            "augur_backend_anomalies_total",
            "Forecast errors flagged as anomalies.",
            BACKEND,
        ),
        |_, r| r.map(|r| r.anomalies as f64),
    ),
];

/// An upstream's figure from the standby planner's pool report.
type PoolFigure = fn(&PoolReport) -> Number;

const UPSTREAM_POOL: [(Family<1>, PoolFigure); 3] = [
    (
        Family::gauge(
            "augur_upstream_predicted_demand",
            "Concurrent requests forecast over the horizon (upstreams with standby planning).",
            ["upstream"],
        ),
        |p| p.demand.into(),
    ),
    (
        Family::gauge(
            "augur_upstream_active_capacity",
            "Concurrent requests the serving and woken backends can take.",
            ["upstream"],
        ),
        |p| p.active_capacity.into(),
    ),
    (
        Family::gauge(
            "augur_upstream_demand_exceeds_capacity",
            "1 when forecast demand exceeds even the capacity with every standby backend.",
            ["upstream"],
        ),
        |p| p.demand_exceeds_capacity.into(),
    ),
];

/// A process-wide figure.
type ProcessFigure = fn(&Shared, &Runtime) -> Number;

const PROCESS: [(Family<0>, ProcessFigure); 8] = [
    (
        Family::gauge(
            "augur_predictor_snapshot_version",
            "Version of the newest snapshot.",
            [],
        ),
        |s, _| s.snapshot.load().version.into(),
    ),
    (
        Family::gauge(
            "augur_predictor_snapshot_age_seconds",
            "Age of the newest snapshot.",
            [],
        ),
        |s, _| {
            let built = s.snapshot.load().built_at_nanos;
            (crate::clock::now_nanos().saturating_sub(built) as f64 / 1e9).into()
        },
    ),
    (
        Family::gauge(
            "augur_predictor_tick_seconds",
            "Duration of the last predictor tick.",
            [],
        ),
        |s, _| s.predictor_view.load().last_tick.as_secs_f64().into(),
    ),
    (
        Family::counter(
            "augur_predictor_observations_total",
            "Observations handed to the predictor.",
            [],
        ),
        |s, _| s.recorder.pushed().into(),
    ),
    (
        Family::counter(
            "augur_predictor_observations_dropped_total",
            "Observations dropped because the predictor's queue was full.",
            [],
        ),
        |s, _| s.recorder.dropped().into(),
    ),
    (
        Family::counter(
            "augur_load_reports_invalid_total",
            "Backend load report headers that did not parse.",
            [],
        ),
        |s, _| s.bad_load_reports.load(Ordering::Relaxed).into(),
    ),
    (
        Family::gauge(
            "augur_in_flight",
            "Requests and TCP sessions in progress.",
            [],
        ),
        |s, _| s.in_flight.load(Ordering::Relaxed).into(),
    ),
    (
        Family::gauge(
            "augur_connections",
            "Downstream HTTP connections open, idle ones included.",
            [],
        ),
        |s, _| s.connections.load(Ordering::Relaxed).into(),
    ),
];

const RELOADS: Family<1> = Family::counter(
    "augur_reloads_total",
    "Config reloads by outcome.",
    ["outcome"],
);
const CONFIG_GENERATION: Family<0> = Family::gauge(
    "augur_config_generation",
    "Generation of the running config (1 at start).",
    [],
);
const ACCESS_LOG_DROPPED: Family<0> = Family::counter(
    "augur_access_log_dropped_total",
    "Access log lines dropped because the writer was behind.",
    [],
);

/// The `/metrics` document.
pub fn metrics(shared: &Shared) -> String {
    let rt = shared.runtime.load();
    let mut doc = Exposition::new();
    traffic(&mut doc, &rt);
    crate::health_report::metrics(&mut doc, &rt);
    doc.family(&UPSTREAM_DURATION, |s| {
        for u in &rt.upstreams {
            s.histogram(
                [&u.name],
                &u.stats.latency.buckets(),
                u.stats.latency.sum_seconds(),
            );
        }
    });
    predictor(&mut doc, shared, &rt);
    for (family, figure) in &PROCESS {
        doc.family(family, |s| s.sample([], figure(shared, &rt)));
    }
    doc.family(&RELOADS, |s| {
        s.sample(["ok"], shared.reloads_ok.load(Ordering::Relaxed));
        s.sample(["failed"], shared.reloads_failed.load(Ordering::Relaxed));
    });
    doc.family(&CONFIG_GENERATION, |s| {
        s.sample([], rt.version.generation);
    });
    crate::segment_report::metrics(&mut doc, &rt);
    shared.tunnels.metrics(&mut doc);
    if let Some(log) = &shared.access_log {
        doc.family(&ACCESS_LOG_DROPPED, |s| {
            s.sample([], log.dropped.load(Ordering::Relaxed));
        });
    }
    doc.finish()
}

/// Requests through listeners, backends and upstreams.
fn traffic(doc: &mut Exposition, rt: &Runtime) {
    doc.family(&LISTENER_REQUESTS, |s| {
        for l in &rt.listeners {
            for (class, n) in STATUS_CLASSES.iter().zip(&l.stats.by_class) {
                s.sample([&l.name, class], n.load(Ordering::Relaxed));
            }
        }
    });
    doc.family(&LISTENER_UNROUTED, |s| {
        for l in &rt.listeners {
            s.sample([&l.name], l.stats.unrouted.load(Ordering::Relaxed));
        }
    });
    doc.family(&BACKEND_REQUESTS, |s| {
        for (u, b, m) in backends(rt) {
            for (class, n) in STATUS_CLASSES.iter().zip(m.live.figures().by_class) {
                s.sample([&u.name, &b.label, class], n);
            }
        }
    });
    for (family, figure) in &BACKEND_LIVE {
        doc.family(family, |s| {
            for (u, b, m) in backends(rt) {
                s.sample([&u.name, &b.label], figure(&m.live.figures()));
            }
        });
    }
    doc.family(&UPSTREAM_RETRIES, |s| {
        for u in &rt.upstreams {
            s.sample([&u.name], u.stats.retries.load(Ordering::Relaxed));
        }
    });
    doc.family(&UPSTREAM_NO_BACKEND, |s| {
        for u in &rt.upstreams {
            s.sample([&u.name], u.stats.no_backend.load(Ordering::Relaxed));
        }
    });
}

/// The predictor's view of each backend and of each upstream with standby planning.
fn predictor(doc: &mut Exposition, shared: &Shared, rt: &Runtime) {
    let snapshot = shared.snapshot.load();
    let view = shared.predictor_view.load();
    for (family, figure) in &BACKEND_PREDICTED {
        doc.family(family, |s| {
            for (u, b, m) in backends(rt) {
                let report = view.reports.get(m.id as usize).and_then(|r| r.as_ref());
                // A figure not known yet (or not finite) is left out rather than guessed.
                if let Some(v) = figure(&snapshot.get(m.id), report).filter(|v| v.is_finite()) {
                    s.sample([&u.name, &b.label], v);
                }
            }
        });
    }
    for (family, figure) in &UPSTREAM_POOL {
        doc.family(family, |s| {
            for p in &view.pools {
                s.sample([&p.upstream], figure(p));
            }
        });
    }
}
