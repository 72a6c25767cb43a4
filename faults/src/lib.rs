//! riptide-faults: what can go wrong, and when.
//!
//! - [`schedule`]: fault kinds and the seeded nemesis that schedules them;
//! - [`store`]: an object store wrapper that injects latency, errors and
//!   ambiguous outcomes under a seeded generator;
//! - [`proxy`] and [`certify`]: the Kafka-aware TCP proxy and the seeded
//!   node faults used to certify a real cluster.

pub mod certify;
// Real TCP only: the proxy never runs in a simulation.
#[cfg(not(madsim))]
pub mod proxy;
pub mod schedule;
pub mod store;

pub use schedule::{Fault, FaultMix, Planned, Schedule, Topology};
pub use store::{FaultyStore, StoreFaults};
