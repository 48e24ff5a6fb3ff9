//! Process lifecycle: graceful SIGTERM, fast SIGINT, zero-downtime `--upgrade`, bind errors.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::*;

fn simple(addr: SocketAddr, b: &Backend) -> Config {
    Config::web(
        addr,
        Upstream::new("u", &[b.addr]).with("read_timeout", "10s"),
    )
}

/// A backend and an augur in front of it on a fresh listener address.
fn started(test: &str) -> (Backend, SocketAddr, Augur) {
    let b = Backend::start("b");
    let addr = loopback();
    let augur = Augur::start(test, &simple(addr, &b));
    (b, addr, augur)
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_early() {
    let (_b, addr, mut augur) = started("sigterm");
    let slow = std::thread::spawn(move || get(addr, "x", "/?delay_ms=1500"));
    eventually(
        "the request in flight",
        || augur.status()["in_flight"].clone(),
        |n| *n == 1,
    );
    let signalled = Instant::now();
    signal(augur.pid(), "TERM");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request completes");
    let status = wait_exit(&mut augur.child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_millis(4500),
        "exits once drained, before the 5s grace period: {took:?}"
    );
    wait_closed(addr, "augur");
}

#[test]
fn a_connection_accepted_before_sigterm_is_served_when_its_request_comes_after() {
    use std::io::{Read, Write};
    let (_b, addr, mut augur) = started("late-request");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    eventually(
        "augur holds the new connection",
        || augur.status()["connections"].clone(),
        |n| *n == 1,
    );
    signal(augur.pid(), "TERM");
    wait_closed(addr, "augur");
    // The listener has closed; the request of a connection it had accepted still counts.
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = wait_exit(&mut augur.child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigint_stops_at_once() {
    let (_b, addr, mut augur) = started("sigint");
    signal(augur.pid(), "INT");
    wait_exit(&mut augur.child, Duration::from_secs(5));
    wait_closed(addr, "augur");
}

#[test]
fn upgrade_hands_over_listeners_without_failing_a_request() {
    let (_b, addr, mut old) = started("upgrade");
    let old_pid = old.pid();
    let load = RequestLoop::start(addr, "/");

    let mut new = old.start_successor();
    signal(old_pid, "QUIT");
    wait_exit(&mut old.child, Duration::from_secs(30));

    // Whoever answers now is the new process.
    let r = request(old.admin, "GET", "/status", "x", &[], b"");
    assert_eq!(r.json()["pid"], new.id());
    for _ in 0..20 {
        assert_eq!(get(addr, "x", "/").status, 200);
    }
    let ok = load.finish_clean("during the upgrade");
    let _ = new.kill();
    let _ = new.wait();
    assert!(ok > 50, "the load loop made progress: {ok}");
}

#[test]
fn a_taken_port_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let b = Backend::start("b");
    let dir = temp_dir("taken");
    let config = dir.join("augur.yaml");
    std::fs::write(&config, simple(addr, &b).render(&dir, loopback())).unwrap();
    let (code, _, err) = augur_cmd(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("listener web: cannot listen on {addr}")),
        "{err}"
    );
}
