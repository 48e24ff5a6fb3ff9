//! Standby capacity: an announced surge wakes a reserve backend before it arrives, the scale
//! hook is told, and slack puts the backend back to sleep.

use std::net::SocketAddr;

use crate::support::*;

#[test]
fn an_announced_surge_wakes_the_standby_and_slack_puts_it_back_to_sleep() {
    let a = Backend::start("a");
    let s = Backend::start("s");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = temp_dir("standby-hook");
    let hook_log = dir.join("hooks.jsonl");
    let augur = Augur::start(
        "standby",
        &format!(
            "listeners:
  - {{ name: web, bind: {addr}, protocol: http, routes: [ {{ upstream: u }} ] }}
upstreams:
  - name: u
    policy: round_robin
    scale: {{ activate_at: 0.9, min_hold: 2s, hook: \"cat >> {log} && echo >> {log}\" }}
    backends:
      - {{ addr: {}, capacity: 10 }}
      - {{ addr: {}, capacity: 10, standby: true, warmup: 1s }}
",
            a.addr,
            s.addr,
            log = hook_log.display()
        ),
        &[addr],
    );
    let load = RequestLoop::start(addr, "/");
    // Light load (one client, well under 0.9 × 10): the standby sleeps and gets nothing.
    // The predictor forecasts demand once it has 10 s of history.
    eventually_within(
        std::time::Duration::from_secs(30),
        "demand forecast for the upstream",
        || {
            let st = augur.status();
            st["upstreams"][0]["capacity"]["predicted_demand"]
                .as_f64()
                .filter(|d| *d > 0.0)
                .map(|_| st)
        },
    );
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
    eventually("the standby serving", || {
        let st = augur.status();
        (st["upstreams"][0]["backends"][1]["state"] == "active"
            && st["upstreams"][0]["backends"][1]["requests"].as_u64() > Some(0))
        .then_some(())
    });
    assert!(augur
        .metrics()
        .contains("augur_upstream_active_capacity{upstream=\"u\"} 20"));

    // The surge ends: after the 2 s hold the standby goes back to sleep.
    eventually("the standby asleep again", || {
        (augur.status()["upstreams"][0]["backends"][1]["state"] == "standby").then_some(())
    });
    // From now on nothing may reach it: take its count once its last requests are done.
    let served = eventually("the standby's last requests done", || {
        let st = augur.status();
        let b = &st["upstreams"][0]["backends"][1];
        (b["in_flight"] == 0).then(|| b["requests"].as_u64().unwrap())
    });
    let (ok, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 0);
    let after = eventually("all requests done", || {
        let st = augur.status();
        (st["in_flight"] == 0).then(|| {
            st["upstreams"][0]["backends"][1]["requests"]
                .as_u64()
                .unwrap()
        })
    });
    assert_eq!(after, served, "a sleeping backend got traffic");

    let hooks = eventually("both hook calls", || {
        let text = std::fs::read_to_string(&hook_log).unwrap_or_default();
        (text.lines().filter(|l| !l.trim().is_empty()).count() >= 2).then_some(text)
    });
    let calls: Vec<serde_json::Value> = hooks
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls[0]["action"], "activate");
    assert_eq!(calls[0]["backend"], s.addr.to_string());
    assert_eq!(calls[1]["action"], "deactivate");
}

#[test]
fn a_standby_replaces_the_capacity_of_a_dead_backend() {
    let delay = std::time::Duration::from_millis(20);
    let a = Backend::start_with_delay("a", delay);
    let b = Backend::start_with_delay("b", delay);
    let s = Backend::start_with_delay("s", delay);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let augur = Augur::start(
        "standby-replace",
        &format!(
            "listeners:
  - {{ name: web, bind: {addr}, protocol: http, routes: [ {{ upstream: u }} ] }}
upstreams:
  - name: u
    policy: round_robin
    health_check: {{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }}
    scale: {{ activate_at: 0.9, min_hold: 2s }}
    backends:
      - {{ addr: {}, capacity: 2 }}
      - {{ addr: {}, capacity: 8 }}
      - {{ addr: {}, capacity: 4, standby: true, warmup: 1s }}
",
            a.addr, b.addr, s.addr
        ),
        &[addr],
    );
    // Two clients, about 2 requests in flight: well under 0.9 × 10 of active capacity.
    let loads = [RequestLoop::start(addr, "/"), RequestLoop::start(addr, "/")];
    eventually_within(
        std::time::Duration::from_secs(30),
        "a demand forecast",
        || {
            let st = augur.status();
            st["upstreams"][0]["capacity"]["predicted_demand"]
                .as_f64()
                .filter(|d| *d > 0.0)
                .map(|_| ())
        },
    );
    let st = augur.status();
    assert_eq!(
        st["upstreams"][0]["backends"][2]["state"], "standby",
        "{st}"
    );
    assert_eq!(st["upstreams"][0]["capacity"]["active_capacity"], 10.0);

    // b dies: 2 of capacity is left for about 2 in flight, over 0.9 × 2. The standby wakes.
    drop(b);
    let woke = eventually_within(
        std::time::Duration::from_secs(10),
        "the standby serving",
        || {
            let st = augur.status();
            let standby = &st["upstreams"][0]["backends"][2];
            (standby["state"] == "active" && standby["requests"].as_u64() > Some(0)).then_some(st)
        },
    );
    assert_ne!(
        woke["upstreams"][0]["backends"][1]["health"]["state"], "up",
        "{woke}"
    );
    for load in loads {
        let (ok, failures) = load.finish();
        assert!(ok > 0);
        assert!(failures.is_empty(), "{failures:?}");
    }
    drop(a);
    drop(s);
}

#[test]
fn instances_plan_on_the_demand_their_peers_see_too() {
    let delay = std::time::Duration::from_millis(30);
    let a = Backend::start_with_delay("a", delay);
    let s = Backend::start_with_delay("s", delay);
    let body = |addr: SocketAddr, peers: &str| {
        format!(
            "predictor: {{ peers: [{peers}] }}
listeners:
  - {{ name: web, bind: {addr}, protocol: http, routes: [ {{ upstream: u }} ] }}
upstreams:
  - name: u
    scale: {{ activate_at: 0.9, min_hold: 2s }}
    backends:
      - {{ addr: {}, capacity: 5 }}
      - {{ addr: {}, capacity: 5, standby: true, warmup: 1s }}
",
            a.addr, s.addr
        )
    };
    let (addr_1, addr_2) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let one = Augur::start("peers-1", &body(addr_1, ""), &[addr_1]);
    let two = Augur::start("peers-2", &body(addr_2, ""), &[addr_2]);
    // Three sequential clients on each: at most 3 in flight per instance, under 0.9 × 5.
    let loads: Vec<RequestLoop> = [addr_1, addr_2]
        .into_iter()
        .flat_map(|addr| (0..3).map(move |_| RequestLoop::start(addr, "/")))
        .collect();
    let own = |augur: &Augur| {
        let st = augur.status();
        let capacity = &st["upstreams"][0]["capacity"];
        assert_eq!(
            st["upstreams"][0]["backends"][1]["state"], "standby",
            "{st}"
        );
        capacity["concurrency"].as_f64().filter(|c| *c > 1.0)
    };
    // Alone, each instance sees only its own share and keeps the standby asleep.
    eventually("both instances see their own demand", || {
        own(&one).zip(own(&two))
    });

    // Each learns of the other (a live reload): together they see more than 0.9 × 5.
    one.write_config(&body(addr_1, &format!("\"{}\"", two.admin)));
    two.write_config(&body(addr_2, &format!("\"{}\"", one.admin)));
    for augur in [&one, &two] {
        assert_eq!(augur.reload().status, 200);
    }
    for augur in [&one, &two] {
        let st = eventually("the standby woken on the peers' demand", || {
            let st = augur.status();
            (st["upstreams"][0]["backends"][1]["state"] == "active").then_some(st)
        });
        let capacity = &st["upstreams"][0]["capacity"];
        assert!(
            capacity["peer_concurrency"].as_f64() > Some(1.0),
            "{capacity}"
        );
        assert_eq!(st["peers"][0]["fresh"], true, "{st}");
    }
    for load in loads {
        let (ok, failures) = load.finish();
        assert!(ok > 0);
        assert!(failures.is_empty(), "{failures:?}");
    }
}
