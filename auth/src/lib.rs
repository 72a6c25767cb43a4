//! riptide-auth: what it takes to reach, or to be, a Kafka cluster that requires TLS and SASL.
//!
//! - [`sasl`]: PLAIN and SCRAM-SHA-256/512 messages, client and server side;
//! - [`users`]: the broker's users file (SCRAM credentials, salted) and a client's credentials;
//! - [`client`]: dialling a broker with TLS and Kafka's SASL exchange (certify proxy, brokers);
//! - [`tls`]: rustls configurations from PEM files.
//!
//! The broker's side of the SASL exchange (which requests it serves before authentication) is
//! the broker's; it uses [`sasl`] and [`users`] only, which need no I/O.

pub mod client;
pub mod sasl;
pub mod tls;
pub mod users;

pub use client::{ConnectError, Security};
pub use sasl::{Mechanism, Scram};
/// For the acceptor and connector types, with the crypto provider this crate picked.
pub use tokio_rustls;
pub use users::{ClientSasl, Users};
