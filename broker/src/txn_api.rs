//! Handlers of the transaction APIs: InitProducerId (with a transactional id),
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers; and the two
//! requests a broker sends another (markers, KIP-890 verification).

use crate::broker::Broker;
use crate::peer;
use crate::txn::Marker;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_coverage::reached;
use riptide_wire::ResponseError;
use std::collections::BTreeMap;

/// Groups travel in WriteTxnMarkers as this pseudo-topic (`:` is not allowed in topic names, so
/// it names no real topic).
pub fn group_marker_topic(group: &str) -> String {
    format!("__group:{group}")
}

/// The group a marker pseudo-topic stands for.
pub fn marker_group(topic: &str) -> Option<&str> {
    topic.strip_prefix("__group:")
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Producer ids are drawn at random from 2^62: no coordination needed, and a
/// collision is as unlikely as a lost write to the store. An idempotent client that
/// re-initialises (KIP-360) keeps its id with the next epoch. With a transactional id, the
/// id's coordinator hands them out and fences the previous holder.
pub fn init_idempotent(b: &Broker, req: &InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    if req.producer_id.0 >= 0 && (0..i16::MAX).contains(&req.producer_epoch) {
        r.producer_id = req.producer_id;
        r.producer_epoch = req.producer_epoch + 1;
    } else {
        r.producer_id = ProducerId(b.new_producer_id());
        r.producer_epoch = 0;
    }
    r
}

/// InitProducerId with a transactional id: its coordinator's answer.
pub async fn init_transactional(b: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let Some(id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        return init_idempotent(b, &req);
    };
    let hint = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let outcome = match b.txn(&id).await {
        Ok(c) => c.init(b, req.transaction_timeout_ms, hint).await,
        Err(c) => Err(c),
    };
    match outcome {
        Ok((pid, epoch)) => {
            reached!(
                "txn.producer_initialised",
                "a transactional producer got its producer id and epoch"
            );
            r.producer_id = ProducerId(pid);
            r.producer_epoch = epoch;
        }
        Err(c) => r.error_code = c,
    }
    r
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_of(t.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// One transaction's AddPartitionsToTxn (or, `verify_only`, its KIP-890 check).
async fn add_partitions_of(
    b: &Broker,
    txn: &AddPartitionsToTxnTransaction,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = txn.transactional_id.0.to_string();
    let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
    let coordinator = match b.txn(&id).await {
        Ok(c) => c,
        Err(c) => return topic_results(&txn.topics, |_, _| c),
    };
    if txn.verify_only {
        let mut codes = BTreeMap::new();
        for part in partitions_of(&txn.topics) {
            let c = coordinator.verify_partition(pid, epoch, &part).await;
            codes.insert(part, c);
        }
        return topic_results(&txn.topics, |t, p| {
            codes.get(&(t.to_string(), p)).copied().unwrap_or(0)
        });
    }
    let mut unknown = false;
    for (t, p) in partitions_of(&txn.topics) {
        match b.catalog.get(&t).await {
            Ok(Some(m)) if p >= 0 && p < m.partitions => {}
            _ => unknown = true,
        }
    }
    let code = if unknown {
        ResponseError::UnknownTopicOrPartition.code()
    } else {
        match coordinator
            .add(b, pid, epoch, &partitions_of(&txn.topics), &[])
            .await
        {
            Ok(()) => 0,
            Err(c) => c,
        }
    };
    topic_results(&txn.topics, |_, _| code)
}

pub async fn add_partitions_to_txn(
    b: &Broker,
    req: AddPartitionsToTxnRequest,
    v: i16,
) -> AddPartitionsToTxnResponse {
    let mut r = AddPartitionsToTxnResponse::default();
    if v <= 3 {
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(req.v3_and_below_transactional_id)
            .with_producer_id(req.v3_and_below_producer_id)
            .with_producer_epoch(req.v3_and_below_producer_epoch)
            .with_topics(req.v3_and_below_topics);
        r.results_by_topic_v3_and_below = add_partitions_of(b, &txn).await;
        return r;
    }
    for txn in &req.transactions {
        r.results_by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(add_partitions_of(b, txn).await),
        );
    }
    r
}

pub async fn add_offsets_to_txn(
    b: &Broker,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.0.to_string();
    let outcome = match b.txn(&id).await {
        Ok(c) => {
            c.add(
                b,
                req.producer_id.0,
                req.producer_epoch,
                &[],
                &[req.group_id.0.to_string()],
            )
            .await
        }
        Err(c) => Err(c),
    };
    AddOffsetsToTxnResponse::default().with_error_code(outcome.err().unwrap_or(0))
}

/// EndTxn; from v5 (KIP-890 part 2) the end bumps the producer's epoch and the answer carries it.
pub async fn end_txn(b: &Broker, req: EndTxnRequest, v: i16) -> EndTxnResponse {
    let id = req.transactional_id.0.to_string();
    let bump = v >= 5;
    let outcome = match b.txn(&id).await {
        Ok(c) => {
            c.end(
                b,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                bump,
            )
            .await
        }
        Err(c) => Err(c),
    };
    let r = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match outcome {
        Ok((pid, epoch)) if bump => r
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Ok(_) => r,
        Err(c) => r.with_error_code(c),
    }
}

pub async fn txn_offset_commit(b: &Broker, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let offsets: Vec<(String, i32, i64, Option<String>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                )
            })
        })
        .collect();
    let outcome = match b.group(req.group_id.0.as_str()).await {
        Ok(g) => {
            g.txn_commit(req.producer_id.0, req.producer_epoch, offsets)
                .await
        }
        Err(c) => Err(c),
    };
    if outcome.is_ok() {
        reached!(
            "txn.offsets_committed_in_transaction",
            "a consume-transform-produce client committed its input offsets inside a transaction"
        );
    }
    let code = outcome.err().unwrap_or(0);
    let mut r = TxnOffsetCommitResponse::default();
    r.topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    r
}

/// WriteTxnMarkers from a transaction coordinator: each marker in each partition (or group)
/// this broker owns.
pub async fn write_txn_markers(b: &Broker, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut r = WriteTxnMarkersResponse::default();
    for m in &req.markers {
        let marker = Marker {
            producer_id: m.producer_id.0,
            epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut result = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
        for t in &m.topics {
            let topic = t.name.0.to_string();
            let mut tr = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
            for p in &t.partition_indexes {
                let code = if marker_group(&topic).is_none() && !b.cluster.owns(&topic, *p) {
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    b.write_marker(&topic, *p, marker).await
                };
                tr.partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code),
                );
            }
            result.topics.push(tr);
        }
        r.markers.push(result);
    }
    r
}

/// Asks broker `node` to write `marker` in `targets`; true if every one was written.
pub async fn send_markers(
    b: &Broker,
    node: i32,
    marker: Marker,
    targets: &[(String, i32)],
) -> bool {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in targets {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps)
                })
                .collect(),
        )]);
    match peer::call(b, node, 1, &req).await {
        Ok(resp) => {
            let codes: Vec<i16> = resp
                .markers
                .iter()
                .flat_map(|m| m.topics.iter())
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect();
            codes.len() == targets.len() && codes.iter().all(|c| *c == 0)
        }
        Err(e) => {
            reached!(
                "txn.marker_request_failed",
                "a coordinator could not reach a partition owner to write a marker"
            );
            tracing::info!(error = %e, "marker request failed");
            false
        }
    }
}

/// Makes sure the coordinator of `transactional_id` is open (its ticker then ends what is
/// overdue): opened here if this broker is it, else asked by a verification it refuses.
pub async fn wake(b: &Broker, transactional_id: &str) {
    let code = verify(b, transactional_id, -1, -1, "", 0).await;
    tracing::debug!(transactional_id, code, "woke transaction coordinator");
}

/// KIP-890 part 1: asks the coordinator of `transactional_id` whether the producer's open
/// transaction holds the partition; 0 if it does, else the error code to answer the produce.
pub async fn verify(
    b: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> i16 {
    let part = (topic.to_string(), partition);
    match b.txn_coordinator_of(transactional_id) {
        Some(node) if node == b.cfg.node_id => match b.txn(transactional_id).await {
            Ok(c) => c.verify_partition(producer_id, epoch, &part).await,
            Err(c) => c,
        },
        Some(node) => {
            let txn = AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![partition])]);
            let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
            match peer::call(b, node, 4, &req).await {
                Ok(resp) if resp.error_code != 0 => resp.error_code,
                Ok(resp) => resp
                    .results_by_transaction
                    .iter()
                    .flat_map(|t| t.topic_results.iter())
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .next()
                    .unwrap_or(ResponseError::UnknownServerError.code()),
                Err(e) => {
                    tracing::info!(error = %e, "transaction verification failed");
                    ResponseError::NotEnoughReplicas.code()
                }
            }
        }
        None => ResponseError::CoordinatorNotAvailable.code(),
    }
}
