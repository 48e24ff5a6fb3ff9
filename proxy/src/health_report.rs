//! Backend health in `/status` and `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use augur_config::CheckKind;
use augur_predictor::{HealthState, Member};
use serde_json::{json, Value};

use crate::clock;
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
        "serving": u.members.iter().filter(|m| m.live.health.serving()).count(),
        "ejected": u.health.ejected(),
        "panic": u.health.panic(),
        "retries_over_budget": u.stats.retries_over_budget.load(Ordering::Relaxed),
    })
}

fn seconds(nanos: u64) -> f64 {
    (nanos as f64 / 1e9 * 1000.0).round() / 1000.0
}

/// Health series for `/metrics`.
pub fn write_metrics(out: &mut String, rt: &Runtime) {
    let _ = writeln!(
        out,
        "# HELP augur_backend_up Whether a backend takes traffic (not down by checks, not ejected)."
    );
    let _ = writeln!(out, "# TYPE augur_backend_up gauge");
    for u in rt.upstreams.iter() {
        for (b, m) in u.backends.iter().zip(u.members.iter()) {
            let up = u8::from(m.live.health.state() == HealthState::Up);
            let _ = writeln!(
                out,
                "augur_backend_up{{upstream=\"{}\",backend=\"{}\"}} {up}",
                u.name, b.label
            );
        }
    }
    let name = "augur_backend_health_changes_total";
    let _ = writeln!(
        out,
        "# HELP {name} Backend health changes, by the state changed into."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for u in rt.upstreams.iter() {
        for (b, m) in u.backends.iter().zip(u.members.iter()) {
            let t = m.live.health.figures().transitions;
            for (to, n) in ["up", "down", "ejected"].iter().zip(t) {
                let _ = writeln!(
                    out,
                    "{name}{{upstream=\"{}\",backend=\"{}\",to=\"{to}\"}} {n}",
                    u.name, b.label
                );
            }
        }
    }
    for (name, help, kind, pick) in [
        (
            "augur_upstream_ejected_backends",
            "Backends of an upstream ejected by outlier detection now.",
            "gauge",
            0,
        ),
        (
            "augur_upstream_panic",
            "1 while too few backends are healthy and health is ignored.",
            "gauge",
            1,
        ),
        (
            "augur_upstream_retries_over_budget_total",
            "Retries not made because the retry budget was spent.",
            "counter",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for u in rt.upstreams.iter() {
            let v = match pick {
                0 => u64::from(u.health.ejected()),
                1 => u64::from(u.health.panic()),
                _ => u.stats.retries_over_budget.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {v}", u.name);
        }
    }
}
