//! Backpressure on produce: a broker holds at most `max_produce_bytes_in_flight` bytes of produce
//! requests, from when one is read until the log is done with its batches. Driven over real TCP
//! with raw Kafka frames, against a store whose data commits wait at a gate.

use crate::put_hook::{HookedStore, PutHook};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::path::Path;
use object_store::Result as StoreResult;
use riptide_broker::env::SystemClock;
use riptide_broker::storage::topic_config::TopicConfig;
use riptide_broker::{Broker, BrokerConfig};
use riptide_wire::ResponseError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const VERSION: i16 = 7;

/// A store hook holding data commits (any commit but a partition's first, the new owner's fence)
/// until the gate opens; counts how many have begun.
struct Gated {
    gate: Semaphore,
    begun: AtomicUsize,
}

impl Gated {
    fn new() -> Arc<HookedStore<Self>> {
        HookedStore::new(Gated {
            gate: Semaphore::new(0),
            begun: AtomicUsize::new(0),
        })
    }
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
    fn begun(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PutHook for Gated {
    async fn before_put(&self, location: &Path) -> StoreResult<()> {
        let p = location.as_ref();
        if p.ends_with(".commit") && !p.ends_with("/00000000000000000000.commit") {
            self.begun.fetch_add(1, Ordering::SeqCst);
            drop(self.gate.acquire().await);
        }
        Ok(())
    }
}

/// A broker serving topic `t` (4 partitions) on a free port, with the given produce budget.
async fn broker(store: Arc<HookedStore<Gated>>, budget: usize) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = BrokerConfig::new(1, "127.0.0.1", port as i32);
    cfg.session_timeout = Duration::from_secs(30);
    cfg.max_produce_bytes_in_flight = budget;
    let b = Broker::start(cfg, store, Arc::new(SystemClock::new()))
        .await
        .unwrap();
    b.catalog
        .create("t", 4, TopicConfig::default())
        .await
        .unwrap();
    tokio::spawn(b.serve(listener));
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// A framed Produce v7 of one record of `value_len` bytes to `t`/`partition`.
fn produce(corr: i32, partition: i32, acks: i16, timeout_ms: i32, value_len: usize) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(vec![b'x'; value_len])),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut records = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut records, [record].iter(), &opts).unwrap();
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records.freeze()))])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(VERSION))
        .unwrap();
    req.encode(&mut body, VERSION).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// The next response: its correlation id and (partition, error code, base offset).
async fn answer(conn: &mut TcpStream) -> (i32, i32, i16, i64) {
    let read = riptide_wire::frame::read_frame(conn, 1 << 20);
    let mut frame = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .expect("a frame")
        .freeze();
    let h = ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(VERSION))
        .unwrap();
    let r = ProduceResponse::decode(&mut frame, VERSION).unwrap();
    let p = &r.responses[0].partition_responses[0];
    (h.correlation_id, p.index, p.error_code, p.base_offset)
}

/// Waits until `n` data commits have begun, then a little longer to see that no more do.
async fn begun_settles_at(store: &HookedStore<Gated>, n: usize) {
    for _ in 0..500 {
        if store.hook.begun() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.hook.begun(), n, "data commits begun");
}

#[tokio::test]
async fn a_produce_waits_while_earlier_ones_hold_the_budget_until_committed() {
    let one = produce(0, 0, -1, 30_000, 1000).len();
    let store = Gated::new();
    // Room for two requests, not three.
    let mut conn = broker(store.clone(), 2 * one + one / 2).await;
    for p in 0..4 {
        conn.write_all(&produce(p, p, -1, 30_000, 1000))
            .await
            .unwrap();
    }
    // One commit per partition, each waiting at the gate: only two requests were taken in.
    begun_settles_at(&store, 2).await;
    store.hook.open();
    for p in 0..4 {
        assert_eq!(answer(&mut conn).await, (p, p, 0, 0));
    }
    assert_eq!(store.hook.begun(), 4);
}

#[tokio::test]
async fn acks_zero_holds_its_budget_until_its_commit_is_done() {
    let one = produce(0, 0, 0, 30_000, 1000).len();
    let store = Gated::new();
    let mut conn = broker(store.clone(), one + one / 2).await;
    conn.write_all(&produce(0, 0, 0, 30_000, 1000))
        .await
        .unwrap();
    conn.write_all(&produce(1, 1, -1, 30_000, 1000))
        .await
        .unwrap();
    // Nobody waits for the acks=0 commit, but its batches are in memory until it is done.
    begun_settles_at(&store, 1).await;
    store.hook.open();
    assert_eq!(answer(&mut conn).await, (1, 1, 0, 0));
    assert_eq!(store.hook.begun(), 2);
}

#[tokio::test]
async fn a_timed_out_produce_holds_its_budget_until_its_commit_is_done() {
    let one = produce(0, 0, -1, 100, 1000).len();
    let store = Gated::new();
    let mut conn = broker(store.clone(), one + one / 2).await;
    conn.write_all(&produce(0, 0, -1, 100, 1000)).await.unwrap();
    // Answered REQUEST_TIMED_OUT while its commit still waits at the gate...
    assert_eq!(
        answer(&mut conn).await,
        (0, 0, ResponseError::RequestTimedOut.code(), -1)
    );
    conn.write_all(&produce(1, 1, -1, 30_000, 1000))
        .await
        .unwrap();
    // ...and its batches still hold the budget: the next produce is not taken in.
    begun_settles_at(&store, 1).await;
    store.hook.open();
    assert_eq!(answer(&mut conn).await, (1, 1, 0, 0));
    assert_eq!(store.hook.begun(), 2);
}

#[tokio::test]
async fn a_produce_larger_than_the_whole_budget_goes_alone() {
    let store = Gated::new();
    store.hook.open();
    let mut conn = broker(store.clone(), 100).await;
    for corr in 0..3 {
        conn.write_all(&produce(corr, 0, -1, 30_000, 1000))
            .await
            .unwrap();
    }
    for corr in 0..3 {
        assert_eq!(answer(&mut conn).await, (corr, 0, 0, corr as i64));
    }
}
