//! riptide-broker's integration tests.
//!
//! One test binary for the crate's integration tests (each file a module, so a test is named
//! `file::test`): compiled and linked once instead of once per file. Each test crate instantiates
//! the generic code it uses (tokio, the broker's server, ...) again at opt-level 3, so a crate per
//! file cost minutes of a cold release test build. Add a file here as a `mod`, not as a new
//! `tests/*.rs`.

mod checkpoint;
mod groups;
mod invariants;
mod log;
mod produce_budget;
mod put_hook;
mod sasl;
mod txn_log;
