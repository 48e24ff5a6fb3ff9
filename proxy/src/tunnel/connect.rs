//! The tunnel's CONNECT endpoint: a Unix socket in a private directory on which Pingora asks
//! for `CONNECT IP:PORT` and gets a connection inside the tunnel, relayed.
//!
//! Why not hand Pingora the tunnel connection directly (a custom L4 connector and a virtual
//! socket)? Pingora 0.9's connection pool keys idle connections by file descriptor and checks
//! a reused one's peer address against the backend's; a virtual socket has neither, so no
//! connection would ever be reused and every request would open a new one. Through a CONNECT
//! proxy on a Unix socket both checks hold, pooling works, and a failed dial is still a
//! connect failure (502 to CONNECT) to the proxy's retry and ejection logic.

use std::sync::Arc;
use std::time::Duration;

use augur_tunnel::{connect_head, ConnectHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::link::Link;

/// Upper bound on a dial made for CONNECT (Pingora gives up sooner, at the upstream's
/// `connect_timeout`, and closes the socket).
const DIAL_LIMIT: Duration = Duration::from_secs(30);

/// Accepts CONNECT requests until the process ends.
pub async fn serve(link: Arc<Link>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(handle(Arc::clone(&link), conn));
            }
            Err(e) => {
                tracing::warn!(tunnel = %link.name, error = %e, "CONNECT endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(link: Arc<Link>, mut conn: UnixStream) {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let (target, len) = loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        match connect_head(&head) {
            ConnectHead::Partial => continue,
            ConnectHead::Target(target, len) => break (target, len),
            ConnectHead::Invalid => {
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                return;
            }
        }
    };
    let mut inside = match super::dial(&link, target, DIAL_LIMIT).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(tunnel = %link.name, target = %target, error = %e, "dial for CONNECT failed");
            let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        }
    };
    if conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.is_err() {
        return;
    }
    // Bytes sent after the head (Pingora waits for the 200, but a client may not).
    if head.len() > len && inside.write_all(&head[len..]).await.is_err() {
        return;
    }
    inside.relay(&mut conn).await;
}
