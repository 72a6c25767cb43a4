//! The simulated side of the network seam: turmoil's TCP for broker and client.
//! In `--cfg madsim` builds, `tokio::net` itself is madsim's simulated TCP, so
//! the real-network types of the seam are the simulated ones.

#[cfg(madsim)]
pub use riptide_broker::net::tcp_dialer as sim_dialer;
#[cfg(madsim)]
pub use riptide_workloads::TcpConnector as SimConnector;
#[cfg(not(madsim))]
pub use turmoil_net::*;

#[cfg(not(madsim))]
mod turmoil_net {

    use riptide_broker::net::Listener;
    use riptide_workloads::Connector;
    use std::io;
    use std::net::SocketAddr;

    pub struct SimListener(pub turmoil::net::TcpListener);

    impl Listener for SimListener {
        type Stream = turmoil::net::TcpStream;
        async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
            self.0.accept().await
        }
    }

    pub struct SimConnector;

    /// Brokers reach each other over turmoil's TCP too (markers, transaction verification).
    pub fn sim_dialer() -> riptide_broker::net::Dialer {
        std::sync::Arc::new(|addr: String| {
            Box::pin(async move {
                let stream = turmoil::net::TcpStream::connect(addr).await?;
                Ok(Box::new(stream) as Box<dyn riptide_broker::net::PeerStream>)
            })
        })
    }

    impl Connector for SimConnector {
        type Stream = turmoil::net::TcpStream;
        async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
            turmoil::net::TcpStream::connect(addr.to_string()).await
        }
    }
}
