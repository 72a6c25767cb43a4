//! riptide-workloads: the instrumented Kafka client and the workload generators that record a
//! history.
//!
//! The client runs unchanged in simulation and over real TCP: it reaches the network only through
//! [`net::Connector`], reads time only through `tokio::time`, and draws randomness only from a
//! seeded generator.

pub mod client;
pub mod codec;
pub mod connection;
pub mod error;
pub mod generators;
pub mod net;
pub mod recorder;

pub use client::{Client, ClientConfig, Clock, FetchResult, OffsetSpec, ProduceAck, ProduceRetry};
pub use codec::FetchedRecord;
pub use connection::{Connection, ConnectionOptions};
pub use error::ClientError;
pub use net::{Connector, TcpConnector};
pub use recorder::Recorder;
