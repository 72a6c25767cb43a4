//! The turmoil backend: the world steps by a fixed tick
//! ([`Scenario::tick_ms`]); the nemesis applies faults between steps.

use crate::clock::epoch;
use crate::factory::BrokerFactory;
use crate::host::{BrokerHost, BROKER_PORT};
use crate::net::SimListener;
use crate::run::{self, Plan, RunOutcome, TRACE_FILTER};
use crate::scenario::Scenario;
use crate::trace::Trace;
use crate::world::{Task, World};
use std::sync::Arc;
use std::time::Duration;

/// This backend's name, as `--backend` spells it.
pub const NAME: &str = "turmoil";

/// Simulated time since the run started, if a simulation is running.
pub fn sim_elapsed() -> Option<Duration> {
    turmoil::sim_elapsed()
}

/// Simulated wall-clock time since the Unix epoch.
pub fn since_epoch() -> Option<Duration> {
    turmoil::since_epoch()
}

struct TurmoilWorld<'a, 'b> {
    sim: &'a mut turmoil::Sim<'b>,
    /// Every host in the world, in the order added: a pause holds every link
    /// of the paused host.
    hosts: Vec<String>,
}

impl TurmoilWorld<'_, '_> {
    fn others(&self, host: &str) -> Vec<String> {
        self.hosts.iter().filter(|h| *h != host).cloned().collect()
    }
}

impl World for TurmoilWorld<'_, '_> {
    fn add_broker(&mut self, host: BrokerHost) {
        self.hosts.push(host.name.clone());
        self.sim.host(host.name.clone(), move || {
            let start = host.start();
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
                start.serve(SimListener(listener)).await;
                Ok(())
            }
        });
    }

    fn add_client(&mut self, name: &str, task: Task) {
        self.hosts.push(name.to_string());
        self.sim.client(name, async move {
            task.await;
            Ok(())
        });
    }

    fn crash(&mut self, host: &str) {
        self.sim.crash(host);
    }

    fn restart(&mut self, host: &str) {
        self.sim.bounce(host);
    }

    fn pause(&mut self, host: &str) {
        for other in self.others(host) {
            self.sim.hold(host, other.as_str());
        }
    }

    fn resume(&mut self, host: &str) {
        for other in self.others(host) {
            self.sim.release(host, other.as_str());
        }
    }

    fn partition(&mut self, a: &str, b: &str) {
        self.sim.partition(a, b);
    }

    fn repair(&mut self, a: &str, b: &str) {
        self.sim.repair(a, b);
    }

    fn partition_oneway(&mut self, from: &str, to: &str) {
        self.sim.partition_oneway(from, to);
    }

    fn repair_oneway(&mut self, from: &str, to: &str) {
        self.sim.repair_oneway(from, to);
    }
}

/// Tokio numbers tasks from one process-wide counter, and a runtime keeps its
/// tasks in shards chosen by that number (`id % 4` for a current-thread
/// runtime). Dropping a runtime, as turmoil does when a host crashes, shuts its
/// tasks down shard by shard, so the order in which the crashed host's sockets
/// close (and turmoil's random draws for those closes) would depend on how many
/// tasks the process had spawned before this run. This spends task ids until
/// the next one is `1` modulo [`TASK_ID_PERIOD`], as in a fresh process, so a
/// run is the same first in a process or after any number of others.
///
/// It cannot help two simulations running at the same time on two threads of
/// one process: they share the counter. (madsim numbers and schedules its
/// tasks itself.)
fn fresh_task_ids() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime without I/O or time builds");
    rt.block_on(async {
        // At most TASK_ID_PERIOD spawns, unless other threads spawn meanwhile.
        loop {
            let id = tokio::spawn(async {}).id().to_string();
            // `Id` shows its number; nothing else of tokio's API gives it.
            let id: u64 = id.parse().expect("a tokio task id is a number");
            if id.is_multiple_of(TASK_ID_PERIOD) {
                return;
            }
        }
    });
}

/// A multiple of every shard count tokio uses for the runtimes of a
/// simulation (4 for a current-thread runtime; 4 × cores, rounded up to a power
/// of two, for a multi-thread one).
const TASK_ID_PERIOD: u64 = 64;

/// Runs one seed of `scenario` with the brokers `factory` starts.
pub fn run(
    seed: u64,
    scenario: &Scenario,
    factory: Arc<dyn BrokerFactory>,
) -> anyhow::Result<RunOutcome> {
    fresh_task_ids();
    let trace = Trace::default();
    let _capture = trace.capture(TRACE_FILTER);
    tracing::info!(target: "riptide_sim::run", seed, scenario = %scenario.name, "run starts");

    let limit = run::limit(scenario);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(epoch())
        .tick_duration(Duration::from_millis(scenario.tick_ms.max(1)))
        .simulation_duration(limit + Duration::from_secs(60))
        .build();
    let mut world = TurmoilWorld {
        sim: &mut sim,
        hosts: Vec::new(),
    };
    let mut plan = Plan::new(seed, scenario, factory, &mut world)?;
    loop {
        let now = world.sim.elapsed();
        plan.apply_due(&mut world, now);
        if world
            .sim
            .step()
            .map_err(|e| anyhow::anyhow!("simulation failed: {e}"))?
        {
            break;
        }
        if world.sim.elapsed() >= limit {
            // A client that never finishes is a liveness failure, not a
            // harness error: the history so far goes to the checkers (the
            // missing final reads are reported).
            tracing::warn!(
                target: "riptide_sim::run",
                limit_s = limit.as_secs(),
                "run did not finish in time; stopping it"
            );
            break;
        }
    }
    let sim_time = sim.elapsed();
    tracing::info!(target: "riptide_sim::run", sim_time_s = sim_time.as_secs_f64(), "run ends");
    drop(sim);
    plan.finish(&trace, sim_time)
}
