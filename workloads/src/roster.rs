//! The workload roster: which client processes a run has and what each of them drew. Both the
//! simulator and certification build their client tasks from it, so they run the same workload.

use crate::client::Client;
use crate::consumer::{self, ConsumerKind, ConsumerSetup};
use crate::generators::{self, WorkloadConfig};
use crate::mix::Span;
use crate::mix::{derive, ConsumerProfile, ProducerProfile, WorkloadMix};
use crate::net::Connector;
use crate::pipeline::PipelineSetup;
use crate::producer::{self, ProducerSetup};
use crate::recorder::Recorder;
use crate::transactions::{self, TxnSetup};
use crate::trimmer::{self, TrimmerSetup};
use crate::Topic;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::TopicValue;
use std::time::Duration;
use tokio::time::Instant;

/// How long the workload's clients wait for one Metadata answer before asking another broker,
/// for a connection, and before trying a broker they could not connect to again.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// What the roster is made from.
#[derive(Clone, Debug)]
pub struct RosterSpec {
    pub seed: u64,
    /// The first topic's name; further topics are `NAME-1`, `NAME-2`, ...
    pub topic: String,
    pub partitions: i32,
    pub producers: usize,
    pub consumers: usize,
    pub group_consumers: usize,
    /// Transactional producers (each its own transactional id); with any, half the consumers
    /// (by draw) and the final reader read committed records only.
    pub txn_producers: usize,
    /// Their `transaction.timeout.ms`.
    pub txn_timeout_ms: i32,
    /// The consumer group's name (assigned consumers commit to `GROUP-standalone-N`).
    pub group: String,
    /// Every producer is idempotent (else each draws).
    pub idempotent: bool,
    /// The earlier client's pause between sends (`WorkloadMix::legacy_client`).
    pub send_interval: Duration,
    pub fetch_max_wait_ms: i32,
    pub mix: WorkloadMix,
    /// Records kept for a while only: see [`RetentionSpec`].
    pub retention: Option<RetentionSpec>,
}

/// Retention in a run: the first topic keeps records `retention_ms` (drawn), and `trimmers`
/// administrators delete records of every topic now and then (DeleteRecords).
#[derive(Clone, Debug)]
pub struct RetentionSpec {
    pub retention_ms: Span,
    pub trimmers: usize,
    /// The cluster's retention check interval and delete delay, as the topics' facts record them
    /// (how late a record may outlive its retention); `None` where unknown.
    pub check_ms: Option<u64>,
    pub delete_delay_ms: Option<u64>,
}

/// One client process.
#[derive(Clone, Debug)]
pub struct Process {
    pub process: u64,
    /// Host or task name: `producer-K`, `consumer-K`, `member-K`.
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug)]
pub enum Role {
    Producer(ProducerSetup),
    Consumer(ConsumerSetup),
    /// The earlier client (`WorkloadMix::legacy_client`): exactly as before.
    LegacyProducer {
        seed: u64,
    },
    LegacyConsumer {
        partitions: Vec<i32>,
    },
    LegacyMember,
    TxnProducer(TxnSetup),
    Trimmer(TrimmerSetup),
}

/// Every client process of a run, and the process that reads everything back at the end.
#[derive(Clone, Debug)]
pub struct Roster {
    pub topics: Vec<Topic>,
    pub processes: Vec<Process>,
    /// The final reader's process id (after every other).
    pub reader: u64,
    pub group: String,
    /// Transactions run: the final read is read_committed.
    pub transactional: bool,
    /// The topics' retention settings, recorded as `topic` facts before the workload.
    pub topic_facts: Vec<TopicValue>,
    /// How fast producers go: the nemesis's traffic spikes set it.
    pub pace: crate::Pace,
    legacy: WorkloadConfig,
}

impl Roster {
    /// Draws the roster from `spec.seed`: the number of topics, then each process's profile.
    pub fn draw(spec: &RosterSpec) -> Roster {
        let legacy = spec.mix.legacy_client;
        let mut rng = ChaCha8Rng::seed_from_u64(derive(spec.seed, &[5]));
        let topic_count = if legacy {
            1
        } else {
            spec.mix.topics.draw(&mut rng).max(1)
        };
        // Its own stream, so runs without retention draw what they always did.
        let retention_ms = spec.retention.as_ref().map(|r| {
            r.retention_ms
                .draw(&mut ChaCha8Rng::seed_from_u64(derive(spec.seed, &[11])))
        });
        let topics: Vec<Topic> = (0..topic_count)
            .map(|i| Topic {
                name: match i {
                    0 => spec.topic.clone(),
                    i => format!("{}-{i}", spec.topic),
                },
                partitions: spec.partitions,
                retention_ms: retention_ms.filter(|_| i == 0),
            })
            .collect();
        let pace = crate::Pace::default();
        let mut processes = Vec::new();
        let mut process = 0u64;
        let profile_rng = |p: u64| ChaCha8Rng::seed_from_u64(derive(spec.seed, &[6, p]));
        for k in 0..spec.producers {
            let role = if legacy {
                Role::LegacyProducer {
                    seed: derive(spec.seed, &[3, process]),
                }
            } else {
                let idempotent = spec.idempotent.then_some(true);
                Role::Producer(ProducerSetup {
                    process,
                    name: format!("producer-{k}"),
                    topics: topics.clone(),
                    profile: ProducerProfile::draw(
                        &spec.mix,
                        idempotent,
                        &mut profile_rng(process),
                    ),
                    seed: derive(spec.seed, &[3, process]),
                    pace: pace.clone(),
                })
            };
            processes.push(Process {
                process,
                name: format!("producer-{k}"),
                role,
            });
            process += 1;
        }
        // Drawn apart from the profiles, so runs without transactions draw what they always did.
        let transactional = spec.txn_producers > 0;
        // Which transactional producers are consume-transform-produce pipelines (a fair coin
        // each); with any, they write to an output topic that consumers and the final read
        // read too, and split the workload's topics' partitions between them as inputs.
        let first_txn = (spec.producers + spec.consumers + spec.group_consumers) as u64;
        let pipelines: Vec<u64> = (0..spec.txn_producers as u64)
            .map(|k| first_txn + k)
            .filter(|&process| {
                ChaCha8Rng::seed_from_u64(derive(spec.seed, &[10, process])).gen_bool(0.5)
            })
            .collect();
        let inputs: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
            .collect();
        let output = Topic::new(format!("{}-out", spec.topic), spec.partitions);
        let mut topics = topics;
        if !pipelines.is_empty() {
            topics.push(output.clone());
        }
        let read_committed = |process: u64| {
            transactional
                && ChaCha8Rng::seed_from_u64(derive(spec.seed, &[8, process])).gen_bool(0.5)
        };
        let consumer = |process: u64, name: String, kind: ConsumerKind, group: String| {
            Role::Consumer(ConsumerSetup {
                read_committed: read_committed(process),
                process,
                name,
                topics: topics.clone(),
                kind,
                group,
                profile: ConsumerProfile::draw(&spec.mix, &mut profile_rng(process)),
                fetch_max_wait_ms: spec.fetch_max_wait_ms,
                seed: derive(spec.seed, &[7, process]),
            })
        };
        // Assigned consumers split every topic's partitions between them.
        let all: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
            .collect();
        for k in 0..spec.consumers {
            let role = if legacy {
                Role::LegacyConsumer {
                    partitions: (0..spec.partitions)
                        .filter(|x| *x as usize % spec.consumers == k)
                        .collect(),
                }
            } else {
                let mine = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % spec.consumers == k)
                    .map(|(_, tp)| tp.clone())
                    .collect();
                consumer(
                    process,
                    format!("consumer-{k}"),
                    ConsumerKind::Assigned(mine),
                    format!("{}-standalone-{process}", spec.group),
                )
            };
            processes.push(Process {
                process,
                name: format!("consumer-{k}"),
                role,
            });
            process += 1;
        }
        for k in 0..spec.group_consumers {
            let role = if legacy {
                Role::LegacyMember
            } else {
                consumer(
                    process,
                    format!("member-{k}"),
                    ConsumerKind::Member,
                    spec.group.clone(),
                )
            };
            processes.push(Process {
                process,
                name: format!("member-{k}"),
                role,
            });
            process += 1;
        }
        for k in 0..spec.txn_producers {
            let pipeline = pipelines.iter().position(|&p| p == process).map(|j| {
                // Each input partition has one pipeline (the exactly-once checker counts the
                // outputs of an input across every pipeline).
                let mine = inputs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % pipelines.len() == j)
                    .map(|(_, tp)| tp.clone())
                    .collect();
                PipelineSetup {
                    inputs: mine,
                    output: output.clone(),
                    group: format!("{}-pipeline-{process}", spec.group),
                    fetch_max_wait_ms: spec.fetch_max_wait_ms,
                }
            });
            let name = match pipeline {
                Some(_) => format!("pipeline-{k}"),
                None => format!("txn-producer-{k}"),
            };
            processes.push(Process {
                process,
                name: name.clone(),
                role: Role::TxnProducer(TxnSetup {
                    process,
                    name,
                    // A transactional producer writes to the workload's topics only.
                    topics: topics.iter().filter(|t| **t != output).cloned().collect(),
                    seed: derive(spec.seed, &[9, process]),
                    timeout_ms: spec.txn_timeout_ms,
                    // Its own stream, so the draws before it stay as they were.
                    request_timeout_ms: spec.mix.request_timeout_ms.map(|span| {
                        span.draw(&mut ChaCha8Rng::seed_from_u64(derive(
                            spec.seed,
                            &[10, process],
                        )))
                    }),
                    pipeline,
                }),
            });
            process += 1;
        }
        let mut topic_facts = Vec::new();
        if let Some(r) = &spec.retention {
            for k in 0..r.trimmers {
                processes.push(Process {
                    process,
                    name: format!("trimmer-{k}"),
                    role: Role::Trimmer(TrimmerSetup {
                        process,
                        name: format!("trimmer-{k}"),
                        topics: topics.clone(),
                        seed: derive(spec.seed, &[12, process]),
                    }),
                });
                process += 1;
            }
            topic_facts = topics
                .iter()
                .map(|t| TopicValue {
                    topic: t.name.clone(),
                    retention_ms: t.retention_ms.map(|ms| ms as i64),
                    retention_bytes: None,
                    retention_check_ms: r.check_ms,
                    delete_delay_ms: r.delete_delay_ms,
                })
                .collect();
        }
        Roster {
            topic_facts,
            transactional,
            legacy: WorkloadConfig {
                topic: spec.topic.clone(),
                partitions: spec.partitions,
                send_interval: spec.send_interval,
                fetch_max_wait_ms: spec.fetch_max_wait_ms,
                pace: pace.clone(),
                ..WorkloadConfig::default()
            },
            pace,
            topics,
            processes,
            reader: process,
            group: spec.group.clone(),
        }
    }

    /// Runs one process of the roster with its own client until `until`.
    pub async fn run<C: Connector>(
        &self,
        p: &Process,
        client: &mut Client<C>,
        rec: &Recorder,
        until: Instant,
    ) {
        let drawn = match &p.role {
            Role::Producer(s) => Some(s.profile.request_timeout_ms),
            Role::Consumer(s) => Some(s.profile.request_timeout_ms),
            // Drawn like the others' (short, so requests time out and come late: a delayed
            // EndTxn or marker is what KIP-890 part 2 and coordinator epochs are there for).
            Role::TxnProducer(s) => Some(s.request_timeout_ms),
            _ => None,
        };
        match &p.role {
            Role::Consumer(s) => client.config_mut().isolation_level = i8::from(s.read_committed),
            Role::TxnProducer(s) if s.pipeline.is_some() => client.config_mut().isolation_level = 1,
            _ => {}
        }
        if let Some(drawn) = drawn {
            let c = &mut client.config_mut().connection;
            if let Some(ms) = drawn {
                c.request_timeout = c.request_timeout.min(Duration::from_millis(ms));
            }
            // One loop serves every partition: no single broker may hold it up for long.
            c.connect_timeout = c
                .connect_timeout
                .min(c.request_timeout)
                .min(CONNECT_TIMEOUT);
            let timeout = c.request_timeout.min(METADATA_TIMEOUT);
            let cfg = client.config_mut();
            cfg.metadata_timeout = Some(timeout);
            cfg.reconnect_backoff = Some(RECONNECT_BACKOFF);
        }
        // Replies contrary to the protocol become facts of this process (sim and certify alike).
        client.witness().attach(rec, p.process);
        match &p.role {
            Role::Producer(setup) => producer::run(client, rec, setup, until).await,
            Role::Consumer(setup) => consumer::run(client, rec, setup, until).await,
            Role::LegacyProducer { seed } => {
                generators::producer(client, rec, p.process, &self.legacy, *seed, until).await
            }
            Role::LegacyConsumer { partitions } => {
                generators::consumer(client, rec, p.process, &self.legacy, partitions, until).await
            }
            Role::LegacyMember => {
                generators::group_consumer(client, rec, p.process, &self.legacy, &self.group, until)
                    .await
            }
            Role::TxnProducer(setup) => transactions::run(client, rec, setup, until).await,
            Role::Trimmer(setup) => trimmer::run(client, rec, setup, until).await,
        }
    }

    /// The final read: every partition of every topic from 0 to its high watermark.
    pub async fn final_read<C: Connector>(
        &self,
        client: &mut Client<C>,
        rec: &Recorder,
        give_up: Instant,
    ) {
        client.witness().attach(rec, self.reader);
        if self.transactional {
            client.config_mut().isolation_level = 1;
            rec.event(
                self.reader,
                riptide_checker::history::ClientValue {
                    role: "reader".into(),
                    name: "final-read".into(),
                    read_committed: true,
                    ..Default::default()
                },
            );
        }
        generators::final_read_topics(
            client,
            rec,
            self.reader,
            &self.topics,
            self.legacy.fetch_max_bytes,
            give_up,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::Span;
    use std::collections::BTreeSet;

    fn spec(seed: u64, txn_producers: usize) -> RosterSpec {
        RosterSpec {
            seed,
            topic: "t".into(),
            partitions: 4,
            producers: 3,
            consumers: 2,
            group_consumers: 2,
            txn_producers,
            txn_timeout_ms: 6_000,
            group: "g".into(),
            idempotent: false,
            send_interval: Duration::from_millis(20),
            fetch_max_wait_ms: 200,
            mix: WorkloadMix {
                topics: Span::new(1, 3),
                ..WorkloadMix::default()
            },
            retention: None,
        }
    }

    fn txn_setups(r: &Roster) -> Vec<&TxnSetup> {
        r.processes
            .iter()
            .filter_map(|p| match &p.role {
                Role::TxnProducer(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn runs_without_transactional_producers_have_no_pipeline_and_no_output_topic() {
        for seed in 0..20 {
            let r = Roster::draw(&spec(seed, 0));
            assert!(txn_setups(&r).is_empty());
            assert!(r.topics.iter().all(|t| !t.name.ends_with("-out")), "{seed}");
            assert!(!r.transactional);
        }
    }

    #[test]
    fn pipelines_split_the_input_partitions_and_write_to_an_output_topic_everyone_reads() {
        let (mut with_pipelines, mut plain_txn) = (0, 0);
        for seed in 0..40 {
            let r = Roster::draw(&spec(seed, 3));
            let setups = txn_setups(&r);
            assert_eq!(setups.len(), 3);
            let pipes: Vec<&PipelineSetup> =
                setups.iter().filter_map(|s| s.pipeline.as_ref()).collect();
            plain_txn += setups.len() - pipes.len();
            let output = r.topics.iter().find(|t| t.name == "t-out");
            if pipes.is_empty() {
                assert!(
                    output.is_none(),
                    "seed {seed}: an output topic without pipelines"
                );
                continue;
            }
            with_pipelines += 1;
            let output = output.expect("the final read reads the output topic");
            let inputs: Vec<(String, i32)> = r
                .topics
                .iter()
                .filter(|t| *t != output)
                .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
                .collect();
            // Every input partition has exactly one pipeline.
            let mut taken: Vec<(String, i32)> =
                pipes.iter().flat_map(|p| p.inputs.clone()).collect();
            taken.sort();
            let mut all = inputs.clone();
            all.sort();
            assert_eq!(taken, all, "seed {seed}");
            let groups: BTreeSet<&str> = pipes.iter().map(|p| p.group.as_str()).collect();
            assert_eq!(
                groups.len(),
                pipes.len(),
                "seed {seed}: one group per pipeline"
            );
            for p in &pipes {
                assert_eq!(&p.output, output);
            }
            // Transactional producers and pipelines write to the workload's topics only;
            // consumers read the outputs too.
            for s in &setups {
                assert!(s.topics.iter().all(|t| t != output), "seed {seed}");
            }
            for p in &r.processes {
                if let Role::Consumer(c) = &p.role {
                    assert!(c.topics.contains(output), "seed {seed}: {}", p.name);
                }
            }
        }
        // The draw gives both kinds.
        assert!(with_pipelines > 0 && plain_txn > 0);
    }
}
