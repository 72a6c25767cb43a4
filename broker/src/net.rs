//! The network seam. The broker only ever accepts connections; whoever builds it
//! decides whether they come from `tokio::net` (real) or a simulator.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// A source of inbound byte streams.
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Kafka responses are small and latency-sensitive.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

/// What a connection goes through before the Kafka protocol starts on it (a TLS handshake):
/// run on the connection's own task, so a slow or garbled handshake holds up no one else.
pub type Upgrade = std::sync::Arc<
    dyn Fn(
            Box<dyn PeerStream>,
        ) -> futures::future::BoxFuture<'static, io::Result<Box<dyn PeerStream>>>
        + Send
        + Sync,
>;

/// An outbound byte stream to another broker.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for T {}

/// Opens streams to other brokers (`host:port`): the transaction coordinator asks partition
/// owners to write markers, and owners ask coordinators to verify a transaction (KIP-890).
/// Whoever builds the broker chooses real or simulated TCP, as for [`Listener`].
pub type Dialer = std::sync::Arc<
    dyn Fn(String) -> futures::future::BoxFuture<'static, io::Result<Box<dyn PeerStream>>>
        + Send
        + Sync,
>;

/// Real TCP via `tokio::net` (madsim's simulated TCP in `--cfg madsim` builds).
pub fn tcp_dialer() -> Dialer {
    std::sync::Arc::new(|addr: String| {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Box<dyn PeerStream>)
        })
    })
}
