//! How fast producers go: a factor the nemesis raises during a traffic spike and lowers at its
//! heal. Shared by every producer of a roster; read at each gap between records, so a spike takes
//! effect at the next record. The same handle serves the simulator and certification.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Producers make records `factor()` times as fast as their profile says.
#[derive(Clone, Debug, Default)]
pub struct Pace(Arc<AtomicU32>);

impl Pace {
    /// The current factor: 1 outside a spike.
    pub fn factor(&self) -> u32 {
        self.0.load(Ordering::Relaxed).max(1)
    }

    /// Sets the factor (1: the profile's own pace).
    pub fn set(&self, factor: u32) {
        self.0.store(factor, Ordering::Relaxed);
    }

    /// `gap` shortened by the factor.
    pub fn gap_us(&self, gap_us: u64) -> u64 {
        gap_us / u64::from(self.factor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_shortens_gaps_and_its_heal_restores_them() {
        let p = Pace::default();
        let shared = p.clone();
        assert_eq!(p.gap_us(1000), 1000, "no spike: the profile's pace");
        shared.set(4);
        assert_eq!(p.gap_us(1000), 250);
        shared.set(1);
        assert_eq!(p.gap_us(1000), 1000);
        shared.set(0);
        assert_eq!(p.factor(), 1, "never stops producers");
    }
}
