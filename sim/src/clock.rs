//! Simulated wall-clock time: the backend's virtual clock from a fixed epoch.

use riptide_broker::env::Clock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z: every run starts at the same instant.
pub const EPOCH_SECS: u64 = 1_767_225_600;

/// The instant every run starts at, as a [`SystemTime`].
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH_SECS)
}

/// The simulation's clock for brokers, clients and the history: the
/// backend's virtual time, whose origin is the run's start.
#[derive(Debug)]
pub struct SimClock;

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        crate::backend::since_epoch()
            .map(|d| d.as_millis() as i64)
            .unwrap_or(EPOCH_SECS as i64 * 1000)
    }

    fn elapsed(&self) -> Duration {
        crate::backend::sim_elapsed().unwrap_or_default()
    }
}
