//! One partition's log: a chain of commit objects in object storage.
//!
//! Invariants (see `docs/storage.md`):
//! - commit `seq` is written with create-if-absent and only once `seq - 1` is
//!   known, so every reader sees the same chain; its base offset is the end of
//!   `seq - 1`, so offsets are contiguous from 0 and never reused;
//! - data and offsets are one object, so an acknowledged record is durable;
//! - an owner first appends a fence (an empty commit with a higher epoch);
//!   a writer that finds a higher epoch in the chain is fenced and stops.
//!
//! These are asserted where the state changes (`always!`, named `log.*`): a broken one is a
//! finding in the simulator and an error line plus a count in a real broker, and the code goes
//! on as it did before (a corrupt chain still answers `Corrupt`).

use super::checkpoint::{self, Checkpoint};
use super::commit::{self, CommitHeader, ProducerEntry, TxnBegin, TxnEnd, TxnFence};
use super::producers::{Producers, Verdict};
use super::{
    checkpoint_path, checkpoint_prefix, checkpoint_seq, commit_path, commit_seq, log_prefix,
};
use crate::batch::{self, BatchHeader};
use crate::bugs::Bug;
use crate::env::Ids;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use riptide_coverage::{always, reached};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How long one object-store call may take before its outcome counts as unknown.
const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read to get a commit header in one request (headers are ~200 bytes).
const HEADER_PROBE: u64 = 512;
/// An owner writes a checkpoint once the chain has grown this many commits past the last one,
/// so opening reads at most about this many headers after it.
pub const CHECKPOINT_EVERY: u64 = 64;
/// Checkpoints kept; older ones are deleted once a newer one is written. Opening falls back to
/// an older one when the newest fails its checks.
const CHECKPOINTS_KEPT: usize = 3;
/// Headers read at once while following the chain past a checkpoint: what opening spends past
/// the chain's end.
const PROBE_WINDOW: u64 = 16;
/// After a checkpoint write fails, the next is tried 1, 2, 4, ... commits later, at most this
/// many: soon enough to keep opening cheap after a passing store fault, and a store that keeps
/// failing sees at most one checkpoint PUT per this many commits.
const CHECKPOINT_RETRY_MAX: u64 = 16;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LogError {
    /// Another broker owns the partition now (it wrote a higher epoch).
    #[error("fenced: another broker owns this partition")]
    Fenced,
    /// The object store failed or timed out; the outcome of a write is unknown.
    #[error("object store: {0}")]
    Store(String),
    /// The chain in the store does not have the shape the invariants promise.
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// An idempotent producer's batch does not follow its last one.
    #[error("out-of-order sequence number")]
    OutOfOrderSequence,
    /// An idempotent producer's epoch is older than the partition has seen.
    #[error("producer epoch is stale")]
    ProducerFenced,
    /// A transaction marker from a coordinator older than one that already marked the producer.
    #[error("transaction coordinator fenced")]
    CoordinatorFenced,
    /// A transactional batch the partition cannot take: its transaction was not verified with
    /// the coordinator, or ended (a marker came) since; or a plain batch from a producer whose
    /// transaction is open here.
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// A marker for a producer with no open transaction here: nothing to write.
    #[error("no open transaction")]
    NoOpenTransaction,
    /// An offset outside the log: a read below its start, or records deleted past its end.
    #[error("offset out of range")]
    OffsetOutOfRange,
}

impl From<object_store::Error> for LogError {
    fn from(e: object_store::Error) -> Self {
        LogError::Store(e.to_string())
    }
}

/// A data commit, as the in-memory index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRef {
    pub seq: u64,
    pub base_offset: i64,
    pub records: i64,
    pub max_timestamp: i64,
    pub data_len: u64,
}

impl CommitRef {
    fn end(&self) -> i64 {
        self.base_offset + self.records
    }
}

/// What readers see; updated only after a commit is durable.
#[derive(Default)]
struct Index {
    hwm: i64,
    commits: Vec<CommitRef>,
    /// The epoch and writer of the last commit applied (data or fence).
    tail: Option<(u64, i32)>,
    txns: TxnIndex,
    /// The first offset a reader may fetch.
    log_start: i64,
    /// The commit after the last one applied.
    end_seq: u64,
}

/// A partition's transactions, rebuilt from commit headers.
#[derive(Debug, Clone, Default)]
pub struct TxnIndex {
    /// Open transactions: producer id → the offset of its first record here.
    pub ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so sorted by `last_offset`).
    pub aborted: Vec<AbortedTxn>,
    /// Of the open ones: transactional id and when it began here, where the begin says.
    pub origins: BTreeMap<i64, (String, i64)>,
    /// Each producer's newest transaction coordinator epoch among its markers here. A marker
    /// from an older coordinator (one that lost the transactional id and still delivers the
    /// markers of a transaction the new one already finished) is refused: it would end the
    /// producer's next transaction instead.
    pub coordinators: BTreeMap<i64, i32>,
}

/// An aborted transaction's records here: from its first record to its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

impl TxnIndex {
    /// The last stable offset: below it every transaction has ended.
    pub fn last_stable(&self, hwm: i64) -> i64 {
        self.ongoing.values().copied().min().unwrap_or(hwm).min(hwm)
    }

    /// Aborted transactions with records in `from..to`.
    pub fn aborted_in(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }
}

/// The writer's view of the chain's tail.
struct Writer {
    epoch: u64,
    next_seq: u64,
    /// The last write's outcome is unknown: re-read the tail before writing.
    unsure: bool,
    producers: Producers,
    /// When our last write that landed was sent: a slot after it cannot have been deleted
    /// before `delete_delay` after this (see [`PartitionLog::collect_garbage`]).
    confirmed_at: tokio::time::Instant,
}

struct Pending {
    batches: Vec<(BatchHeader, Bytes)>,
    bytes: usize,
    kind: Item,
    /// Transactional batches: the transactional id and the clock (ms) when they came.
    origin: Option<(String, i64)>,
    done: oneshot::Sender<Result<i64, LogError>>,
}

/// What a queued append is.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// Produced batches. `guard`: the producer's marker guard when its transaction was verified
    /// with the coordinator (KIP-890): a transaction may begin here only if no marker for the
    /// producer came since.
    Data { guard: Option<u64> },
    /// Moves the log start offset up to `offset` (DeleteRecords, retention).
    Trim { offset: i64 },
    /// A transaction marker (one control batch).
    Marker {
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    },
}

/// What the owner knows about deleting the objects below the log start.
#[derive(Default)]
struct Gc {
    /// Commits below this are deleted (as far as this broker knows).
    done: u64,
    /// Each time the first commit a reader may need moved up: to which commit, and when this
    /// broker saw it. Objects below are deleted `delete_delay` after.
    seen: VecDeque<(u64, tokio::time::Instant)>,
    /// Commits below this may be deleted now.
    due: u64,
    running: bool,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    committer_running: bool,
}

/// Commit objects kept in memory. Only a cache: a miss reads the store.
pub struct Cache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Default)]
struct CacheInner {
    map: BTreeMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Cache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }
    fn get(&self, key: &str) -> Option<Bytes> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }
    fn put(&self, key: String, value: Bytes) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if value.len() > self.capacity || c.map.contains_key(&key) {
            return;
        }
        c.bytes += value.len();
        c.order.push_back(key.clone());
        c.map.insert(key, value);
        while c.bytes > self.capacity {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(v) = c.map.remove(&old) {
                c.bytes -= v.len();
            }
        }
    }
}

pub struct PartitionLog {
    pub topic_id: String,
    pub partition: i32,
    node_id: i32,
    store: Arc<dyn ObjectStore>,
    ids: Arc<Ids>,
    cache: Arc<Cache>,
    /// Woken after every commit, so long-polling fetches can re-check.
    appended: Arc<Notify>,
    max_commit_bytes: usize,
    delete_delay: Duration,
    gc: Mutex<Gc>,
    bug: Option<Bug>,
    index: RwLock<Index>,
    writer: tokio::sync::Mutex<Option<Writer>>,
    open: AtomicBool,
    /// Set when ownership is lost; pending and future writes fail.
    closed: AtomicBool,
    queue: Mutex<Queue>,
    /// Per producer, how many marker requests came (in memory: it orders a verification
    /// against markers that arrive while the verified batch waits, on this broker only).
    guards: Mutex<BTreeMap<i64, u64>>,
    /// Commits covered by the checkpoints in the store, oldest first, as far as this broker knows.
    checkpoints: Arc<Mutex<Vec<u64>>>,
    /// The owner's checkpoint writes: what landed, what is in flight, what failed.
    checkpointing: Arc<Mutex<Checkpointing>>,
}

/// When the owner writes its next checkpoint. What landed is recorded only once the write's
/// outcome is known, so a failed write does not count as a checkpoint; one write at a time.
#[derive(Debug, Default)]
struct Checkpointing {
    /// The newest checkpoint known to be in the store (0 before the first).
    landed: u64,
    /// A write is in flight: no other starts until its outcome is known.
    in_flight: bool,
    /// Writes failed since the last that landed, and the commit the last failed one was of.
    failures: u32,
    failed_at: u64,
}

impl Checkpointing {
    /// Whether a checkpoint of commit `seq` is due now.
    fn due(&self, seq: u64) -> bool {
        if self.in_flight {
            return false;
        }
        let next = if self.failures == 0 {
            self.landed + CHECKPOINT_EVERY
        } else {
            let backoff = 1u64 << (self.failures - 1).min(16);
            self.failed_at + backoff.min(CHECKPOINT_RETRY_MAX)
        };
        seq >= next
    }

    /// The outcome of the write of checkpoint `seq`.
    fn finished(&mut self, seq: u64, landed: bool) {
        self.in_flight = false;
        if landed {
            self.landed = self.landed.max(seq);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.failed_at = seq;
        }
    }
}

pub struct LogOptions {
    pub node_id: i32,
    pub bug: Option<crate::bugs::Bug>,
    pub store: Arc<dyn ObjectStore>,
    pub ids: Arc<Ids>,
    pub cache: Arc<Cache>,
    pub appended: Arc<Notify>,
    pub max_commit_bytes: usize,
    /// How long objects below the log start are kept before they are deleted.
    pub delete_delay: Duration,
}

async fn timed<T>(
    fut: impl std::future::Future<Output = object_store::Result<T>>,
) -> Result<T, LogError> {
    match tokio::time::timeout(STORE_CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(LogError::from),
        Err(_) => Err(LogError::Store("object store call timed out".into())),
    }
}

impl PartitionLog {
    pub fn new(topic_id: &str, partition: i32, o: &LogOptions) -> Arc<Self> {
        Arc::new(PartitionLog {
            topic_id: topic_id.to_string(),
            partition,
            node_id: o.node_id,
            store: o.store.clone(),
            ids: o.ids.clone(),
            cache: o.cache.clone(),
            appended: o.appended.clone(),
            max_commit_bytes: o.max_commit_bytes,
            delete_delay: o.delete_delay,
            gc: Mutex::new(Gc::default()),
            bug: o.bug,
            index: RwLock::new(Index::default()),
            writer: tokio::sync::Mutex::new(None),
            open: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            guards: Mutex::new(BTreeMap::new()),
            checkpoints: Arc::new(Mutex::new(Vec::new())),
            checkpointing: Arc::new(Mutex::new(Checkpointing::default())),
        })
    }

    fn key(&self, seq: u64) -> String {
        format!("{}/{}/{}", self.topic_id, self.partition, seq)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops writing: this broker no longer owns the partition.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn high_watermark(&self) -> i64 {
        self.index.read().unwrap_or_else(|e| e.into_inner()).hwm
    }

    /// The log start offset: the first offset a reader may fetch.
    pub fn log_start(&self) -> i64 {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .log_start
    }

    /// Queues a move of the log start up to `offset` (DeleteRecords, retention). The receiver
    /// yields the log start once it is durable, or `OffsetOutOfRange` past the log's end.
    pub fn trim_to(self: &Arc<Self>, offset: i64) -> oneshot::Receiver<Result<i64, LogError>> {
        self.enqueue(vec![], Item::Trim { offset }, None)
    }

    /// The last stable offset: the first offset of the oldest open transaction, else the high
    /// watermark. read_committed consumers read below it only.
    pub fn last_stable_offset(&self) -> i64 {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        let lso = idx.txns.last_stable(idx.hwm);
        if self.bug == Some(Bug::LsoOffByOne) && lso < idx.hwm {
            return lso + 1;
        }
        lso
    }

    /// The high watermark, the last stable offset, and the aborted transactions with records
    /// in `from..to`, read together.
    pub fn txn_view(&self, from: i64, to: i64) -> (i64, i64, Vec<AbortedTxn>) {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        (
            idx.hwm,
            idx.txns.last_stable(idx.hwm),
            idx.txns.aborted_in(from, to),
        )
    }

    /// Whether `producer_id` has an open transaction here.
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.txns.ongoing.contains_key(&producer_id)
    }

    /// The producer's marker guard now: taken before verifying its transaction with the
    /// coordinator, handed to [`PartitionLog::append_transactional`].
    pub fn txn_guard(&self, producer_id: i64) -> u64 {
        let g = self.guards.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&producer_id).copied().unwrap_or(0)
    }

    /// Loads the chain and claims ownership with a fence. Idempotent.
    pub async fn open(&self) -> Result<(), LogError> {
        if self.open.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut w = self.writer.lock().await;
        if w.is_some() {
            return Ok(());
        }
        if self.is_closed() {
            return Err(LogError::Fenced);
        }
        let (next_seq, max_epoch, producers, checkpointed) = self.load().await?;
        *self.checkpointing.lock().unwrap_or_else(|e| e.into_inner()) = Checkpointing {
            landed: checkpointed,
            ..Checkpointing::default()
        };
        let mut writer = Writer {
            epoch: max_epoch + 1,
            next_seq,
            unsure: false,
            producers,
            confirmed_at: tokio::time::Instant::now(),
        };
        self.claim(&mut writer).await?;
        *w = Some(writer);
        self.open.store(true, Ordering::Release);
        Ok(())
    }

    /// The epoch this log was claimed with (`None` before `open`): a coordinator's own epoch.
    pub async fn writer_epoch(&self) -> Option<u64> {
        self.writer.lock().await.as_ref().map(|w| w.epoch)
    }

    /// Rebuilds the index: from the newest checkpoint that passes its checks and the commits
    /// after it, else from every commit of the chain. Returns the next free sequence number, the
    /// highest epoch seen, the producers' state, and the newest checkpoint's commit.
    async fn load(&self) -> Result<(u64, u64, Producers, u64), LogError> {
        let mut index = Index::default();
        let mut producers = Producers::default();
        producers.lenient = self.bug == Some(Bug::LoseProducerState);
        producers.ignore_epoch = self.bug == Some(Bug::EpochBumpIgnored);
        let (mut next_seq, mut max_epoch, mut checkpointed) = (0, 0, 0);
        let headers = match self.newest_checkpoint().await? {
            Some(c) => {
                reached!(
                    "log.opened_from_checkpoint",
                    "a broker opened a log from a checkpoint and the commits after it"
                );
                (next_seq, checkpointed) = (c.seq + 1, c.seq);
                self.gc.lock().unwrap_or_else(|e| e.into_inner()).done = c.collected_below;
                max_epoch = c.tail.map_or(0, |(epoch, _)| epoch);
                if self.bug != Some(Bug::LoseProducerState) {
                    producers.learn(&c.producers);
                }
                index = restore(c);
                self.follow(next_seq).await?
            }
            None => self.listed().await?,
        };
        if !headers.is_empty() {
            reached!(
                "log.open_existing_chain",
                "a broker opened a log that already had commits (a take-over or a restart)"
            );
        }
        for (seq, h) in headers {
            if !always!(
                h.seq == next_seq && seq == next_seq,
                "log.chain_has_no_holes",
                "the commits of a chain are numbered 0, 1, 2, ... with no hole, each naming its own number",
                "{}/{}: commit {next_seq} expected, found object {seq} naming commit {}",
                self.topic_id,
                self.partition,
                h.seq
            ) {
                return Err(LogError::Corrupt(format!(
                    "chain breaks at commit {next_seq}"
                )));
            }
            apply(&mut index, &h)?;
            if self.bug != Some(Bug::LoseProducerState) {
                producers.learn(&h.producers);
            }
            max_epoch = max_epoch.max(h.epoch);
            next_seq += 1;
        }
        if self.bug == Some(Bug::LogStartForgotten) {
            index.log_start = 0;
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok((next_seq, max_epoch, producers, checkpointed))
    }

    /// Every commit of the chain, listed: how a chain without a usable checkpoint is opened.
    async fn listed(&self) -> Result<Vec<(u64, CommitHeader)>, LogError> {
        let listed: Vec<_> = timed(
            self.store
                .list(Some(&log_prefix(&self.topic_id, self.partition)))
                .try_collect(),
        )
        .await?;
        let mut seqs: Vec<u64> = listed
            .iter()
            .filter_map(|m| commit_seq(&m.location))
            .collect();
        seqs.sort_unstable();
        let headers: Vec<Option<CommitHeader>> = futures::stream::iter(seqs.iter().copied())
            .map(|seq| self.read_header(seq))
            .buffered(16)
            .try_collect()
            .await?;
        seqs.into_iter()
            .zip(headers)
            .map(|(seq, h)| {
                h.map(|h| (seq, h))
                    .ok_or_else(|| LogError::Corrupt(format!("commit {seq} listed but missing")))
            })
            .collect()
    }

    /// The commits from `from` to the chain's end, read a window at a time without listing.
    async fn follow(&self, from: u64) -> Result<Vec<(u64, CommitHeader)>, LogError> {
        let mut out = Vec::new();
        let mut seq = from;
        loop {
            let window: Vec<Option<CommitHeader>> = futures::stream::iter(seq..seq + PROBE_WINDOW)
                .map(|s| self.read_header(s))
                .buffered(PROBE_WINDOW as usize)
                .try_collect()
                .await?;
            for h in window {
                let Some(h) = h else { return Ok(out) };
                out.push((seq, h));
                seq += 1;
            }
        }
    }

    /// The newest checkpoint that passes its checks, trying older ones when one fails.
    async fn newest_checkpoint(&self) -> Result<Option<Checkpoint>, LogError> {
        let prefix = checkpoint_prefix(&self.topic_id, self.partition);
        let listed: Vec<_> = timed(self.store.list(Some(&prefix)).try_collect()).await?;
        let mut seqs: Vec<u64> = listed
            .iter()
            .filter_map(|m| checkpoint_seq(&m.location))
            .collect();
        seqs.sort_unstable();
        *self.checkpoints.lock().unwrap_or_else(|e| e.into_inner()) = seqs.clone();
        for &seq in seqs.iter().rev() {
            match self.read_checkpoint(seq).await? {
                Ok(c) => return Ok(Some(c)),
                Err(why) => {
                    reached!(
                        "log.checkpoint_rejected",
                        "a checkpoint failed its checks against the chain and opening fell back"
                    );
                    tracing::warn!(topic_id = %self.topic_id, partition = self.partition, seq,
                        reason = %why, "checkpoint not used");
                }
            }
        }
        Ok(None)
    }

    /// Checkpoint `seq`, if it is whole and agrees with the commit it names (outer `Err`: the
    /// store failed, so nothing is known either way).
    async fn read_checkpoint(&self, seq: u64) -> Result<Result<Checkpoint, String>, LogError> {
        let path = checkpoint_path(&self.topic_id, self.partition, seq);
        let fut = async { self.store.get(&path).await?.bytes().await };
        let bytes = match tokio::time::timeout(STORE_CALL_TIMEOUT, fut).await {
            Ok(Ok(b)) => b,
            Ok(Err(object_store::Error::NotFound { .. })) => {
                return Ok(Err("deleted since it was listed".into()))
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(LogError::Store("checkpoint read timed out".into())),
        };
        let c = match checkpoint::decode(&bytes) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if c.seq != seq {
            return Ok(Err(format!("names commit {} in the place of {seq}", c.seq)));
        }
        let Some(h) = self.read_header(seq).await? else {
            return Ok(Err(format!("its commit {seq} is not in the chain")));
        };
        if (h.write_id, h.end_offset(), Some((h.epoch, h.node_id))) != (c.write_id, c.hwm, c.tail) {
            return Ok(Err(format!(
                "commit {seq} is write {} ending at {} (epoch {}, broker {}), the checkpoint says write {} ending at {} ({:?})",
                h.write_id,
                h.end_offset(),
                h.epoch,
                h.node_id,
                c.write_id,
                c.hwm,
                c.tail
            )));
        }
        Ok(Ok(c))
    }

    /// After commit `seq` (ours, just applied): writes a checkpoint if the chain has grown
    /// `CHECKPOINT_EVERY` commits past the last one that landed, or sooner after a failed write
    /// (see [`Checkpointing`]). In the background: a checkpoint that is not written only makes
    /// the next opening read more headers.
    fn maybe_checkpoint(&self, w: &mut Writer, seq: u64, write_id: u64) {
        {
            let mut state = self.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
            if !state.due(seq) {
                return;
            }
            if state.failures > 0 {
                reached!(
                    "log.checkpoint_retried",
                    "an owner tried a checkpoint again soon after one failed to land"
                );
            }
            state.in_flight = true;
        }
        let c = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            let collected = self.gc.lock().unwrap_or_else(|e| e.into_inner()).done;
            snapshot(&idx, &w.producers, (seq, write_id), collected)
        };
        let path = checkpoint_path(&self.topic_id, self.partition, seq);
        let store = self.store.clone();
        let known = self.checkpoints.clone();
        let state = self.checkpointing.clone();
        let (topic_id, partition) = (self.topic_id.clone(), self.partition);
        tokio::spawn(async move {
            let put = store.put_opts(
                &path,
                checkpoint::encode(&c).into(),
                PutOptions::from(PutMode::Create),
            );
            let landed = match tokio::time::timeout(STORE_CALL_TIMEOUT, put).await {
                // Exists: the same commit's checkpoint (an earlier attempt whose reply was lost).
                Ok(Ok(_)) | Ok(Err(object_store::Error::AlreadyExists { .. })) => true,
                Ok(Err(e)) => {
                    tracing::info!(%topic_id, partition, seq, error = %e, "checkpoint not written");
                    false
                }
                Err(_) => {
                    tracing::info!(%topic_id, partition, seq, "checkpoint write timed out");
                    false
                }
            };
            state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finished(seq, landed);
            if !landed {
                return;
            }
            reached!(
                "log.checkpoint_written",
                "an owner wrote a checkpoint of its partition"
            );
            let stale: Vec<u64> = {
                let mut k = known.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(at) = k.binary_search(&seq) {
                    k.insert(at, seq);
                }
                let n = k.len().saturating_sub(CHECKPOINTS_KEPT);
                k[..n].to_vec()
            };
            for old in stale {
                let path = checkpoint_path(&topic_id, partition, old);
                if tokio::time::timeout(STORE_CALL_TIMEOUT, store.delete(&path))
                    .await
                    .is_ok_and(|r| r.is_ok())
                {
                    let mut k = known.lock().unwrap_or_else(|e| e.into_inner());
                    k.retain(|s| *s != old);
                }
            }
        });
    }

    /// After a write that landed at `seq` from a writer silent for a while: whether it landed in
    /// the chain, or in a slot the owner that replaced us deleted below the log start (where no
    /// reader will ever look). Deletion goes up one commit at a time, so a deleted slot has a
    /// deleted slot before it; the first slot has checkpoints beyond it. An orphan is removed,
    /// and the writer is fenced: its data is not acknowledged.
    async fn check_not_orphan(&self, seq: u64) -> Result<(), Created> {
        let in_chain = if seq == 0 {
            let prefix = checkpoint_prefix(&self.topic_id, self.partition);
            let listed: Result<Vec<_>, _> =
                timed(self.store.list(Some(&prefix)).try_collect()).await;
            listed.map(|l| l.is_empty())
        } else {
            let before = commit_path(&self.topic_id, self.partition, seq - 1);
            match tokio::time::timeout(STORE_CALL_TIMEOUT, self.store.head(&before)).await {
                Ok(Ok(_)) => Ok(true),
                Ok(Err(object_store::Error::NotFound { .. })) => Ok(false),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(LogError::Store("object store call timed out".into())),
            }
        };
        match in_chain {
            Ok(true) => Ok(()),
            Ok(false) => {
                reached!(
                    "log.orphan_write_refused",
                    "a writer silent for long wrote into a slot deleted below the log start: it removed the write and stopped"
                );
                tracing::warn!(topic_id = %self.topic_id, partition = self.partition, seq,
                    "wrote below the log start of a newer owner: fenced");
                let _ = timed(
                    self.store
                        .delete(&commit_path(&self.topic_id, self.partition, seq)),
                )
                .await;
                self.close();
                Err(Created::Failed(LogError::Fenced))
            }
            // Unknown: the write may be an orphan, so its outcome is unknown.
            Err(e) => Err(Created::Failed(e)),
        }
    }

    /// The offset retention moves the log start to, if it moves: past every leading commit
    /// whose newest record is older than `retention_ms`, or that `retention_bytes` leaves out,
    /// but never past an open transaction.
    pub fn expired_below(
        &self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
    ) -> Option<i64> {
        let retention_ms = match (self.bug, retention_ms) {
            (Some(Bug::EarlyRetention), Some(ms)) => Some(ms / 2),
            _ => retention_ms,
        };
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        let lso = idx.txns.last_stable(idx.hwm);
        let mut kept: u64 = idx.commits.iter().map(|c| c.data_len).sum();
        let mut point = idx.log_start;
        for c in &idx.commits {
            // A commit without timestamps (all -1) is kept by time: nothing says how old it is.
            let too_old = retention_ms
                .is_some_and(|ms| c.max_timestamp >= 0 && c.max_timestamp < now_ms - ms);
            let too_big = retention_bytes.is_some_and(|b| kept - c.data_len >= b as u64);
            if !(too_old || too_big) || c.end() > lso {
                break;
            }
            point = point.max(c.end());
            kept -= c.data_len;
        }
        (point > idx.log_start).then_some(point)
    }

    /// Deletes, in order, the commit objects below the log start that are no longer needed:
    /// below the first commit a reader may fetch from and below the oldest checkpoint kept
    /// (opening may fall back to it), once `delete_delay` has passed since this broker saw
    /// them go, so reads in flight finish. Without a checkpoint nothing is deleted: opening
    /// would need the whole chain.
    pub async fn collect_garbage(&self) {
        if self.is_closed() {
            return;
        }
        let needed = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            idx.commits.first().map_or(idx.end_seq, |c| c.seq)
        };
        let Some(oldest) = self
            .checkpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .copied()
        else {
            return;
        };
        let bound = if self.bug == Some(Bug::DeleteUnderReaders) {
            oldest
        } else {
            needed.min(oldest)
        };
        let now = tokio::time::Instant::now();
        let (from, to) = {
            let mut gc = self.gc.lock().unwrap_or_else(|e| e.into_inner());
            if gc.seen.back().is_none_or(|(b, _)| *b < bound) {
                gc.seen.push_back((bound, now));
            }
            while let Some(&(b, since)) = gc.seen.front() {
                if now.duration_since(since) < self.delete_delay {
                    break;
                }
                gc.due = gc.due.max(b);
                gc.seen.pop_front();
            }
            if gc.running || gc.due <= gc.done {
                return;
            }
            gc.running = true;
            (gc.done, gc.due)
        };
        let mut done = from;
        for seq in from..to {
            let path = commit_path(&self.topic_id, self.partition, seq);
            match tokio::time::timeout(STORE_CALL_TIMEOUT, self.store.delete(&path)).await {
                Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => {}
                other => {
                    tracing::info!(topic_id = %self.topic_id, partition = self.partition, seq,
                        outcome = ?other.map(|r| r.err()), "could not delete a commit below the log start");
                    break;
                }
            }
            done = seq + 1;
        }
        if done > from {
            reached!(
                "retention.objects_deleted",
                "an owner deleted commit objects below the log start"
            );
        }
        let mut gc = self.gc.lock().unwrap_or_else(|e| e.into_inner());
        gc.done = gc.done.max(done);
        gc.running = false;
    }

    async fn read_header(&self, seq: u64) -> Result<Option<CommitHeader>, LogError> {
        let path = commit_path(&self.topic_id, self.partition, seq);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER_PROBE)),
            ..Default::default()
        };
        let fut = async { self.store.get_opts(&path, opts).await?.bytes().await };
        let probe = match tokio::time::timeout(STORE_CALL_TIMEOUT, fut).await {
            Ok(Ok(b)) => b,
            Ok(Err(object_store::Error::NotFound { .. })) => return Ok(None),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(LogError::Store("header read timed out".into())),
        };
        let span = well_formed(&path, commit::header_span(&probe))?;
        let bytes = if span as u64 > HEADER_PROBE {
            timed(self.store.get_range(&path, 0..span as u64)).await?
        } else {
            probe
        };
        well_formed(&path, commit::decode_header(&bytes)).map(Some)
    }

    /// Checks that nobody else extended the chain behind our back (ownership
    /// can move away and come back while this log stays open). Learns any
    /// commit found; a higher epoch fences us. A commit in progress is our
    /// own tail moving, so it skips the check.
    pub async fn verify_tail(&self) -> Result<(), LogError> {
        self.check_tail(false).await
    }

    /// Like [`PartitionLog::verify_tail`], but waits for a commit in progress instead of
    /// skipping the check: for answers that must not come from a stale view.
    pub async fn verify_tail_now(&self) -> Result<(), LogError> {
        self.check_tail(true).await
    }

    async fn check_tail(&self, wait: bool) -> Result<(), LogError> {
        if self.bug == Some(Bug::StaleCacheAfterMove)
            || !self.open.load(Ordering::Acquire)
            || self.is_closed()
        {
            return Ok(());
        }
        let mut guard = if wait {
            self.writer.lock().await
        } else {
            let Ok(guard) = self.writer.try_lock() else {
                return Ok(());
            };
            guard
        };
        let Some(w) = guard.as_mut() else {
            return Ok(());
        };
        let before = w.next_seq;
        let r = self.catch_up(w).await;
        if w.next_seq != before {
            reached!(
                "log.tail_extended_elsewhere",
                "an owner's tail check found commits another writer made"
            );
            tracing::warn!(topic_id = %self.topic_id, partition = self.partition,
                found = w.next_seq - before, "chain was extended by another writer");
            self.appended.notify_waiters();
        }
        r
    }

    /// Follows the chain from the writer's tail to its end, learning commits
    /// written by others (or by our own ambiguous writes).
    async fn catch_up(&self, w: &mut Writer) -> Result<(), LogError> {
        while let Some(h) = self.read_header(w.next_seq).await? {
            if w.unsure {
                reached!("log.catch_up_after_unknown_write", "after a write of unknown outcome, the writer re-read the tail and found a commit there");
            }
            self.learn(w, &h)?;
        }
        w.unsure = false;
        Ok(())
    }

    /// Adds a commit found in the chain to the index; fails if it fences us.
    fn learn(&self, w: &mut Writer, h: &CommitHeader) -> Result<(), LogError> {
        if !always!(
            h.seq == w.next_seq,
            "log.commit_names_its_own_seq",
            "the commit found at a chain's next number names that number",
            "{}/{}: expected commit {} but found {}",
            self.topic_id,
            self.partition,
            w.next_seq,
            h.seq
        ) {
            return Err(LogError::Corrupt(format!(
                "expected commit {} but found {}",
                w.next_seq, h.seq
            )));
        }
        let foreign = h.epoch > w.epoch || (h.epoch == w.epoch && h.node_id != self.node_id);
        if foreign && self.bug == Some(Bug::StaleCacheAfterMove) {
            // Takes the partition back but keeps its cached view of the log.
            w.next_seq += 1;
            w.epoch = h.epoch + 1;
            return Ok(());
        }
        apply(&mut self.index_mut(), h)?;
        w.producers.learn(&h.producers);
        w.next_seq += 1;
        if foreign {
            reached!(
                "log.fenced_by_newer_writer",
                "a writer found a commit of a newer owner in its chain and stopped"
            );
            self.close();
            return Err(LogError::Fenced);
        }
        Ok(())
    }

    /// Appends a fence at the tail with our epoch; retries past other commits.
    async fn claim(&self, w: &mut Writer) -> Result<(), LogError> {
        loop {
            let hwm = self.high_watermark();
            let header = CommitHeader {
                seq: w.next_seq,
                base_offset: hwm,
                records: 0,
                epoch: w.epoch,
                node_id: self.node_id,
                write_id: self.ids.next_u64(),
                max_timestamp: -1,
                data_len: 0,
                producers: vec![],
                txn_begins: vec![],
                txn_ends: vec![],
                txn_fences: vec![],
                log_start: None,
            };
            match self.create(&header, &[]).await {
                Ok(()) => {
                    reached!(
                        "log.claimed",
                        "a broker fenced a log by appending its epoch (took ownership)"
                    );
                    // A fence moves no offset; applying it only notes its epoch as the tail's.
                    let _ = apply(&mut self.index_mut(), &header);
                    w.next_seq += 1;
                    self.maybe_checkpoint(w, header.seq, header.write_id);
                    tracing::info!(topic_id = %self.topic_id, partition = self.partition,
                        epoch = w.epoch, seq = header.seq, "claimed partition");
                    return Ok(());
                }
                Err(Created::Exists) => {
                    reached!(
                        "log.claim_race_lost",
                        "a claim lost the create-if-absent race for its sequence number"
                    );
                    // Someone else wrote here: learn it, then fence above it.
                    while let Some(h) = self.read_header(w.next_seq).await? {
                        apply(&mut self.index_mut(), &h)?;
                        w.producers.learn(&h.producers);
                        w.next_seq += 1;
                        w.epoch = w.epoch.max(h.epoch + 1);
                    }
                }
                Err(Created::Failed(e)) => return Err(e),
            }
        }
    }

    async fn create(&self, h: &CommitHeader, data: &[u8]) -> Result<(), Created> {
        let path = commit_path(&self.topic_id, self.partition, h.seq);
        let batches = batches_match(data, h.base_offset, h.records);
        always!(
            batches.is_ok(),
            "log.written_batches_match_header",
            "a commit written holds batches with exactly the offsets its header gives them (base offset, record count)",
            "{path}: {}",
            batches.as_ref().err().map_or("", String::as_str)
        );
        let body = commit::encode(h, data);
        let put = self.store.put_opts(
            &path,
            body.clone().into(),
            PutOptions::from(PutMode::Create),
        );
        match tokio::time::timeout(STORE_CALL_TIMEOUT, put).await {
            Ok(Ok(_)) => {
                if h.records > 0 {
                    self.cache.put(self.key(h.seq), body);
                }
                Ok(())
            }
            Ok(Err(object_store::Error::AlreadyExists { .. }))
                if self.bug == Some(Bug::NoFencing) =>
            {
                let path = commit_path(&self.topic_id, self.partition, h.seq);
                match self.store.put(&path, body.into()).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(Created::Failed(e.into())),
                }
            }
            Ok(Err(object_store::Error::AlreadyExists { .. })) => {
                // A retried request may find its own earlier attempt.
                match self.read_header(h.seq).await {
                    Ok(Some(found)) if found.write_id == h.write_id => {
                        reached!("log.own_earlier_write_found", "a retried commit found its own earlier attempt applied (the reply had been lost)");
                        Ok(())
                    }
                    Ok(_) => Err(Created::Exists),
                    Err(e) => Err(Created::Failed(e)),
                }
            }
            Ok(Err(e)) => Err(Created::Failed(e.into())),
            Err(_) => Err(Created::Failed(LogError::Store("commit timed out".into()))),
        }
    }

    /// Queues batches for the next commit. The receiver yields the base offset
    /// once data and offsets are durable.
    pub fn append(
        self: &Arc<Self>,
        batches: Vec<(BatchHeader, Bytes)>,
    ) -> oneshot::Receiver<Result<i64, LogError>> {
        self.enqueue(batches, Item::Data { guard: None }, None)
    }

    /// Transactional ids of transactions open here since before `before_ms` (writer clocks).
    pub fn open_since(&self, before_ms: i64) -> Vec<String> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.txns
            .origins
            .values()
            .filter(|(_, since)| *since < before_ms)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Like [`PartitionLog::append`], for batches that may begin a transaction here: `guard` is
    /// what [`PartitionLog::txn_guard`] said before the coordinator verified the transaction.
    pub fn append_transactional(
        self: &Arc<Self>,
        batches: Vec<(BatchHeader, Bytes)>,
        guard: u64,
        transactional_id: &str,
        now_ms: i64,
    ) -> oneshot::Receiver<Result<i64, LogError>> {
        let origin = Some((transactional_id.to_string(), now_ms));
        self.enqueue(batches, Item::Data { guard: Some(guard) }, origin)
    }

    /// Queues a transaction marker. Answers the marker's offset, or `NoOpenTransaction` when
    /// the producer has no open transaction here (already ended, or never began).
    pub fn append_marker(
        self: &Arc<Self>,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> oneshot::Receiver<Result<i64, LogError>> {
        {
            let mut g = self.guards.lock().unwrap_or_else(|e| e.into_inner());
            *g.entry(producer_id).or_default() += 1;
        }
        let batch = batch::control(producer_id, epoch, commit, coordinator_epoch, timestamp);
        self.enqueue(
            vec![batch],
            Item::Marker {
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
            },
            None,
        )
    }

    fn enqueue(
        self: &Arc<Self>,
        batches: Vec<(BatchHeader, Bytes)>,
        kind: Item,
        origin: Option<(String, i64)>,
    ) -> oneshot::Receiver<Result<i64, LogError>> {
        let (tx, rx) = oneshot::channel();
        let bytes = batches.iter().map(|(_, b)| b.len()).sum();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.items.push_back(Pending {
                batches,
                bytes,
                kind,
                origin,
                done: tx,
            });
            !std::mem::replace(&mut q.committer_running, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.run_committer().await });
        }
        rx
    }

    /// Groups whatever is queued into one commit at a time, in queue order.
    async fn run_committer(self: Arc<Self>) {
        loop {
            let group: Vec<Pending> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let mut bytes = 0;
                let mut group = Vec::new();
                while let Some(p) = q.items.front() {
                    if !group.is_empty() && bytes + p.bytes > self.max_commit_bytes {
                        break;
                    }
                    bytes += p.bytes;
                    group.extend(q.items.pop_front());
                }
                if group.is_empty() {
                    q.committer_running = false;
                    return;
                }
                group
            };
            match self.commit(&group).await {
                Ok(outcomes) => {
                    let hwm = self.high_watermark();
                    for (p, outcome) in group.into_iter().zip(outcomes) {
                        if let (Ok(base), Item::Data { .. }) = (outcome.as_ref(), p.kind) {
                            let base = *base;
                            let records: i64 =
                                p.batches.iter().map(|(h, _)| h.records as i64).sum();
                            always!(
                                base >= 0 && (records == 0 || base < hwm),
                                "log.acked_offsets_are_committed",
                                "an append is answered with a base offset only once a durable commit holds it (0 <= base < high watermark)",
                                "{}/{}: answered base offset {base} for {records} records with the log ending at {hwm}",
                                self.topic_id,
                                self.partition
                            );
                        }
                        let _ = p.done.send(outcome);
                    }
                }
                Err(e) => {
                    for p in group {
                        let _ = p.done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes one commit holding every acceptable item of `group`, and
    /// returns each item's outcome: its base offset (an idempotent retry gets
    /// its original one) or why it was refused. `Err` fails the whole group.
    async fn commit(&self, group: &[Pending]) -> Result<Vec<Result<i64, LogError>>, LogError> {
        let mut guard = self.writer.lock().await;
        if self.is_closed() {
            reached!("log.append_after_ownership_moved", "appends queued for a commit failed because the partition moved away while they waited");
            return Err(LogError::Fenced);
        }
        let w = guard.as_mut().ok_or(LogError::Fenced)?;
        // A marker is judged against the open transactions: from the chain as it is now, not
        // from a view that missed another owner's commits (which may have begun the
        // transaction). Skipping a marker on a stale view would leave it open forever.
        let marking = group.iter().any(|p| matches!(p.kind, Item::Marker { .. }));
        if w.unsure || marking {
            self.catch_up(w).await?;
        }
        if group.len() > 1 {
            reached!(
                "log.commit_groups_requests",
                "one commit carried several produce requests"
            );
        }
        loop {
            let base = self.high_watermark();
            let txns = {
                let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
                (idx.txns.ongoing.clone(), idx.txns.coordinators.clone())
            };
            let mut plan = Plan::new(base, w.producers.clone(), txns, self.bug);
            plan.current_log_start = self.log_start();
            let outcomes: Vec<_> = {
                let guards = self.guards.lock().unwrap_or_else(|e| e.into_inner());
                group.iter().map(|p| plan.add(p, &guards)).collect()
            };
            // A marker that found nothing open decided on the chain as read; a write of unknown
            // outcome may still land in the next slot and begin the transaction behind that
            // decision. An empty commit in that slot settles it: it wins (the late write can
            // never land) or loses to the late write, which is then learned and marked.
            let seal = plan.offset == base
                && outcomes
                    .iter()
                    .any(|o| matches!(o, Err(LogError::NoOpenTransaction)));
            if plan.offset == base && !seal && plan.log_start.is_none() {
                reached!(
                    "log.commit_nothing_new",
                    "every request of a commit was a duplicate or refused: nothing written"
                );
                // Nothing new (all duplicates or refused): no write needed.
                return Ok(outcomes);
            }
            if self.bug == Some(Bug::DropBatchTail) && group.len() > 1 {
                plan.data.truncate(plan.last_item_start);
            }
            let header = CommitHeader {
                seq: w.next_seq,
                base_offset: base,
                records: plan.offset - base,
                epoch: w.epoch,
                node_id: self.node_id,
                write_id: self.ids.next_u64(),
                max_timestamp: plan.max_timestamp,
                data_len: plan.data.len() as u64,
                producers: plan.touched.into_values().collect(),
                txn_begins: plan.begins,
                txn_ends: plan.ends,
                txn_fences: plan.fences,
                log_start: plan.log_start,
            };
            let sent = tokio::time::Instant::now();
            let long_silent = sent.duration_since(w.confirmed_at) >= self.delete_delay / 2;
            let created = match self.create(&header, &plan.data).await {
                Ok(()) if long_silent => self.check_not_orphan(header.seq).await,
                other => other,
            };
            match created {
                Ok(()) => {
                    w.confirmed_at = sent;
                    if seal {
                        reached!(
                            "txn.marker_sealed_the_tail",
                            "a marker that found nothing open sealed the partition's next slot with an empty commit"
                        );
                    }
                    apply(&mut self.index_mut(), &header)?;
                    w.producers = plan.producers;
                    w.next_seq += 1;
                    self.maybe_checkpoint(w, header.seq, header.write_id);
                    self.appended.notify_waiters();
                    return Ok(outcomes);
                }
                Err(Created::Exists) => {
                    reached!(
                        "log.commit_race_lost",
                        "a data commit lost the race for its sequence number to another writer"
                    );
                    // Lost the race for this sequence number: learn the winner.
                    let h = self.read_header(w.next_seq).await?.ok_or_else(|| {
                        LogError::Corrupt(format!("commit {} exists but unreadable", w.next_seq))
                    })?;
                    if let Err(e) = self.learn(w, &h) {
                        reached!("log.append_fenced_mid_commit", "a commit in progress lost its sequence number to a new owner: ownership moved mid-append");
                        return Err(e);
                    }
                    self.appended.notify_waiters();
                }
                Err(Created::Failed(e)) => {
                    reached!(
                        "log.commit_outcome_unknown",
                        "a data commit failed or timed out: it may or may not be in the store"
                    );
                    w.unsure = true;
                    match self.bug {
                        Some(Bug::AckBeforeCommit) => return Ok(outcomes),
                        Some(Bug::ReserveThenWrite) => self.reserve_empty(w, &header).await,
                        _ => {}
                    }
                    return Err(e);
                }
            }
        }
    }

    /// `Bug::ReserveThenWrite`: the offsets of a failed data write stay
    /// reserved, with no data behind them.
    async fn reserve_empty(&self, w: &mut Writer, failed: &CommitHeader) {
        let reservation = CommitHeader {
            write_id: self.ids.next_u64(),
            data_len: 0,
            producers: vec![],
            txn_begins: vec![],
            txn_ends: vec![],
            txn_fences: vec![],
            log_start: None,
            ..failed.clone()
        };
        if self.create(&reservation, &[]).await.is_ok()
            && apply(&mut self.index_mut(), &reservation).is_ok()
        {
            w.next_seq += 1;
            w.unsure = false;
        }
    }

    /// Batches from `offset` on, up to about `max_bytes` (always at least one
    /// batch if there is one). Whole batches, as Kafka returns them.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        let refs: Vec<CommitRef> = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            let start = idx.commits.partition_point(|c| c.end() <= offset);
            let mut total = 0u64;
            idx.commits[start..]
                .iter()
                .take_while(|c| {
                    let take = total < max_bytes as u64;
                    total += c.data_len;
                    take
                })
                .copied()
                .collect()
        };
        let mut out = BytesMut::new();
        for r in refs {
            let data = self.commit_data(r.seq).await?;
            for (at, h) in batch::headers(&data) {
                let before = if self.bug == Some(Bug::MidBatchFetchSkip) {
                    h.base_offset < offset
                } else {
                    h.last_offset() < offset
                };
                if before {
                    continue;
                }
                if out.is_empty() && h.base_offset < offset {
                    reached!(
                        "log.read_inside_batch",
                        "a read began at an offset inside a stored batch"
                    );
                }
                if !out.is_empty() && out.len() + h.size > max_bytes {
                    reached!(
                        "log.read_cut_by_max_bytes",
                        "a read stopped before the end of the log for want of bytes"
                    );
                    return Ok(out.freeze());
                }
                if out.is_empty() {
                    always!(
                        offset < 0 || (h.base_offset <= offset && offset <= h.last_offset()),
                        "log.read_starts_at_the_requested_offset",
                        "a read's first batch holds the offset asked for: nothing at or after it is skipped, nothing before it is returned but whole batches",
                        "{}/{}: a read from offset {offset} began with the batch {}..={}",
                        self.topic_id,
                        self.partition,
                        h.base_offset,
                        h.last_offset()
                    );
                }
                out.extend_from_slice(&data[at..at + h.size]);
            }
        }
        Ok(out.freeze())
    }

    /// Every record of the chain, decoded: how coordinators (groups, transactional ids) replay
    /// the state they keep as records. From the log start: a group moves it to its snapshot.
    pub async fn records(&self) -> Result<Vec<kafka_protocol::records::Record>, LogError> {
        let mut raw = self.read(self.log_start(), usize::MAX).await?;
        let mut out = Vec::new();
        while !raw.is_empty() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut raw)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            out.extend(set.records);
        }
        Ok(out)
    }

    /// The batch bytes of commit `seq`, from the cache or the store.
    async fn commit_data(&self, seq: u64) -> Result<Bytes, LogError> {
        let key = self.key(seq);
        let body = match self.cache.get(&key) {
            Some(b) => b,
            None => {
                reached!(
                    "log.read_from_store",
                    "a read missed the commit cache and went to the object store"
                );
                let path = commit_path(&self.topic_id, self.partition, seq);
                let b = timed(async { self.store.get(&path).await?.bytes().await }).await?;
                self.cache.put(key, b.clone());
                b
            }
        };
        let path = commit_path(&self.topic_id, self.partition, seq);
        let (h, data) = well_formed(&path, commit::decode(&body))?;
        let known = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            let i = idx.commits.partition_point(|c| c.seq < seq);
            idx.commits.get(i).filter(|c| c.seq == seq).copied()
        };
        if let Some(c) = known {
            always!(
                (h.seq, h.base_offset, h.records, h.data_len)
                    == (c.seq, c.base_offset, c.records, c.data_len),
                "log.stored_commit_matches_index",
                "a commit read (from the cache or the store) is the one the index learned: commits are immutable",
                "{path}: read seq {} offsets {}+{} ({} bytes), the index has seq {} offsets {}+{} ({} bytes)",
                h.seq,
                h.base_offset,
                h.records,
                h.data_len,
                c.seq,
                c.base_offset,
                c.records,
                c.data_len
            );
        }
        let batches = batches_match(&data, h.base_offset, h.records);
        always!(
            batches.is_ok(),
            "log.stored_batches_match_header",
            "a commit read holds batches with exactly the offsets its header gives them",
            "{path}: {}",
            batches.as_ref().err().map_or("", String::as_str)
        );
        Ok(data)
    }

    /// The first offset whose record timestamp is at least `ts`, and that
    /// timestamp; `None` if every record is older.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let candidates: Vec<CommitRef> = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            idx.commits
                .iter()
                .filter(|c| c.max_timestamp >= ts)
                .copied()
                .collect()
        };
        for c in candidates {
            let data = self.commit_data(c.seq).await?;
            for (at, h) in batch::headers(&data) {
                if h.max_timestamp < ts {
                    continue;
                }
                let mut raw = data.slice(at..at + h.size);
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut raw)
                    .map_err(|e| LogError::Corrupt(e.to_string()))?;
                if let Some(r) = set.records.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let best = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            idx.commits
                .iter()
                .copied()
                .max_by_key(|c| (c.max_timestamp, -c.base_offset))
        };
        match best {
            Some(c) => self.offset_for_timestamp(c.max_timestamp).await,
            None => Ok(None),
        }
    }
}

/// The commit being assembled: data with final offsets, and the producer
/// state it leads to.
struct Plan {
    data: BytesMut,
    /// Where the last accepted item's data starts (for `Bug::DropBatchTail`).
    last_item_start: usize,
    offset: i64,
    max_timestamp: i64,
    producers: Producers,
    touched: BTreeMap<i64, ProducerEntry>,
    /// Open transactions (producer id → first offset) as of this plan.
    ongoing: BTreeMap<i64, i64>,
    begins: Vec<TxnBegin>,
    ends: Vec<TxnEnd>,
    /// Producers' coordinator epochs as of this plan, and those raised without a marker.
    coordinators: BTreeMap<i64, i32>,
    fences: Vec<TxnFence>,
    /// `Bug::CompressedBatchAsOne`.
    compressed_as_one: bool,
    /// The log start before this commit, and the one it moves to.
    current_log_start: i64,
    log_start: Option<i64>,
}

impl Plan {
    fn new(
        base: i64,
        producers: Producers,
        (ongoing, coordinators): (BTreeMap<i64, i64>, BTreeMap<i64, i32>),
        bug: Option<Bug>,
    ) -> Self {
        Plan {
            compressed_as_one: bug == Some(Bug::CompressedBatchAsOne),
            data: BytesMut::new(),
            last_item_start: 0,
            offset: base,
            max_timestamp: -1,
            producers,
            touched: BTreeMap::new(),
            ongoing,
            begins: Vec::new(),
            ends: Vec::new(),
            coordinators,
            fences: Vec::new(),
            current_log_start: 0,
            log_start: None,
        }
    }

    /// Adds one queued item: a produce request's batches for this partition (all or none), or
    /// a marker.
    fn add(&mut self, item: &Pending, guards: &BTreeMap<i64, u64>) -> Result<i64, LogError> {
        match item.kind {
            Item::Data { guard } => self.add_data(&item.batches, guard, guards, &item.origin),
            Item::Trim { offset } => self.add_trim(offset),
            Item::Marker {
                producer_id,
                epoch,
                commit,
                coordinator_epoch,
            } => self.add_marker(&item.batches, producer_id, epoch, commit, coordinator_epoch),
        }
    }

    /// Moves the log start up to `offset`, which must be within the log. Answers the log start
    /// after it (a trim below the current start changes nothing).
    fn add_trim(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset > self.offset || offset < 0 {
            return Err(LogError::OffsetOutOfRange);
        }
        let now = self.log_start.unwrap_or(self.current_log_start);
        if offset <= now {
            return Ok(now);
        }
        self.log_start = Some(offset);
        Ok(offset)
    }

    /// Ends the producer's open transaction here with a control batch.
    fn add_marker(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64, LogError> {
        let known = self.coordinators.get(&producer_id).copied();
        if known.is_some_and(|k| coordinator_epoch < k) {
            reached!(
                "txn.stale_coordinator_marker_refused",
                "a marker from a transaction coordinator older than one that already marked the producer here was refused"
            );
            return Err(LogError::CoordinatorFenced);
        }
        let newer = known.is_none_or(|k| coordinator_epoch > k);
        if newer {
            self.coordinators.insert(producer_id, coordinator_epoch);
        }
        let Some(&first_offset) = self.ongoing.get(&producer_id) else {
            reached!(
                "txn.marker_without_open_transaction",
                "a marker came for a producer with no open transaction in the partition (already ended, or it never wrote here)"
            );
            if newer {
                self.fences.push(TxnFence {
                    producer_id,
                    coordinator_epoch,
                });
            }
            return Err(LogError::NoOpenTransaction);
        };
        if self
            .producers
            .epoch_of(producer_id)
            .is_some_and(|e| e > epoch)
        {
            reached!(
                "txn.stale_marker_refused",
                "a marker of an older producer epoch than the partition knows was refused"
            );
            return Err(LogError::ProducerFenced);
        }
        let at = self.offset;
        for (_, raw) in batches {
            batch::rebase(raw, at, &mut self.data);
        }
        if let Some(e) = self.producers.bump_epoch(producer_id, epoch) {
            self.touched.insert(producer_id, e);
        }
        self.ongoing.remove(&producer_id);
        self.ends.push(TxnEnd {
            producer_id,
            commit,
            offset: at,
            coordinator_epoch,
        });
        always!(
            first_offset < at,
            "txn.marker_after_first_record",
            "a transaction's marker comes after its first record in the partition",
            "producer {producer_id}: marker at {at}, first record at {first_offset}"
        );
        self.offset += 1;
        Ok(at)
    }

    /// Adds one produce request's batches for this partition, all or none.
    fn add_data(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
        guard: Option<u64>,
        guards: &BTreeMap<i64, u64>,
        origin: &Option<(String, i64)>,
    ) -> Result<i64, LogError> {
        let item_base = self.offset;
        // A retried request is a duplicate as a whole.
        if let Some((h, _)) = batches.first() {
            if let Verdict::Duplicate(o) = self.producers.check(h) {
                reached!(
                    "idempotent.duplicate_answered",
                    "an idempotent retry was answered with its original offset, not written again"
                );
                return Ok(o);
            }
        }
        let undo = (
            self.producers.clone(),
            self.touched.clone(),
            self.data.len(),
            (self.ongoing.clone(), self.begins.len()),
        );
        let item_start = self.data.len();
        if batches.len() > 1 {
            reached!(
                "log.request_with_several_batches",
                "one produce request carried several batches for one partition"
            );
        }
        for (h, raw) in batches {
            let refused = match self.producers.check(h) {
                Verdict::Append => self.txn_refusal(h, guard, guards),
                Verdict::Fenced => {
                    reached!(
                        "idempotent.stale_epoch_refused",
                        "a batch of an older producer epoch was refused"
                    );
                    Some(LogError::ProducerFenced)
                }
                Verdict::Duplicate(_) | Verdict::OutOfOrder => {
                    reached!(
                        "idempotent.out_of_order_refused",
                        "a batch whose sequence does not follow the producer's last was refused"
                    );
                    Some(LogError::OutOfOrderSequence)
                }
            };
            if let Some(e) = refused {
                (self.producers, self.touched) = (undo.0, undo.1);
                self.data.truncate(undo.2);
                self.ongoing = undo.3 .0;
                self.begins.truncate(undo.3 .1);
                self.offset = item_base;
                return Err(e);
            }
            if h.is_transactional() && !self.ongoing.contains_key(&h.producer_id) {
                reached!(
                    "txn.began_in_partition",
                    "a transaction wrote its first batch in a partition"
                );
                self.ongoing.insert(h.producer_id, self.offset);
                self.begins.push(TxnBegin {
                    producer_id: h.producer_id,
                    first_offset: self.offset,
                    transactional_id: origin.as_ref().map(|(id, _)| id.clone()),
                    time_ms: origin.as_ref().map(|(_, ms)| *ms),
                });
            }
            batch::rebase(raw, self.offset, &mut self.data);
            if let Some(e) = self.producers.record(h, self.offset) {
                self.touched.insert(e.producer_id, e);
            }
            let compressed = h.attributes & 0x07 != 0;
            if compressed {
                reached!(
                    "log.compressed_batch_appended",
                    "a compressed batch was appended"
                );
            }

            self.offset += if self.compressed_as_one && compressed {
                1
            } else {
                h.records as i64
            };
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        }
        self.last_item_start = item_start;
        Ok(item_base)
    }
}

impl Plan {
    /// Why a batch the producer checks accept is still refused for transactional reasons.
    fn txn_refusal(
        &self,
        h: &BatchHeader,
        guard: Option<u64>,
        guards: &BTreeMap<i64, u64>,
    ) -> Option<LogError> {
        let open = self.ongoing.contains_key(&h.producer_id);
        if !h.is_transactional() {
            if open && h.producer_id >= 0 {
                reached!(
                    "txn.plain_batch_in_open_transaction",
                    "a producer with an open transaction sent a non-transactional batch"
                );
                return Some(LogError::InvalidTxnState);
            }
            return None;
        }
        if open {
            return None;
        }
        let now = guards.get(&h.producer_id).copied().unwrap_or(0);
        if guard != Some(now) {
            reached!(
                "txn.late_batch_refused",
                "a transactional batch not verified, or whose transaction ended while it waited, was refused (KIP-890)"
            );
            return Some(LogError::InvalidTxnState);
        }
        None
    }
}

enum Created {
    /// The sequence number is taken by someone else's commit.
    Exists,
    Failed(LogError),
}

/// Whether `data`'s batches carry offsets `base..base + records`, one after another.
fn batches_match(data: &[u8], base: i64, records: i64) -> Result<(), String> {
    let mut next = base;
    let mut at = 0;
    for (start, b) in batch::headers(data) {
        if b.base_offset != next {
            return Err(format!(
                "a batch starts at offset {} where {next} was due",
                b.base_offset
            ));
        }
        next = b.last_offset() + 1;
        at = start + b.size;
    }
    if at != data.len() {
        return Err(format!(
            "{} of {} bytes are not record batches",
            data.len() - at,
            data.len()
        ));
    }
    if next != base + records {
        return Err(format!(
            "the batches hold offsets {base}..{next}, the header says {records} records from {base}"
        ));
    }
    Ok(())
}

/// A decoded commit object, or `Corrupt`; an object of a chain that does not decode breaks
/// an invariant.
fn well_formed<T>(
    path: &object_store::path::Path,
    r: Result<T, commit::CommitFormatError>,
) -> Result<T, LogError> {
    always!(
        r.is_ok(),
        "log.commit_is_well_formed",
        "every object of a commit chain is a commit whose header decodes and whose data has the length it gives",
        "{path}: {}",
        r.as_ref().err().map(ToString::to_string).unwrap_or_default()
    );
    r.map_err(|e| LogError::Corrupt(e.to_string()))
}

/// The state a checkpoint of commit `seq` holds, from the index and producers after it.
fn snapshot(
    idx: &Index,
    producers: &Producers,
    (seq, write_id): (u64, u64),
    collected_below: u64,
) -> Checkpoint {
    Checkpoint {
        seq,
        write_id,
        hwm: idx.hwm,
        tail: idx.tail,
        log_start: idx.log_start,
        collected_below,
        producers: producers.entries(),
        ongoing: idx.txns.ongoing.iter().map(|(p, o)| (*p, *o)).collect(),
        origins: idx
            .txns
            .origins
            .iter()
            .map(|(p, (id, ms))| (*p, id.clone(), *ms))
            .collect(),
        coordinators: idx
            .txns
            .coordinators
            .iter()
            .map(|(p, e)| (*p, *e))
            .collect(),
        aborted: idx
            .txns
            .aborted
            .iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect(),
        commits: idx.commits.clone(),
    }
}

/// The index a checkpoint holds.
fn restore(c: Checkpoint) -> Index {
    Index {
        hwm: c.hwm,
        commits: c.commits,
        tail: c.tail,
        log_start: c.log_start,
        end_seq: c.seq + 1,
        txns: TxnIndex {
            ongoing: c.ongoing.into_iter().collect(),
            aborted: c
                .aborted
                .into_iter()
                .map(|(producer_id, first_offset, last_offset)| AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset,
                })
                .collect(),
            origins: c
                .origins
                .into_iter()
                .map(|(p, id, ms)| (p, (id, ms)))
                .collect(),
            coordinators: c.coordinators.into_iter().collect(),
        },
    }
}

fn raise_coordinator(txns: &mut TxnIndex, producer_id: i64, coordinator_epoch: i32) {
    let known = txns
        .coordinators
        .entry(producer_id)
        .or_insert(coordinator_epoch);
    *known = (*known).max(coordinator_epoch);
}

/// Adds a commit to the index: its offsets must follow the log's end.
fn apply(index: &mut Index, h: &CommitHeader) -> Result<(), LogError> {
    always!(
        h.records >= 0,
        "log.records_not_negative",
        "a commit holds no records (a fence) or some, never fewer",
        "commit {} holds {} records",
        h.seq,
        h.records
    );
    if let Some((epoch, node)) = index.tail {
        always!(
            h.epoch >= epoch,
            "log.epochs_never_decrease",
            "a commit's epoch is at least the one before it: no writer appends after a newer owner fenced it",
            "commit {} (broker {}) has epoch {} after a commit of epoch {epoch}",
            h.seq,
            h.node_id,
            h.epoch
        );
        always!(
            h.epoch != epoch || h.node_id == node,
            "log.one_owner_per_epoch",
            "the commits of one epoch all come from one broker",
            "commit {} of epoch {} is from broker {} but the one before it, same epoch, from broker {node}",
            h.seq,
            h.epoch,
            h.node_id
        );
    }
    if !always!(
        h.base_offset == index.hwm,
        "log.offsets_contiguous",
        "each commit starts at the offset where the log before it ends: offsets are contiguous and never reused",
        "commit {} starts at offset {} but the log ends at {}",
        h.seq,
        h.base_offset,
        index.hwm
    ) {
        return Err(LogError::Corrupt(format!(
            "commit {} starts at offset {} but the log ends at {}",
            h.seq, h.base_offset, index.hwm
        )));
    }
    index.tail = Some((h.epoch, h.node_id));
    index.end_seq = h.seq + 1;
    // In offset order: one commit may end a producer's transaction and begin its next.
    let mut events: Vec<(i64, Option<&TxnBegin>, Option<&TxnEnd>)> = h
        .txn_begins
        .iter()
        .map(|b| (b.first_offset, Some(b), None))
        .chain(h.txn_ends.iter().map(|e| (e.offset, None, Some(e))))
        .collect();
    events.sort_by_key(|(offset, _, _)| *offset);
    for (_, begin, end) in events {
        if let Some(b) = begin {
            if let (Some(id), Some(ms)) = (&b.transactional_id, b.time_ms) {
                index.txns.origins.insert(b.producer_id, (id.clone(), ms));
            }
            let fresh = index
                .txns
                .ongoing
                .insert(b.producer_id, b.first_offset)
                .is_none();
            always!(
                fresh,
                "txn.one_open_transaction_per_producer",
                "a transaction begins in a partition only when its producer has none open there",
                "commit {} begins a transaction of producer {} at {} while one is open",
                h.seq,
                b.producer_id,
                b.first_offset
            );
        }
        let Some(e) = end else { continue };
        raise_coordinator(&mut index.txns, e.producer_id, e.coordinator_epoch);
        let first = index.txns.ongoing.remove(&e.producer_id);
        index.txns.origins.remove(&e.producer_id);
        always!(
            first.is_some(),
            "txn.marker_ends_an_open_transaction",
            "every marker written ends a transaction open in its partition",
            "commit {} has a marker of producer {} at {} with no open transaction",
            h.seq,
            e.producer_id,
            e.offset
        );
        if let (Some(first_offset), false) = (first, e.commit) {
            index.txns.aborted.push(AbortedTxn {
                producer_id: e.producer_id,
                first_offset,
                last_offset: e.offset,
            });
        }
    }
    for f in &h.txn_fences {
        raise_coordinator(&mut index.txns, f.producer_id, f.coordinator_epoch);
    }
    if h.records > 0 {
        index.commits.push(CommitRef {
            seq: h.seq,
            base_offset: h.base_offset,
            records: h.records,
            max_timestamp: h.max_timestamp,
            data_len: h.data_len,
        });
        index.hwm = h.end_offset();
    }
    if let Some(start) = h.log_start {
        always!(
            start >= index.log_start && start <= index.hwm,
            "log.log_start_moves_forward_within_the_log",
            "a new log start offset is never below the one before it nor past the log's end",
            "commit {} moves the log start to {start} from {} with the log ending at {}",
            h.seq,
            index.log_start,
            index.hwm
        );
        index.log_start = start;
        // Readers below the start are refused, so what lies wholly below it is forgotten.
        let gone = index.commits.partition_point(|c| c.end() <= start);
        index.commits.drain(..gone);
        let gone = index
            .txns
            .aborted
            .partition_point(|a| a.last_offset < start);
        index.txns.aborted.drain(..gone);
    }
    Ok(())
}
