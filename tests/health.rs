//! Health under faults: a killed backend, a black hole, a backend answering 503, a flapping
//! one, and every backend down. Real augur processes, real backends (`augur backend`
//! processes, or the small fault-injecting server below on a real socket) and real clients,
//! on loopback. Each test prints what it measured (`-- --nocapture`); benches/RESULTS.md
//! records those figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::*;

/// What a [`Faulty`] backend does with what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 200 to everything.
    Healthy,
    /// 503 to everything.
    Unavailable,
    /// Reads requests and never answers.
    BlackHole,
    /// Requests get 200; health checks cycle 503, 503, 200.
    Flapping,
}

/// An HTTP/1.1 backend on a real socket whose behaviour the test switches at will.
struct Faulty {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    checks: Arc<AtomicU64>,
}

impl Faulty {
    fn start(name: &'static str) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Healthy));
        let checks = Arc::new(AtomicU64::new(0));
        let (m, c) = (Arc::clone(&mode), Arc::clone(&checks));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (m, c) = (Arc::clone(&m), Arc::clone(&c));
                std::thread::spawn(move || serve(conn, name, &m, &c));
            }
        });
        Faulty { addr, mode, checks }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
}

/// Serves one keep-alive connection until the peer closes it.
fn serve(conn: TcpStream, name: &str, mode: &Mutex<Mode>, checks: &AtomicU64) {
    let mut reader = BufReader::new(conn);
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let check = first.split(' ').nth(1) == Some("/healthz");
        let n = if check {
            checks.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        let mode = *mode.lock().unwrap();
        let status = match mode {
            Mode::Unavailable => 503,
            Mode::BlackHole => {
                // Hold the connection, answer nothing, until the peer gives up.
                let _ = reader.read_to_end(&mut Vec::new());
                return;
            }
            Mode::Flapping if check && n % 3 != 0 => 503,
            _ => 200,
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nx-backend: {name}\r\n\r\n{name}\n",
            name.len() + 1
        );
        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// augur with listener `web` (returned) sending everything to upstream `u`: `backends`, and
/// the upstream's `keys`.
fn front(test: &str, backends: &[SocketAddr], keys: &[(&str, &str)]) -> (SocketAddr, Augur) {
    let web = loopback();
    let upstream = keys
        .iter()
        .fold(Upstream::new("u", backends), |u, (key, value)| {
            u.with(key, value)
        });
    (web, Augur::start(test, &Config::web(web, upstream)))
}

/// `health` of the backend at `addr` in `/status`.
fn health_of(augur: &Augur, addr: SocketAddr) -> serde_json::Value {
    backend_status(augur, addr)["health"].clone()
}

fn backend_status(augur: &Augur, addr: SocketAddr) -> serde_json::Value {
    let status = augur.status();
    for u in status["upstreams"].as_array().unwrap() {
        for b in u["backends"].as_array().unwrap() {
            if b["addr"] == addr.to_string() {
                return b.clone();
            }
        }
    }
    panic!("{addr} not in /status: {status}")
}

fn state_of(augur: &Augur, addr: SocketAddr) -> String {
    health_of(augur, addr)["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn requests_of(augur: &Augur, addr: SocketAddr) -> u64 {
    backend_status(augur, addr)["requests"].as_u64().unwrap()
}

fn metric(augur: &Augur, series: &str) -> u64 {
    let m = augur.metrics();
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{m}"))
}

/// One timed request of a [`TimedLoop`].
struct Sample {
    started: Instant,
    took: Duration,
    status: u16,
}

/// GETs one after another on new connections, each timed, until stopped.
struct TimedLoop {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl TimedLoop {
    fn start(addr: SocketAddr) -> TimedLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status = try_get(addr, "/").map_or(0, |r| r.status);
                samples.push(Sample {
                    started,
                    took: started.elapsed(),
                    status,
                });
            }
            samples
        });
        TimedLoop { stop, handle }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("request loop panicked")
    }
}

fn p99(samples: &[&Sample]) -> Duration {
    let mut took: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    took.sort();
    took.get((took.len() * 99 / 100).min(took.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[test]
fn a_killed_backend_costs_no_request_is_taken_out_and_is_served_again_after_restart() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let c_addr = c.addr;
    let (web, augur) = front(
        "health-kill",
        &[a.addr, b.addr, c_addr],
        &[
            ("policy", "round_robin"),
            ("retries", "2"),
            (
                "health_check",
                "{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }",
            ),
        ],
    );
    let requests = RequestLoop::start(web, "/");
    eventually("c serving", || requests_of(&augur, c_addr), |n| *n > 20);

    let killed = Instant::now();
    drop(c);
    let state = eventually_within(
        Duration::from_secs(5),
        "c taken out",
        || state_of(&augur, c_addr),
        |s| s != "up",
    );
    let detected = killed.elapsed();
    let reason = health_of(&augur, c_addr)["reason"].clone();

    let _c = Backend::start_at("c", c_addr, Duration::ZERO);
    let restarted = Instant::now();
    let c_state = || state_of(&augur, c_addr);
    eventually_within(Duration::from_secs(5), "c back up", c_state, |s| s == "up");
    let back = restarted.elapsed();
    let served = requests_of(&augur, c_addr);
    eventually(
        "c served again",
        || requests_of(&augur, c_addr),
        |n| *n > served + 10,
    );
    let ok = requests.finish_clean("while c was killed and restarted");
    let retries = metric(&augur, "augur_upstream_retries_total{upstream=\"u\"}");
    assert!(
        retries > 0,
        "the requests that met the dead backend were retried"
    );
    let log = augur.log();
    assert!(log.contains("backend health change"), "{log}");
    eprintln!(
        "[health] kill: {ok} requests, 0 failed, {retries} retried; {state} after {detected:?} \
         ({reason}); up {back:?} after the restart"
    );
}

#[test]
fn a_black_hole_is_detected_taken_out_and_the_tail_recovers() {
    let [a, b] = ["a", "b"].map(Backend::start);
    let hole = Faulty::start("hole");
    let (web, augur) = front(
        "health-hole",
        &[a.addr, b.addr, hole.addr],
        &[
            ("policy", "round_robin"),
            ("read_timeout", "500ms"),
            ("retries", "2"),
            (
                "health_check",
                "{ kind: http, path: /healthz, interval: 300ms, timeout: 250ms, rise: 2, fall: 2 }",
            ),
        ],
    );
    let requests = TimedLoop::start(web);
    eventually(
        "the hole serving",
        || requests_of(&augur, hole.addr),
        |n| *n > 20,
    );

    let opened = Instant::now();
    hole.set(Mode::BlackHole);
    eventually_within(
        Duration::from_secs(5),
        "the hole taken out",
        || state_of(&augur, hole.addr),
        |s| s != "up",
    );
    let detected = opened.elapsed();
    // Two seconds of traffic after detection: the window measured, not a wait for anything.
    let after = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let samples = requests.finish();

    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started + s.took < opened)
        .collect();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= opened && s.started < after)
        .collect();
    let later: Vec<&Sample> = samples.iter().filter(|s| s.started >= after).collect();
    let failed = samples.iter().filter(|s| s.status != 200).count();
    assert_eq!(failed, 0, "GETs that met the hole were retried elsewhere");
    // Detected by the checks (250 ms timeout, fall 2, 200 ms apart) or by requests timing out
    // (500 ms): about twice the timeout.
    assert!(detected < Duration::from_millis(1500), "{detected:?}");
    assert!(!later.is_empty());
    let slowest_later = later.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        slowest_later < Duration::from_millis(250),
        "no request waits on the hole once it is out: {slowest_later:?}"
    );
    eprintln!(
        "[health] black hole: detected after {detected:?}; p99 {:?} before, {:?} until \
         detected, {:?} after ({} requests, {failed} failed)",
        p99(&before),
        p99(&during),
        p99(&later),
        samples.len()
    );
}

#[test]
fn a_backend_answering_503_is_ejected_and_returns_through_slow_start() {
    let [a, b] = ["a", "b"].map(Backend::start);
    let sick = Faulty::start("sick");
    let web = loopback();
    let upstream = Upstream::new("u", &[a.addr, b.addr, sick.addr]).with(
        "outlier_detection",
        "{ consecutive_failures: 3, base_ejection: 1s }",
    );
    let config = Config::web(web, upstream).predictor("{ slow_start: 3s }");
    let augur = Augur::start("health-503", &config);
    let requests = RequestLoop::start(web, "/");
    let sick_status = || backend_status(&augur, sick.addr);
    let warm = |s: &serde_json::Value| s["predicted"]["warmth"].as_f64() == Some(1.0);
    eventually("the sick backend warm", sick_status, warm);

    let fell_ill = Instant::now();
    sick.set(Mode::Unavailable);
    let health = eventually(
        "ejected",
        || health_of(&augur, sick.addr),
        |h| h["state"] == "ejected",
    );
    let ejected_after = fell_ill.elapsed();
    let reason = health["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.starts_with("3 failed requests in a row"), "{health}");
    sick.set(Mode::Healthy);
    eventually(
        "back from ejection",
        || state_of(&augur, sick.addr),
        |s| s == "up",
    );
    let returned = Instant::now();
    // Its share ramps up: it came back cold.
    let warmth = backend_status(&augur, sick.addr)["predicted"]["warmth"]
        .as_f64()
        .unwrap();
    assert!(warmth < 0.5, "warmth just after returning: {warmth}");
    let served = requests_of(&augur, sick.addr);
    eventually("served again and warm", sick_status, |s| {
        s["requests"].as_u64() > Some(served) && warm(s)
    });
    let warm_after = returned.elapsed();
    let (ok, failures) = requests.finish();
    // The 503s a client saw are the ones that led to the ejection (and any in flight then).
    assert!(
        failures.iter().all(|f| f.starts_with("status 503")),
        "{failures:?}"
    );
    assert!(failures.len() < 10, "{} 503s", failures.len());
    eprintln!(
        "[health] 503: ejected {ejected_after:?} after falling ill ({reason}); {} of {} \
         requests answered 503; warm {warm_after:?} after returning (slow_start 3s)",
        failures.len(),
        ok + failures.len() as u64
    );
}

#[test]
fn a_flapping_backend_does_not_flap_the_upstream() {
    let a = Backend::start("a");
    let flappy = Faulty::start("flappy");
    flappy.set(Mode::Flapping);
    let (web, augur) = front(
        "health-flap",
        &[a.addr, flappy.addr],
        &[
            ("policy", "round_robin"),
            (
                "health_check",
                "{ kind: http, path: /healthz, interval: 100ms, timeout: 80ms, rise: 2, fall: 3 }",
            ),
        ],
    );
    // Two of every three checks fail, never three in a row: with fall 3 it stays up.
    eventually("30 checks", || flappy.checks(), |n| *n >= 30);
    let health = health_of(&augur, flappy.addr);
    assert_eq!(health["state"], "up", "{health}");
    assert_eq!(health["changes"]["down"], 0, "{health}");
    assert_eq!(health["last_failure"], "bad status", "{health}");
    let log = augur.log();
    assert!(!log.contains("backend health change"), "{log}");
    for _ in 0..10 {
        assert_eq!(get(web, "localhost", "/").status, 200);
    }
    // Fails three in a row from now on: down, once.
    flappy.set(Mode::Unavailable);
    eventually("down", || state_of(&augur, flappy.addr), |s| s == "down");
    let health = health_of(&augur, flappy.addr);
    assert_eq!(health["changes"]["down"], 1, "{health}");
    assert_eq!(
        health["reason"], "3 failed checks in a row (last: bad status)",
        "{health}"
    );
    eprintln!(
        "[health] flapping: {} checks, 2 of 3 failing, no change; then down once",
        flappy.checks()
    );
}

#[test]
fn with_every_backend_down_clients_get_quick_502s_without_a_retry_storm() {
    let [a, b] = ["a", "b"].map(Backend::start);
    let (a_addr, b_addr) = (a.addr, b.addr);
    let (web, augur) = front(
        "health-down",
        &[a.addr, b.addr],
        &[
            ("retries", "2"),
            ("retry_budget", "{ ratio: 0.2, min_per_second: 1 }"),
            (
                "health_check",
                "{ kind: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }",
            ),
        ],
    );
    for _ in 0..20 {
        assert_eq!(get(web, "localhost", "/").status, 200);
    }
    let retried_before = metric(&augur, "augur_upstream_retries_total{upstream=\"u\"}");
    drop(a);
    drop(b);
    let n = 200;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        let r = get(web, "localhost", "/");
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 502, "{}", r.text());
    }
    let all_failed_in = started.elapsed();
    let retried = metric(&augur, "augur_upstream_retries_total{upstream=\"u\"}") - retried_before;
    let refused = metric(
        &augur,
        "augur_upstream_retries_over_budget_total{upstream=\"u\"}",
    );
    // The budget: 0.2 per request over the last ten seconds (220 requests) plus 1 per second.
    assert!(retried <= 220 / 5 + 10, "{retried} retries");
    assert!(refused > 0, "the budget refused retries");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    let _a = Backend::start_at("a", a_addr, Duration::ZERO);
    let restarted = Instant::now();
    let five = Duration::from_secs(5);
    let answer = || get(web, "localhost", "/").status;
    eventually_within(five, "served again", answer, |status| *status == 200);
    let first_ok = restarted.elapsed();
    eventually_within(five, "a up", || state_of(&augur, a_addr), |s| s == "up");
    // Once `a` is up again and `b` known down (its checks; the ejection cap, half of two, may
    // have spared it), everything goes to `a`.
    eventually_within(five, "b down", || state_of(&augur, b_addr), |s| s != "up");
    for _ in 0..20 {
        assert_eq!(get(web, "localhost", "/").status, 200);
    }
    eprintln!(
        "[health] all down: {n} requests answered 502 in {all_failed_in:?} (slowest \
         {slowest:?}); {retried} retries, {refused} refused by the budget; first 200 \
         {first_ok:?} after a backend returned"
    );
}
