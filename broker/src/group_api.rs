//! Handlers of the consumer-group APIs: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch.

use crate::broker::Broker;
use crate::groups::JoinRequest;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use riptide_wire::{ResponseError, NO_ERROR};
use std::collections::BTreeMap;
use std::time::Duration;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn find_coordinator(
    b: &Broker,
    req: FindCoordinatorRequest,
    v: i16,
) -> FindCoordinatorResponse {
    let mut r = FindCoordinatorResponse::default();
    let keys: Vec<StrBytes> = if v >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    for key in keys {
        let mut c = Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1));
        if req.key_type > 1 {
            c.error_code = ResponseError::InvalidRequest.code();
        } else {
            // 0: a group's coordinator, 1: a transactional id's.
            let node = if req.key_type == 0 {
                b.coordinator_of(key.as_str())
            } else {
                b.txn_coordinator_of(key.as_str())
            };
            match b
                .cluster
                .members()
                .into_iter()
                .find(|m| Some(m.node_id) == node)
            {
                Some(m) => {
                    c.node_id = BrokerId(m.node_id);
                    c.host = s(&m.host);
                    c.port = m.port;
                }
                None => c.error_code = ResponseError::CoordinatorNotAvailable.code(),
            }
        }
        r.coordinators.push(c);
    }
    if v < 4 {
        // Before v4 there is one key and the answer is top-level.
        if let Some(c) = r.coordinators.pop() {
            r.error_code = c.error_code;
            r.node_id = c.node_id;
            r.host = c.host;
            r.port = c.port;
        }
        r.coordinators.clear();
    }
    r
}

pub async fn join_group(
    b: &Broker,
    req: JoinGroupRequest,
    client_id: &str,
    v: i16,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default().with_generation_id(-1);
    let group = match b.group(req.group_id.0.as_str()).await {
        Ok(g) => g,
        Err(c) => {
            r.error_code = c;
            r.member_id = req.member_id;
            return r;
        }
    };
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    let rebalance = if req.rebalance_timeout_ms > 0 {
        Duration::from_millis(req.rebalance_timeout_ms as u64)
    } else {
        session
    };
    let joined = group
        .join(JoinRequest {
            member_id: req.member_id.to_string(),
            client_id: client_id.to_string(),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            require_known_member_id: v >= 4,
        })
        .await;
    r.error_code = joined.error;
    r.generation_id = joined.generation;
    if v >= 7 {
        r.protocol_type = joined.protocol_type.as_deref().map(s);
    }
    r.protocol_name = Some(s(joined.protocol.as_deref().unwrap_or("")));
    r.leader = s(&joined.leader);
    r.member_id = s(&joined.member_id);
    r.members = joined
        .members
        .into_iter()
        .map(|(id, meta)| {
            JoinGroupResponseMember::default()
                .with_member_id(s(&id))
                .with_metadata(meta)
        })
        .collect();
    r
}

pub async fn sync_group(b: &Broker, req: SyncGroupRequest, v: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    let group = match b.group(req.group_id.0.as_str()).await {
        Ok(g) => g,
        Err(c) => {
            r.error_code = c;
            return r;
        }
    };
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    match group
        .sync(req.member_id.as_str(), req.generation_id, assignments)
        .await
    {
        Ok((protocol_type, protocol, assignment)) => {
            if v >= 5 {
                r.protocol_type = protocol_type.as_deref().map(s);
                r.protocol_name = protocol.as_deref().map(s);
            }
            r.assignment = assignment;
        }
        Err(c) => r.error_code = c,
    }
    r
}

pub async fn heartbeat(b: &Broker, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    r.error_code = match b.group(req.group_id.0.as_str()).await {
        Ok(g) => g.heartbeat(req.member_id.as_str(), req.generation_id).await,
        Err(c) => c,
    };
    r
}

pub async fn leave_group(b: &Broker, req: LeaveGroupRequest, v: i16) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    let ids: Vec<String> = if v >= 3 {
        req.members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect()
    } else {
        vec![req.member_id.to_string()]
    };
    match b.group(req.group_id.0.as_str()).await {
        Ok(g) => {
            let results = g.leave(&ids).await;
            if v < 3 {
                r.error_code = results.first().copied().unwrap_or(NO_ERROR);
                return r;
            }
            r.members = ids
                .iter()
                .zip(results)
                .map(|(id, c)| {
                    MemberResponse::default()
                        .with_member_id(s(id))
                        .with_error_code(c)
                })
                .collect();
        }
        Err(c) => r.error_code = c,
    }
    r
}

pub async fn offset_commit(b: &Broker, req: OffsetCommitRequest) -> OffsetCommitResponse {
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
            g.commit(
                req.member_id.as_str(),
                req.generation_id_or_member_epoch,
                offsets,
            )
            .await
        }
        Err(c) => Err(c),
    };
    let code = outcome.err().unwrap_or(NO_ERROR);
    let mut r = OffsetCommitResponse::default();
    r.topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    r
}

pub async fn offset_fetch(b: &Broker, req: OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    // A coordinator that lost the group and got it back must not answer from memory: another
    // may have committed in between.
    let group = match b.group(req.group_id.0.as_str()).await {
        Ok(g) if g.verify_now().await => Ok(g),
        Ok(_) => Err(ResponseError::NotCoordinator.code()),
        Err(c) => Err(c),
    };
    let group = match group {
        Ok(g) => g,
        Err(c) => {
            // v1 has no top-level error: report it on every partition.
            if v >= 2 {
                r.error_code = c;
            }
            for t in req.topics.iter().flatten() {
                r.topics.push(
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_error_code(c)
                                })
                                .collect(),
                        ),
                );
            }
            return r;
        }
    };
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OffsetFetchResponsePartition>> = BTreeMap::new();
    for ((topic, partition), v) in group.committed(wanted).await {
        let (offset, meta) = v.unwrap_or((-1, None));
        let mut p = OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_metadata(Some(s(meta.as_deref().unwrap_or(""))));
        // KIP-447: a consumer that asks for stable offsets waits out open transactions.
        if req.require_stable && group.unstable(&topic, partition).await {
            riptide_coverage::reached!(
                "group.unstable_offset_refused",
                "an offset fetch asking for stable offsets met offsets pending in a transaction"
            );
            p = p
                .with_committed_offset(-1)
                .with_error_code(ResponseError::UnstableOffsetCommit.code());
        }
        by_topic.entry(topic).or_default().push(p);
    }
    r.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(&t)))
                .with_partitions(ps)
        })
        .collect();
    r
}
