//! riptide-sim: a whole cluster — brokers in zones, a regional object store,
//! clients — in one process on a seeded simulated runtime: turmoil in
//! ordinary builds, madsim in `--cfg madsim` builds (see [`world::World`]).
//!
//! As a library: build a [`Simulation`] from a [`Scenario`] and a seed, put your own broker in
//! it with a [`BrokerFactory`] (it gets a simulated listener, the object store with the
//! nemesis's faults, the simulated clock and a seed in a [`BrokerEnv`]), and run it to a
//! verdict: the [`RunOutcome`] holds the checkers' report and the history. riptide's own broker
//! is the [`ReferenceBroker`] factory. `examples/own-broker` in the repository is a whole
//! crate doing this from its `cargo test`.
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
#![deny(missing_docs)]

#[cfg(madsim)]
#[path = "madsim_backend.rs"]
pub mod backend;
#[cfg(not(madsim))]
#[path = "turmoil_backend.rs"]
pub mod backend;
pub mod clock;
pub mod factory;
pub mod host;
pub mod net;
pub mod run;
pub mod scenario;
pub mod shrink;
mod simulation;
pub mod trace;
pub mod world;

pub use factory::{BrokerEnv, BrokerFactory, ReferenceBroker};
pub use net::{SimListener, SimStream};
pub use riptide_broker::env::Clock;
pub use riptide_checker::{History, Report, Verdict};
pub use riptide_faults::FaultMix;
pub use run::{run, RunOutcome};
pub use scenario::Scenario;
pub use simulation::Simulation;
