//! What a run simulates: the cluster's shape and the workload's size.

use riptide_faults::{FaultMix, Planned};
use riptide_workloads::mix::{Span, WorkloadMix};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Scenario {
    pub name: String,
    pub brokers: usize,
    /// Brokers that can join during the run (scale out).
    pub spare_brokers: usize,
    pub zones: usize,
    pub partitions: i32,
    pub producers: usize,
    pub consumers: usize,
    /// Members of one consumer group reading the topic (joining, committing,
    /// rebalancing as brokers and coordinators come and go).
    pub group_consumers: usize,
    /// Simulated seconds of workload.
    pub duration_s: u64,
    /// How long a client waits for one response before giving up on it.
    pub client_request_timeout_ms: u64,
    /// Mean milliseconds between two sends of one producer.
    pub send_interval_ms: u64,
    /// Object-store call latency range.
    pub store_latency_ms: (u64, u64),
    /// Simulated time a tick advances (turmoil steps the world by ticks).
    pub tick_ms: u64,
    /// Bound on the final read after the workload: liveness.
    pub final_read_s: u64,
    /// The fault kinds the nemesis draws from; every fault heals before the
    /// workload ends except permanent ones (a zone never back, scale events).
    pub faults: FaultMix,
    /// Producers are idempotent (and retry every failure): then a duplicate
    /// is always an anomaly.
    pub idempotent: bool,
    /// A planted broker bug (see `riptide_broker::bugs`), by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    /// An explicit fault schedule to use instead of drawing one from the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_faults: Option<Vec<Planned>>,
    /// What the clients do (batching, pipelining, codecs, poll and fetch sizes, topics, ...);
    /// its fields sit at the top level of a scenario file.
    #[serde(flatten)]
    pub workload: WorkloadMix,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "baseline".into(),
            brokers: 3,
            spare_brokers: 0,
            zones: 3,
            partitions: 4,
            producers: 3,
            consumers: 2,
            group_consumers: 0,
            duration_s: 15,
            send_interval_ms: 20,
            client_request_timeout_ms: 10_000,
            store_latency_ms: (5, 40),
            tick_ms: 1,
            final_read_s: 30,
            faults: FaultMix::default(),
            idempotent: false,
            bug: None,
            fixed_faults: None,
            workload: WorkloadMix {
                // Below the 5 s after the last heal, so that a request lost in a partition
                // (turmoil drops it) frees its connection in time to show progress.
                request_timeout_ms: Some(Span::new(1500, 4000)),
                ..WorkloadMix::default()
            },
        }
    }
}

impl Scenario {
    pub fn named(name: &str) -> Option<Scenario> {
        let base = Scenario {
            name: name.to_string(),
            ..Scenario::default()
        };
        let mix = FaultMix::default();
        let s = match name {
            "baseline" => base,
            "partitions" => Scenario {
                faults: FaultMix {
                    partitions: true,
                    ..mix
                },
                ..base
            },
            "crashes" => Scenario {
                faults: FaultMix {
                    crashes: true,
                    ..mix
                },
                ..base
            },
            "object-store" => Scenario {
                faults: FaultMix { store: true, ..mix },
                ..base
            },
            "zone-loss" => Scenario {
                brokers: 6,
                faults: FaultMix {
                    zone_loss: true,
                    mean_gap_ms: 3000,
                    ..mix
                },
                ..base
            },
            "scale" => Scenario {
                brokers: 3,
                spare_brokers: 2,
                faults: FaultMix {
                    scale: true,
                    mean_gap_ms: 2500,
                    ..mix
                },
                ..base
            },
            "idempotent" => Scenario {
                idempotent: true,
                faults: FaultMix {
                    crashes: true,
                    store: true,
                    ..mix
                },
                ..base
            },
            // Owners paused mid-commit, replaced, then back with an old view:
            // where fencing, tail checks and producer state earn their keep.
            // Pauses outlast the session timeout (3 s) and clients give up on a
            // silent broker quickly, so ownership really moves while a paused
            // owner has work in flight.
            "ownership" => Scenario {
                producers: 4,
                send_interval_ms: 10,
                client_request_timeout_ms: 2_000,
                duration_s: 30,
                faults: FaultMix {
                    pauses: true,
                    mean_gap_ms: 6000,
                    max_duration_ms: 9000,
                    ..mix
                },
                ..base
            },
            "groups" => Scenario {
                brokers: 4,
                spare_brokers: 1,
                group_consumers: 3,
                faults: FaultMix {
                    partitions: true,
                    crashes: true,
                    scale: true,
                    ..mix
                },
                ..base
            },
            "chaos" => Scenario {
                brokers: 5,
                spare_brokers: 1,
                group_consumers: 2,
                workload: WorkloadMix {
                    topics: Span::new(1, 3),
                    ..base.workload.clone()
                },
                faults: FaultMix {
                    partitions: true,
                    crashes: true,
                    store: true,
                    zone_loss: true,
                    scale: true,
                    ..mix
                },
                ..base
            },
            _ => return None,
        };
        Some(s)
    }

    pub fn names() -> &'static [&'static str] {
        &[
            "baseline",
            "partitions",
            "crashes",
            "object-store",
            "zone-loss",
            "scale",
            "idempotent",
            "ownership",
            "groups",
            "chaos",
        ]
    }

    /// Reads a scenario file (JSON): any field left out keeps its default.
    pub fn from_json(text: &str) -> Result<Scenario, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s)
    }
}
