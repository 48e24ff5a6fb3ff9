//! Markdown tables of the measured cells, ratios against `p2c_peak_ewma` in the same seed,
//! and the goals checked against those numbers.

use std::fmt::Write;

use crate::balancer::PolicyKind;
use crate::engine::{CellResult, SnapshotView};
use crate::rng::SimRng;
use crate::scenario::{Scenario, MS, TIMEOUT};
use crate::stats::{bootstrap_mean, Histogram};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 1000;

/// Results of one scenario: `cells[policy][seed]`, policies in `PolicyKind::ALL` order.
#[derive(Debug)]
pub struct ScenarioResults<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// One result per policy and seed.
    pub cells: Vec<Vec<CellResult>>,
}

fn index(kind: PolicyKind) -> usize {
    PolicyKind::ALL.iter().position(|&k| k == kind).unwrap_or(0)
}

/// The quantiles ratios are taken of.
const P99: f64 = 0.99;
const P999: f64 = 0.999;

/// A deterministic bootstrap stream per (scenario, comparison).
pub fn stream(key: &str, salt: u64) -> SimRng {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    SimRng::stream(h, salt)
}

impl ScenarioResults<'_> {
    fn cells(&self, kind: PolicyKind) -> &[CellResult] {
        &self.cells[index(kind)]
    }

    /// Per seed: a's `q`-quantile ÷ b's, mean over seeds with a 95% bootstrap interval.
    pub fn ratio(&self, a: PolicyKind, b: PolicyKind, q: f64) -> (f64, f64, f64) {
        let values: Vec<f64> = self
            .cells(a)
            .iter()
            .zip(self.cells(b))
            .map(|(x, y)| x.latency.quantile_ms(q) / y.latency.quantile_ms(q))
            .collect();
        let salt = (index(a) * 16 + index(b)) as u64 * 4 + u64::from(q > P99);
        bootstrap_mean(&values, RESAMPLES, &mut stream(&self.scenario.key, salt))
    }

    /// Per seed: the service-time floor's `q`-quantile ÷ `b`'s, mean over seeds with a 95%
    /// bootstrap interval. No routing policy can have a ratio below this one: it is the bar
    /// a goal on this ratio can at best reach.
    pub fn floor_ratio(&self, b: PolicyKind, q: f64) -> (f64, f64, f64) {
        let values: Vec<f64> = self
            .cells(b)
            .iter()
            .map(|y| y.floor.quantile_ms(q) / y.latency.quantile_ms(q))
            .collect();
        let salt = 4096 + index(b) as u64 * 4 + u64::from(q > P99);
        bootstrap_mean(&values, RESAMPLES, &mut stream(&self.scenario.key, salt))
    }

    /// Whether `kind`'s `q`-quantile is the client timeout in every seed (then a ratio of
    /// two such policies says nothing).
    fn saturated(&self, kind: PolicyKind, q: f64) -> bool {
        let timeout_ms = (TIMEOUT / MS) as f64;
        self.cells(kind)
            .iter()
            .all(|c| c.latency.quantile_ms(q) >= timeout_ms * 0.999)
    }

    /// Errors and timeouts summed over seeds.
    pub fn errors(&self, kind: PolicyKind) -> u64 {
        self.cells(kind).iter().map(|c| c.errors).sum()
    }

    fn pooled(&self, kind: PolicyKind) -> Histogram {
        let mut h = Histogram::default();
        for c in self.cells(kind) {
            h.merge(&c.latency);
        }
        h
    }

    fn shares(&self, kind: PolicyKind) -> (f64, f64, Option<f64>) {
        let cells = self.cells(kind);
        let n = self.scenario.backends;
        let routed: Vec<u64> = (0..n)
            .map(|b| cells.iter().map(|c| c.routed[b]).sum())
            .collect();
        let total = routed.iter().sum::<u64>().max(1) as f64;
        let min = routed.iter().copied().min().unwrap_or(0) as f64 / total;
        let max = routed.iter().copied().max().unwrap_or(0) as f64 / total;
        let tagged = &self.scenario.tagged;
        let slowed = (!tagged.is_empty()).then(|| {
            tagged
                .iter()
                .map(|&b| {
                    let mine: u64 = cells.iter().map(|c| c.while_slowed[b].0).sum();
                    let all: u64 = cells.iter().map(|c| c.while_slowed[b].1).sum();
                    mine as f64 / all.max(1) as f64
                })
                .sum::<f64>()
                / tagged.len() as f64
        });
        (min, max, slowed)
    }

    /// The scenario's table.
    pub fn table(&self, out: &mut String) {
        let sc = self.scenario;
        let _ = writeln!(out, "## {}: {}\n", sc.key, sc.title);
        let tagged = if sc.tagged.is_empty() {
            "slowed backends' share".to_string()
        } else {
            let list: Vec<String> = sc.tagged.iter().map(usize::to_string).collect();
            format!(
                "share of {} while slowed (even: {:.1}%)",
                list.join(","),
                100.0 / sc.backends as f64
            )
        };
        let _ = writeln!(
            out,
            "| policy | p50 ms | p99 ms | p99.9 ms | max ms | errors+timeouts | share min–max | \
             {tagged} | p99 ÷ p2c_peak_ewma [95% CI] | p99.9 ÷ p2c_peak_ewma [95% CI] |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for kind in PolicyKind::ALL {
            let h = self.pooled(kind);
            let errors = self.errors(kind);
            let (min, max, slowed) = self.shares(kind);
            let r99 = self.ratio(kind, PolicyKind::P2cPeakEwma, P99);
            let r999 = self.ratio(kind, PolicyKind::P2cPeakEwma, P999);
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {} ({:.2}%) | {:.1}–{:.1}% | {} | {} | {} |",
                kind.name(),
                h.quantile_ms(0.5),
                h.quantile_ms(0.99),
                h.quantile_ms(0.999),
                h.max_ms(),
                errors,
                100.0 * errors as f64 / h.count().max(1) as f64,
                100.0 * min,
                100.0 * max,
                slowed.map_or("–".into(), |s| format!("{:.1}%", 100.0 * s)),
                ci(r99),
                ci(r999),
            );
        }
        let mut floor = Histogram::default();
        for c in self.cells(PolicyKind::P2cPeakEwma) {
            floor.merge(&c.floor);
        }
        let _ = writeln!(
            out,
            "| *floor: service time alone* | {:.1} | {:.1} | {:.1} | {:.0} | – | – | – | {} | {} |",
            floor.quantile_ms(0.5),
            floor.quantile_ms(0.99),
            floor.quantile_ms(0.999),
            floor.max_ms(),
            ci(self.floor_ratio(PolicyKind::P2cPeakEwma, P99)),
            ci(self.floor_ratio(PolicyKind::P2cPeakEwma, P999)),
        );
        let requests = self.pooled(PolicyKind::P2cPeakEwma).count();
        let seeds = self.cells(PolicyKind::P2cPeakEwma).len();
        let _ = writeln!(
            out,
            "\n{requests} measured requests per policy over {seeds} seed{}.",
            if seeds == 1 { "" } else { "s" }
        );
        self.view(out);
        out.push('\n');
    }

    /// What predictive's first-seed run saw in instance 0's snapshots.
    fn view(&self, out: &mut String) {
        let Some(cell) = self.cells(PolicyKind::Predictive).first() else {
            return;
        };
        let sc = self.scenario;
        let tagged: Vec<usize> = sc.tagged.clone();
        let others: Vec<usize> = (0..sc.backends).filter(|b| !tagged.contains(b)).collect();
        let mut parts = Vec::new();
        let rest = if tagged.is_empty() {
            "all backends"
        } else {
            "others"
        };
        for (label, set) in [("slowed backends", &tagged), (rest, &others)] {
            if set.is_empty() {
                continue;
            }
            parts.push(format!("{label} {}", describe(&cell.views, set)));
        }
        let _ = writeln!(
            out,
            "\npredictive's snapshots (instance 0, first seed, means over measured ticks): {}.",
            parts.join("; ")
        );
    }
}

fn describe(views: &[SnapshotView], set: &[usize]) -> String {
    let pick: Vec<&SnapshotView> = set.iter().filter_map(|&b| views.get(b)).collect();
    let ticks: u64 = pick.iter().map(|v| v.ticks).sum::<u64>().max(1);
    let mean = |f: fn(&SnapshotView) -> f64| pick.iter().map(|v| f(v)).sum::<f64>() / ticks as f64;
    let slowed_ticks: u64 = pick.iter().map(|v| v.slowed_ticks).sum();
    let slowed = if slowed_ticks > 0 {
        format!(
            " (while slowed {:.1})",
            pick.iter().map(|v| v.slowed_latency_ms).sum::<f64>() / slowed_ticks as f64
        )
    } else {
        String::new()
    };
    let periods: Vec<String> = pick
        .iter()
        .map(|v| v.period.map_or("none".into(), |p| p.to_string()))
        .collect();
    let mut periods_shown = periods.clone();
    periods_shown.dedup();
    format!(
        "forecast {:.1} ms{slowed}, observed {:.1} ms (0 when idle), utilisation {:.2}, penalty {:.2} \
         (> 1.5 in {:.1}% of ticks), {} anomalies, season (ticks): {}",
        mean(|v| v.latency_ms),
        mean(|v| v.observed_ms),
        mean(|v| v.utilization),
        mean(|v| v.penalty),
        100.0 * pick.iter().map(|v| v.penalised_ticks).sum::<u64>() as f64 / ticks as f64,
        pick.iter().map(|v| v.anomalies).sum::<u64>(),
        periods_shown.join("/"),
    )
}

pub fn ci((mean, lo, hi): (f64, f64, f64)) -> String {
    format!("{mean:.2} [{lo:.2}, {hi:.2}]")
}

/// One check of a goal: a ratio against a bar, pass when the mean meets it.
pub fn check(out: &mut String, what: &str, (mean, lo, hi): (f64, f64, f64), bar: f64) -> bool {
    let pass = mean <= bar;
    let straddles = lo <= bar && hi > bar;
    let _ = writeln!(
        out,
        "  - {what}: {mean:.2} [{lo:.2}, {hi:.2}] vs ≤ {bar:.2} → **{}**{}",
        if pass { "PASS" } else { "FAIL" },
        if straddles {
            " (the interval straddles the bar)"
        } else {
            ""
        }
    );
    pass
}

/// Says whether a bar on a ratio to p2c_peak_ewma is reachable at all: the service-time
/// floor's ratio is the lowest any routing can have.
fn floor_note(out: &mut String, (mean, lo, hi): (f64, f64, f64), bar: f64) {
    let _ = writeln!(
        out,
        "    - floor (service time alone, no queueing, no slow-down) ÷ p2c_peak_ewma: \
         {mean:.2} [{lo:.2}, {hi:.2}]{}",
        if lo > bar {
            format!(" > {bar:.2}: no routing can meet this bar here")
        } else {
            String::new()
        }
    );
}

/// The goals, each checked on the main scenarios (and S9 when it ran); the variants
/// get the same checks as information.
pub fn goals(all: &[ScenarioResults<'_>], s9: &[crate::s9_report::Results<'_>], out: &mut String) {
    use PolicyKind::{P2cPeakEwma as Ewma, Predictive as Pred, RoundRobin as Rr};
    let _ = writeln!(out, "## Goals\n");
    let _ = writeln!(
        out,
        "Measured on the main tables (normal service, utilisation reports on); PASS when the \
         mean over seeds meets the bar. Lines marked *variant* are the same check on a \
         variant, for information.\n"
    );
    let find = |family: &'static str| all.iter().filter(move |r| r.scenario.family == family);
    let main = |r: &&ScenarioResults<'_>| !r.scenario.key.contains('-');
    let label = |r: &ScenarioResults<'_>| {
        if main(&r) {
            r.scenario.key.clone()
        } else {
            format!("{} *variant*", r.scenario.key)
        }
    };
    let mut verdicts: Vec<(String, bool)> = Vec::new();

    let _ = writeln!(
        out,
        "**1. S3, S4: predictive p99 ≤ 0.75× and p99.9 ≤ 0.5× of p2c_peak_ewma**\n"
    );
    for r in ["S3", "S4"].iter().flat_map(|f| find(f)) {
        let _ = writeln!(out, "- {}", label(r));
        let a = check(out, "p99 ratio", r.ratio(Pred, Ewma, P99), 0.75);
        floor_note(out, r.floor_ratio(Ewma, P99), 0.75);
        let b = check(out, "p99.9 ratio", r.ratio(Pred, Ewma, P999), 0.5);
        floor_note(out, r.floor_ratio(Ewma, P999), 0.5);
        if main(&r) {
            verdicts.push((format!("1 {}", r.scenario.key), a && b));
        }
    }
    let _ = writeln!(
        out,
        "\n**2. S1, S2, S6, S7: predictive within 1.05× of p2c_peak_ewma on p99 and p99.9, with no \
         more errors**\n"
    );
    for r in ["S1", "S2", "S6", "S7"].iter().flat_map(|f| find(f)) {
        let _ = writeln!(out, "- {}", label(r));
        let a = check(out, "p99 ratio", r.ratio(Pred, Ewma, P99), 1.05);
        let b = check(out, "p99.9 ratio", r.ratio(Pred, Ewma, P999), 1.05);
        if r.saturated(Pred, P99) && r.saturated(Ewma, P99) {
            let _ = writeln!(
                out,
                "  - note: both policies' p99 is the {} s timeout in every seed, so the latency \
                 ratios cannot tell them apart; the error count does",
                TIMEOUT / crate::scenario::SEC
            );
        }
        let (pe, ee) = (r.errors(Pred), r.errors(Ewma));
        let c = pe <= ee;
        let _ = writeln!(
            out,
            "  - errors+timeouts: predictive {pe} vs p2c_peak_ewma {ee} → **{}**",
            if c { "PASS" } else { "FAIL" }
        );
        if main(&r) {
            verdicts.push((format!("2 {}", r.scenario.key), a && b && c));
        }
    }
    let _ = writeln!(
        out,
        "\n**3. S2, S3: predictive p99 at least 3× lower than round_robin's** (shown as \
         predictive ÷ round_robin, bar 1/3 = 0.33)\n"
    );
    for r in ["S2", "S3"].iter().flat_map(|f| find(f)) {
        let _ = writeln!(out, "- {}", label(r));
        let a = check(out, "p99 ratio", r.ratio(Pred, Rr, P99), 1.0 / 3.0);
        if main(&r) {
            verdicts.push((format!("3 {}", r.scenario.key), a));
        }
    }
    if !s9.is_empty() {
        crate::s9_report::goals(s9, out, &mut verdicts);
    }
    let passed = verdicts.iter().filter(|v| v.1).count();
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.1)
        .map(|v| v.0.as_str())
        .collect();
    let _ = writeln!(
        out,
        "\n**Summary:** {passed} of {} goal checks pass{}.",
        verdicts.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failing: {}", failed.join(", "))
        }
    );
}
