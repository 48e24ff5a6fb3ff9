//! Backend health in `/status` and `/metrics`.

use std::sync::atomic::Ordering;

use augur_config::CheckKind;
use augur_predictor::{HealthState, Member};
use serde_json::{json, Value};

use super::backends;
use crate::clock;
use crate::exposition::{families, Exposition, Family};
use crate::runtime::{Runtime, UpstreamTable};

/// A backend's `health` object in `/status`: state, since when and why, the ejection's time
/// left, and its change counters.
pub fn backend(m: &Member) -> Value {
    let f = m.live.health.figures();
    let now = clock::now_nanos();
    json!({
        "state": f.state.name(),
        "since_seconds_ago": seconds(now.saturating_sub(f.since_nanos)),
        "reason": f.reason.map(|r| r.to_string()),
        "ejected_for_seconds": f.ejected_until_nanos.map(|t| seconds(t.saturating_sub(now))),
        "consecutive_failures": f.consecutive_failures,
        "ejections_in_a_row": f.ejections,
        "last_failure": f.last_failure.map(|l| l.name()),
        "changes": { "up": f.transitions[0], "down": f.transitions[1], "ejected": f.transitions[2] },
    })
}

/// An upstream's `health` object in `/status`: its checks, ejected count, panic, retry budget.
pub fn upstream(u: &UpstreamTable) -> Value {
    let checks = u.health_check.as_ref().map(|c| {
        let (kind, path) = match &c.kind {
            CheckKind::Tcp => ("tcp", None),
            CheckKind::Http { path, .. } => ("http", Some(path.as_str())),
        };
        json!({
            "kind": kind, "path": path, "interval_seconds": c.interval.as_secs_f64(),
            "timeout_seconds": c.timeout.as_secs_f64(), "rise": c.rise, "fall": c.fall,
        })
    });
    json!({
        "checks": checks,
        "serving": u.members().iter().filter(|m| m.live.health.serving()).count(),
        "ejected": u.health.ejected(),
        "panic": u.health.panic(),
        "retries_over_budget": u.stats.retries_over_budget.load(Ordering::Relaxed),
    })
}

fn seconds(nanos: u64) -> f64 {
    (nanos as f64 / 1e9 * 1000.0).round() / 1000.0
}

families! {
    /// Whether a backend takes traffic (not down by checks, not ejected).
    BACKEND_UP: Gauge augur_backend_up{upstream, backend};
    /// Backend health changes, by the state changed into.
    BACKEND_CHANGES: Counter augur_backend_health_changes_total{upstream, backend, to};
    /// Backends of an upstream ejected by outlier detection now.
    UPSTREAM_EJECTED: Gauge augur_upstream_ejected_backends{upstream};
    /// 1 while too few backends are healthy and health is ignored.
    UPSTREAM_PANIC: Gauge augur_upstream_panic{upstream};
    /// Retries not made because the retry budget was spent.
    RETRIES_OVER_BUDGET: Counter augur_upstream_retries_over_budget_total{upstream};
}

/// An upstream's health figure.
type UpstreamFigure = fn(&UpstreamTable) -> u64;

const UPSTREAM_HEALTH: [(Family<1>, UpstreamFigure); 3] = [
    (UPSTREAM_EJECTED, |u| u64::from(u.health.ejected())),
    (UPSTREAM_PANIC, |u| u64::from(u.health.panic())),
    (RETRIES_OVER_BUDGET, |u| {
        u.stats.retries_over_budget.load(Ordering::Relaxed)
    }),
];

/// Writes the health families of `/metrics`.
pub fn metrics(doc: &mut Exposition, rt: &Runtime) {
    doc.family(&BACKEND_UP, |s| {
        for (u, b, m) in backends(rt) {
            s.sample(
                [&u.name, &b.label],
                m.live.health.state() == HealthState::Up,
            );
        }
    });
    doc.family(&BACKEND_CHANGES, |s| {
        for (u, b, m) in backends(rt) {
            let t = m.live.health.figures().transitions;
            for (to, n) in ["up", "down", "ejected"].iter().zip(t) {
                s.sample([&u.name, &b.label, to], n);
            }
        }
    });
    for (family, figure) in &UPSTREAM_HEALTH {
        doc.family(family, |s| {
            for u in rt.upstreams.iter() {
                s.sample([&u.name], figure(u));
            }
        });
    }
}
