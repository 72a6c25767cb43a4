//! riptide-faults: what can go wrong, and when.
//!
//! - [`schedule`]: fault kinds and the seeded nemesis that schedules them;
//! - [`store`]: an object store wrapper that injects latency, errors and
//!   ambiguous outcomes under a seeded generator;
//!
//! The real-TCP appliers of the same faults (certification's proxies and hooks) live in
//! `riptide-certify`.

// Under madsim, tokio::time::Instant is std's Instant, which madsim makes virtual: the
// determinism lints (clippy.toml) cannot tell it from the real clock there, so they are
// enforced by the ordinary build's clippy, over the same code.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

pub mod schedule;
pub mod store;

pub use schedule::{Capabilities, Elastic, Fault, FaultMix, Planned, Schedule, Topology};
pub use store::{FaultyStore, StoreFaults};

/// Whether a coverage point belongs to certification alone (its proxies, or a fault kind only
/// its proxies apply): a simulation cannot reach it, a certification can.
pub fn certify_only(p: &riptide_coverage::Point) -> bool {
    p.module.starts_with("riptide_certify") || schedule::CERTIFY_ONLY_POINTS.contains(&p.name)
}

/// Whether a coverage point is the nemesis's "fault began with operations in flight", which
/// both worlds reach.
pub fn nemesis_point(p: &riptide_coverage::Point) -> bool {
    p.module == "riptide_faults::schedule"
}
