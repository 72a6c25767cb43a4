//! What a run simulates: the cluster's shape and the workload's size.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Scenario {
    pub name: String,
    pub brokers: usize,
    pub zones: usize,
    pub partitions: i32,
    pub producers: usize,
    pub consumers: usize,
    /// Simulated seconds of workload.
    pub duration_s: u64,
    /// Mean milliseconds between two sends of one producer.
    pub send_interval_ms: u64,
    /// Object-store call latency range.
    pub store_latency_ms: (u64, u64),
    /// Simulated time a tick advances (turmoil steps the world by ticks).
    pub tick_ms: u64,
    /// Bound on the final read after the workload: liveness.
    pub final_read_s: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "baseline".into(),
            brokers: 3,
            zones: 3,
            partitions: 4,
            producers: 3,
            consumers: 2,
            duration_s: 10,
            send_interval_ms: 20,
            store_latency_ms: (5, 40),
            tick_ms: 1,
            final_read_s: 30,
        }
    }
}

impl Scenario {
    pub fn named(name: &str) -> Option<Scenario> {
        match name {
            "baseline" => Some(Scenario::default()),
            _ => None,
        }
    }

    pub fn names() -> &'static [&'static str] {
        &["baseline"]
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s)
    }
}
