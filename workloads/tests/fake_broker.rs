//! The client against a tiny in-process broker over real TCP. The fake keeps one partition per
//! topic, a single shared log, and a leader that the test can move between two nodes.

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
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riptide_wire::frame;
use riptide_wire::ResponseError;
use riptide_workloads::{
    Client, ClientConfig, ClientError, OffsetSpec, ProduceRetry, TcpConnector,
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
        let (v, corr) = (header.request_api_version, header.correlation_id);
        let api = ApiKey::try_from(header.request_api_key).unwrap();
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
                if node != s.leader {
                    s.not_leader_replies += 1;
                    part = part.with_error_code(ResponseError::NotLeaderOrFollower.code());
                } else {
                    let mut data = p.records.clone().unwrap();
                    let set = RecordBatchDecoder::decode(&mut data).unwrap();
                    let base = s.log.len() as i64;
                    s.log.extend(set.records);
                    *s.appends_by_node.entry(node).or_default() += 1;
                    part = part.with_base_offset(base);
                    lose = std::mem::take(&mut s.lose_next_produce_reply);
                }
                if lose {
                    return; // appended, but the client never hears about it
                }
                let resp =
                    ProduceResponse::default()
                        .with_responses(vec![TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_partition_responses(vec![part])]);
                frame(api, v, corr, &resp)
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut body, v).unwrap();
                let t = &req.topics[0];
                let s = state.lock().unwrap();
                let mut part = PartitionData::default()
                    .with_partition_index(t.partitions[0].partition)
                    .with_high_watermark(s.log.len() as i64)
                    .with_log_start_offset(0);
                if node != s.leader {
                    part = part.with_error_code(ResponseError::NotLeaderOrFollower.code());
                } else if !s.log.is_empty() {
                    // One batch holding the whole log from offset 0: the client must drop what
                    // lies before the offset it asked for.
                    let records: Vec<Record> = s
                        .log
                        .iter()
                        .enumerate()
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
                    part = part.with_records(Some(buf.freeze()));
                }
                let resp =
                    FetchResponse::default()
                        .with_responses(vec![FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(vec![part])]);
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
                let resp = ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_offset(offset)]),
                ]);
                frame(api, v, corr, &resp)
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
        client.create_topic("t", 1).await.unwrap();
        client.create_topic("t", 1).await.unwrap(); // already exists: still ok
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
    client.create_topic("t", 1).await.unwrap();
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
    client.create_topic("t", 1).await.unwrap();
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
    client.create_topic("t", 1).await.unwrap();
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
