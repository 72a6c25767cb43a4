//! A partition's side of transactions: the last stable offset, markers, aborted ranges, the
//! KIP-890 guard against a late batch, and recovery of all of it from the chain alone.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use riptide_broker::batch;
use riptide_broker::env::Ids;
use riptide_broker::storage::log::{AbortedTxn, Cache, LogError, LogOptions, PartitionLog};
use std::sync::Arc;
use tokio::sync::Notify;

/// A batch of producer `pid` (epoch `epoch`) from sequence `seq`, transactional or not.
fn batch(
    values: &[&str],
    pid: i64,
    epoch: i16,
    seq: i32,
    txn: bool,
) -> Vec<(batch::BatchHeader, Bytes)> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: txn,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
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

fn log_on(store: Arc<dyn ObjectStore>, node_id: i32) -> Arc<PartitionLog> {
    let opts = LogOptions {
        node_id,
        bug: None,
        store,
        ids: Arc::new(Ids::new(node_id as u64)),
        cache: Arc::new(Cache::new(1 << 20)),
        appended: Arc::new(Notify::new()),
        max_commit_bytes: 1 << 20,
        delete_delay: std::time::Duration::from_secs(60),
    };
    PartitionLog::new("topic0", 0, &opts)
}

async fn append_txn(
    log: &Arc<PartitionLog>,
    values: &[&str],
    pid: i64,
    epoch: i16,
    seq: i32,
) -> Result<i64, LogError> {
    let guard = log.txn_guard(pid);
    log.append_transactional(batch(values, pid, epoch, seq, true), guard, "tx", 1000)
        .await
        .unwrap()
}

async fn mark(
    log: &Arc<PartitionLog>,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> Result<i64, LogError> {
    log.append_marker(pid, epoch, commit, 0, 0).await.unwrap()
}

#[tokio::test]
async fn the_last_stable_offset_waits_for_the_marker_and_aborted_ranges_are_kept() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    assert_eq!(
        log.append(batch(&["plain"], -1, -1, -1, false))
            .await
            .unwrap(),
        Ok(0)
    );
    assert_eq!(append_txn(&log, &["a", "b"], 7, 0, 0).await, Ok(1));
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (3, 1));
    assert!(log.in_transaction(7));
    // Another producer's transaction commits meanwhile; the stable offset still waits for 7.
    assert_eq!(append_txn(&log, &["x"], 8, 0, 0).await, Ok(3));
    assert_eq!(mark(&log, 8, 0, true).await, Ok(4));
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(mark(&log, 7, 0, false).await, Ok(5));
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (6, 6));
    let aborted = vec![AbortedTxn {
        producer_id: 7,
        first_offset: 1,
        last_offset: 5,
    }];
    assert_eq!(log.txn_view(0, 6).2, aborted);
    assert!(log.txn_view(6, 9).2.is_empty());
    // A second marker finds nothing open and writes nothing.
    assert_eq!(
        mark(&log, 7, 0, false).await,
        Err(LogError::NoOpenTransaction)
    );
    assert_eq!(log.high_watermark(), 6);

    // A fresh owner rebuilds the same view from the commit headers alone.
    let next = log_on(store, 2);
    next.open().await.unwrap();
    assert_eq!((next.high_watermark(), next.last_stable_offset()), (6, 6));
    assert_eq!(next.txn_view(0, 6).2, aborted);
    assert!(!next.in_transaction(7));
}

#[tokio::test]
async fn an_open_transaction_survives_a_change_of_owner() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    assert_eq!(append_txn(&log, &["a"], 7, 0, 0).await, Ok(0));
    let next = log_on(store, 2);
    next.open().await.unwrap();
    assert_eq!(next.last_stable_offset(), 0);
    // Which transactional id holds it open, and since when, came with it: the owner can wake
    // that id's coordinator.
    assert_eq!(next.open_since(1001), vec!["tx".to_string()]);
    assert!(next.open_since(1000).is_empty());
    // The rest of the transaction needs no new verification on the new owner.
    let more = next.append_transactional(batch(&["b"], 7, 0, 1, true), 99, "tx", 2000);
    assert_eq!(more.await.unwrap(), Ok(1));
    assert_eq!(mark(&next, 7, 0, true).await, Ok(2));
    assert_eq!(next.last_stable_offset(), 3);
    assert!(next.open_since(i64::MAX).is_empty());
}

#[tokio::test]
async fn a_batch_whose_transaction_ended_while_it_waited_is_refused() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store, 1);
    log.open().await.unwrap();
    // Verified (guard taken), then a marker for the producer came: the batch may not begin a
    // transaction the coordinator already ended (KIP-890's hanging transaction).
    let guard = log.txn_guard(7);
    assert_eq!(
        mark(&log, 7, 0, false).await,
        Err(LogError::NoOpenTransaction)
    );
    let late = log.append_transactional(batch(&["late"], 7, 0, 0, true), guard, "tx", 1000);
    assert_eq!(late.await.unwrap(), Err(LogError::InvalidTxnState));
    assert_eq!(log.high_watermark(), 0);
    // Unverified transactional batches never begin a transaction.
    let unverified = log.append(batch(&["u"], 7, 0, 0, true));
    assert_eq!(unverified.await.unwrap(), Err(LogError::InvalidTxnState));
    // A plain batch from a producer with a transaction open is refused too.
    assert_eq!(append_txn(&log, &["a"], 7, 0, 0).await, Ok(0));
    let plain = log.append(batch(&["p"], 7, 0, 1, false));
    assert_eq!(plain.await.unwrap(), Err(LogError::InvalidTxnState));
}

#[tokio::test]
async fn a_marker_of_a_newer_epoch_fences_the_old_one() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store, 1);
    log.open().await.unwrap();
    assert_eq!(append_txn(&log, &["a"], 7, 0, 0).await, Ok(0));
    // The coordinator aborted on a timeout with the epoch bumped: the zombie's next batch of
    // epoch 0 is refused, and a stale marker of epoch 0 too.
    assert_eq!(mark(&log, 7, 1, false).await, Ok(1));
    assert_eq!(
        append_txn(&log, &["zombie"], 7, 0, 1).await,
        Err(LogError::ProducerFenced)
    );
    assert_eq!(append_txn(&log, &["new"], 7, 1, 0).await, Ok(2));
    assert_eq!(mark(&log, 7, 0, true).await, Err(LogError::ProducerFenced));
    assert_eq!(mark(&log, 7, 1, true).await, Ok(3));
}

/// A coordinator that lost a transactional id may still deliver the markers of a transaction
/// its successor already finished; by then the producer's next transaction (same epoch under
/// KIP-890 part 2: the markers carry the epoch the next one runs under) may be open here. The
/// partition remembers the newest coordinator epoch per producer, durably, and refuses the
/// older coordinator's marker instead of letting it end the new transaction.
#[tokio::test]
async fn a_marker_from_a_deposed_coordinator_cannot_end_the_next_transaction() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    let marker = |log: &Arc<PartitionLog>, coordinator_epoch: i32| {
        log.append_marker(7, 1, true, coordinator_epoch, 0)
    };
    assert_eq!(append_txn(&log, &["a"], 7, 0, 0).await, Ok(0));
    // The new coordinator (epoch 3) finishes the first transaction here...
    assert_eq!(marker(&log, 3).await.unwrap(), Ok(1));
    // ...the producer's next one begins (epoch 1)...
    assert_eq!(append_txn(&log, &["b"], 7, 1, 0).await, Ok(2));
    // ...and the deposed coordinator (epoch 2) delivers the first one's marker late.
    assert_eq!(
        marker(&log, 2).await.unwrap(),
        Err(LogError::CoordinatorFenced)
    );
    assert_eq!(
        log.last_stable_offset(),
        2,
        "the new transaction is still open"
    );

    // A marker with nothing to end still raises the epoch, and a new owner knows it.
    let other = log_on(store.clone(), 1);
    other.open().await.unwrap();
    assert_eq!(marker(&other, 3).await.unwrap(), Ok(3));
    assert_eq!(
        other.append_marker(7, 1, true, 5, 0).await.unwrap(),
        Err(LogError::NoOpenTransaction)
    );
    let moved = log_on(store, 2);
    moved.open().await.unwrap();
    assert_eq!(append_txn(&moved, &["c"], 7, 1, 1).await, Ok(4));
    assert_eq!(
        moved.append_marker(7, 1, true, 4, 0).await.unwrap(),
        Err(LogError::CoordinatorFenced)
    );
    assert_eq!(moved.append_marker(7, 1, true, 5, 0).await.unwrap(), Ok(5));
}
