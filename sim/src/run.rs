//! One simulation run: build the world from the seed, run the workload while
//! the nemesis applies its schedule, heal, read everything back, check it.
//!
//! Invariants the broker asserts (`always!`) are collected on the run's thread with coverage;
//! each breach becomes an `invariant` event of the history (process [`INVARIANT_PROCESS`], at
//! the simulated time the run noticed it), which the `broken-invariant` checker turns into a
//! finding, so the run fails with its seed. The run goes on to the end as it would have: the
//! broker code after a breach behaves as before.
//!
//! Everything here is backend-neutral: it talks to the simulated world only
//! through [`World`]. The backend (turmoil in ordinary builds, madsim in
//! `--cfg madsim` builds, see [`crate::backend`]) builds the world and drives
//! time.

use crate::backend;
use crate::clock::SimClock;
use crate::factory::BrokerFactory;
use crate::net::SimConnector;
use crate::scenario::Scenario;
use crate::trace::{self, Trace};
use crate::world::{Task, World};
use object_store::memory::InMemory;
use riptide_broker::env::Clock;
use riptide_checker::history::History;
use riptide_checker::{check_all, CheckerConfig, Report};
use riptide_faults::store::FaultHandle;
use riptide_faults::{Capabilities, Fault, Schedule, StoreFaults, Topology};
use riptide_workloads::roster::{RetentionSpec, Roster, RosterSpec};
use riptide_workloads::{Client, ClientConfig, Recorder, Spikes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// They lived here once: the old paths keep working.
pub use crate::host::{BrokerHost, BrokerStart, BROKER_PORT};

/// The process id of the nemesis in histories.
pub const NEMESIS: u64 = 1000;
/// The process id of invariant events (the system under test's own assertions) in histories.
pub const INVARIANT_PROCESS: u64 = 1001;
/// Workload time left after the last fault heals, for producers to progress.
pub const LIVENESS_WINDOW_MS: u64 = 5000;
/// Log events that go into the trace (and so into its hash).
pub const TRACE_FILTER: &str =
    "warn,turmoil=info,riptide_broker=info,riptide_faults=info,riptide_sim=info";

/// A finished run: what ran, what happened, and the checkers' verdict on it.
pub struct RunOutcome {
    /// The run's seed.
    pub seed: u64,
    /// The scenario it ran.
    pub scenario: Scenario,
    /// The faults the nemesis applied, drawn from the seed (or fixed by the scenario).
    pub schedule: Schedule,
    /// Every client operation, nemesis event and invariant breach, with simulated times.
    pub history: History,
    /// The checkers' verdict and findings on the history.
    pub report: Report,
    /// Every log event of every host, stamped with simulated time.
    pub trace: String,
    /// SHA-256 of the trace and the history: the same seed and binary give the same hash.
    pub trace_hash: String,
    /// Simulated time the run took.
    pub sim_time: Duration,
    /// The coverage points this run reached (all zero when collection is off).
    pub coverage: riptide_coverage::Coverage,
    /// How often each invariant was checked (zero when collection is off) and broken, with
    /// the breaches (also in the history as `invariant` events).
    pub invariants: riptide_coverage::Invariants,
}

impl RunOutcome {
    /// The checkers found nothing.
    pub fn passed(&self) -> bool {
        self.report.verdict == riptide_checker::Verdict::Pass
    }
}

/// A seed for one component, derived from the run's seed.
pub use riptide_workloads::mix::derive;

/// A tokio deadline at simulated time `at` (hosts' tokio clocks differ).
fn deadline(at: Duration) -> tokio::time::Instant {
    let now = backend::sim_elapsed().unwrap_or_default();
    tokio::time::Instant::now() + at.saturating_sub(now)
}

/// Broker `i`'s host name.
pub fn broker_name(i: usize) -> String {
    format!("broker-{i}")
}

/// What the world needs to (re)start broker hosts.
pub(crate) struct Brokers {
    seed: u64,
    factory: Arc<dyn BrokerFactory>,
    region: Arc<InMemory>,
    zones: usize,
    latency: (u64, u64),
    handles: BTreeMap<String, FaultHandle>,
}

impl Brokers {
    fn add(&mut self, world: &mut impl World, i: usize) {
        let name = broker_name(i);
        let handle: FaultHandle = Arc::new(Mutex::new(StoreFaults::healthy(self.latency)));
        self.handles.insert(name.clone(), handle.clone());
        world.add_broker(BrokerHost {
            index: i,
            name,
            zone: format!("zone-{}", i % self.zones.max(1)),
            seed: self.seed,
            factory: self.factory.clone(),
            region: self.region.clone(),
            handle,
            starts: Arc::new(AtomicU64::new(0)),
        });
    }
}

/// Applies and heals faults on the world. Overlapping faults on one broker
/// are counted, so it restarts only when the last one heals.
pub(crate) struct Nemesis {
    down: BTreeMap<String, usize>,
    /// Overlapping pauses of one broker: it resumes when the last one heals.
    paused: BTreeMap<String, usize>,
    removed: BTreeSet<String>,
    store_faults: BTreeMap<String, Vec<(usize, Fault)>>,
    latency: (u64, u64),
    /// The traffic spikes on now, which set the producers' pace.
    spikes: Spikes,
}

impl Nemesis {
    fn crash(&mut self, world: &mut impl World, b: &str) {
        let n = self.down.entry(b.to_string()).or_default();
        *n += 1;
        if *n == 1 {
            world.crash(b);
        }
    }

    fn restart(&mut self, world: &mut impl World, b: &str) {
        let n = self.down.entry(b.to_string()).or_default();
        *n = n.saturating_sub(1);
        if *n == 0 && !self.removed.contains(b) {
            world.restart(b);
        }
    }

    /// Broker `broker-N` joins the cluster.
    fn join(world: &mut impl World, f: &mut Brokers, broker: &str) {
        let i: usize = broker.trim_start_matches("broker-").parse().unwrap_or(0);
        f.add(world, i);
    }

    /// The broker stops cleanly: its process ends, and its liveness record goes with it, as a
    /// clean shutdown's does. For good (`forever`: a scale-in), or until its replacement starts.
    fn stop_cleanly(
        &mut self,
        world: &mut impl World,
        f: &mut Brokers,
        broker: &str,
        forever: bool,
    ) {
        if forever {
            self.removed.insert(broker.to_string());
        }
        self.crash(world, broker);
        let i: usize = broker.trim_start_matches("broker-").parse().unwrap_or(0);
        futures::executor::block_on(f.factory.retire(i, f.region.clone()));
    }

    fn set_store(&mut self, f: &mut Brokers, broker: &str) {
        let active = self.store_faults.get(broker).into_iter().flatten();
        let s = StoreFaults::combine(self.latency, active.map(|(_, fault)| fault));
        if let Some(h) = f.handles.get(broker) {
            *h.lock().unwrap_or_else(|e| e.into_inner()) = s;
        }
    }

    /// Adds or removes fault `id` from a broker's store faults.
    fn store_fault(
        &mut self,
        f: &mut Brokers,
        broker: &str,
        id: usize,
        fault: &Fault,
        start: bool,
    ) {
        let list = self.store_faults.entry(broker.to_string()).or_default();
        if start {
            list.push((id, fault.clone()));
        } else {
            list.retain(|(i, _)| *i != id);
        }
        self.set_store(f, broker);
    }

    fn apply(
        &mut self,
        world: &mut impl World,
        f: &mut Brokers,
        id: usize,
        fault: &Fault,
        start: bool,
    ) {
        match fault {
            Fault::Pause { broker } => {
                // Nothing goes in or out until it resumes; what was sent is
                // delivered then. Its store calls wait too.
                let n = self.paused.entry(broker.clone()).or_default();
                if start {
                    *n += 1;
                    if *n == 1 {
                        world.pause(broker);
                    }
                } else {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        world.resume(broker);
                    }
                }
                self.store_fault(f, broker, id, fault, start);
            }
            Fault::ZoneIsolate {
                brokers, others, ..
            } => {
                for b in brokers {
                    for o in others {
                        if start {
                            world.partition(b, o);
                        } else {
                            world.repair(b, o);
                        }
                    }
                    self.store_fault(f, b, id, fault, start);
                }
            }
            Fault::Partition { a, b } => {
                for x in a {
                    for y in b {
                        if start {
                            world.partition(x, y);
                        } else {
                            world.repair(x, y);
                        }
                    }
                }
            }
            Fault::PartitionOneway { from, to } => {
                for x in from {
                    for y in to {
                        if start {
                            world.partition_oneway(x, y);
                        } else {
                            world.repair_oneway(x, y);
                        }
                    }
                }
            }
            Fault::Crash { broker } => {
                if start {
                    self.crash(world, broker)
                } else {
                    self.restart(world, broker)
                }
            }
            Fault::ZoneLoss { brokers, .. } => {
                for b in brokers {
                    if start {
                        self.crash(world, b)
                    } else {
                        self.restart(world, b)
                    }
                }
            }
            Fault::StoreErrors { broker, .. }
            | Fault::StoreAmbiguous { broker, .. }
            | Fault::StoreLate { broker, .. }
            | Fault::StoreSlow { broker, .. }
            | Fault::StoreCut { broker } => self.store_fault(f, broker, id, fault, start),
            Fault::ScaleOut { broker } => Self::join(world, f, broker),
            Fault::ScaleOutMany { brokers } => {
                for b in brokers {
                    Self::join(world, f, b);
                }
            }
            Fault::ScaleIn { broker } => self.stop_cleanly(world, f, broker, true),
            Fault::ScaleInHalf { brokers } => {
                for b in brokers {
                    self.stop_cleanly(world, f, b, true);
                }
            }
            Fault::Spike { factor, brokers } => {
                self.spikes.apply(id, *factor, start);
                if start {
                    for b in brokers {
                        Self::join(world, f, b);
                    }
                }
            }
            Fault::Replace { broker } => {
                if start {
                    self.stop_cleanly(world, f, broker, false);
                } else {
                    self.restart(world, broker);
                }
            }
            Fault::LinkSlow { .. } | Fault::RepliesLost { .. } | Fault::ConnectionsCut { .. } => {
                // Client-link faults of certify's proxy: the simulated world has no applier
                // (its topology never asks for them); a fixed schedule that names one gets a
                // line in the trace instead.
                tracing::warn!(
                    kind = fault.kind(),
                    "fault kind not applied in the simulator"
                );
            }
        }
    }
}

/// Runs one seed of a scenario on this build's backend ([`backend::NAME`]), counting the
/// coverage points it reaches. `Err` is a harness failure (the world could not be run), not a
/// finding.
pub fn run(seed: u64, scenario: &Scenario) -> anyhow::Result<RunOutcome> {
    crate::Simulation::new(scenario.clone()).seed(seed).run()
}

/// Held by the simulation running in this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// [`run`] with the brokers `factory` starts.
pub(crate) fn run_with(
    seed: u64,
    scenario: &Scenario,
    factory: Arc<dyn BrokerFactory>,
) -> anyhow::Result<RunOutcome> {
    // One simulation at a time in a process: two at once on two threads share tokio's
    // process-wide task ids (see `fresh_task_ids` in the turmoil backend), and then a seed no
    // longer gives one run. `cargo test` runs a crate's tests on several threads.
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Counted here, or (madsim, which runs each seed on a thread of its own) by the backend.
    let (outcome, here) = riptide_coverage::collect_all(|| backend::run(seed, scenario, factory));
    outcome.map(|mut o| {
        o.coverage.add(&here.coverage);
        o.invariants.add(&here.invariants);
        RunOutcome {
            coverage: o.coverage.only(simulated),
            ..o
        }
    })
}

/// The coverage points a simulation can reach: not those of certify's proxy and node faults.
pub fn simulated(p: &riptide_coverage::Point) -> bool {
    !riptide_faults::certify_only(p)
}

/// Time the workload settles after it ends, before the final read.
const SETTLE: Duration = Duration::from_secs(2);

/// The simulated time after which a run is stopped: workers finish their
/// last operation after the workload ends (client timeouts and retries), then
/// the final read has its own bound.
pub(crate) fn limit(scenario: &Scenario) -> Duration {
    scenario.duration() + SETTLE + Duration::from_secs(scenario.final_read_s + 120)
}

/// A run's world once set up: hosts added, clients started, the fault
/// schedule ready for the backend to apply as simulated time passes.
pub(crate) struct Plan {
    scenario: Scenario,
    seed: u64,
    recorder: Recorder,
    schedule: Schedule,
    /// (at ms, fault id, start?) in the order they are applied.
    actions: Vec<(u64, usize, bool)>,
    next: usize,
    nemesis: Nemesis,
    brokers: Brokers,
    /// Breaches of invariants already in the history.
    breaches: usize,
}

impl Plan {
    /// Adds the brokers and the clients to `world` and draws the schedule.
    pub(crate) fn new(
        seed: u64,
        scenario: &Scenario,
        factory: Arc<dyn BrokerFactory>,
        world: &mut impl World,
    ) -> anyhow::Result<Plan> {
        let workload_end = scenario.duration();
        let settle = SETTLE;
        let mut brokers = Brokers {
            seed,
            factory,
            region: Arc::new(InMemory::new()),
            zones: scenario.zones,
            latency: scenario.store_latency_ms,
            handles: BTreeMap::new(),
        };
        for i in 0..scenario.brokers {
            brokers.add(world, i);
        }
        let bootstrap: Vec<String> = (0..scenario.brokers)
            .map(|i| format!("{}:{BROKER_PORT}", broker_name(i)))
            .collect();

        let clock: Arc<dyn Clock> = Arc::new(SimClock);
        let recorder = Recorder::new(clock.clone());
        let roster = Arc::new(Roster::draw(&RosterSpec {
            seed,
            topic: "riptide".into(),
            partitions: scenario.partitions,
            producers: scenario.producers,
            consumers: scenario.consumers,
            group_consumers: scenario.group_consumers,
            txn_producers: scenario.txn_producers,
            txn_timeout_ms: scenario.txn_timeout_ms as i32,
            group: "riptide-group".into(),
            idempotent: scenario.idempotent,
            send_interval: Duration::from_millis(scenario.send_interval_ms),
            fetch_max_wait_ms: 200,
            mix: scenario.workload.clone(),
            retention: scenario.retention.as_ref().map(|r| RetentionSpec {
                retention_ms: r.retention_ms,
                trimmers: r.trimmers,
                check_ms: Some(scenario.retention_check_ms),
                delete_delay_ms: Some(scenario.delete_delay_ms),
            }),
        }));
        let pace = roster.pace.clone();
        for fact in &roster.topic_facts {
            recorder.event(roster.reader, fact.clone());
        }
        let client = |process: u64| {
            let config = ClientConfig {
                clock: Some(clock.clone()),
                ..ClientConfig::workload(
                    derive(seed, &[2, process]),
                    scenario.idempotent,
                    Duration::from_millis(scenario.client_request_timeout_ms),
                )
            };
            Client::new(SimConnector, bootstrap.clone(), config)
        };

        let mut clients = Vec::new();
        // Workers still running: the final read waits for all of them, so that no
        // send completes after the log was read back.
        let running = Arc::new(AtomicU64::new(roster.processes.len() as u64));
        for (k, proc) in roster.processes.iter().enumerate() {
            let (rec, mut c, roster) = (recorder.clone(), client(proc.process), roster.clone());
            let running = running.clone();
            let producer = matches!(
                proc.role,
                riptide_workloads::roster::Role::Producer(_)
                    | riptide_workloads::roster::Role::LegacyProducer { .. }
            );
            clients.push(proc.name.clone());
            world.add_client(
                &proc.name,
                Box::pin(async move {
                    if producer {
                        for t in &roster.topics {
                            if let Err(e) =
                                c.create_topic(&t.name, t.partitions, &t.configs()).await
                            {
                                tracing::warn!(error = %e, "create_topic failed; relying on auto-create");
                            }
                        }
                    }
                    let p = &roster.processes[k];
                    roster.run(p, &mut c, &rec, deadline(workload_end)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }) as Task,
            );
        }
        {
            let (rec, mut c, roster) = (recorder.clone(), client(roster.reader), roster.clone());
            let read_for = Duration::from_secs(scenario.final_read_s);
            let running = running.clone();
            world.add_client(
                "reader",
                Box::pin(async move {
                    tokio::time::sleep_until(deadline(workload_end + settle)).await;
                    while running.load(Ordering::SeqCst) > 0 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // Connections made during the faults may be stale; start afresh.
                    c.disconnect_all();
                    let give_up = tokio::time::Instant::now() + read_for;
                    roster.final_read(&mut c, &rec, give_up).await;
                }) as Task,
            );
        }

        let topology = Topology {
            brokers: (0..scenario.brokers)
                .map(|i| (broker_name(i), i % scenario.zones.max(1)))
                .collect(),
            zones: scenario.zones.max(1),
            clients,
            bootstrap: (0..scenario.brokers).map(broker_name).collect(),
            spares: (scenario.brokers..scenario.brokers + scenario.spare_brokers)
                .map(|i| (broker_name(i), i % scenario.zones.max(1)))
                .collect(),
            can: Capabilities::simulator(),
        };
        // Faults start after the cluster formed and heal well before the workload
        // ends, so that producers can show progress after the heal (liveness).
        let fault_end = (workload_end.as_millis() as u64)
            .saturating_sub(LIVENESS_WINDOW_MS)
            .max(1500);
        let schedule = match &scenario.fixed_faults {
            Some(faults) => Schedule {
                faults: faults.clone(),
            },
            None => Schedule::generate(
                derive(seed, &[4]),
                &scenario.faults,
                &topology,
                1000,
                fault_end,
            ),
        };
        let mut actions: Vec<(u64, usize, bool)> = Vec::new();
        for (id, p) in schedule.faults.iter().enumerate() {
            actions.push((p.start_ms, id, true));
            if let Some(end) = p.end_ms {
                actions.push((end, id, false));
            }
        }
        // Heals before starts at the same instant; otherwise schedule order.
        actions.sort_by_key(|(t, id, start)| (*t, *start, *id));
        let nemesis = Nemesis {
            down: BTreeMap::new(),
            paused: BTreeMap::new(),
            removed: BTreeSet::new(),
            store_faults: BTreeMap::new(),
            latency: scenario.store_latency_ms,
            spikes: Spikes::new(pace),
        };
        Ok(Plan {
            scenario: scenario.clone(),
            seed,
            recorder,
            schedule,
            actions,
            next: 0,
            nemesis,
            brokers,
            breaches: 0,
        })
    }

    /// Simulated time of the next fault action, if any is left (the turmoil
    /// backend steps and asks [`Plan::apply_due`] every tick instead).
    #[cfg_attr(not(madsim), allow(dead_code))]
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.actions
            .get(self.next)
            .map(|(at, _, _)| Duration::from_millis(*at))
    }

    /// Puts the invariants broken since the last call into the history, at `now`.
    fn record_breaches(&mut self, now: Duration) {
        for b in riptide_coverage::invariant::breaches_since(self.breaches) {
            self.breaches += 1;
            let v = riptide_checker::history::InvariantValue {
                name: b.name,
                place: b.place,
                detail: b.detail,
            };
            self.recorder
                .event_at(now.as_nanos() as u64, INVARIANT_PROCESS, v);
        }
    }

    /// Applies every fault action due at or before `now` (and records the invariants broken
    /// so far).
    pub(crate) fn apply_due(&mut self, world: &mut impl World, now: Duration) {
        self.record_breaches(now);
        while let Some(&(at, id, start)) = self.actions.get(self.next) {
            if Duration::from_millis(at) > now {
                break;
            }
            let planned = &self.schedule.faults[id];
            let phase = if start { "start" } else { "heal" };
            tracing::info!(at_ms = at, fault = ?planned.fault, "fault {phase}");
            if start && self.recorder.in_flight() > 0 {
                planned.fault.began_with_ops_in_flight();
            }
            self.recorder
                .event_at(now.as_nanos() as u64, NEMESIS, planned.event(phase));
            self.nemesis
                .apply(world, &mut self.brokers, id, &planned.fault, start);
            self.next += 1;
        }
    }

    /// Checks the history once the world is gone.
    pub(crate) fn finish(
        mut self,
        trace: &Trace,
        sim_time: Duration,
    ) -> anyhow::Result<RunOutcome> {
        self.record_breaches(sim_time);
        let Plan {
            scenario,
            seed,
            recorder,
            schedule,
            ..
        } = self;
        let history = recorder.history();
        let report = check_all(
            &history,
            &CheckerConfig {
                allow_duplicates_from_retries: !scenario.idempotent,
                max_realtime_lag_ns: scenario.max_realtime_lag_ms.map(|ms| ms * 1_000_000),
                ..CheckerConfig::default()
            },
        );
        let mut jsonl = Vec::new();
        history.to_jsonl(&mut jsonl)?;
        let text = trace.text();
        let trace_hash = trace::hash(&[text.as_bytes(), &jsonl]);
        Ok(RunOutcome {
            seed,
            scenario,
            schedule,
            history,
            report,
            trace: text,
            trace_hash,
            sim_time,
            coverage: Default::default(),
            invariants: Default::default(),
        })
    }
}
