//! Dialling a backend outside Pingora's connector (TCP relay, health checks): directly, or
//! through the backend's tunnel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::runtime::Backend;
use crate::tunnel::TunnelStream;

impl Backend {
    /// Opens a connection to the backend, directly or through its tunnel. The one place a
    /// backend is dialled outside Pingora's connector (TCP relay, health checks).
    pub async fn dial(&self, timeout: Duration) -> io::Result<BackendStream> {
        match &self.via {
            Some(tunnel) => Ok(BackendStream::Tunnel(
                tunnel.dial(self.addr, timeout).await?,
            )),
            None => {
                let stream = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                stream.set_nodelay(true)?;
                Ok(BackendStream::Tcp(stream))
            }
        }
    }
}

/// A connection to a backend: a kernel TCP socket, or a connection inside a tunnel.
pub enum BackendStream {
    /// Dialled directly.
    Tcp(TcpStream),
    /// Dialled through a tunnel.
    Tunnel(TunnelStream),
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tunnel(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tunnel(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tunnel(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tunnel(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
