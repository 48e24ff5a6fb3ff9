//! The L4 TCP relay.

use std::net::SocketAddr;

use crate::support::*;

#[test]
fn tcp_relay_carries_bytes_both_ways_and_retries_refused_backends() {
    let echo = echo_server();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let augur = Augur::start(
        "tcp",
        &format!(
            "listeners:
  - {{ name: db, bind: {addr}, protocol: tcp, upstream: pg }}
upstreams:
  - name: pg
    policy: round_robin
    backends: [ {{ addr: {} }}, {{ addr: {echo} }} ]
",
            dead_addr()
        ),
        &[addr],
    );
    // (The readiness probe was a session too, accepted at some point: count at least.)
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..4 {
        let got = echo_round_trip(addr, &payload);
        assert!(
            got == payload,
            "echoed {} bytes, sent {}",
            got.len(),
            payload.len()
        );
    }
    let status = eventually("four relayed sessions counted, none in flight", || {
        let s = augur.status();
        (s["upstreams"][0]["backends"][1]["requests"].as_u64() >= Some(4) && s["in_flight"] == 0)
            .then_some(s)
    });
    assert!(
        status["upstreams"][0]["backends"][0]["connect_failures"]
            .as_u64()
            .unwrap()
            >= 1
    );
}
