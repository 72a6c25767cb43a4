//! Each invariant the broker asserts (`always!`) fires when its state is broken: a chain made
//! by hand in the store (a hole, a gap in offsets, an epoch that goes back, an object that is
//! not a commit, a commit changed after it was written), or a planted bug that breaks it. Each
//! test runs the broker under `riptide_coverage::collect_all`, as the simulator does, and looks
//! for the breach by name; the broker's answer stays what it was before the assertion existed.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use riptide_broker::batch::{self, BatchHeader};
use riptide_broker::bugs::Bug;
use riptide_broker::env::Ids;
use riptide_broker::groups::{log_id, Group};
use riptide_broker::storage::commit::{self, CommitHeader};
use riptide_broker::storage::commit_path;
use riptide_broker::storage::log::{Cache, LogError, LogOptions, PartitionLog};
use riptide_coverage::{Breach, Invariants};
use riptide_faults::store::FaultHandle;
use riptide_faults::{FaultyStore, StoreFaults};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

const TOPIC: &str = "topic0";

/// Runs `f` on a runtime of this thread, collecting as a simulation does.
fn collected<T>(f: impl Future<Output = T>) -> (T, Invariants) {
    let (out, c) = riptide_coverage::collect_all(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    });
    (out, c.invariants)
}

/// The breaches of invariant `name` (without the `broker/` component).
fn of<'a>(inv: &'a Invariants, name: &str) -> Vec<&'a Breach> {
    let key = format!("broker/{name}");
    inv.breaches.iter().filter(|b| b.name == key).collect()
}

fn opts(store: Arc<dyn ObjectStore>, node_id: i32, bug: Option<Bug>) -> LogOptions {
    LogOptions {
        node_id,
        bug,
        store,
        ids: Arc::new(Ids::new(node_id as u64)),
        cache: Arc::new(Cache::new(1 << 20)),
        appended: Arc::new(Notify::new()),
        max_commit_bytes: 1 << 20,
        delete_delay: std::time::Duration::from_secs(60),
    }
}

fn log_on(store: Arc<dyn ObjectStore>, node_id: i32, bug: Option<Bug>) -> Arc<PartitionLog> {
    PartitionLog::new(TOPIC, 0, &opts(store, node_id, bug))
}

fn records(kvs: &[(&str, &str)], pid: i64, seq: i32) -> Vec<(BatchHeader, Bytes)> {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: i as i64,
            key: (!k.is_empty()).then(|| Bytes::from(k.to_string())),
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

fn values(vs: &[&str]) -> Vec<(BatchHeader, Bytes)> {
    let kvs: Vec<(&str, &str)> = vs.iter().map(|v| ("", *v)).collect();
    records(&kvs, -1, -1)
}

/// The batch bytes of `values` with offsets from `base` on.
fn data_at(base: i64, vs: &[&str]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut at = base;
    for (h, raw) in values(vs) {
        batch::rebase(&raw, at, &mut out);
        at += h.records as i64;
    }
    out.to_vec()
}

fn header(seq: u64, base_offset: i64, records: i64, epoch: u64, node_id: i32) -> CommitHeader {
    CommitHeader {
        seq,
        base_offset,
        records,
        epoch,
        node_id,
        write_id: seq,
        max_timestamp: -1,
        data_len: 0,
        producers: vec![],
        txn_begins: vec![],
        txn_ends: vec![],
        txn_fences: vec![],
        log_start: None,
    }
}

/// Writes commit `h` with `data` (its `data_len` set to match) into the chain by hand.
async fn put(store: &Arc<dyn ObjectStore>, mut h: CommitHeader, data: &[u8]) {
    h.data_len = data.len() as u64;
    put_raw(store, h.seq, commit::encode(&h, data)).await;
}

async fn put_raw(store: &Arc<dyn ObjectStore>, seq: u64, body: Bytes) {
    store
        .put(&commit_path(TOPIC, 0, seq), PutPayload::from(body))
        .await
        .unwrap();
}

fn memory() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

#[test]
fn a_chain_with_a_missing_commit_breaks_chain_has_no_holes() {
    let (opened, inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 1, 1), &[]).await;
        put(&store, header(2, 0, 0, 1, 1), &[]).await;
        log_on(store, 2, None).open().await
    });
    assert!(matches!(opened, Err(LogError::Corrupt(_))), "{opened:?}");
    let b = of(&inv, "log.chain_has_no_holes");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert!(b[0].detail.contains("commit 1 expected"), "{}", b[0].detail);
    assert!(b[0].place.starts_with("broker/src/storage/log.rs:"));
}

#[test]
fn a_commit_that_names_another_number_breaks_commit_names_its_own_seq() {
    let (checked, inv) = collected(async {
        let store = memory();
        let log = log_on(store.clone(), 1, None);
        log.open().await.unwrap();
        // Commit 1, found where the owner's next commit goes, says it is commit 7.
        put_raw(&store, 1, commit::encode(&header(7, 0, 0, 5, 2), &[])).await;
        log.verify_tail_now().await
    });
    assert!(matches!(checked, Err(LogError::Corrupt(_))), "{checked:?}");
    assert_eq!(
        of(&inv, "log.commit_names_its_own_seq").len(),
        1,
        "{inv:#?}"
    );
}

#[test]
fn a_commit_that_does_not_start_at_the_end_of_the_log_breaks_offsets_contiguous() {
    let (opened, inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 1, 1), &[]).await;
        put(&store, header(1, 0, 2, 1, 1), &data_at(0, &["a", "b"])).await;
        put(&store, header(2, 5, 1, 1, 1), &data_at(5, &["c"])).await;
        log_on(store, 2, None).open().await
    });
    assert!(matches!(opened, Err(LogError::Corrupt(_))), "{opened:?}");
    let b = of(&inv, "log.offsets_contiguous");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert_eq!(
        b[0].detail,
        "commit 2 starts at offset 5 but the log ends at 2"
    );
}

#[test]
fn a_commit_with_a_negative_record_count_breaks_records_not_negative() {
    let (hwm, inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 1, 1), &[]).await;
        put(&store, header(1, 0, -1, 1, 1), &[]).await;
        let log = log_on(store, 2, None);
        // Read as before: an empty commit.
        log.open().await.unwrap();
        log.high_watermark()
    });
    assert_eq!(hwm, 0);
    assert_eq!(of(&inv, "log.records_not_negative").len(), 1, "{inv:#?}");
}

#[test]
fn a_commit_of_an_older_epoch_after_a_newer_one_breaks_epochs_never_decrease() {
    let ((), inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 2, 1), &[]).await;
        // Broker 2, fenced by epoch 2, appended anyway.
        put(&store, header(1, 0, 1, 1, 2), &data_at(0, &["late"])).await;
        log_on(store, 3, None).open().await.unwrap();
    });
    let b = of(&inv, "log.epochs_never_decrease");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert_eq!(
        b[0].detail,
        "commit 1 (broker 2) has epoch 1 after a commit of epoch 2"
    );
}

#[test]
fn two_brokers_writing_one_epoch_break_one_owner_per_epoch() {
    let ((), inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 1, 1), &[]).await;
        put(&store, header(1, 0, 0, 1, 2), &[]).await;
        log_on(store, 3, None).open().await.unwrap();
    });
    assert_eq!(of(&inv, "log.one_owner_per_epoch").len(), 1, "{inv:#?}");
}

#[test]
fn an_object_in_the_chain_that_is_not_a_commit_breaks_commit_is_well_formed() {
    let (opened, inv) = collected(async {
        let store = memory();
        put_raw(&store, 0, Bytes::from_static(b"not a commit at all")).await;
        log_on(store, 1, None).open().await
    });
    assert!(matches!(opened, Err(LogError::Corrupt(_))), "{opened:?}");
    let b = of(&inv, "log.commit_is_well_formed");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert!(
        b[0].detail.contains("not a commit object"),
        "{}",
        b[0].detail
    );
}

#[test]
fn a_group_commit_that_drops_its_last_batch_breaks_written_batches_match_header() {
    let (acks, inv) = collected(async {
        let log = log_on(memory(), 1, Some(Bug::DropBatchTail));
        log.open().await.unwrap();
        // Queued together, they go in one commit; the bug leaves the last one's data out.
        let waits: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|v| log.append(values(&[v])))
            .collect();
        let mut acks = Vec::new();
        for w in waits {
            acks.push(w.await.unwrap().unwrap());
        }
        acks
    });
    assert_eq!(acks, vec![0, 1, 2], "all three acknowledged, as before");
    let b = of(&inv, "log.written_batches_match_header");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert!(
        b[0].detail
            .ends_with("the batches hold offsets 0..2, the header says 3 records from 0"),
        "{}",
        b[0].detail
    );
}

#[test]
fn a_commit_replaced_in_the_store_after_it_was_read_breaks_stored_commit_matches_index() {
    let (read, inv) = collected(async {
        let store = memory();
        let writer = log_on(store.clone(), 1, None);
        writer.open().await.unwrap();
        writer.append(values(&["a", "b"])).await.unwrap().unwrap();
        // A fresh broker learns the chain's headers; then commit 1 changes under it.
        let reader = log_on(store.clone(), 2, None);
        reader.open().await.unwrap();
        put(&store, header(1, 0, 3, 1, 1), &data_at(0, &["x", "y", "z"])).await;
        reader.read(0, usize::MAX).await.map(|b| b.len())
    });
    assert!(read.is_ok(), "the read answers as before: {read:?}");
    assert_eq!(
        of(&inv, "log.stored_commit_matches_index").len(),
        1,
        "{inv:#?}"
    );
}

#[test]
fn a_commit_whose_batches_hold_fewer_records_than_its_header_breaks_stored_batches_match_header() {
    let (read, inv) = collected(async {
        let store = memory();
        put(&store, header(0, 0, 0, 1, 1), &[]).await;
        put(&store, header(1, 0, 3, 1, 1), &data_at(0, &["a", "b"])).await;
        let log = log_on(store, 2, None);
        log.open().await.unwrap();
        log.read(0, usize::MAX).await.map(|b| b.len())
    });
    assert!(read.is_ok(), "{read:?}");
    assert_eq!(
        of(&inv, "log.stored_batches_match_header").len(),
        1,
        "{inv:#?}"
    );
}

#[test]
fn an_append_acknowledged_although_its_commit_failed_breaks_acked_offsets_are_committed() {
    let (ack, inv) = collected(async {
        let faults: FaultHandle = Arc::new(Mutex::new(StoreFaults::healthy((0, 0))));
        let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(
            Arc::new(InMemory::new()),
            "test",
            faults.clone(),
            1,
        ));
        let log = log_on(store, 1, Some(Bug::AckBeforeCommit));
        log.open().await.unwrap();
        faults.lock().unwrap().error_rate = 1.0;
        log.append(values(&["a"])).await.unwrap()
    });
    assert_eq!(ack.unwrap(), 0, "acknowledged, as the bug does");
    let b = of(&inv, "log.acked_offsets_are_committed");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert!(
        b[0].detail
            .ends_with("answered base offset 0 for 1 records with the log ending at 0"),
        "{}",
        b[0].detail
    );
}

#[test]
fn a_read_from_inside_a_batch_that_skips_it_breaks_read_starts_at_the_requested_offset() {
    let (read, inv) = collected(async {
        let log = log_on(memory(), 1, Some(Bug::MidBatchFetchSkip));
        log.open().await.unwrap();
        // One batch of three records (the encoder keeps an idempotent producer's run in one).
        let three = records(&[("", "a"), ("", "b"), ("", "c")], 9, 0);
        assert_eq!(three.len(), 1);
        log.append(three).await.unwrap().unwrap();
        log.append(values(&["d"])).await.unwrap().unwrap();
        log.read(1, usize::MAX).await.map(|b| b.len())
    });
    assert!(read.is_ok(), "{read:?}");
    let b = of(&inv, "log.read_starts_at_the_requested_offset");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert!(
        b[0].detail
            .ends_with("a read from offset 1 began with the batch 3..=3"),
        "{}",
        b[0].detail
    );
}

#[test]
fn an_unknown_producer_accepted_mid_sequence_breaks_sequence_follows() {
    let (ack, inv) = collected(async {
        let log = log_on(memory(), 1, Some(Bug::LoseProducerState));
        log.open().await.unwrap();
        log.append(records(&[("", "a")], 7, 5)).await.unwrap()
    });
    assert_eq!(ack.unwrap(), 0);
    let b = of(&inv, "producers.sequence_follows");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert_eq!(
        b[0].detail,
        "producer 7 epoch 0 appended sequence 5 after None"
    );
}

/// Appends `kvs` as records of group `g`'s chain, as a coordinator would, then opens the group.
async fn group_with_records(kvs: &[(&str, &str)]) {
    let store = memory();
    let log = PartitionLog::new(&log_id("g"), 0, &opts(store.clone(), 1, None));
    log.open().await.unwrap();
    for kv in kvs {
        log.append(records(&[*kv], -1, -1)).await.unwrap().unwrap();
    }
    log.close();
    let group = Group::open("g", &opts(store, 2, None)).await.unwrap();
    group.close();
}

#[test]
fn a_generation_that_goes_back_in_a_group_chain_breaks_generation_never_decreases() {
    let ((), inv) = collected(group_with_records(&[
        ("generation", "5"),
        ("generation", "3"),
    ]));
    let b = of(&inv, "group.generation_never_decreases");
    assert_eq!(b.len(), 1, "{inv:#?}");
    assert_eq!(b[0].detail, "generation 3 recorded after generation 5");
}

#[test]
fn a_generation_record_that_does_not_parse_breaks_records_well_formed() {
    let ((), inv) = collected(group_with_records(&[("generation", "many")]));
    assert_eq!(of(&inv, "group.records_well_formed").len(), 1, "{inv:#?}");
}

#[test]
fn an_offset_record_that_does_not_parse_breaks_offset_records_well_formed() {
    let ((), inv) = collected(group_with_records(&[
        ("o\u{0}t\u{0}zero", r#"{"offset":5}"#),
        ("o\u{0}t\u{0}1", r#"{"offset":"five"}"#),
        ("o\u{0}t\u{0}2", r#"{"offset":7,"metadata":null}"#),
    ]));
    assert_eq!(
        of(&inv, "group.offset_records_well_formed").len(),
        2,
        "{inv:#?}"
    );
}

#[test]
fn a_correct_broker_breaks_nothing_and_checks_its_invariants() {
    let ((), inv) = collected(async {
        let store = memory();
        let first = log_on(store.clone(), 1, None);
        first.open().await.unwrap();
        for i in 0..5 {
            let v = format!("v{i}");
            first.append(values(&[&v, "w"])).await.unwrap().unwrap();
        }
        first
            .append(records(&[("", "p0"), ("", "p1")], 9, 0))
            .await
            .unwrap()
            .unwrap();
        let second = log_on(store, 2, None);
        second.open().await.unwrap();
        second.read(3, usize::MAX).await.unwrap();
        second.append(values(&["x"])).await.unwrap().unwrap();
        assert!(first.append(values(&["stale"])).await.unwrap().is_err());
    });
    assert!(inv.breaches.is_empty(), "{:#?}", inv.breaches);
    for name in [
        "log.offsets_contiguous",
        "log.epochs_never_decrease",
        "log.written_batches_match_header",
        "log.acked_offsets_are_committed",
        "log.read_starts_at_the_requested_offset",
        "log.stored_commit_matches_index",
        "producers.sequence_follows",
    ] {
        assert!(
            inv.counts[&format!("broker/{name}")].checked > 0,
            "{name} was never checked:\n{}",
            inv.to_text()
        );
    }
}
