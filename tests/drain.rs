//! Drains for rolling updates: no new requests, in-flight ones finish, undrain restores.

use std::collections::HashSet;

use crate::support::*;

#[test]
fn drained_backends_get_no_new_requests_and_finish_what_they_have() {
    let [a, b, c, s] = ["a", "b", "c", "s"].map(Backend::start);
    let addr = loopback();
    let augur = Augur::start(
        "drain",
        &Config::new()
            .listener(
                Listener::http("web", addr)
                    .route(Route::to("slow").path("/slow"))
                    .route(Route::to("u")),
            )
            .upstream(Upstream::new("u", &[a.addr, b.addr, c.addr]).with("policy", "round_robin"))
            .upstream(Upstream::new("slow", &[s.addr]).with("read_timeout", "10s")),
    );
    let config = augur.config.to_str().unwrap().to_owned();

    // Drain the least loaded one: it gets nothing afterwards.
    let (code, out, err) = augur_cmd(&["drain", "-c", &config, "--upstream", "u", "--count", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let drained: serde_json::Value = serde_json::from_str(&out).unwrap();
    let gone = drained["drained"][0].as_str().unwrap().to_owned();
    let names: HashSet<String> = (0..30)
        .map(|_| get(addr, "x", "/").header("x-backend").unwrap().to_owned())
        .collect();
    let gone_name = [&a, &b, &c]
        .iter()
        .find(|k| k.addr.to_string() == gone)
        .unwrap()
        .name
        .clone();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        !names.contains(&gone_name),
        "{gone_name} still served: {names:?}"
    );
    // Draining all that remain by count is refused.
    let (code, out, _) = augur_cmd(&["drain", "-c", &config, "--upstream", "u", "--count", "2"]);
    assert_eq!(code, 1);
    assert!(out.contains("would leave none"), "{out}");

    // A named drain with a request in flight: it finishes, then the backend shows drained.
    let slow = std::thread::spawn(move || get(addr, "x", "/slow?delay_ms=800"));
    let slow_backend = || augur.status()["upstreams"][1]["backends"][0].clone();
    eventually("the slow request in flight", slow_backend, |b| {
        b["in_flight"] == 1
    });
    let r = request(
        augur.admin,
        "POST",
        "/upstreams/slow/drain",
        "x",
        &[],
        format!("{{\"backends\": [\"{}\"]}}", s.addr).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        augur.status()["upstreams"][1]["backends"][0]["state"],
        "draining"
    );
    assert_eq!(
        get(addr, "x", "/slow").status,
        502,
        "no new requests to a drained backend"
    );
    assert_eq!(
        slow.join().unwrap().status,
        200,
        "the request in flight finished"
    );
    eventually("drained with nothing in flight", slow_backend, |b| {
        b["state"] == "drained"
    });

    // Undrain everything.
    let (code, out, err) = augur_cmd(&["undrain", "-c", &config, "--upstream", "slow"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(get(addr, "x", "/slow").status, 200);
    let r = request(augur.admin, "POST", "/upstreams/u/undrain", "x", &[], b"");
    assert_eq!(r.status, 200);
    let names: HashSet<String> = (0..30)
        .map(|_| get(addr, "x", "/").header("x-backend").unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let r = request(
        augur.admin,
        "POST",
        "/upstreams/nope/drain",
        "x",
        &[],
        b"{\"count\": 1}",
    );
    assert_eq!(r.status, 404);
}
