//! Dialling a backend outside Pingora's connector (TCP relay, health checks): directly, or
//! through the backend's tunnel.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::runtime::Backend;
use crate::tunnel::TunnelStream;

impl Backend {
    /// Opens a connection to the backend, directly or through its tunnel. The one place a
    /// backend is dialled outside Pingora's connector (TCP relay, health checks).
    pub async fn dial(&self, timeout: Duration) -> io::Result<BackendStream> {
        match &self.via {
            Some(tunnel) => Ok(Either::Right(tunnel.dial(self.addr, timeout).await?)),
            None => {
                let stream = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                stream.set_nodelay(true)?;
                Ok(Either::Left(stream))
            }
        }
    }
}

/// A connection to a backend: a kernel TCP socket (`Left`, dialled directly) or a connection
/// inside the backend's tunnel (`Right`).
pub type BackendStream = Either<TcpStream, TunnelStream>;
