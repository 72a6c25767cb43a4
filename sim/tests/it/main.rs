//! riptide-sim's integration tests that share one binary (each file a module, so a test is named
//! `file::test`): compiled and linked once instead of once per file. Simulations in one process
//! run one at a time (`run` holds a lock), so sharing a binary changes nothing for them. Kept as
//! binaries of their own: `faults`, `coverage` and `same_process`, which ci/madsim.sh builds under
//! `--cfg madsim` by name, and `coverage` also turns counting off for the whole process.

mod client_counters;
mod corpus;
mod invariants;
mod jepsen;
