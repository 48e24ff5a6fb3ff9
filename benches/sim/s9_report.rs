//! S9's section of the report and its goal check.

use std::fmt::Write;

use crate::balancer::PolicyKind;
use crate::engine::TICK;
use crate::report::{check, ci, stream, RESAMPLES};
use crate::s9::{self, Cell, Change, Strategy, ROUTING, SLO};
use crate::scenario::{Load, Scenario, LIMIT, MS, SEC, TIMEOUT};
use crate::standby::{ACTIVATE_AT, MIN_HOLD};
use crate::stats::{bootstrap_mean, Histogram};

/// The goal's bars.
const SLO_BAR: f64 = 0.2;
const BACKEND_BAR: f64 = 1.15;

/// S9's cells: `cells[strategy][routing][seed]`, in `Strategy::ALL` and `ROUTING` order.
#[derive(Debug)]
pub struct Results<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// One result per strategy, routing policy and seed.
    pub cells: Vec<Vec<Vec<Cell>>>,
}

/// `a ÷ b`, with 0 ÷ 0 = 0 (both perfect) and x ÷ 0 = ∞.
fn divide(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

fn seconds(nanos: f64) -> String {
    format!("{:.1}", nanos / SEC as f64)
}

impl Results<'_> {
    fn cells(&self, s: Strategy, routing: PolicyKind) -> &[Cell] {
        let i = Strategy::ALL.iter().position(|&x| x == s).unwrap_or(0);
        let j = ROUTING.iter().position(|&x| x == routing).unwrap_or(0);
        &self.cells[i][j]
    }

    /// Per seed: `f`(strategy `a`) ÷ `f`(strategy `b`) under `routing`, mean over seeds with
    /// a 95% bootstrap interval.
    fn ratio(
        &self,
        a: Strategy,
        b: Strategy,
        routing: PolicyKind,
        salt: u64,
        f: fn(&Cell) -> f64,
    ) -> (f64, f64, f64) {
        let values: Vec<f64> = self
            .cells(a, routing)
            .iter()
            .zip(self.cells(b, routing))
            .map(|(x, y)| divide(f(x), f(y)))
            .collect();
        let j = ROUTING.iter().position(|&x| x == routing).unwrap_or(0) as u64;
        bootstrap_mean(
            &values,
            RESAMPLES,
            &mut stream(&self.scenario.key, salt * 8 + j),
        )
    }

    fn slo_ratio(&self, routing: PolicyKind) -> (f64, f64, f64) {
        self.ratio(Strategy::Predictive, Strategy::Reactive, routing, 1, |c| {
            c.measured.violations() as f64
        })
    }

    fn backend_ratio(&self, routing: PolicyKind) -> (f64, f64, f64) {
        self.ratio(Strategy::Predictive, Strategy::Oracle, routing, 2, |c| {
            c.measured.backend_seconds()
        })
    }

    /// The section.
    pub fn section(&self, out: &mut String) {
        let sc = self.scenario;
        let seeds = self.cells(Strategy::Oracle, ROUTING[0]).len();
        let _ = writeln!(out, "## {}: {}\n", sc.key, sc.title);
        self.describe(out, seeds);
        let _ = writeln!(
            out,
            "| activation | routing | SLO-violation s per seed: mean (min–max) | \
             backend-s per seed (standby part) | p99 ms | p99.9 ms | errors+timeouts | \
             SLO-violation s ÷ reactive [95% CI] | backend-s ÷ oracle [95% CI] |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
        for routing in ROUTING {
            for s in Strategy::ALL {
                let cells = self.cells(s, routing);
                let n = cells.len().max(1) as f64;
                let v: Vec<u64> = cells.iter().map(|c| c.measured.violations()).collect();
                let mean = |f: fn(&Cell) -> f64| cells.iter().map(f).sum::<f64>() / n;
                let mut h = Histogram::default();
                for c in cells {
                    h.merge(&c.cell.latency);
                }
                let errors: u64 = cells.iter().map(|c| c.cell.errors).sum();
                let (slo, backend) = if s == Strategy::Predictive {
                    (ci(self.slo_ratio(routing)), ci(self.backend_ratio(routing)))
                } else {
                    ("–".into(), "–".into())
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} ({}–{}) | {:.0} ({:.0}) | {:.1} | {:.1} | {} ({:.2}%) | {} | {} |",
                    s.name(),
                    routing.name(),
                    v.iter().sum::<u64>() as f64 / n,
                    v.iter().min().unwrap_or(&0),
                    v.iter().max().unwrap_or(&0),
                    mean(|c| c.measured.backend_seconds()),
                    mean(|c| c.measured.standby_nanos as f64 / SEC as f64),
                    h.quantile_ms(0.99),
                    h.quantile_ms(0.999),
                    errors,
                    100.0 * errors as f64 / h.count().max(1) as f64,
                    slo,
                    backend,
                );
            }
        }
        self.timings(out);
        self.cold_start(out);
        self.forecast(out);
        out.push('\n');
    }

    /// What the scenario and its figures are.
    fn describe(&self, out: &mut String, seeds: usize) {
        let sc = self.scenario;
        let mu = sc.service.mean() / SEC as f64;
        let concurrent = sc.capacity() * mu;
        let peak = sc.load.max() * concurrent;
        let all = sc.backends as f64 * LIMIT as f64;
        if let Load::Plateau { start, .. } = sc.load {
            if sc.key.contains('-') {
                let _ = writeln!(
                    out,
                    "As S9, the peak earlier: the rise begins at t = {} s, one min_hold after \
                     the start, when whatever the planner woke at its start goes back to sleep, \
                     where min_hold holds it for another {} s.\n",
                    start / SEC,
                    MIN_HOLD / SEC
                );
                return;
            }
        }
        let _ = writeln!(
            out,
            "Each backend c = {LIMIT}, μ = {:.0} ms ({:.0} req/s); active capacity {:.0} req/s \
             ({concurrent:.0} concurrent), peak demand {peak:.1} concurrent, {:.0}% of all {}. \
             The rise is as long as the longest warm-up: with a 60 s rise, in a trial run, \
             reactive activation broke the SLO in no second, which leaves the goal's ratio \
             nothing to measure. Activation strategies, each deciding every 100 ms tick and \
             applied to all four instances' snapshots: **predictive** = augur's \
             `CapacityPlanner` (activate_at {ACTIVATE_AT}, min_hold {} s, horizon 5 s), one \
             for the pool, fed by the requests in flight to the serving members *summed* over the four \
             instances (each sees a quarter of the traffic), which its demand model forecasts; **reactive** = wake the next \
             standby when the instances' in-flight count (queued included), averaged over the \
             last second, exceeds {ACTIVATE_AT} × the capacity provisioned (warming included), \
             put the last one back below 0.8 × the capacity left without it (min_hold and one \
             change per tick, as the planner); **oracle** = knows the rate curve, wakes standby \
             k exactly its warm-up before true demand (rate × μ) exceeds {ACTIVATE_AT} × the \
             capacity before k, puts it back when true demand stays below 0.8 × that for a \
             warm-up ahead. A woken backend serves once its warm-up has passed. \
             **SLO-violation-seconds**: seconds of [{}, {}) s whose p99 latency of requests \
             finished in that second exceeds {} ms (a timeout counts as {} s, so > 1% \
             timeouts in a second is a violation too). **Backend-seconds**: Σ over backends of \
             time provisioned in the same window ({} active × {} s, plus each standby from \
             wake to sleep, warming included). Ratios per seed (x ÷ 0 = ∞, 0 ÷ 0 = 0), mean \
             over {seeds} seeds with a 95% bootstrap interval.\n",
            mu * 1e3,
            LIMIT as f64 / mu,
            sc.capacity(),
            100.0 * peak / all,
            sc.backends,
            MIN_HOLD / SEC,
            sc.warmup / SEC,
            sc.duration / SEC,
            SLO / MS,
            TIMEOUT / SEC,
            sc.backends - sc.standby.len(),
            (sc.duration - sc.warmup) / SEC,
        );
    }

    /// What the planner did before the measured window (predictive routing, first seed).
    fn cold_start(&self, out: &mut String) {
        let sc = self.scenario;
        let members = s9::members(sc);
        let Some(cell) = self.cells(Strategy::Predictive, ROUTING[0]).first() else {
            return;
        };
        let changes = &cell.measured.changes;
        let early: Vec<&Change> = changes
            .iter()
            .filter(|c| c.wake && c.at < sc.warmup)
            .collect();
        if early.is_empty() {
            let _ = writeln!(
                out,
                "\nStart: the planner woke nothing in the first {} s (first seed).",
                sc.warmup / SEC
            );
            return;
        }
        let ratios: Vec<f64> = early
            .iter()
            .map(|c| c.demand / s9::true_demand(sc, c.at + members[c.backend].warmup_nanos))
            .collect();
        let back: Vec<u64> = early
            .iter()
            .filter_map(|w| {
                let later = changes
                    .iter()
                    .filter(|c| c.backend == w.backend && c.at > w.at);
                later.take(1).find(|c| !c.wake).map(|c| c.at)
            })
            .collect();
        let span = |v: &[u64], plus: u64| match (v.iter().min(), v.iter().max()) {
            (Some(a), Some(b)) => format!(
                "{}–{} s",
                seconds((a + plus) as f64),
                seconds((b + plus) as f64)
            ),
            _ => "never".into(),
        };
        let last = early.iter().map(|c| c.at).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "\nStart (predictive activation and routing, first seed): the planner woke {} \
             standby backend(s) by t = {} s, after {} ticks of traffic, on demand forecasts \
             {:.0}–{:.0}× the true demand one warm-up ahead; it put them back at {}, and \
             min_hold then held them asleep until {}.",
            early.len(),
            seconds(last as f64),
            last / TICK,
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
            span(&back, 0),
            span(&back, MIN_HOLD),
        );
    }

    /// When each standby was provisioned in the first seed, per strategy (predictive routing).
    fn timings(&self, out: &mut String) {
        let sc = self.scenario;
        let members = s9::members(sc);
        let _ = writeln!(
            out,
            "\nStandby backends provisioned (wake → sleep, s), first seed, predictive routing; \
             in brackets the wakes per seed over all seeds. For predictive, the planner's \
             demand at each of those wakes (`Transition.demand`, its forecast one warm-up \
             ahead) ÷ the true demand one warm-up later.\n"
        );
        let _ = writeln!(
            out,
            "| standby (warm-up) | predictive | forecast ÷ true at its wakes | reactive | oracle |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (b, m) in members.iter().enumerate().filter(|(_, m)| m.standby) {
            let mut row = vec![format!("{b} ({} s)", m.warmup_nanos / SEC)];
            for s in Strategy::ALL {
                let cells = self.cells(s, ROUTING[0]);
                let wakes: usize = cells
                    .iter()
                    .flat_map(|c| &c.measured.changes)
                    .filter(|x| x.backend == b && x.wake)
                    .count();
                let mine: Vec<Change> = cells
                    .first()
                    .map(|c| {
                        let all = c.measured.changes.iter();
                        all.filter(|x| x.backend == b).copied().collect()
                    })
                    .unwrap_or_default();
                let mut spans = Vec::new();
                for (k, x) in mine.iter().enumerate().filter(|(_, x)| x.wake) {
                    let until = mine.get(k + 1).filter(|y| !y.wake);
                    spans.push(format!(
                        "{}–{}",
                        seconds(x.at as f64),
                        until.map_or("end".into(), |y| seconds(y.at as f64))
                    ));
                }
                let per_seed = wakes as f64 / cells.len().max(1) as f64;
                let shown = if spans.is_empty() {
                    "never".into()
                } else {
                    spans.join(", ")
                };
                row.push(format!("{shown} [{per_seed:.1}]"));
                if s == Strategy::Predictive {
                    let r: Vec<String> = mine
                        .iter()
                        .filter(|x| x.wake)
                        .map(|x| {
                            let truth = s9::true_demand(sc, x.at + m.warmup_nanos);
                            format!("{:.2}", x.demand / truth)
                        })
                        .collect();
                    row.push(if r.is_empty() {
                        "–".into()
                    } else {
                        r.join(", ")
                    });
                }
            }
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
    }

    /// Per phase of the load: the planner's `PoolReport.demand` against the truth, and what
    /// each strategy provisioned and broke (predictive routing).
    fn forecast(&self, out: &mut String) {
        let sc = self.scenario;
        let phases = s9::phases(sc);
        let routed = |s: Strategy| self.cells(s, ROUTING[0]);
        let n = routed(Strategy::Predictive).len().max(1) as f64;
        let _ = writeln!(
            out,
            "\nBy phase, predictive routing, means per seed. *Forecast*: the planner's \
             `PoolReport.demand` (max of now and 5 s ahead of the pool's demand model, which \
             forecasts the requests in flight summed over the instances, so in overload it counts \
             the backlog too), mean over the phase's ticks; \
             *true*: the same max of rate × μ. \
             Standby-s: standby backends provisioned; violations: SLO-violation-seconds.\n"
        );
        let _ = writeln!(
            out,
            "| phase | s | forecast | true | forecast ÷ true | standby-s pred / react / oracle | \
             violations pred / react / oracle |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|");
        for (p, (name, from, to)) in phases.iter().enumerate() {
            let (ticks, f, t) =
                routed(Strategy::Predictive)
                    .iter()
                    .fold((0u64, 0.0, 0.0), |acc, c| {
                        let x = c.measured.forecast[p];
                        (acc.0 + x.0, acc.1 + x.1, acc.2 + x.2)
                    });
            let ticks = ticks.max(1) as f64;
            let per = |f: &dyn Fn(&Cell) -> f64| {
                let v: Vec<String> = Strategy::ALL
                    .iter()
                    .map(|&s| format!("{:.1}", routed(s).iter().map(f).sum::<f64>() / n))
                    .collect();
                v.join(" / ")
            };
            let standby_s = per(&|c: &Cell| c.measured.phase_nanos[p] as f64 / SEC as f64);
            let broken = if *from < sc.warmup {
                "–".into()
            } else {
                let (lo, hi) = ((from - sc.warmup) / SEC, (to - sc.warmup) / SEC);
                per(&|c: &Cell| c.measured.violations_in(lo as usize, hi as usize) as f64)
            };
            let _ = writeln!(
                out,
                "| {name} | {}–{} | {:.1} | {:.1} | {:.2} | {standby_s} | {broken} |",
                from / SEC,
                to / SEC,
                f / ticks,
                t / ticks,
                f / t,
            );
        }
    }

    /// The goal's checks on this scenario, as `label` lines; the verdict of the predictive
    /// routing line.
    fn check(&self, out: &mut String, routing: PolicyKind, label: &str) -> bool {
        let _ = writeln!(out, "- {label}");
        let a = check(
            out,
            "SLO-violation-seconds ratio",
            self.slo_ratio(routing),
            SLO_BAR,
        );
        let b = check(
            out,
            "backend-seconds ratio",
            self.backend_ratio(routing),
            BACKEND_BAR,
        );
        a && b
    }
}

/// Goal 4 on S9 (counted) and its variants (information), pushing the verdict of S9 with
/// predictive routing.
pub fn goals(all: &[Results<'_>], out: &mut String, verdicts: &mut Vec<(String, bool)>) {
    let _ = writeln!(
        out,
        "\n**4. S9: predictive activation's SLO-violation-seconds ≤ 0.2× reactive's, with \
         backend-seconds ≤ 1.15× the oracle's** (routing predictive; the *variant* lines \
         route with p2c_peak_ewma or move the peak)\n"
    );
    for r in all {
        let key = &r.scenario.key;
        for routing in ROUTING {
            let main = routing == ROUTING[0] && !key.contains('-');
            let label = match (main, routing == ROUTING[0]) {
                (true, _) => key.clone(),
                (false, true) => format!("{key} *variant*"),
                (false, false) => format!("{key} *variant* ({} routing)", routing.name()),
            };
            let pass = r.check(out, routing, &label);
            if main {
                verdicts.push((format!("4 {key}"), pass));
            }
        }
    }
}
