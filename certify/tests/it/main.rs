//! riptide-certify's integration tests (real TCP on 127.0.0.1; none under `--cfg madsim`).
//!
//! One test binary for the crate's integration tests (each file a module, so a test is named
//! `file::test`): compiled and linked once instead of once per file. Each test crate instantiates
//! the generic code it uses (tokio, the broker's server, ...) again at opt-level 3, so a crate per
//! file cost minutes of a cold release test build. Add a file here as a `mod`, not as a new
//! `tests/*.rs`.

mod client_proxy;
mod store_proxy;
mod transactions;
