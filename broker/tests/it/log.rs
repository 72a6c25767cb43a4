//! The partition log's invariants against an in-memory object store:
//! contiguous offsets, fencing of a previous owner, recovery from the store
//! alone, and ambiguous writes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use riptide_broker::batch;
use riptide_broker::env::Ids;
use riptide_broker::storage::log::{Cache, LogError, LogOptions, PartitionLog};
use riptide_faults::store::FaultHandle;
use riptide_faults::{FaultyStore, StoreFaults};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

fn batch_of(values: &[&str], ts: i64) -> Vec<(batch::BatchHeader, Bytes)> {
    sequenced_batch_of(values, ts, -1, -1)
}

/// A batch from idempotent producer `pid` starting at sequence `seq` (-1: none).
fn sequenced_batch_of(
    values: &[&str],
    ts: i64,
    pid: i64,
    seq: i32,
) -> Vec<(batch::BatchHeader, Bytes)> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: ts + i as i64,
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

/// Every (offset, value) in the log, decoded.
async fn contents(log: &PartitionLog) -> Vec<(i64, String)> {
    let mut raw = log.read(0, usize::MAX).await.unwrap();
    let mut out = Vec::new();
    while !raw.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut raw).unwrap();
        for r in set.records {
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn offsets_are_contiguous_under_concurrent_appends() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let log = log_on(store, 1);
    log.open().await.unwrap();
    let mut waits = Vec::new();
    for i in 0..50 {
        let v1 = format!("a{i}");
        let v2 = format!("b{i}");
        waits.push(log.append(batch_of(&[&v1, &v2], 0)));
    }
    let mut bases = Vec::new();
    for w in waits {
        bases.push(w.await.unwrap().unwrap());
    }
    assert_eq!(bases, (0..50).map(|i| i * 2).collect::<Vec<i64>>());
    assert_eq!(log.high_watermark(), 100);
    let got = contents(&log).await;
    assert_eq!(got.len(), 100);
    for (i, (offset, _)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
    }
    assert_eq!(got[3].1, "b1");
}

#[tokio::test]
async fn a_new_owner_fences_the_old_one_and_sees_its_data() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = log_on(store.clone(), 1);
    old.open().await.unwrap();
    assert_eq!(
        old.append(batch_of(&["x", "y"], 0)).await.unwrap().unwrap(),
        0
    );

    let new = log_on(store.clone(), 2);
    new.open().await.unwrap();
    assert_eq!(new.high_watermark(), 2);

    let stale = old.append(batch_of(&["lost?"], 0)).await.unwrap();
    assert!(matches!(stale, Err(LogError::Fenced)), "{stale:?}");
    assert!(old.is_closed());

    assert_eq!(new.append(batch_of(&["z"], 0)).await.unwrap().unwrap(), 2);
    let got = contents(&new).await;
    assert_eq!(got, vec![(0, "x".into()), (1, "y".into()), (2, "z".into())]);
}

#[tokio::test]
async fn a_fresh_broker_recovers_everything_from_the_store() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let first = log_on(store.clone(), 1);
    first.open().await.unwrap();
    for i in 0..10 {
        first
            .append(batch_of(&[&format!("v{i}")], 100 * i))
            .await
            .unwrap()
            .unwrap();
    }
    drop(first); // "crash": nothing of its memory survives
    let second = log_on(store, 1);
    second.open().await.unwrap();
    assert_eq!(second.high_watermark(), 10);
    assert_eq!(contents(&second).await.len(), 10);
    assert_eq!(
        second.offset_for_timestamp(450).await.unwrap(),
        Some((5, 500))
    );
    assert_eq!(second.offset_for_timestamp(10_000).await.unwrap(), None);
    assert_eq!(second.max_timestamp().await.unwrap(), Some((9, 900)));
}

/// An in-memory store whose next writes can be applied with the reply lost.
fn lossy_store() -> (Arc<dyn ObjectStore>, FaultHandle) {
    let faults: FaultHandle = Arc::new(Mutex::new(StoreFaults::healthy((0, 0))));
    let store = FaultyStore::new(Arc::new(InMemory::new()), "test", faults.clone(), 1);
    (Arc::new(store), faults)
}

/// Loses the reply of every write `during` does.
async fn replies_lost<T>(faults: &FaultHandle, during: impl std::future::Future<Output = T>) -> T {
    faults.lock().unwrap().ambiguous_rate = 1.0;
    let out = during.await;
    faults.lock().unwrap().ambiguous_rate = 0.0;
    out
}

#[tokio::test]
async fn an_ambiguous_write_is_never_overwritten_and_offsets_stay_contiguous() {
    let (store, faults) = lossy_store();
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    assert_eq!(log.append(batch_of(&["a"], 0)).await.unwrap().unwrap(), 0);
    let lost = replies_lost(&faults, log.append(batch_of(&["b"], 0)))
        .await
        .unwrap();
    assert!(matches!(lost, Err(LogError::Store(_))), "{lost:?}");
    // The write landed although the caller saw an error: the next append
    // must find it and go after it.
    assert_eq!(log.append(batch_of(&["c"], 0)).await.unwrap().unwrap(), 2);
    let got = contents(&log).await;
    assert_eq!(got, vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]);
}

#[tokio::test]
async fn a_commit_resent_by_the_store_client_finds_its_own_write_and_is_acked_once() {
    // The store client re-sends a create-if-absent put whose reply was lost (as object_store's
    // retry layer and S3 SDKs do): the re-send answers AlreadyExists over our own first attempt.
    let (store, faults) = lossy_store();
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    assert_eq!(log.append(batch_of(&["a"], 0)).await.unwrap().unwrap(), 0);
    faults.lock().unwrap().resend_share = 1.0;
    let resent = replies_lost(&faults, log.append(batch_of(&["b"], 0)))
        .await
        .unwrap();
    assert_eq!(resent.unwrap(), 1, "our own earlier attempt is our commit");
    assert_eq!(log.high_watermark(), 2);
    assert_eq!(log.append(batch_of(&["c"], 0)).await.unwrap().unwrap(), 2);
    let got = contents(&log).await;
    assert_eq!(got, vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]);
}

#[tokio::test]
async fn an_idempotent_retry_after_an_ambiguous_write_is_not_written_twice() {
    let (store, faults) = lossy_store();
    let log = log_on(store.clone(), 1);
    log.open().await.unwrap();
    assert_eq!(
        log.append(sequenced_batch_of(&["a"], 0, 7, 0))
            .await
            .unwrap()
            .unwrap(),
        0
    );
    let lost = replies_lost(&faults, log.append(sequenced_batch_of(&["b"], 0, 7, 1)))
        .await
        .unwrap();
    assert!(matches!(lost, Err(LogError::Store(_))), "{lost:?}");
    // The client retries the identical batch: it gets the original offset.
    let retry = log
        .append(sequenced_batch_of(&["b"], 0, 7, 1))
        .await
        .unwrap();
    assert_eq!(retry.unwrap(), 1);
    // A gap in the sequence is refused; the next in line is accepted.
    let gap = log
        .append(sequenced_batch_of(&["d"], 0, 7, 3))
        .await
        .unwrap();
    assert!(matches!(gap, Err(LogError::OutOfOrderSequence)), "{gap:?}");
    assert_eq!(
        log.append(sequenced_batch_of(&["c"], 0, 7, 2))
            .await
            .unwrap()
            .unwrap(),
        2
    );
    assert_eq!(
        contents(&log).await,
        vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
    );
    // A fresh broker rebuilds producer state from the chain alone.
    let fresh = log_on(store, 2);
    fresh.open().await.unwrap();
    let again = fresh
        .append(sequenced_batch_of(&["c"], 0, 7, 2))
        .await
        .unwrap();
    assert_eq!(
        again.unwrap(),
        2,
        "a retry reaching a new owner is still a duplicate"
    );
}
