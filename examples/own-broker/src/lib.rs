//! `TinyBroker`: a small single-node Kafka-compatible broker that keeps every record batch in
//! an object store, written the way a team's own tokio broker would be, and plugged into
//! riptide's seeded world through [`riptide_sim::BrokerFactory`] (see `tests/seeded.rs`).
//!
//! It serves ApiVersions, Metadata, CreateTopics, Produce, Fetch, ListOffsets, and the
//! committed offsets of consumers that assign their partitions themselves (FindCoordinator,
//! OffsetCommit, OffsetFetch): enough for riptide's non-idempotent producers and assigned
//! consumers. No idempotence, transactions or group membership.
//!
//! Storage: one object per topic (`topics/{name}`, the partition count), one per record batch
//! (`log/{topic}/{partition}/{base offset}-{last offset}`) and one per offset commit
//! (`commits/{group}/{topic}/{partition}/{sequence}-{offset}`), all written create-if-absent:
//! a batch is acknowledged only once it is durable, two batches never share an offset, and a
//! commit whose write lands late never hides a newer one. What is in memory (a partition's
//! index, a group's offsets) is read back from a listing after a restart, or when a write's
//! outcome is unknown.

use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use riptide_sim::{BrokerEnv, BrokerFactory, SimStream};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// What the broker serves, by API: (key, lowest, highest). Produce and Fetch stop before topic
/// ids (v13), Metadata before topic ids in requests (v10).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 9),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 5),
];

/// Partitions of a topic created by a Metadata request.
const AUTO_CREATE_PARTITIONS: i32 = 4;

/// The factory: one `TinyBroker` process per start of the (single) broker host.
#[derive(Clone, Debug, Default)]
pub struct TinyBroker {
    /// A planted bug: acknowledge a batch before its object is written, and write it in the
    /// background. A crash or a failed write then loses an acknowledged record.
    pub ack_before_write: bool,
}

impl BrokerFactory for TinyBroker {
    fn start(&self, env: BrokerEnv) -> BoxFuture<'static, ()> {
        let broker = Arc::new(Broker {
            node_id: env.node_id,
            host: env.name,
            port: env.port as i32,
            store: env.store,
            ack_before_write: self.ack_before_write,
            topics: Mutex::new(None),
            partitions: Mutex::new(BTreeMap::new()),
            commits: Mutex::new(BTreeMap::new()),
        });
        let mut listener = env.listener;
        Box::pin(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(broker.clone().serve(stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        return;
                    }
                }
            }
        })
    }
}

/// One partition's log: batches by base offset, and the next offset to assign.
#[derive(Default)]
struct Log {
    /// `None` until read from the store (after a start, or a write whose outcome is unknown).
    batches: Option<BTreeMap<i64, Batch>>,
    next: i64,
}

struct Batch {
    last: i64,
    /// The batch's bytes once read or written.
    bytes: Bytes,
}

struct Broker {
    node_id: i32,
    host: String,
    port: i32,
    store: Arc<dyn ObjectStore>,
    ack_before_write: bool,
    /// Topics and their partition counts, read from the store on first use.
    topics: Mutex<Option<BTreeMap<String, i32>>>,
    /// One lock per partition: produces to a partition are serialised.
    partitions: Mutex<BTreeMap<Partition, Arc<Mutex<Log>>>>,
    /// The last commit of each (group, topic, partition) read or written: (sequence, offset).
    /// Missing until read from the store.
    commits: Mutex<Commits>,
}

/// (topic, partition).
type Partition = (String, i32);
/// The last commit of each (group, topic, partition): (sequence, offset).
type Commits = BTreeMap<(String, String, i32), (i64, i64)>;

type Failure = ResponseError;

impl Broker {
    async fn serve(self: Arc<Self>, mut stream: SimStream) {
        loop {
            let frame =
                match riptide_wire::read_frame(&mut stream, riptide_wire::MAX_FRAME_BYTES).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::info!(error = %e, "closing a connection");
                        return;
                    }
                };
            let reply = match self.handle(frame).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::info!(error = %e, "bad request; closing the connection");
                    return;
                }
            };
            let mut out = BytesMut::with_capacity(4 + reply.len());
            out.extend_from_slice(&(reply.len() as i32).to_be_bytes());
            out.extend_from_slice(&reply);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    /// One request frame to one response (without its length prefix).
    async fn handle(&self, frame: BytesMut) -> anyhow::Result<BytesMut> {
        let mut buf = frame.freeze();
        let (key, version) = match riptide_wire::versions::request_prefix(&buf) {
            Some((key, version, _)) => (ApiKey::try_from(key), version),
            None => anyhow::bail!("frame too short for a request header"),
        };
        let Ok(key) = key else {
            anyhow::bail!("unknown api key")
        };
        let served = SUPPORTED
            .iter()
            .find(|(k, lo, hi)| *k == key && (*lo..=*hi).contains(&version));
        if served.is_none() && key != ApiKey::ApiVersions {
            anyhow::bail!("{key:?} v{version} not served");
        }
        // ApiVersions above what we serve: KIP-511's answer in v0.
        let header_version = if served.is_none() {
            0
        } else {
            key.request_header_version(version)
        };
        let header = RequestHeader::decode(&mut buf, header_version)?;
        let id = header.correlation_id;
        Ok(match key {
            ApiKey::ApiVersions => {
                let mut r = ApiVersionsResponse::default().with_api_keys(
                    SUPPORTED
                        .iter()
                        .map(|(k, lo, hi)| {
                            ApiVersion::default()
                                .with_api_key(*k as i16)
                                .with_min_version(*lo)
                                .with_max_version(*hi)
                        })
                        .collect(),
                );
                if served.is_none() {
                    r = riptide_wire::versions::refuse_api_versions(r);
                    encode(id, &r, 0)?
                } else {
                    encode(id, &r, version)?
                }
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut buf, version)?;
                encode(id, &self.metadata(req).await, version)?
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut buf, version)?;
                encode(id, &self.create_topics(req).await, version)?
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut buf, version)?;
                encode(id, &self.produce(req).await, version)?
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut buf, version)?;
                encode(id, &self.fetch(req).await, version)?
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut buf, version)?;
                encode(id, &self.list_offsets(req).await, version)?
            }
            ApiKey::FindCoordinator => {
                // Every group's coordinator is this broker.
                let _ = FindCoordinatorRequest::decode(&mut buf, version)?;
                let r = FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(self.node_id))
                    .with_host(StrBytes::from_string(self.host.clone()))
                    .with_port(self.port);
                encode(id, &r, version)?
            }
            ApiKey::OffsetCommit => {
                let req = OffsetCommitRequest::decode(&mut buf, version)?;
                encode(id, &self.offset_commit(req).await, version)?
            }
            ApiKey::OffsetFetch => {
                let req = OffsetFetchRequest::decode(&mut buf, version)?;
                encode(id, &self.offset_fetch(req).await, version)?
            }
            _ => unreachable!("only SUPPORTED keys get here"),
        })
    }

    /// The topics, read from the store the first time.
    async fn topics(&self) -> Result<BTreeMap<String, i32>, Failure> {
        let mut topics = self.topics.lock().await;
        if let Some(t) = &*topics {
            return Ok(t.clone());
        }
        let mut found = BTreeMap::new();
        let listed = self.list(&Path::from("topics")).await?;
        for path in listed {
            let name = path.filename().unwrap_or_default().to_string();
            let bytes = self.get(&path).await?;
            let count = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            found.insert(name, count);
        }
        *topics = Some(found.clone());
        Ok(found)
    }

    /// Creates a topic (or finds it there already).
    async fn create(&self, name: &str, partitions: i32) -> Result<bool, Failure> {
        let path = Path::from(format!("topics/{name}"));
        let body = partitions.to_string().into_bytes();
        let created = match self.put_new(&path, Bytes::from(body)).await {
            Ok(()) => true,
            Err(Put::Exists) => false,
            Err(Put::Unknown) => {
                // Maybe written: read the topics again next time.
                *self.topics.lock().await = None;
                return Err(ResponseError::RequestTimedOut);
            }
        };
        // Read back: another attempt may have created it with another count.
        *self.topics.lock().await = None;
        self.topics().await?;
        Ok(created)
    }

    async fn metadata(&self, req: MetadataRequest) -> MetadataResponse {
        let mut r = MetadataResponse::default()
            .with_controller_id(BrokerId(self.node_id))
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(self.node_id))
                .with_host(StrBytes::from_string(self.host.clone()))
                .with_port(self.port)]);
        let topics = match self.topics().await {
            Ok(t) => t,
            Err(_) => return r,
        };
        let wanted: Vec<String> = match &req.topics {
            None => topics.keys().cloned().collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        };
        for name in wanted {
            let mut count = topics.get(&name).copied();
            if count.is_none()
                && req.allow_auto_topic_creation
                && self.create(&name, AUTO_CREATE_PARTITIONS).await.is_ok()
            {
                count = self.topics().await.ok().and_then(|t| t.get(&name).copied());
            }
            let mut topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
            match count {
                None => topic.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(n) => {
                    topic.partitions = (0..n)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(self.node_id))
                                .with_replica_nodes(vec![BrokerId(self.node_id)])
                                .with_isr_nodes(vec![BrokerId(self.node_id)])
                        })
                        .collect()
                }
            }
            r.topics.push(topic);
        }
        r
    }

    async fn create_topics(&self, req: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut r = CreateTopicsResponse::default();
        for t in req.topics {
            let mut res = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(t.num_partitions)
                .with_replication_factor(1);
            if t.num_partitions < 1 {
                res.error_code = ResponseError::InvalidPartitions.code();
            } else {
                match self.create(&t.name.0, t.num_partitions).await {
                    Ok(true) => {}
                    Ok(false) => res.error_code = ResponseError::TopicAlreadyExists.code(),
                    Err(e) => res.error_code = e.code(),
                }
            }
            r.topics.push(res);
        }
        r
    }

    /// The partition's lock, if the partition exists.
    async fn log(&self, topic: &str, partition: i32) -> Result<Arc<Mutex<Log>>, Failure> {
        let topics = self.topics().await?;
        match topics.get(topic) {
            Some(n) if (0..*n).contains(&partition) => {}
            _ => return Err(ResponseError::UnknownTopicOrPartition),
        }
        let mut all = self.partitions.lock().await;
        Ok(all
            .entry((topic.to_string(), partition))
            .or_default()
            .clone())
    }

    /// Reads the partition's index from the store if it is not in memory.
    async fn load(&self, topic: &str, partition: i32, log: &mut Log) -> Result<(), Failure> {
        if log.batches.is_some() {
            return Ok(());
        }
        let mut batches = BTreeMap::new();
        let prefix = Path::from(format!("log/{topic}/{partition}"));
        for path in self.list(&prefix).await? {
            let name = path.filename().unwrap_or_default();
            let Some((base, last)) = name.split_once('-') else {
                continue;
            };
            let (Ok(base), Ok(last)) = (base.parse::<i64>(), last.parse::<i64>()) else {
                continue;
            };
            let bytes = self.get(&path).await?;
            batches.insert(base, Batch { last, bytes });
        }
        log.next = batches.values().map(|b| b.last + 1).max().unwrap_or(0);
        log.batches = Some(batches);
        Ok(())
    }

    async fn produce(&self, req: ProduceRequest) -> ProduceResponse {
        let mut r = ProduceResponse::default();
        for t in req.topic_data {
            let mut tr = TopicProduceResponse::default().with_name(t.name.clone());
            for p in t.partition_data {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(-1);
                let records = p.records.unwrap_or_default();
                match self.append(&t.name.0, p.index, records).await {
                    Ok(base) => pr.base_offset = base,
                    Err(e) => pr.error_code = e.code(),
                }
                tr.partition_responses.push(pr);
            }
            r.responses.push(tr);
        }
        r
    }

    /// Appends the record batches of one partition's produce; returns the first one's offset.
    async fn append(&self, topic: &str, partition: i32, records: Bytes) -> Result<i64, Failure> {
        let batches = split_batches(records).ok_or(ResponseError::CorruptMessage)?;
        if batches.is_empty() {
            return Err(ResponseError::CorruptMessage);
        }
        let log = self.log(topic, partition).await?;
        let mut log = log.lock().await;
        self.load(topic, partition, &mut log).await?;
        let mut first = None;
        for mut batch in batches {
            let base = log.next;
            let last = base + last_offset_delta(&batch) as i64;
            batch[..8].copy_from_slice(&base.to_be_bytes());
            let bytes = batch.freeze();
            let path = Path::from(format!("log/{topic}/{partition}/{base:020}-{last:020}"));
            if self.ack_before_write {
                // The planted bug: the batch counts as written before it is.
                let store = self.store.clone();
                let body = bytes.clone();
                tokio::spawn(async move {
                    let _ = store.put(&path, body.into()).await;
                });
            } else {
                match self.put_new(&path, bytes.clone()).await {
                    Ok(()) => {}
                    Err(put) => {
                        // Maybe written, maybe not (or another write holds this offset): read
                        // the log back before the next append. The client retries.
                        log.batches = None;
                        return Err(match put {
                            Put::Exists => ResponseError::NotLeaderOrFollower,
                            Put::Unknown => ResponseError::RequestTimedOut,
                        });
                    }
                }
            }
            if let Some(batches) = &mut log.batches {
                batches.insert(base, Batch { last, bytes });
            }
            log.next = last + 1;
            first.get_or_insert(base);
        }
        Ok(first.unwrap_or(-1))
    }

    async fn fetch(&self, req: FetchRequest) -> FetchResponse {
        // Long polling: when nothing is there, wait (up to max_wait) once and look again.
        let mut waited = false;
        loop {
            let mut r = FetchResponse::default();
            let mut bytes = 0;
            for t in &req.topics {
                let mut tr = FetchableTopicResponse::default().with_topic(t.topic.clone());
                for p in &t.partitions {
                    let mut pd = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(0);
                    match self
                        .read(
                            &t.topic.0,
                            p.partition,
                            p.fetch_offset,
                            p.partition_max_bytes,
                        )
                        .await
                    {
                        Ok((hwm, records)) => {
                            bytes += records.len();
                            pd.high_watermark = hwm;
                            pd.last_stable_offset = hwm;
                            pd.aborted_transactions = Some(vec![]);
                            pd.records = Some(records);
                        }
                        Err(e) => pd.error_code = e.code(),
                    }
                    tr.partitions.push(pd);
                }
                r.responses.push(tr);
            }
            if bytes > 0 || waited || req.max_wait_ms <= 0 {
                return r;
            }
            waited = true;
            tokio::time::sleep(Duration::from_millis(req.max_wait_ms.min(1000) as u64)).await;
        }
    }

    /// The high watermark, and the batches from the one holding `offset` on, up to `max`
    /// bytes (at least one batch).
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: i32,
    ) -> Result<(i64, Bytes), Failure> {
        let log = self.log(topic, partition).await?;
        let mut log = log.lock().await;
        self.load(topic, partition, &mut log).await?;
        if offset < 0 || offset > log.next {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let mut out = BytesMut::new();
        let batches = log.batches.as_ref().expect("loaded above");
        for batch in batches.values().filter(|b| b.last >= offset) {
            if !out.is_empty() && out.len() + batch.bytes.len() > max.max(0) as usize {
                break;
            }
            out.extend_from_slice(&batch.bytes);
        }
        Ok((log.next, out.freeze()))
    }

    async fn list_offsets(&self, req: ListOffsetsRequest) -> ListOffsetsResponse {
        let mut r = ListOffsetsResponse::default();
        for t in req.topics {
            let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
            for p in t.partitions {
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let end = async {
                    let log = self.log(&t.name.0, p.partition_index).await?;
                    let mut log = log.lock().await;
                    self.load(&t.name.0, p.partition_index, &mut log).await?;
                    Ok::<i64, Failure>(log.next)
                };
                match (p.timestamp, end.await) {
                    (_, Err(e)) => pr.error_code = e.code(),
                    (-2, Ok(_)) => pr.offset = 0,
                    (-1, Ok(next)) => pr.offset = next,
                    _ => pr.error_code = ResponseError::InvalidRequest.code(),
                }
                tr.partitions.push(pr);
            }
            r.topics.push(tr);
        }
        r
    }

    async fn offset_commit(&self, req: OffsetCommitRequest) -> OffsetCommitResponse {
        let mut r = OffsetCommitResponse::default();
        // One commit at a time: each takes the next sequence number of its partition.
        let mut commits = self.commits.lock().await;
        for t in req.topics {
            let mut tr = OffsetCommitResponseTopic::default().with_name(t.name.clone());
            for p in t.partitions {
                let key = (
                    req.group_id.0.to_string(),
                    t.name.0.to_string(),
                    p.partition_index,
                );
                let code = match self.commit(&mut commits, key, p.committed_offset).await {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                };
                tr.partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code),
                );
            }
            r.topics.push(tr);
        }
        r
    }

    async fn commit(
        &self,
        commits: &mut Commits,
        key: (String, String, i32),
        offset: i64,
    ) -> Result<(), Failure> {
        let (seq, _) = self.committed(commits, &key).await?;
        let (group, topic, partition) = &key;
        let next = seq + 1;
        let path = Path::from(format!(
            "commits/{group}/{topic}/{partition}/{next:020}-{offset}"
        ));
        match self.put_new(&path, Bytes::new()).await {
            Ok(()) => {
                commits.insert(key, (next, offset));
                Ok(())
            }
            Err(_) => {
                // Maybe written: read the commits back next time.
                commits.remove(&key);
                Err(ResponseError::RequestTimedOut)
            }
        }
    }

    /// The last commit of a group's partition: (sequence, offset), (0, -1) if none.
    async fn committed(
        &self,
        commits: &mut Commits,
        key: &(String, String, i32),
    ) -> Result<(i64, i64), Failure> {
        if let Some(c) = commits.get(key) {
            return Ok(*c);
        }
        let (group, topic, partition) = key;
        let prefix = Path::from(format!("commits/{group}/{topic}/{partition}"));
        let mut last = (0, -1);
        for path in self.list(&prefix).await? {
            let name = path.filename().unwrap_or_default();
            if let Some((seq, offset)) = name.split_once('-') {
                if let (Ok(seq), Ok(offset)) = (seq.parse::<i64>(), offset.parse::<i64>()) {
                    last = last.max((seq, offset));
                }
            }
        }
        commits.insert(key.clone(), last);
        Ok(last)
    }

    async fn offset_fetch(&self, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let mut r = OffsetFetchResponse::default();
        let mut commits = self.commits.lock().await;
        for t in req.topics.unwrap_or_default() {
            let mut tr = OffsetFetchResponseTopic::default().with_name(t.name.clone());
            for p in t.partition_indexes {
                let key = (req.group_id.0.to_string(), t.name.0.to_string(), p);
                let mut pr = OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1);
                match self.committed(&mut commits, &key).await {
                    Ok((_, offset)) => pr.committed_offset = offset,
                    Err(e) => pr.error_code = e.code(),
                }
                tr.partitions.push(pr);
            }
            r.topics.push(tr);
        }
        r
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<Path>, Failure> {
        use futures::TryStreamExt;
        let listed: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| storage(e, "list"))?;
        let mut paths: Vec<Path> = listed.into_iter().map(|m| m.location).collect();
        paths.sort();
        Ok(paths)
    }

    async fn get(&self, path: &Path) -> Result<Bytes, Failure> {
        let got = self.store.get(path).await.map_err(|e| storage(e, "get"))?;
        got.bytes().await.map_err(|e| storage(e, "get"))
    }

    /// Writes `path` only if nothing is there.
    async fn put_new(&self, path: &Path, bytes: Bytes) -> Result<(), Put> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(path, bytes.into(), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(Put::Exists),
            Err(e) => {
                tracing::info!(%path, error = %e, "write failed");
                Err(Put::Unknown)
            }
        }
    }
}

/// Why a create-if-absent write did not succeed.
enum Put {
    /// Something is there already.
    Exists,
    /// It failed, or its reply was lost: it may have been written.
    Unknown,
}

fn storage(e: object_store::Error, what: &str) -> Failure {
    tracing::info!(error = %e, "{what} failed");
    ResponseError::KafkaStorageError
}

fn encode<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    resp: &R,
    version: i16,
) -> anyhow::Result<BytesMut> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, R::header_version(version))?;
    resp.encode(&mut out, version)?;
    Ok(out)
}

/// Splits a produce's records into v2 record batches; `None` if they are not whole v2 batches.
fn split_batches(mut records: Bytes) -> Option<Vec<BytesMut>> {
    let mut out = Vec::new();
    while records.has_remaining() {
        // baseOffset (8), batchLength (4), partitionLeaderEpoch (4), magic (1), ...
        if records.len() < 61 {
            return None;
        }
        let len = i32::from_be_bytes(records[8..12].try_into().ok()?);
        let total = 12 + usize::try_from(len).ok()?;
        if total < 61 || total > records.len() || records[16] != 2 {
            return None;
        }
        out.push(BytesMut::from(&records.split_to(total)[..]));
    }
    Some(out)
}

/// The batch's lastOffsetDelta: its records are base ..= base + delta.
fn last_offset_delta(batch: &[u8]) -> i32 {
    i32::from_be_bytes(batch[23..27].try_into().expect("checked by split_batches"))
}
