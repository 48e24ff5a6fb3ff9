//! Drains for rolling updates: `POST /upstreams/{name}/drain` takes backends out of rotation
//! (requests in flight finish; `/status` shows them reach zero), `.../undrain` puts them back.

use serde_json::{json, Value};

use crate::state::Shared;

/// What a drain or undrain request asks for.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Drain this many backends, those with the lowest predicted load.
    pub count: Option<usize>,
    /// Or exactly these backends (addresses as in the config).
    pub backends: Option<Vec<String>>,
}

/// Drains (`on = true`) or undrains backends of `upstream`; returns the backends changed, or
/// an HTTP status and message.
pub fn apply(
    shared: &Shared,
    upstream: &str,
    body: &[u8],
    on: bool,
) -> Result<Value, (u16, String)> {
    let request: DrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DrainRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|e| (400, format!("invalid JSON body: {e}")))?
    };
    let rt = shared.runtime.load();
    let u = rt
        .upstreams
        .iter()
        .find(|u| u.name == upstream)
        .ok_or_else(|| (404, format!("no upstream named {upstream:?}")))?;
    let snapshot = shared.snapshot.load();
    let chosen: Vec<usize> = match (&request.backends, request.count) {
        (Some(_), Some(_)) => {
            return Err((400, "give either `count` or `backends`, not both".into()))
        }
        (Some(names), None) => names
            .iter()
            .map(|name| {
                u.backends
                    .iter()
                    .position(|b| &b.label == name)
                    .ok_or_else(|| {
                        (
                            404,
                            format!("upstream {upstream:?} has no backend {name:?}"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        (None, Some(count)) if on => {
            let mut open: Vec<usize> = (0..u.members.len())
                .filter(|&i| !u.members[i].live.is_drained())
                .collect();
            if count >= open.len() {
                return Err((
                    422,
                    format!(
                        "draining {count} of the {} backends still in rotation would leave none; name them to drain all",
                        open.len()
                    ),
                ));
            }
            // Lowest predicted load first: predicted utilisation, then requests in flight.
            open.sort_by(|&a, &b| {
                let load = |i: usize| {
                    let f = snapshot.get(u.members[i].id);
                    (f.utilization, u.members[i].live.in_flight())
                };
                load(a)
                    .partial_cmp(&load(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            open.truncate(count);
            open
        }
        (None, Some(_)) => return Err((400, "undrain takes `backends` or nothing (all)".into())),
        (None, None) if on => return Err((400, "say which: `count` or `backends`".into())),
        (None, None) => (0..u.members.len()).collect(),
    };
    let mut changed = Vec::new();
    for i in chosen {
        if u.members[i].live.is_drained() != on {
            u.members[i].live.set_drained(on);
            changed.push(u.backends[i].label.clone());
        }
    }
    tracing::info!(upstream, drained = on, backends = ?changed, "drain state changed");
    Ok(json!({ "upstream": upstream, if on { "drained" } else { "undrained" }: changed }))
}

/// An announced surge, as `POST /events` takes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// Upstream it applies to (absent = all).
    pub upstream: Option<String>,
    /// Start, RFC 3339 (absent = now).
    pub start: Option<String>,
    /// End, RFC 3339; or give `duration`.
    pub end: Option<String>,
    /// Length from the start, humantime (`10m`).
    pub duration: Option<String>,
    /// Expected demand multiplier, above 0 and at most 1000.
    pub multiplier: f64,
}

/// Validates and records an announced surge; returns it as stored.
pub fn announce(shared: &Shared, body: &[u8]) -> Result<Value, (u16, String)> {
    let e: EventRequest =
        serde_json::from_slice(body).map_err(|e| (400, format!("invalid JSON body: {e}")))?;
    let time = |text: &str| {
        humantime::parse_rfc3339_weak(text.trim())
            .map_err(|_| (400, format!("expected an RFC 3339 time, found {text:?}")))
    };
    let start = match &e.start {
        Some(s) => time(s)?,
        None => std::time::SystemTime::now(),
    };
    let end = match (&e.end, &e.duration) {
        (Some(t), None) => time(t)?,
        (None, Some(d)) => {
            start
                + humantime::parse_duration(d.trim()).map_err(|_| {
                    (
                        400,
                        format!("expected a duration like \"10m\", found {d:?}"),
                    )
                })?
        }
        _ => return Err((400, "give either `end` or `duration`".into())),
    };
    if end <= start {
        return Err((400, "expected an end after the start".into()));
    }
    if !(e.multiplier.is_finite() && e.multiplier > 0.0 && e.multiplier <= 1000.0) {
        return Err((
            400,
            format!(
                "expected a multiplier above 0 and at most 1000, found {}",
                e.multiplier
            ),
        ));
    }
    if let Some(name) = &e.upstream {
        if !shared
            .runtime
            .load()
            .upstreams
            .iter()
            .any(|u| &u.name == name)
        {
            return Err((404, format!("no upstream named {name:?}")));
        }
    }
    let event = augur_config::Event {
        upstream: e.upstream,
        start,
        end,
        multiplier: e.multiplier,
    };
    let stored = json!({
        "upstream": event.upstream,
        "start": humantime::format_rfc3339_seconds(event.start).to_string(),
        "end": humantime::format_rfc3339_seconds(event.end).to_string(),
        "multiplier": event.multiplier,
    });
    let mut events = shared.events.lock().unwrap_or_else(|p| p.into_inner());
    // Forget events that are over.
    let now = std::time::SystemTime::now();
    events.retain(|e| e.end > now);
    events.push(event);
    tracing::info!(event = %stored, "demand event announced");
    Ok(stored)
}
