//! The madsim backend (`--cfg madsim` builds): time jumps straight to the next
//! event instead of stepping a fixed tick, and `tokio`'s time, net and tasks
//! are madsim's, so the broker and the client run unchanged over simulated
//! TCP. The nemesis is the main task, sleeping until each fault's time.
//!
//! Hosts are madsim nodes with fixed addresses: brokers `10.0.1.x` by index,
//! clients `10.0.100.x` in the order they are added (see `broker_ip` and
//! `client_ip`). Broker names resolve through madsim's DNS, so clients
//! connect to the advertised `broker-N:9092` exactly as on turmoil; client
//! names resolve to nothing (nothing connects to a client).

use crate::factory::{BrokerFactory, ReferenceBroker};
use crate::host::{BrokerHost, BROKER_PORT};
use crate::run::{self, Plan, RunOutcome, TRACE_FILTER};
use crate::scenario::Scenario;
use crate::trace::{self, Trace};
use crate::world::{Task, World};
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use madsim::task::{JoinHandle, NodeId};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// This backend's name, as `--backend` spells it.
pub const NAME: &str = "madsim";

/// Simulated time since the run started, if a simulation is running.
pub fn sim_elapsed() -> Option<Duration> {
    madsim::time::TimeHandle::try_current().map(|t| t.elapsed())
}

/// Simulated wall-clock time since the Unix epoch: the same fixed epoch as
/// turmoil's runs (madsim's own wall clock starts at a seeded date).
pub fn since_epoch() -> Option<Duration> {
    sim_elapsed().map(|d| Duration::from_secs(crate::clock::EPOCH_SECS) + d)
}

/// madsim's configuration for every run: its default network (1–10 ms per
/// message, no loss: TCP is reliable, and loss is modelled by partitions).
pub fn config() -> madsim::Config {
    madsim::Config::default()
}

/// Broker `i` (`broker-{i}`, spares included): `10.0.1.{i + 1}`, then
/// `10.0.2.x` past 250 brokers.
fn broker_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        0,
        1 + (i / 250) as u8,
        1 + (i % 250) as u8,
    ))
}

/// The `k`-th client added (the roster's processes in order, then the final
/// reader): `10.0.100.{k + 1}`, then `10.0.101.x` past 250 clients; far from
/// the brokers' range.
fn client_ip(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        0,
        100 + (k / 250) as u8,
        1 + (k % 250) as u8,
    ))
}

struct MadsimWorld {
    handle: Handle,
    net: Arc<NetSim>,
    nodes: BTreeMap<String, NodeId>,
    clients: Vec<JoinHandle<()>>,
}

impl MadsimWorld {
    fn id(&self, host: &str) -> NodeId {
        *self
            .nodes
            .get(host)
            .unwrap_or_else(|| panic!("fault names an unknown host '{host}'"))
    }

    fn clog(&self, from: &str, to: &str, on: bool) {
        let (a, b) = (self.id(from), self.id(to));
        if on {
            self.net.clog_link(a, b);
        } else {
            self.net.unclog_link(a, b);
        }
    }
}

impl World for MadsimWorld {
    fn add_broker(&mut self, host: BrokerHost) {
        let ip = broker_ip(host.index);
        self.net.add_dns_record(&host.name, ip);
        let name = host.name.clone();
        let node = self
            .handle
            .create_node()
            .name(name.clone())
            .ip(ip)
            .init(move || {
                let start = host.start();
                async move {
                    let addr = SocketAddr::from(([0, 0, 0, 0], BROKER_PORT));
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(listener) => start.serve(crate::net::SimListener(listener)).await,
                        Err(e) => tracing::warn!(error = %e, "cannot listen"),
                    }
                }
            })
            .build();
        self.nodes.insert(name, node.id());
    }

    fn add_client(&mut self, name: &str, task: Task) {
        let node = self
            .handle
            .create_node()
            .name(name)
            .ip(client_ip(self.clients.len()))
            .build();
        self.nodes.insert(name.to_string(), node.id());
        self.clients.push(node.spawn(task));
    }

    fn crash(&mut self, host: &str) {
        self.handle.kill(self.id(host));
    }

    fn restart(&mut self, host: &str) {
        self.handle.restart(self.id(host));
    }

    fn pause(&mut self, host: &str) {
        self.handle.pause(self.id(host));
    }

    fn resume(&mut self, host: &str) {
        self.handle.resume(self.id(host));
    }

    fn partition(&mut self, a: &str, b: &str) {
        self.clog(a, b, true);
        self.clog(b, a, true);
    }

    fn repair(&mut self, a: &str, b: &str) {
        self.clog(a, b, false);
        self.clog(b, a, false);
    }

    fn partition_oneway(&mut self, from: &str, to: &str) {
        self.clog(from, to, true);
    }

    fn repair_oneway(&mut self, from: &str, to: &str) {
        self.clog(from, to, false);
    }
}

/// The run's main task: builds the world, applies the schedule as simulated
/// time reaches each fault, then waits for every client (or the limit).
async fn world(
    seed: u64,
    scenario: Scenario,
    factory: Arc<dyn BrokerFactory>,
) -> anyhow::Result<(Plan, Duration)> {
    tracing::info!(target: "riptide_sim::run", seed, scenario = %scenario.name, "run starts");
    let now = || sim_elapsed().unwrap_or_default();
    let limit = run::limit(&scenario);
    let mut world = MadsimWorld {
        handle: Handle::current(),
        net: NetSim::current(),
        nodes: BTreeMap::new(),
        clients: Vec::new(),
    };
    let mut plan = Plan::new(seed, &scenario, factory, &mut world)?;
    let clients = std::mem::take(&mut world.clients);
    let mut all_done = Box::pin(futures::future::join_all(clients));
    let mut finished = false;
    while let Some(at) = plan.next_at() {
        if at > now() {
            // Clients that all finish before the schedule does end the run,
            // as on turmoil.
            tokio::select! {
                biased;
                _ = &mut all_done => {
                    finished = true;
                    break;
                }
                _ = tokio::time::sleep(at - now()) => {}
            }
        }
        plan.apply_due(&mut world, now());
    }
    if !finished
        && tokio::time::timeout(limit.saturating_sub(now()), all_done)
            .await
            .is_err()
    {
        // A client that never finishes is a liveness failure, not a
        // harness error: the history so far goes to the checkers.
        tracing::warn!(
            target: "riptide_sim::run",
            limit_s = limit.as_secs(),
            "run did not finish in time; stopping it"
        );
    }
    let sim_time = now();
    tracing::info!(target: "riptide_sim::run", sim_time_s = sim_time.as_secs_f64(), "run ends");
    Ok((plan, sim_time))
}

/// Each run gets a fresh thread: std's `HashMap` keys are drawn once per
/// thread, and madsim can seed them only if this thread never drew them.
pub fn run(
    seed: u64,
    scenario: &Scenario,
    factory: Arc<dyn BrokerFactory>,
) -> anyhow::Result<RunOutcome> {
    // Here, not on the run's thread: building the subscriber draws HashMap keys.
    trace::install_global(TRACE_FILTER);
    std::thread::scope(|s| {
        // Coverage is counted on the thread a run runs on: this one's, not the caller's.
        s.spawn(|| {
            let (outcome, c) = riptide_coverage::collect_all(|| run_here(seed, scenario, factory));
            outcome.map(|o| RunOutcome {
                coverage: c.coverage,
                invariants: c.invariants,
                ..o
            })
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn run_here(
    seed: u64,
    scenario: &Scenario,
    factory: Arc<dyn BrokerFactory>,
) -> anyhow::Result<RunOutcome> {
    // First: the runtime seeds this thread's HashMap keys before anything
    // draws them.
    let rt = Runtime::with_seed_and_config(seed, config());
    let trace = Trace::default();
    let _route = trace.route();
    let (plan, sim_time) = rt.block_on(world(seed, scenario.clone(), factory))?;
    // Every node (and every task holding the history) goes with the runtime.
    drop(rt);
    plan.finish(&trace, sim_time)
}

/// The run that [`check_determinism`] repeats (madsim takes a plain `fn`).
static CHECKED: Mutex<Option<(u64, Scenario)>> = Mutex::new(None);
/// The trace hash of each repetition.
static HASHES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The trace of each repetition, to show where they part.
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn checked_run() -> String {
    let (seed, scenario) = CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("check_determinism sets the run first");
    let trace = Trace::default();
    let _route = trace.route();
    let factory = Arc::new(ReferenceBroker::for_scenario(&scenario));
    let hash = match world(seed, scenario, factory).await {
        Ok((plan, sim_time)) => match plan.finish(&trace, sim_time) {
            Ok(o) => {
                TRACES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(o.trace.clone());
                o.trace_hash
            }
            Err(e) => format!("error: {e:#}"),
        },
        Err(e) => format!("error: {e:#}"),
    };
    HASHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(hash.clone());
    hash
}

/// madsim's own determinism check (what `MADSIM_TEST_CHECK_DETERMINISM` does
/// for `#[madsim::test]`): runs the seed twice, each on a fresh thread,
/// logging every random draw of the first run and failing the second at the
/// first draw that differs. On top, both runs' trace hashes must be equal.
/// Returns the trace hash.
pub fn check_determinism(seed: u64, scenario: &Scenario) -> anyhow::Result<String> {
    trace::install_global(TRACE_FILTER);
    *CHECKED.lock().unwrap_or_else(|e| e.into_inner()) = Some((seed, scenario.clone()));
    HASHES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    TRACES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let checked =
        std::panic::catch_unwind(|| Runtime::check_determinism(seed, config(), checked_run));
    let hashes = std::mem::take(&mut *HASHES.lock().unwrap_or_else(|e| e.into_inner()));
    let hash = match checked {
        Ok(h) => h,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            anyhow::bail!("seed {seed}: madsim found nondeterminism: {msg}");
        }
    };
    let traces = std::mem::take(&mut *TRACES.lock().unwrap_or_else(|e| e.into_inner()));
    if hashes.len() != 2 || hashes[0] != hashes[1] {
        let parted = match &traces[..] {
            [a, b] => a
                .lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("\n  first run:  {x}\n  second run: {y}"))
                .unwrap_or_else(|| "\n  (the traces agree: the histories differ)".into()),
            _ => String::new(),
        };
        anyhow::bail!("seed {seed}: the two runs' trace hashes differ: {hashes:?}{parted}");
    }
    anyhow::ensure!(!hash.starts_with("error"), "seed {seed}: {hash}");
    Ok(hash)
}
