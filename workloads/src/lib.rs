//! riptide-workloads: the instrumented Kafka client and the workload generators that record a
//! history.
//!
//! The client runs unchanged in simulation and over real TCP: it reaches the network only through
//! [`net::Connector`], reads time only through `tokio::time`, and draws randomness only from a
//! seeded generator.

// Under madsim, tokio::time::Instant is std's Instant, which madsim makes virtual: the
// determinism lints (clippy.toml) cannot tell it from the real clock there, so they are
// enforced by the ordinary build's clippy, over the same code.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

pub mod client;
pub mod codec;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod generators;
pub mod mix;
pub mod net;
pub mod pace;
pub mod pipeline;
pub mod pipes;
pub mod producer;
pub mod recorder;
pub mod roster;
pub mod transactions;
pub mod trimmer;
pub mod witness;

pub use client::{Client, ClientConfig, Clock, FetchResult, OffsetSpec, ProduceAck, ProduceRetry};
pub use codec::FetchedRecord;
pub use connection::{Connection, ConnectionOptions};
pub use error::ClientError;
pub use net::{Connector, TcpConnector};
pub use pace::{Pace, Spikes};
pub use recorder::Recorder;
pub use witness::Witness;

/// A topic a workload writes and reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub partitions: i32,
    /// Its `retention.ms`, set when it is created; `None`: the broker's default.
    pub retention_ms: Option<u64>,
}

impl Topic {
    pub fn new(name: impl Into<String>, partitions: i32) -> Topic {
        Topic {
            name: name.into(),
            partitions,
            retention_ms: None,
        }
    }

    /// The settings CreateTopics gives it.
    pub fn configs(&self) -> Vec<(String, String)> {
        self.retention_ms
            .map(|ms| ("retention.ms".to_string(), ms.to_string()))
            .into_iter()
            .collect()
    }
}
