//! Consumer-group membership (classic protocol) for the instrumented client:
//! find the coordinator, join, sync (the leader assigns ranges), heartbeat,
//! commit and fetch offsets, leave.

use super::Client;
use crate::error::ClientError;
use crate::net::Connector;
use crate::Topic;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use riptide_coverage::reached;
use riptide_wire::error_of;
use riptide_wire::ResponseError::*;
use std::time::Duration;

const SESSION_TIMEOUT_MS: i32 = 6_000;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;
/// How much longer than the rebalance timeout a member waits for its JoinGroup reply: the
/// coordinator holds a join until every member has rejoined or left, up to the rebalance timeout,
/// so a join given only the request timeout gives up (and starts over) on a rebalance about to
/// complete. Kafka's consumer waits the same (`JOIN_GROUP_TIMEOUT_LAPSE`).
const JOIN_GROUP_TIMEOUT_LAPSE: Duration = Duration::from_secs(5);
/// OffsetFetch's first version with `require_stable` (KIP-447).
const STABLE_FETCH_VERSION: i16 = 7;
/// The newest OffsetFetch version a client that does not ask for stable offsets sends.
const UNSTABLE_FETCH_VERSION: i16 = 5;

/// One member's view of its group.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    pub coordinator: Option<String>,
}

impl Membership {
    pub fn new(group: &str) -> Self {
        Membership {
            group: group.to_string(),
            generation: -1,
            ..Default::default()
        }
    }
}

/// Whether an error means "join again" (rather than "try again").
pub fn needs_rejoin(e: &ClientError) -> bool {
    matches!(
        e.error(),
        Some(IllegalGeneration | UnknownMemberId | RebalanceInProgress)
    )
}

fn coordinator_moved(e: &ClientError) -> bool {
    matches!(e.error(), Some(NotCoordinator | CoordinatorNotAvailable))
        || !e.is_definite()
        || matches!(e, ClientError::Connect { .. } | ClientError::Io { .. })
}

/// A join or sync failed because the coordinator moved or died: a coordinator failover during
/// a rebalance, as the member sees it.
fn lost_during_rebalance(e: &ClientError) {
    if coordinator_moved(e) {
        reached!(
            "group.coordinator_lost_during_rebalance",
            "the coordinator moved or failed while a member was joining or syncing"
        );
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The consumer protocol's subscription metadata (version 0).
fn subscription(topics: &[Topic]) -> Bytes {
    let mut sub = ConsumerProtocolSubscription::default();
    sub.topics = topics.iter().map(|t| s(&t.name)).collect();
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = sub.encode(&mut buf, 0);
    buf.freeze()
}

fn assignment(parts: &[(String, Vec<i32>)]) -> Bytes {
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = parts
        .iter()
        .map(|(topic, partitions)| {
            AssignedPartitions::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(partitions.clone())
        })
        .collect();
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    let _ = a.encode(&mut buf, 0);
    buf.freeze()
}

/// The partitions assigned of the `topics` subscribed to, in assignment order.
fn decode_assignment(mut b: Bytes, topics: &[Topic]) -> Vec<(String, i32)> {
    if b.remaining() < 2 {
        return vec![];
    }
    let version = b.get_i16().clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut b, version)
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .filter(|t| topics.iter().any(|x| x.name == t.topic.0.as_str()))
                .flat_map(|t| {
                    let name = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (name.clone(), p))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Range assignment: contiguous runs of partitions, members in id order.
pub fn assign_ranges(members: &[String], partitions: i32) -> Vec<(String, Vec<i32>)> {
    let n = members.len().max(1) as i32;
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let i = i as i32;
            let (per, extra) = (partitions / n, partitions % n);
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            (m.clone(), (start..start + len).collect())
        })
        .collect()
}

impl<C: Connector> Client<C> {
    async fn coordinator(&mut self, m: &mut Membership) -> Result<String, ClientError> {
        if let Some(c) = &m.coordinator {
            return Ok(c.clone());
        }
        let addr = self.any_broker().await?;
        let conn = self.conn(&addr).await?;
        let v = conn.pick_version(ApiKey::FindCoordinator)?;
        let mut req = FindCoordinatorRequest::default();
        req.key = s(&m.group);
        let resp = conn.send(&req, v).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(
                ApiKey::FindCoordinator,
                resp.error_code,
                None,
            ));
        }
        let found = format!("{}:{}", resp.host.as_str(), resp.port);
        m.coordinator = Some(found.clone());
        Ok(found)
    }

    /// A group API's error code as an error; forgets the coordinator when the
    /// code says it moved (codes inside a reply, not only failed requests).
    pub(super) fn group_error(
        &mut self,
        m: &mut Membership,
        api: ApiKey,
        code: i16,
    ) -> ClientError {
        let e = ClientError::broker(api, code, None);
        if coordinator_moved(&e) {
            m.coordinator = None;
            self.metadata.stale = true;
        }
        e
    }

    /// Runs one group request against the coordinator; forgets the coordinator
    /// when it moved, so the next call finds the new one.
    pub(super) async fn on_coordinator<F, R>(
        &mut self,
        m: &mut Membership,
        call: F,
    ) -> Result<R, ClientError>
    where
        F: for<'a> FnOnce(
            &'a mut crate::connection::Connection<C::Stream>,
        ) -> futures::future::BoxFuture<'a, Result<R, ClientError>>,
    {
        let addr = self.coordinator(m).await?;
        let result = match self.conn(&addr).await {
            Ok(conn) => call(conn).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if coordinator_moved(e) {
                reached!(
                    "group.coordinator_lost",
                    "a group request found the coordinator moved or failed"
                );
                m.coordinator = None;
                self.metadata.stale = true;
            }
        }
        result
    }

    /// Joins (or rejoins) the group subscribed to `topics` and returns this member's partitions
    /// (range assignment per topic).
    pub async fn join_group(
        &mut self,
        m: &mut Membership,
        topics: &[Topic],
    ) -> Result<Vec<(String, i32)>, ClientError> {
        let client_id = self.config.connection.client_id.clone().unwrap_or_default();
        let meta = subscription(topics);
        let join_timeout = self
            .config
            .connection
            .request_timeout
            .max(Duration::from_millis(REBALANCE_TIMEOUT_MS as u64) + JOIN_GROUP_TIMEOUT_LAPSE);
        loop {
            let (group, member_id) = (m.group.clone(), m.member_id.clone());
            let meta = meta.clone();
            let joined = self
                .on_coordinator(m, move |conn| {
                    Box::pin(async move {
                        let v = conn.pick_version(ApiKey::JoinGroup)?;
                        let mut req = JoinGroupRequest::default();
                        req.group_id = GroupId(s(&group));
                        req.session_timeout_ms = SESSION_TIMEOUT_MS;
                        if v >= 1 {
                            req.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
                        }
                        req.member_id = s(&member_id);
                        req.protocol_type = s("consumer");
                        req.protocols = vec![JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(meta)];
                        conn.send_with_timeout(&req, v, join_timeout).await
                    })
                })
                .await
                .inspect_err(lost_during_rebalance)?;
            match error_of(joined.error_code) {
                None => {}
                Some(MemberIdRequired) => {
                    reached!(
                        "group.member_id_required",
                        "a join was answered MEMBER_ID_REQUIRED (KIP-394) and sent again"
                    );
                    m.member_id = joined.member_id.to_string();
                    continue;
                }
                Some(UnknownMemberId) => {
                    m.member_id.clear();
                    return Err(self.group_error(m, ApiKey::JoinGroup, joined.error_code));
                }
                Some(_) => return Err(self.group_error(m, ApiKey::JoinGroup, joined.error_code)),
            }
            m.member_id = joined.member_id.to_string();
            m.generation = joined.generation_id;
            let plan = if joined.leader == joined.member_id {
                let mut ids: Vec<String> = joined
                    .members
                    .iter()
                    .map(|x| x.member_id.to_string())
                    .collect();
                ids.sort();
                // Member id → (topic, partitions) it is given.
                type Plan = Vec<(String, Vec<(String, Vec<i32>)>)>;
                let mut plan: Plan = ids.iter().map(|id| (id.clone(), Vec::new())).collect();
                for t in topics {
                    for (k, (_, ps)) in assign_ranges(&ids, t.partitions).into_iter().enumerate() {
                        plan[k].1.push((t.name.clone(), ps));
                    }
                }
                plan.into_iter()
                    .map(|(id, parts)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&id))
                            .with_assignment(assignment(&parts))
                    })
                    .collect()
            } else {
                vec![]
            };
            let (group, member_id, generation) =
                (m.group.clone(), m.member_id.clone(), m.generation);
            let synced = self
                .on_coordinator(m, move |conn| {
                    Box::pin(async move {
                        let v = conn.pick_version(ApiKey::SyncGroup)?;
                        let mut req = SyncGroupRequest::default();
                        req.group_id = GroupId(s(&group));
                        req.generation_id = generation;
                        req.member_id = s(&member_id);
                        req.assignments = plan;
                        conn.send(&req, v).await
                    })
                })
                .await
                .inspect_err(lost_during_rebalance)?;
            if synced.error_code != 0 {
                reached!("group.sync_refused", "a member joined a generation but its sync was refused (the group moved on or the coordinator changed)");
                return Err(self.group_error(m, ApiKey::SyncGroup, synced.error_code));
            }
            let _ = client_id;
            return Ok(decode_assignment(synced.assignment, topics));
        }
    }

    pub async fn heartbeat(&mut self, m: &mut Membership) -> Result<(), ClientError> {
        let (group, member_id, generation) = (m.group.clone(), m.member_id.clone(), m.generation);
        let resp = self
            .on_coordinator(m, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::Heartbeat)?;
                    let mut req = HeartbeatRequest::default();
                    req.group_id = GroupId(s(&group));
                    req.generation_id = generation;
                    req.member_id = s(&member_id);
                    conn.send(&req, v).await
                })
            })
            .await?;
        match resp.error_code {
            0 => Ok(()),
            code => Err(self.group_error(m, ApiKey::Heartbeat, code)),
        }
    }

    /// Commits `offsets` (topic, partition, next offset to read) for this member; a
    /// [`Membership`] that never joined (no member id, generation -1) commits as a standalone
    /// consumer.
    pub async fn commit_offsets(
        &mut self,
        m: &mut Membership,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        let (group, member_id, generation) = (m.group.clone(), m.member_id.clone(), m.generation);
        let mut topics: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        for (t, p, o) in offsets {
            match topics.iter_mut().find(|(name, _)| name == t) {
                Some((_, list)) => list.push((*p, *o)),
                None => topics.push((t.clone(), vec![(*p, *o)])),
            }
        }
        let resp = self
            .on_coordinator(m, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::OffsetCommit)?;
                    let mut req = OffsetCommitRequest::default();
                    req.group_id = GroupId(s(&group));
                    req.generation_id_or_member_epoch = generation;
                    req.member_id = s(&member_id);
                    req.topics = topics
                        .iter()
                        .map(|(topic, offsets)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(s(topic)))
                                .with_partitions(
                                    offsets
                                        .iter()
                                        .map(|(p, o)| {
                                            OffsetCommitRequestPartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(*o)
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
            Some(c) => Err(self.group_error(m, ApiKey::OffsetCommit, c)),
        }
    }

    /// The group's committed offsets of `partitions` (topic, partition), -1 where none.
    ///
    /// A read_committed client asks for stable offsets (KIP-447, OffsetFetch v7+): while a
    /// transaction that committed offsets of a partition is open, the coordinator answers
    /// UNSTABLE_OFFSET_COMMIT, and the fetch is sent again after a backoff, as Kafka's consumer
    /// does; otherwise a consumer-transform-produce client restarting from the offsets before
    /// that transaction would process its inputs again if it commits. Against a broker without
    /// v7 it fetches as before (Kafka's consumer refuses instead). Other clients keep the
    /// versions they used (up to v5).
    pub async fn committed_offsets(
        &mut self,
        m: &mut Membership,
        partitions: &[(String, i32)],
    ) -> Result<Vec<((String, i32), i64)>, ClientError> {
        let stable = self.config.isolation_level == 1;
        let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
        for (t, p) in partitions {
            match topics.iter_mut().find(|(name, _)| name == t) {
                Some((_, list)) => list.push(*p),
                None => topics.push((t.clone(), vec![*p])),
            }
        }
        let mut attempt = 0;
        loop {
            let group = m.group.clone();
            let topics = topics.clone();
            let resp = self
                .on_coordinator(m, move |conn| {
                    Box::pin(async move {
                        let top = conn.pick_version(ApiKey::OffsetFetch)?;
                        let v = if stable {
                            top
                        } else {
                            top.min(UNSTABLE_FETCH_VERSION)
                        };
                        let mut req = OffsetFetchRequest::default();
                        req.group_id = GroupId(s(&group));
                        req.require_stable = stable && v >= STABLE_FETCH_VERSION;
                        req.topics = Some(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    OffsetFetchRequestTopic::default()
                                        .with_name(TopicName(s(&topic)))
                                        .with_partition_indexes(partitions)
                                })
                                .collect(),
                        );
                        conn.send(&req, v).await
                    })
                })
                .await?;
            if resp.error_code != 0 {
                return Err(self.group_error(m, ApiKey::OffsetFetch, resp.error_code));
            }
            let mut out = Vec::new();
            let mut unstable = None;
            for t in resp.topics {
                for p in t.partitions {
                    match error_of(p.error_code) {
                        None => {}
                        Some(UnstableOffsetCommit) => {
                            unstable = Some(p.error_code);
                            continue;
                        }
                        Some(_) => {
                            return Err(self.group_error(m, ApiKey::OffsetFetch, p.error_code))
                        }
                    }
                    out.push((
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    ));
                }
            }
            let Some(code) = unstable else {
                return Ok(out);
            };
            let e = ClientError::broker(ApiKey::OffsetFetch, code, None);
            if attempt >= self.config.retries {
                return Err(e);
            }
            reached!(
                "group.unstable_offsets_waited",
                "a read_committed client fetching committed offsets met a transaction still open and fetched again after a backoff"
            );
            self.prepare_retry(&e, attempt).await;
            attempt += 1;
        }
    }

    /// Leaves the group (best effort: a member that cannot leave times out).
    pub async fn leave_group(&mut self, m: &mut Membership) {
        let (group, member_id) = (m.group.clone(), m.member_id.clone());
        let _ = self
            .on_coordinator(m, move |conn| {
                Box::pin(async move {
                    let v = conn.pick_version(ApiKey::LeaveGroup)?;
                    let mut req = LeaveGroupRequest::default();
                    req.group_id = GroupId(s(&group));
                    req.member_id = s(&member_id);
                    conn.send(&req, v).await
                })
            })
            .await;
        m.member_id.clear();
        m.generation = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_partition_once() {
        let members: Vec<String> = ["a", "b", "c"].iter().map(|x| x.to_string()).collect();
        let plan = assign_ranges(&members, 8);
        let all: Vec<i32> = plan.iter().flat_map(|(_, ps)| ps.clone()).collect();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert_eq!(plan[0].1, vec![0, 1, 2]);
        assert_eq!(plan[2].1, vec![6, 7]);
    }

    #[test]
    fn assignments_round_trip() {
        let t = |name: &str| Topic::new(name, 4);
        let two = assignment(&[("t".into(), vec![1, 3]), ("u".into(), vec![0])]);
        assert_eq!(
            decode_assignment(two.clone(), &[t("t"), t("u")]),
            vec![("t".into(), 1), ("t".into(), 3), ("u".into(), 0)]
        );
        assert_eq!(decode_assignment(two, &[t("u")]), vec![("u".into(), 0)]);
        assert!(decode_assignment(assignment(&[("t".into(), vec![1])]), &[t("other")]).is_empty());
        assert!(decode_assignment(Bytes::from_static(b"\x00"), &[t("t")]).is_empty());
    }
}
