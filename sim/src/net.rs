//! The simulated side of the network seam: simulated TCP for brokers and clients. turmoil's in
//! ordinary builds; in `--cfg madsim` builds `tokio::net` itself is madsim's simulated TCP, so
//! the real-network types of the seam are the simulated ones.

use riptide_broker::net::{Dialer, Listener};
use std::io;
use std::net::SocketAddr;

#[cfg(madsim)]
pub use riptide_workloads::TcpConnector as SimConnector;

/// A simulated TCP stream (turmoil's, or madsim's through `tokio::net`): it implements tokio's
/// `AsyncRead` and `AsyncWrite`.
#[cfg(not(madsim))]
pub type SimStream = turmoil::net::TcpStream;
/// A simulated TCP stream (turmoil's, or madsim's through `tokio::net`): it implements tokio's
/// `AsyncRead` and `AsyncWrite`.
#[cfg(madsim)]
pub type SimStream = tokio::net::TcpStream;

#[cfg(not(madsim))]
type Inner = turmoil::net::TcpListener;
#[cfg(madsim)]
type Inner = tokio::net::TcpListener;

/// A broker host's simulated TCP listener, bound by the simulator on the broker's port.
pub struct SimListener(pub(crate) Inner);

impl SimListener {
    /// Waits for the next connection.
    pub async fn accept(&mut self) -> io::Result<(SimStream, SocketAddr)> {
        self.0.accept().await
    }
}

impl Listener for SimListener {
    type Stream = SimStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        SimListener::accept(self).await
    }
}

/// Brokers reach each other (markers, transaction verification) over simulated TCP.
#[cfg(madsim)]
pub fn sim_dialer() -> Dialer {
    riptide_broker::net::tcp_dialer()
}

/// Brokers reach each other (markers, transaction verification) over simulated TCP.
#[cfg(not(madsim))]
pub fn sim_dialer() -> Dialer {
    std::sync::Arc::new(|addr: String| {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn riptide_broker::net::PeerStream>)
        })
    })
}

/// Clients connect over turmoil's TCP.
#[cfg(not(madsim))]
pub struct SimConnector;

#[cfg(not(madsim))]
impl riptide_workloads::Connector for SimConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr.to_string()).await
    }
}
