//! The predictor loop end to end: observations in, forecasts and load reports in `/status`.

use crate::support::*;

#[test]
fn forecasts_and_load_reports_reach_status_and_metrics() {
    let b = Backend::start("b");
    let addr = loopback();
    let augur = Augur::start(
        "predictor",
        &Config::web(addr, Upstream::new("u", &[b.addr])),
    );
    for _ in 0..20 {
        let r = get(addr, "x", "/?orca=70");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("endpoint-load-metrics"),
            None,
            "load reports are stripped"
        );
    }
    // Reports are averaged per tick and smoothed across ticks: keep them coming until the
    // snapshot has converged on them.
    let report_and_status = || {
        let r = get(addr, "x", "/?orca=70");
        assert_eq!(
            r.header("endpoint-load-metrics"),
            None,
            "load reports are stripped"
        );
        augur.status()
    };
    let status = eventually(
        "the report and a forecast in the snapshot",
        report_and_status,
        |s| {
            let p = &s["upstreams"][0]["backends"][0]["predicted"];
            p["utilization"]
                .as_f64()
                .is_some_and(|u| (u - 0.7).abs() < 0.05)
                && p["latency_ms"].as_f64().is_some_and(|l| l > 0.0)
        },
    );
    assert_eq!(status["upstreams"][0]["policy"], "predictive");
    assert!(status["predictor"]["snapshot_version"].as_u64().unwrap() > 0);
    assert!(status["predictor"]["observations"].as_u64().unwrap() >= 20);
    // The latest latency sample is recent (requests were answered just now).
    let age = status["upstreams"][0]["backends"][0]["predicted"]["sample_age_ms"].as_f64();
    assert!(
        age.is_some_and(|a| (0.0..5_000.0).contains(&a)),
        "sample age {age:?}"
    );
    assert_eq!(status["predictor"]["observations_dropped"], 0);
    assert!(status["upstreams"][0]["backends"][0]["predicted"]["model"].is_string());
    assert!(status["predictor"]["anomalous"].is_array());

    assert_eq!(get(addr, "x", "/?orca_bad=1").status, 200);
    eventually(
        "the malformed report counted",
        || augur.status()["predictor"]["invalid_load_reports"].clone(),
        |n| *n == 1,
    );
    let metrics = augur.metrics();
    for name in [
        "augur_backend_predicted_latency_ms{upstream=\"u\"",
        "augur_backend_predicted_utilization{upstream=\"u\"",
        "augur_backend_observed_latency_ms{upstream=\"u\"",
        "augur_backend_sample_age_seconds{upstream=\"u\"",
        "augur_predictor_snapshot_version ",
        "augur_predictor_observations_dropped_total 0",
        "augur_load_reports_invalid_total 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn a_sudden_slowdown_is_flagged_as_an_anomaly() {
    let b = Backend::start("b");
    let addr = loopback();
    let augur = Augur::start("anomaly", &Config::web(addr, Upstream::new("u", &[b.addr])));
    let steady = RequestLoop::start(addr, "/");
    // Let the detector see a steady series first (it needs 8 ticks of residuals).
    eventually(
        "a settled forecast",
        || augur.status(),
        |s| {
            let p = &s["upstreams"][0]["backends"][0]["predicted"];
            s["predictor"]["ticks"].as_u64() > Some(20) && p["forecast_mae_ms"].is_number()
        },
    );
    for _ in 0..3 {
        assert_eq!(get(addr, "x", "/?delay_ms=300").status, 200);
    }
    let listed = eventually(
        "the backend listed as anomalous",
        || augur.status()["predictor"]["anomalous"].clone(),
        |list| list.as_array().is_some_and(|l| !l.is_empty()),
    );
    assert_eq!(listed[0]["backend"], b.addr.to_string());
    assert!(listed[0]["penalty"].as_f64().unwrap() > 1.05);
    assert!(listed[0]["anomalies"].as_u64().unwrap() >= 1);
    steady.finish_clean("around the slowdown");
}
