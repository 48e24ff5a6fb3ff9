//! The HTTP/HTTPS proxy: Pingora's `ProxyHttp` callbacks wired to augur's routing tables.
//!
//! Per request: load the current `Runtime` once (the request finishes on it even if a reload
//! swaps in another), match a route, check the source against the segments (a reload may
//! have revoked the connection; the route may narrow its listener's `allow`), let the
//! upstream's policy pick a backend, and retry connect failures on backends not tried yet.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use augur_predictor::{load_report, Attempt, Exchange, Failure, Outcome, PickContext, Tried};

use crate::access_log::Entry;
use crate::clock;
use crate::lifecycle::Busy;
use crate::runtime::Runtime;
use crate::segment_gate::{self, RequestCheck};
use crate::state::Shared;

/// The proxy logic of one HTTP or HTTPS listener.
pub struct HttpProxy {
    shared: Arc<Shared>,
    slot: usize,
    scheme: &'static str,
}

impl HttpProxy {
    /// Proxy for the listener in start-up slot `slot`; `tls` sets `X-Forwarded-Proto`.
    pub fn new(shared: Arc<Shared>, slot: usize, tls: bool) -> Self {
        HttpProxy {
            shared,
            slot,
            scheme: if tls { "https" } else { "http" },
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    runtime: Option<Arc<Runtime>>,
    upstream: Option<usize>,
    /// The current attempt (the member it went to, and its lifecycle): holds one of the
    /// backend's in-flight slots until it ends or is dropped.
    attempt: Option<(usize, Attempt)>,
    /// Backends this request failed to connect to.
    tried: Tried,
    /// Backends picked so far (the first pick and every retry).
    attempts: u32,
    _busy: Option<Busy>,
}

fn host_of(req: &RequestHeader) -> &str {
    req.uri
        .host()
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

#[async_trait]
impl ProxyHttp for HttpProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            runtime: None,
            upstream: None,
            attempt: None,
            tried: Tried::default(),
            attempts: 0,
            _busy: Some(self.shared.lifecycle.enter()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let runtime = self.shared.routing.runtime.load_full();
        let req = session.req_header();
        let route = runtime.route(self.slot, host_of(req), req.uri.path());
        // The TCP peer, never X-Forwarded-For: a client can write any header it likes.
        let source = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let check = segment_gate::check_request(
            &self.shared,
            &runtime,
            self.slot,
            route.map(|(r, _)| r),
            source,
        );
        ctx.upstream = route.map(|(_, u)| u);
        ctx.runtime = Some(runtime);
        match check {
            RequestCheck::Pass => {}
            RequestCheck::Revoked => {
                // The connection ends with this answer (HTTP/1: `Connection: close`; on
                // HTTP/2 every further request on it gets the same answer).
                session.set_keepalive(None);
                respond(
                    session,
                    403,
                    "403 Forbidden: this network is no longer admitted to this listener\n",
                )
                .await?;
                return Ok(true);
            }
            RequestCheck::RouteDenied => {
                respond(
                    session,
                    403,
                    "403 Forbidden: this path is not open to your network\n",
                )
                .await?;
                return Ok(true);
            }
        }
        if ctx.upstream.is_none() {
            if let Some(l) = ctx
                .runtime
                .as_ref()
                .and_then(|rt| rt.listeners.get(self.slot))
            {
                l.stats
                    .unrouted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            respond(
                session,
                404,
                "404 Not Found: no route matches this host and path\n",
            )
            .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // A retry (after a connect failure, or Pingora's own retry of a request whose pooled
        // connection was found dead) comes back here: the previous backend is done with it.
        ctx.attempt = None;
        let (Some(rt), Some(u)) = (&ctx.runtime, ctx.upstream) else {
            return Err(Error::explain(ErrorType::InternalError, "no route chosen"));
        };
        let upstream = &rt.upstreams[u];
        let snapshot = self.shared.routing.snapshot.load();
        let now_nanos = clock::now_nanos();
        let cx = PickContext {
            now_nanos,
            snapshot: &snapshot,
            ignore_health: upstream.ignore_health(),
            slow_start_nanos: rt.slow_start_nanos,
        };
        let Some(b) = upstream.pick(&cx, &ctx.tried) else {
            upstream
                .stats
                .no_backend
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "no backend left to try: every one failed to connect",
            ));
        };
        if ctx.attempts == 0 {
            upstream.retry_budget.record_request(now_nanos);
        }
        ctx.attempts += 1;
        ctx.attempt = Some((
            b,
            Attempt::begin(&upstream.backends[b].member, Exchange::Request, now_nanos),
        ));

        let entry = &upstream.backends[b];
        let mut peer = HttpPeer::new(entry.addr, false, String::new());
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        if let Some(tunnel) = &entry.via {
            // Through the tunnel's CONNECT endpoint (see tunnel/connect.rs for why), pooled
            // apart from any other tunnel's connections (data centres may reuse addresses).
            let host = match entry.addr.ip() {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            };
            peer.proxy = Some(pingora::upstreams::peer::Proxy {
                next_hop: tunnel.connect_path.clone().into_boxed_path(),
                host,
                port: entry.addr.port(),
                headers: Default::default(),
            });
            peer.group_key = tunnel.pool_key;
        }
        peer.options.read_timeout = Some(upstream.read_timeout);
        peer.options.write_timeout = Some(upstream.write_timeout);
        peer.options.idle_timeout = Some(upstream.idle_timeout);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Either way this backend is done with the request; a retry picks another.
        if let (Some(rt), Some(u), Some((b, mut attempt))) =
            (&ctx.runtime, ctx.upstream, ctx.attempt.take())
        {
            let upstream = &rt.upstreams[u];
            let now = clock::now_nanos();
            upstream.judge(b, &mut attempt, Some(Failure::Connect), now);
            self.shared
                .feedback
                .recorder
                .push(attempt.fail(now, Outcome::ConnectFailure));
            // Only a backend that failed is excluded from the retry.
            ctx.tried.insert(b);
            e.set_retry(upstream.may_retry(ctx.attempts, &ctx.tried, now));
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        let (Some(rt), Some(u), Some((b, attempt))) =
            (ctx.runtime.clone(), ctx.upstream, ctx.attempt.as_mut())
        else {
            e.set_retry(false);
            return e;
        };
        let b = *b;
        let upstream = &rt.upstreams[u];
        // Reset or timed out before any response byte: the backend failed this request.
        let unanswered = !attempt.is_answered() && e.esource() == &ErrorSource::Upstream;
        if !unanswered {
            e.set_retry(false);
            return e;
        }
        let now = clock::now_nanos();
        upstream.judge(b, attempt, Some(failure_of(&e)), now);
        // Safe to send again elsewhere: an idempotent method whose body (if any) is still
        // held whole for replay. Otherwise only Pingora's own case: a pooled connection that
        // turned out dead before the request could have reached the backend.
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        if replayable {
            ctx.tried.insert(b);
            let retry = upstream.may_retry(ctx.attempts, &ctx.tried, now);
            if retry {
                // The final attempt is recorded by `logging`; this one ends here.
                if let Some((_, attempt)) = ctx.attempt.take() {
                    self.shared
                        .feedback
                        .recorder
                        .push(attempt.fail(now, Outcome::Broken));
                }
            }
            e.set_retry(retry);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            let xff = match upstream_request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_string(),
            };
            upstream_request.insert_header("x-forwarded-for", xff)?;
        }
        upstream_request.insert_header("x-forwarded-proto", self.scheme)?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A backend's own load report (ORCA). A malformed one is ignored and counted.
        let mut reported = None;
        if let Some(value) = upstream_response.headers.get(LOAD_REPORT_HEADER) {
            match load_report::parse(value.as_bytes()) {
                Ok(report) => reported = Some(report.utilization().map(|u| u as f32)),
                Err(_) => {
                    self.shared
                        .feedback
                        .bad_load_reports
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            if !self.shared.feedback.keep_load_reports {
                upstream_response.remove_header(LOAD_REPORT_HEADER);
            }
        }
        // An interim answer (100 Continue, 103 Early Hints) is not the answer: the round trip
        // ends when the final response header arrives (tower's completion point). 101 is
        // final: the connection is the other protocol's from then on.
        let status = upstream_response.status.as_u16();
        if (100..200).contains(&status) && status != 101 {
            return Ok(());
        }
        if let Some((_, attempt)) = ctx.attempt.as_mut() {
            attempt.answered(clock::now_nanos());
            if let Some(utilization) = reported {
                attempt.reported(utilization);
            }
        }
        Ok(())
    }

    /// A client that went away mid-request (wrk stopping, a browser tab closed) is not an
    /// error of the proxy's: Pingora's ERROR line for it is demoted to a debug event.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        let client_gone = e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            );
        if client_gone {
            tracing::debug!(error = %e, "client went away mid-request");
        }
        client_gone
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 502,
            },
        };
        let body = match code {
            502 => "502 Bad Gateway: no backend could be reached\n",
            504 => "504 Gateway Timeout: the backend did not answer in time\n",
            400 => "400 Bad Request\n",
            _ => "",
        };
        if code > 0 {
            if let Err(err) = respond(session, code, body).await {
                tracing::debug!(%err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(stream) = session.downstream_session.stream() {
            crate::revocation::request_done(stream);
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        let Some(rt) = ctx.runtime.clone() else {
            return;
        };
        if let Some(l) = rt.listeners.get(self.slot) {
            l.stats.record(status);
        }
        let mut upstream_name = "";
        let mut backend_label = "";
        if let Some(u) = ctx.upstream {
            let upstream = &rt.upstreams[u];
            upstream_name = &upstream.name;
            if ctx.attempts > 0 {
                upstream.stats.latency.record(elapsed);
            }
            if let Some((b, mut attempt)) = ctx.attempt.take() {
                let now = clock::now_nanos();
                // A client that went away says nothing about the backend.
                let verdict = match e {
                    Some(e) if e.esource() == &ErrorSource::Upstream => Some(Some(failure_of(e))),
                    Some(_) => None,
                    None if status >= 500 => Some(Some(Failure::Status)),
                    None => Some(None),
                };
                if let Some(failure) = verdict {
                    upstream.judge(b, &mut attempt, failure, now);
                }
                backend_label = &upstream.backends[b].label;
                let bytes = session.body_bytes_sent() as u64;
                self.shared
                    .feedback
                    .recorder
                    .push(attempt.finish(now, status, e.is_some(), bytes));
            }
        }
        if let Some(log) = &self.shared.access_log {
            let req = session.req_header();
            let client = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.to_string())
                .unwrap_or_default();
            log.log(&Entry {
                listener: rt.listeners.get(self.slot).map_or("", |l| l.name.as_str()),
                client: &client,
                method: req.method.as_str(),
                host: host_of(req),
                path: req.uri.path(),
                status,
                upstream: upstream_name,
                backend: backend_label,
                micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            });
        }
    }
}

/// What kind of failure an upstream error is, for health.
fn failure_of(e: &Error) -> Failure {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Failure::Timeout
        }
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Failure::Connect
        }
        _ => Failure::Reset,
    }
}

/// The ORCA response header backends report their load in.
const LOAD_REPORT_HEADER: &str = "endpoint-load-metrics";

/// Writes a short plain-text response with a correct `Content-Length`.
async fn respond(session: &mut Session, code: u16, body: &'static str) -> Result<()> {
    let mut resp = ResponseHeader::build(code, Some(3))?;
    resp.insert_header("content-type", "text/plain; charset=utf-8")?;
    resp.insert_header("content-length", body.len())?;
    resp.insert_header("cache-control", "no-store")?;
    session
        .write_response_header(Box::new(resp), body.is_empty())
        .await?;
    if !body.is_empty() {
        session
            .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
            .await?;
    }
    Ok(())
}
