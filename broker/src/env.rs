//! Time and randomness, injected so the simulator can own them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// Wall-clock milliseconds since the Unix epoch. Only used for timestamps and
/// heartbeats; durations and timeouts use `tokio::time`, which a simulator drives.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The machine's clock, for real deployments.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now(); // allow-nondeterminism: SystemClock is the real-mode clock
        now.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

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
