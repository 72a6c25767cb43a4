//! The network seam: the client only ever sees a [`Connector`] and its byte stream. Real TCP lives
//! here; the simulator supplies its own connector (turmoil streams) without touching the client.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// Opens byte streams to `host:port` addresses.
pub trait Connector: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Real TCP via `tokio::net`. The only place in this crate that names `tokio::net`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;

    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // Requests are small and latency-bound; don't let Nagle hold them back.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
