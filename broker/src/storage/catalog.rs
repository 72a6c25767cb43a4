//! Topics, as objects: `topics/{name}.json`, created with create-if-absent so
//! two brokers auto-creating the same topic agree on one id.

use super::topic_config::{
    config_path, config_prefix, config_seq, Change, InvalidConfig, TopicConfig,
};
use super::{topic_path, topics_prefix};
use crate::env::{Clock, Ids};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// 32 hex digits; names the topic's log so a re-created topic starts empty.
    pub id: String,
    pub partitions: i32,
    pub created_ms: i64,
    /// Settings given at creation (changes live in their own objects: see `topic_config`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub config: TopicConfig,
}

fn is_default(c: &TopicConfig) -> bool {
    c.set.is_empty()
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        u128::from_str_radix(&self.id, 16)
            .map(uuid::Uuid::from_u128)
            .unwrap_or_default()
    }
}

/// Kafka's rule for topic names; it also keeps names safe as object paths.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<Ids>,
    /// A cache of the objects; refreshed from the store, never authoritative.
    topics: RwLock<BTreeMap<String, TopicMeta>>,
}

impl Catalog {
    pub fn new(store: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>, ids: Arc<Ids>) -> Self {
        Catalog {
            store,
            clock,
            ids,
            topics: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn all(&self) -> Vec<TopicMeta> {
        self.read().values().cloned().collect()
    }

    pub fn cached(&self, name: &str) -> Option<TopicMeta> {
        self.read().get(name).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, TopicMeta>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, meta: TopicMeta) {
        let mut t = self.topics.write().unwrap_or_else(|e| e.into_inner());
        t.insert(meta.name.clone(), meta);
    }

    /// The topic, from the cache or else from the store.
    pub async fn get(&self, name: &str) -> object_store::Result<Option<TopicMeta>> {
        if let Some(t) = self.cached(name) {
            return Ok(Some(t));
        }
        let meta = self.load(name).await?;
        if let Some(m) = &meta {
            self.remember(m.clone());
        }
        Ok(meta)
    }

    async fn load(&self, name: &str) -> object_store::Result<Option<TopicMeta>> {
        match self.store.get(&topic_path(name)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the topic unless it exists. Returns the topic and whether this
    /// call created it.
    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> object_store::Result<(TopicMeta, bool)> {
        let meta = TopicMeta {
            name: name.to_string(),
            id: format!("{:032x}", self.ids.next_u128()),
            partitions,
            created_ms: self.clock.now_ms(),
            config,
        };
        let body = serde_json::to_vec(&meta).expect("topic meta serializes");
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&topic_path(name), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => {
                self.remember(meta.clone());
                Ok((meta, true))
            }
            Err(object_store::Error::AlreadyExists { .. }) => match self.load(name).await? {
                Some(existing) => {
                    self.remember(existing.clone());
                    let ours = existing.id == meta.id;
                    Ok((existing, ours))
                }
                // Deleted between our attempt and the read: report it as existing-and-gone.
                None => Err(object_store::Error::NotFound {
                    path: name.to_string(),
                    source: "topic vanished while being created".into(),
                }),
            },
            Err(e) => Err(e),
        }
    }

    /// The topic's settings now: the newest change, else those given at creation.
    pub async fn config(&self, meta: &TopicMeta) -> object_store::Result<TopicConfig> {
        Ok(self.newest_config(meta).await?.1)
    }

    async fn newest_config(
        &self,
        meta: &TopicMeta,
    ) -> object_store::Result<(Option<u64>, TopicConfig)> {
        let listed: Vec<_> = self
            .store
            .list(Some(&config_prefix(&meta.id)))
            .try_collect()
            .await?;
        let Some(seq) = listed.iter().filter_map(|m| config_seq(&m.location)).max() else {
            return Ok((None, meta.config.clone()));
        };
        let bytes = self
            .store
            .get(&config_path(&meta.id, seq))
            .await?
            .bytes()
            .await?;
        let config = serde_json::from_slice(&bytes).map_err(|e| object_store::Error::Generic {
            store: "catalog",
            source: format!("topic {} config {seq}: {e}", meta.name).into(),
        })?;
        Ok((Some(seq), config))
    }

    /// Applies `changes` to the topic's newest settings and writes the result as the next
    /// change; retried on losing the race to another change.
    pub async fn alter_config(
        &self,
        meta: &TopicMeta,
        changes: &[Change],
    ) -> Result<TopicConfig, AlterError> {
        loop {
            let (seq, mut config) = self.newest_config(meta).await?;
            for c in changes {
                config.apply(c)?;
            }
            let next = seq.map_or(0, |s| s + 1);
            let body = serde_json::to_vec(&config).expect("topic config serializes");
            let path = config_path(&meta.id, next);
            let put = self.store.put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            );
            match put.await {
                Ok(_) => return Ok(config),
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes the topic object (its log is removed best-effort by the caller).
    pub async fn delete(&self, name: &str) -> object_store::Result<Option<TopicMeta>> {
        let meta = self.get(name).await?;
        if meta.is_some() {
            match self.store.delete(&topic_path(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            let mut t = self.topics.write().unwrap_or_else(|e| e.into_inner());
            t.remove(name);
        }
        Ok(meta)
    }

    /// Re-reads the list of topics: learns new ones, forgets deleted ones.
    /// Returns the topics that disappeared.
    pub async fn refresh(&self) -> object_store::Result<Vec<TopicMeta>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&topics_prefix()))
            .try_collect()
            .await?;
        let mut names = BTreeMap::new();
        for m in listed {
            if let Some(n) = m.location.filename().and_then(|f| f.strip_suffix(".json")) {
                names.insert(n.to_string(), ());
            }
        }
        for name in names.keys() {
            if self.cached(name).is_none() {
                if let Some(meta) = self.load(name).await? {
                    self.remember(meta);
                }
            }
        }
        let mut t = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = t
            .keys()
            .filter(|k| !names.contains_key(*k))
            .cloned()
            .collect();
        Ok(gone.into_iter().filter_map(|k| t.remove(&k)).collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlterError {
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(valid_topic_name("orders-1.v2_x"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }
}
