//! What a broker coordinates besides partitions: consumer groups and transactional ids. Each
//! is the owner of a pseudo-partition (`__group/NAME`, `__txn/ID`), opened on first use (its
//! chain claimed and replayed), let go when ownership moves, and checked every heartbeat.

use crate::storage::log::LogError;
use riptide_wire::ResponseError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A coordinator kept by a [`Coordinators`] registry.
pub trait Coordinator: Send + Sync {
    fn is_closed(&self) -> bool;
    fn close(&self);
    /// Notices another coordinator that took over behind its back.
    fn verify(&self) -> impl Future<Output = ()> + Send;
}

/// The coordinators of one kind this broker has open, by name.
pub struct Coordinators<T> {
    /// "group" or "transactional id", for log lines.
    kind: &'static str,
    open: Mutex<BTreeMap<String, Arc<T>>>,
    /// Serialises opening, so one name is claimed once.
    opening: tokio::sync::Mutex<()>,
}

impl<T: Coordinator> Coordinators<T> {
    pub fn new(kind: &'static str) -> Self {
        Coordinators {
            kind,
            open: Mutex::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, name: &str) -> Option<Arc<T>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// The open coordinator of `name`, or the one `open` makes; a Kafka error code if it cannot
    /// be opened (NOT_COORDINATOR when another broker fenced it first).
    pub async fn get_or_open<F>(&self, name: &str, open: F) -> Result<Arc<T>, i16>
    where
        F: Future<Output = Result<Arc<T>, LogError>>,
    {
        if let Some(c) = self.cached(name) {
            return Ok(c);
        }
        let _opening = self.opening.lock().await;
        if let Some(c) = self.cached(name) {
            return Ok(c);
        }
        match open.await {
            Ok(c) => {
                let mut all = self.open.lock().unwrap_or_else(|e| e.into_inner());
                all.insert(name.to_string(), c.clone());
                Ok(c)
            }
            Err(LogError::Fenced) => Err(ResponseError::NotCoordinator.code()),
            Err(e) => {
                tracing::warn!(kind = self.kind, name, error = %e, "could not open coordinator");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Lets go of those `owned` says this broker no longer coordinates (or that closed), and
    /// checks the rest.
    pub async fn release(&self, owned: impl Fn(&str) -> bool) {
        let open: Vec<Arc<T>> = {
            let mut all = self.open.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|name, c| {
                let keep = !c.is_closed() && owned(name);
                if !keep {
                    riptide_coverage::reached!(
                        "broker.coordinator_released",
                        "a broker let go of a group or transactional id it no longer coordinates"
                    );
                    c.close();
                    tracing::info!(kind = self.kind, name = %name, "no longer coordinator");
                }
                keep
            });
            all.values().cloned().collect()
        };
        for c in open {
            c.verify().await;
        }
    }
}
