//! Time and randomness, injected so the simulator can own them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// The broker reads wall-clock time (timestamps, heartbeats) only through this.
pub use riptide_wire::clock::{Clock, SystemClock};

/// A seeded generator for ids (incarnations, topic ids, write ids).
pub struct Ids(Mutex<ChaCha8Rng>);

impl Ids {
    pub fn new(seed: u64) -> Self {
        Ids(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))
    }
    pub fn next_u64(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).gen()
    }
    pub fn next_u128(&self) -> u128 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).gen()
    }
}
