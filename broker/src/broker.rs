//! The broker: its seams, its caches of object-store state, and its
//! background heartbeat.

use crate::cluster::{Cluster, Member};
use crate::config::BrokerConfig;
use crate::coordinators::Coordinators;
use crate::env::{Clock, Ids};
use crate::groups::{self, Group};
use crate::net::Dialer;
use crate::storage::catalog::{Catalog, TopicMeta};
use crate::storage::log::{Cache, LogError, LogOptions, PartitionLog};
use crate::storage::topic_config::{config_prefix, TopicConfig};
use crate::storage::topic_log_prefix;
use crate::txn::{self, Marker, TxnCoordinator};
use futures::StreamExt;
use object_store::ObjectStore;
use riptide_coverage::reached;
use riptide_wire::ResponseError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// How long a transaction stays open in a partition before its owner wakes its coordinator,
/// and how often after that.
const NUDGE_AFTER_MS: i64 = 5_000;

pub struct Broker {
    pub cfg: BrokerConfig,
    pub store: Arc<dyn ObjectStore>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Catalog,
    pub cluster: Cluster,
    /// Partitions this broker has opened, keyed by (topic id, partition).
    logs: Mutex<BTreeMap<(String, i32), Arc<PartitionLog>>>,
    log_options: LogOptions,
    pub appended: Arc<Notify>,
    shutdown: Notify,
    /// Groups and transactional ids this broker coordinates.
    groups: Coordinators<Group>,
    txns: Coordinators<TxnCoordinator>,
    /// Opens connections to other brokers (markers, transaction verification).
    pub dialer: Dialer,
    /// When each transactional id's coordinator was last woken (see [`Broker::nudge_open_txns`]).
    nudged: Mutex<BTreeMap<String, i64>>,
    me: std::sync::Weak<Broker>,
    /// SCRAM server nonces (apart from `ids`, so logins do not shift the ids a seed gives).
    pub(crate) nonces: Ids,
}

impl Broker {
    /// Builds a broker and joins the cluster: one heartbeat and one read of
    /// the membership and topics before it serves anything.
    pub async fn start(
        cfg: BrokerConfig,
        store: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Broker>> {
        Self::start_with_dialer(cfg, store, clock, crate::net::tcp_dialer()).await
    }

    /// Like [`Broker::start`], reaching other brokers through `dialer` (a simulator's TCP).
    pub async fn start_with_dialer(
        cfg: BrokerConfig,
        store: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        dialer: Dialer,
    ) -> anyhow::Result<Arc<Broker>> {
        let ids = Arc::new(Ids::new(cfg.seed));
        let me = Member {
            node_id: cfg.node_id,
            zone: cfg.zone.clone(),
            host: cfg.advertised_host.clone(),
            port: cfg.advertised_port,
            incarnation: ids.next_u64(),
            time_ms: clock.now_ms(),
        };
        let appended = Arc::new(Notify::new());
        let broker = Arc::new_cyclic(|weak| Broker {
            catalog: Catalog::new(store.clone(), clock.clone(), ids.clone()),
            cluster: Cluster::new(store.clone(), me),
            logs: Mutex::new(BTreeMap::new()),
            log_options: LogOptions {
                node_id: cfg.node_id,
                bug: cfg.bug,
                store: store.clone(),
                ids,
                cache: Arc::new(Cache::new(cfg.cache_bytes)),
                appended: appended.clone(),
                max_commit_bytes: cfg.max_commit_bytes,
                delete_delay: cfg.delete_delay,
            },
            appended,
            shutdown: Notify::new(),
            groups: Coordinators::new("group"),
            txns: Coordinators::new("transactional id"),
            dialer,
            nudged: Mutex::new(BTreeMap::new()),
            me: weak.clone(),
            nonces: Ids::new(cfg.seed ^ 0x5a51_6e6f_6e63_6573),
            cfg,
            store,
            clock,
        });
        broker.tick().await?;
        let b = broker.clone();
        tokio::spawn(async move { b.heartbeat_loop().await });
        let b = broker.clone();
        tokio::spawn(async move { b.retention_loop().await });
        Ok(broker)
    }

    /// Applies retention to the partitions this broker owns, every check interval: moves each
    /// log start past what expired, then deletes objects below it once `delete_delay` passed.
    async fn retention_loop(self: Arc<Self>) {
        let period = self.cfg.retention_check_interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.shutdown.notified() => return,
            }
            self.apply_retention().await;
        }
    }

    /// Every partition this broker owns, open or not (records expire with no client asking).
    async fn apply_retention(&self) {
        for meta in self.catalog.all() {
            let config = match self.catalog.config(&meta).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(topic = %meta.name, error = %e, "could not read topic config");
                    continue;
                }
            };
            for partition in 0..meta.partitions {
                if !self.cluster.owns(&meta.name, partition) {
                    continue;
                }
                let Ok(log) = self.log(&meta, partition).await else {
                    continue;
                };
                self.retain(&meta, &log, &config).await;
            }
        }
    }

    /// Moves the log start past what expired, then deletes what is due below it.
    async fn retain(&self, meta: &TopicMeta, log: &Arc<PartitionLog>, config: &TopicConfig) {
        let now = self.clock.now_ms();
        let expired = log.expired_below(now, config.retention_ms(), config.retention_bytes());
        if let Some(point) = expired {
            match log.trim_to(point).await {
                Ok(Ok(start)) => {
                    reached!(
                        "retention.log_start_moved",
                        "retention moved a partition's log start past expired records"
                    );
                    tracing::info!(topic = %meta.name, partition = log.partition,
                        log_start = start, "retention");
                }
                Ok(Err(e)) => tracing::info!(topic = %meta.name, partition = log.partition,
                    error = %e, "retention could not move the log start"),
                Err(_) => {}
            }
        }
        log.collect_garbage().await;
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(self.cfg.heartbeat_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.shutdown.notified() => return,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }

    /// One heartbeat: publish ours, re-read membership and topics, and let go
    /// of partitions we no longer own.
    async fn tick(&self) -> anyhow::Result<()> {
        self.cluster.heartbeat(self.clock.now_ms()).await?;
        let timeout = self.cfg.session_timeout.as_millis() as i64;
        if self.cluster.refresh(self.clock.now_ms(), timeout).await? {
            riptide_coverage::reached!(
                "broker.membership_changed",
                "a broker saw the set of live brokers change"
            );
            let nodes: Vec<i32> = self.cluster.members().iter().map(|m| m.node_id).collect();
            tracing::info!(?nodes, "membership changed");
        }
        for gone in self.catalog.refresh().await? {
            tracing::info!(topic = %gone.name, "topic deleted elsewhere");
            self.forget_topic(&gone.id);
        }
        self.release_unowned();
        self.verify_open_logs().await;
        self.groups
            .release(|name| self.cluster.owns(&groups::coordinator_key(name), 0))
            .await;
        self.txns
            .release(|id| self.cluster.owns(&txn::coordinator_key(id), 0))
            .await;
        self.nudge_open_txns();
        Ok(())
    }

    /// Wakes the coordinators of transactions open for a while in partitions this broker
    /// owns. A coordinator is opened by its transactional id's requests; if its broker died
    /// and the producer never came back, nobody would open it again, and its open transaction
    /// would hold back the last stable offset forever. Woken, it finishes a prepared
    /// transaction and aborts one past its timeout.
    fn nudge_open_txns(&self) {
        let now = self.clock.now_ms();
        let open = self.open_logs();
        let ids: std::collections::BTreeSet<String> = open
            .iter()
            .flat_map(|log| log.open_since(now - NUDGE_AFTER_MS))
            .collect();
        let due: Vec<String> = {
            let mut nudged = self.nudged.lock().unwrap_or_else(|e| e.into_inner());
            nudged.retain(|id, _| ids.contains(id));
            let due: Vec<String> = ids
                .into_iter()
                .filter(|id| nudged.get(id).is_none_or(|t| now - t >= NUDGE_AFTER_MS))
                .collect();
            for id in &due {
                nudged.insert(id.clone(), now);
            }
            due
        };
        let Some(me) = self.me.upgrade() else { return };
        for id in due {
            reached!(
                "txn.coordinator_nudged",
                "a partition owner woke the coordinator of a transaction open for a while"
            );
            let b = me.clone();
            tokio::spawn(async move { crate::txn_api::wake(&b, &id).await });
        }
    }

    pub fn txn_coordinator_of(&self, transactional_id: &str) -> Option<i32> {
        self.cluster
            .owner(&txn::coordinator_key(transactional_id), 0)
    }

    /// The transaction coordinator of `transactional_id`, if this broker is it; opened (its
    /// chain claimed and replayed) on first use.
    pub async fn txn(&self, transactional_id: &str) -> Result<Arc<TxnCoordinator>, i16> {
        if self.txn_coordinator_of(transactional_id) != Some(self.cfg.node_id) {
            return Err(ResponseError::NotCoordinator.code());
        }
        let open = TxnCoordinator::open(transactional_id, &self.log_options, self.me.clone());
        self.txns.get_or_open(transactional_id, open).await
    }

    /// Writes a transaction's markers in every partition and group it spans: here for what
    /// this broker owns, by WriteTxnMarkers for the rest. True once every one is written (or
    /// had nothing to mark).
    pub async fn deliver_markers(
        &self,
        marker: Marker,
        partitions: &[(String, i32)],
        groups: &[String],
    ) -> bool {
        let mut by_owner: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut unowned = false;
        let partitions = match partitions {
            [most @ .., _]
                if self.cfg.bug == Some(crate::bugs::Bug::MarkerSkipsPartition)
                    && !most.is_empty() =>
            {
                most
            }
            all => all,
        };
        for (topic, p) in partitions {
            match self.cluster.owner(topic, *p) {
                Some(node) => by_owner.entry(node).or_default().push((topic.clone(), *p)),
                None => unowned = true,
            }
        }
        for g in groups {
            match self.coordinator_of(g) {
                Some(node) => by_owner
                    .entry(node)
                    .or_default()
                    .push((crate::txn_api::group_marker_topic(g), 0)),
                None => unowned = true,
            }
        }
        let deliveries = by_owner.into_iter().map(|(node, targets)| async move {
            if node == self.cfg.node_id {
                let all = futures::future::join_all(
                    targets
                        .iter()
                        .map(|(t, p)| self.write_marker(t, *p, marker)),
                )
                .await;
                all.into_iter().all(|code| code == 0)
            } else {
                crate::txn_api::send_markers(self, node, marker, &targets).await
            }
        });
        let done = futures::future::join_all(deliveries).await;
        !unowned && done.into_iter().all(|ok| ok)
    }

    /// Writes one marker in a partition (or a group, by its marker topic) this broker owns;
    /// the Kafka error code (0 when written or nothing was open).
    pub async fn write_marker(&self, topic: &str, partition: i32, marker: Marker) -> i16 {
        if let Some(group) = crate::txn_api::marker_group(topic) {
            return match self.group(group).await {
                Ok(g) => match g.end_txn(marker).await {
                    Ok(()) => 0,
                    Err(c) => c,
                },
                Err(c) => c,
            };
        }
        let meta = match self.catalog.get(topic).await {
            Ok(Some(m)) if partition >= 0 && partition < m.partitions => m,
            // A deleted topic has nothing left to mark.
            Ok(_) => return 0,
            Err(_) => return ResponseError::KafkaStorageError.code(),
        };
        let log = match self.log(&meta, partition).await {
            Ok(l) => l,
            Err(e) => return crate::api::log_error_code(&e),
        };
        let written = log.append_marker(
            marker.producer_id,
            marker.epoch,
            marker.commit,
            marker.coordinator_epoch,
            self.clock.now_ms(),
        );
        let outcome = written.await;
        tracing::debug!(
            topic,
            partition,
            producer_id = marker.producer_id,
            epoch = marker.epoch,
            commit = marker.commit,
            ?outcome,
            "marker"
        );
        match outcome {
            Ok(Ok(_)) => {
                reached!(
                    "txn.marker_written",
                    "a transaction marker was written in a partition"
                );
                0
            }
            Ok(Err(LogError::NoOpenTransaction)) => 0,
            Ok(Err(e)) => crate::api::log_error_code(&e),
            Err(_) => ResponseError::UnknownServerError.code(),
        }
    }

    pub fn coordinator_of(&self, group: &str) -> Option<i32> {
        self.cluster.owner(&groups::coordinator_key(group), 0)
    }

    /// The group, if this broker coordinates it; opened (and its chain
    /// claimed) on first use.
    pub async fn group(&self, name: &str) -> Result<Arc<Group>, i16> {
        if self.coordinator_of(name) != Some(self.cfg.node_id) {
            return Err(ResponseError::NotCoordinator.code());
        }
        let open = Group::open(name, &self.log_options);
        self.groups.get_or_open(name, open).await
    }

    /// The partition logs this broker has open now.
    fn open_logs(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Bounds how long an open log can miss commits made by another broker
    /// (ownership may have moved away and back): to one heartbeat.
    async fn verify_open_logs(&self) {
        let open = self.open_logs();
        for log in open {
            if let Err(e) = log.verify_tail().await {
                tracing::info!(topic_id = %log.topic_id, partition = log.partition, error = %e,
                    "tail check failed");
            }
        }
    }

    fn release_unowned(&self) {
        let topics: BTreeMap<String, String> = self
            .catalog
            .all()
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|(id, p), log| {
            let keep = !log.is_closed()
                && topics
                    .get(id)
                    .is_some_and(|name| self.cluster.owns(name, *p));
            if !keep {
                riptide_coverage::reached!(
                    "broker.partition_released",
                    "a broker let go of a partition that moved to another owner"
                );
                log.close();
                tracing::info!(topic_id = %id, partition = p, "released partition");
            }
            keep
        });
    }

    fn forget_topic(&self, topic_id: &str) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|(id, _), log| {
            if id == topic_id {
                log.close();
            }
            id != topic_id
        });
    }

    /// The open log of a partition this broker owns.
    pub async fn log(
        &self,
        topic: &TopicMeta,
        partition: i32,
    ) -> Result<Arc<PartitionLog>, LogError> {
        if !self.cluster.owns(&topic.name, partition) {
            riptide_coverage::reached!(
                "broker.not_owner",
                "a broker refused a produce or fetch for a partition it does not own"
            );
            return Err(LogError::Fenced);
        }
        let log = {
            let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            let key = (topic.id.clone(), partition);
            match logs.get(&key) {
                Some(l) if !l.is_closed() => l.clone(),
                _ => {
                    let l = PartitionLog::new(&topic.id, partition, &self.log_options);
                    logs.insert(key, l.clone());
                    l
                }
            }
        };
        log.open().await?;
        Ok(log)
    }

    pub fn new_producer_id(&self) -> i64 {
        (self.log_options.ids.next_u64() >> 2) as i64
    }

    /// Deletes a topic: its object first (clients stop seeing it), then its
    /// log, best effort.
    pub async fn delete_topic(&self, name: &str) -> object_store::Result<Option<TopicMeta>> {
        let meta = self.catalog.delete(name).await?;
        if let Some(m) = &meta {
            self.forget_topic(&m.id);
            for prefix in [topic_log_prefix(&m.id), config_prefix(&m.id)] {
                let paths = self
                    .store
                    .list(Some(&prefix))
                    .map(|r| r.map(|m| m.location))
                    .boxed();
                let mut deleted = self.store.delete_stream(paths);
                while let Some(r) = deleted.next().await {
                    if let Err(e) = r {
                        tracing::warn!(topic = %name, error = %e, "could not delete log object");
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Leaves the cluster so others take over at once.
    pub async fn shutdown(&self) {
        self.shutdown.notify_waiters();
        if let Err(e) = self.cluster.leave().await {
            tracing::warn!(error = %e, "could not remove heartbeat");
        }
    }
}
