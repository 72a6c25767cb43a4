//! Wire codec: 4-byte big-endian length framing, request/response (de)serialisation through
//! `kafka-protocol`, API version selection, and record batches.
//!
//! Everything that parses broker bytes returns an error instead of panicking: the broker under test
//! may be arbitrarily wrong, and a malformed reply is a finding, not a crash.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    DeleteRecordsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::error::ClientError;
use riptide_checker::history::ViolationKind;
use riptide_wire::frame;
use riptide_wire::versions::{self, range_in, VersionTable};

/// The APIs this client speaks and the version range implemented for each (inclusive). Produce and
/// Fetch stop before the versions that address topics by id (Produce v13, Fetch v13).
pub const CLIENT_VERSIONS: &VersionTable = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 2),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
];

/// The version range this client implements for `api`, if any.
pub fn client_range(api: ApiKey) -> Option<(i16, i16)> {
    range_in(CLIENT_VERSIONS, api)
}

/// Version ranges a broker advertised in its ApiVersions response, by API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerVersions(pub BTreeMap<i16, (i16, i16)>);

impl BrokerVersions {
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        BrokerVersions(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        )
    }

    /// The broker's advertised range for `api`.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.0.get(&(api as i16)).copied()
    }

    /// The highest version of `api` both sides support.
    pub fn pick(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.pick_capped(api, None)
    }

    /// Like [`BrokerVersions::pick`], at most `cap`.
    pub fn pick_capped(&self, api: ApiKey, cap: Option<i16>) -> Result<i16, ClientError> {
        let unsupported = |reason: String| ClientError::Unsupported { api, reason };
        let (clo, chi) =
            client_range(api).ok_or_else(|| unsupported("not implemented by the client".into()))?;
        let (blo, bhi) = self
            .range(api)
            .ok_or_else(|| unsupported("not advertised by the broker".into()))?;
        let (lo, hi) = (clo.max(blo), chi.min(bhi).min(cap.unwrap_or(i16::MAX)));
        if lo > hi {
            let capped = cap.map(|c| format!(" (replies above v{c} were undecodable)"));
            return Err(unsupported(format!(
                "broker supports {blo}..={bhi}, client {clo}..={chi}{}",
                capped.unwrap_or_default()
            )));
        }
        Ok(hi)
    }
}

fn api_key_of<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY)
        .map_err(|_| ClientError::Invalid(format!("unknown api key {}", R::KEY)))
}

/// Encodes a request as one frame: length prefix, request header, body.
pub fn encode_request<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<BytesMut, ClientError> {
    let api = api_key_of::<R>()?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|s| StrBytes::from_string(s.to_owned())));
    let invalid =
        |e: anyhow::Error| ClientError::Invalid(format!("encode {api:?} v{version}: {e}"));
    let mut buf = frame::start(64);
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(invalid)?;
    req.encode(&mut buf, version).map_err(invalid)?;
    frame::seal(&mut buf).map_err(|len| ClientError::Invalid(format!("request of {len} bytes")))?;
    Ok(buf)
}

/// Decodes one response frame (without its length prefix) for request type `R` sent at `version`.
pub fn decode_response<R: Request>(
    body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, BadReply> {
    let api = ApiKey::try_from(R::KEY)
        .map_err(|_| BadReply::malformed(format!("unknown api key {}", R::KEY)))?;
    guarded(|| {
        let mut body = body;
        check_header(
            &mut body,
            versions::response_header_version(api, version),
            correlation_id,
        )?;
        R::Response::decode(&mut body, version)
            .map_err(|e| BadReply::malformed(format!("{api:?} v{version} body: {e}")))
    })
}

/// Decodes an ApiVersions response frame, KIP-511 refusals included (see
/// [`versions::decode_api_versions`]).
pub fn decode_api_versions(
    body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<ApiVersionsResponse, BadReply> {
    guarded(|| {
        let mut body = body;
        check_header(
            &mut body,
            versions::response_header_version(ApiKey::ApiVersions, version),
            correlation_id,
        )?;
        versions::decode_api_versions(body, version).map_err(BadReply::malformed)
    })
}

/// A Metadata request for `topics` (empty: brokers only). Auto-creation is turned off where the
/// version can say so (v4+; earlier versions always auto-create on brokers configured to).
pub fn metadata_request(topics: &[&str], version: i16) -> MetadataRequest {
    let req = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ));
    if version >= 4 {
        req.with_allow_auto_topic_creation(false)
    } else {
        req
    }
}

/// A Produce request carrying one record batch for one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

/// A Produce request carrying one record batch for each of several partitions, grouped by topic
/// in order of first appearance.
pub fn produce_request_many(
    batches: &[(&str, i32, Bytes)],
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (topic, partition, batch) in batches {
        let data = PartitionProduceData::default()
            .with_index(*partition)
            .with_records(Some(batch.clone()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics)
}

/// One partition of a multi-partition fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSpec {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Most record bytes for this partition (`partition_max_bytes`).
    pub max_bytes: i32,
}

/// A sessionless Fetch of several partitions by topic name (valid for v4..=12), grouped by topic
/// in order of first appearance.
pub fn fetch_request_many(
    parts: &[FetchSpec],
    max_wait_ms: i32,
    max_bytes: i32,
    isolation_level: i8,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in parts {
        let fp = FetchPartition::default()
            .with_partition(p.partition)
            .with_fetch_offset(p.offset)
            .with_partition_max_bytes(p.max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
            Some(t) => t.partitions.push(fp),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(&p.topic))
                    .with_partitions(vec![fp]),
            ),
        }
    }
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(isolation_level)
        .with_topics(topics)
}

/// A sessionless Fetch of one partition by topic name (valid for v4..=12).
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
    isolation_level: i8,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(isolation_level)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

/// A ListOffsets request for one partition (`timestamp`: -2 earliest, -1 latest, else ms).
pub fn list_offsets_request(
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation_level: i8,
    version: i16,
) -> ListOffsetsRequest {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1)) // a consumer, not a follower
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    if version >= 2 {
        req.with_isolation_level(isolation_level)
    } else {
        req
    }
}

/// A CreateTopics request for one topic. A negative replication factor means "broker default",
/// which only v4+ understands; earlier versions get 1.
pub fn create_topics_request(
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
    replication_factor: i16,
    timeout_ms: i32,
    version: i16,
) -> CreateTopicsRequest {
    let rf = match replication_factor {
        rf if rf < 0 && version < 4 => 1,
        rf if rf < 0 => -1,
        rf => rf,
    };
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(name, value)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(name.clone()))
                            .with_value(Some(StrBytes::from_string(value.clone())))
                    })
                    .collect(),
            )])
        .with_timeout_ms(timeout_ms)
        .with_validate_only(false)
}

/// A DeleteRecords request for one partition: remove its records below `offset`.
pub fn delete_records_request(
    topic: &str,
    partition: i32,
    offset: i64,
    timeout_ms: i32,
) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])])
        .with_timeout_ms(timeout_ms)
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// An ApiVersions request at `version`, naming this client (fields exist from v3).
pub fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let req = ApiVersionsRequest::default();
    if version >= 3 {
        req.with_client_software_name(StrBytes::from_static_str("riptide"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
    } else {
        req
    }
}

/// Why a reply could not be taken: what the protocol forbids in it (`None`: nothing, riptide
/// just cannot read it) and the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply {
    pub kind: Option<ViolationKind>,
    pub reason: String,
}

impl BadReply {
    pub fn new(kind: ViolationKind, reason: impl Into<String>) -> Self {
        BadReply {
            kind: Some(kind),
            reason: reason.into(),
        }
    }

    /// Undecodable: contrary to the protocol's encoding.
    pub fn malformed(reason: impl Into<String>) -> Self {
        BadReply::new(ViolationKind::Malformed, reason)
    }

    /// The client error for a reply from `addr` (indeterminate and not retried, like every
    /// malformed reply).
    pub fn into_error(self, addr: &str) -> ClientError {
        ClientError::Malformed {
            addr: addr.to_string(),
            reason: self.reason,
            kind: self.kind,
        }
    }
}

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn check_header(
    body: &mut Bytes,
    header_version: i16,
    correlation_id: i32,
) -> Result<(), BadReply> {
    let header = ResponseHeader::decode(body, header_version)
        .map_err(|e| BadReply::malformed(format!("response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(BadReply::new(
            ViolationKind::CorrelationMismatch,
            format!(
                "correlation id {} does not match request {correlation_id}",
                header.correlation_id
            ),
        ));
    }
    Ok(())
}

/// Runs a decoder, turning a panic inside kafka-protocol into an error (belt and braces: the
/// vendored crate bounds allocations, but a malformed reply must never take the harness down).
fn guarded<T>(f: impl FnOnce() -> Result<T, BadReply>) -> Result<T, BadReply> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(BadReply::malformed("decoder panicked")))
}

/// One record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
    /// The first and last offsets of the record batch it came in.
    pub batch_base: i64,
    pub batch_last: i64,
}

/// An idempotent producer's identity and the batch's first sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequenced {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub sequence: i32,
}

/// One record to put in a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    /// Creation time (ms), or -1.
    pub timestamp: i64,
}

/// Encodes a single record as a v2 record batch (no producer id unless `sequenced`).
pub fn encode_record_batch(
    key: Option<Bytes>,
    value: Option<Bytes>,
    timestamp: i64,
    compression: Compression,
    sequenced: Option<Sequenced>,
) -> Result<Bytes, ClientError> {
    let record = OutRecord {
        key,
        value,
        headers: Vec::new(),
        timestamp,
    };
    encode_batch(std::slice::from_ref(&record), compression, sequenced)
}

/// Encodes `records` as one v2 record batch, in order (offset deltas 0, 1, ...), compressed with
/// `compression`; with `sequenced`, the batch carries the producer id, epoch and base sequence.
pub fn encode_batch(
    records: &[OutRecord],
    compression: Compression,
    sequenced: Option<Sequenced>,
) -> Result<Bytes, ClientError> {
    encode_batch_as(records, compression, sequenced, false)
}

/// Like [`encode_batch`], for a transactional producer: the batch is marked transactional.
pub fn encode_txn_batch(
    records: &[OutRecord],
    compression: Compression,
    sequenced: Sequenced,
) -> Result<Bytes, ClientError> {
    encode_batch_as(records, compression, Some(sequenced), true)
}

fn encode_batch_as(
    records: &[OutRecord],
    compression: Compression,
    sequenced: Option<Sequenced>,
    transactional: bool,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::Invalid("an empty record batch".to_string()));
    }
    let base_sequence = sequenced.map_or(NO_SEQUENCE, |s| s.sequence);
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: sequenced.map_or(NO_PRODUCER_ID, |s| s.producer_id),
            producer_epoch: sequenced.map_or(NO_PRODUCER_EPOCH, |s| s.producer_epoch),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays constant
            // (and writes only the first sequence), so sequences count up from the base even
            // without a producer id.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), Some(v.clone())))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records.iter(),
        &opts,
        Some(compress),
    )
    .map_err(|e| ClientError::Invalid(format!("encode record batch: {e}")))?;
    Ok(buf.freeze())
}

thread_local! {
    // zstd contexts are costly to make (megabytes set up per batch through kafka-protocol's
    // streaming codec); one per thread, reused, gives the same bytes.
    static ZSTD_ENCODER: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static ZSTD_DECODER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    // Likewise a deflate state (hundreds of kilobytes, zeroed, for every gzip batch otherwise).
    static DEFLATE: std::cell::RefCell<Option<flate2::Compress>> =
        const { std::cell::RefCell::new(None) };
}

/// A gzip member (RFC 1952: the 10-byte header flate2 writes, raw deflate, CRC-32 and size)
/// from a reused deflate state.
fn gzip(src: &[u8], out: &mut BytesMut) -> anyhow::Result<()> {
    use flate2::{Compress, FlushCompress, Status};
    DEFLATE.with(|cell| -> anyhow::Result<()> {
        let mut cell = cell.borrow_mut();
        let z = cell.get_or_insert_with(|| Compress::new(flate2::Compression::default(), false));
        z.reset();
        out.put_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut deflated = Vec::with_capacity(src.len() / 2 + 64);
        loop {
            let consumed = z.total_in() as usize;
            match z.compress_vec(&src[consumed..], &mut deflated, FlushCompress::Finish)? {
                Status::StreamEnd => break,
                _ => deflated.reserve(deflated.capacity().max(64)),
            }
        }
        out.put_slice(&deflated);
        let mut crc = flate2::Crc::new();
        crc.update(src);
        out.put_u32_le(crc.sum());
        out.put_u32_le(src.len() as u32);
        Ok(())
    })
}

/// Level 3, as kafka-protocol and Kafka's clients use by default.
const ZSTD_LEVEL: i32 = 3;

/// Compresses a batch's records: zstd and gzip with reused contexts, snappy and lz4 as
/// kafka-protocol does it.
fn compress(src: &mut BytesMut, out: &mut BytesMut, c: Compression) -> anyhow::Result<()> {
    use kafka_protocol::compression::{Compressor, Lz4, Snappy};
    let copy = |tmp: &mut BytesMut| -> anyhow::Result<()> {
        tmp.put_slice(src);
        Ok(())
    };
    match c {
        Compression::None => out.put_slice(src),
        Compression::Gzip => gzip(src, out)?,
        Compression::Snappy => Snappy::compress(out, copy)?,
        Compression::Lz4 => Lz4::compress(out, copy)?,
        Compression::Zstd => ZSTD_ENCODER.with(|cell| -> anyhow::Result<()> {
            let mut cell = cell.borrow_mut();
            let enc = match cell.as_mut() {
                Some(e) => e,
                None => cell.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            out.put_slice(&enc.compress(src)?);
            Ok(())
        })?,
    }
    Ok(())
}

/// Decompresses a batch's records: zstd frames that state their size with a reused context,
/// everything else as kafka-protocol does it.
fn decompress(data: &mut Bytes, c: Compression) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let take = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(std::mem::take(b)) };
    match c {
        Compression::None => Ok(std::mem::take(data)),
        Compression::Gzip => Gzip::decompress(data, take),
        Compression::Snappy => Snappy::decompress(data, take),
        Compression::Lz4 => Lz4::decompress(data, take),
        Compression::Zstd => {
            let size = zstd::zstd_safe::get_frame_content_size(data).ok().flatten();
            match size {
                // A size a broker could lie about is bounded by what a fetch may carry.
                Some(n) if n <= riptide_wire::MAX_FRAME_BYTES as u64 * 4 => {
                    ZSTD_DECODER.with(|cell| -> anyhow::Result<Bytes> {
                        let mut cell = cell.borrow_mut();
                        let dec = match cell.as_mut() {
                            Some(d) => d,
                            None => cell.insert(zstd::bulk::Decompressor::new()?),
                        };
                        Ok(Bytes::from(dec.decompress(data, n as usize)?))
                    })
                }
                _ => Zstd::decompress(data, take),
            }
        }
    }
}

/// The records of a fetch response's partition, and the span of every whole batch it held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Records at or after the fetch offset, control records dropped.
    pub records: Vec<FetchedRecord>,
    /// (base offset, last offset) of each whole batch, in the order the broker sent them.
    pub batches: Vec<(i64, i64)>,
    /// What each of those batches is to transactions (same order).
    pub kinds: Vec<BatchKind>,
}

/// A batch's producer and what it is to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchKind {
    pub producer_id: i64,
    pub transactional: bool,
    /// A control batch: `Some(true)` a commit marker, `Some(false)` an abort marker.
    pub marker: Option<bool>,
}

/// A v2 record batch: base offset (8), batch length (4), leader epoch (4), magic (1), CRC (4),
/// then the CRC-covered rest (attributes onwards); the header up to the record count is 61 bytes.
const LOG_OVERHEAD: usize = 12;
const CRC_AT: usize = 17;
const BATCH_HEADER: usize = 61;

/// Decodes the record batches of a fetch response, keeping records at or after `from_offset`
/// (brokers return whole batches, which may start earlier). Control records are dropped. A trailing
/// partial batch — normal when a batch crosses `max_bytes` — is ignored.
pub fn decode_records(data: Bytes, from_offset: i64) -> Result<Vec<FetchedRecord>, BadReply> {
    decode_fetched(data, from_offset).map(|f| f.records)
}

/// Like [`decode_records`], also giving each batch's span. A batch shorter than its header, or
/// whose CRC-32C does not match, is [`ViolationKind::CorruptBatch`] (the Java consumer raises
/// CorruptRecordException for both, with `check.crcs` on by default); one in an older format
/// (magic 0 or 1: legal, riptide reads only v2) is an error of no kind.
pub fn decode_fetched(data: Bytes, from_offset: i64) -> Result<Fetched, BadReply> {
    let corrupt = |reason: String| BadReply::new(ViolationKind::CorruptBatch, reason);
    let mut data = data;
    let mut out = Fetched::default();
    while data.len() >= LOG_OVERHEAD {
        let batch_len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        if batch_len < (BATCH_HEADER - LOG_OVERHEAD) as i32 {
            return Err(corrupt(format!(
                "record batch length {batch_len} is shorter than a batch header"
            )));
        }
        let total = LOG_OVERHEAD + batch_len as usize;
        if data.len() < total {
            break;
        }
        let mut batch = data.split_to(total);
        match batch[16] {
            2 => {}
            magic => {
                return Err(BadReply {
                    kind: None,
                    reason: format!("record batch magic {magic} unsupported"),
                })
            }
        }
        let base = i64::from_be_bytes([
            batch[0], batch[1], batch[2], batch[3], batch[4], batch[5], batch[6], batch[7],
        ]);
        let supplied = u32::from_be_bytes([
            batch[CRC_AT],
            batch[CRC_AT + 1],
            batch[CRC_AT + 2],
            batch[CRC_AT + 3],
        ]);
        let actual = crc32c::crc32c(&batch[CRC_AT + 4..]);
        if supplied != actual {
            return Err(corrupt(format!(
                "record batch at offset {base}: CRC {supplied:#010x}, contents give {actual:#010x}"
            )));
        }
        // The CRC held, so a batch that does not decode is inconsistent in itself.
        let set = guarded(|| {
            RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))
                .map_err(|e| corrupt(format!("record batch at offset {base}: {e}")))
        })?;
        let last = set.records.iter().map(|r| r.offset).max().unwrap_or(base);
        out.batches.push((base, last));
        let first = set.records.first();
        out.kinds.push(BatchKind {
            producer_id: first.map_or(-1, |r| r.producer_id),
            transactional: first.is_some_and(|r| r.transactional),
            marker: first.filter(|r| r.control).map(|r| {
                // The control record's key: version (i16), type (i16: 0 abort, 1 commit).
                r.key
                    .as_ref()
                    .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 1)
            }),
        });
        out.records.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control && r.offset >= from_offset)
                .map(|r| FetchedRecord {
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                    batch_base: base,
                    batch_last: last,
                }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_cap_lowers_the_pick_and_can_rule_an_api_out() {
        let b = BrokerVersions([(ApiKey::Fetch as i16, (0, 17))].into());
        assert_eq!(b.pick(ApiKey::Fetch).unwrap(), 12);
        assert_eq!(b.pick_capped(ApiKey::Fetch, Some(11)).unwrap(), 11);
        assert!(b.pick_capped(ApiKey::Fetch, Some(3)).is_err());
    }
    use bytes::Buf;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::decode_request_header_from_buffer;
    use rand::{Rng, SeedableRng};

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    /// Encodes a response the way a broker would: header at the API's response header version,
    /// then the body; returns the frame body (no length prefix).
    fn broker_response<R: Encodable>(api: ApiKey, version: i16, corr: i32, resp: &R) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(corr)
            .encode(&mut buf, api.response_header_version(version))
            .unwrap();
        resp.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn batch(base: i64, values: &[&'static str]) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: NO_SEQUENCE,
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(Bytes::from_static(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &opts).unwrap();
        buf.freeze()
    }

    #[test]
    fn produce_request_round_trips_through_the_broker_decoder() {
        for version in 3..=9 {
            let records = encode_record_batch(
                Some(Bytes::from_static(b"k")),
                Some(Bytes::from_static(b"v")),
                42,
                Compression::None,
                Some(Sequenced {
                    producer_id: 9,
                    producer_epoch: 1,
                    sequence: 5,
                }),
            )
            .unwrap();
            let req = produce_request("t", 3, records, -1, 1234);
            let mut frame = encode_request(&req, version, 77, Some("riptide"))
                .unwrap()
                .freeze();
            let len = frame.get_i32();
            assert_eq!(len as usize, frame.len(), "length prefix covers the rest");

            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            assert_eq!(header.request_api_key, ApiKey::Produce as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 77);
            assert_eq!(header.client_id.as_deref(), Some("riptide"));
            let decoded = ProduceRequest::decode(&mut frame, version).unwrap();
            assert_eq!(decoded, req);
            assert!(!frame.has_remaining());

            let mut data = decoded.topic_data[0].partition_data[0]
                .records
                .clone()
                .unwrap();
            let set = RecordBatchDecoder::decode(&mut data).unwrap();
            assert_eq!(set.records.len(), 1);
            assert_eq!(set.records[0].key.as_deref(), Some(&b"k"[..]));
            assert_eq!(set.records[0].value.as_deref(), Some(&b"v"[..]));
            assert_eq!(set.records[0].timestamp, 42);
        }
    }

    #[test]
    fn compressed_batches_round_trip() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let data = encode_record_batch(
                None,
                Some(Bytes::from_static(b"hello")),
                7,
                compression,
                None,
            )
            .unwrap();
            let recs = decode_records(data, 0).unwrap();
            assert_eq!(recs.len(), 1, "{compression:?}");
            assert_eq!(recs[0].value.as_deref(), Some(&b"hello"[..]));
        }
    }

    #[test]
    fn batches_of_many_records_round_trip_with_keys_headers_and_sequences() {
        let records: Vec<OutRecord> = (0..7)
            .map(|i| OutRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![("h".to_string(), Bytes::from(format!("{i}")))],
                timestamp: 100 + i,
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for sequenced in [
                None,
                Some(Sequenced {
                    producer_id: 4,
                    producer_epoch: 2,
                    sequence: 30,
                }),
            ] {
                let data = encode_batch(&records, compression, sequenced).unwrap();
                // One batch, whatever the producer id.
                let mut raw = data.clone();
                let set = RecordBatchDecoder::decode(&mut raw).unwrap();
                assert!(raw.is_empty(), "{compression:?}: more than one batch");
                assert_eq!(set.records.len(), 7);
                assert_eq!(set.records[3].key, None);
                assert_eq!(set.records[4].key.as_deref(), Some(&b"k4"[..]));
                assert_eq!(
                    set.records[5]
                        .headers
                        .get(&StrBytes::from_static_str("h"))
                        .cloned()
                        .flatten()
                        .as_deref(),
                    Some(&b"5"[..])
                );
                let seq = sequenced.map_or(NO_SEQUENCE, |s| s.sequence);
                assert_eq!(set.records[0].sequence, seq);
                let got = decode_records(data, 2).unwrap();
                assert_eq!(got.len(), 5, "records before the offset are dropped");
                assert_eq!(
                    (got[0].offset, got[0].batch_base, got[0].batch_last),
                    (2, 0, 6)
                );
                assert_eq!(got[4].value.as_deref(), Some(&b"v6"[..]));
            }
        }
        assert!(encode_batch(&[], Compression::None, None).is_err());
    }

    #[test]
    fn our_codecs_and_kafka_protocols_read_each_other() {
        let records: Vec<OutRecord> = (0..20)
            .map(|i| OutRecord {
                value: Some(Bytes::from(format!("value-{i}").repeat(i + 1))),
                timestamp: i as i64,
                ..OutRecord::default()
            })
            .collect();
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let ours = encode_batch(&records, compression, None).unwrap();
            let set = RecordBatchDecoder::decode(&mut ours.clone()).unwrap();
            assert_eq!(set.records.len(), 20, "{compression:?}");
            assert_eq!(set.records[19].value, records[19].value);
            // kafka-protocol's own (streaming) encoding: zstd frames without a stated size.
            let theirs: Vec<Record> = set.records.clone();
            let mut buf = BytesMut::new();
            let opts = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, &theirs, &opts).unwrap();
            let got = decode_records(buf.freeze(), 0).unwrap();
            assert_eq!(got.len(), 20, "{compression:?}");
            assert_eq!(got[7].value, records[7].value);
            // Same input, same bytes: the reused zstd context keeps runs deterministic.
            assert_eq!(encode_batch(&records, compression, None).unwrap(), ours);
        }
    }

    #[test]
    fn multi_partition_requests_group_by_topic() {
        let b = batch(0, &["x"]);
        let req = produce_request_many(
            &[
                ("a", 0, b.clone()),
                ("b", 1, b.clone()),
                ("a", 2, b.clone()),
            ],
            -1,
            500,
        );
        assert_eq!(req.topic_data.len(), 2);
        assert_eq!(req.topic_data[0].partition_data.len(), 2);
        assert_eq!(req.topic_data[1].partition_data[0].index, 1);
        for v in 3..=9 {
            assert_eq!(through_broker(&req, v), req);
        }
        let spec = |t: &str, p, o| FetchSpec {
            topic: t.to_string(),
            partition: p,
            offset: o,
            max_bytes: 300,
        };
        let req = fetch_request_many(
            &[spec("a", 0, 5), spec("b", 0, 1), spec("a", 3, 9)],
            100,
            1 << 20,
            0,
        );
        assert_eq!(req.topics.len(), 2);
        assert_eq!(req.topics[0].partitions[1].fetch_offset, 9);
        assert_eq!(req.topics[0].partitions[1].partition_max_bytes, 300);
        for v in 4..=12 {
            assert_eq!(through_broker(&req, v), req);
        }
    }

    /// Encodes `req` at `version` and decodes it back as a broker would.
    fn through_broker<R: Request + PartialEq + std::fmt::Debug>(req: &R, version: i16) -> R {
        let mut frame = encode_request(req, version, 1, None).unwrap().freeze();
        frame.advance(4);
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        assert_eq!(
            (header.request_api_key, header.request_api_version),
            (R::KEY, version)
        );
        let back = R::decode(&mut frame, version).unwrap();
        assert!(!frame.has_remaining());
        back
    }

    #[test]
    fn every_request_builder_encodes_at_every_supported_version() {
        for &(api, lo, hi) in CLIENT_VERSIONS {
            for v in lo..=hi {
                match api {
                    ApiKey::Metadata => {
                        let req = metadata_request(&["t"], v);
                        let back = through_broker(&req, v);
                        assert_eq!(back.topics, req.topics, "v{v}");
                        assert_eq!(back.allow_auto_topic_creation, v < 4);
                    }
                    ApiKey::Produce => {
                        let req = produce_request("t", 1, batch(0, &["x"]), -1, 100);
                        assert_eq!(through_broker(&req, v), req);
                    }
                    ApiKey::Fetch => {
                        let req = fetch_request("t", 1, 10, 500, 1 << 20, 1);
                        assert_eq!(through_broker(&req, v), req);
                    }
                    ApiKey::ListOffsets => {
                        let req = list_offsets_request("t", 1, -2, 1, v);
                        let back = through_broker(&req, v);
                        assert_eq!(back.topics, req.topics);
                        assert_eq!(back.replica_id, BrokerId(-1));
                    }
                    ApiKey::DeleteRecords => {
                        let req = delete_records_request("t", 1, 42, 100);
                        assert_eq!(through_broker(&req, v), req);
                    }
                    ApiKey::CreateTopics => {
                        let configs = [("retention.ms".to_string(), "5000".to_string())];
                        let req = create_topics_request("t", 3, &configs, -1, 100, v);
                        let back = through_broker(&req, v);
                        assert_eq!(
                            back.topics[0].replication_factor,
                            if v < 4 { 1 } else { -1 }
                        );
                        assert_eq!(back.topics[0].configs, req.topics[0].configs);
                    }
                    ApiKey::ApiVersions => {
                        let req = api_versions_request(v);
                        assert_eq!(through_broker(&req, v), req);
                    }
                    ApiKey::InitProducerId => {
                        let mut req = kafka_protocol::messages::InitProducerIdRequest::default();
                        req.transaction_timeout_ms = 60_000;
                        assert_eq!(through_broker(&req, v), req);
                    }
                    // The group APIs are built in client::group and exercised
                    // against the broker in the simulation's group workload.
                    ApiKey::FindCoordinator
                    | ApiKey::JoinGroup
                    | ApiKey::SyncGroup
                    | ApiKey::Heartbeat
                    | ApiKey::LeaveGroup
                    | ApiKey::OffsetCommit
                    | ApiKey::OffsetFetch => {}
                    // Built in client::txn and exercised against the broker in the
                    // simulation's transactions workload.
                    ApiKey::AddPartitionsToTxn
                    | ApiKey::AddOffsetsToTxn
                    | ApiKey::EndTxn
                    | ApiKey::TxnOffsetCommit => {}
                    other => panic!("untested api {other:?}"),
                }
            }
        }
    }

    #[test]
    fn fetch_response_decodes_and_skips_records_below_the_offset() {
        // Two batches (offsets 5..=6 and 7) and a truncated third, as a broker cut at max_bytes.
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(5, &["a", "b"]));
        data.extend_from_slice(&batch(7, &["c"]));
        let third = batch(8, &["d"]);
        data.extend_from_slice(&third[..third.len() - 3]);
        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(name("t"))
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(9)
                .with_records(Some(data.freeze()))])]);
        for version in 4..=12 {
            let body = broker_response(ApiKey::Fetch, version, 5, &resp);
            let decoded = decode_response::<FetchRequest>(body, version, 5).unwrap();
            let p = &decoded.responses[0].partitions[0];
            assert_eq!(p.high_watermark, 9);
            let recs = decode_records(p.records.clone().unwrap(), 6).unwrap();
            let got: Vec<_> = recs
                .iter()
                .map(|r| (r.offset, r.value.clone().unwrap()))
                .collect();
            assert_eq!(
                got,
                vec![(6, Bytes::from_static(b"b")), (7, Bytes::from_static(b"c"))]
            );
            assert_eq!(recs[0].timestamp, 1001);
        }
    }

    #[test]
    fn correlation_mismatch_is_an_error() {
        let body = broker_response(ApiKey::Fetch, 4, 9, &FetchResponse::default());
        let err = decode_response::<FetchRequest>(body, 4, 10).unwrap_err();
        assert_eq!(err.kind, Some(ViolationKind::CorrelationMismatch), "{err}");
    }

    #[test]
    fn truncated_and_random_responses_are_errors_not_panics() {
        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(name("t"))
            .with_partitions(vec![
                PartitionData::default().with_records(Some(batch(0, &["x", "y"])))
            ])]);
        for version in [4, 12] {
            let body = broker_response(ApiKey::Fetch, version, 1, &resp);
            for cut in 0..body.len() {
                let r = decode_response::<FetchRequest>(body.slice(..cut), version, 1);
                if let Ok(resp) = r {
                    // A cut inside the records blob still parses the envelope; the records must not.
                    let data = resp.responses[0].partitions[0]
                        .records
                        .clone()
                        .unwrap_or_default();
                    let _ = decode_records(data, 0);
                }
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2000 {
            let len = rng.gen_range(0..200);
            let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let junk = Bytes::from(junk);
            let _ = decode_response::<FetchRequest>(junk.clone(), 12, 0);
            let _ = decode_response::<ProduceRequest>(junk.clone(), 9, 0);
            let _ = decode_response::<MetadataRequest>(junk.clone(), 12, 0);
            let _ = decode_api_versions(junk.clone(), 3, 0);
            let _ = decode_records(junk, 0);
        }
    }

    #[test]
    fn bad_record_batches_are_errors() {
        let good = batch(0, &["x"]);
        let mut corrupt = BytesMut::from(&good[..]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff; // breaks the CRC
        let err = decode_records(corrupt.freeze(), 0).unwrap_err();
        assert_eq!(err.kind, Some(ViolationKind::CorruptBatch), "{err}");
        let mut old_magic = BytesMut::from(&good[..]);
        old_magic[16] = 1;
        // Legal (an older format), just not one riptide reads.
        assert_eq!(
            decode_records(old_magic.freeze(), 0).unwrap_err().kind,
            None
        );
        let mut negative = BytesMut::from(&good[..]);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        let err = decode_records(negative.freeze(), 0).unwrap_err();
        assert_eq!(err.kind, Some(ViolationKind::CorruptBatch), "{err}");
    }

    #[test]
    fn api_versions_falls_back_to_v0_per_kip_511() {
        // A broker that only knows ApiVersions v0..=2 answers a v3 request with a v0 body.
        let resp = ApiVersionsResponse::default()
            .with_error_code(riptide_wire::ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(2)]);
        let body = broker_response(ApiKey::ApiVersions, 0, 3, &resp);
        let decoded = decode_api_versions(body, 3, 3).unwrap();
        assert_eq!(
            decoded.error_code,
            riptide_wire::ResponseError::UnsupportedVersion.code()
        );
        assert_eq!(decoded.api_keys[0].max_version, 2);

        // The header of an ApiVersions response is v0 even when the body is flexible (v3).
        let ok = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::Fetch as i16)
            .with_min_version(0)
            .with_max_version(16)]);
        let body = broker_response(ApiKey::ApiVersions, 3, 4, &ok);
        assert_eq!(decode_api_versions(body, 3, 4).unwrap(), ok);
    }

    #[test]
    fn version_pick_is_the_highest_common_version() {
        let mut v = BrokerVersions::default();
        v.0.insert(ApiKey::Fetch as i16, (0, 16));
        v.0.insert(ApiKey::Produce as i16, (0, 5));
        v.0.insert(ApiKey::Metadata as i16, (0, 0));
        assert_eq!(v.pick(ApiKey::Fetch).unwrap(), 12);
        assert_eq!(v.pick(ApiKey::Produce).unwrap(), 5);
        assert!(matches!(
            v.pick(ApiKey::Metadata),
            Err(ClientError::Unsupported { .. })
        ));
        assert!(matches!(
            v.pick(ApiKey::ListOffsets),
            Err(ClientError::Unsupported { .. })
        ));
        assert!(v.pick(ApiKey::Metadata).unwrap_err().is_definite());
    }
}
