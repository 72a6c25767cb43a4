//! One handler per Kafka API. Handlers turn every failure into a Kafka error
//! code; only an undecodable request closes the connection.

use crate::admin_api;
use crate::batch::{self, BatchError};
use crate::broker::Broker;
use crate::bugs::Bug;
use crate::group_api;
use crate::storage::catalog::{valid_topic_name, TopicMeta};
use crate::storage::log::LogError;
use crate::storage::topic_config::TopicConfig;
use crate::txn_api;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;
use riptide_coverage::{always, reached};
use riptide_wire::versions::{range_in, VersionTable};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Version ranges this broker serves: within what kafka-protocol decodes,
/// and including the old versions older librdkafka probes for features.
pub const SUPPORTED: &VersionTable = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // Answered by the connection itself (`sasl.rs`), never by `handle`. librdkafka looks for
    // v0 in the range before it will log in at all.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    range_in(SUPPORTED, key)
}

/// A response frame body: header then message, at the versions Kafka fixes.
/// Empty if it cannot be encoded, which closes the connection.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    resp: &R,
) -> BytesMut {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, R::header_version(version))
        .and_then(|_| resp.encode(&mut out, version));
    match encoded {
        Ok(()) => out,
        Err(e) => {
            // Only reachable through a bug of ours.
            tracing::error!(error = %e, "could not encode response; closing connection");
            BytesMut::new()
        }
    }
}

/// What a request produces: a response now, one later, or none (acks=0).
pub enum Reply {
    Now(Option<BytesMut>),
    Later(BoxFuture<'static, Option<BytesMut>>),
}

const NO_AUTH_OPS: i32 = i32::MIN;

pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Fenced => code(ResponseError::NotLeaderOrFollower),
        LogError::Store(_) => code(ResponseError::KafkaStorageError),
        LogError::OutOfOrderSequence => code(ResponseError::OutOfOrderSequenceNumber),
        LogError::ProducerFenced => code(ResponseError::InvalidProducerEpoch),
        LogError::InvalidTxnState => code(ResponseError::InvalidTxnState),
        LogError::CoordinatorFenced => code(ResponseError::TransactionCoordinatorFenced),
        // Only markers meet it, and they count it as done.
        LogError::NoOpenTransaction => 0,
        LogError::OffsetOutOfRange => code(ResponseError::OffsetOutOfRange),
        LogError::Corrupt(msg) => {
            tracing::error!(error = %msg, "log is corrupt");
            code(ResponseError::UnknownServerError)
        }
    }
}

fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Magic(_) => code(ResponseError::UnsupportedForMessageFormat),
        BatchError::Compression(_) => code(ResponseError::UnsupportedCompressionType),
        BatchError::Invalid(_) => code(ResponseError::InvalidRecord),
        BatchError::Truncated | BatchError::Crc => code(ResponseError::CorruptMessage),
    }
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// `permit`: a produce request's share of the broker's produce budget, held until the log is
/// done with its batches.
pub async fn handle(
    b: Arc<Broker>,
    key: ApiKey,
    header: RequestHeader,
    mut body: Bytes,
    permit: Option<OwnedSemaphorePermit>,
) -> anyhow::Result<Reply> {
    let v = header.request_api_version;
    let corr = header.correlation_id;
    let now = |frame: BytesMut| Ok(Reply::Now(Some(frame)));
    match key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut body, v)?;
            now(encode_response(
                corr,
                v,
                &api_versions(b.cfg.api_versions_max),
            ))
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut body, v)?;
            now(encode_response(corr, v, &metadata(&b, req, v).await))
        }
        ApiKey::CreateTopics => {
            let req = CreateTopicsRequest::decode(&mut body, v)?;
            now(encode_response(corr, v, &create_topics(&b, req).await))
        }
        ApiKey::DeleteTopics => {
            let req = DeleteTopicsRequest::decode(&mut body, v)?;
            now(encode_response(corr, v, &delete_topics(&b, req).await))
        }
        ApiKey::ListOffsets => {
            let req = ListOffsetsRequest::decode(&mut body, v)?;
            now(encode_response(corr, v, &list_offsets(&b, req).await))
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, v)?;
            Ok(produce(b, req, corr, v, permit).await)
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut body, v)?;
            Ok(Reply::Later(Box::pin(async move {
                Some(encode_response(corr, v, &fetch(&b, &req).await))
            })))
        }
        ApiKey::FindCoordinator => {
            let req = FindCoordinatorRequest::decode(&mut body, v)?;
            now(encode_response(
                corr,
                v,
                &group_api::find_coordinator(&b, req, v),
            ))
        }
        ApiKey::JoinGroup => {
            let req = JoinGroupRequest::decode(&mut body, v)?;
            let client = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            later(corr, v, async move {
                group_api::join_group(&b, req, &client, v).await
            })
        }
        ApiKey::SyncGroup => {
            let req = SyncGroupRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { group_api::sync_group(&b, req, v).await },
            )
        }
        ApiKey::Heartbeat => {
            let req = HeartbeatRequest::decode(&mut body, v)?;
            later(corr, v, async move { group_api::heartbeat(&b, req).await })
        }
        ApiKey::LeaveGroup => {
            let req = LeaveGroupRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { group_api::leave_group(&b, req, v).await },
            )
        }
        ApiKey::OffsetCommit => {
            let req = OffsetCommitRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { group_api::offset_commit(&b, req).await },
            )
        }
        ApiKey::OffsetFetch => {
            let req = OffsetFetchRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { group_api::offset_fetch(&b, req, v).await },
            )
        }
        ApiKey::InitProducerId => {
            let req = InitProducerIdRequest::decode(&mut body, v)?;
            if req.transactional_id.is_none() {
                // Answered at once, in arrival order, as ever.
                return now(encode_response(
                    corr,
                    v,
                    &txn_api::init_idempotent(&b, &req),
                ));
            }
            later(corr, v, async move {
                txn_api::init_transactional(&b, req).await
            })
        }
        ApiKey::AddPartitionsToTxn => {
            let req = AddPartitionsToTxnRequest::decode(&mut body, v)?;
            later(corr, v, async move {
                txn_api::add_partitions_to_txn(&b, req, v).await
            })
        }
        ApiKey::AddOffsetsToTxn => {
            let req = AddOffsetsToTxnRequest::decode(&mut body, v)?;
            later(corr, v, async move {
                txn_api::add_offsets_to_txn(&b, req).await
            })
        }
        ApiKey::EndTxn => {
            let req = EndTxnRequest::decode(&mut body, v)?;
            later(corr, v, async move { txn_api::end_txn(&b, req, v).await })
        }
        ApiKey::TxnOffsetCommit => {
            let req = TxnOffsetCommitRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { txn_api::txn_offset_commit(&b, req).await },
            )
        }
        ApiKey::WriteTxnMarkers => {
            let req = WriteTxnMarkersRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { txn_api::write_txn_markers(&b, req).await },
            )
        }
        ApiKey::DeleteRecords => {
            let req = DeleteRecordsRequest::decode(&mut body, v)?;
            later(
                corr,
                v,
                async move { admin_api::delete_records(&b, req).await },
            )
        }
        ApiKey::DescribeConfigs => {
            let req = DescribeConfigsRequest::decode(&mut body, v)?;
            later(corr, v, async move {
                admin_api::describe_configs(&b, req).await
            })
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = IncrementalAlterConfigsRequest::decode(&mut body, v)?;
            later(corr, v, async move {
                admin_api::incremental_alter_configs(&b, req).await
            })
        }
        other => anyhow::bail!("{other:?} is not served"),
    }
}

/// A response that completes later (it may wait on other members or on a
/// durable write) without holding up the connection's other requests.
fn later<R, F>(corr: i32, v: i16, fut: F) -> anyhow::Result<Reply>
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
    F: std::future::Future<Output = R> + Send + 'static,
{
    Ok(Reply::Later(Box::pin(async move {
        Some(encode_response(corr, v, &fut.await))
    })))
}

/// What this broker serves, ApiVersions itself at most `api_versions_max`.
pub fn api_versions(api_versions_max: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .map(|(k, lo, hi)| {
            let hi = match k {
                ApiKey::ApiVersions => (*hi).min(api_versions_max),
                _ => *hi,
            };
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(hi)
        })
        .collect();
    r
}

/// The topic, or the error code that stands for its absence.
pub(crate) async fn lookup(
    b: &Broker,
    name: &str,
    partition: Option<i32>,
) -> Result<TopicMeta, i16> {
    match b.catalog.get(name).await {
        Ok(Some(t)) if partition.is_none_or(|p| p >= 0 && p < t.partitions) => Ok(t),
        Ok(_) => Err(code(ResponseError::UnknownTopicOrPartition)),
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "topic lookup failed");
            Err(code(ResponseError::KafkaStorageError))
        }
    }
}

async fn metadata(b: &Broker, req: MetadataRequest, v: i16) -> MetadataResponse {
    let members = b.cluster.members();
    let mut r = MetadataResponse::default();
    r.brokers = members
        .iter()
        .map(|m| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(m.node_id))
                .with_host(StrBytes::from_string(m.host.clone()))
                .with_port(m.port)
                .with_rack(Some(StrBytes::from_string(m.zone.clone())))
        })
        .collect();
    r.cluster_id = Some(StrBytes::from_static_str("riptide"));
    r.controller_id = BrokerId(members.first().map(|m| m.node_id).unwrap_or(-1));
    r.cluster_authorized_operations = NO_AUTH_OPS;
    let auto_create = b.cfg.auto_create_topics && (v < 4 || req.allow_auto_topic_creation);
    let names: Vec<String> = match req.topics {
        None => b.catalog.all().into_iter().map(|t| t.name).collect(),
        Some(t) if t.is_empty() && v == 0 => b.catalog.all().into_iter().map(|t| t.name).collect(),
        Some(t) => t
            .into_iter()
            .map(|t| t.name.map(|n| n.0.to_string()).unwrap_or_default())
            .collect(),
    };
    for name in names {
        let mut topic = MetadataResponseTopic::default()
            .with_name(Some(topic_name(&name)))
            .with_topic_authorized_operations(NO_AUTH_OPS);
        if !valid_topic_name(&name) {
            topic.error_code = code(ResponseError::InvalidTopicException);
            r.topics.push(topic);
            continue;
        }
        let meta = match b.catalog.get(&name).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) if auto_create => b
                .catalog
                .create(&name, b.cfg.default_partitions, Default::default())
                .await
                .map(|(t, created)| {
                    if created {
                        tracing::info!(topic = %name, partitions = t.partitions, "auto-created topic");
                    }
                    t
                })
                .map_err(|e| {
                    tracing::warn!(topic = %name, error = %e, "auto-create failed");
                    code(ResponseError::LeaderNotAvailable)
                }),
            Ok(None) => Err(code(ResponseError::UnknownTopicOrPartition)),
            Err(e) => {
                tracing::warn!(topic = %name, error = %e, "topic lookup failed");
                Err(code(ResponseError::LeaderNotAvailable))
            }
        };
        match meta {
            Ok(t) => {
                topic.topic_id = t.uuid();
                topic.partitions = (0..t.partitions)
                    .map(|p| {
                        let leader = b.cluster.owner(&t.name, p).unwrap_or(-1);
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(-1)
                            .with_replica_nodes(vec![BrokerId(leader)])
                            .with_isr_nodes(vec![BrokerId(leader)])
                    })
                    .collect();
            }
            Err(c) => topic.error_code = c,
        }
        r.topics.push(topic);
    }
    r
}

async fn create_topics(b: &Broker, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut r = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut res = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_replication_factor(1);
        let config = TopicConfig::from_pairs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))),
        );
        let partitions = if t.num_partitions == -1 {
            b.cfg.default_partitions
        } else {
            t.num_partitions
        };
        if !valid_topic_name(&name) {
            res.error_code = code(ResponseError::InvalidTopicException);
        } else if partitions <= 0 || partitions > 10_000 {
            res.error_code = code(ResponseError::InvalidPartitions);
        } else if let Err(e) = &config {
            res.error_code = code(ResponseError::InvalidConfig);
            res.error_message = Some(StrBytes::from_string(e.to_string()));
        } else if req.validate_only {
            res.num_partitions = partitions;
        } else {
            match b
                .catalog
                .create(&name, partitions, config.unwrap_or_default())
                .await
            {
                Ok((meta, true)) => {
                    tracing::info!(topic = %name, partitions, "created topic");
                    res.topic_id = meta.uuid();
                    res.num_partitions = meta.partitions;
                }
                Ok((meta, false)) => {
                    res.error_code = code(ResponseError::TopicAlreadyExists);
                    res.error_message = Some(StrBytes::from_string(format!(
                        "Topic '{name}' already exists."
                    )));
                    res.topic_id = meta.uuid();
                    res.num_partitions = meta.partitions;
                }
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "create failed");
                    res.error_code = code(ResponseError::KafkaStorageError);
                }
            }
        }
        r.topics.push(res);
    }
    r
}

async fn delete_topics(b: &Broker, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut r = DeleteTopicsResponse::default();
    for name in req.topic_names {
        let mut res = DeletableTopicResult::default().with_name(Some(name.clone()));
        match b.delete_topic(name.0.as_str()).await {
            Ok(Some(meta)) => {
                tracing::info!(topic = %meta.name, "deleted topic");
                res.topic_id = meta.uuid();
            }
            Ok(None) => res.error_code = code(ResponseError::UnknownTopicOrPartition),
            Err(e) => {
                tracing::warn!(topic = %name.0.as_str(), error = %e, "delete failed");
                res.error_code = code(ResponseError::KafkaStorageError);
            }
        }
        r.responses.push(res);
    }
    r
}

async fn list_offsets(b: &Broker, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut r = ListOffsetsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            match offset_for(
                b,
                &name,
                p.partition_index,
                p.timestamp,
                req.isolation_level == 1,
            )
            .await
            {
                Ok(Some((offset, ts))) => {
                    pr.offset = offset;
                    pr.timestamp = ts;
                }
                Ok(None) => {}
                Err(c) => pr.error_code = c,
            }
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

/// Kafka's special timestamps: -1 latest, -2 earliest, -3 max timestamp.
async fn offset_for(
    b: &Broker,
    topic: &str,
    partition: i32,
    ts: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, i16> {
    let meta = lookup(b, topic, Some(partition)).await?;
    let log = b
        .log(&meta, partition)
        .await
        .map_err(|e| log_error_code(&e))?;
    let off = i64::from(b.cfg.bug == Some(Bug::HwmOffByOne));
    let found = match ts {
        // "Latest" must not come from a stale view of the chain.
        -1 => log.verify_tail().await.map(|()| {
            let latest = log.high_watermark() + off;
            always!(
                latest <= log.high_watermark(),
                "list_offsets.latest_not_above_log_end",
                "the latest offset listed is never above the end of the durable log",
                "{topic}/{partition}: listed {latest} with the log ending at {}",
                log.high_watermark()
            );
            // read_committed consumers see up to the last stable offset only.
            Some((
                if read_committed {
                    latest.min(log.last_stable_offset())
                } else {
                    latest
                },
                -1,
            ))
        }),
        // The log start moves on DeleteRecords and retention: not from a stale view either.
        -2 => log
            .verify_tail()
            .await
            .map(|()| Some((log.log_start(), -1))),
        -3 => log.max_timestamp().await,
        t if t >= 0 => log.offset_for_timestamp(t).await,
        _ => return Err(code(ResponseError::InvalidRequest)),
    };
    found.map_err(|e| log_error_code(&e))
}

type Waiting = tokio::sync::oneshot::Receiver<Result<i64, LogError>>;
/// Per topic, per partition: the queued append or the error code.
type Started = Vec<(TopicName, Vec<(i32, Result<Waiting, i16>)>)>;

/// Gives a produce's budget back once the log is done with every append in `waiting` (answered
/// or not: one answered REQUEST_TIMED_OUT, or acks=0, still holds its batches in the log).
fn release_after(permit: Option<OwnedSemaphorePermit>, waiting: Vec<Waiting>) {
    let Some(permit) = permit else { return };
    if waiting.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for rx in waiting {
            let _ = rx.await;
        }
        drop(permit);
    });
}

async fn produce(
    b: Arc<Broker>,
    req: ProduceRequest,
    corr: i32,
    v: i16,
    permit: Option<OwnedSemaphorePermit>,
) -> Reply {
    let acks = req.acks;
    // Started in order here; awaited below.
    let mut started: Started = Vec::new();
    for t in req.topic_data {
        let name = t.name.0.to_string();
        let mut parts = Vec::new();
        if t.partition_data.len() > 1 {
            reached!(
                "produce.several_partitions",
                "one produce request carried batches for several partitions of a topic"
            );
        }
        for p in t.partition_data {
            let txn = req.transactional_id.as_ref().map(|t| t.0.as_str());
            let outcome = if !matches!(acks, -1..=1) {
                Err(code(ResponseError::InvalidRequiredAcks))
            } else if txn.is_some() && acks != -1 {
                // Kafka requires acks=all of transactional producers.
                Err(code(ResponseError::InvalidRequiredAcks))
            } else {
                start_append(&b, &name, p.index, p.records, txn).await
            };
            if let Err(c) = outcome {
                tracing::debug!(topic = %name, partition = p.index, code = c, "produce refused");
            }
            parts.push((p.index, outcome));
        }
        started.push((t.name, parts));
    }
    if acks == 0 {
        let waiting = started
            .into_iter()
            .flat_map(|(_, parts)| parts)
            .filter_map(|(_, outcome)| outcome.ok())
            .collect();
        release_after(permit, waiting);
        return Reply::Now(None);
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(100) as u64);
    let bug = b.cfg.bug;
    Reply::Later(Box::pin(async move {
        let mut r = ProduceResponse::default();
        // Appends answered REQUEST_TIMED_OUT but still queued in the log.
        let mut lingering = Vec::new();
        for (name, parts) in started {
            let mut tr = TopicProduceResponse::default().with_name(name);
            for (index, outcome) in parts {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(0);
                let result = match outcome {
                    Err(c) => Err(c),
                    Ok(mut rx) => match tokio::time::timeout(timeout, &mut rx).await {
                        Ok(Ok(Ok(base))) => Ok(base),
                        Ok(Ok(Err(e))) => Err(log_error_code(&e)),
                        Ok(Err(_)) => Err(code(ResponseError::UnknownServerError)),
                        Err(_) => {
                            reached!("produce.timed_out", "a produce was answered REQUEST_TIMED_OUT while its commit was still pending");
                            lingering.push(rx);
                            Err(code(ResponseError::RequestTimedOut))
                        }
                    },
                };
                match result {
                    Ok(base) if bug == Some(Bug::ProduceOffsetUnknown) && base % 5 == 3 => {
                        pr.base_offset = -1;
                    }
                    Ok(base) => pr.base_offset = base,
                    Err(c) => pr.error_code = c,
                }
                tr.partition_responses.push(pr);
            }
            r.responses.push(tr);
        }
        if bug == Some(Bug::OneErrorFailsAll) {
            let first_error = r
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .map(|p| p.error_code)
                .find(|c| *c != 0);
            if let Some(c) = first_error {
                for p in r
                    .responses
                    .iter_mut()
                    .flat_map(|t| t.partition_responses.iter_mut())
                {
                    p.error_code = c;
                    p.base_offset = -1;
                }
            }
        }
        release_after(permit, lingering);
        Some(encode_response(corr, v, &r))
    }))
}

async fn start_append(
    b: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
    transactional_id: Option<&str>,
) -> Result<Waiting, i16> {
    let meta = lookup(b, topic, Some(partition)).await?;
    let records = records.ok_or(code(ResponseError::CorruptMessage))?;
    let batches = batch::validate(&records).map_err(|e| {
        tracing::info!(topic, partition, error = %e, "rejected record batch");
        batch_error_code(&e)
    })?;
    // Transactional batches come in transactional requests only, all of one producer; control
    // batches only from a coordinator's markers.
    let transactional = transactional_id.is_some();
    let first = batches
        .first()
        .map(|(h, _)| (h.producer_id, h.producer_epoch));
    if batches.iter().any(|(h, _)| {
        h.is_control()
            || h.is_transactional() != transactional
            || (transactional
                && (h.producer_id < 0 || Some((h.producer_id, h.producer_epoch)) != first))
    }) {
        return Err(code(ResponseError::InvalidRecord));
    }
    let log = b
        .log(&meta, partition)
        .await
        .map_err(|e| log_error_code(&e))?;
    let (Some(id), Some((pid, epoch))) = (transactional_id, first) else {
        return Ok(log.append(batches));
    };
    // Taken before the check, so a marker that comes after it refuses the batch (KIP-890).
    let guard = log.txn_guard(pid);
    if !log.in_transaction(pid) && b.cfg.bug != Some(Bug::NoTxnVerification) {
        let verdict = txn_api::verify(b, id, pid, epoch, topic, partition).await;
        if verdict != 0 {
            tracing::debug!(
                topic,
                partition,
                code = verdict,
                "transaction verification refused"
            );
            // Clients before KIP-890 retry NOT_ENOUGH_REPLICAS, not the coordinator's codes.
            let retriable = [
                ResponseError::NotCoordinator,
                ResponseError::CoordinatorNotAvailable,
                ResponseError::CoordinatorLoadInProgress,
                ResponseError::ConcurrentTransactions,
            ];
            return Err(if retriable.iter().any(|e| e.code() == verdict) {
                code(ResponseError::NotEnoughReplicas)
            } else {
                verdict
            });
        }
        reached!(
            "txn.produce_verified",
            "a partition owner verified a transaction with its coordinator before taking its first batch"
        );
    }
    Ok(log.append_transactional(batches, guard, id, b.clock.now_ms()))
}

async fn fetch(b: &Broker, req: &FetchRequest) -> FetchResponse {
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        // Registered before reading, so an append in between still wakes us.
        let appended = b.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let (resp, bytes, errors) = fetch_once(b, req).await;
        if errors
            || bytes >= req.min_bytes.max(1) as usize
            || tokio::time::Instant::now() >= deadline
        {
            return resp;
        }
        if tokio::time::timeout(
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            appended,
        )
        .await
        .is_err()
        {
            return fetch_once(b, req).await.0;
        }
        reached!(
            "fetch.long_poll_woken",
            "a waiting fetch was woken by an append before its max wait"
        );
    }
}

/// One pass over the requested partitions: the response, its record bytes,
/// and whether any partition had an error.
async fn fetch_once(b: &Broker, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut r = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    let max_total = req.max_bytes.max(1) as usize;
    for t in &req.topics {
        let name = t.topic.0.to_string();
        let mut tr = FetchableTopicResponse::default().with_topic(t.topic.clone());
        for p in &t.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            if req.isolation_level == 1 {
                pd.aborted_transactions = Some(vec![]);
            }
            let budget =
                (p.partition_max_bytes.max(1) as usize).min(max_total.saturating_sub(total));
            match fetch_partition(
                b,
                &name,
                p.partition,
                p.fetch_offset,
                budget.max(1),
                total == 0,
                req.isolation_level == 1,
            )
            .await
            {
                Ok(found) => {
                    total += found.records.len();
                    pd.high_watermark = found.hwm;
                    pd.last_stable_offset = found.lso;
                    pd.log_start_offset = found.log_start;
                    pd.records = Some(found.records);
                    if req.isolation_level == 1 {
                        pd.aborted_transactions = Some(found.aborted);
                    }
                }
                Err(c) => {
                    errors = true;
                    pd.error_code = c;
                }
            }
            tr.partitions.push(pd);
        }
        r.responses.push(tr);
    }
    (r, total, errors)
}

/// What a fetch found in one partition.
struct Found {
    hwm: i64,
    log_start: i64,
    lso: i64,
    records: Bytes,
    /// read_committed: the aborted transactions with records among `records`.
    aborted: Vec<AbortedTransaction>,
}

async fn fetch_partition(
    b: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
    budget: usize,
    first: bool,
    read_committed: bool,
) -> Result<Found, i16> {
    let meta = lookup(b, topic, Some(partition)).await?;
    let log = b
        .log(&meta, partition)
        .await
        .map_err(|e| log_error_code(&e))?;
    // An owner that lost the partition and got it back must not serve its old view: its high
    // watermark would go back for a consumer that read from the other owner meanwhile.
    // (Waiting for a commit in progress: one that hangs on the store may be ours being fenced.)
    log.verify_tail_now()
        .await
        .map_err(|e| log_error_code(&e))?;
    let hwm = log.high_watermark();
    let log_start = log.log_start();
    if offset < log_start || offset > hwm {
        reached!(
            "fetch.offset_out_of_range",
            "a fetch asked for an offset outside the log"
        );
        if offset >= 0 && offset < log_start {
            reached!(
                "fetch.below_log_start",
                "a fetch asked for an offset below the log start (deleted or expired records)"
            );
        }
        return Err(code(ResponseError::OffsetOutOfRange));
    }
    let reported = hwm + i64::from(b.cfg.bug == Some(Bug::HwmOffByOne));
    always!(
        reported <= log.high_watermark(),
        "fetch.hwm_not_above_log_end",
        "the high watermark a fetch reports is never above the end of the durable log",
        "{topic}/{partition}: reported {reported} with the log ending at {}",
        log.high_watermark()
    );
    let lso = log.last_stable_offset().min(reported);
    let end = if read_committed { lso } else { hwm };
    let mut found = Found {
        hwm: reported,
        log_start,
        lso,
        records: Bytes::new(),
        aborted: vec![],
    };
    if offset >= end || (!first && budget <= 1) {
        if read_committed && offset < hwm {
            reached!(
                "fetch.held_at_last_stable_offset",
                "a read_committed fetch waited at the last stable offset of an open transaction"
            );
        }
        return Ok(found);
    }
    let mut records = log
        .read(offset, budget)
        .await
        .map_err(|e| log_error_code(&e))?;
    if read_committed {
        // Whole batches below the last stable offset only.
        let below: usize = batch::headers(&records)
            .take_while(|(_, h)| h.last_offset() < lso)
            .map(|(_, h)| h.size)
            .sum();
        records.truncate(below);
        let upto = batch::headers(&records)
            .last()
            .map_or(offset, |(_, h)| h.last_offset() + 1);
        let (_, _, aborted) = log.txn_view(offset, upto);
        // The log start may have moved past `offset` while this fetch read: its aborted
        // transactions below the new start are forgotten, so the list just taken may lack them.
        // Refuse rather than serve aborted records as committed.
        if log.log_start() > offset {
            reached!(
                "fetch.log_start_moved_during_read",
                "a read_committed fetch found the log start moved past its offset while it read"
            );
            return Err(code(ResponseError::OffsetOutOfRange));
        }
        found.aborted = aborted
            .into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect();
    }
    found.records = records;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_broker_advertises_api_versions_only_up_to_its_release() {
        let max = |r: &ApiVersionsResponse, key: ApiKey| {
            r.api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .map(|k| k.max_version)
        };
        let (current, older) = (api_versions(3), api_versions(2));
        assert_eq!(max(&current, ApiKey::ApiVersions), Some(3));
        assert_eq!(max(&older, ApiKey::ApiVersions), Some(2));
        assert_eq!(max(&older, ApiKey::Fetch), max(&current, ApiKey::Fetch));
        assert_eq!(older.api_keys.len(), current.api_keys.len());
    }

    #[test]
    fn versions_are_within_what_the_codec_decodes() {
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        use kafka_protocol::protocol::Message;
        let ranges = [
            (ApiKey::Produce, ProduceRequest::VERSIONS),
            (ApiKey::Fetch, FetchRequest::VERSIONS),
            (ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS),
            (ApiKey::Metadata, MetadataRequest::VERSIONS),
            (ApiKey::ApiVersions, ApiVersionsRequest::VERSIONS),
            (ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS),
            (ApiKey::DeleteTopics, DeleteTopicsRequest::VERSIONS),
            (ApiKey::InitProducerId, InitProducerIdRequest::VERSIONS),
            (ApiKey::FindCoordinator, FindCoordinatorRequest::VERSIONS),
            (ApiKey::JoinGroup, JoinGroupRequest::VERSIONS),
            (ApiKey::SyncGroup, SyncGroupRequest::VERSIONS),
            (ApiKey::Heartbeat, HeartbeatRequest::VERSIONS),
            (ApiKey::LeaveGroup, LeaveGroupRequest::VERSIONS),
            (ApiKey::OffsetCommit, OffsetCommitRequest::VERSIONS),
            (ApiKey::OffsetFetch, OffsetFetchRequest::VERSIONS),
            (
                ApiKey::AddPartitionsToTxn,
                AddPartitionsToTxnRequest::VERSIONS,
            ),
            (ApiKey::AddOffsetsToTxn, AddOffsetsToTxnRequest::VERSIONS),
            (ApiKey::EndTxn, EndTxnRequest::VERSIONS),
            (ApiKey::WriteTxnMarkers, WriteTxnMarkersRequest::VERSIONS),
            (ApiKey::TxnOffsetCommit, TxnOffsetCommitRequest::VERSIONS),
            (ApiKey::DeleteRecords, DeleteRecordsRequest::VERSIONS),
            (ApiKey::DescribeConfigs, DescribeConfigsRequest::VERSIONS),
            (
                ApiKey::IncrementalAlterConfigs,
                IncrementalAlterConfigsRequest::VERSIONS,
            ),
            (ApiKey::SaslHandshake, SaslHandshakeRequest::VERSIONS),
            (ApiKey::SaslAuthenticate, SaslAuthenticateRequest::VERSIONS),
        ];
        for (key, lo, hi) in SUPPORTED {
            let (_, range) = ranges.iter().find(|(k, _)| k == key).unwrap();
            assert!(*lo >= range.min && *hi <= range.max, "{key:?}");
        }
    }
}
