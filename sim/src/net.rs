//! The simulated side of the network seam: turmoil's TCP for broker and client.

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

impl Connector for SimConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr.to_string()).await
    }
}
