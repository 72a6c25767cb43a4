//! The backend-neutral world interface: everything the run (brokers, clients,
//! nemesis) needs from a simulator. turmoil implements it in ordinary builds,
//! madsim in `--cfg madsim` builds; the broker, the workloads and the
//! checkers never know which.

use crate::host::BrokerHost;
use std::future::Future;
use std::pin::Pin;

/// A client's whole life, run on its own host.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Hosts are named (`broker-0`, `producer-1`, `reader`, ...); faults refer to
/// them by name.
pub trait World {
    /// Adds a broker host; it starts now and again after each restart, with
    /// empty memory each time.
    fn add_broker(&mut self, host: BrokerHost);
    /// Adds a client host running `task`. Clients are never crashed.
    fn add_client(&mut self, name: &str, task: Task);
    /// Stops a host: its process and everything in its memory are gone, its
    /// connections break.
    fn crash(&mut self, host: &str);
    /// Starts a crashed host again from its factory.
    fn restart(&mut self, host: &str);
    /// Freezes a host's process: nothing goes in or out of it until it resumes.
    fn pause(&mut self, host: &str);
    /// Lets a paused host run again.
    fn resume(&mut self, host: &str);
    /// Cuts both directions between two hosts.
    fn partition(&mut self, a: &str, b: &str);
    /// Heals [`World::partition`].
    fn repair(&mut self, a: &str, b: &str);
    /// Cuts only what `from` sends to `to`.
    fn partition_oneway(&mut self, from: &str, to: &str);
    /// Heals [`World::partition_oneway`].
    fn repair_oneway(&mut self, from: &str, to: &str);
}
