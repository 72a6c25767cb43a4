//! Membership and partition ownership, decided from heartbeat objects alone.
//!
//! Every broker overwrites `brokers/{node_id}.json` each heartbeat interval and
//! reads everyone else's. A broker whose heartbeat is older than the session
//! timeout is gone. The owner of a partition is chosen by rendezvous hashing
//! over the live brokers, so a join or a death moves only the partitions that
//! must move. Views may briefly disagree; that costs availability, never
//! safety, because writes are fenced in the log itself (see `storage::log`).

use crate::storage::{broker_path, brokers_prefix};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: i32,
    pub zone: String,
    pub host: String,
    pub port: i32,
    /// Differs on every start, to tell a restarted broker from a stale file.
    pub incarnation: u64,
    /// The broker's clock when it wrote this heartbeat (ms since the epoch).
    pub time_ms: i64,
}

pub struct Cluster {
    store: Arc<dyn ObjectStore>,
    pub me: RwLock<Member>,
    view: RwLock<BTreeMap<i32, Member>>,
}

/// 64-bit FNV-1a (std's hashers are not stable across Rust versions), then a
/// final mix: FNV's low bits are weak for short keys.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    for p in parts {
        hasher.write(p);
    }
    let mut h = hasher.finish();
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The live broker that owns a partition, by rendezvous hashing.
pub fn owner_among(nodes: impl Iterator<Item = i32>, topic: &str, partition: i32) -> Option<i32> {
    nodes.max_by_key(|n| {
        (
            fnv1a(&[topic.as_bytes(), &partition.to_be_bytes(), &n.to_be_bytes()]),
            *n,
        )
    })
}

impl Cluster {
    pub fn new(store: Arc<dyn ObjectStore>, me: Member) -> Self {
        let view = BTreeMap::from([(me.node_id, me.clone())]);
        Cluster {
            store,
            me: RwLock::new(me),
            view: RwLock::new(view),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.me.read().unwrap_or_else(|e| e.into_inner()).node_id
    }

    pub fn members(&self) -> Vec<Member> {
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn owner(&self, topic: &str, partition: i32) -> Option<i32> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        owner_among(view.keys().copied(), topic, partition)
    }

    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.owner(topic, partition) == Some(self.node_id())
    }

    /// Writes our heartbeat stamped `now_ms`.
    pub async fn heartbeat(&self, now_ms: i64) -> object_store::Result<()> {
        let me = {
            let mut me = self.me.write().unwrap_or_else(|e| e.into_inner());
            me.time_ms = now_ms;
            me.clone()
        };
        let body = serde_json::to_vec(&me).expect("member serializes");
        self.store
            .put(&broker_path(me.node_id), PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Re-reads every heartbeat and keeps those younger than `timeout_ms`.
    /// Returns true when the set of live brokers changed.
    pub async fn refresh(&self, now_ms: i64, timeout_ms: i64) -> object_store::Result<bool> {
        let listed: Vec<_> = self
            .store
            .list(Some(&brokers_prefix()))
            .try_collect()
            .await?;
        let reads = listed.into_iter().map(|m| {
            let store = self.store.clone();
            async move {
                match store.get(&m.location).await {
                    Ok(r) => r
                        .bytes()
                        .await
                        .map(|b| serde_json::from_slice::<Member>(&b).ok()),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        });
        let members: Vec<Option<Member>> = futures::stream::iter(reads)
            .buffered(8)
            .try_collect()
            .await?;
        let me = self.me.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut live = BTreeMap::from([(me.node_id, me.clone())]);
        for m in members.into_iter().flatten() {
            if m.node_id == me.node_id {
                if m.incarnation != me.incarnation && m.time_ms > me.time_ms {
                    tracing::error!(node_id = m.node_id, "another broker uses this node id");
                }
                continue;
            }
            if now_ms - m.time_ms < timeout_ms {
                live.insert(m.node_id, m);
            }
        }
        let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
        let changed = view.keys().ne(live.keys());
        *view = live;
        Ok(changed)
    }

    /// Removes our heartbeat so others take over at once (clean shutdown).
    pub async fn leave(&self) -> object_store::Result<()> {
        match self.store.delete(&broker_path(self.node_id())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_hash_is_pinned() {
        // Who owns a partition is in every trace hash: it must never change.
        let h =
            |t: &str, p: i32, n: i32| fnv1a(&[t.as_bytes(), &p.to_be_bytes(), &n.to_be_bytes()]);
        assert_eq!(h("t", 0, 1), 0x14d0_c5ef_ed81_583c);
        assert_eq!(h("orders", 5, 3), 0x425a_065f_6e3f_d333);
    }

    #[test]
    fn ownership_spreads_and_moves_minimally() {
        let three = [1, 2, 3];
        let owners: Vec<i32> = (0..60)
            .map(|p| owner_among(three.iter().copied(), "t", p).unwrap())
            .collect();
        for n in three {
            let c = owners.iter().filter(|o| **o == n).count();
            assert!(c > 10, "node {n} owns {c} of 60");
        }
        // Removing node 3 moves only node 3's partitions.
        for (p, o) in owners.iter().enumerate() {
            let after = owner_among([1, 2].into_iter(), "t", p as i32).unwrap();
            if *o != 3 {
                assert_eq!(after, *o);
            }
        }
    }
}
