//! Routing-quality scenarios: a deterministic discrete-event simulation that drives augur's
//! real predictor and real policies on a virtual clock and compares the policies side by
//! side, every figure as a ratio to `p2c_peak_ewma` measured in the same seed.
//!
//! ```sh
//! cargo run --release -p augur-benches --bin scenarios -- [--seeds N] [--scenario S3] [--quick] [--threads N]
//! ```
//!
//! The report (markdown) goes to stdout and is the same for the same arguments; progress and
//! wall time go to stderr.
#![forbid(unsafe_code)]

mod backend;
mod balancer;
mod dist;
mod engine;
mod report;
mod rng;
mod s9;
mod s9_report;
mod scenario;
mod standby;
mod stats;

use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use balancer::PolicyKind;
use engine::CellResult;
use report::ScenarioResults;
use s9::Strategy;
use scenario::{Scenario, INSTANCES, LIMIT, MEAN_SERVICE, MS, SEC, TIMEOUT};

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    seeds: u64,
    scenario: Option<String>,
    quick: bool,
    threads: usize,
}

const USAGE: &str = "usage: scenarios [--seeds N] [--scenario KEY] [--quick] [--threads N]
  --seeds N       seeds per cell (default 5)
  --scenario KEY  one scenario family (S1..S9: S3 also runs S3-ln and S3-noorca) or one
                  key (S2b, S3-ln, ...); default all
  --quick         short runs, for a CI smoke test
  --threads N     worker threads (default 2)";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        seeds: 5,
        scenario: None,
        quick: false,
        threads: 2,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--seeds" => {
                o.seeds = value("--seeds")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?;
            }
            "--threads" => {
                o.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?;
            }
            "--scenario" => o.scenario = Some(value("--scenario")?),
            "--quick" => o.quick = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.seeds == 0 || o.threads == 0 {
        return Err("--seeds and --threads must be at least 1".into());
    }
    Ok(o)
}

/// One unit of work: a cell of a scenario's table, or of S9's.
#[derive(Debug, Clone, Copy)]
enum Cell<'s> {
    Table {
        scenario: &'s Scenario,
        policy: PolicyKind,
        seed: u64,
    },
    Standby {
        scenario: &'s Scenario,
        strategy: Strategy,
        routing: PolicyKind,
        seed: u64,
    },
}

/// What a cell measured.
#[derive(Debug)]
enum Done {
    Table(CellResult),
    Standby(s9::Cell),
}

/// Per scenario, policy and seed; and S9's per scenario, strategy, routing policy and seed.
type AllResults = (Vec<Vec<Vec<CellResult>>>, Vec<Vec<Vec<Vec<s9::Cell>>>>);

/// Runs every cell on `threads` workers, longest scenarios first; results come back in cell
/// order whatever the scheduling, so the report does not depend on it.
fn run_all(scenarios: &[Scenario], s9: &[Scenario], seeds: u64, threads: usize) -> AllResults {
    let routings = s9::ROUTING.len();
    let mut cells: Vec<Cell> = grid(scenarios.len(), PolicyKind::ALL.len(), seeds)
        .map(|(scenario, policy, seed)| Cell::Table {
            scenario: &scenarios[scenario],
            policy: PolicyKind::ALL[policy],
            seed,
        })
        .collect();
    // A plan is a strategy and a routing policy, routing varying faster.
    let plans = Strategy::ALL.len() * routings;
    cells.extend(
        grid(s9.len(), plans, seeds).map(|(scenario, plan, seed)| Cell::Standby {
            scenario: &s9[scenario],
            strategy: Strategy::ALL[plan / routings],
            routing: s9::ROUTING[plan % routings],
            seed,
        }),
    );
    let cost = |c: &Cell| match *c {
        Cell::Table { scenario, .. } | Cell::Standby { scenario, .. } => scenario.cost(),
    };
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| cost(&cells[b]).total_cmp(&cost(&cells[a])));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Done>>> = Mutex::new((0..cells.len()).map(|_| None).collect());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let done = match cells[i] {
                    Cell::Table {
                        scenario,
                        policy,
                        seed,
                    } => Done::Table(engine::run(scenario, policy, seed)),
                    Cell::Standby {
                        scenario,
                        strategy,
                        routing,
                        seed,
                    } => Done::Standby(s9::run(scenario, strategy, routing, seed)),
                };
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(done);
                }
                if (k + 1).is_multiple_of(20) || k + 1 == cells.len() {
                    eprintln!(
                        "{}/{} cells, {:.1} s",
                        k + 1,
                        cells.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let (mut table, mut standby_cells) = (Vec::new(), Vec::new());
    for done in results.into_inner().unwrap_or_default() {
        match done {
            Some(Done::Table(r)) => table.push(r),
            Some(Done::Standby(r)) => standby_cells.push(r),
            None => {}
        }
    }
    let seeds = seeds as usize;
    let tables = groups(groups(table, seeds), PolicyKind::ALL.len());
    let s9_cells = groups(
        groups(groups(standby_cells, seeds), routings),
        Strategy::ALL.len(),
    );
    (tables, s9_cells)
}

/// Every (outer, inner, seed) in order, seeds counted from 1 and varying fastest.
fn grid(outer: usize, inner: usize, seeds: u64) -> impl Iterator<Item = (usize, usize, u64)> {
    (0..outer).flat_map(move |o| (0..inner).flat_map(move |i| (1..=seeds).map(move |s| (o, i, s))))
}

/// `flat` cut into consecutive groups of `size` (the last one shorter if it must be).
fn groups<T>(flat: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut flat = flat.into_iter().peekable();
    let mut out = Vec::new();
    while flat.peek().is_some() {
        out.push(flat.by_ref().take(size.max(1)).collect());
    }
    out
}

fn header(o: &Options, args: &[String], out: &mut String) {
    let every = scenario::all(o.quick);
    let service = every[0].service;
    let ln = dist::ServiceTime::lognormal(MEAN_SERVICE, MEAN_SERVICE);
    let (short, long) = every.iter().fold((u64::MAX, 0), |(s, l), x| {
        (s.min(x.duration), l.max(x.duration))
    });
    let warmup = every[0].warmup;
    let shown_args = if args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", args.join(" "))
    };
    let _ = writeln!(out, "# augur routing-quality scenarios\n");
    let _ = writeln!(
        out,
        "Command: `cargo run --release -p augur-benches --bin scenarios{shown_args}`\n"
    );
    let _ = writeln!(
        out,
        "- **Model.** 10 backends (11 in S8), each serving at most c = {LIMIT} requests at \
         once with an unbounded FIFO queue behind; {INSTANCES} independent balancer instances, \
         each with its own members (own in-flight counters and peak-EWMA RTTs), own policy \
         object and own `Predictor` (default settings, ticked every 100 ms of virtual time, fed \
         only its own observations); arrivals spread uniformly over the instances."
    );
    let _ = writeln!(
        out,
        "- **Arrivals.** Open-loop Poisson (thinned when the load varies) at load × capacity; \
         capacity = Σ c ÷ (μ × static slow-down) = 8,000 req/s for 10 backends at μ = 10 ms \
         (S2a 6,000, S2b 7,280; the dynamic slow-downs of S3, S4, S8 do not lower it)."
    );
    let _ = writeln!(
        out,
        "- **Service.** *normal*: Normal(m, σ = m) with draws below 0 resampled, m = {:.2} ms so \
         the mean stays μ = {:.1} ms (sd {:.2} ms); *lognormal*: mean {:.1} ms, sd {:.1} ms. A \
         backend's speed multiplier applies to the work left of requests in service too (a \
         stall stops them).",
        match service {
            dist::ServiceTime::TruncatedNormal { m, .. } => m / MS as f64,
            dist::ServiceTime::LogNormal { .. } => f64::NAN,
        },
        service.mean() / MS as f64,
        service.sd() / MS as f64,
        ln.mean() / MS as f64,
        ln.sd() / MS as f64,
    );
    let _ = writeln!(
        out,
        "- **Client.** Timeout {} s: the request counts as an error and as {} ms in the \
         percentiles; if still queued it is dropped, if in service it keeps its backend busy. \
         No retries.",
        TIMEOUT / SEC,
        TIMEOUT / MS
    );
    let _ = writeln!(
        out,
        "- **Feedback.** Each response feeds its instance's predictor (latency = queueing + \
         service, outcome Ok) and the member's peak-EWMA RTT (linkerd's 30 ms default, 10 s \
         decay); a timeout feeds the predictor as Broken and, as in the proxy, not the RTT. \
         Utilisation reports (ORCA) = requests still in service ÷ c as the response leaves, on in every table except \
         S3-noorca."
    );
    let _ = writeln!(
        out,
        "- **Runs.** Arrivals for {} s (S3, S5, S9 and their variants) or {} s (the others); \
         requests arriving in the first {} s are not counted; {} seed(s); in a seed every policy \
         sees the same arrivals, instances and service times.",
        long / SEC,
        short / SEC,
        warmup / SEC,
        o.seeds
    );
    let _ = writeln!(
        out,
        "- **Figures.** Percentiles pooled over seeds, from a log-linear histogram (0.1% \
         resolution); max = largest over seeds; errors summed over seeds. Ratios: per seed, the \
         policy's percentile ÷ p2c_peak_ewma's in the same seed; the mean over seeds with a 95% \
         percentile-bootstrap interval (1,000 resamples). Share min–max: of all requests, per \
         backend.\n"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let wanted = |s: &Scenario| {
        o.scenario
            .as_deref()
            .is_none_or(|want| s.key == want || s.family == want)
    };
    let scenarios: Vec<Scenario> = scenario::all(o.quick)
        .into_iter()
        .filter(|s| wanted(s))
        .collect();
    let s9: Vec<Scenario> = s9::s9(o.quick).into_iter().filter(|s| wanted(s)).collect();
    if scenarios.is_empty() && s9.is_empty() {
        eprintln!("no scenario matches {:?}\n{USAGE}", o.scenario);
        std::process::exit(2);
    }
    let started = Instant::now();
    let (results, s9_cells) = run_all(&scenarios, &s9, o.seeds, o.threads);
    let mut out = String::new();
    header(&o, &args, &mut out);
    let grouped: Vec<ScenarioResults<'_>> = scenarios
        .iter()
        .zip(results)
        .map(|(scenario, cells)| ScenarioResults { scenario, cells })
        .collect();
    for r in &grouped {
        r.table(&mut out);
    }
    let s9_results: Vec<s9_report::Results<'_>> = s9
        .iter()
        .zip(s9_cells)
        .map(|(scenario, cells)| s9_report::Results { scenario, cells })
        .collect();
    for r in &s9_results {
        r.section(&mut out);
    }
    report::goals(&grouped, &s9_results, &mut out);
    print!("{out}");
    eprintln!("wall time {:.1} s", started.elapsed().as_secs_f64());
}
