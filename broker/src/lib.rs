//! riptide's reference stateless broker: the Kafka wire protocol in front of
//! partition logs that live entirely in object storage.
//!
//! The broker knows nothing of the simulator. It is handed its seams: an
//! object store (`Arc<dyn ObjectStore>`), a clock ([`env::Clock`]), a seed
//! for the ids it makes, and a [`net::Listener`].

// Under madsim, tokio::time::Instant is std's Instant, which madsim makes virtual: the
// determinism lints (clippy.toml) cannot tell it from the real clock there, so they are
// enforced by the ordinary build's clippy, over the same code.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

pub mod admin_api;
pub mod api;
pub mod batch;
pub mod broker;
pub mod bugs;
pub mod cluster;
pub mod config;
pub mod coordinators;
pub mod env;
pub mod group_api;
pub mod groups;
pub mod net;
pub mod peer;
mod sasl;
pub mod server;
pub mod storage;
pub mod txn;
pub mod txn_api;

pub use broker::Broker;
pub use config::BrokerConfig;
