//! Supervised background work: a predictor that panics is restarted while requests go on,
//! and SIGTERM stops the services in order after the drain, with the access log flushed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

/// The config of an augur in front of `b` on a fresh listener address.
fn in_front_of(b: &Backend) -> (SocketAddr, Config) {
    let addr = loopback();
    (addr, Config::web(addr, Upstream::new("u", &[b.addr])))
}

#[test]
fn a_predictor_that_panics_is_restarted_while_requests_are_answered() {
    let b = Backend::start("b");
    let (addr, config) = in_front_of(&b);
    // Test-only fault injection: one panic after the predictor's fifth tick.
    let augur = Augur::start_with_env(
        "services-predictor",
        &config,
        &[("AUGUR_TEST_PANIC", "predictor:5")],
    );
    let load = RequestLoop::start(addr, "/");
    let restarted = eventually(
        "the predictor's restart in /status",
        || augur.status(),
        |s| s["predictor"]["restarts"] == 1,
    );
    let restart_seen = restarted["uptime_seconds"].as_f64().unwrap();
    // A snapshot built after the restart was seen: the restarted predictor publishes again.
    let status = eventually(
        "a snapshot from the restarted predictor",
        || augur.status(),
        |s| {
            let built = s["uptime_seconds"].as_f64().unwrap()
                - s["predictor"]["snapshot_age_ms"]
                    .as_f64()
                    .unwrap_or(f64::MAX)
                    / 1e3;
            built > restart_seen
        },
    );
    let predictor = &status["predictor"];
    assert_eq!(predictor["running"], true, "{predictor}");
    assert_eq!(predictor["stale"], false, "{predictor}");
    assert_eq!(predictor["restarts"], 1, "{predictor}");
    // The restarted predictor's models are new, but its counts carry on from the old one's.
    let version = predictor["snapshot_version"].as_u64().unwrap();
    let ticks = predictor["ticks"].as_u64().unwrap();
    assert!(version > 5 && ticks > 5, "counts went back: {predictor}");
    let listed = status["services"].as_array().unwrap();
    let entry = listed.iter().find(|s| s["name"] == "predictor").unwrap();
    assert_eq!(entry["state"], "running");
    load.finish_clean("while the predictor panicked and restarted");

    let metrics = augur.metrics();
    for line in [
        "augur_service_restarts_total{service=\"predictor\"} 1",
        "augur_service_up{service=\"predictor\"} 1",
        "augur_service_up{service=\"health\"} 1",
        "augur_service_restarts_total{service=\"health\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    let log = augur.log();
    assert!(log.contains("injected predictor panic"), "{log}");
    assert!(log.contains("service panicked"), "{log}");
}

#[test]
fn sigterm_stops_the_services_in_order_after_the_drain_and_flushes_the_access_log() {
    let b = Backend::start("b");
    let (addr, config) = in_front_of(&b);
    let access = temp_dir("services-access-log").join("access.log");
    let config = config.server(
        "access_log",
        format!("{{ path: {}, format: text }}", access.display()),
    );
    let mut augur = Augur::start("services-stop", &config);
    const REQUESTS: usize = 50;
    for _ in 0..REQUESTS {
        assert_eq!(get(addr, "x", "/").status, 200);
    }
    signal(augur.pid(), "TERM");
    let status = wait_exit(&mut augur.child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let lines = std::fs::read_to_string(&access).unwrap().lines().count();
    assert_eq!(
        lines, REQUESTS,
        "every request's line written before the exit"
    );

    let log = augur.log();
    // Which line first says all of `what` (the log's fields are coloured apart).
    let at = |what: &[&str]| {
        log.lines()
            .position(|l| what.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("{what:?} not in the log:\n{log}"))
    };
    let mut order = vec![at(&["drained; stopping"])];
    for service in [
        "peers",
        "health",
        "predictor",
        "scale-hook",
        "sighup",
        "access-log",
    ] {
        order.push(at(&["service stopped", &format!("\"{service}\"")]));
    }
    order.push(at(&["augur::server", " stopped"]));
    assert!(order.is_sorted(), "stopped out of order: {order:?}\n{log}");
}
