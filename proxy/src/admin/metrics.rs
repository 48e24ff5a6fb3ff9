//! `GET /metrics`: every family of the process in Prometheus text, read at scrape time from
//! the counters and snapshots the request path and background work keep. Health, segment and
//! tunnel families are declared beside the figures they read; this module writes them all, in
//! one fixed order.

use std::sync::atomic::{AtomicU64, Ordering};

use augur_predictor::{BackendReport, Forecast, LiveFigures, PoolReport, STATUS_CLASSES};

use super::backends;
use crate::exposition::{families, Exposition, Family, Number};
use crate::runtime::Runtime;
use crate::state::Shared;
use crate::stats::UpstreamStats;

families! {
    /// Requests (HTTP) or sessions (TCP) completed, by status class.
    LISTENER_REQUESTS: Counter augur_listener_requests_total{listener, class};
    /// HTTP requests that matched no route.
    LISTENER_UNROUTED: Counter augur_listener_unrouted_total{listener};
    /// Requests completed by a backend, by status class.
    BACKEND_REQUESTS: Counter augur_backend_requests_total{upstream, backend, class};
    /// Requests in flight to a backend.
    BACKEND_IN_FLIGHT: Gauge augur_backend_in_flight{upstream, backend};
    /// Requests to a backend that ended in an error.
    BACKEND_ERRORS: Counter augur_backend_errors_total{upstream, backend};
    /// Failed connection attempts to a backend.
    BACKEND_CONNECT_FAILURES: Counter augur_backend_connect_failures_total{upstream, backend};
}

/// A backend's figure from its live counters.
type LiveFigure = fn(&LiveFigures) -> u64;

const BACKEND_LIVE: [(Family<2>, LiveFigure); 3] = [
    (BACKEND_IN_FLIGHT, |f| f.in_flight),
    (BACKEND_ERRORS, |f| f.errors),
    (BACKEND_CONNECT_FAILURES, |f| f.connect_failures),
];

families! {
    /// Failed attempts (connect failures, unanswered idempotent requests) retried on another
    /// backend.
    UPSTREAM_RETRIES: Counter augur_upstream_retries_total{upstream};
    /// Requests for which no backend was left to try.
    UPSTREAM_NO_BACKEND: Counter augur_upstream_no_backend_total{upstream};
    /// Request duration through an upstream.
    UPSTREAM_DURATION: Histogram augur_upstream_request_duration_seconds{upstream};
}

/// An upstream's figure from its counters.
type UpstreamFigure = fn(&UpstreamStats) -> &AtomicU64;

const UPSTREAM_COUNTS: [(Family<1>, UpstreamFigure); 2] = [
    (UPSTREAM_RETRIES, |s| &s.retries),
    (UPSTREAM_NO_BACKEND, |s| &s.no_backend),
];

families! {
    /// Latency the predictor expects over its lead time.
    PREDICTED_LATENCY: Gauge augur_backend_predicted_latency_ms{upstream, backend};
    /// Latency observed in the predictor's last tick with traffic.
    OBSERVED_LATENCY: Gauge augur_backend_observed_latency_ms{upstream, backend};
    /// Age of the latest latency sample (an avoided backend sends none).
    SAMPLE_AGE: Gauge augur_backend_sample_age_seconds{upstream, backend};
    /// Utilisation the predictor expects over its horizon (1 = capacity).
    PREDICTED_UTILIZATION: Gauge augur_backend_predicted_utilization{upstream, backend};
    /// Latency multiplier of a backend flagged anomalous (1 = none).
    ANOMALY_PENALTY: Gauge augur_backend_anomaly_penalty{upstream, backend};
    /// Mean absolute error of the latency forecast made one horizon ago.
    FORECAST_MAE: Gauge augur_backend_forecast_mae_ms{upstream, backend};
    /// Mean absolute percentage error (fraction) of the same forecast.
    FORECAST_MAPE: Gauge augur_backend_forecast_mape{upstream, backend};
    /// Forecast errors flagged as anomalies.
    ANOMALIES: Counter augur_backend_anomalies_total{upstream, backend};
}

/// A backend's figure from the predictor's snapshot and last report, at a time on the process
/// clock (none: no sample).
type PredictorFigure = fn(&Forecast, Option<&BackendReport>, u64) -> Option<f64>;

const BACKEND_PREDICTED: [(Family<2>, PredictorFigure); 8] = [
    (PREDICTED_LATENCY, |f, _, _| Some(f.latency_ms)),
    (OBSERVED_LATENCY, |_, r, _| r.map(|r| r.observed_ms)),
    (SAMPLE_AGE, |_, r, now| {
        let at = r?.last_sample_at_nanos?;
        Some(now.saturating_sub(at) as f64 / 1e9)
    }),
    (PREDICTED_UTILIZATION, |f, _, _| Some(f.utilization)),
    (ANOMALY_PENALTY, |f, _, _| Some(f.anomaly_penalty)),
    (FORECAST_MAE, |_, r, _| r.and_then(|r| r.mae_ms)),
    (FORECAST_MAPE, |_, r, _| r.and_then(|r| r.mape)),
    (ANOMALIES, |_, r, _| r.map(|r| r.anomalies as f64)),
];

families! {
    /// Concurrent requests forecast over the horizon (upstreams with standby planning).
    PREDICTED_DEMAND: Gauge augur_upstream_predicted_demand{upstream};
    /// Concurrent requests the serving and woken backends can take.
    ACTIVE_CAPACITY: Gauge augur_upstream_active_capacity{upstream};
    /// 1 when forecast demand exceeds even the capacity with every standby backend.
    DEMAND_EXCEEDS_CAPACITY: Gauge augur_upstream_demand_exceeds_capacity{upstream};
}

/// An upstream's figure from the standby planner's pool report.
type PoolFigure = fn(&PoolReport) -> Number;

const UPSTREAM_POOL: [(Family<1>, PoolFigure); 3] = [
    (PREDICTED_DEMAND, |p| p.demand.into()),
    (ACTIVE_CAPACITY, |p| p.active_capacity.into()),
    (DEMAND_EXCEEDS_CAPACITY, |p| {
        p.demand_exceeds_capacity.into()
    }),
];

families! {
    /// Version of the newest snapshot.
    SNAPSHOT_VERSION: Gauge augur_predictor_snapshot_version{};
    /// Age of the newest snapshot.
    SNAPSHOT_AGE: Gauge augur_predictor_snapshot_age_seconds{};
    /// Duration of the last predictor tick.
    TICK: Gauge augur_predictor_tick_seconds{};
    /// Observations handed to the predictor.
    OBSERVATIONS: Counter augur_predictor_observations_total{};
    /// Observations dropped because the predictor's queue was full.
    OBSERVATIONS_DROPPED: Counter augur_predictor_observations_dropped_total{};
    /// Backend load report headers that did not parse.
    LOAD_REPORTS_INVALID: Counter augur_load_reports_invalid_total{};
    /// Requests and TCP sessions in progress.
    IN_FLIGHT: Gauge augur_in_flight{};
    /// Downstream HTTP connections open, idle ones included.
    CONNECTIONS: Gauge augur_connections{};
}

/// A process-wide figure.
type ProcessFigure = fn(&Shared) -> Number;

const PROCESS: [(Family<0>, ProcessFigure); 8] = [
    (SNAPSHOT_VERSION, |s| {
        s.routing.snapshot.load().version.into()
    }),
    (SNAPSHOT_AGE, |s| {
        let built = s.routing.snapshot.load().built_at_nanos;
        (crate::clock::now_nanos().saturating_sub(built) as f64 / 1e9).into()
    }),
    (TICK, |s| {
        s.feedback
            .predictor_view
            .load()
            .last_tick
            .as_secs_f64()
            .into()
    }),
    (OBSERVATIONS, |s| s.feedback.recorder.pushed().into()),
    (OBSERVATIONS_DROPPED, |s| {
        s.feedback.recorder.dropped().into()
    }),
    (LOAD_REPORTS_INVALID, |s| {
        s.feedback.bad_load_reports.load(Ordering::Relaxed).into()
    }),
    (IN_FLIGHT, |s| {
        s.lifecycle.in_flight.load(Ordering::Relaxed).into()
    }),
    (CONNECTIONS, |s| {
        s.lifecycle.connections.load(Ordering::Relaxed).into()
    }),
];

families! {
    /// Config reloads by outcome.
    RELOADS: Counter augur_reloads_total{outcome};
    /// Generation of the running config (1 at start).
    CONFIG_GENERATION: Gauge augur_config_generation{};
    /// Access log lines dropped because the writer was behind.
    ACCESS_LOG_DROPPED: Counter augur_access_log_dropped_total{};
}

/// The `/metrics` document.
pub fn metrics(shared: &Shared) -> String {
    let rt = shared.routing.runtime.load();
    let mut doc = Exposition::new();
    traffic(&mut doc, &rt);
    super::health::metrics(&mut doc, &rt);
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
        doc.family(family, |s| s.sample([], figure(shared)));
    }
    doc.family(&RELOADS, |s| {
        s.sample(["ok"], shared.lifecycle.reloads_ok.load(Ordering::Relaxed));
        s.sample(
            ["failed"],
            shared.lifecycle.reloads_failed.load(Ordering::Relaxed),
        );
    });
    doc.family(&CONFIG_GENERATION, |s| {
        s.sample([], rt.version.generation);
    });
    shared.services.metrics(&mut doc);
    crate::segment_report::metrics(&mut doc, &rt);
    shared.routing.tunnels.metrics(&mut doc);
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
    for (family, figure) in &UPSTREAM_COUNTS {
        doc.family(family, |s| {
            for u in &rt.upstreams {
                s.sample([&u.name], figure(&u.stats).load(Ordering::Relaxed));
            }
        });
    }
}

/// The predictor's view of each backend and of each upstream with standby planning.
fn predictor(doc: &mut Exposition, shared: &Shared, rt: &Runtime) {
    let snapshot = shared.routing.snapshot.load();
    let view = shared.feedback.predictor_view.load();
    let now = crate::clock::now_nanos();
    for (family, figure) in &BACKEND_PREDICTED {
        doc.family(family, |s| {
            for (u, b, m) in backends(rt) {
                let report = view.reports.get(m.id as usize).and_then(|r| r.as_ref());
                // A figure not known yet (or not finite) is left out rather than guessed.
                if let Some(v) = figure(&snapshot.get(m.id), report, now).filter(|v| v.is_finite())
                {
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
