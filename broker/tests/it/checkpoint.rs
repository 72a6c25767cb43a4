//! Checkpoints and the log start: a new owner opens a partition from the newest checkpoint and
//! the commits after it, gets the state replaying the whole chain gives, and falls back to an
//! older checkpoint or the chain when one is damaged or does not belong to the chain. The log
//! start only moves forward, retention moves it past expired commits, and objects below it are
//! deleted without breaking opening or letting a silent old owner write where no one reads.

use crate::put_hook::{HookedStore, PutHook};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, Result as StoreResult};
use riptide_broker::batch;
use riptide_broker::env::Ids;
use riptide_broker::storage::log::{Cache, LogOptions, PartitionLog, CHECKPOINT_EVERY};
use riptide_broker::storage::{checkpoint_prefix, checkpoint_seq, commit_path};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// A batch of `n` records from idempotent producer `pid` at sequence `seq`.
fn batch(pid: i64, seq: i32, n: usize) -> Vec<(batch::BatchHeader, Bytes)> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_000 + pid * 1_000_000 + seq as i64,
            key: None,
            value: Some(Bytes::from(format!("p{pid}-{}", seq as usize + i))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).unwrap();
    batch::validate(&buf.freeze()).unwrap()
}

fn log_on(store: &Arc<dyn ObjectStore>, node_id: i32) -> Arc<PartitionLog> {
    log_with(store, node_id, Duration::from_secs(60))
}

fn log_with(
    store: &Arc<dyn ObjectStore>,
    node_id: i32,
    delete_delay: Duration,
) -> Arc<PartitionLog> {
    let opts = LogOptions {
        node_id,
        bug: None,
        store: store.clone(),
        ids: Arc::new(Ids::new(node_id as u64)),
        cache: Arc::new(Cache::new(1 << 20)),
        appended: Arc::new(Notify::new()),
        max_commit_bytes: 1 << 20,
        delete_delay,
    };
    PartitionLog::new("topic0", 0, &opts)
}

/// Writes `commits` commits of two producers (one commit each, awaited) on a fresh owner.
async fn chain_of(store: &Arc<dyn ObjectStore>, commits: usize) -> Vec<i32> {
    let log = log_on(store, 1);
    log.open().await.unwrap();
    let mut seqs = vec![0i32; 2];
    for i in 0..commits {
        let pid = (i % 2) as i64 + 10;
        let n = 1 + i % 3;
        let at = seqs[i % 2];
        log.append(batch(pid, at, n)).await.unwrap().unwrap();
        seqs[i % 2] += n as i32;
    }
    // Let the background checkpoint writes finish.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    seqs
}

async fn checkpoints(store: &Arc<dyn ObjectStore>) -> Vec<u64> {
    let listed: Vec<_> = store
        .list(Some(&checkpoint_prefix("topic0", 0)))
        .try_collect()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = listed
        .iter()
        .filter_map(|m| checkpoint_seq(&m.location))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// What a reader and a producer can observe of a freshly opened partition.
async fn observed(store: &Arc<dyn ObjectStore>, node_id: i32) -> (i64, Bytes, i64) {
    let log = log_on(store, node_id);
    log.open().await.unwrap();
    let data = log.read(0, usize::MAX).await.unwrap();
    (log.high_watermark(), data, log.last_stable_offset())
}

#[tokio::test]
async fn opening_from_a_checkpoint_gives_what_the_whole_chain_gives() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let seqs = chain_of(&store, 3 * CHECKPOINT_EVERY as usize + 10).await;
    let kept = checkpoints(&store).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|s| s % CHECKPOINT_EVERY == 0), "{kept:?}");
    let with = observed(&store, 2).await;

    // The same chain with every checkpoint gone: the whole chain is read.
    let bare: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let all: Vec<_> = store.list(None).try_collect().await.unwrap();
    for m in all {
        let body = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        if checkpoint_seq(&m.location).is_none() {
            bare.put(&m.location, body.into()).await.unwrap();
        }
    }
    let without = observed(&bare, 2).await;
    assert_eq!(with, without);

    // Producer state came through the checkpoint: a retry of the last batch is a duplicate.
    let log = log_on(&store, 3);
    log.open().await.unwrap();
    let hwm = log.high_watermark();
    let last = seqs[1] - 1;
    let retry = log.append(batch(11, last, 1)).await.unwrap();
    assert!(
        retry.is_ok_and(|base| base < hwm),
        "a retry was written again"
    );
    assert_eq!(log.high_watermark(), hwm);
    let next = log.append(batch(11, seqs[1], 1)).await.unwrap().unwrap();
    assert_eq!(next, hwm);
}

#[tokio::test]
async fn opening_from_a_checkpoint_reads_no_commit_before_it() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    chain_of(&store, 2 * CHECKPOINT_EVERY as usize).await;
    let newest = *checkpoints(&store).await.last().unwrap();
    let before = observed(&store, 2).await;
    // Commits before the checkpoint's own are never read when opening.
    for seq in 0..newest {
        store.delete(&commit_path("topic0", 0, seq)).await.unwrap();
    }
    let log = log_on(&store, 3);
    log.open().await.unwrap();
    assert_eq!(log.high_watermark(), before.0);
}

#[tokio::test]
async fn a_damaged_checkpoint_falls_back_to_an_older_one() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    chain_of(&store, 2 * CHECKPOINT_EVERY as usize + 5).await;
    let before = observed(&store, 2).await;
    let kept = checkpoints(&store).await;
    let newest = Path::from(format!(
        "{}/{:020}.ckpt",
        checkpoint_prefix("topic0", 0),
        kept.last().unwrap()
    ));
    let mut body = store
        .get(&newest)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 0x10;
    store.put(&newest, body.into()).await.unwrap();
    assert_eq!(observed(&store, 3).await, before);
}

#[tokio::test]
async fn a_checkpoint_of_another_chain_is_not_trusted() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let other: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    chain_of(&store, CHECKPOINT_EVERY as usize + 3).await;
    // Another chain of the same shape, with different writes: its checkpoint names the same
    // commit number but a different write.
    let log = log_on(&other, 7);
    log.open().await.unwrap();
    for i in 0..CHECKPOINT_EVERY as i32 + 3 {
        log.append(batch(20, i, 1)).await.unwrap().unwrap();
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let before = observed(&store, 2).await;
    let seq = *checkpoints(&other).await.last().unwrap();
    let path = Path::from(format!(
        "{}/{:020}.ckpt",
        checkpoint_prefix("topic0", 0),
        seq
    ));
    let foreign = other.get(&path).await.unwrap().bytes().await.unwrap();
    store.delete(&path).await.ok();
    store.put(&path, foreign.into()).await.unwrap();
    assert_eq!(observed(&store, 3).await, before);
}

#[tokio::test]
async fn the_log_start_moves_forward_only_and_survives_a_new_owner() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    chain_of(&store, 10).await;
    let log = log_on(&store, 2);
    log.open().await.unwrap();
    let hwm = log.high_watermark();
    assert_eq!(log.log_start(), 0);
    assert_eq!(log.trim_to(5).await.unwrap(), Ok(5));
    // Lower than the start: nothing changes; past the end: refused.
    assert_eq!(log.trim_to(3).await.unwrap(), Ok(5));
    assert_eq!(
        log.trim_to(hwm + 1).await.unwrap(),
        Err(riptide_broker::storage::log::LogError::OffsetOutOfRange)
    );
    assert_eq!(log.log_start(), 5);
    // A read from the start begins with the batch that holds it.
    let data = log.read(5, usize::MAX).await.unwrap();
    let (_, first) = batch::headers(&data).next().unwrap();
    assert!(first.base_offset <= 5 && 5 <= first.last_offset());

    // A new owner learns it from the chain...
    let next = log_on(&store, 3);
    next.open().await.unwrap();
    assert_eq!(next.log_start(), 5);
    // ...and from a checkpoint.
    for i in 0..CHECKPOINT_EVERY as i32 {
        next.append(batch(30, i, 1)).await.unwrap().unwrap();
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!checkpoints(&store).await.is_empty());
    let third = log_on(&store, 4);
    third.open().await.unwrap();
    assert_eq!(third.log_start(), 5);
    assert_eq!(
        third.trim_to(third.high_watermark()).await.unwrap(),
        Ok(third.high_watermark())
    );
    let fourth = log_on(&store, 5);
    fourth.open().await.unwrap();
    assert_eq!(fourth.log_start(), third.high_watermark());
    assert!(fourth
        .read(fourth.log_start(), usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

async fn commit_objects(store: &Arc<dyn ObjectStore>) -> Vec<u64> {
    let listed: Vec<_> = store
        .list(Some(&Path::from("log/topic0/0")))
        .try_collect()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = listed
        .iter()
        .filter_map(|m| riptide_broker::storage::commit_seq(&m.location))
        .collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test]
async fn retention_trims_expired_commits_and_objects_below_go_after_the_delay() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_with(&store, 1, Duration::ZERO);
    log.open().await.unwrap();
    // Producer 10's records are old (timestamps ~10 s), producer 20's new (~20 s).
    for i in 0..CHECKPOINT_EVERY as i32 {
        log.append(batch(10, i, 1)).await.unwrap().unwrap();
    }
    for i in 0..3 * CHECKPOINT_EVERY as i32 {
        log.append(batch(20, i, 1)).await.unwrap().unwrap();
    }
    settle().await;
    let old_end = CHECKPOINT_EVERY as i64;
    // Nothing expired yet; then the old producer's commits, and only they, expire.
    assert_eq!(log.expired_below(10_000_000, Some(1_000), None), None);
    assert_eq!(
        log.expired_below(19_000_000, Some(1_000), None),
        Some(old_end)
    );
    // By size: keep 10 bytes at least, so all but the last commit go.
    let hwm = log.high_watermark();
    assert_eq!(log.expired_below(0, None, Some(10)), Some(hwm - 1));
    assert_eq!(log.trim_to(old_end).await.unwrap(), Ok(old_end));
    log.collect_garbage().await;
    let left = commit_objects(&store).await;
    let kept = checkpoints(&store).await;
    // Every commit below the first one a reader needs, and below the oldest checkpoint, is gone.
    assert!(left[0] > 0 && left[0] <= kept[0], "{left:?} {kept:?}");
    assert_eq!(*left.last().unwrap() - left[0] + 1, left.len() as u64);
    // A new owner opens the partition and reads from the log start.
    let next = log_on(&store, 2);
    next.open().await.unwrap();
    assert_eq!((next.log_start(), next.high_watermark()), (old_end, hwm));
    assert!(!next.read(old_end, usize::MAX).await.unwrap().is_empty());
}

#[tokio::test]
async fn nothing_is_deleted_before_the_delay_or_without_a_checkpoint() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_with(&store, 1, Duration::from_secs(3600));
    log.open().await.unwrap();
    for i in 0..3 * CHECKPOINT_EVERY as i32 {
        log.append(batch(10, i, 1)).await.unwrap().unwrap();
    }
    settle().await;
    let before = commit_objects(&store).await;
    log.trim_to(log.high_watermark() - 1)
        .await
        .unwrap()
        .unwrap();
    log.collect_garbage().await;
    assert_eq!(commit_objects(&store).await.len(), before.len() + 1);

    let young: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_with(&young, 1, Duration::ZERO);
    log.open().await.unwrap();
    for i in 0..10 {
        log.append(batch(10, i, 1)).await.unwrap().unwrap();
    }
    log.trim_to(5).await.unwrap().unwrap();
    log.collect_garbage().await;
    assert_eq!(commit_objects(&young).await, (0..12).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_silent_old_owner_cannot_write_below_the_new_owners_log_start() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = log_with(&store, 1, Duration::ZERO);
    old.open().await.unwrap();
    old.append(batch(10, 0, 1)).await.unwrap().unwrap();
    // A new owner takes over, writes on, trims everything and deletes what is below.
    let new = log_with(&store, 2, Duration::ZERO);
    new.open().await.unwrap();
    for i in 0..3 * CHECKPOINT_EVERY as i32 {
        new.append(batch(20, i, 1)).await.unwrap().unwrap();
    }
    settle().await;
    new.trim_to(new.high_watermark()).await.unwrap().unwrap();
    new.collect_garbage().await;
    let left = commit_objects(&store).await;
    assert!(left[0] > 2, "{left:?}");
    // The old owner's next slot (2) was deleted: its write lands there, where no reader looks,
    // and must not be acknowledged.
    let answer = old.append(batch(10, 1, 1)).await.unwrap();
    assert_eq!(answer, Err(riptide_broker::storage::log::LogError::Fenced));
    assert_eq!(
        commit_objects(&store).await,
        left,
        "the orphan was not removed"
    );
}

/// A store whose first `fail` checkpoint PUTs fail, and whose checkpoint PUTs wait at `gate`
/// (when there is one) before going through.
struct CheckpointFaults {
    fail: AtomicUsize,
    attempts: AtomicUsize,
    gate: Option<Semaphore>,
}

impl CheckpointFaults {
    fn new(fail: usize, gated: bool) -> Arc<HookedStore<Self>> {
        HookedStore::new(CheckpointFaults {
            fail: AtomicUsize::new(fail),
            attempts: AtomicUsize::new(0),
            gate: gated.then(|| Semaphore::new(0)),
        })
    }
    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PutHook for CheckpointFaults {
    async fn before_put(&self, location: &Path) -> StoreResult<()> {
        if checkpoint_seq(location).is_some() {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                drop(gate.acquire().await);
            }
            let failing = self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(object_store::Error::Generic {
                    store: "test",
                    source: "checkpoint PUT refused".into(),
                });
            }
        }
        Ok(())
    }
}

/// Appends `n` one-record commits of producer 40, each awaited, then lets background writes run.
async fn append_commits(log: &Arc<PartitionLog>, from: i32, n: i32) {
    for i in from..from + n {
        log.append(batch(40, i, 1)).await.unwrap().unwrap();
        settle().await;
    }
}

#[tokio::test]
async fn a_checkpoint_whose_write_failed_is_tried_again_at_the_next_commit() {
    let faulty = CheckpointFaults::new(1, false);
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = log_on(&store, 1);
    log.open().await.unwrap();
    // The fence is commit 0, so the 64th append is commit 64: its checkpoint is refused.
    append_commits(&log, 0, CHECKPOINT_EVERY as i32).await;
    assert_eq!(faulty.hook.attempts(), 1);
    assert!(checkpoints(&store).await.is_empty());
    // The next commit writes one: opening stays within its bound, not 64 commits more.
    append_commits(&log, CHECKPOINT_EVERY as i32, 1).await;
    assert_eq!(checkpoints(&store).await, vec![CHECKPOINT_EVERY + 1]);
    // Once one landed, the next comes CHECKPOINT_EVERY commits after it.
    append_commits(&log, CHECKPOINT_EVERY as i32 + 1, CHECKPOINT_EVERY as i32).await;
    assert_eq!(
        checkpoints(&store).await,
        vec![CHECKPOINT_EVERY + 1, 2 * CHECKPOINT_EVERY + 1]
    );
    assert_eq!(faulty.hook.attempts(), 3);
}

#[tokio::test]
async fn a_store_refusing_checkpoints_gets_them_with_a_growing_spacing() {
    let faulty = CheckpointFaults::new(usize::MAX, false);
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = log_on(&store, 1);
    log.open().await.unwrap();
    append_commits(&log, 0, CHECKPOINT_EVERY as i32 + 100).await;
    // Commits 64, 65, 67, 71, 79, then every 16th: 95, 111, 127, 143, 159.
    assert_eq!(faulty.hook.attempts(), 10);
    assert!(checkpoints(&store).await.is_empty());
}

#[tokio::test]
async fn one_checkpoint_write_at_a_time_and_the_next_follows_what_landed() {
    let faulty = CheckpointFaults::new(0, true);
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let log = log_on(&store, 1);
    log.open().await.unwrap();
    // The write of commit 64's checkpoint hangs while the chain grows past two intervals.
    append_commits(&log, 0, 3 * CHECKPOINT_EVERY as i32).await;
    assert_eq!(faulty.hook.attempts(), 1, "a second checkpoint write began");
    faulty
        .hook
        .gate
        .as_ref()
        .unwrap()
        .add_permits(usize::MAX >> 4);
    settle().await;
    assert_eq!(checkpoints(&store).await, vec![CHECKPOINT_EVERY]);
    // Commit 192 is more than 64 past what landed: the next commit writes a checkpoint.
    append_commits(&log, 3 * CHECKPOINT_EVERY as i32, 1).await;
    assert_eq!(
        checkpoints(&store).await,
        vec![CHECKPOINT_EVERY, 3 * CHECKPOINT_EVERY + 1]
    );
}
