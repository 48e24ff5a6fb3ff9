//! A TCP connection inside a tunnel, as a tokio stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use augur_tunnel::Conn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::link::Link;

/// One connection through a tunnel. Dropping it closes the connection in the background.
pub struct TunnelStream {
    link: Arc<Link>,
    conn: Conn,
}

impl TunnelStream {
    pub(super) fn new(link: Arc<Link>, conn: Conn) -> TunnelStream {
        TunnelStream { link, conn }
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
        let (read, window_was_low) = {
            let mut node = this.link.lock();
            let low = node.stack.window_low(this.conn);
            (
                node.stack
                    .read(this.conn, buf.initialize_unfilled(), cx.waker()),
                low,
            )
        };
        match read {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                // Reading reopens the window; the peer may be waiting to hear that.
                if n > 0 && window_was_low {
                    this.link.kick();
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
        let written = this.link.lock().stack.write(this.conn, buf, cx.waker());
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                this.link.kick();
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
        this.link.lock().stack.shutdown(this.conn);
        this.link.kick();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        self.link.lock().stack.release(self.conn);
        self.link.kick();
    }
}
