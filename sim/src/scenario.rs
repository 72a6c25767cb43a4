//! What a run simulates: the cluster's shape and the workload's size.

use riptide_broker::bugs::Bug;
use riptide_faults::{Elastic, FaultMix, Planned};
use riptide_workloads::mix::{Span, WorkloadMix};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
/// What a run simulates: the cluster, the clients, the workload and the faults. Presets by
/// name in [`PRESETS`]; files are JSON with any field left out at its default.
pub struct Scenario {
    /// Its name in reports and repro lines.
    pub name: String,
    /// Brokers at the start.
    pub brokers: usize,
    /// Brokers that can join during the run (scale out).
    pub spare_brokers: usize,
    /// Availability zones; broker `i` lives in zone `i % zones`.
    pub zones: usize,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Producer processes.
    pub producers: usize,
    /// Consumer processes reading assigned partitions (not in a group).
    pub consumers: usize,
    /// Members of one consumer group reading the topic (joining, committing,
    /// rebalancing as brokers and coordinators come and go).
    pub group_consumers: usize,
    /// Transactional producers (Jepsen's transactional shape); with any, half the consumers
    /// and the final read are read_committed.
    pub txn_producers: usize,
    /// Their `transaction.timeout.ms`.
    pub txn_timeout_ms: u64,
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
    /// A planted broker bug (see `riptide_broker::bugs`), by name in a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bug: Option<Bug>,
    /// How long the reference broker waits without a peer's heartbeat before it counts the
    /// peer gone and takes over its partitions; absent: the broker's default (3 s). Shorter
    /// shortens the windows a crash opens and moves partitions from brokers only slow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_session_timeout_ms: Option<u64>,
    /// Above this worst realtime lag (ms) a partition is a `realtime-lag` finding (freshness);
    /// without it the lag is only a figure of the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_realtime_lag_ms: Option<u64>,
    /// How often brokers apply retention, and how long objects below a log start are kept (ms).
    pub retention_check_ms: u64,
    /// See [`Scenario::retention_check_ms`].
    pub delete_delay_ms: u64,
    /// Records kept for a while only: the first topic's `retention.ms` is drawn, and
    /// administrators delete records now and then (DeleteRecords).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionMix>,
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
            txn_producers: 0,
            txn_timeout_ms: 6_000,
            duration_s: 15,
            send_interval_ms: 20,
            client_request_timeout_ms: 10_000,
            store_latency_ms: (5, 40),
            tick_ms: 1,
            final_read_s: 30,
            faults: FaultMix::default(),
            idempotent: false,
            bug: None,
            broker_session_timeout_ms: None,
            max_realtime_lag_ms: None,
            retention_check_ms: 30_000,
            delete_delay_ms: 60_000,
            retention: None,
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

/// Retention in a run (see [`Scenario::retention`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetentionMix {
    /// The first topic's `retention.ms`, drawn in this range.
    pub retention_ms: Span,
    /// Administrators calling DeleteRecords.
    pub trimmers: usize,
}

/// A named scenario: what it exercises, and how it differs from the default.
/// [`PRESETS`] is the one list of them: `Scenario::named`, `riptide --help`
/// and `--scenario`'s accepted values all read it.
#[derive(Debug)]
pub struct Preset {
    /// Its name, as `--scenario` takes it.
    pub name: &'static str,
    /// One line on what it exercises.
    pub about: &'static str,
    shape: fn(Scenario, FaultMix) -> Scenario,
}

impl Preset {
    /// The preset called `name`.
    pub fn get(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// Its scenario.
    pub fn scenario(&self) -> Scenario {
        let base = Scenario {
            name: self.name.to_string(),
            ..Scenario::default()
        };
        (self.shape)(base, FaultMix::default())
    }
}

/// Every named scenario.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "baseline",
        about: "no faults: the workload alone",
        shape: |base, _| base,
    },
    Preset {
        name: "partitions",
        about: "network partitions between clients and brokers, and between brokers",
        shape: |base, mix| Scenario {
            faults: FaultMix {
                partitions: true,
                ..mix
            },
            ..base
        },
    },
    Preset {
        name: "crashes",
        about: "brokers crash and restart (nothing survives but the object store)",
        shape: |base, mix| Scenario {
            faults: FaultMix {
                crashes: true,
                ..mix
            },
            ..base
        },
    },
    Preset {
        name: "object-store",
        about: "object-store latency, errors and writes whose reply is lost",
        shape: |base, mix| Scenario {
            faults: FaultMix { store: true, ..mix },
            ..base
        },
    },
    Preset {
        name: "zone-loss",
        about: "six brokers over three zones; a whole zone vanishes",
        shape: |base, mix| Scenario {
            brokers: 6,
            faults: FaultMix {
                zone_loss: true,
                mean_gap_ms: 3000,
                ..mix
            },
            ..base
        },
    },
    Preset {
        name: "scale",
        about: "brokers join and leave: partitions change owner",
        shape: |base, mix| Scenario {
            brokers: 3,
            spare_brokers: 2,
            faults: FaultMix {
                scale: true,
                mean_gap_ms: 2500,
                ..mix
            },
            ..base
        },
    },
    // What a serverless broker promises to take in its stride: several brokers joining at
    // once, half leaving, a traffic spike answered by a scale-out, every broker replaced in
    // turn (a rolling restart of a StatefulSet). Long enough for a rolling replacement of
    // seven brokers between other events.
    Preset {
        name: "elastic",
        about: "several brokers join at once, half leave, traffic spikes with scale-outs, every broker replaced in turn",
        shape: |base, mix| Scenario {
            brokers: 4,
            spare_brokers: 4,
            zones: 2,
            group_consumers: 2,
            duration_s: 40,
            faults: FaultMix {
                elastic: Elastic::ALL.to_vec(),
                mean_gap_ms: 5000,
                max_duration_ms: 6000,
                ..mix
            },
            ..base
        },
    },
    Preset {
        name: "idempotent",
        about: "idempotent producers under crashes and store faults: any duplicate is an anomaly",
        shape: |base, mix| Scenario {
            idempotent: true,
            faults: FaultMix {
                crashes: true,
                store: true,
                ..mix
            },
            ..base
        },
    },
    // Owners paused mid-commit, replaced, then back with an old view: where
    // fencing, tail checks and producer state earn their keep. Pauses outlast
    // the session timeout (3 s) and clients give up on a silent broker
    // quickly, so ownership really moves while a paused owner has work in
    // flight.
    Preset {
        name: "ownership",
        about: "owners paused past their session, replaced, then back with an old view",
        shape: |base, mix| Scenario {
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
    },
    Preset {
        name: "groups",
        about: "a consumer group rebalancing through partitions, crashes and scale events",
        shape: |base, mix| Scenario {
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
    },
    // Transactions across partitions and topics, committed and aborted, with read_committed and
    // read_uncommitted consumers side by side, through coordinator crashes (between marker
    // writes), ambiguous store writes, and brokers paused. Each transactional producer is, by
    // draw, a consume-transform-produce pipeline (exactly-once); now and then one stalls
    // mid-transaction past its transaction timeout, or a second instance of it fences it and
    // takes over (a zombie), and what it does next must be refused.
    Preset {
        name: "transactions",
        about: "transactional producers and consume-transform-produce pipelines, stalled and zombie producers, read_committed consumers, through crashes, store faults and pauses",
        shape: |base, mix| Scenario {
            brokers: 4,
            txn_producers: 3,
            group_consumers: 2,
            duration_s: 30,
            workload: WorkloadMix {
                topics: Span::new(1, 2),
                ..base.workload.clone()
            },
            faults: FaultMix {
                crashes: true,
                store: true,
                pauses: true,
                partitions: true,
                ..mix
            },
            ..base
        },
    },
    // Records kept seconds only, and an administrator deleting records now and then: nothing
    // may go before its time, the log start never goes back, and a read below it is refused.
    // Owners crash, pause and move while they trim and delete objects below the log start.
    Preset {
        name: "retention",
        about: "records kept seconds only (retention.ms) and deleted by an administrator (DeleteRecords), through crashes, pauses, partitions and store faults",
        shape: |base, mix| Scenario {
            duration_s: 30,
            group_consumers: 2,
            retention_check_ms: 1_000,
            delete_delay_ms: 3_000,
            retention: Some(RetentionMix {
                retention_ms: Span::new(4_000, 12_000),
                trimmers: 1,
            }),
            workload: WorkloadMix {
                topics: Span::new(1, 2),
                ..base.workload.clone()
            },
            faults: FaultMix {
                crashes: true,
                pauses: true,
                store: true,
                partitions: true,
                ..mix
            },
            ..base
        },
    },
    Preset {
        name: "chaos",
        about: "everything at once: partitions, crashes, store faults, zone loss, scale, groups, transactions, retention, 1-3 topics",
        shape: |base, mix| Scenario {
            brokers: 5,
            spare_brokers: 1,
            group_consumers: 2,
            txn_producers: 1,
            retention_check_ms: 1_000,
            delete_delay_ms: 3_000,
            retention: Some(RetentionMix {
                retention_ms: Span::new(8_000, 20_000),
                trimmers: 1,
            }),
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
    },
];

impl Scenario {
    /// A scenario of [`PRESETS`], by name.
    pub fn named(name: &str) -> Option<Scenario> {
        Preset::get(name).map(Preset::scenario)
    }

    /// The presets' names.
    pub fn names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|p| p.name)
    }

    /// Reads a scenario file (JSON): any field left out keeps its default.
    pub fn from_json(text: &str) -> Result<Scenario, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Simulated time of workload.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_unique_names_and_build_themselves() {
        let mut names: Vec<&str> = Scenario::names().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        for p in PRESETS {
            assert_eq!(Scenario::named(p.name).unwrap().name, p.name);
        }
        assert!(Scenario::named("no-such").is_none());
    }

    #[test]
    fn every_bug_names_a_preset() {
        for bug in Bug::ALL {
            assert!(Preset::get(bug.scenario()).is_some(), "{bug}");
        }
    }

    /// Runs `transactions` seeds until they have shown a pipeline committing, a zombie and a
    /// stall; in each, pipelines' transactions carry what the exactly-once checker reads, and
    /// no fenced producer's transaction ended `ok`.
    #[test]
    fn transactions_runs_have_pipelines_and_fence_stalled_and_zombie_producers() {
        use riptide_checker::history::{OpKind, TxnEnd, Value};
        use std::collections::BTreeMap;
        let scenario = Scenario::named("transactions").unwrap();
        let (mut pipeline_commits, mut zombies, mut stalls) = (0, 0, 0);
        for seed in 1..=8 {
            let o = crate::run(seed, &scenario).unwrap();
            assert!(o.passed(), "seed {seed}\n{}", o.report.to_text());
            let ops = &o.history.ops;
            let mut names: BTreeMap<u64, (String, String)> = BTreeMap::new();
            for op in ops {
                if let Value::Client(c) = &op.value {
                    names.insert(op.process, (c.role.clone(), c.name.clone()));
                }
            }
            let pipeline = |p: u64| names.get(&p).is_some_and(|n| n.0 == "pipeline");
            // The last txn op (completion) of each process.
            let mut last: BTreeMap<u64, (OpKind, TxnEnd)> = BTreeMap::new();
            for op in ops.iter().filter(|op| op.kind != OpKind::Invoke) {
                let Value::Txn(t) = &op.value else { continue };
                last.insert(op.process, (op.kind, t.end));
                if !pipeline(op.process) {
                    continue;
                }
                assert!(t.polls().count() == 1, "seed {seed}: op {}", op.index);
                assert!(t.sends().all(|s| s.source.is_some()));
                if op.kind == OpKind::Ok && t.end == TxnEnd::Commit && t.sends().next().is_some() {
                    assert!(
                        t.group.is_some() && !t.offsets.is_empty(),
                        "op {}",
                        op.index
                    );
                    assert!(t.sends().all(|s| s.offset.is_some()), "op {}", op.index);
                    pipeline_commits += 1;
                }
            }
            // Each successor's predecessor (the zombie) ended its last transaction fenced.
            for (&process, (_, name)) in &names {
                let Some((base, n)) = name.rsplit_once("-successor-") else {
                    continue;
                };
                let n: u64 = n.parse().unwrap();
                let zombie_name = match n {
                    1 => base.to_string(),
                    n => format!("{base}-successor-{}", n - 1),
                };
                let zombie = names
                    .iter()
                    .find(|(_, (_, nm))| *nm == zombie_name)
                    .map(|(p, _)| *p)
                    .unwrap();
                assert!(process > zombie);
                let (kind, _) = last[&zombie];
                assert_ne!(
                    kind,
                    OpKind::Ok,
                    "seed {seed}: zombie {zombie_name} ended ok"
                );
                zombies += 1;
            }
            stalls += o.coverage.hits["workloads/txn.workload_stalled_fenced"];
            if pipeline_commits > 0 && zombies > 0 && stalls > 0 {
                return;
            }
        }
        panic!("8 seeds: {pipeline_commits} pipeline commits, {zombies} zombies, {stalls} stalls fenced");
    }

    #[test]
    fn a_bug_reads_and_writes_by_name() {
        let s = Scenario::from_json(r#"{"bug": "no-fencing"}"#).unwrap();
        assert_eq!(s.bug, Some(Bug::NoFencing));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["bug"], "no-fencing");
        assert!(Scenario::from_json(r#"{"bug": "no-such"}"#).is_err());
    }
}
