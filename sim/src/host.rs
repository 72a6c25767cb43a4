//! A broker host: what a backend needs to start a broker, and to start it again after a crash
//! with empty memory. [`crate::world::World::add_broker`] takes one; the run makes them. What
//! runs on the host is up to its [`BrokerFactory`].

use crate::clock::SimClock;
use crate::factory::{BrokerEnv, BrokerFactory};
use crate::net::SimListener;
use object_store::memory::InMemory;
use riptide_faults::store::FaultHandle;
use riptide_faults::FaultyStore;
use riptide_workloads::mix::derive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The port every broker host listens on.
pub const BROKER_PORT: u16 = 9092;

/// One broker host: what a backend needs to start (and restart) it.
#[derive(Clone)]
pub struct BrokerHost {
    /// The broker's index: `broker-{index}`, node id `index + 1`.
    pub index: usize,
    /// Its host name, `broker-{index}`.
    pub name: String,
    pub(crate) zone: String,
    pub(crate) seed: u64,
    pub(crate) factory: Arc<dyn BrokerFactory>,
    pub(crate) region: Arc<InMemory>,
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
    /// The broker process: its factory's broker, serving connections from `listener` (bound
    /// on [`BROKER_PORT`] by the backend) until the host crashes or the run ends.
    pub async fn serve(self, listener: SimListener) {
        let BrokerHost {
            index,
            name,
            zone,
            seed,
            factory,
            region,
            handle,
            ..
        } = self.host;
        let component = derive(seed, &[1, index as u64, self.start]);
        let store = Arc::new(FaultyStore::new(region, &name, handle, component));
        let env = BrokerEnv {
            index,
            node_id: index as i32 + 1,
            name,
            port: BROKER_PORT,
            zone,
            seed: component,
            restarts: self.start,
            listener,
            store,
            clock: Arc::new(SimClock),
            dialer: crate::net::sim_dialer(),
        };
        factory.start(env).await;
    }
}
