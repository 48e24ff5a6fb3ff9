//! `augur demo`: augur in front of three built-in backends, one of which slows down every
//! 30 s, with a built-in load and a terminal view of what the predictor sees and where the
//! traffic goes. The backends are [`backend::DemoBackend`], which `augur backend` also runs
//! alone for the tests and benchmarks.

pub mod backend;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use serde_json::Value;

use crate::client::{self, Budget, Connection, Limits, Request};
use crate::runtime::content_hash;
use crate::server;
use backend::{Degradation, DemoBackend};

/// The config the demo runs.
const CONFIG: &str = include_str!("../../../examples/demo.yaml");
/// The built-in backends: name, address, delay in ms.
const BACKENDS: [(&str, &str, u64); 3] = [
    ("demo-1", "127.0.0.1:9001", 5),
    ("demo-2", "127.0.0.1:9002", 5),
    ("demo-3", "127.0.0.1:9003", 5),
];
/// Requests per second the built-in load sends.
const LOAD_PER_SECOND: u64 = 60;
/// Client threads of the built-in load.
const CLIENTS: u64 = 4;
/// Caps on what the load and the view read (`/status` of the demo is a few KiB).
const LIMITS: Limits = Limits {
    head: 16 << 10,
    body: 4 << 20,
};
/// Longest wait for one answer (the demo upstream's own read timeout).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the demo in the foreground until interrupted.
pub fn run() -> anyhow::Result<()> {
    let config =
        augur_config::parse(CONFIG, "examples/demo.yaml").map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "augur demo: proxy on http://127.0.0.1:8080, admin on http://127.0.0.1:9901
backends demo-1/2/3 on 127.0.0.1:9001-9003 answer in 5 ms; demo-3 takes 60 ms more for the
last 10 s of every 30 s. A built-in load sends {LOAD_PER_SECOND} requests/s; policy: predictive.
Watch the table: once the predictor has seen two cycles (about a minute) it expects
demo-3's slow phase and moves traffic away as it starts.

try:
  curl -s http://127.0.0.1:8080/hello
  wrk -t1 -c16 -d10s http://127.0.0.1:8080/
  curl -s http://127.0.0.1:9901/status
  curl -s http://127.0.0.1:9901/metrics
Ctrl-C stops it."
    );
    let started = Instant::now();
    let extra = BACKENDS
        .iter()
        .map(|(name, addr, ms)| {
            let addr: SocketAddr = addr.parse().expect("demo backend address is valid");
            let mut backend = DemoBackend::new(*name, Duration::from_millis(*ms));
            if *name == "demo-3" {
                backend = backend.degrading(Degradation {
                    period: Duration::from_secs(30),
                    length: Duration::from_secs(10),
                    extra: Duration::from_millis(60),
                    since: started,
                });
            }
            let mut service = Service::new((*name).to_owned(), backend);
            service.add_tcp(&addr.to_string());
            let service: Box<dyn ServiceWithDependents> = Box::new(service);
            ((*name).to_owned(), addr, service)
        })
        .collect();
    let proxy: SocketAddr = "127.0.0.1:8080".parse().expect("valid address");
    let admin: SocketAddr = "127.0.0.1:9901".parse().expect("valid address");
    start(proxy, admin);
    server::run(server::Launch {
        config,
        hash: content_hash(CONFIG.as_bytes()),
        config_path: None,
        upgrade: false,
        extra,
    })
}

/// Starts the built-in load against `proxy` and the view that polls `admin`.
fn start(proxy: SocketAddr, admin: SocketAddr) {
    for client in 0..CLIENTS {
        let _ = std::thread::Builder::new()
            .name(format!("demo-load-{client}"))
            .spawn(move || load(proxy));
    }
    let _ = std::thread::Builder::new()
        .name("demo-view".into())
        .spawn(move || view(admin));
}

/// One client: keep-alive requests, paced to its share of the rate.
fn load(proxy: SocketAddr) {
    let gap = Duration::from_micros(1_000_000 * CLIENTS / LOAD_PER_SECOND);
    let mut conn: Option<Connection> = None;
    let mut next = Instant::now();
    loop {
        // Pacing, not synchronisation: the load is meant to arrive at a steady rate.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        if conn.is_none() {
            conn = Connection::open(proxy, TIMEOUT).ok();
        }
        let ok = conn
            .as_mut()
            .is_some_and(|c| c.send(&Request::get("/demo"), TIMEOUT, LIMITS).is_ok());
        if !ok {
            conn = None;
        }
    }
}

/// Every 2 s: observed latency (and the age of the latest sample), predicted latency and the
/// share of the last 2 s, per backend.
fn view(admin: SocketAddr) {
    let budget = Budget {
        connect: TIMEOUT,
        total: TIMEOUT,
        limits: LIMITS,
    };
    let mut last: Vec<u64> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let Some(status) = client::fetch(admin, &Request::get("/status"), budget)
            .ok()
            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
        else {
            continue;
        };
        let backends = status["upstreams"][0]["backends"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let counts: Vec<u64> = backends
            .iter()
            .map(|b| b["requests"].as_u64().unwrap_or(0))
            .collect();
        let delta: Vec<u64> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.saturating_sub(last.get(i).copied().unwrap_or(0)))
            .collect();
        let total: u64 = delta.iter().sum::<u64>().max(1);
        let mut out = String::from("\nbackend          observed   sample age   predicted   share (predictive)   round_robin would give\n");
        for (i, b) in backends.iter().enumerate() {
            let p = &b["predicted"];
            let ms = |v: &Value| {
                v.as_f64()
                    .map_or("     -".to_owned(), |x| format!("{x:6.1}"))
            };
            let age = p["sample_age_ms"]
                .as_f64()
                .map_or("      -".to_owned(), |x| format!("{:6.1}s", x / 1e3));
            out.push_str(&format!(
                "{:<16} {} ms  {}      {} ms   {:5.1}%               {:5.1}%\n",
                b["addr"].as_str().unwrap_or("?"),
                ms(&p["observed_latency_ms"]),
                age,
                ms(&p["latency_ms"]),
                100.0 * delta[i] as f64 / total as f64,
                100.0 / backends.len().max(1) as f64,
            ));
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        last = counts;
    }
}
