//! Closing open HTTP connections whose source a reload no longer admits.
//!
//! [`Revocable`] wraps the proxy's `ServerApp` and each connection's stream, which notes
//! where the connection is in its request cycle:
//! - `Idle`: waiting for a request, not a byte of it read yet. A reload wakes the connection
//!   and closes it at once if its source is no longer admitted (an idle keep-alive
//!   connection, or one accepted but not yet used).
//! - `Busy`: a request is being read or served. It is finished first.
//! - `Ending`: the proxy logged the request; Pingora flushes the response and reads again.
//!   The next read of a revoked connection ends it (end of stream) before any byte of a
//!   new request is taken.
//!
//! HTTP/2 connections are busy from their preface on; their requests are answered 403 by the
//! per-request check (`segment_gate::check_request`) until the client or Pingora's idle
//! timeout closes them.
//!
//! The cost outside reloads is one generation comparison per read of a connection that is
//! not busy; the table is asked only after a reload.
//!
//! The wrapper also serves the drain (SIGTERM, `--upgrade`): each open connection is counted
//! in `Shared::connections`, and a new connection reaches Pingora only once its first byte has
//! arrived. When a listener stops, Pingora closes every connection parked waiting for a
//! request (`http_cleanup`): right for an idle keep-alive connection, whose client retries on
//! a new one; wrong for one accepted a moment before, whose request is on its way and whose
//! client has nothing to retry.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::segment_gate;

/// How long a new connection may stay silent (Pingora's read timeout for a first request).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new, still silent connection is kept once the listener stops.
const FIRST_BYTE_AT_SHUTDOWN: Duration = Duration::from_secs(2);
use crate::state::Shared;

/// A `ServerApp` whose connections are closed once a reload withdraws their admission.
pub struct Revocable<A> {
    inner: Arc<A>,
    shared: Arc<Shared>,
    slot: usize,
}

impl<A> Revocable<A> {
    /// Wraps `inner`, the app of the listener in start-up slot `slot`.
    pub fn new(inner: A, shared: Arc<Shared>, slot: usize) -> Revocable<A> {
        Revocable {
            inner: Arc::new(inner),
            shared,
            slot,
        }
    }
}

impl<A> fmt::Debug for Revocable<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocable")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Revocable<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (mut stream, conn, new) = Watched::wrap(stream, &self.shared, self.slot);
        let mut stopping = shutdown.clone();
        let serve = async move {
            // Not parked in Pingora's `read_request` before its first byte (see the module
            // doc). A client that sends nothing is closed as Pingora would close it (its first
            // request's read timeout), and soon once the listener stops.
            if new {
                let mut byte = [0u8; 1];
                let first = tokio::select! {
                    r = stream.try_peek(&mut byte) => r.is_ok(),
                    () = tokio::time::sleep(FIRST_BYTE_TIMEOUT) => false,
                    () = async {
                        let _ = stopping.wait_for(|stop| *stop).await;
                        tokio::time::sleep(FIRST_BYTE_AT_SHUTDOWN).await;
                    } => false,
                };
                if !first {
                    return None; // closed, reset or silent before its first byte
                }
            }
            self.inner.process_new(stream, shutdown).await
        };
        tokio::pin!(serve);
        loop {
            // Armed before the check, so a reload between the two still wakes us.
            let reloaded = self.shared.lifecycle.reloaded.notified();
            tokio::pin!(reloaded);
            reloaded.as_mut().enable();
            if conn.phase() == Phase::Idle && !conn.admitted() {
                // Dropping `serve` drops the stream: the connection closes.
                return None;
            }
            tokio::select! {
                reuse = &mut serve => return reuse,
                () = &mut reloaded => {}
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Tells the connection of `stream` that its request has been answered (called from the
/// proxy's logging hook, before Pingora flushes the response and reads the next request).
pub fn request_done(stream: &Stream) {
    if let Some(watched) = stream.as_any().downcast_ref::<Watched>() {
        watched
            .conn
            .phase
            .store(Phase::Ending as u8, Ordering::Relaxed);
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Idle = 0,
    Busy = 1,
    Ending = 2,
}

/// What the wrapper and the app share about one connection.
struct Connection {
    shared: Arc<Shared>,
    slot: usize,
    /// The TCP peer's address (`None`: the socket had none; never revoked).
    source: Option<IpAddr>,
    /// A [`Phase`].
    phase: AtomicU8,
    /// The config generation the source was last checked against.
    checked: AtomicU64,
    /// Set once a check found the source no longer admitted.
    revoked: AtomicBool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared
            .lifecycle
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("source", &self.source)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Idle,
            1 => Phase::Busy,
            _ => Phase::Ending,
        }
    }

    /// Whether the connection may go on: true unless a reload since its last check made the
    /// newest table deny its source (counted and logged once, as a revocation).
    fn admitted(&self) -> bool {
        if self.revoked.load(Ordering::Relaxed) {
            return false;
        }
        let Some(source) = self.source else {
            return true;
        };
        let rt = self.shared.routing.runtime.load();
        let generation = rt.version.generation;
        if self.checked.swap(generation, Ordering::Relaxed) == generation {
            return true;
        }
        let admitted = segment_gate::still_admitted(&self.shared, &rt, self.slot, source);
        if !admitted {
            self.revoked.store(true, Ordering::Relaxed);
        }
        admitted
    }
}

/// A downstream stream that tracks its connection's [`Phase`]; everything else is passed
/// through.
#[derive(Debug)]
struct Watched {
    inner: Stream,
    conn: Arc<Connection>,
    /// Bytes peeked at, which reads return first.
    peeked: Vec<u8>,
}

impl Watched {
    /// Wraps a new connection's stream (true), or finds the wrapper of a reused one (false).
    fn wrap(stream: Stream, shared: &Arc<Shared>, slot: usize) -> (Stream, Arc<Connection>, bool) {
        if let Some(watched) = stream.as_any().downcast_ref::<Watched>() {
            let conn = Arc::clone(&watched.conn);
            return (stream, conn, false);
        }
        shared.lifecycle.connections.fetch_add(1, Ordering::Relaxed);
        let source = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let conn = Arc::new(Connection {
            shared: Arc::clone(shared),
            slot,
            source,
            phase: AtomicU8::new(Phase::Idle as u8),
            // Admitted at accept by the table of this generation.
            checked: AtomicU64::new(shared.routing.runtime.load().version.generation),
            revoked: AtomicBool::new(false),
        });
        let watched = Watched {
            inner: stream,
            conn: Arc::clone(&conn),
            peeked: Vec::new(),
        };
        (Box::new(watched), conn, true)
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let phase = self.conn.phase();
        if phase != Phase::Busy && !self.conn.admitted() {
            // Between requests: end of stream, before a byte of the next one is taken.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = if self.peeked.is_empty() {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        } else {
            let n = self.peeked.len().min(buf.remaining());
            buf.put_slice(&self.peeked[..n]);
            self.peeked.drain(..n);
            Poll::Ready(Ok(()))
        };
        if buf.filled().len() > before {
            self.conn.phase.store(Phase::Busy as u8, Ordering::Relaxed);
        } else if poll.is_pending() && phase == Phase::Ending {
            self.conn.phase.store(Phase::Idle as u8, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

/// Peeks through the wrapper's own buffer, so that it works on any stream (TLS too).
#[async_trait]
impl Peek for Watched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        while self.peeked.len() < buf.len() {
            // Whatever has arrived (a whole request head, usually), so that Pingora's first
            // read takes it all from here and costs no extra read from the socket.
            let mut more = [0u8; 4096];
            match self.inner.read(&mut more).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.peeked.extend_from_slice(&more[..n]),
            }
        }
        buf.copy_from_slice(&self.peeked[..buf.len()]);
        Ok(true)
    }
}
