//! The `riptide` binary's integration tests: each runs the binary (`CARGO_BIN_EXE_riptide`).
//!
//! One test binary for the crate's integration tests (each file a module, so a test is named
//! `file::test`): compiled and linked once instead of once per file. Each test crate instantiates
//! the generic code it uses (tokio, the broker's server, ...) again at opt-level 3, so a crate per
//! file cost minutes of a cold release test build. Add a file here as a `mod`, not as a new
//! `tests/*.rs`.

mod check_only;
mod determinism;
mod figures;
