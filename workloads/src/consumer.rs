//! A consumer that behaves like a real Kafka client's.
//!
//! It fetches into a buffer (one request for every partition a broker leads, or one partition at
//! a time) with a per-partition byte limit, and hands records to the application at most
//! `max_poll_records` per poll, so that its position, and so its commits, often fall inside a
//! record batch. It commits after every poll that moved it; it restarts now and then from its
//! committed offsets (an application crash), and after every rebalance; it seeks back now and
//! then to read offsets again. Rarely, the application seeks to an offset it keeps itself (an
//! external offset store) that lies past the log end: the fetch gets OFFSET_OUT_OF_RANGE and the
//! consumer resets to the earliest or latest offset, as its `auto.offset.reset` says. A consumer
//! with fixed partitions commits as a standalone consumer of a group of its own; a group member
//! joins, heartbeats and rejoins, and now and then a commit it made before a rebalance reaches
//! the coordinator only after it rejoined, with its old generation (a zombie commit: an async
//! commit in flight across the rebalance), and is refused ILLEGAL_GENERATION.

use crate::client::group::{needs_rejoin, Membership};
use crate::client::{Client, OffsetSpec};
use crate::codec::{FetchSpec, FetchedRecord};
use crate::error::ClientError;
use crate::mix::{profile_map, ConsumerProfile};
use crate::net::Connector;
use crate::recorder::Recorder;
use crate::Topic;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::{
    AssignValue, ClientCounters, ClientValue, CommitValue, HiddenRange, PartitionOffset, PollValue,
    SeekReason, SeekValue, TopicPartition,
};
use riptide_coverage::reached;
use riptide_wire::ResponseError;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// How often a group member heartbeats between polls.
const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Largest fetch response in bytes (all partitions together).
const FETCH_MAX_BYTES: i32 = 1 << 20;
/// Chance per step that the application seeks to an offset of its own past the log end.
const SEEK_PAST_END: f64 = 0.002;
/// How far past its position that offset lies: beyond any log a simulation writes.
const PAST_END: std::ops::Range<i64> = 1_000_000..10_000_000;
/// Chance that a member which rejoined sends, late, the commit it had queued before.
const ZOMBIE_COMMIT: f64 = 0.3;

/// Who a consumer is.
#[derive(Clone, Debug)]
pub enum ConsumerKind {
    /// Reads these partitions; commits as a standalone consumer of `ConsumerSetup::group`.
    Assigned(Vec<(String, i32)>),
    /// A member of `ConsumerSetup::group`, subscribed to every topic.
    Member,
}

#[derive(Clone, Debug)]
pub struct ConsumerSetup {
    pub process: u64,
    pub name: String,
    pub topics: Vec<Topic>,
    pub kind: ConsumerKind,
    pub group: String,
    pub profile: ConsumerProfile,
    /// How long a fetch may wait for data.
    pub fetch_max_wait_ms: i32,
    pub seed: u64,
    /// Reads committed records only (isolation level read_committed).
    pub read_committed: bool,
}

/// One assigned partition.
struct Position {
    /// The next offset to hand to the application.
    next: i64,
    /// Fetched, not yet handed out.
    buffer: VecDeque<FetchedRecord>,
    /// The highest offset committed (or started from): commits only move forward.
    committed: i64,
    /// First and last offset of the batch the last handed-out record came in.
    last_batch: Option<(i64, i64)>,
    /// Placed past the log end by the application, not yet reset: not committed.
    out_of_range: bool,
    /// Where the last fetch's batches ended: once the buffer is handed out, the position moves
    /// here, past control batches and aborted records it held (as Kafka consumers move).
    skip_to: i64,
}

struct Consumer<'a, C: Connector> {
    client: &'a mut Client<C>,
    rec: &'a Recorder,
    setup: &'a ConsumerSetup,
    rng: ChaCha8Rng,
    membership: Membership,
    /// `auto.offset.reset`: where an out-of-range position goes (latest, else earliest).
    reset_to_latest: bool,
    /// Partitions whose last fetch was out of range, to reset after the poll.
    out_of_range: Vec<(String, i32)>,
    started: bool,
    parts: BTreeMap<(String, i32), Position>,
    /// Round-robin cursors: which partition a single-partition fetch takes next, and which
    /// partition a poll hands out first.
    fetch_cursor: usize,
    poll_cursor: usize,
    next_heartbeat: Instant,
    /// No commit before this (the drawn commit interval).
    next_commit: Instant,
    counters: ClientCounters,
}

/// Runs one consumer until `until`.
pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &ConsumerSetup,
    until: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(setup.seed);
    let reset_to_latest = rng.gen_bool(0.5);
    let mut c = Consumer {
        client,
        rec,
        setup,
        rng,
        membership: Membership::new(&setup.group),
        reset_to_latest,
        out_of_range: Vec::new(),
        started: false,
        parts: BTreeMap::new(),
        fetch_cursor: 0,
        poll_cursor: 0,
        next_heartbeat: Instant::now(),
        next_commit: Instant::now(),
        counters: ClientCounters::default(),
    };
    c.describe(None);
    c.run(until).await;
    if c.member() && c.started {
        c.client.leave_group(&mut c.membership).await;
    }
    let counters = std::mem::take(&mut c.counters);
    c.describe(Some(counters));
}

fn text(r: &FetchedRecord) -> String {
    r.value
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl<C: Connector> Consumer<'_, C> {
    fn member(&self) -> bool {
        matches!(self.setup.kind, ConsumerKind::Member)
    }

    fn describe(&self, counters: Option<ClientCounters>) {
        let role = if self.member() { "member" } else { "consumer" };
        let mut profile = profile_map(&self.setup.profile);
        profile.insert("group".into(), self.setup.group.clone().into());
        self.rec.event(
            self.setup.process,
            ClientValue {
                role: role.into(),
                name: self.setup.name.clone(),
                read_committed: self.setup.read_committed,
                profile,
                counters,
                ..ClientValue::default()
            },
        );
    }

    async fn run(&mut self, until: Instant) {
        while Instant::now() < until {
            if !self.started {
                if !self.start().await {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            }
            if self.member() && Instant::now() >= self.next_heartbeat {
                self.next_heartbeat = Instant::now() + HEARTBEAT;
                if let Err(e) = self.client.heartbeat(&mut self.membership).await {
                    if needs_rejoin(&e) {
                        reached!("consumer.heartbeat_rejoin", "a member's heartbeat said rejoin (rebalance, new generation, unknown member)");
                        self.started = false;
                        continue;
                    }
                }
            }
            let profile = &self.setup.profile;
            if self.rng.gen_bool(profile.restart) {
                self.restart().await;
                continue;
            }
            if self.rng.gen_bool(profile.seek_back) {
                self.seek_back();
            }
            if self.rng.gen_bool(SEEK_PAST_END) {
                self.seek_past_end();
            }
            match self.poll().await {
                Some(0) if self.parts.is_empty() => {
                    // A member with nothing assigned: wait for the next rebalance.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(_) => self.commit().await,
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            for key in std::mem::take(&mut self.out_of_range) {
                self.reset(key).await;
            }
        }
    }

    /// (Re)starts from the committed offsets: joins first if a member. Records the assignment
    /// and a `committed` seek per partition. False if it could not.
    async fn start(&mut self) -> bool {
        // What a member that rejoins had yet to commit, under its old generation.
        let queued = (self.member() && self.membership.generation >= 0).then(|| {
            let moved = self.uncommitted();
            (self.membership.clone(), moved)
        });
        self.rec.invoke(self.setup.process, AssignValue::default());
        let assigned = match &self.setup.kind {
            ConsumerKind::Assigned(parts) => Ok(parts.clone()),
            ConsumerKind::Member => {
                self.client
                    .join_group(&mut self.membership, &self.setup.topics)
                    .await
            }
        };
        let offsets = match assigned {
            Ok(parts) if parts.is_empty() => Ok(Vec::new()),
            Ok(parts) => {
                self.client
                    .committed_offsets(&mut self.membership, &parts)
                    .await
            }
            Err(e) => Err(e),
        };
        let offsets = match offsets {
            Ok(o) => o,
            Err(e) => {
                self.rec.failed(
                    self.setup.process,
                    AssignValue::default(),
                    true,
                    e.to_string(),
                );
                return false;
            }
        };
        let assign = AssignValue {
            partitions: offsets
                .iter()
                .map(|((t, p), _)| TopicPartition::new(t, *p))
                .collect(),
        };
        self.rec.ok(self.setup.process, assign);
        self.parts.clear();
        for ((topic, partition), offset) in offsets {
            let start = offset.max(0);
            let seek = SeekValue::new(&topic, partition, start).because(SeekReason::Committed);
            self.rec.invoke(self.setup.process, seek.clone());
            self.rec.ok(self.setup.process, seek);
            self.parts.insert(
                (topic, partition),
                Position {
                    next: start,
                    buffer: VecDeque::new(),
                    committed: start,
                    last_batch: None,
                    out_of_range: false,
                    skip_to: start,
                },
            );
        }
        self.started = true;
        self.next_heartbeat = Instant::now() + HEARTBEAT;
        if let Some((old, moved)) = queued {
            let rejoined = old.member_id == self.membership.member_id
                && old.generation != self.membership.generation;
            if rejoined && !moved.is_empty() && self.rng.gen_bool(ZOMBIE_COMMIT) {
                self.zombie_commit(old, moved).await;
            }
        }
        true
    }

    /// Every partition whose position moved past its last commit.
    fn uncommitted(&self) -> Vec<(String, i32, i64)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.next > p.committed && !p.out_of_range)
            .map(|((t, p), pos)| (t.clone(), *p, pos.next))
            .collect()
    }

    /// A commit queued before the rebalance reaches the (current) coordinator after the member
    /// rejoined, with the old generation, as an async commit in flight across a rebalance does.
    /// Recorded as the commit it is; the coordinator must refuse it.
    async fn zombie_commit(&mut self, mut old: Membership, moved: Vec<(String, i32, i64)>) {
        old.coordinator = self.membership.coordinator.clone();
        let value = CommitValue {
            group: Some(self.setup.group.clone()),
            offsets: moved
                .iter()
                .map(|(t, p, o)| PartitionOffset {
                    topic: t.clone(),
                    partition: *p,
                    offset: *o,
                })
                .collect(),
        };
        let process = self.setup.process;
        self.rec.invoke(process, value.clone());
        match self.client.commit_offsets(&mut old, &moved).await {
            Ok(()) => {
                self.rec.ok(process, value);
            }
            Err(e) => {
                if e.error() == Some(ResponseError::IllegalGeneration) {
                    reached!(
                        "consumer.zombie_commit_refused",
                        "a commit sent with the generation before a rebalance was refused ILLEGAL_GENERATION"
                    );
                }
                self.rec
                    .failed(process, value, e.is_definite(), e.to_string());
            }
        }
        if old.coordinator.is_none() {
            // The coordinator moved: the member finds the new one too.
            self.membership.coordinator = None;
        }
    }

    /// An application crash: everything in memory is gone; a member may or may not have left
    /// its group cleanly.
    async fn restart(&mut self) {
        reached!(
            "consumer.restarted",
            "a consumer restarted from its committed offsets (an application crash)"
        );
        self.counters.restarts += 1;
        if self.member() {
            if self.rng.gen_bool(0.5) {
                self.client.leave_group(&mut self.membership).await;
            }
            self.membership = Membership::new(&self.setup.group);
        }
        self.parts.clear();
        self.started = false;
    }

    /// Goes back a little on one partition to read again what it read before.
    fn seek_back(&mut self) {
        let candidates: Vec<(String, i32)> = self
            .parts
            .iter()
            .filter(|(_, p)| p.next > 0)
            .map(|(k, _)| k.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let key = candidates[self.rng.gen_range(0..candidates.len())].clone();
        let reach = 3 * self.setup.profile.max_poll_records.max(1) as i64;
        let Some(pos) = self.parts.get_mut(&key) else {
            return;
        };
        let back = self.rng.gen_range(1..=pos.next.min(reach));
        pos.next -= back;
        pos.buffer.clear();
        pos.skip_to = pos.next;
        pos.last_batch = None;
        reached!(
            "consumer.seek_back",
            "a consumer went back to read offsets again"
        );
        let seek = SeekValue::new(&key.0, key.1, pos.next).because(SeekReason::Back);
        self.rec.invoke(self.setup.process, seek.clone());
        self.rec.ok(self.setup.process, seek);
        self.counters.seeks_back += 1;
    }

    /// The application seeks one partition to an offset it keeps itself, past the log end (a
    /// stale external offset store): the next fetch of it is out of range.
    fn seek_past_end(&mut self) {
        let keys: Vec<(String, i32)> = self.parts.keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let key = keys[self.rng.gen_range(0..keys.len())].clone();
        let ahead = self.rng.gen_range(PAST_END);
        let Some(pos) = self.parts.get_mut(&key) else {
            return;
        };
        pos.next += ahead;
        pos.buffer.clear();
        pos.skip_to = pos.next;
        pos.last_batch = None;
        pos.out_of_range = true;
        reached!(
            "consumer.seek_past_end",
            "the application sought a partition to an offset of its own past the log end"
        );
        let seek = SeekValue::new(&key.0, key.1, pos.next).because(SeekReason::External);
        self.rec.invoke(self.setup.process, seek.clone());
        self.rec.ok(self.setup.process, seek);
    }

    /// OFFSET_OUT_OF_RANGE: moves to the earliest or latest offset (ListOffsets), as
    /// `auto.offset.reset` says, and records the move as a `reset` seek. If the lookup fails the
    /// position stays, and the next fetch tries again.
    async fn reset(&mut self, key: (String, i32)) {
        let which = if self.reset_to_latest {
            OffsetSpec::Latest
        } else {
            OffsetSpec::Earliest
        };
        if !self.parts.contains_key(&key) {
            return;
        }
        let offset = match self.client.list_offsets(&key.0, key.1, which).await {
            Ok(offset) if offset >= 0 => offset,
            Ok(_) | Err(_) => return,
        };
        let Some(pos) = self.parts.get_mut(&key) else {
            return;
        };
        reached!(
            "consumer.offset_reset",
            "a fetch out of range moved the consumer to the earliest or latest offset (auto.offset.reset)"
        );
        pos.next = offset;
        pos.buffer.clear();
        pos.skip_to = pos.next;
        pos.last_batch = None;
        pos.out_of_range = false;
        let seek = SeekValue::new(&key.0, key.1, offset).because(SeekReason::Reset);
        self.rec.invoke(self.setup.process, seek.clone());
        self.rec.ok(self.setup.process, seek);
    }

    /// One poll: fetches when nothing is buffered, then hands out up to `max_poll_records`.
    /// `Some(records handed out)`, or `None` if every fetch failed.
    async fn poll(&mut self) -> Option<usize> {
        let process = self.setup.process;
        let invoke = self.rec.invoke(process, PollValue::default());
        let mut v = PollValue::default();
        if self.parts.values().all(|p| p.buffer.is_empty()) && !self.parts.is_empty() {
            self.client.witness().set_op(Some(invoke));
            let fetched = self.fetch(&mut v).await;
            self.client.witness().set_op(None);
            if let Err(e) = fetched {
                // Reads have no effect: a failed poll is always `fail`.
                self.rec
                    .failed(process, PollValue::default(), true, e.to_string());
                return None;
            }
        }
        let keys: Vec<(String, i32)> = self.parts.keys().cloned().collect();
        let mut handed = 0;
        let max = self.setup.profile.max_poll_records.max(1) as usize;
        for i in 0..keys.len() {
            let key = &keys[(self.poll_cursor + i) % keys.len()];
            let Some(pos) = self.parts.get_mut(key) else {
                continue;
            };
            while handed < max {
                let Some(r) = pos.buffer.pop_front() else {
                    break;
                };
                // As real clients do (the Java client's fetcher), records below the position are
                // not handed out again. The fetch already drops those below its own offset, so
                // only a response with a partition's records out of order (a batch sent twice)
                // gets here: the reference broker never sends one.
                if r.offset < pos.next {
                    reached!("consumer.records_below_position_skipped", "a fetch returned records below the position (a batch fetched from inside), not handed out");
                    continue;
                }
                v = v.record(&key.0, key.1, r.offset, &text(&r));
                pos.next = r.offset + 1;
                pos.last_batch = Some((r.batch_base, r.batch_last));
                handed += 1;
            }
            if pos.buffer.is_empty() && pos.skip_to > pos.next {
                reached!(
                    "consumer.moved_past_hidden_offsets",
                    "a consumer moved past offsets that held no data for it (markers, aborted records)"
                );
                pos.next = pos.skip_to;
            }
        }
        self.poll_cursor = self.poll_cursor.wrapping_add(1);
        self.rec.ok(process, v);
        Some(handed)
    }

    /// Fetches into the buffers: every partition (grouped by leader, one request each) or the
    /// next one in turn. Records what each fetch started from and the watermarks seen. `Err` if
    /// no fetch succeeded.
    async fn fetch(&mut self, v: &mut PollValue) -> Result<(), ClientError> {
        let keys: Vec<(String, i32)> = self.parts.keys().cloned().collect();
        let wanted: Vec<(String, i32)> = if self.setup.profile.multi_partition_fetch {
            keys
        } else {
            let k = keys[self.fetch_cursor % keys.len()].clone();
            self.fetch_cursor = self.fetch_cursor.wrapping_add(1);
            vec![k]
        };
        let mut by_leader: BTreeMap<String, Vec<FetchSpec>> = BTreeMap::new();
        let mut last_error = None;
        for (topic, partition) in wanted {
            match self.client.leader_addr(&topic, partition).await {
                Ok(addr) => {
                    let offset = self.parts[&(topic.clone(), partition)].next;
                    by_leader.entry(addr).or_default().push(FetchSpec {
                        topic,
                        partition,
                        offset,
                        max_bytes: self.setup.profile.fetch_partition_bytes.max(1),
                    });
                }
                Err(e) => {
                    if e.needs_metadata_refresh() {
                        self.client.mark_stale();
                    }
                    last_error = Some(e);
                }
            }
        }
        let mut fetched = false;
        let mut out_of_range = Vec::new();
        for (addr, specs) in by_leader {
            let results = match self
                .client
                .fetch_many(&addr, &specs, self.setup.fetch_max_wait_ms, FETCH_MAX_BYTES)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // A leader that cannot be reached (gone in a scale-in, crashed, cut off)
                    // may lead nothing any more: ask again, as real consumers do, instead of
                    // fetching from it until something else refreshes the metadata.
                    if e.needs_metadata_refresh() {
                        self.client.mark_stale();
                    }
                    last_error = Some(e);
                    continue;
                }
            };
            self.counters.fetches += 1;
            if specs.len() > 1 {
                reached!(
                    "consumer.multi_partition_fetch",
                    "one fetch asked a broker for several partitions"
                );
                self.counters.multi_partition_fetches += 1;
            }
            let mut inside = false;
            for (spec, result) in specs.iter().zip(results) {
                let r = match result {
                    Ok(r) => r,
                    Err(e) => {
                        if e.error() == Some(ResponseError::OffsetOutOfRange) {
                            out_of_range.push((spec.topic.clone(), spec.partition));
                        }
                        last_error = Some(e);
                        continue;
                    }
                };
                fetched = true;
                *v = std::mem::take(v)
                    .fetch_offset(&spec.topic, spec.partition, spec.offset)
                    .hwm(&spec.topic, spec.partition, r.high_watermark);
                if self.setup.read_committed {
                    *v = std::mem::take(v).lso(&spec.topic, spec.partition, r.last_stable_offset);
                }
                for &(from, to, why) in &r.hidden {
                    v.hidden.push(HiddenRange {
                        topic: spec.topic.clone(),
                        partition: spec.partition,
                        from,
                        to,
                        why,
                    });
                }
                inside |= r
                    .records
                    .first()
                    .is_some_and(|f| f.batch_base < spec.offset);
                if let Some(pos) = self.parts.get_mut(&(spec.topic.clone(), spec.partition)) {
                    pos.buffer.extend(r.records);
                    if let Some(next) = r.next_offset {
                        pos.skip_to = next;
                    }
                }
            }
            if inside {
                reached!(
                    "consumer.fetch_inside_batch",
                    "a fetch from inside a batch got the whole batch back, from its base"
                );
                self.counters.fetches_inside_batch += 1;
            }
        }
        // Reset after the poll completes: a process has one operation in flight at a time.
        self.out_of_range.extend(out_of_range);
        match (fetched, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Commits every partition whose position moved past its last commit, at most once per
    /// commit interval.
    async fn commit(&mut self) {
        if Instant::now() < self.next_commit {
            return;
        }
        let moved = self.uncommitted();
        if moved.is_empty() {
            return;
        }
        let value = CommitValue {
            group: Some(self.setup.group.clone()),
            offsets: moved
                .iter()
                .map(|(t, p, o)| PartitionOffset {
                    topic: t.clone(),
                    partition: *p,
                    offset: *o,
                })
                .collect(),
        };
        let process = self.setup.process;
        self.next_commit =
            Instant::now() + Duration::from_millis(self.setup.profile.commit_interval_ms);
        self.rec.invoke(process, value.clone());
        match self
            .client
            .commit_offsets(&mut self.membership, &moved)
            .await
        {
            Ok(()) => {
                self.rec.ok(process, value);
                self.counters.commits += 1;
                let mut inside = false;
                for (t, p, o) in &moved {
                    if let Some(pos) = self.parts.get_mut(&(t.clone(), *p)) {
                        pos.committed = *o;
                        inside |= pos
                            .last_batch
                            .is_some_and(|(base, last)| base < *o && *o <= last);
                    }
                }
                if inside {
                    reached!(
                        "consumer.commit_inside_batch",
                        "a consumer committed an offset inside a record batch"
                    );
                    self.counters.commits_inside_batch += 1;
                }
            }
            Err(e) => {
                self.rec
                    .failed(process, value, e.is_definite(), e.to_string());
                if !e.is_definite() {
                    reached!(
                        "consumer.commit_outcome_unknown",
                        "an offset commit's outcome is unknown"
                    );
                }
                if self.member() && needs_rejoin(&e) {
                    reached!(
                        "consumer.commit_refused_rejoin",
                        "a member's commit was refused by a rebalance: it rejoins"
                    );
                    self.started = false;
                }
            }
        }
    }
}
