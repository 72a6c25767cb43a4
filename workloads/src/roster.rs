//! The workload roster: which client processes a run has and what each of them drew. Both the
//! simulator and certification build their client tasks from it, so they run the same workload.

use crate::client::Client;
use crate::consumer::{self, ConsumerKind, ConsumerSetup};
use crate::generators::{self, WorkloadConfig};
use crate::mix::{derive, ConsumerProfile, ProducerProfile, WorkloadMix};
use crate::net::Connector;
use crate::producer::{self, ProducerSetup};
use crate::recorder::Recorder;
use crate::transactions::{self, TxnSetup};
use crate::Topic;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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
        let topics: Vec<Topic> = (0..topic_count)
            .map(|i| Topic {
                name: match i {
                    0 => spec.topic.clone(),
                    i => format!("{}-{i}", spec.topic),
                },
                partitions: spec.partitions,
            })
            .collect();
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
            let name = format!("txn-producer-{k}");
            processes.push(Process {
                process,
                name: name.clone(),
                role: Role::TxnProducer(TxnSetup {
                    process,
                    name,
                    topics: topics.clone(),
                    seed: derive(spec.seed, &[9, process]),
                    timeout_ms: spec.txn_timeout_ms,
                }),
            });
            process += 1;
        }
        Roster {
            transactional,
            legacy: WorkloadConfig {
                topic: spec.topic.clone(),
                partitions: spec.partitions,
                send_interval: spec.send_interval,
                fetch_max_wait_ms: spec.fetch_max_wait_ms,
                ..WorkloadConfig::default()
            },
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
            // Kafka's default request timeout is 30 s; a transactional producer that waits that
            // long for a dead coordinator outlives its transaction timeout.
            // The scenario's request timeout (10 s): a shorter one (2 s) lets a timed-out
            // EndTxn(commit) arrive after its retry succeeded and commit the producer's next
            // transaction (same epoch, no KIP-890 part 2): a finding kept for issue 16.
            Role::TxnProducer(_) => Some(None),
            _ => None,
        };
        if let Role::Consumer(s) = &p.role {
            client.config_mut().isolation_level = i8::from(s.read_committed);
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
