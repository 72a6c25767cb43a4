//! A broker host: what a backend needs to start a broker, and to start it again after a crash
//! with empty memory. [`crate::world::World::add_broker`] takes one; the run makes them.

use crate::clock::SimClock;
use object_store::memory::InMemory;
use riptide_broker::net::Listener;
use riptide_broker::{Broker, BrokerConfig};
use riptide_faults::store::FaultHandle;
use riptide_faults::FaultyStore;
use riptide_workloads::mix::derive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The port every broker host listens on.
pub const BROKER_PORT: u16 = 9092;

/// One broker host: what a backend needs to start (and restart) it.
#[derive(Clone)]
pub struct BrokerHost {
    /// The broker's index: `broker-{index}`, node id `index + 1`.
    pub index: usize,
    pub name: String,
    pub(crate) zone: String,
    pub(crate) seed: u64,
    pub(crate) bug: Option<riptide_broker::bugs::Bug>,
    pub(crate) region: Arc<InMemory>,
    pub(crate) partitions: i32,
    /// The brokers' retention check interval and delete delay.
    pub(crate) retention: (Duration, Duration),
    pub(crate) handle: FaultHandle,
    pub(crate) starts: Arc<AtomicU64>,
}

/// One start of a broker host: a fresh process with empty memory.
pub struct BrokerStart {
    host: BrokerHost,
    start: u64,
}

impl BrokerHost {
    /// Called each time the host (re)starts, before its process runs.
    pub fn start(&self) -> BrokerStart {
        BrokerStart {
            host: self.clone(),
            start: self.starts.fetch_add(1, Ordering::SeqCst),
        }
    }
}

impl BrokerStart {
    /// The broker process: joins the cluster (retrying, as a supervisor
    /// would) and serves connections from `listener` (bound on
    /// [`BROKER_PORT`] by the backend).
    pub async fn serve<L: Listener>(self, listener: L) {
        let BrokerHost {
            index: i,
            name,
            zone,
            seed,
            bug,
            region,
            partitions,
            retention,
            handle,
            ..
        } = self.host;
        let component = derive(seed, &[1, i as u64, self.start]);
        let store = Arc::new(FaultyStore::new(region, &name, handle, component));
        let mut cfg = BrokerConfig::new(i as i32 + 1, name.clone(), BROKER_PORT as i32);
        cfg.zone = zone;
        cfg.seed = derive(component, &[0]);
        cfg.default_partitions = partitions;
        cfg.bug = bug;
        (cfg.retention_check_interval, cfg.delete_delay) = retention;
        // One start in four runs the previous release (ApiVersions up to v2, before KIP-511), as
        // in a cluster halfway through a rolling upgrade: clients fall back on connecting.
        if derive(component, &[2]).is_multiple_of(4) {
            cfg.api_versions_max = 2;
        }
        let broker = loop {
            match Broker::start_with_dialer(
                cfg.clone(),
                store.clone(),
                Arc::new(SimClock),
                crate::net::sim_dialer(),
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
    }
}
