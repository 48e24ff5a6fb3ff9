//! Hot reload: under load, with requests in flight, and refused when the file is bad.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

fn config(addr: SocketAddr, policy: &str, backends: &[&Backend], slow: &Backend) -> Config {
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    Config::new()
        .listener(
            Listener::http("web", addr)
                .route(Route::to("slow").path("/slow"))
                .route(Route::to("u")),
        )
        .upstream(Upstream::new("u", &addrs).with("policy", policy))
        .upstream(Upstream::new("slow", &[slow.addr]))
}

/// Polls `/status` until `pred` holds for it.
fn wait_status(augur: &Augur, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    eventually_within(Duration::from_secs(20), what, || augur.status(), pred);
}

#[test]
fn reload_under_load_changes_backends_and_policy_with_zero_failures() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let [slow_old, slow_new] = ["slow-old", "slow-new"].map(Backend::start);
    let addr = loopback();
    let augur = Augur::start("reload", &config(addr, "round_robin", &[&a, &b], &slow_old));
    let load = RequestLoop::start(addr, "/");

    // A request in flight on the old tables finishes there.
    let in_flight = std::thread::spawn(move || get(addr, "x", "/slow?delay_ms=800"));
    wait_status(&augur, "the slow request to be in flight", |s| {
        s["upstreams"][1]["backends"][0]["in_flight"] == 1
    });

    augur.write_config(&config(addr, "least_conn", &[&b, &c], &slow_new));
    let r = augur.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let changes = r.json()["changes"].to_string();
    assert!(
        changes.contains("least_conn"),
        "the diff names the policy change: {changes}"
    );
    // The backend the reload added ramps up (slow start); the one that stayed does not.
    let backends = &augur.status()["upstreams"][0]["backends"];
    let warmth = |i: usize| backends[i]["predicted"]["warmth"].as_f64().unwrap();
    assert_eq!(backends[1]["addr"], c.addr.to_string());
    assert!(warmth(1) < 0.5, "a joining backend slow-starts: {backends}");
    assert_eq!(warmth(0), 1.0, "{backends}");
    for _ in 0..20 {
        let who = backend_of(&get(addr, "x", "/"));
        assert!(
            who == "b" || who == "c",
            "after reload only b and c serve, got {who}"
        );
    }
    assert_eq!(backend_of(&get(addr, "x", "/slow")), "slow-new");
    let old = in_flight.join().unwrap();
    assert_eq!((old.status, backend_of(&old).as_str()), (200, "slow-old"));

    // SIGHUP reloads too.
    augur.write_config(&config(addr, "round_robin", &[&c], &slow_new));
    signal(augur.pid(), "HUP");
    wait_status(&augur, "generation 3", |s| s["config"]["generation"] == 3);
    for _ in 0..10 {
        assert_eq!(backend_of(&get(addr, "x", "/")), "c");
    }
    // Counters of a backend that stayed survive the reloads.
    let status = augur.status();
    assert!(
        status["upstreams"][0]["backends"][0]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );

    let ok = load.finish_clean("during reloads");
    assert!(ok > 20, "the load loop made progress: {ok}");
}

#[test]
fn bad_reload_is_refused_and_the_old_config_keeps_serving() {
    let a = Backend::start("a");
    let slow = Backend::start("slow");
    let addr = loopback();
    let augur = Augur::start("badreload", &config(addr, "round_robin", &[&a], &slow));
    let hash = augur.status()["config"]["hash"].clone();

    // An invalid file: refused with the same located errors as `check`.
    augur.write_config(
        &Config::new()
            .listener(Listener::http("web", addr).route(Route::to("nope")))
            .upstream(Upstream::new("u", &[a.addr])),
    );
    let r = augur.reload();
    assert_eq!(r.status, 422, "{}", r.text());
    let error = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("augur.yaml:") && error.contains("no upstream named \"nope\""),
        "{error}"
    );
    let (code, out, err) = augur_cmd(&["reload", "-c", augur.config.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "augur reload validates first, like `nginx -s reload`: {out}{err}"
    );
    assert!(err.contains("augur.yaml:") && err.contains("nope"), "{err}");

    let status = augur.status();
    assert_eq!(status["last_reload"]["ok"], false);
    assert!(status["last_reload"]["error"]
        .as_str()
        .unwrap()
        .contains("nope"));
    assert_eq!(status["config"]["hash"], hash, "the running config stays");
    assert_eq!(backend_of(&get(addr, "x", "/")), "a");

    // A change that needs a new socket is refused with a pointer to --upgrade.
    let moved = loopback();
    augur.write_config(&config(moved, "round_robin", &[&a], &slow));
    let r = augur.reload();
    assert_eq!(r.status, 422);
    assert!(r.text().contains("--upgrade"), "{}", r.text());
    assert_eq!(backend_of(&get(addr, "x", "/")), "a");
    assert!(augur
        .metrics()
        .contains("augur_reloads_total{outcome=\"failed\"} 2"));

    // A good file through `augur reload` is accepted.
    augur.write_config(&config(addr, "least_conn", &[&a], &slow));
    let (code, out, err) = augur_cmd(&["reload", "-c", augur.config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(augur.status()["last_reload"]["ok"], true);
}
