//! riptide-faults: what can go wrong, and when.
//!
//! - [`schedule`]: fault kinds and the seeded nemesis that schedules them;
//! - [`store`]: an object store wrapper that injects latency, errors and
//!   ambiguous outcomes under a seeded generator;
//! - [`proxy`] and [`certify`]: the Kafka-aware TCP proxy and the seeded
//!   node faults used to certify a real cluster.

// Under madsim, tokio::time::Instant is std's Instant, which madsim makes virtual: the
// determinism lints (clippy.toml) cannot tell it from the real clock there, so they are
// enforced by the ordinary build's clippy, over the same code.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

pub mod certify;
// Real TCP only: the proxy never runs in a simulation.
#[cfg(not(madsim))]
pub mod proxy;
pub mod schedule;
pub mod store;

pub use schedule::{Fault, FaultMix, Planned, Schedule, Topology};
pub use store::{FaultyStore, StoreFaults};

/// Whether a coverage point belongs to certification alone (its proxy and node faults): a
/// simulation cannot reach it, a certification can.
pub fn certify_only(p: &riptide_coverage::Point) -> bool {
    [
        "riptide_faults::proxy",
        "riptide_faults::certify",
        "riptide::",
    ]
    .iter()
    .any(|m| p.module.starts_with(m))
}
