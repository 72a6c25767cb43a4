//! Consumer groups (the classic protocol, client-side assignors).
//!
//! The coordinator of group G is the owner of the pseudo-partition
//! `__group/G` (rendezvous hashing, like any partition), so coordinators
//! spread over brokers and move when one dies or leaves. Membership and
//! generations live in the coordinator's memory; committed offsets (and each
//! new generation) are records in the group's own commit chain, written and
//! fenced exactly like a partition's log. A coordinator that lost the group
//! cannot commit, and a new one rebuilds everything from the chain.
//!
//! Asserted (`always!`, `group.*`): every record of a group's chain is a generation, an
//! offset commit, a marker or a snapshot's that parses, and the generations never go back.
//!
//! The chain is kept short by snapshots: once it has grown past the group's live state (and at
//! least `SNAPSHOT_MIN_RECORDS` records) since the last snapshot, the coordinator appends one
//! commit that restates the whole durable state (a `snapshot` record that resets it, then the
//! generation, marker epochs, committed and pending offsets), and moves the log start to it;
//! the log deletes the commits below after its `delete_delay`, as it does for partitions. A
//! snapshot is a commit of the chain, so it is as durable as the commits it replaces (there is
//! no cache to distrust), and replay from any point before it gives the same state: it resets
//! what came before. It is written only while no other write is between its append and its
//! effect in memory, so memory is what the chain says up to it.

use crate::batch;
use crate::storage::log::{LogError, LogOptions, PartitionLog};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riptide_coverage::{always, reached};
use riptide_wire::{ResponseError, NO_ERROR};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

/// How long a group with no members waits for more before its first rebalance.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(1000);
/// How often expired members and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// Records a group's chain grows by at least, past its last snapshot, before the next: with
/// the snapshot's own length as the other bound, opening replays at most about twice the live
/// state plus this, and a snapshot costs at most one record written per record appended.
pub const SNAPSHOT_MIN_RECORDS: usize = 64;
/// After a snapshot's write failed: records appended before the next try.
const SNAPSHOT_RETRY_RECORDS: usize = 16;

/// The pseudo-topic whose partition 0 decides a group's coordinator.
pub fn coordinator_key(group: &str) -> String {
    format!("__group/{group}")
}

/// The id under which a group's chain is stored (`log/{id}/0/...`).
pub fn log_id(group: &str) -> String {
    let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    format!("g-{hex}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    /// Waiting for members to (re)join, until everyone did or the deadline.
    Joining {
        deadline: Instant,
    },
    /// Joined; waiting for the leader's assignments.
    Syncing,
    Stable,
}

struct Member {
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    /// Rejoined in the current joining round.
    joined: bool,
    assignment: Bytes,
}

#[derive(Default)]
struct State {
    generation: i32,
    phase: Option<Phase>,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined with, and when
    /// each expires (its session timeout after it was handed out).
    pending: BTreeMap<String, Instant>,
    next_member: u64,
    /// Committed offsets: (topic, partition) → (offset, metadata).
    offsets: BTreeMap<(String, i32), (i64, Option<String>)>,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id: they
    /// become committed offsets with the transaction's commit marker, and vanish with its abort.
    txn_offsets: BTreeMap<i64, Offsets>,
    /// The epoch of each producer's latest marker here. A TxnOffsetCommit of an older epoch
    /// belongs to a transaction that already ended (KIP-890 part 2 markers carry the bumped
    /// epoch): it is refused live and ignored on replay, never left pending for the next one.
    marker_epochs: BTreeMap<i64, i16>,
    /// The newest transaction coordinator epoch among each producer's markers here: a marker
    /// from an older coordinator (still delivering a transaction the new one finished) is
    /// refused, as in partitions.
    marker_coordinators: BTreeMap<i64, i32>,
}

type Offsets = BTreeMap<(String, i32), (i64, Option<String>)>;

/// When the coordinator writes the group's next snapshot (memory only; a new coordinator
/// counts what it replayed).
#[derive(Debug, Default)]
struct Snapshots {
    /// Records appended to the chain since the last snapshot (or since it began).
    since: usize,
    /// The next snapshot is due once `since` reaches this.
    due_at: usize,
}

impl Snapshots {
    fn after_snapshot(len: usize) -> Self {
        Snapshots {
            since: 0,
            due_at: len.max(SNAPSHOT_MIN_RECORDS),
        }
    }
}

impl State {
    fn phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::Empty)
    }
}

pub struct Group {
    pub name: String,
    node_id: i32,
    /// Differs on every opening of the group, so member ids handed out by an
    /// earlier coordinator (or an earlier opening here) never collide with new ones.
    incarnation: u64,
    bug: Option<crate::bugs::Bug>,
    state: Mutex<State>,
    changed: Notify,
    log: Arc<PartitionLog>,
    /// Serialises TxnOffsetCommit and markers from append to apply, so that memory takes them
    /// in the chain's order (a marker applied before offsets written ahead of it would leave
    /// them pending for the producer's next transaction).
    txn_writes: Mutex<()>,
    /// Held shared by every write from its append to its effect in memory, and exclusively by
    /// a snapshot, which restates memory: so no write lands in the chain before a snapshot
    /// without being in it.
    writes: tokio::sync::RwLock<()>,
    snapshots: std::sync::Mutex<Snapshots>,
}

/// The answer to a JoinGroup.
pub struct Joined {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member and its metadata.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    fn error(code: i16, member_id: &str) -> Self {
        Joined {
            error: code,
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: vec![],
        }
    }
}

pub struct JoinRequest {
    pub member_id: String,
    pub client_id: String,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// KIP-394 (JoinGroup v4+): a join without a member id is answered MEMBER_ID_REQUIRED with
    /// a new id, and the member is admitted only when it joins again with that id.
    pub require_known_member_id: bool,
}

fn offset_key(topic: &str, partition: i32) -> String {
    format!("o\u{0}{topic}\u{0}{partition}")
}

fn txn_offset_key(producer_id: i64, topic: &str, partition: i32) -> String {
    format!("t\u{0}{producer_id}\u{0}{topic}\u{0}{partition}")
}

fn txn_marker_key(producer_id: i64) -> String {
    format!("m\u{0}{producer_id}")
}

/// A snapshot's record of a producer's newest marker epochs here (sets them, ends nothing).
fn marker_epochs_key(producer_id: i64) -> String {
    format!("e\u{0}{producer_id}")
}

/// The first record of a snapshot: it resets the durable state the records after it restate.
const SNAPSHOT_KEY: &str = "snapshot";

/// The records that restate `s`'s durable state, after the one that resets it.
fn snapshot_records(s: &State) -> Vec<Record> {
    let mut out = vec![record("generation".into(), s.generation.to_string())];
    let producers: std::collections::BTreeSet<i64> = s
        .marker_epochs
        .keys()
        .chain(s.marker_coordinators.keys())
        .copied()
        .collect();
    for pid in producers {
        let value = serde_json::json!({
            "epoch": s.marker_epochs.get(&pid),
            "coordinator_epoch": s.marker_coordinators.get(&pid),
        });
        out.push(record(marker_epochs_key(pid), value.to_string()));
    }
    for ((topic, partition), (offset, meta)) in &s.offsets {
        let value = serde_json::json!({ "offset": offset, "metadata": meta });
        out.push(record(offset_key(topic, *partition), value.to_string()));
    }
    for (pid, offsets) in &s.txn_offsets {
        // Pending offsets were taken at an epoch no marker here fenced: the newest known passes.
        let epoch = s.marker_epochs.get(pid).copied().unwrap_or(0);
        for ((topic, partition), (offset, meta)) in offsets {
            let value = serde_json::json!({ "offset": offset, "metadata": meta, "epoch": epoch });
            out.push(record(
                txn_offset_key(*pid, topic, *partition),
                value.to_string(),
            ));
        }
    }
    let head = serde_json::json!({ "records": out.len() }).to_string();
    out.insert(0, record(SNAPSHOT_KEY.into(), head));
    out
}

pub(crate) fn record(key: String, value: String) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    }
}

impl Group {
    /// Opens the group's chain (claiming it, which fences any previous
    /// coordinator) and rebuilds offsets and the generation from it.
    pub async fn open(name: &str, opts: &LogOptions) -> Result<Arc<Group>, LogError> {
        let log = PartitionLog::new(&log_id(name), 0, opts);
        log.open().await?;
        let mut state = State::default();
        let records = log.records().await?;
        if !records.is_empty() {
            reached!(
                "group.opened_with_history",
                "a coordinator opened a group another coordinator had written (failover or move)"
            );
        }
        let mut snapshots = Snapshots::after_snapshot(0);
        // A snapshot's own records after its first are not growth since it.
        let mut restating = 0;
        for r in records {
            let key = r
                .key
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .unwrap_or_default();
            let value = r
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            match apply_record(&mut state, &key, &value) {
                Some(len) => {
                    reached!(
                        "group.opened_from_snapshot",
                        "a coordinator opened a group whose chain holds a snapshot"
                    );
                    snapshots = Snapshots::after_snapshot(len);
                    restating = len;
                }
                None if restating > 0 => restating -= 1,
                None => snapshots.since += 1,
            }
        }
        let group = Arc::new(Group {
            name: name.to_string(),
            node_id: opts.node_id,
            incarnation: opts.ids.next_u64(),
            bug: opts.bug,
            state: Mutex::new(state),
            changed: Notify::new(),
            txn_writes: Mutex::new(()),
            writes: tokio::sync::RwLock::new(()),
            snapshots: std::sync::Mutex::new(snapshots),
            log,
        });
        let ticker = Arc::downgrade(&group);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let Some(g) = ticker.upgrade() else { return };
                if g.log.is_closed() {
                    return;
                }
                g.tick().await;
            }
        });
        // Snapshots and deletions wait on the store: in a loop of their own, so a slow store
        // never holds up member expiry and rebalance deadlines.
        let keeper = Arc::downgrade(&group);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let Some(g) = keeper.upgrade() else { return };
                if g.log.is_closed() {
                    return;
                }
                g.maybe_snapshot().await;
                g.log.collect_garbage().await;
            }
        });
        Ok(group)
    }

    pub fn is_closed(&self) -> bool {
        self.log.is_closed()
    }

    /// Notices a coordinator that took the group over behind our back.
    pub async fn verify(&self) {
        if let Err(e) = self.log.verify_tail().await {
            tracing::info!(group = %self.name, error = %e, "group chain check failed");
            if matches!(e, LogError::Fenced) {
                self.close();
            }
        }
    }

    /// Catches up with the group's chain before an answer that must be current (committed
    /// offsets): false if another coordinator took the group over.
    pub async fn verify_now(&self) -> bool {
        if let Err(e) = self.log.verify_tail_now().await {
            tracing::info!(group = %self.name, error = %e, "group chain check failed");
            if matches!(e, LogError::Fenced) {
                reached!(
                    "group.taken_over_behind_back",
                    "a coordinator found before answering that another had taken its group over"
                );
                self.close();
            }
            return false;
        }
        !self.is_closed()
    }

    pub fn close(&self) {
        self.log.close();
        self.changed.notify_waiters();
    }

    /// Expires silent members and ends joining rounds whose time is up.
    async fn tick(&self) {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        let joining = matches!(s.phase(), Phase::Joining { .. });
        let expired: Vec<String> = s
            .members
            .iter()
            .filter(|(_, m)| !(joining && m.joined) && now > m.last_seen + m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            reached!(
                "group.member_expired",
                "a member missed its session timeout and was removed"
            );
            tracing::info!(group = %self.name, member = %id, "member expired");
            s.members.remove(id);
        }
        if !expired.is_empty() {
            self.rebalance(&mut s, now, Duration::ZERO);
        }
        if let Phase::Joining { deadline } = s.phase() {
            if now >= deadline || s.members.values().all(|m| m.joined) {
                self.complete_join(&mut s);
            }
        }
    }

    /// Starts a joining round (unless one runs). Members must rejoin.
    fn rebalance(&self, s: &mut State, now: Instant, delay: Duration) {
        if s.members.is_empty() {
            s.phase = Some(Phase::Empty);
            s.leader = None;
            self.changed.notify_waiters();
            return;
        }
        if !matches!(s.phase(), Phase::Joining { .. }) {
            reached!(
                "group.rebalance_started",
                "a group with members began a joining round"
            );
            let wait = s
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default()
                .max(delay);
            s.phase = Some(Phase::Joining {
                deadline: now + wait,
            });
            for m in s.members.values_mut() {
                m.joined = false;
            }
        }
        self.changed.notify_waiters();
    }

    /// Ends a joining round: drops those who did not rejoin, picks a protocol
    /// and a leader, and opens the next generation.
    fn complete_join(&self, s: &mut State) {
        let before = s.members.len();
        s.members.retain(|_, m| m.joined);
        if s.members.len() < before {
            reached!(
                "group.laggard_dropped",
                "a joining round ended without a member that did not rejoin in time"
            );
        }
        if s.members.is_empty() {
            s.phase = Some(Phase::Empty);
            self.changed.notify_waiters();
            return;
        }
        let first = s
            .members
            .values()
            .next()
            .map(|m| m.protocols.clone())
            .unwrap_or_default();
        let protocol = first.iter().map(|(p, _)| p.clone()).find(|p| {
            s.members
                .values()
                .all(|m| m.protocols.iter().any(|(q, _)| q == p))
        });
        s.protocol = protocol;
        s.protocol_type = s.members.values().next().map(|m| m.protocol_type.clone());
        if !s.leader.as_ref().is_some_and(|l| s.members.contains_key(l)) {
            s.leader = s.members.keys().next().cloned();
        }
        s.generation += 1;
        reached!(
            "group.generation_bumped",
            "a joining round ended and a new generation began"
        );
        for m in s.members.values_mut() {
            m.assignment = Bytes::new();
        }
        s.phase = Some(Phase::Syncing);
        tracing::info!(group = %self.name, generation = s.generation,
            members = s.members.len(), "group rebalanced");
        // Remembered so a later coordinator starts above it; waiting for it
        // would stall every member's join.
        match encode(vec![record("generation".into(), s.generation.to_string())]) {
            Ok(batches) => {
                drop(self.log.append(batches));
                self.grew(1);
            }
            Err(e) => {
                tracing::error!(group = %self.name, error = %e, "could not encode generation")
            }
        }
        self.changed.notify_waiters();
    }

    pub async fn join(&self, req: JoinRequest) -> Joined {
        if req.session_timeout.is_zero() {
            return Joined::error(ResponseError::InvalidSessionTimeout.code(), &req.member_id);
        }
        let member_id = {
            let mut s = self.state.lock().await;
            if let Some(t) = &s.protocol_type {
                if !s.members.is_empty() && *t != req.protocol_type {
                    return Joined::error(
                        ResponseError::InconsistentGroupProtocol.code(),
                        &req.member_id,
                    );
                }
            }
            let now = Instant::now();
            s.pending.retain(|_, expiry| *expiry > now);
            let member_id = if req.member_id.is_empty() {
                s.next_member += 1;
                let id = format!(
                    "{}-{}-{:08x}-{}",
                    req.client_id, self.node_id, self.incarnation as u32, s.next_member
                );
                if req.require_known_member_id {
                    reached!(
                        "group.member_id_handed_out",
                        "a join without a member id was answered MEMBER_ID_REQUIRED with a new id (KIP-394)"
                    );
                    s.pending.insert(id.clone(), now + req.session_timeout);
                    return Joined::error(ResponseError::MemberIdRequired.code(), &id);
                }
                id
            } else if s.members.contains_key(&req.member_id)
                || s.pending.remove(&req.member_id).is_some()
            {
                req.member_id.clone()
            } else {
                return Joined::error(ResponseError::UnknownMemberId.code(), &req.member_id);
            };
            let fresh = s.phase() == Phase::Empty;
            let m = s
                .members
                .entry(member_id.clone())
                .or_insert_with(|| Member {
                    protocol_type: req.protocol_type.clone(),
                    protocols: vec![],
                    session_timeout: req.session_timeout,
                    rebalance_timeout: req.rebalance_timeout,
                    last_seen: now,
                    joined: false,
                    assignment: Bytes::new(),
                });
            m.protocols = req.protocols;
            m.session_timeout = req.session_timeout;
            m.rebalance_timeout = req.rebalance_timeout;
            m.last_seen = now;
            let delay = if fresh {
                INITIAL_REBALANCE_DELAY
            } else {
                Duration::ZERO
            };
            self.rebalance(&mut s, now, delay);
            if let Some(m) = s.members.get_mut(&member_id) {
                m.joined = true;
            }
            if !fresh && s.members.values().all(|m| m.joined) {
                self.complete_join(&mut s);
            }
            member_id
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.state.lock().await;
                if self.is_closed() {
                    return Joined::error(ResponseError::NotCoordinator.code(), &member_id);
                }
                if !s.members.contains_key(&member_id) {
                    return Joined::error(ResponseError::UnknownMemberId.code(), &member_id);
                }
                if s.phase() == Phase::Syncing || s.phase() == Phase::Stable {
                    let leader = s.leader.clone().unwrap_or_default();
                    let members = if leader == member_id {
                        let proto = s.protocol.clone().unwrap_or_default();
                        s.members
                            .iter()
                            .map(|(id, m)| {
                                let meta = m
                                    .protocols
                                    .iter()
                                    .find(|(p, _)| *p == proto)
                                    .map(|(_, b)| b.clone())
                                    .unwrap_or_default();
                                (id.clone(), meta)
                            })
                            .collect()
                    } else {
                        vec![]
                    };
                    return Joined {
                        error: NO_ERROR,
                        generation: s.generation,
                        protocol_type: s.protocol_type.clone(),
                        protocol: s.protocol.clone(),
                        leader,
                        member_id,
                        members,
                    };
                }
            }
            notified.await;
        }
    }

    /// The member's assignment once the leader sent them all.
    pub async fn sync(
        &self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<(Option<String>, Option<String>, Bytes), i16> {
        {
            let mut s = self.state.lock().await;
            self.check(&mut s, member_id, generation)?;
            if s.phase() == Phase::Syncing && s.leader.as_deref() == Some(member_id) {
                for (id, a) in assignments {
                    if let Some(m) = s.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                s.phase = Some(Phase::Stable);
                self.changed.notify_waiters();
            }
        }
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().await;
                if self.is_closed() {
                    return Err(ResponseError::NotCoordinator.code());
                }
                self.check(&mut s, member_id, generation)?;
                if s.phase() == Phase::Stable {
                    let a = s
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    return Ok((s.protocol_type.clone(), s.protocol.clone(), a));
                }
            }
            notified.await;
        }
    }

    /// Member and generation checks shared by sync, heartbeat and commit;
    /// also counts as a sign of life.
    fn check(&self, s: &mut State, member_id: &str, generation: i32) -> Result<(), i16> {
        let current = s.generation;
        let joining = matches!(s.phase(), Phase::Joining { .. });
        let Some(m) = s.members.get_mut(member_id) else {
            reached!("group.unknown_member", "a request named a member the coordinator does not know (expired, or a new coordinator)");
            return Err(ResponseError::UnknownMemberId.code());
        };
        m.last_seen = Instant::now();
        if joining {
            reached!(
                "group.rebalance_in_progress",
                "a member's sync, heartbeat or commit came during a joining round"
            );
            return Err(ResponseError::RebalanceInProgress.code());
        }
        if generation != current {
            reached!(
                "group.illegal_generation",
                "a member's request carried an old generation"
            );
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    pub async fn heartbeat(&self, member_id: &str, generation: i32) -> i16 {
        if self.is_closed() {
            return ResponseError::NotCoordinator.code();
        }
        let mut s = self.state.lock().await;
        match self.check(&mut s, member_id, generation) {
            Ok(()) => NO_ERROR,
            Err(c) => c,
        }
    }

    pub async fn leave(&self, member_ids: &[String]) -> Vec<i16> {
        let mut s = self.state.lock().await;
        let codes: Vec<i16> = member_ids
            .iter()
            .map(|id| {
                if s.members.remove(id).is_some() {
                    tracing::info!(group = %self.name, member = %id, "member left");
                    NO_ERROR
                } else {
                    ResponseError::UnknownMemberId.code()
                }
            })
            .collect();
        self.rebalance(&mut s, Instant::now(), Duration::ZERO);
        codes
    }

    /// Commits offsets durably. A consumer outside the group (generation -1,
    /// no member id) may commit too, as Kafka allows for assign-mode clients.
    pub async fn commit(
        &self,
        member_id: &str,
        generation: i32,
        offsets: Vec<(String, i32, i64, Option<String>)>,
    ) -> Result<(), i16> {
        if self.is_closed() {
            return Err(ResponseError::NotCoordinator.code());
        }
        if !(generation < 0 && member_id.is_empty()) {
            let mut s = self.state.lock().await;
            self.check(&mut s, member_id, generation)?;
        } else {
            reached!(
                "group.standalone_commit",
                "a consumer outside the group (assign mode) committed offsets"
            );
        }
        let records = offsets
            .iter()
            .map(|(t, p, o, meta)| {
                let value = serde_json::json!({ "offset": o, "metadata": meta }).to_string();
                record(offset_key(t, *p), value)
            })
            .collect();
        if self.bug == Some(crate::bugs::Bug::OffsetsInMemory) {
            let mut s = self.state.lock().await;
            for (t, p, o, meta) in offsets {
                s.offsets.insert((t, p), (o, meta));
            }
            return Ok(());
        }
        let batches = encode(records).map_err(|e| {
            tracing::error!(group = %self.name, error = %e, "could not encode offsets");
            ResponseError::CoordinatorNotAvailable.code()
        })?;
        let _write = self.writes.read().await;
        self.grew(offsets.len());
        match self.log.append(batches).await {
            Ok(Ok(_)) => {}
            Ok(Err(LogError::Fenced)) => {
                reached!(
                    "group.commit_fenced",
                    "an offset commit found the group taken over by another coordinator"
                );
                return Err(ResponseError::NotCoordinator.code());
            }
            _ => {
                reached!(
                    "group.commit_not_durable",
                    "an offset commit could not be made durable (store error or unknown outcome)"
                );
                return Err(ResponseError::CoordinatorNotAvailable.code());
            }
        }
        let mut s = self.state.lock().await;
        for (t, p, o, meta) in offsets {
            s.offsets.insert((t, p), (o, meta));
        }
        Ok(())
    }

    /// TxnOffsetCommit: offsets committed inside the producer's transaction, durable now and
    /// visible once its commit marker comes. Refused for an epoch older than the producer's
    /// last marker here: that transaction has ended.
    pub async fn txn_commit(
        &self,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<(String, i32, i64, Option<String>)>,
    ) -> Result<(), i16> {
        if self.is_closed() {
            return Err(ResponseError::NotCoordinator.code());
        }
        let _write = self.writes.read().await;
        let _order = self.txn_writes.lock().await;
        if self.state.lock().await.fenced(producer_id, epoch) {
            reached!(
                "group.stale_txn_offsets_refused",
                "a TxnOffsetCommit of a transaction that had already ended (older epoch than its marker) was refused"
            );
            return Err(ResponseError::InvalidProducerEpoch.code());
        }
        let records: Vec<(String, String)> = offsets
            .iter()
            .map(|(t, p, o, meta)| {
                let value = serde_json::json!({ "offset": o, "metadata": meta, "epoch": epoch })
                    .to_string();
                (txn_offset_key(producer_id, t, *p), value)
            })
            .collect();
        self.append_records(
            records
                .iter()
                .map(|(k, v)| record(k.clone(), v.clone()))
                .collect(),
        )
        .await?;
        let mut s = self.state.lock().await;
        for (k, v) in &records {
            apply_record(&mut s, k, v);
        }
        Ok(())
    }

    /// A transaction marker for this group: its pending offsets become committed (commit) or
    /// are dropped (abort). Written when offsets are pending or the marker's epoch is new here
    /// (so that the fence it sets survives a new coordinator); else nothing to do.
    pub async fn end_txn(&self, marker: crate::txn::Marker) -> Result<(), i16> {
        let (producer_id, epoch, commit) = (marker.producer_id, marker.epoch, marker.commit);
        let coordinator_epoch = marker.coordinator_epoch;
        if self.is_closed() {
            return Err(ResponseError::NotCoordinator.code());
        }
        let _write = self.writes.read().await;
        let _order = self.txn_writes.lock().await;
        let (pending, new_epoch) = {
            let s = self.state.lock().await;
            let known = s.marker_coordinators.get(&producer_id).copied();
            if known.is_some_and(|k| coordinator_epoch < k) {
                reached!(
                    "group.stale_coordinator_marker_refused",
                    "a group marker from a transaction coordinator older than one that already marked the producer was refused"
                );
                return Err(ResponseError::TransactionCoordinatorFenced.code());
            }
            (
                s.txn_offsets.contains_key(&producer_id),
                s.marker_epochs.get(&producer_id).is_none_or(|e| *e < epoch)
                    || known.is_none_or(|k| k < coordinator_epoch),
            )
        };
        if !pending {
            reached!(
                "group.txn_marker_without_offsets",
                "a transaction marker came for a group with no offsets pending for that producer"
            );
            if !new_epoch {
                return Ok(());
            }
        }
        let key = txn_marker_key(producer_id);
        let value = serde_json::json!({
            "result": if commit { "commit" } else { "abort" },
            "epoch": epoch,
            "coordinator_epoch": coordinator_epoch,
        })
        .to_string();
        self.append_records(vec![record(key.clone(), value.clone())])
            .await?;
        let mut s = self.state.lock().await;
        apply_record(&mut s, &key, &value);
        if pending {
            reached!(
                "group.txn_offsets_ended",
                "offsets committed in a transaction were applied or dropped by its marker"
            );
        }
        Ok(())
    }

    /// Whether a partition has offsets pending in an open transaction (KIP-447: a consumer
    /// asking for stable offsets must wait for them).
    pub async fn unstable(&self, topic: &str, partition: i32) -> bool {
        let s = self.state.lock().await;
        let key = (topic.to_string(), partition);
        s.txn_offsets.values().any(|o| o.contains_key(&key))
    }

    async fn append_records(&self, records: Vec<Record>) -> Result<(), i16> {
        self.grew(records.len());
        let batches = encode(records).map_err(|e| {
            tracing::error!(group = %self.name, error = %e, "could not encode group records");
            ResponseError::CoordinatorNotAvailable.code()
        })?;
        match self.log.append(batches).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(LogError::Fenced)) => Err(ResponseError::NotCoordinator.code()),
            _ => {
                // Memory may now differ from the chain: reopen from it next time.
                self.close();
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Notes `records` appended to the chain.
    fn grew(&self, records: usize) {
        let mut plan = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        plan.since = plan.since.saturating_add(records);
    }

    /// Writes a snapshot of the group when the chain has grown enough since the last one and
    /// no write is under way (one that is would have to wait), then moves the log start to it.
    async fn maybe_snapshot(&self) {
        // The planted bug keeps offsets in memory only: a snapshot would make them durable.
        if self.bug == Some(crate::bugs::Bug::OffsetsInMemory) || self.is_closed() {
            return;
        }
        {
            let plan = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            if plan.since < plan.due_at {
                return;
            }
        }
        let Ok(all) = self.writes.try_write() else {
            return;
        };
        // Appended under the state lock, like generations, so the queue keeps memory's order.
        let (appended, len) = {
            let s = self.state.lock().await;
            let records = snapshot_records(&s);
            let len = records.len();
            match encode(records) {
                Ok(batches) => (self.log.append(batches), len),
                Err(e) => {
                    tracing::error!(group = %self.name, error = %e, "could not encode a snapshot");
                    return;
                }
            }
        };
        let outcome = appended.await;
        drop(all);
        let base = match outcome {
            Ok(Ok(base)) => base,
            Ok(Err(LogError::Fenced)) => {
                self.close();
                return;
            }
            other => {
                // Landed or not, the chain replays to what memory holds: try again later.
                tracing::info!(group = %self.name, outcome = ?other.map(|r| r.err()),
                    "group snapshot not written");
                let mut plan = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
                plan.due_at = plan.since.saturating_add(SNAPSHOT_RETRY_RECORDS);
                return;
            }
        };
        reached!(
            "group.snapshot_written",
            "a coordinator restated its group's state in one commit of the chain"
        );
        *self.snapshots.lock().unwrap_or_else(|e| e.into_inner()) = Snapshots::after_snapshot(len);
        match self.log.trim_to(base).await {
            Ok(Ok(_)) => reached!(
                "group.chain_trimmed",
                "a group's log start moved up to its newest snapshot"
            ),
            Ok(Err(e)) => tracing::info!(group = %self.name, error = %e,
                "could not move the group's log start to its snapshot"),
            Err(_) => {}
        }
    }

    /// Committed offsets of the given partitions (all when `None`).
    pub async fn committed(
        &self,
        wanted: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<(i64, Option<String>)>)> {
        let s = self.state.lock().await;
        match wanted {
            Some(list) => list
                .into_iter()
                .map(|k| {
                    let v = s.offsets.get(&k).cloned();
                    (k, v)
                })
                .collect(),
            None => s
                .offsets
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        }
    }
}

impl State {
    /// Whether `epoch` is older than the producer's last marker here.
    fn fenced(&self, producer_id: i64, epoch: i16) -> bool {
        self.marker_epochs
            .get(&producer_id)
            .is_some_and(|m| epoch < *m)
    }
}

fn end_pending(s: &mut State, producer_id: i64, commit: bool) {
    if let Some(offsets) = s.txn_offsets.remove(&producer_id) {
        if commit {
            s.offsets.extend(offsets);
        }
    }
}

/// Applies one record of the chain to `s`. A snapshot's first record resets the durable state
/// and returns how many records the snapshot holds after it.
fn apply_record(s: &mut State, key: &str, value: &str) -> Option<usize> {
    if key == SNAPSHOT_KEY {
        let len = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .and_then(|v| v["records"].as_u64());
        always!(
            len.is_some(),
            "group.records_well_formed",
            "every record of a group's chain is a generation, an offset commit, a transaction marker or a snapshot that parses",
            "snapshot record {value:?}"
        );
        // The generation only grows: the snapshot restates it, nothing to forget.
        s.offsets.clear();
        s.txn_offsets.clear();
        s.marker_epochs.clear();
        s.marker_coordinators.clear();
        return Some(usize::try_from(len.unwrap_or(0)).unwrap_or(usize::MAX));
    }
    if let Some(pid) = key.strip_prefix("e\u{0}") {
        let pid = pid.parse::<i64>();
        let v = serde_json::from_str::<serde_json::Value>(value).ok();
        let epoch = v
            .as_ref()
            .and_then(|v| v["epoch"].as_i64())
            .and_then(|e| i16::try_from(e).ok());
        let coordinator = v
            .as_ref()
            .and_then(|v| v["coordinator_epoch"].as_i64())
            .and_then(|e| i32::try_from(e).ok());
        always!(
            pid.is_ok() && v.is_some(),
            "group.records_well_formed",
            "every record of a group's chain is a generation, an offset commit, a transaction marker or a snapshot that parses",
            "marker epochs record {key:?} = {value:?}"
        );
        if let Ok(pid) = pid {
            if let Some(e) = epoch {
                let known = s.marker_epochs.entry(pid).or_insert(e);
                *known = (*known).max(e);
            }
            if let Some(c) = coordinator {
                let known = s.marker_coordinators.entry(pid).or_insert(c);
                *known = (*known).max(c);
            }
        }
        return None;
    }
    if let Some(pid) = key.strip_prefix("m\u{0}") {
        let pid = pid.parse::<i64>();
        let marker = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .and_then(|v| {
                let commit = match v["result"].as_str()? {
                    "commit" => true,
                    "abort" => false,
                    _ => return None,
                };
                let coordinator =
                    i32::try_from(v["coordinator_epoch"].as_i64().unwrap_or(0)).ok()?;
                Some((
                    commit,
                    i16::try_from(v["epoch"].as_i64()?).ok()?,
                    coordinator,
                ))
            });
        always!(
            pid.is_ok() && marker.is_some(),
            "group.records_well_formed",
            "every record of a group's chain is a generation, an offset commit or a transaction marker that parses",
            "marker record {key:?} = {value:?}"
        );
        if let (Ok(pid), Some((commit, epoch, coordinator))) = (pid, marker) {
            end_pending(s, pid, commit);
            let known = s.marker_epochs.entry(pid).or_insert(epoch);
            *known = (*known).max(epoch);
            let known = s.marker_coordinators.entry(pid).or_insert(coordinator);
            *known = (*known).max(coordinator);
        }
        return None;
    }
    if key == "generation" {
        let parsed = value.parse::<i32>();
        always!(
            parsed.is_ok(),
            "group.records_well_formed",
            "every record of a group's chain is a generation or an offset commit that parses",
            "generation record {value:?}"
        );
        let generation = parsed.unwrap_or(0);
        always!(
            generation >= s.generation,
            "group.generation_never_decreases",
            "the generations recorded in a group's chain never go back",
            "generation {generation} recorded after generation {}",
            s.generation
        );
        s.generation = s.generation.max(generation);
        return None;
    }
    let mut parts = key.split('\u{0}');
    let mut txn = None;
    let parsed = match (parts.next(), parts.next(), parts.next()) {
        (Some("o"), Some(topic), Some(p)) => p.parse::<i32>().ok().and_then(|partition| {
            let v = serde_json::from_str::<serde_json::Value>(value).ok()?;
            Some((topic, partition, v))
        }),
        (Some("t"), Some(pid), Some(topic)) => {
            txn = pid.parse::<i64>().ok();
            parts
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(|partition| {
                    let v = serde_json::from_str::<serde_json::Value>(value).ok()?;
                    Some((topic, partition, v))
                })
        }
        _ => None,
    };
    let offset = parsed.as_ref().and_then(|(_, _, v)| v["offset"].as_i64());
    always!(
        offset.is_some(),
        "group.offset_records_well_formed",
        "every other record of a group's chain is an offset commit: topic, partition and an offset that parse",
        "record {key:?} = {value:?}"
    );
    if let Some((topic, partition, v)) = parsed {
        let offset = v["offset"].as_i64().unwrap_or(-1);
        let meta = v["metadata"].as_str().map(str::to_owned);
        let offsets = match txn {
            Some(pid) => {
                let epoch = v["epoch"].as_i64().and_then(|e| i16::try_from(e).ok());
                if epoch.is_none_or(|e| s.fenced(pid, e)) {
                    // Written after its transaction's marker: that transaction has ended.
                    return None;
                }
                s.txn_offsets.entry(pid).or_default()
            }
            None => &mut s.offsets,
        };
        offsets.insert((topic.to_string(), partition), (offset, meta));
    }
    None
}

/// Group records as one record batch, ready to append to the chain.
pub(crate) fn encode(mut records: Vec<Record>) -> Result<Vec<(batch::BatchHeader, Bytes)>, String> {
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
    }
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).map_err(|e| e.to_string())?;
    batch::validate(&buf.freeze()).map_err(|e| e.to_string())
}

impl crate::coordinators::Coordinator for Group {
    fn is_closed(&self) -> bool {
        Group::is_closed(self)
    }
    fn close(&self) {
        Group::close(self)
    }
    async fn verify(&self) {
        Group::verify(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_records_encode_and_replay() {
        let batches = encode(vec![
            record(offset_key("t", 0), r#"{"offset":5,"metadata":null}"#.into()),
            record(offset_key("t", 1), r#"{"offset":7,"metadata":"m"}"#.into()),
            record("generation".into(), "3".into()),
        ])
        .unwrap();
        let mut state = State::default();
        for (_, raw) in batches {
            let mut raw = raw;
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut raw).unwrap();
            for r in set.records {
                let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                apply_record(&mut state, &k, &v);
            }
        }
        assert_eq!(state.generation, 3);
        assert_eq!(state.offsets[&("t".to_string(), 0)], (5, None));
        assert_eq!(state.offsets[&("t".to_string(), 1)], (7, Some("m".into())));
    }

    fn replay(records: &[Record]) -> State {
        let mut state = State::default();
        for r in records {
            let k = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            apply_record(&mut state, &k, &v);
        }
        state
    }

    fn durable(s: &State) -> impl PartialEq + std::fmt::Debug {
        (
            s.generation,
            s.offsets.clone(),
            s.txn_offsets.clone(),
            s.marker_epochs.clone(),
            s.marker_coordinators.clone(),
        )
    }

    #[test]
    fn a_snapshot_replays_to_the_state_it_restates_wherever_replay_begins() {
        let marker = |epoch: i16, coordinator: i32| {
            format!(r#"{{"result":"commit","epoch":{epoch},"coordinator_epoch":{coordinator}}}"#)
        };
        let chain = vec![
            record("generation".into(), "4".into()),
            record(offset_key("t", 0), r#"{"offset":5,"metadata":null}"#.into()),
            record(
                txn_offset_key(7, "t", 2),
                r#"{"offset":8,"epoch":0}"#.into(),
            ),
            record(txn_marker_key(7), marker(1, 3)),
            record(
                txn_offset_key(7, "t", 1),
                r#"{"offset":9,"epoch":1}"#.into(),
            ),
            record(
                txn_offset_key(8, "u", 0),
                r#"{"offset":3,"epoch":0}"#.into(),
            ),
            record(offset_key("t", 0), r#"{"offset":6,"metadata":"m"}"#.into()),
        ];
        let state = replay(&chain);
        assert!(state.txn_offsets.contains_key(&7) && state.txn_offsets.contains_key(&8));
        let snapshot = snapshot_records(&state);
        // From the snapshot alone, and from the whole chain with the snapshot after it.
        assert_eq!(durable(&replay(&snapshot)), durable(&state));
        let mut longer = chain.clone();
        longer.extend(snapshot.iter().cloned());
        assert_eq!(durable(&replay(&longer)), durable(&state));
        // A commit that landed before the snapshot without being in it is undone by it.
        let mut stray = chain;
        stray.push(record(offset_key("t", 5), r#"{"offset":1}"#.into()));
        stray.extend(snapshot.iter().cloned());
        assert_eq!(durable(&replay(&stray)), durable(&state));
        // The snapshot says how many records follow its first.
        let mut s = State::default();
        let head = &snapshot[0];
        let v = String::from_utf8(head.value.clone().unwrap().to_vec()).unwrap();
        assert_eq!(
            apply_record(&mut s, SNAPSHOT_KEY, &v),
            Some(snapshot.len() - 1)
        );
    }
}
