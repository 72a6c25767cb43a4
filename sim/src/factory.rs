//! Brokers in the simulated world: any broker a [`BrokerFactory`] can start from a
//! [`BrokerEnv`] (a simulated listener, the broker's view of the object store, the simulated
//! clock, a seed). riptide's own broker is [`ReferenceBroker`], one factory among others.

use crate::net::SimListener;
use crate::scenario::Scenario;
use futures::future::BoxFuture;
use object_store::{ObjectStore, ObjectStoreExt};
use riptide_broker::bugs::Bug;
use riptide_broker::env::Clock;
use riptide_broker::net::Dialer;
use riptide_broker::{Broker, BrokerConfig};
use riptide_workloads::mix::derive;
use std::sync::Arc;
use std::time::Duration;

/// Everything one start of a broker process gets from the simulated world. A crash drops the
/// process and everything it holds; a restart calls [`BrokerFactory::start`] again with a new
/// `BrokerEnv`, so only what the broker wrote to [`BrokerEnv::store`] survives.
pub struct BrokerEnv {
    /// The broker's index in the cluster: host `broker-{index}`.
    pub index: usize,
    /// Its Kafka node id, `index + 1`: what it should advertise in Metadata.
    pub node_id: i32,
    /// Its host name (`broker-{index}`): clients and other brokers reach it at
    /// `{name}:{port}`, so that is the address to advertise.
    pub name: String,
    /// The port [`BrokerEnv::listener`] listens on.
    pub port: u16,
    /// Its availability zone (`zone-{k}`); zone faults take a whole zone away.
    pub zone: String,
    /// A seed for this start of this broker, derived from the run's seed: use it for every
    /// random choice the broker makes (ids, nonces, jitter), never an unseeded source.
    pub seed: u64,
    /// How many times this broker started before this start (0 the first time).
    pub restarts: u64,
    /// The simulated TCP listener clients connect to.
    pub listener: SimListener,
    /// The regional object store as this broker sees it: the nemesis adds latency, errors,
    /// writes whose reply is lost and cut links here. Every broker shares the same objects.
    pub store: Arc<dyn ObjectStore>,
    /// The simulated clock: wall time for timestamps and heartbeats. Timers and sleeps use
    /// `tokio::time`, which the simulator drives.
    pub clock: Arc<dyn Clock>,
    /// Opens simulated TCP connections to other brokers (`host:port`).
    pub dialer: Dialer,
}

/// Starts broker processes in the simulated world. The simulator calls [`BrokerFactory::start`]
/// when a broker host starts and each time it restarts after a crash, and runs the future it
/// returns as that host's process until the host crashes or the run ends.
///
/// The process must be deterministic given its [`BrokerEnv`]: no real clock, no unseeded
/// randomness, no threads, no real sockets (use [`BrokerEnv::listener`] and
/// [`BrokerEnv::dialer`]).
pub trait BrokerFactory: Send + Sync + 'static {
    /// One start of a broker: serves [`BrokerEnv::listener`] until dropped.
    fn start(&self, env: BrokerEnv) -> BoxFuture<'static, ()>;

    /// Called when broker `index` stops cleanly, after its process stopped, with the regional
    /// store (no faults): leaving the cluster for good (a scale-in), or replaced (a step of a
    /// rolling replacement; [`BrokerFactory::start`] runs again at the step's end). The
    /// clean-shutdown work a departing broker would do, such as deleting its liveness record.
    /// It must not wait on simulated time. Nothing by default.
    fn retire(&self, index: usize, region: Arc<dyn ObjectStore>) -> BoxFuture<'static, ()> {
        let _ = (index, region);
        Box::pin(async {})
    }
}

/// riptide's reference stateless broker ([`riptide_broker::Broker`]), configured from a
/// scenario: its planted bug, topic defaults and retention timings.
#[derive(Clone, Debug)]
pub struct ReferenceBroker {
    /// A planted bug, to check that the checkers catch it.
    pub bug: Option<Bug>,
    /// Partitions of an auto-created topic.
    pub default_partitions: i32,
    /// How often retention runs, and how long objects below a log start are kept.
    pub retention_check_interval: Duration,
    /// See [`ReferenceBroker::retention_check_interval`].
    pub delete_delay: Duration,
    /// How long without a peer's heartbeat before it counts as gone; `None`: the default.
    pub session_timeout: Option<Duration>,
}

impl ReferenceBroker {
    /// The reference broker as `scenario` configures it.
    pub fn for_scenario(scenario: &Scenario) -> ReferenceBroker {
        ReferenceBroker {
            bug: scenario.bug,
            default_partitions: scenario.partitions,
            retention_check_interval: Duration::from_millis(scenario.retention_check_ms),
            delete_delay: Duration::from_millis(scenario.delete_delay_ms),
            session_timeout: scenario
                .broker_session_timeout_ms
                .map(Duration::from_millis),
        }
    }
}

impl BrokerFactory for ReferenceBroker {
    fn start(&self, env: BrokerEnv) -> BoxFuture<'static, ()> {
        let mut cfg = BrokerConfig::new(env.node_id, env.name.clone(), env.port as i32);
        cfg.zone = env.zone;
        cfg.seed = derive(env.seed, &[0]);
        cfg.default_partitions = self.default_partitions;
        cfg.bug = self.bug;
        (cfg.retention_check_interval, cfg.delete_delay) =
            (self.retention_check_interval, self.delete_delay);
        if let Some(t) = self.session_timeout {
            cfg.session_timeout = t;
        }
        // One start in four runs the previous release (ApiVersions up to v2, before KIP-511), as
        // in a cluster halfway through a rolling upgrade: clients fall back on connecting.
        if derive(env.seed, &[2]).is_multiple_of(4) {
            cfg.api_versions_max = 2;
        }
        let (name, store, clock, dialer, listener) =
            (env.name, env.store, env.clock, env.dialer, env.listener);
        Box::pin(async move {
            let broker = loop {
                match Broker::start_with_dialer(
                    cfg.clone(),
                    store.clone(),
                    clock.clone(),
                    dialer.clone(),
                )
                .await
                {
                    Ok(b) => break b,
                    Err(e) => {
                        // The target this event had when it lived in run.rs: targets are part
                        // of the trace, so of its hash.
                        tracing::warn!(
                            target: "riptide_sim::run",
                            broker = %name,
                            error = %e,
                            "start failed; retrying"
                        );
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            broker.serve(listener).await;
        })
    }

    /// A departing broker's heartbeat goes with it, as a clean shutdown's does.
    fn retire(&self, index: usize, region: Arc<dyn ObjectStore>) -> BoxFuture<'static, ()> {
        let path = riptide_broker::storage::broker_path(index as i32 + 1);
        Box::pin(async move {
            let _ = region.delete(&path).await;
        })
    }
}
