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

/// Why a drain or undrain was refused.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The body is not a [`DrainRequest`].
    #[error("invalid JSON body: {0}")]
    Body(serde_json::Error),
    /// No upstream has this name.
    #[error("no upstream named {0:?}")]
    UnknownUpstream(String),
    /// The upstream has no backend with this address.
    #[error("upstream {upstream:?} has no backend {backend:?}")]
    UnknownBackend {
        /// The upstream.
        upstream: String,
        /// The backend asked for.
        backend: String,
    },
    /// Both `count` and `backends`.
    #[error("give either `count` or `backends`, not both")]
    CountAndBackends,
    /// A drain that names neither.
    #[error("say which: `count` or `backends`")]
    NothingChosen,
    /// An undrain with a count.
    #[error("undrain takes `backends` or nothing (all)")]
    UndrainCount,
    /// A count that would drain every backend still in rotation.
    #[error(
        "draining {count} of the {open} backends still in rotation would leave none; name them to drain all"
    )]
    WouldLeaveNone {
        /// How many were asked for.
        count: usize,
        /// How many are in rotation.
        open: usize,
    },
}

/// Why an announced event was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The body is not an [`EventRequest`].
    #[error("invalid JSON body: {0}")]
    Body(serde_json::Error),
    /// A start or end that is not an RFC 3339 time.
    #[error("expected an RFC 3339 time, found {0:?}")]
    Time(String),
    /// A duration that humantime does not read.
    #[error("expected a duration like \"10m\", found {0:?}")]
    Duration(String),
    /// Neither or both of `end` and `duration`.
    #[error("give either `end` or `duration`")]
    EndOrDuration,
    /// An end not after the start.
    #[error("expected an end after the start")]
    EndBeforeStart,
    /// A multiplier out of (0, 1000].
    #[error("expected a multiplier above 0 and at most 1000, found {0}")]
    Multiplier(f64),
    /// No upstream has this name.
    #[error("no upstream named {0:?}")]
    UnknownUpstream(String),
}

/// Drains (`on = true`) or undrains backends of `upstream`; returns the backends changed.
pub fn apply(shared: &Shared, upstream: &str, body: &[u8], on: bool) -> Result<Value, DrainError> {
    let request: DrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DrainRequest::default()
    } else {
        serde_json::from_slice(body).map_err(DrainError::Body)?
    };
    let rt = shared.routing.runtime.load();
    let u = rt
        .upstreams
        .iter()
        .find(|u| u.name == upstream)
        .ok_or_else(|| DrainError::UnknownUpstream(upstream.to_owned()))?;
    let snapshot = shared.routing.snapshot.load();
    let chosen: Vec<usize> = match (&request.backends, request.count) {
        (Some(_), Some(_)) => return Err(DrainError::CountAndBackends),
        (Some(names), None) => names
            .iter()
            .map(|name| {
                u.backends
                    .iter()
                    .position(|b| &b.label == name)
                    .ok_or_else(|| DrainError::UnknownBackend {
                        upstream: upstream.to_owned(),
                        backend: name.clone(),
                    })
            })
            .collect::<Result<_, _>>()?,
        (None, Some(count)) if on => {
            let mut open: Vec<usize> = (0..u.backends.len())
                .filter(|&i| !u.backends[i].member.live.is_drained())
                .collect();
            if count >= open.len() {
                return Err(DrainError::WouldLeaveNone {
                    count,
                    open: open.len(),
                });
            }
            // Lowest predicted load first: predicted utilisation, then requests in flight.
            open.sort_by(|&a, &b| {
                let load = |i: usize| {
                    let m = &u.backends[i].member;
                    (snapshot.get(m.id).utilization, m.live.in_flight())
                };
                load(a)
                    .partial_cmp(&load(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            open.truncate(count);
            open
        }
        (None, Some(_)) => return Err(DrainError::UndrainCount),
        (None, None) if on => return Err(DrainError::NothingChosen),
        (None, None) => (0..u.backends.len()).collect(),
    };
    let mut changed = Vec::new();
    for i in chosen {
        let b = &u.backends[i];
        if b.member.live.is_drained() != on {
            b.member.live.set_drained(on);
            changed.push(b.label.clone());
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
pub fn announce(shared: &Shared, body: &[u8]) -> Result<Value, EventError> {
    let e: EventRequest = serde_json::from_slice(body).map_err(EventError::Body)?;
    let time = |text: &str| {
        humantime::parse_rfc3339_weak(text.trim()).map_err(|_| EventError::Time(text.to_owned()))
    };
    let start = match &e.start {
        Some(s) => time(s)?,
        None => std::time::SystemTime::now(),
    };
    let end = match (&e.end, &e.duration) {
        (Some(t), None) => time(t)?,
        (None, Some(d)) => {
            start
                + humantime::parse_duration(d.trim())
                    .map_err(|_| EventError::Duration(d.clone()))?
        }
        _ => return Err(EventError::EndOrDuration),
    };
    if end <= start {
        return Err(EventError::EndBeforeStart);
    }
    if !(e.multiplier.is_finite() && e.multiplier > 0.0 && e.multiplier <= 1000.0) {
        return Err(EventError::Multiplier(e.multiplier));
    }
    if let Some(name) = &e.upstream {
        if !shared
            .routing
            .runtime
            .load()
            .upstreams
            .iter()
            .any(|u| &u.name == name)
        {
            return Err(EventError::UnknownUpstream(name.clone()));
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
    let mut events = shared
        .feedback
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Forget events that are over.
    let now = std::time::SystemTime::now();
    events.retain(|e| e.end > now);
    events.push(event);
    tracing::info!(event = %stored, "demand event announced");
    Ok(stored)
}
