//! The client against a tiny in-process broker over real TCP. The fake keeps one partition per
//! topic, a single shared log, and a leader that the test can move between two nodes.
// Under madsim, tokio::time::Instant is std's Instant, made virtual: the determinism lints cannot
// tell it from the real clock there (the ordinary build's clippy enforces them on this code).
#![cfg_attr(madsim, allow(clippy::disallowed_methods))]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riptide_checker::history::{OpKind, SendValue, Value, ViolationKind, ViolationValue};
use riptide_wire::frame;
use riptide_wire::ResponseError;
use riptide_workloads::client::group::Membership;
use riptide_workloads::{
    Client, ClientConfig, ClientError, OffsetSpec, ProduceRetry, Recorder, TcpConnector,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Shared {
    leader: i32,
    addrs: BTreeMap<i32, (String, i32)>,
    topics: BTreeSet<String>,
    log: Vec<Record>,
    metadata_requests: usize,
    not_leader_replies: usize,
    appends_by_node: BTreeMap<i32, usize>,
    /// Append the next produce, then drop the connection instead of answering.
    lose_next_produce_reply: bool,
    /// How every reply breaks the protocol, if it does.
    misbehave: Option<Misbehave>,
    /// OffsetFetch: how many more fetches asking for stable offsets are answered
    /// UNSTABLE_OFFSET_COMMIT (a transaction holding offsets is open) before offset 42.
    unstable_fetches: usize,
    /// Each OffsetFetch: its version and whether it asked for stable offsets.
    offset_fetches: Vec<(i16, bool)>,
}

/// Ways the fake breaks the protocol (one at a time, on every reply it concerns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehave {
    /// Produce: success with base offset -1 (the record is appended).
    NoBaseOffset,
    /// Produce, Fetch, ListOffsets: the partition asked for is left out (a produce still
    /// appends).
    MissingPartition,
    /// Produce: an extra partition nobody asked for, besides the right answer.
    UnrequestedPartition,
    /// Produce: OFFSET_OUT_OF_RANGE, which Produce cannot return (nothing appended).
    ProduceOffsetOutOfRange,
    /// Every reply after ApiVersions carries the wrong correlation id.
    WrongCorrelation,
    /// Fetch: the batch's CRC is wrong.
    CorruptCrc,
    /// Fetch: the high watermark reported one below the log end (the last record is above it).
    HwmBelowRecords,
    /// Fetch: last stable offset above the high watermark.
    LsoAboveHwm,
    /// Fetch: log start offset above the high watermark.
    LogStartAboveHwm,
}

type State = Arc<Mutex<Shared>>;

async fn start_node(node: i32, state: State) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    state
        .lock()
        .unwrap()
        .addrs
        .insert(node, (addr.ip().to_string(), addr.port() as i32));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, node, state.clone()));
        }
    });
    addr.to_string()
}

fn frame<R: Encodable>(api: ApiKey, version: i16, corr: i32, resp: &R) -> Vec<u8> {
    let mut buf = frame::start(64);
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut buf, api.response_header_version(version))
        .unwrap();
    resp.encode(&mut buf, version).unwrap();
    frame::seal(&mut buf).unwrap();
    buf.to_vec()
}

async fn serve(mut stream: TcpStream, node: i32, state: State) {
    while let Ok(Some(body)) = frame::read_frame(&mut stream, 1 << 20).await {
        let mut body = body.freeze();
        let header = decode_request_header_from_buffer(&mut body).unwrap();
        let (v, mut corr) = (header.request_api_version, header.correlation_id);
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let wrong = state.lock().unwrap().misbehave == Some(Misbehave::WrongCorrelation);
        if wrong && api != ApiKey::ApiVersions {
            corr += 1000;
        }
        let reply = match api {
            ApiKey::ApiVersions => {
                let range = |k: ApiKey, lo: i16, hi: i16| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(lo)
                        .with_max_version(hi)
                };
                if v > 2 {
                    // Like an older broker: refuse with a v0 body naming what it supports (KIP-511).
                    let resp = ApiVersionsResponse::default()
                        .with_error_code(ResponseError::UnsupportedVersion.code())
                        .with_api_keys(vec![range(ApiKey::ApiVersions, 0, 2)]);
                    frame(api, 0, corr, &resp)
                } else {
                    let resp = ApiVersionsResponse::default().with_api_keys(vec![
                        range(ApiKey::Produce, 0, 11),
                        range(ApiKey::Fetch, 0, 16),
                        range(ApiKey::ListOffsets, 0, 8),
                        range(ApiKey::Metadata, 0, 12),
                        range(ApiKey::ApiVersions, 0, 2),
                        range(ApiKey::CreateTopics, 0, 7),
                        range(ApiKey::FindCoordinator, 0, 3),
                        range(ApiKey::OffsetFetch, 0, 7),
                    ]);
                    frame(api, v, corr, &resp)
                }
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut body, v).unwrap();
                let mut s = state.lock().unwrap();
                s.metadata_requests += 1;
                let brokers = s
                    .addrs
                    .iter()
                    .map(|(id, (host, port))| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(*id))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_port(*port)
                    })
                    .collect();
                let topics = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        let n = t.name.unwrap();
                        if s.topics.contains(n.0.as_str()) {
                            MetadataResponseTopic::default()
                                .with_name(Some(n))
                                .with_partitions(vec![MetadataResponsePartition::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(s.leader))])
                        } else {
                            MetadataResponseTopic::default()
                                .with_name(Some(n))
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        }
                    })
                    .collect();
                let resp = MetadataResponse::default()
                    .with_brokers(brokers)
                    .with_controller_id(BrokerId(1))
                    .with_topics(topics);
                frame(api, v, corr, &resp)
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut body, v).unwrap();
                let mut s = state.lock().unwrap();
                let results = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let fresh = s.topics.insert(t.name.0.as_str().to_string());
                        CreatableTopicResult::default()
                            .with_name(t.name)
                            .with_error_code(if fresh {
                                0
                            } else {
                                ResponseError::TopicAlreadyExists.code()
                            })
                    })
                    .collect();
                frame(
                    api,
                    v,
                    corr,
                    &CreateTopicsResponse::default().with_topics(results),
                )
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut body, v).unwrap();
                let t = &req.topic_data[0];
                let p = &t.partition_data[0];
                let mut s = state.lock().unwrap();
                let mut part = PartitionProduceResponse::default().with_index(p.index);
                let mut lose = false;
                let bad = s.misbehave;
                if bad == Some(Misbehave::ProduceOffsetOutOfRange) {
                    part = part.with_error_code(ResponseError::OffsetOutOfRange.code());
                } else if node != s.leader {
                    s.not_leader_replies += 1;
                    part = part.with_error_code(ResponseError::NotLeaderOrFollower.code());
                } else {
                    let mut data = p.records.clone().unwrap();
                    let set = RecordBatchDecoder::decode(&mut data).unwrap();
                    let base = s.log.len() as i64;
                    s.log.extend(set.records);
                    *s.appends_by_node.entry(node).or_default() += 1;
                    let shown = if bad == Some(Misbehave::NoBaseOffset) {
                        -1
                    } else {
                        base
                    };
                    part = part.with_base_offset(shown);
                    lose = std::mem::take(&mut s.lose_next_produce_reply);
                }
                if lose {
                    return; // appended, but the client never hears about it
                }
                let parts = match bad {
                    Some(Misbehave::MissingPartition) => vec![],
                    Some(Misbehave::UnrequestedPartition) => {
                        vec![part, PartitionProduceResponse::default().with_index(5)]
                    }
                    _ => vec![part],
                };
                let resp =
                    ProduceResponse::default()
                        .with_responses(vec![TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_partition_responses(parts)]);
                frame(api, v, corr, &resp)
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut body, v).unwrap();
                let t = &req.topics[0];
                let s = state.lock().unwrap();
                let bad = s.misbehave;
                let end = s.log.len() as i64;
                let hwm = if bad == Some(Misbehave::HwmBelowRecords) {
                    end - 1
                } else {
                    end
                };
                let mut part = PartitionData::default()
                    .with_partition_index(t.partitions[0].partition)
                    .with_high_watermark(hwm)
                    .with_last_stable_offset(match bad {
                        Some(Misbehave::LsoAboveHwm) => hwm + 1,
                        _ => hwm,
                    })
                    .with_log_start_offset(match bad {
                        Some(Misbehave::LogStartAboveHwm) => hwm + 1,
                        _ => 0,
                    });
                if node != s.leader {
                    part = part.with_error_code(ResponseError::NotLeaderOrFollower.code());
                } else if t.partitions[0].fetch_offset < end {
                    // The log from the fetch offset (the encoder makes a batch per record, each
                    // as produced; a batch wholly below the fetch offset would break the
                    // protocol).
                    let from = t.partitions[0].fetch_offset.max(0) as usize;
                    let records: Vec<Record> = s
                        .log
                        .iter()
                        .enumerate()
                        .skip(from)
                        .map(|(i, r)| Record {
                            offset: i as i64,
                            timestamp_type: TimestampType::Creation,
                            ..r.clone()
                        })
                        .collect();
                    let mut buf = BytesMut::new();
                    let opts = RecordEncodeOptions {
                        version: 2,
                        compression: Compression::None,
                    };
                    RecordBatchEncoder::encode(&mut buf, &records, &opts).unwrap();
                    if bad == Some(Misbehave::CorruptCrc) {
                        buf[17] ^= 0xff; // the first byte of the CRC
                    }
                    part = part.with_records(Some(buf.freeze()));
                }
                let parts = match bad {
                    Some(Misbehave::MissingPartition) => vec![],
                    _ => vec![part],
                };
                let resp =
                    FetchResponse::default()
                        .with_responses(vec![FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(parts)]);
                frame(api, v, corr, &resp)
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut body, v).unwrap();
                let t = &req.topics[0];
                let p = &t.partitions[0];
                let s = state.lock().unwrap();
                let offset = match p.timestamp {
                    -2 => 0,
                    -1 => s.log.len() as i64,
                    ts => s
                        .log
                        .iter()
                        .position(|r| r.timestamp >= ts)
                        .map_or(-1, |i| i as i64),
                };
                let parts = match s.misbehave {
                    Some(Misbehave::MissingPartition) => vec![],
                    _ => vec![ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_offset(offset)],
                };
                let resp = ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(parts),
                ]);
                frame(api, v, corr, &resp)
            }
            ApiKey::FindCoordinator => {
                let s = state.lock().unwrap();
                let (host, port) = s.addrs[&node].clone();
                let resp = FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(node))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port);
                frame(api, v, corr, &resp)
            }
            ApiKey::OffsetFetch => {
                let req = OffsetFetchRequest::decode(&mut body, v).unwrap();
                let mut s = state.lock().unwrap();
                s.offset_fetches.push((v, req.require_stable));
                let unstable = req.require_stable && s.unstable_fetches > 0;
                if unstable {
                    s.unstable_fetches -= 1;
                }
                let topics = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        let parts = t
                            .partition_indexes
                            .iter()
                            .map(|p| {
                                let part = OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p);
                                if unstable {
                                    part.with_committed_offset(-1)
                                        .with_error_code(ResponseError::UnstableOffsetCommit.code())
                                } else {
                                    part.with_committed_offset(42)
                                }
                            })
                            .collect();
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(parts)
                    })
                    .collect();
                frame(
                    api,
                    v,
                    corr,
                    &OffsetFetchResponse::default().with_topics(topics),
                )
            }
            other => panic!("fake broker got {other:?}"),
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn config() -> ClientConfig {
    let mut c = ClientConfig {
        retries: 4,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(10),
        seed: 42,
        clock: Some(Arc::new(riptide_wire::clock::FixedClock(1_000))),
        ..ClientConfig::default()
    };
    c.connection.request_timeout = Duration::from_secs(5);
    c
}

async fn cluster(nodes: &[i32]) -> (State, Vec<String>) {
    let state: State = Arc::new(Mutex::new(Shared {
        leader: nodes[0],
        ..Shared::default()
    }));
    let mut addrs = Vec::new();
    for &n in nodes {
        addrs.push(start_node(n, state.clone()).await);
    }
    (state, addrs)
}

#[tokio::test]
async fn produce_then_fetch_round_trip() {
    let (_state, addrs) = cluster(&[1]).await;
    // Run the client inside tokio::spawn: its futures must be Send.
    tokio::spawn(async move {
        let mut client = Client::new(TcpConnector, addrs, config());
        client.create_topic("t", 1, &[]).await.unwrap();
        client.create_topic("t", 1, &[]).await.unwrap(); // already exists: still ok
        for (i, v) in ["a", "b", "c"].iter().enumerate() {
            let key = Some(Bytes::from(format!("k{i}")));
            let offset = client
                .produce("t", 0, key, Bytes::from_static(v.as_bytes()), -1)
                .await
                .unwrap();
            assert_eq!(offset, i as i64);
        }
        let r = client.fetch("t", 0, 1, 100, 1 << 20).await.unwrap();
        assert_eq!(r.high_watermark, 3);
        let got: Vec<_> = r
            .records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    r.key.clone().unwrap(),
                    r.value.clone().unwrap(),
                    r.timestamp,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Bytes::from("k1"), Bytes::from("b"), 1_000),
                (2, Bytes::from("k2"), Bytes::from("c"), 1_000),
            ]
        );
        let earliest = client
            .list_offsets("t", 0, OffsetSpec::Earliest)
            .await
            .unwrap();
        let latest = client
            .list_offsets("t", 0, OffsetSpec::Latest)
            .await
            .unwrap();
        assert_eq!((earliest, latest), (0, 3));
        let empty = client.fetch("t", 0, 3, 0, 1 << 20).await.unwrap();
        assert!(empty.records.is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn not_leader_refreshes_metadata_and_retries() {
    let (state, addrs) = cluster(&[1, 2]).await;
    let mut client = Client::new(TcpConnector, addrs[..1].to_vec(), config());
    client.create_topic("t", 1, &[]).await.unwrap();
    let v = || Bytes::from_static(b"v");
    assert_eq!(client.produce("t", 0, None, v(), -1).await.unwrap(), 0);
    assert_eq!(client.cached_leader("t", 0), Some(1));
    let metadata_before = state.lock().unwrap().metadata_requests;

    state.lock().unwrap().leader = 2; // leadership moves; the client's cache still says node 1
    assert_eq!(client.produce("t", 0, None, v(), -1).await.unwrap(), 1);
    {
        let s = state.lock().unwrap();
        assert_eq!(s.not_leader_replies, 1);
        assert!(s.metadata_requests > metadata_before);
        assert_eq!(s.appends_by_node.get(&2), Some(&1));
    }
    assert_eq!(client.cached_leader("t", 0), Some(2));
    let r = client.fetch("t", 0, 0, 0, 1 << 20).await.unwrap();
    assert_eq!(r.records.len(), 2);
}

#[tokio::test]
async fn lost_produce_reply_is_indeterminate_and_not_retried_by_default() {
    let (state, addrs) = cluster(&[1]).await;
    let mut client = Client::new(TcpConnector, addrs, config());
    client.create_topic("t", 1, &[]).await.unwrap();
    state.lock().unwrap().lose_next_produce_reply = true;
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    assert!(!err.is_definite(), "{err:?}");
    assert!(
        matches!(err, ClientError::Io { written: true, .. }),
        "{err:?}"
    );
    assert_eq!(state.lock().unwrap().log.len(), 1, "the write did happen");
    // The client recovers on the next operation with a fresh connection.
    assert_eq!(
        client
            .produce("t", 0, None, Bytes::from_static(b"y"), -1)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn retrying_after_an_indeterminate_error_is_reported() {
    let (state, addrs) = cluster(&[1]).await;
    let config = ClientConfig {
        produce_retry: ProduceRetry::Always,
        ..config()
    };
    let mut client = Client::new(TcpConnector, addrs, config);
    client.create_topic("t", 1, &[]).await.unwrap();
    state.lock().unwrap().lose_next_produce_reply = true;
    let ack = client
        .produce_detailed("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap();
    assert_eq!(ack.offset, 1);
    assert_eq!(ack.attempts, 2);
    assert!(ack.after_indeterminate);
    assert_eq!(
        state.lock().unwrap().log.len(),
        2,
        "the retry duplicated the record"
    );
}

#[tokio::test]
async fn unknown_topic_fails_definitely_after_bounded_retries() {
    let (state, addrs) = cluster(&[1]).await;
    let mut client = Client::new(TcpConnector, addrs, config());
    let err = client
        .produce("missing", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ResponseError::UnknownTopicOrPartition.code())
    );
    assert!(err.is_definite());
    // First attempt plus `retries` (4), each refreshing metadata.
    assert_eq!(state.lock().unwrap().metadata_requests, 5);
}

#[tokio::test]
async fn refused_connection_is_definite() {
    // Bind then drop a listener to get a port nothing listens on.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = ClientConfig {
        retries: 1,
        ..config()
    };
    let mut client = Client::new(TcpConnector, vec![addr], config);
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.is_definite());
}

#[tokio::test]
async fn connection_closed_during_api_versions_is_definite() {
    // A listener that accepts and closes at once: the client's ApiVersions is written, but the
    // produce that needed the connection never was.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    let config = ClientConfig {
        retries: 0,
        ..config()
    };
    let mut client = Client::new(TcpConnector, vec![addr], config);
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.is_definite());
}

// ---- replies contrary to the protocol: each is a `violation` fact; the client accepts what
// ---- the Java client accepts and rejects what it rejects.

const PROCESS: u64 = 7;

/// A client witnessing into a fresh recorder, its topic made and `n` records written (by a
/// well-behaved broker), then the fake switched to `bad`.
async fn witnessed(n: usize, bad: Misbehave) -> (State, Client<TcpConnector>, Recorder) {
    let (state, client, rec, _) = witnessed_at(n, bad).await;
    (state, client, rec)
}

/// [`witnessed`], also giving the fake's addresses.
async fn witnessed_at(
    n: usize,
    bad: Misbehave,
) -> (State, Client<TcpConnector>, Recorder, Vec<String>) {
    let (state, addrs) = cluster(&[1]).await;
    let rec = Recorder::new(Arc::new(riptide_wire::clock::FixedClock(0)));
    let mut client = Client::new(TcpConnector, addrs.clone(), config());
    client.witness().attach(&rec, PROCESS);
    client.create_topic("t", 1, &[]).await.unwrap();
    for _ in 0..n {
        client
            .produce("t", 0, None, Bytes::from_static(b"v"), -1)
            .await
            .unwrap();
    }
    state.lock().unwrap().misbehave = Some(bad);
    (state, client, rec, addrs)
}

/// The violation facts recorded so far (each a standalone `ok` of the process).
fn facts(rec: &Recorder) -> Vec<ViolationValue> {
    rec.history()
        .ops
        .into_iter()
        .filter_map(|op| match op.value {
            Value::Violation(v) => {
                assert_eq!(
                    (op.kind, op.process, op.invoke),
                    (OpKind::Ok, PROCESS, None)
                );
                Some(v)
            }
            _ => None,
        })
        .collect()
}

fn kinds(rec: &Recorder) -> Vec<ViolationKind> {
    facts(rec).iter().map(|f| f.kind).collect()
}

#[tokio::test]
async fn a_produce_without_base_offset_is_accepted_at_minus_one_and_recorded() {
    let (state, mut client, rec) = witnessed(0, Misbehave::NoBaseOffset).await;
    // The fact names the operation the workload said the request was for.
    let invoke = rec.invoke(PROCESS, SendValue::new("t", 0, "x"));
    client.witness().set_op(Some(invoke));
    let offset = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap();
    client.witness().set_op(None);
    // As the Java producer: a success whose RecordMetadata has offset -1.
    assert_eq!(offset, -1);
    assert_eq!(state.lock().unwrap().log.len(), 1);
    let f = facts(&rec);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, ViolationKind::NoBaseOffset);
    assert_eq!(f[0].op, Some(invoke));
    assert_eq!((f[0].api.as_str(), f[0].version), ("Produce", 9));
    assert_eq!(f[0].partition.as_ref().map(|p| p.partition), Some(0));
    assert!(f[0].detail.contains("-1"), "{}", f[0].detail);
    assert_eq!(rec.in_flight(), 1, "a fact completes nothing");
}

#[tokio::test]
async fn a_produce_answer_missing_its_partition_is_indeterminate_and_recorded() {
    let (state, mut client, rec) = witnessed(0, Misbehave::MissingPartition).await;
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    // The batch may be written (it was): `info`, never `fail`; not retried.
    assert!(!err.is_definite() && !err.is_retriable(), "{err:?}");
    assert_eq!(state.lock().unwrap().log.len(), 1);
    assert_eq!(kinds(&rec), vec![ViolationKind::MissingPartition]);
}

#[tokio::test]
async fn a_partition_answered_unasked_is_ignored_and_recorded() {
    let (_state, mut client, rec) = witnessed(0, Misbehave::UnrequestedPartition).await;
    let offset = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap();
    assert_eq!(offset, 0);
    let f = facts(&rec);
    assert_eq!(kinds(&rec), vec![ViolationKind::UnrequestedPartition]);
    assert_eq!(f[0].partition.as_ref().map(|p| p.partition), Some(5));
}

#[tokio::test]
async fn an_error_code_the_api_cannot_return_is_handled_as_its_code_and_recorded() {
    let (_state, mut client, rec) = witnessed(0, Misbehave::ProduceOffsetOutOfRange).await;
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    assert_eq!(err.error(), Some(ResponseError::OffsetOutOfRange));
    assert!(err.is_definite(), "{err:?}");
    assert_eq!(kinds(&rec), vec![ViolationKind::UnexpectedErrorCode]);
}

#[tokio::test]
async fn a_wrong_correlation_id_breaks_the_connection_and_is_recorded() {
    let (_state, mut client, rec) = witnessed(0, Misbehave::WrongCorrelation).await;
    let err = client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap_err();
    // As the Java client (IllegalStateException, disconnect): the outcome is unknown.
    assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
    assert!(!err.is_definite());
    let f = facts(&rec);
    assert!(!f.is_empty());
    assert!(
        f.iter()
            .all(|v| v.kind == ViolationKind::CorrelationMismatch),
        "{f:#?}"
    );
}

#[tokio::test]
async fn a_corrupt_batch_is_rejected_and_recorded() {
    let (_state, mut client, rec) = witnessed(2, Misbehave::CorruptCrc).await;
    let err = client.fetch("t", 0, 0, 0, 1 << 20).await.unwrap_err();
    // As the Java consumer (CorruptRecordException): nothing handed out.
    assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
    assert_eq!(kinds(&rec), vec![ViolationKind::CorruptBatch]);
}

#[tokio::test]
async fn records_above_the_high_watermark_are_handed_out_and_recorded() {
    let (_state, mut client, rec) = witnessed(3, Misbehave::HwmBelowRecords).await;
    let r = client.fetch("t", 0, 0, 0, 1 << 20).await.unwrap();
    // The Java consumer does not compare records with the high watermark: all three.
    assert_eq!(r.high_watermark, 2);
    assert_eq!(r.records.len(), 3);
    assert_eq!(kinds(&rec), vec![ViolationKind::RecordsOutOfRange]);
}

#[tokio::test]
async fn watermarks_out_of_order_are_recorded() {
    let (_state, mut client, rec) = witnessed(2, Misbehave::LsoAboveHwm).await;
    assert_eq!(
        client
            .fetch("t", 0, 0, 0, 1 << 20)
            .await
            .unwrap()
            .records
            .len(),
        2
    );
    assert_eq!(kinds(&rec), vec![ViolationKind::HwmBelowLso]);

    let (_state, mut client, rec) = witnessed(2, Misbehave::LogStartAboveHwm).await;
    assert_eq!(
        client
            .fetch("t", 0, 0, 0, 1 << 20)
            .await
            .unwrap()
            .records
            .len(),
        2
    );
    assert_eq!(kinds(&rec), vec![ViolationKind::HwmBelowLogStart]);
}

#[tokio::test]
async fn fetch_and_list_offsets_answers_missing_the_partition_are_recorded() {
    let (_state, mut client, rec) = witnessed(1, Misbehave::MissingPartition).await;
    assert!(client.fetch("t", 0, 0, 0, 1 << 20).await.is_err());
    assert!(client
        .list_offsets("t", 0, OffsetSpec::Latest)
        .await
        .is_err());
    let f = facts(&rec);
    let got: Vec<_> = f.iter().map(|v| (v.kind, v.api.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (ViolationKind::MissingPartition, "Fetch"),
            (ViolationKind::MissingPartition, "ListOffsets"),
        ]
    );
}

#[tokio::test]
async fn a_broker_that_keeps_the_protocol_leaves_no_fact() {
    let (state, mut client, rec) = witnessed(3, Misbehave::NoBaseOffset).await;
    state.lock().unwrap().misbehave = None;
    client
        .produce("t", 0, None, Bytes::from_static(b"x"), -1)
        .await
        .unwrap();
    for offset in 0..=4 {
        client.fetch("t", 0, offset, 0, 1 << 20).await.unwrap();
    }
    client
        .list_offsets("t", 0, OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(facts(&rec), vec![]);
}

#[tokio::test]
async fn the_batching_producer_acks_without_offset_and_only_protocol_violation_fires() {
    use riptide_checker::{check_all, Anomaly, CheckerConfig};
    use riptide_workloads::mix::{Codec, EpochBump, ProducerProfile};
    use riptide_workloads::producer::{self, ProducerSetup};
    use riptide_workloads::{generators, Topic};

    let (_state, mut client, rec, addrs) = witnessed_at(0, Misbehave::NoBaseOffset).await;
    let topics = vec![Topic::new("t", 1)];
    let setup = ProducerSetup {
        process: PROCESS,
        name: "producer-0".into(),
        topics: topics.clone(),
        profile: ProducerProfile {
            idempotent: false,
            max_in_flight: 2,
            linger_ms: 5,
            batch_records: 4,
            batch_bytes: 1 << 14,
            burst_records: 3,
            records_per_second: 100,
            codec: Codec::None,
            keyed: false,
            epoch_bump: EpochBump::Local,
            delivery_timeout_ms: 2_000,
            request_timeout_ms: None,
        },
        seed: 1,
        pace: Default::default(),
    };
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    producer::run(&mut client, &rec, &setup, until).await;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut reader = Client::new(TcpConnector, addrs, config());
    reader.witness().attach(&rec, 99);
    generators::final_read_topics(&mut reader, &rec, 99, &topics, 1 << 20, give_up).await;

    let h = rec.history();
    h.validate().unwrap();
    let f = facts(&rec);
    assert!(!f.is_empty());
    let sends: Vec<u64> = h
        .ops
        .iter()
        .filter(|op| op.kind == OpKind::Invoke && matches!(op.value, Value::Send(_)))
        .map(|op| op.index)
        .collect();
    for v in &f {
        assert_eq!(v.kind, ViolationKind::NoBaseOffset);
        assert!(v.op.is_some_and(|op| sends.contains(&op)), "{v:?}");
    }
    let acked: Vec<i64> = h
        .ops
        .iter()
        .filter_map(|op| match (&op.kind, &op.value) {
            (OpKind::Ok, Value::Send(s)) => s.offset,
            _ => None,
        })
        .collect();
    assert!(
        !acked.is_empty() && acked.iter().all(|&o| o == -1),
        "{acked:?}"
    );
    let report = check_all(&h, &CheckerConfig::default());
    let anomalies: BTreeSet<Anomaly> = report.findings.iter().map(|f| f.anomaly).collect();
    assert_eq!(
        anomalies,
        BTreeSet::from([Anomaly::ProtocolViolation]),
        "{:#?}",
        report.findings
    );
}

/// The committed offset of `t`/0 as a client with `isolation_level` reads it.
async fn committed(addrs: Vec<String>, isolation_level: i8) -> Result<i64, String> {
    tokio::spawn(async move {
        let mut cfg = config();
        cfg.isolation_level = isolation_level;
        let mut client = Client::new(TcpConnector, addrs, cfg);
        let mut m = Membership::new("g");
        client
            .committed_offsets(&mut m, &[("t".to_string(), 0)])
            .await
            .map(|o| o[0].1)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_read_committed_client_asks_for_stable_offsets_and_waits_out_open_transactions() {
    let (state, addrs) = cluster(&[1]).await;
    state.lock().unwrap().unstable_fetches = 2;
    assert_eq!(committed(addrs, 1).await, Ok(42));
    // v7 with require_stable (KIP-447), twice answered UNSTABLE_OFFSET_COMMIT, then the offset.
    assert_eq!(state.lock().unwrap().offset_fetches, vec![(7, true); 3]);
}

#[tokio::test]
async fn offsets_that_stay_unstable_fail_the_fetch_after_the_retries() {
    let (state, addrs) = cluster(&[1]).await;
    state.lock().unwrap().unstable_fetches = usize::MAX;
    let got = committed(addrs, 1).await;
    assert!(
        got.as_ref().is_err_and(
            |e| e.contains("UNSTABLE_OFFSET_COMMIT") || e.contains("UnstableOffsetCommit")
        ),
        "{got:?}"
    );
    // The first attempt and config().retries more.
    assert_eq!(state.lock().unwrap().offset_fetches.len(), 5);
}

#[tokio::test]
async fn a_read_uncommitted_client_fetches_offsets_as_before() {
    let (state, addrs) = cluster(&[1]).await;
    state.lock().unwrap().unstable_fetches = 2;
    assert_eq!(committed(addrs, 0).await, Ok(42));
    assert_eq!(state.lock().unwrap().offset_fetches, vec![(5, false)]);
}
