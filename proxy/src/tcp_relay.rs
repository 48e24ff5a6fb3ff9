//! The L4 relay: each accepted connection is paired with a connection to a backend chosen by
//! the upstream's policy, and bytes are copied both ways until either side closes, or until
//! a reload stops admitting the client's network (the segment gate admitted it at accept),
//! or until no byte has moved either way for the listener's `idle_timeout` (HAProxy's
//! `timeout client`/`server`, nginx's `proxy_timeout`).

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use augur_predictor::{Attempt, Exchange, Failure, Outcome, PickContext, Tried};

use crate::access_log::Entry;
use crate::clock;
use crate::segment_gate;
use crate::state::Shared;

/// The relay logic of one TCP listener.
pub struct TcpRelay {
    shared: Arc<Shared>,
    slot: usize,
}

impl TcpRelay {
    /// Relay for the listener in start-up slot `slot`.
    pub fn new(shared: Arc<Shared>, slot: usize) -> Self {
        TcpRelay { shared, slot }
    }
}

/// Resolves when a reload withdraws `source`'s admission to listener `slot`; never for a
/// connection without an IP source.
async fn revocation(shared: &Shared, slot: usize, source: Option<IpAddr>) {
    match source {
        Some(ip) => segment_gate::revoked(shared, slot, ip).await,
        None => std::future::pending().await,
    }
}

/// One side of a relay: counts the reads that delivered bytes (no clock read per read), and
/// the bytes.
struct Active<'a, S> {
    inner: &'a mut S,
    reads: &'a AtomicU64,
    bytes: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.bytes += read as u64;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Resolves once no read has delivered a byte for at least `limit` (and at most an eighth
/// more): the watcher looks at the read count every `limit / 8` and times the quiet from the
/// last look that saw it change.
async fn idle(reads: &AtomicU64, limit: Duration) {
    let every = (limit / 8).max(Duration::from_millis(10));
    let (mut seen, mut quiet_since) = (reads.load(Ordering::Relaxed), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(every).await;
        let now = tokio::time::Instant::now();
        let count = reads.load(Ordering::Relaxed);
        if count != seen {
            (seen, quiet_since) = (count, now);
        } else if now.duration_since(quiet_since) >= limit {
            return;
        }
    }
}

#[async_trait]
impl ServerApp for TcpRelay {
    async fn process_new(
        self: &Arc<Self>,
        mut client: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _busy = self.shared.lifecycle.enter();
        let started = Instant::now();
        let rt = self.shared.routing.runtime.load_full();
        let listener = rt.listeners.get(self.slot)?;
        // Admitted at accept (the listener's `SegmentGate`); re-checked after every reload.
        let source = client
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let (u, idle_timeout) = listener.tcp_upstream?;
        let upstream = &rt.upstreams[u];
        let mut tried = Tried::default();
        let mut attempts = 0;
        let snapshot = self.shared.routing.snapshot.load();
        let (status, backend) = loop {
            let sent_at = clock::now_nanos();
            let cx = PickContext {
                now_nanos: sent_at,
                snapshot: &snapshot,
                ignore_health: upstream.ignore_health(),
                slow_start_nanos: rt.slow_start_nanos,
            };
            let Some(b) = upstream.pick(&cx, &tried) else {
                upstream.stats.no_backend.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(listener = %listener.name, upstream = %upstream.name, "no backend could be reached");
                break (502, None);
            };
            tried.insert(b);
            if attempts == 0 {
                upstream.retry_budget.record_request(sent_at);
            }
            attempts += 1;
            // Until connected, the backend counts as waiting to answer (a backend that stops
            // accepting shows as silent, as an HTTP backend that stops answering does).
            let backend = &upstream.backends[b];
            let mut attempt = Attempt::begin(&backend.member, Exchange::Session, sent_at);
            match backend.dial(upstream.connect_timeout).await {
                Ok(mut server) => {
                    // For a relay the round trip the balancer can see is the connect.
                    let now = clock::now_nanos();
                    upstream.judge(b, &mut attempt, None, now);
                    attempt.answered(now);
                    // A session counts as 2xx when it ended cleanly, 5xx when the relay failed,
                    // 4xx when a reload withdrew its source's admission (the relay stops there,
                    // and both sockets close as the session returns).
                    // A session idle for `idle_timeout` ends as cleanly as one either side
                    // closed: both sockets close as the session returns.
                    let reads = AtomicU64::new(0);
                    let mut from_client = Active {
                        inner: &mut client,
                        reads: &reads,
                        bytes: 0,
                    };
                    let mut from_server = Active {
                        inner: &mut server,
                        reads: &reads,
                        bytes: 0,
                    };
                    let relay = tokio::io::copy_bidirectional(&mut from_client, &mut from_server);
                    let status = tokio::select! {
                        copied = relay => match copied {
                            Ok(_) => 200,
                            Err(e) => {
                                tracing::debug!(error = %e, "tcp relay ended with an error");
                                502
                            }
                        },
                        () = revocation(&self.shared, self.slot, source) => 403,
                        () = idle(&reads, idle_timeout) => {
                            tracing::debug!(listener = %listener.name, ?idle_timeout, "tcp session idle: closed");
                            200
                        }
                    };
                    let bytes = from_server.bytes;
                    let ended = clock::now_nanos();
                    let observation = attempt.finish(ended, status, status >= 500, bytes);
                    self.shared.feedback.recorder.push(observation);
                    break (status, Some(b));
                }
                Err(e) => {
                    let now = clock::now_nanos();
                    upstream.judge(b, &mut attempt, Some(Failure::Connect), now);
                    let observation = attempt.fail(now, Outcome::ConnectFailure);
                    self.shared.feedback.recorder.push(observation);
                    tracing::debug!(backend = %backend.label, error = %e, "tcp connect failed");
                    if !upstream.may_retry(attempts, &tried, now) {
                        break (502, None);
                    }
                }
            }
        };
        listener.stats.record(status);
        upstream.stats.latency.record(started.elapsed());
        if let Some(log) = &self.shared.access_log {
            let client_addr = client
                .get_socket_digest()
                .and_then(|d| {
                    d.peer_addr()
                        .and_then(|a| a.as_inet())
                        .map(|a| a.to_string())
                })
                .unwrap_or_default();
            log.log(&Entry {
                listener: &listener.name,
                client: &client_addr,
                method: "TCP",
                host: "",
                path: "",
                status,
                upstream: &upstream.name,
                backend: backend.map_or("", |b| upstream.backends[b].label.as_str()),
                micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            });
        }
        None
    }
}
