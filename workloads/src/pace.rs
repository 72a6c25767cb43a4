//! How fast producers go: a factor the nemesis raises during a traffic spike and lowers at its
//! heal. Shared by every producer of a roster; read at each gap between records, so a spike takes
//! effect at the next record. The same handle serves the simulator and certification.

use std::collections::BTreeMap;
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

/// The traffic spikes on now, by fault id: overlapping spikes pace producers at the largest
/// factor, and the pace comes back to 1 when the last heals. Each world's nemesis keeps one.
#[derive(Debug)]
pub struct Spikes {
    pace: Pace,
    active: BTreeMap<usize, u32>,
}

impl Spikes {
    /// Spikes that set `pace`.
    pub fn new(pace: Pace) -> Spikes {
        Spikes {
            pace,
            active: BTreeMap::new(),
        }
    }

    /// Spike `id` of `factor` begins (`start`) or heals.
    pub fn apply(&mut self, id: usize, factor: u32, start: bool) {
        if start {
            self.active.insert(id, factor);
        } else {
            self.active.remove(&id);
        }
        self.pace
            .set(self.active.values().copied().max().unwrap_or(1));
    }

    /// Every spike over: the producers' own pace again.
    pub fn clear(&mut self) {
        self.active.clear();
        self.pace.set(1);
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

    #[test]
    fn overlapping_spikes_pace_at_the_largest_until_the_last_heals() {
        let p = Pace::default();
        let mut s = Spikes::new(p.clone());
        s.apply(1, 3, true);
        s.apply(2, 5, true);
        assert_eq!(p.factor(), 5);
        s.apply(2, 5, false);
        assert_eq!(p.factor(), 3);
        s.apply(1, 3, false);
        assert_eq!(p.factor(), 1);
    }
}
