//! `loadgen`: an open-loop HTTP/1.1 load generator for the loopback routing benchmark.
//!
//! Requests arrive as a Poisson process at `--rate` per second, whether or not earlier ones
//! have been answered: each is sent at its scheduled moment on an idle keep-alive connection,
//! or on a new one when none is idle. Latency is measured from the *scheduled* send time, so a
//! slow server (or a late generator) shows up in the numbers instead of silently lowering the
//! offered load (no coordinated omission). Prints one JSON line with the percentiles.
//!
//! Usage: loadgen --url http://127.0.0.1:PORT/ --rate 1000 --duration 60s
//!        [--warmup 5s] [--timeout 2s] [--max-connections 10000] [--seed 1]

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the command line asks for.
struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    timeout: Duration,
    max_connections: usize,
    seed: u64,
}

fn parse_duration(flag: &str, value: &str) -> Result<Duration, String> {
    let (num, unit) = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((value, "s"), |i| value.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: expected a duration like 60s or 500ms, found {value:?}"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => {
            return Err(format!(
                "{flag}: unknown unit in {value:?} (use ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag}: {value:?}: {e}"))
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut rate, mut duration) = (None, None, None);
    let (mut warmup, mut timeout) = (Duration::ZERO, Duration::from_secs(2));
    let (mut max_connections, mut seed) = (10_000usize, 1u64);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag}: expected a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--rate" => {
                rate = Some(
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| {
                            format!("--rate: expected a positive number, found {value:?}")
                        })?,
                )
            }
            "--duration" => duration = Some(parse_duration(&flag, &value)?),
            "--warmup" => warmup = parse_duration(&flag, &value)?,
            "--timeout" => timeout = parse_duration(&flag, &value)?,
            "--max-connections" => {
                max_connections = value
                    .parse()
                    .map_err(|_| format!("--max-connections: expected a count, found {value:?}"))?
            }
            "--seed" => {
                seed = value
                    .parse()
                    .map_err(|_| format!("--seed: expected an integer, found {value:?}"))?
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url: expected http://HOST:PORT/PATH, found {url:?}"))?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let addr = host
        .parse()
        .map_err(|_| format!("--url: expected an IP:PORT host, found {host:?}"))?;
    Ok(Args {
        addr,
        host: host.to_owned(),
        path: path.to_owned(),
        rate: rate.ok_or("--rate is required")?,
        duration: duration.ok_or("--duration is required")?,
        warmup,
        timeout,
        max_connections,
        seed,
    })
}

/// splitmix64: the arrival-time generator (no dependency needed for exponential draws).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Gap to the next Poisson arrival: exponential with mean 1 / `rate`.
fn next_gap(state: &mut u64, rate: f64) -> Duration {
    let u = ((splitmix64(state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
    Duration::from_secs_f64(-u.ln() / rate)
}

/// Counters and the latency histogram of the measured (post-warm-up) requests.
struct Tally {
    latency_us: Histogram<u64>,
    sent: u64,
    ok: u64,
    errors: u64,
    timeouts: u64,
}

/// Why a request did not get a 2xx answer.
enum Failure {
    Timeout,
    Error,
}

/// Idle keep-alive connections, and how many exist in all.
struct Pool {
    idle: Vec<TcpStream>,
    open: usize,
}

/// Send one GET on `conn` and read the whole reply: its status, and whether `conn` stays open.
async fn exchange(
    conn: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    conn.write_all(request).await?;
    buf.clear();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("reply head larger than 64 KiB"));
        }
        if conn.read_buf(buf).await? == 0 {
            return Err(bad("connection closed before the reply head"));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("reply head is not UTF-8"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code in the reply"))?;
    let mut length = None;
    let mut close = false;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad(
                    "chunked replies are not supported (backends send content-length)",
                ));
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
    }
    let length = length.ok_or_else(|| bad("reply without content-length"))?;
    while buf.len() < head_end + length {
        if conn.read_buf(buf).await? == 0 {
            return Err(bad("connection closed inside the reply body"));
        }
    }
    Ok((status, !close))
}

/// One request scheduled for `at`: take or open a connection, exchange, give it back.
async fn one_request(
    args: Arc<Args>,
    request: Arc<Vec<u8>>,
    pool: Arc<Mutex<Pool>>,
    at: Instant,
) -> Result<Duration, Failure> {
    let deadline = at + args.timeout;
    let reused = {
        let mut p = pool.lock().expect("pool lock");
        match p.idle.pop() {
            Some(c) => Some(c),
            None if p.open >= args.max_connections => return Err(Failure::Error),
            None => {
                p.open += 1;
                None
            }
        }
    };
    let work = async {
        let mut conn = match reused {
            Some(c) => c,
            None => TcpStream::connect(args.addr).await?,
        };
        conn.set_nodelay(true)?;
        let mut buf = Vec::with_capacity(1024);
        let (status, keep) = exchange(&mut conn, &request, &mut buf).await?;
        Ok::<_, std::io::Error>((keep.then_some(conn), status))
    };
    let outcome = tokio::time::timeout_at(deadline, work).await;
    let elapsed = Instant::now().saturating_duration_since(at);
    let mut p = pool.lock().expect("pool lock");
    match outcome {
        Ok(Ok((conn, status))) => {
            match conn {
                Some(conn) => p.idle.push(conn),
                None => p.open -= 1,
            }
            if (200..300).contains(&status) {
                Ok(elapsed)
            } else {
                Err(Failure::Error)
            }
        }
        Ok(Err(_)) => {
            p.open -= 1;
            Err(Failure::Error)
        }
        Err(_) => {
            p.open -= 1;
            Err(Failure::Timeout)
        }
    }
}

async fn run(args: Args) -> Tally {
    let args = Arc::new(args);
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: augur-loadgen\r\n\r\n",
            args.path, args.host
        )
        .into_bytes(),
    );
    let pool = Arc::new(Mutex::new(Pool {
        idle: Vec::new(),
        open: 0,
    }));
    let tally = Arc::new(Mutex::new(Tally {
        latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        sent: 0,
        ok: 0,
        errors: 0,
        timeouts: 0,
    }));
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut rng = args.seed;
    let mut at = start + next_gap(&mut rng, args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    while at < end {
        tokio::time::sleep_until(at).await;
        let measured = at >= measure_from;
        let (a, r, p, t) = (args.clone(), request.clone(), pool.clone(), tally.clone());
        tasks.spawn(async move {
            let outcome = one_request(a.clone(), r, p, at).await;
            if !measured {
                return;
            }
            let mut t = t.lock().expect("tally lock");
            t.sent += 1;
            match outcome {
                Ok(latency) => {
                    t.ok += 1;
                    t.latency_us.saturating_record(latency.as_micros() as u64);
                }
                // A timed-out request took at least the timeout: keep it in the percentiles
                // so that a proxy cannot look fast by dropping its slowest requests.
                Err(Failure::Timeout) => {
                    t.timeouts += 1;
                    t.latency_us.saturating_record(a.timeout.as_micros() as u64);
                }
                Err(Failure::Error) => t.errors += 1,
            }
        });
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
        at += next_gap(&mut rng, args.rate);
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(tally)
        .ok()
        .expect("all tasks done")
        .into_inner()
        .expect("tally lock")
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let rate = args.rate;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let t = runtime.block_on(run(args));
    let h = &t.latency_us;
    println!(
        "{{\"rate\":{rate},\"sent\":{},\"ok\":{},\"errors\":{},\"timeouts\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        t.sent,
        t.ok,
        t.errors,
        t.timeouts,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::{next_gap, parse_args, parse_duration};
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("-d", "60s"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_duration("-d", "500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("-d", "2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-d", "5h").is_err());
    }

    #[test]
    fn arrivals_average_the_rate() {
        let mut state = 3;
        let n = 100_000;
        let total: f64 = (0..n)
            .map(|_| next_gap(&mut state, 1000.0).as_secs_f64())
            .sum();
        let mean_ms = total / n as f64 * 1e3;
        assert!((0.98..1.02).contains(&mean_ms), "mean gap {mean_ms} ms");
    }

    #[test]
    fn the_url_splits_into_address_and_path() {
        let argv = [
            "--url",
            "http://127.0.0.1:8080/x?y=1",
            "--rate",
            "10",
            "--duration",
            "1s",
        ];
        let args = parse_args(argv.iter().map(|s| s.to_string())).expect("valid");
        assert_eq!(args.addr.port(), 8080);
        assert_eq!(args.path, "/x?y=1");
        assert!(parse_args(["--url", "https://x/"].iter().map(|s| s.to_string())).is_err());
    }
}
