//! The admin listener: `GET /status` (JSON), `GET /metrics` (Prometheus text), `GET /demand`
//! (what `predictor.peers` poll), `POST /reload`, `GET /segments/suggest` (learn mode's
//! proposed policy, YAML), `POST /events`, `POST /upstreams/NAME/drain|undrain`.
//!
//! This module routes requests; `status` builds the JSON documents and `metrics` the
//! Prometheus one.

mod health;
mod metrics;
mod status;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use augur_predictor::Member;

use crate::drain::{DrainError, EventError};
use crate::reload::{reload, ReloadError};
use crate::runtime::{Backend, Runtime, UpstreamTable};
use crate::state::Shared;

pub use metrics::metrics;
pub use status::{demand, status};

/// Largest request body the admin endpoints read.
const MAX_BODY: usize = 64 * 1024;

/// The admin HTTP application.
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// Admin app over the process's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Admin { shared }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (method, path.as_str()) {
            (Method::GET, "/status") => reply(
                StatusCode::OK,
                "application/json",
                status(&self.shared).to_string(),
            ),
            (Method::GET, "/demand") => reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                demand(&self.shared),
            ),
            (Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics(&self.shared),
            ),
            (Method::GET, "/segments/suggest") => reply(
                StatusCode::OK,
                "application/yaml; charset=utf-8",
                self.shared.routing.runtime.load().segments.suggest(),
            ),
            (Method::POST, p) if p.starts_with("/upstreams/") && (p.ends_with("/drain") || p.ends_with("/undrain")) => {
                let on = p.ends_with("/drain");
                let name = p
                    .trim_start_matches("/upstreams/")
                    .trim_end_matches(if on { "/drain" } else { "/undrain" });
                match read_body(session).await {
                    Ok(body) => outcome(
                        crate::drain::apply(&self.shared, name, &body, on)
                            .map_err(|e| (refusal_status(Refusal::Drain(&e)), e.to_string())),
                    ),
                    Err(too_large) => too_large,
                }
            }
            (Method::POST, "/events") => match read_body(session).await {
                Ok(body) => outcome(
                    crate::drain::announce(&self.shared, &body)
                        .map_err(|e| (refusal_status(Refusal::Event(&e)), e.to_string())),
                ),
                Err(too_large) => too_large,
            },
            (Method::POST, "/reload") => {
                let shared = Arc::clone(&self.shared);
                let result = tokio::task::spawn_blocking(move || reload(&shared))
                    .await
                    .unwrap_or_else(|e| Err(ReloadError::Failed(e.to_string())));
                match result {
                    Ok(changes) => reply(
                        StatusCode::OK,
                        "application/json",
                        json!({"ok": true, "changes": changes}).to_string(),
                    ),
                    Err(error) => reply(
                        refusal_status(Refusal::Reload(&error)),
                        "application/json",
                        json!({"ok": false, "error": error.to_string()}).to_string(),
                    ),
                }
            }
            (_, "/status" | "/metrics" | "/demand" | "/reload" | "/segments/suggest") => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n".into(),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found; try GET /status, GET /metrics, GET /demand, GET /segments/suggest, POST /reload, POST /upstreams/NAME/drain\n".into(),
            ),
        }
    }
}

/// The request body, or the 413 answer once it passes [`MAX_BODY`].
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body too large\n".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A state-changing endpoint's answer: its document, or `{"error": ..}` with its status code.
fn outcome(result: Result<Value, (StatusCode, String)>) -> Response<Vec<u8>> {
    match result {
        Ok(v) => reply(StatusCode::OK, "application/json", v.to_string()),
        Err((code, message)) => reply(
            code,
            "application/json",
            json!({ "error": message }).to_string(),
        ),
    }
}

/// A refused drain, event or reload, for [`refusal_status`].
enum Refusal<'a> {
    Drain(&'a DrainError),
    Event(&'a EventError),
    Reload(&'a ReloadError),
}

/// The HTTP status of every refusal of a state-changing request, decided here only: the
/// request is wrong (400), names nothing known (404), or cannot be carried out (422).
fn refusal_status(refusal: Refusal<'_>) -> StatusCode {
    match refusal {
        Refusal::Drain(
            DrainError::Body(_)
            | DrainError::CountAndBackends
            | DrainError::NothingChosen
            | DrainError::UndrainCount,
        )
        | Refusal::Event(
            EventError::Body(_)
            | EventError::Time(_)
            | EventError::Duration(_)
            | EventError::EndOrDuration
            | EventError::EndBeforeStart
            | EventError::Multiplier(_),
        ) => StatusCode::BAD_REQUEST,
        Refusal::Drain(DrainError::UnknownUpstream(_) | DrainError::UnknownBackend { .. })
        | Refusal::Event(EventError::UnknownUpstream(_)) => StatusCode::NOT_FOUND,
        Refusal::Drain(DrainError::WouldLeaveNone { .. })
        | Refusal::Reload(
            ReloadError::NoFile
            | ReloadError::Read { .. }
            | ReloadError::Invalid(_)
            | ReloadError::NeedsNewProcess { .. }
            | ReloadError::Endpoint { .. },
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Reload(ReloadError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    let body = body.into_bytes();
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// Every backend of the running config with its upstream and member, in config order (the
/// order of `/status` and of each `/metrics` family).
pub fn backends(rt: &Runtime) -> impl Iterator<Item = (&UpstreamTable, &Backend, &Member)> {
    rt.upstreams
        .iter()
        .flat_map(|u| u.backends.iter().map(move |b| (u, b, &b.member)))
}
