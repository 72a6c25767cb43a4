//! riptide-certify: certification of a real Kafka-compatible cluster over real TCP.
//!
//! The same workloads, checkers and fault model as the simulator, in the other world: the
//! seed's [`riptide_faults::Schedule`] is applied by
//! - [`client_proxy`]: a Kafka-aware TCP proxy between the clients and each broker (partitions,
//!   delays, dropped replies, cut connections), which also records the protocol in use;
//! - [`store_proxy`]: an S3 proxy between each broker and its bucket (errors, latency, a cut
//!   link, writes applied with the reply lost, late writes), which also records what the
//!   broker does to its store;
//! - [`hooks`]: shell commands that kill, start, pause and resume a node.
//!
//! [`engine`] runs a certification to its verdict; [`report`] writes it as Markdown, JSON and
//! HTML. Real TCP only: nothing here is built into the madsim (simulation-only) build.
#![cfg(not(madsim))]

pub mod client_proxy;
pub mod engine;
pub mod hooks;
pub mod report;
pub mod store_proxy;

pub use engine::{certify, Certification, Config, NotServed, StoreLink, SCENARIOS};
