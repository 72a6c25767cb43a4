//! The one clock abstraction: broker, client and history recorder all read time through
//! [`Clock`], so a simulation owns every clock by handing out its own. Durations and timeouts
//! are not here: they use `tokio::time`, which a simulator drives.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Wall-clock milliseconds since the Unix epoch: record timestamps, heartbeats.
    fn now_ms(&self) -> i64;
    /// Time since the clock's origin (a run's start): when history operations happened.
    fn elapsed(&self) -> Duration;
}

/// The machine's clock, for real deployments and certification; its origin is its creation.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    #[allow(clippy::disallowed_methods)] // the real-mode clock: nothing simulated reads it
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

// The real-mode clock: nothing simulated reads it.
#[allow(clippy::disallowed_methods)]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that never moves: fixed timestamps for tests.
#[derive(Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }

    fn elapsed(&self) -> Duration {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2026_and_monotonic() {
        let c = SystemClock::new();
        assert!(c.now_ms() > 1_767_225_600_000);
        let a = c.elapsed();
        assert!(c.elapsed() >= a);
    }
}
