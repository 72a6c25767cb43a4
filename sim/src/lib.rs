//! riptide-sim: a whole cluster — brokers in zones, a regional object store,
//! clients — in one process on turmoil's seeded simulated runtime.
//!
//! Determinism: hosts run one at a time on one thread; tokio is seeded
//! (`--cfg tokio_unstable`); wall-clock time comes from [`clock::SimClock`];
//! every random choice derives from the run's seed ([`run::derive`]).

pub mod clock;
pub mod net;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod trace;

pub use run::{run, RunOutcome};
pub use scenario::Scenario;
