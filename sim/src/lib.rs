//! riptide-sim: a whole cluster — brokers in zones, a regional object store,
//! clients — in one process on a seeded simulated runtime: turmoil in
//! ordinary builds, madsim in `--cfg madsim` builds (see [`world::World`]).
//!
//! Determinism: hosts run one at a time on one thread; tokio is seeded
//! (`--cfg tokio_unstable`); wall-clock time comes from [`clock::SimClock`];
//! every random choice derives from the run's seed ([`run::derive`]); nothing
//! process-wide carries from one run into the next, so a seed gives the same
//! trace hash in a fresh process or after other runs in the same one (on
//! turmoil, see `fresh_task_ids` in the turmoil backend).

// Under madsim, tokio::time::Instant is std's Instant, which madsim makes virtual: the
// determinism lints (clippy.toml) cannot tell it from the real clock there, so they are
// enforced by the ordinary build's clippy, over the same code.
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

#[cfg(madsim)]
#[path = "madsim_backend.rs"]
pub mod backend;
#[cfg(not(madsim))]
#[path = "turmoil_backend.rs"]
pub mod backend;
pub mod clock;
pub mod host;
pub mod net;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod trace;
pub mod world;

pub use run::{run, RunOutcome};
pub use scenario::Scenario;
