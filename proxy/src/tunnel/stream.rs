//! A TCP connection inside a tunnel, as a tokio stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use augur_tunnel::Conn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::link::Link;

/// Relay buffer per direction.
const RELAY_BUFFER: usize = 64 * 1024;

/// One connection through a tunnel. Dropping it closes the connection in the background.
pub struct TunnelStream {
    link: Arc<Link>,
    conn: Conn,
}

impl TunnelStream {
    pub(super) fn new(link: Arc<Link>, conn: Conn) -> TunnelStream {
        TunnelStream { link, conn }
    }

    /// Relays between this connection and `outside` until both directions have ended.
    pub(super) async fn relay(mut self, outside: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
        let _ = tokio::io::copy_bidirectional_with_sizes(
            &mut self,
            outside,
            RELAY_BUFFER,
            RELAY_BUFFER,
        )
        .await;
    }
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream")
            .field("tunnel", &self.link.name)
            .field("conn", &self.conn)
            .finish()
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut node = this.link.lock();
        let window_was_low = node.stack.window_low(this.conn);
        // Only as much of the buffer as there is to read is initialised (zeroing a large
        // read buffer on every call cost more than the copy).
        let want = node
            .stack
            .readable(this.conn)
            .clamp(1, buf.remaining().max(1));
        let read = node.stack.read(
            this.conn,
            buf.initialize_unfilled_to(want.min(buf.remaining())),
            cx.waker(),
        );
        match read {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                // Reading reopened the window: tell the peer now, it may be waiting.
                if n > 0 && window_was_low {
                    this.link.flush(&mut node);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut node = this.link.lock();
        let written = node.stack.write(this.conn, buf, cx.waker());
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                // Send on this thread rather than waking the driver for it.
                this.link.flush(&mut node);
            }
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are already the stack's to send; the driver was kicked.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut node = this.link.lock();
        node.stack.shutdown(this.conn);
        this.link.flush(&mut node);
        Poll::Ready(Ok(()))
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        let mut node = self.link.lock();
        node.stack.release(self.conn);
        self.link.flush(&mut node);
    }
}
