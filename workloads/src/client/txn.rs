//! A transactional producer for the instrumented client, as Kafka clients run one: find the
//! transaction coordinator, InitProducerId with the transactional id, AddPartitionsToTxn before
//! a partition's first batch, transactional batches with sequence numbers, AddOffsetsToTxn and
//! TxnOffsetCommit for consume-transform-produce, EndTxn.
//!
//! Each call makes one attempt after finding its coordinator; the workload decides what to
//! retry, since only it knows what an unknown outcome means for its history.

use super::group::Membership;
use super::Client;
use crate::codec::{self, OutRecord, Sequenced};
use crate::error::ClientError;
use crate::net::Connector;
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_coverage::reached;
use riptide_wire::ResponseError::*;
use std::collections::{BTreeMap, BTreeSet};

/// One transactional producer's state.
#[derive(Clone, Debug, Default)]
pub struct Txn {
    pub id: String,
    pub timeout_ms: i32,
    /// Producer id and epoch from InitProducerId; `None` until initialised (or after an error
    /// that calls for initialising again).
    pub producer: Option<(i64, i16)>,
    pub coordinator: Option<String>,
    /// Partitions added to the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Next sequence number per partition (continues across transactions of one epoch).
    sequences: BTreeMap<(String, i32), i32>,
}

impl Txn {
    pub fn new(id: &str, timeout_ms: i32) -> Self {
        Txn {
            id: id.to_string(),
            timeout_ms,
            ..Default::default()
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The error means the coordinator moved or could not be reached: find it again.
fn coordinator_moved(e: &ClientError) -> bool {
    matches!(e.error(), Some(NotCoordinator | CoordinatorNotAvailable))
        || matches!(e, ClientError::Connect { .. } | ClientError::Io { .. })
        || !e.is_definite()
}

impl<C: Connector> Client<C> {
    async fn txn_coordinator(&mut self, t: &mut Txn) -> Result<String, ClientError> {
        if let Some(c) = &t.coordinator {
            return Ok(c.clone());
        }
        let addr = self.any_broker().await?;
        let conn = self.conn(&addr).await?;
        let v = conn.pick_version(ApiKey::FindCoordinator)?;
        let mut req = FindCoordinatorRequest::default();
        req.key = s(&t.id);
        req.key_type = 1;
        let resp = conn.send(&req, v).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(
                ApiKey::FindCoordinator,
                resp.error_code,
                None,
            ));
        }
        let found = format!("{}:{}", resp.host.as_str(), resp.port);
        t.coordinator = Some(found.clone());
        Ok(found)
    }

    /// Runs one request against the transaction coordinator, and turns its error code into an
    /// error; forgets the coordinator when it moved.
    async fn on_txn_coordinator<F, R>(
        &mut self,
        t: &mut Txn,
        api: ApiKey,
        call: F,
    ) -> Result<R, ClientError>
    where
        F: for<'a> FnOnce(
            &'a mut crate::connection::Connection<C::Stream>,
        ) -> futures::future::BoxFuture<'a, Result<(R, i16), ClientError>>,
    {
        let addr = match self.txn_coordinator(t).await {
            Ok(addr) => addr,
            Err(e) => {
                // The broker asked may be gone: ask the next one after a metadata refresh.
                self.metadata.stale = true;
                return Err(e);
            }
        };
        let result = match self.conn(&addr).await {
            Ok(conn) => call(conn).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Ok((r, 0)) => Ok(r),
            Ok((_, code)) => Err(ClientError::broker(api, code, None)),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if coordinator_moved(e) {
                t.coordinator = None;
                self.metadata.stale = true;
            }
        }
        result
    }

    /// InitProducerId with the transactional id: a producer id and a new epoch, which fences
    /// any earlier producer of this id and ends whatever it left open.
    pub async fn init_transactions(&mut self, t: &mut Txn) -> Result<(), ClientError> {
        let (id, timeout_ms, current) = (t.id.clone(), t.timeout_ms, t.producer);
        let (pid, epoch) = self
            .on_txn_coordinator(t, ApiKey::InitProducerId, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::InitProducerId)?;
                    let mut req = InitProducerIdRequest::default();
                    req.transactional_id = Some(TransactionalId(s(&id)));
                    req.transaction_timeout_ms = timeout_ms;
                    let (pid, epoch) = current.filter(|_| v >= 3).unwrap_or((-1, -1));
                    req.producer_id = ProducerId(pid);
                    req.producer_epoch = epoch;
                    let resp = conn.send(&req, v).await?;
                    Ok(((resp.producer_id.0, resp.producer_epoch), resp.error_code))
                })
            })
            .await?;
        t.producer = Some((pid, epoch));
        t.sequences.clear();
        t.partitions.clear();
        Ok(())
    }

    fn producer_of(t: &Txn) -> Result<(i64, i16), ClientError> {
        t.producer
            .ok_or_else(|| ClientError::Invalid("transactional producer not initialised".into()))
    }

    /// AddPartitionsToTxn for the partitions not yet in the open transaction.
    pub async fn add_partitions_to_txn(
        &mut self,
        t: &mut Txn,
        parts: &[(String, i32)],
    ) -> Result<(), ClientError> {
        let new: Vec<(String, i32)> = parts
            .iter()
            .filter(|p| !t.partitions.contains(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let (pid, epoch) = Self::producer_of(t)?;
        let id = t.id.clone();
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, p) in &new {
            topics.entry(topic.clone()).or_default().push(*p);
        }
        self.on_txn_coordinator(t, ApiKey::AddPartitionsToTxn, move |conn| {
            Box::pin(async move {
                let v = conn.pick_version(ApiKey::AddPartitionsToTxn)?;
                let mut req = AddPartitionsToTxnRequest::default();
                req.v3_and_below_transactional_id = TransactionalId(s(&id));
                req.v3_and_below_producer_id = ProducerId(pid);
                req.v3_and_below_producer_epoch = epoch;
                req.v3_and_below_topics = topics
                    .into_iter()
                    .map(|(name, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(&name)))
                            .with_partitions(ps)
                    })
                    .collect();
                let resp = conn.send(&req, v).await?;
                let code = resp
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(resp.error_code);
                Ok(((), code))
            })
        })
        .await?;
        t.partitions.extend(new);
        Ok(())
    }

    /// AddOffsetsToTxn: the transaction will commit offsets of `group`.
    pub async fn add_offsets_to_txn(
        &mut self,
        t: &mut Txn,
        group: &str,
    ) -> Result<(), ClientError> {
        let (pid, epoch) = Self::producer_of(t)?;
        let (id, group) = (t.id.clone(), group.to_string());
        self.on_txn_coordinator(t, ApiKey::AddOffsetsToTxn, move |conn| {
            Box::pin(async move {
                let v = conn.pick_version(ApiKey::AddOffsetsToTxn)?;
                let req = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(&id)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(s(&group)));
                let resp = conn.send(&req, v).await?;
                Ok(((), resp.error_code))
            })
        })
        .await
    }

    /// TxnOffsetCommit to the group's coordinator: `offsets` (topic, partition, next offset)
    /// commit with the transaction.
    pub async fn txn_offset_commit(
        &mut self,
        t: &mut Txn,
        m: &mut Membership,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        let (pid, epoch) = Self::producer_of(t)?;
        let id = t.id.clone();
        let (group, member_id, generation) = (m.group.clone(), m.member_id.clone(), m.generation);
        let mut topics: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
        for (topic, p, o) in offsets {
            topics.entry(topic.clone()).or_default().push((*p, *o));
        }
        let resp = self
            .on_coordinator(m, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::TxnOffsetCommit)?;
                    let mut req = TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(s(&id)))
                        .with_group_id(GroupId(s(&group)))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch);
                    if v >= 3 {
                        req.generation_id = generation;
                        req.member_id = s(&member_id);
                    }
                    req.topics = topics
                        .into_iter()
                        .map(|(name, ps)| {
                            TxnOffsetCommitRequestTopic::default()
                                .with_name(TopicName(s(&name)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            TxnOffsetCommitRequestPartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    conn.send(&req, v).await
                })
            })
            .await?;
        let code = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .find(|c| *c != 0);
        match code {
            None => Ok(()),
            Some(c) => Err(self.group_error(m, ApiKey::TxnOffsetCommit, c)),
        }
    }

    /// EndTxn: commit or abort the open transaction. From EndTxn v5 (KIP-890 part 2) the end
    /// bumps the producer's epoch: the next transaction runs under the epoch the answer
    /// carries, with its sequences from 0, so a delayed retry of this EndTxn is fenced rather
    /// than ending that next transaction.
    pub async fn end_txn(&mut self, t: &mut Txn, commit: bool) -> Result<(), ClientError> {
        let (pid, epoch) = Self::producer_of(t)?;
        let id = t.id.clone();
        let bumped = self
            .on_txn_coordinator(t, ApiKey::EndTxn, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::EndTxn)?;
                    let req = EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s(&id)))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_committed(commit);
                    let resp = conn.send(&req, v).await?;
                    let bumped = (v >= 5).then_some((resp.producer_id.0, resp.producer_epoch));
                    Ok((bumped, resp.error_code))
                })
            })
            .await?;
        t.partitions.clear();
        if let Some(next) = bumped.filter(|next| *next != (pid, epoch)) {
            reached!(
                "client.txn_epoch_bumped_by_end",
                "a transactional producer's EndTxn v5 moved it to the next epoch"
            );
            t.producer = Some(next);
            t.sequences.clear();
        }
        reached!(
            "client.txn_ended",
            "a transactional producer's EndTxn succeeded"
        );
        Ok(())
    }

    /// Encodes the next transactional batch of `records` for a partition: the sequence it
    /// carries is the partition's next, and stays the same for every retry of this batch.
    pub fn txn_batch(
        &self,
        t: &Txn,
        topic: &str,
        partition: i32,
        records: &[OutRecord],
    ) -> Result<(Bytes, i32), ClientError> {
        let (producer_id, producer_epoch) = Self::producer_of(t)?;
        let sequence = *t
            .sequences
            .get(&(topic.to_string(), partition))
            .unwrap_or(&0);
        let batch = codec::encode_txn_batch(
            records,
            self.config.compression,
            Sequenced {
                producer_id,
                producer_epoch,
                sequence,
            },
        )?;
        Ok((batch, sequence))
    }

    /// Sends one transactional batch (from [`Client::txn_batch`]) to the partition's leader and
    /// returns its base offset; on success the partition's sequence moves past it.
    pub async fn produce_txn(
        &mut self,
        t: &mut Txn,
        topic: &str,
        partition: i32,
        batch: &Bytes,
        records: usize,
    ) -> Result<i64, ClientError> {
        let addr = self.leader_addr(topic, partition).await?;
        let timeout_ms = self.config.broker_timeout_ms;
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::Produce)?;
        let mut req = codec::produce_request(topic, partition, batch.clone(), -1, timeout_ms);
        req.transactional_id = Some(TransactionalId(s(&t.id)));
        let resp = match conn.send(&req, version).await {
            Ok(r) => r,
            Err(e) => {
                if e.needs_metadata_refresh() {
                    self.metadata.stale = true;
                }
                return Err(e);
            }
        };
        let p = resp
            .responses
            .iter()
            .filter(|x| x.name.0.as_str() == topic)
            .flat_map(|x| x.partition_responses.iter())
            .find(|p| p.index == partition)
            .ok_or_else(|| ClientError::Malformed {
                addr: addr.clone(),
                reason: "produce response lacks the partition".to_string(),
                kind: Some(riptide_checker::history::ViolationKind::MissingPartition),
            })?;
        if p.error_code != 0 {
            self.judge_code(
                &addr,
                (ApiKey::Produce, version),
                Some((topic, partition)),
                p.error_code,
            );
            let e = ClientError::broker(ApiKey::Produce, p.error_code, None);
            if e.needs_metadata_refresh() {
                self.metadata.stale = true;
            }
            return Err(e);
        }
        let key = (topic.to_string(), partition);
        let next = t.sequences.get(&key).copied().unwrap_or(0);
        t.sequences
            .insert(key, next.wrapping_add(records as i32) & i32::MAX);
        Ok(p.base_offset)
    }
}
