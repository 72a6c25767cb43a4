//! Transaction coordinators (Kafka's exactly-once).
//!
//! The coordinator of transactional id T is the owner of the pseudo-partition `__txn/T`
//! (rendezvous hashing, as for groups), so coordinators spread over brokers and move when one
//! dies. T's state lives in its own commit chain (`log/x-{hex}/0`), written and fenced exactly
//! like a partition's log: each change is one record holding the whole state, the last one
//! wins on replay, and a coordinator that lost T cannot write.
//!
//! The commit point of a transaction is the durable `prepare-commit` record. After it the
//! coordinator asks each partition's owner to write a marker (WriteTxnMarkers, or directly when
//! it owns the partition) and each group's coordinator to apply the offsets committed in the
//! transaction, then records `complete-commit`. A coordinator that dies in between leaves a
//! `prepare-*` record; whoever opens T next finishes the markers. Markers are idempotent: an
//! owner with no open transaction of the producer writes nothing.
//!
//! Asserted (`always!`, `txn.*`): the records of T's chain parse, and its producer epoch
//! never goes back while the producer id stays.

use crate::broker::Broker;
use crate::groups;
use crate::storage::log::{LogError, LogOptions, PartitionLog};
use riptide_coverage::{always, reached};
use riptide_wire::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Mutex;

/// How often timeouts and unfinished markers are looked at.
const TICK: Duration = Duration::from_millis(100);
/// Kafka's bound on `transaction.timeout.ms` (`transaction.max.timeout.ms`).
pub const MAX_TIMEOUT_MS: i32 = 15 * 60 * 1000;

/// The pseudo-topic whose partition 0 decides a transactional id's coordinator.
pub fn coordinator_key(transactional_id: &str) -> String {
    format!("__txn/{transactional_id}")
}

/// The id under which a transactional id's chain is stored (`log/{id}/0/...`).
pub fn log_id(transactional_id: &str) -> String {
    let hex: String = transactional_id
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("x-{hex}")
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Initialised; no transaction open.
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl Status {
    fn is_prepared(self) -> bool {
        matches!(self, Status::PrepareCommit | Status::PrepareAbort)
    }
}

/// A transactional id's whole state: one record of its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub status: Status,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets it commits.
    pub groups: BTreeSet<String>,
    /// When it began (the broker clock, ms); timeouts count from here.
    pub started_ms: i64,
    /// KIP-890 part 2 (EndTxn v5): the epoch the ending transaction ran under, when its end
    /// bumped the epoch. A retry of that EndTxn is answered from here; any other request of
    /// that epoch (a delayed EndTxn above all) is fenced instead of acting on the next
    /// transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_epoch: Option<i16>,
}

impl TxnMeta {
    fn ended(&self, commit: bool) -> TxnMeta {
        TxnMeta {
            status: if commit {
                Status::CompleteCommit
            } else {
                Status::CompleteAbort
            },
            ..self.clone()
        }
    }
}

/// A transaction's marker to deliver: its producer, the marker's epoch, commit or abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The sending coordinator's epoch (its chain's claim epoch): partitions and groups refuse
    /// markers from a coordinator older than one that already marked the producer.
    pub coordinator_epoch: i32,
}

pub struct TxnCoordinator {
    pub id: String,
    state: Mutex<Option<TxnMeta>>,
    log: Arc<PartitionLog>,
    /// This opening's claim epoch of the chain: higher than every earlier coordinator's.
    epoch: i32,
}

fn error(e: ResponseError) -> i16 {
    e.code()
}

impl TxnCoordinator {
    /// Opens the chain (claiming it fences any previous coordinator), replays it, and starts
    /// the ticker that aborts timed-out transactions and finishes prepared ones.
    pub async fn open(
        id: &str,
        opts: &LogOptions,
        broker: Weak<Broker>,
    ) -> Result<Arc<TxnCoordinator>, LogError> {
        let log = PartitionLog::new(&log_id(id), 0, opts);
        log.open().await?;
        let mut state: Option<TxnMeta> = None;
        let records = log.records().await?;
        if !records.is_empty() {
            reached!(
                "txn.coordinator_opened_with_history",
                "a transaction coordinator opened a transactional id another had written"
            );
        }
        for r in records {
            let parsed = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<TxnMeta>(v).ok());
            always!(
                parsed.is_some(),
                "txn.records_well_formed",
                "every record of a transactional id's chain is a state that parses",
                "transactional id {id}: record {:?}",
                r.value
            );
            if let (Some(before), Some(after)) = (&state, &parsed) {
                always!(
                    after.producer_id != before.producer_id || after.epoch >= before.epoch,
                    "txn.epoch_never_decreases",
                    "a transactional id's producer epoch never goes back while its producer id stays",
                    "transactional id {id}: epoch {} after {}",
                    after.epoch,
                    before.epoch
                );
            }
            if parsed.is_some() {
                state = parsed;
            }
        }
        let epoch = log.writer_epoch().await.unwrap_or(0);
        let c = Arc::new(TxnCoordinator {
            id: id.to_string(),
            state: Mutex::new(state),
            log,
            epoch: i32::try_from(epoch).unwrap_or(i32::MAX),
        });
        let ticker = Arc::downgrade(&c);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let (Some(c), Some(b)) = (ticker.upgrade(), broker.upgrade()) else {
                    return;
                };
                if c.is_closed() {
                    return;
                }
                c.tick(&b).await;
            }
        });
        Ok(c)
    }

    pub fn is_closed(&self) -> bool {
        self.log.is_closed()
    }

    pub fn close(&self) {
        self.log.close();
    }

    /// Notices a coordinator that took the transactional id over behind our back.
    pub async fn verify(&self) {
        if let Err(e) = self.log.verify_tail().await {
            tracing::info!(transactional_id = %self.id, error = %e, "txn chain check failed");
            if matches!(e, LogError::Fenced) {
                self.close();
            }
        }
    }

    /// Makes `meta` durable. On any failure the coordinator closes: its memory may no longer
    /// match the chain (an unknown outcome), so the next request reopens it from the chain.
    async fn persist(&self, state: &mut Option<TxnMeta>, meta: TxnMeta) -> Result<(), i16> {
        let value =
            serde_json::to_string(&meta).map_err(|_| error(ResponseError::UnknownServerError))?;
        let batches = groups::encode(vec![groups::record("txn".into(), value)]).map_err(|e| {
            tracing::error!(transactional_id = %self.id, error = %e, "could not encode txn state");
            error(ResponseError::UnknownServerError)
        })?;
        tracing::debug!(transactional_id = %self.id, producer_id = meta.producer_id,
            epoch = meta.epoch, status = ?meta.status, partitions = ?meta.partitions, "txn state");
        match self.log.append(batches).await {
            Ok(Ok(_)) => {
                *state = Some(meta);
                Ok(())
            }
            Ok(Err(LogError::Fenced)) => {
                reached!(
                    "txn.coordinator_fenced",
                    "a transaction coordinator found its transactional id taken over by another"
                );
                self.close();
                Err(error(ResponseError::NotCoordinator))
            }
            other => {
                reached!(
                    "txn.state_not_durable",
                    "a transaction state change could not be made durable (store error or unknown outcome)"
                );
                tracing::info!(transactional_id = %self.id, outcome = ?other.map(|r| r.map(|_| ())),
                    "txn state write failed; closing coordinator");
                self.close();
                Err(error(ResponseError::CoordinatorNotAvailable))
            }
        }
    }

    /// InitProducerId: ends whatever the previous producer left open (aborting an open
    /// transaction, finishing a prepared one), then bumps the epoch, which fences that
    /// producer everywhere it writes next.
    pub async fn init(
        &self,
        b: &Broker,
        timeout_ms: i32,
        hint: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(error(ResponseError::InvalidTransactionTimeout));
        }
        let mut state = self.state.lock().await;
        let Some(mut meta) = state.clone() else {
            let meta = TxnMeta {
                producer_id: b.new_producer_id(),
                epoch: 0,
                timeout_ms,
                status: Status::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                started_ms: b.clock.now_ms(),
                last_epoch: None,
            };
            let out = (meta.producer_id, meta.epoch);
            self.persist(&mut state, meta).await?;
            return Ok(out);
        };
        if let Some((pid, epoch)) = hint {
            if pid != meta.producer_id || epoch > meta.epoch {
                return Err(error(ResponseError::InvalidProducerEpoch));
            }
        }
        if meta.status == Status::Ongoing {
            reached!(
                "txn.init_aborted_open_transaction",
                "a producer (re)initialised while its transactional id had a transaction open: it was aborted"
            );
            let prepared = TxnMeta {
                epoch: meta.epoch + 1,
                status: Status::PrepareAbort,
                last_epoch: None,
                ..meta.clone()
            };
            self.persist(&mut state, prepared.clone()).await?;
            meta = prepared;
        }
        if meta.status.is_prepared() && !self.finish(b, &mut state).await? {
            return Err(error(ResponseError::ConcurrentTransactions));
        }
        let meta = state.clone().unwrap_or(meta);
        let next = if meta.epoch >= i16::MAX - 1 {
            TxnMeta {
                producer_id: b.new_producer_id(),
                epoch: 0,
                ..meta
            }
        } else {
            TxnMeta {
                epoch: meta.epoch + 1,
                ..meta
            }
        };
        let next = TxnMeta {
            timeout_ms,
            status: Status::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            last_epoch: None,
            ..next
        };
        let out = (next.producer_id, next.epoch);
        self.persist(&mut state, next).await?;
        Ok(out)
    }

    /// The state checks every request of the producer shares.
    fn current(state: &Option<TxnMeta>, pid: i64, epoch: i16) -> Result<TxnMeta, i16> {
        let Some(meta) = state.clone() else {
            return Err(error(ResponseError::InvalidProducerIdMapping));
        };
        if meta.producer_id != pid {
            return Err(error(ResponseError::InvalidProducerIdMapping));
        }
        if meta.epoch != epoch {
            reached!(
                "txn.stale_epoch_refused",
                "a transactional request of a fenced producer epoch was refused"
            );
            return Err(error(ResponseError::InvalidProducerEpoch));
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn: the transaction now spans these partitions and
    /// groups, durably, before any of them takes its data.
    pub async fn add(
        &self,
        b: &Broker,
        pid: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        groups: &[String],
    ) -> Result<(), i16> {
        let mut state = self.state.lock().await;
        let meta = Self::current(&state, pid, epoch)?;
        if meta.status.is_prepared() {
            reached!(
                "txn.add_while_ending",
                "a producer began its next transaction while the last one's markers were still being written"
            );
            return Err(error(ResponseError::ConcurrentTransactions));
        }
        let open = meta.status == Status::Ongoing;
        let known = open
            && partitions.iter().all(|p| meta.partitions.contains(p))
            && groups.iter().all(|g| meta.groups.contains(g));
        if known {
            return Ok(());
        }
        let mut next = if open {
            meta
        } else {
            TxnMeta {
                status: Status::Ongoing,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                started_ms: b.clock.now_ms(),
                ..meta
            }
        };
        next.partitions.extend(partitions.iter().cloned());
        next.groups.extend(groups.iter().cloned());
        self.persist(&mut state, next).await
    }

    /// KIP-890: whether the producer's open transaction holds the partition. A partition owner
    /// asks before it takes the transaction's first batch there.
    pub async fn verify_partition(&self, pid: i64, epoch: i16, partition: &(String, i32)) -> i16 {
        let state = self.state.lock().await;
        // Not from memory alone: another coordinator may have ended the transaction meanwhile,
        // and a batch let in now would open a transaction nobody ends.
        if self.log.verify_tail_now().await.is_err() || self.is_closed() {
            self.close();
            return error(ResponseError::NotCoordinator);
        }
        match Self::current(&state, pid, epoch) {
            Err(c) => c,
            Ok(m) if m.status == Status::Ongoing && m.partitions.contains(partition) => 0,
            Ok(_) => {
                reached!(
                    "txn.verification_refused",
                    "a partition asked whether a transaction holds it and the coordinator said no"
                );
                error(ResponseError::InvalidTxnState)
            }
        }
    }

    /// EndTxn. The durable prepare record decides; the markers follow (here if they can be
    /// written now, else from the ticker or the next coordinator). With `bump` (EndTxn v5,
    /// KIP-890 part 2) the end moves the producer to the next epoch, which the answer carries:
    /// the markers are written with it, so nothing of the ended transaction's epoch (a late
    /// produce, a delayed EndTxn) can act on the producer's next transaction.
    pub async fn end(
        &self,
        b: &Broker,
        pid: i64,
        epoch: i16,
        commit: bool,
        bump: bool,
    ) -> Result<(i64, i16), i16> {
        let mut state = self.state.lock().await;
        let (prepare, complete) = if commit {
            (Status::PrepareCommit, Status::CompleteCommit)
        } else {
            (Status::PrepareAbort, Status::CompleteAbort)
        };
        let meta = match Self::current(&state, pid, epoch) {
            Ok(meta) => meta,
            Err(code) => {
                let retried = state.clone().filter(|m| {
                    bump && m.producer_id == pid
                        && m.last_epoch == Some(epoch)
                        && (m.status == prepare || m.status == complete)
                });
                let Some(m) = retried else { return Err(code) };
                reached!(
                    "txn.end_retried_after_bump",
                    "an EndTxn v5 came again after its first attempt ended the transaction and bumped the epoch"
                );
                let _ = self.finish(b, &mut state).await;
                return Ok((m.producer_id, m.epoch));
            }
        };
        match meta.status {
            Status::Ongoing => {
                let next = if bump {
                    // At the top of the range the producer must initialise again (a new id).
                    if meta.epoch >= i16::MAX - 1 {
                        return Err(error(ResponseError::InvalidProducerEpoch));
                    }
                    TxnMeta {
                        status: prepare,
                        epoch: meta.epoch + 1,
                        last_epoch: Some(meta.epoch),
                        ..meta
                    }
                } else {
                    TxnMeta {
                        status: prepare,
                        ..meta
                    }
                };
                self.persist(&mut state, next).await?;
            }
            // No transaction open in this epoch (it ended with a bump, or never began).
            _ if bump && !meta.status.is_prepared() => {
                return if commit {
                    Err(error(ResponseError::InvalidTxnState))
                } else {
                    Ok((meta.producer_id, meta.epoch))
                };
            }
            s if s == prepare || s == complete => {
                reached!(
                    "txn.end_retried",
                    "an EndTxn came again for a transaction already ending the same way"
                );
            }
            Status::Empty if !commit => return Ok((meta.producer_id, meta.epoch)),
            _ => return Err(error(ResponseError::InvalidTxnState)),
        }
        // Best effort: the producer's next transaction waits until these are written.
        let _ = self.finish(b, &mut state).await;
        let now = state
            .as_ref()
            .map_or((pid, epoch), |m| (m.producer_id, m.epoch));
        Ok(now)
    }

    /// Aborts a transaction open past its timeout, bumping the epoch so the producer is fenced.
    async fn tick(&self, b: &Broker) {
        let mut state = self.state.lock().await;
        let Some(meta) = state.clone() else { return };
        if meta.status == Status::Ongoing
            && b.clock.now_ms() > meta.started_ms + i64::from(meta.timeout_ms)
        {
            reached!(
                "txn.timed_out",
                "a transaction open past its timeout was aborted by its coordinator"
            );
            tracing::info!(transactional_id = %self.id, producer_id = meta.producer_id,
                "transaction timed out; aborting");
            let prepared = TxnMeta {
                epoch: meta.epoch.saturating_add(1),
                status: Status::PrepareAbort,
                // Not the producer's own end: none of its requests is a retry of this one.
                last_epoch: None,
                ..meta
            };
            if self.persist(&mut state, prepared).await.is_err() {
                return;
            }
        }
        if state.as_ref().is_some_and(|m| m.status.is_prepared()) {
            let _ = self.finish(b, &mut state).await;
        }
    }

    /// Writes the markers of a prepared transaction, then records it complete. `Ok(false)` if
    /// some marker could not be written yet (retried later).
    async fn finish(&self, b: &Broker, state: &mut Option<TxnMeta>) -> Result<bool, i16> {
        let Some(meta) = state.clone().filter(|m| m.status.is_prepared()) else {
            return Ok(true);
        };
        let marker = Marker {
            producer_id: meta.producer_id,
            epoch: meta.epoch,
            commit: meta.status == Status::PrepareCommit,
            coordinator_epoch: self.epoch,
        };
        let partitions: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
        let groups: Vec<String> = meta.groups.iter().cloned().collect();
        if !b.deliver_markers(marker, &partitions, &groups).await {
            reached!(
                "txn.markers_pending",
                "some marker of a decided transaction could not be written yet: retried later"
            );
            return Ok(false);
        }
        self.persist(state, meta.ended(marker.commit)).await?;
        reached!(
            "txn.completed",
            "a transaction's markers were all written and it was recorded complete"
        );
        Ok(true)
    }
}

impl crate::coordinators::Coordinator for TxnCoordinator {
    fn is_closed(&self) -> bool {
        TxnCoordinator::is_closed(self)
    }
    fn close(&self) {
        TxnCoordinator::close(self)
    }
    async fn verify(&self) {
        TxnCoordinator::verify(self).await
    }
}
