//! `augur demo`: augur in front of three built-in backends, one of which slows down every
//! 30 s, with a built-in load and a terminal view of what the predictor sees and where the
//! traffic goes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Requests per second the built-in load sends.
pub const LOAD_PER_SECOND: u64 = 60;
/// Client threads of the built-in load.
const CLIENTS: u64 = 4;

/// Starts the built-in load against `proxy` and the view that polls `admin`.
pub fn start(proxy: SocketAddr, admin: SocketAddr) {
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
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut next = Instant::now();
    loop {
        // Pacing, not synchronisation: the load is meant to arrive at a steady rate.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += gap;
        if conn.is_none() {
            conn = TcpStream::connect(proxy).ok().map(BufReader::new);
        }
        let ok = conn.as_mut().is_some_and(|c| get(c, "/demo").is_some());
        if !ok {
            conn = None;
        }
    }
}

/// A keep-alive GET; returns the body, or `None` when the connection is no good.
fn get(conn: &mut BufReader<TcpStream>, path: &str) -> Option<Vec<u8>> {
    write!(conn.get_mut(), "GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").ok()?;
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).ok()?;
    Some(body)
}

/// Every 2 s: observed and predicted latency per backend and its share of the last 2 s.
fn view(admin: SocketAddr) {
    let mut last: Vec<u64> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let Some(status) = TcpStream::connect(admin)
            .ok()
            .map(BufReader::new)
            .and_then(|mut c| get(&mut c, "/status"))
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
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
        let mut out = String::from("\nbackend          observed   predicted   share (predictive)   round_robin would give\n");
        for (i, b) in backends.iter().enumerate() {
            let p = &b["predicted"];
            let ms = |v: &Value| {
                v.as_f64()
                    .map_or("     -".to_owned(), |x| format!("{x:6.1}"))
            };
            out.push_str(&format!(
                "{:<16} {} ms  {} ms   {:5.1}%               {:5.1}%\n",
                b["addr"].as_str().unwrap_or("?"),
                ms(&p["observed_latency_ms"]),
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
