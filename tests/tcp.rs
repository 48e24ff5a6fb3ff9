//! The L4 TCP relay.

use crate::support::*;

#[test]
fn tcp_relay_carries_bytes_both_ways_and_retries_refused_backends() {
    let addr = loopback();
    let upstream = Upstream::new("pg", &[dead_addr(), echo_server()]).with("policy", "round_robin");
    let augur = Augur::start(
        "tcp",
        &Config::new()
            .listener(Listener::tcp("db", addr, "pg"))
            .upstream(upstream),
    );
    // (The readiness probe was a session too, accepted at some point: count at least.)
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..4 {
        assert_echoes(addr, &payload);
    }
    let status = eventually(
        "four relayed sessions counted, none in flight",
        || augur.status(),
        |s| s["upstreams"][0]["backends"][1]["requests"].as_u64() >= Some(4) && s["in_flight"] == 0,
    );
    assert!(
        status["upstreams"][0]["backends"][0]["connect_failures"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn an_idle_tcp_session_is_closed_after_idle_timeout_and_a_busy_one_is_not() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let addr = loopback();
    let _augur = Augur::start(
        "tcp-idle",
        &Config::new()
            .listener(Listener::tcp("db", addr, "pg").with("idle_timeout", "1s"))
            .upstream(Upstream::new("pg", &[echo_server()])),
    );
    let round_trip = |conn: &mut std::net::TcpStream| {
        conn.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    };
    // Busy: a byte each way every 300 ms for 2.4 s, twice the idle timeout, stays open.
    let mut busy = std::net::TcpStream::connect(addr).unwrap();
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    round_trip(&mut idle);
    let started = Instant::now();
    for _ in 0..8 {
        round_trip(&mut busy);
        // Pacing the client, not synchronisation: the gap is what is being tested.
        std::thread::sleep(Duration::from_millis(300));
    }
    round_trip(&mut busy);
    // Idle since its one exchange: augur has closed it (end of stream, not a timeout here).
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(2));
}
