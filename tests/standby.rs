//! Standby capacity: an announced surge wakes a reserve backend before it arrives, the scale
//! hook is told, and slack puts the backend back to sleep.

use std::net::SocketAddr;

use crate::support::*;

/// Waits (at most 30 s) until the predictor forecasts demand for the upstream: it needs 10 s
/// of history first.
fn wait_for_forecast(augur: &Augur) {
    eventually_within(
        std::time::Duration::from_secs(30),
        "a demand forecast for the upstream",
        || augur.status()["upstreams"][0]["capacity"].clone(),
        |c| c["predicted_demand"].as_f64() > Some(0.0),
    );
}

/// Whether a standby backend's `/status` entry shows it awake and serving.
fn serving(backend: &serde_json::Value) -> bool {
    backend["state"] == "active" && backend["requests"].as_u64() > Some(0)
}

#[test]
fn an_announced_surge_wakes_the_standby_and_slack_puts_it_back_to_sleep() {
    let [a, s] = ["a", "s"].map(Backend::start);
    let addr = loopback();
    let hook_log = temp_dir("standby-hook").join("hooks.jsonl");
    let hook = format!(
        "\"cat >> {log} && echo >> {log}\"",
        log = hook_log.display()
    );
    let upstream = Upstream::new("u", &[])
        .with("policy", "round_robin")
        .with(
            "scale",
            format!("{{ activate_at: 0.9, min_hold: 2s, hook: {hook} }}"),
        )
        .backend(a.addr, "capacity: 10")
        .backend(s.addr, "capacity: 10, standby: true, warmup: 1s");
    let augur = Augur::start("standby", &Config::web(addr, upstream));
    let load = RequestLoop::start(addr, "/");
    // Light load (one client, well under 0.9 × 10): the standby sleeps and gets nothing.
    // The predictor forecasts demand once it has 10 s of history.
    wait_for_forecast(&augur);
    let before = augur.status();
    assert_eq!(before["upstreams"][0]["backends"][1]["state"], "standby");
    assert_eq!(before["upstreams"][0]["backends"][1]["requests"], 0);
    assert_eq!(before["upstreams"][0]["capacity"]["active_capacity"], 10.0);

    // Announce a 100x surge for 3 s: the standby wakes, warms 1 s, then serves.
    let r = request(
        augur.admin,
        "POST",
        "/events",
        "x",
        &[],
        b"{\"upstream\": \"u\", \"duration\": \"3s\", \"multiplier\": 100}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let standby = || augur.status()["upstreams"][0]["backends"][1].clone();
    eventually("the standby serving", standby, serving);
    assert!(augur
        .metrics()
        .contains("augur_upstream_active_capacity{upstream=\"u\"} 20"));

    // The surge ends: after the 2 s hold the standby goes back to sleep.
    eventually("the standby asleep again", standby, |b| {
        b["state"] == "standby"
    });
    // From now on nothing may reach it: take its count once its last requests are done.
    let served = eventually("the standby's last requests done", standby, |b| {
        b["in_flight"] == 0
    })["requests"]
        .as_u64()
        .unwrap();
    load.finish_clean("through the surge");
    let after = eventually(
        "all requests done",
        || augur.status(),
        |st| st["in_flight"] == 0,
    )["upstreams"][0]["backends"][1]["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after, served, "a sleeping backend got traffic");

    let calls = eventually(
        "both hook calls",
        || {
            let text = std::fs::read_to_string(&hook_log).unwrap_or_default();
            let lines = text.lines().filter(|l| !l.trim().is_empty());
            lines
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        },
        |calls| calls.len() >= 2,
    );
    assert_eq!(calls[0]["action"], "activate");
    assert_eq!(calls[0]["backend"], s.addr.to_string());
    assert_eq!(calls[1]["action"], "deactivate");
}

#[test]
fn a_standby_replaces_the_capacity_of_a_dead_backend() {
    let delay = std::time::Duration::from_millis(20);
    let [a, b, s] = ["a", "b", "s"].map(|name| Backend::start_with_delay(name, delay));
    let addr = loopback();
    let upstream = Upstream::new("u", &[])
        .with("policy", "round_robin")
        .with(
            "health_check",
            "{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }",
        )
        .with("scale", "{ activate_at: 0.9, min_hold: 2s }")
        .backend(a.addr, "capacity: 2")
        .backend(b.addr, "capacity: 8")
        .backend(s.addr, "capacity: 4, standby: true, warmup: 1s");
    let augur = Augur::start("standby-replace", &Config::web(addr, upstream));
    // Two clients, about 2 requests in flight: well under 0.9 × 10 of active capacity.
    let loads = [RequestLoop::start(addr, "/"), RequestLoop::start(addr, "/")];
    wait_for_forecast(&augur);
    let st = augur.status();
    assert_eq!(
        st["upstreams"][0]["backends"][2]["state"], "standby",
        "{st}"
    );
    assert_eq!(st["upstreams"][0]["capacity"]["active_capacity"], 10.0);

    // b dies: 2 of capacity is left for about 2 in flight, over 0.9 × 2. The standby wakes.
    drop(b);
    let woke = eventually(
        "the standby serving",
        || augur.status(),
        |st| serving(&st["upstreams"][0]["backends"][2]),
    );
    assert_ne!(
        woke["upstreams"][0]["backends"][1]["health"]["state"], "up",
        "{woke}"
    );
    for load in loads {
        load.finish_clean("while b died");
    }
    drop(a);
    drop(s);
}

#[test]
fn instances_plan_on_the_demand_their_peers_see_too() {
    let delay = std::time::Duration::from_millis(30);
    let [a, s] = ["a", "s"].map(|name| Backend::start_with_delay(name, delay));
    let config = |addr: SocketAddr, peers: &str| {
        let upstream = Upstream::new("u", &[])
            .with("scale", "{ activate_at: 0.9, min_hold: 2s }")
            .backend(a.addr, "capacity: 5")
            .backend(s.addr, "capacity: 5, standby: true, warmup: 1s");
        Config::web(addr, upstream).predictor(&format!("{{ peers: [{peers}] }}"))
    };
    let (addr_1, addr_2) = (loopback(), loopback());
    let one = Augur::start("peers-1", &config(addr_1, ""));
    let two = Augur::start("peers-2", &config(addr_2, ""));
    // Three sequential clients on each: at most 3 in flight per instance, under 0.9 × 5.
    let loads: Vec<RequestLoop> = [addr_1, addr_2]
        .into_iter()
        .flat_map(|addr| (0..3).map(move |_| RequestLoop::start(addr, "/")))
        .collect();
    let own = |augur: &Augur| {
        let st = augur.status();
        assert_eq!(
            st["upstreams"][0]["backends"][1]["state"], "standby",
            "{st}"
        );
        st["upstreams"][0]["capacity"]["concurrency"].as_f64()
    };
    // Alone, each instance sees only its own share and keeps the standby asleep.
    eventually(
        "both instances see their own demand",
        || [own(&one), own(&two)],
        |seen| seen.iter().all(|c| *c > Some(1.0)),
    );

    // Each learns of the other (a live reload): together they see more than 0.9 × 5.
    one.write_config(&config(addr_1, &format!("\"{}\"", two.admin)));
    two.write_config(&config(addr_2, &format!("\"{}\"", one.admin)));
    for augur in [&one, &two] {
        assert_eq!(augur.reload().status, 200);
    }
    for augur in [&one, &two] {
        let st = eventually(
            "the standby woken on the peers' demand",
            || augur.status(),
            |st| st["upstreams"][0]["backends"][1]["state"] == "active",
        );
        let capacity = &st["upstreams"][0]["capacity"];
        assert!(
            capacity["peer_concurrency"].as_f64() > Some(1.0),
            "{capacity}"
        );
        assert_eq!(st["peers"][0]["fresh"], true, "{st}");
    }
    for load in loads {
        load.finish_clean("while the peers learned of each other");
    }
}
