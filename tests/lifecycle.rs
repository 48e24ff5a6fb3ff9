//! Process lifecycle: graceful SIGTERM, fast SIGINT, zero-downtime `--upgrade`, bind errors.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

fn simple(addr: SocketAddr, b: &Backend) -> String {
    one_upstream(addr, "read_timeout: 10s, ", &[b.addr])
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_early() {
    let b = Backend::start("b");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut augur = Augur::start("sigterm", &simple(addr, &b), &[addr]);
    let slow = std::thread::spawn(move || get(addr, "x", "/?delay_ms=1500"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while augur.status()["in_flight"] != 1 {
        assert!(Instant::now() < deadline, "request never in flight");
        std::thread::sleep(Duration::from_millis(10));
    }
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
    let b = Backend::start("b");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut augur = Augur::start("late-request", &simple(addr, &b), &[addr]);
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    eventually("augur holds the new connection", || {
        (augur.status()["connections"] == 1).then_some(())
    });
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
    let b = Backend::start("b");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut augur = Augur::start("sigint", &simple(addr, &b), &[addr]);
    signal(augur.pid(), "INT");
    wait_exit(&mut augur.child, Duration::from_secs(5));
    wait_closed(addr, "augur");
}

#[test]
fn upgrade_hands_over_listeners_without_failing_a_request() {
    let b = Backend::start("b");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut old = Augur::start("upgrade", &simple(addr, &b), &[addr]);
    let old_pid = old.pid();
    let load = RequestLoop::start(addr, "/");

    let mut new = Augur::spawn(&old.dir, &old.config, true);
    let sock = old.dir.join("upgrade.sock");
    wait_for_socket(&sock, &mut new);
    signal(old_pid, "QUIT");
    wait_exit(&mut old.child, Duration::from_secs(30));

    // Whoever answers now is the new process.
    let r = request(old.admin, "GET", "/status", "x", &[], b"");
    assert_eq!(r.json()["pid"], new.id());
    for _ in 0..20 {
        assert_eq!(get(addr, "x", "/").status, 200);
    }
    let (ok, failures) = load.finish();
    let _ = new.kill();
    let _ = new.wait();
    assert!(ok > 50, "the load loop made progress: {ok}");
    assert!(
        failures.is_empty(),
        "failed requests during the upgrade: {failures:?}"
    );
}

/// Waits until the successor listens on the upgrade socket (it is then ready for SIGQUIT).
fn wait_for_socket(sock: &Path, new: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(
            new.try_wait().unwrap().is_none(),
            "the successor exited early"
        );
        assert!(
            Instant::now() < deadline,
            "the successor never opened {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_taken_port_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let b = Backend::start("b");
    let dir = temp_dir("taken");
    let config = dir.join("augur.yaml");
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(&config, Augur::full_config(&dir, admin, &simple(addr, &b))).unwrap();
    let (code, _, err) = augur_cmd(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("listener web: cannot listen on {addr}")),
        "{err}"
    );
}
