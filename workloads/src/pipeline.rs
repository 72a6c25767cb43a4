//! Consume-transform-produce pipelines (Jepsen's shape; Kafka's exactly-once): a transactional
//! producer that, in each transaction, polls its input partitions (read_committed), sends one
//! output record per input record to the output topic (the send's `source` is the input's
//! value, as the `exactly-once` checker reads it), commits its input positions inside the
//! transaction (AddOffsetsToTxn, TxnOffsetCommit) and ends with a commit or an abort, as the
//! seed says. One transaction is one `txn` op: its poll, then its sends, as micro-ops, with the
//! group and the offsets it committed.
//!
//! Each pipeline consumes input partitions no other pipeline consumes (the roster splits them),
//! as a standalone consumer of a group of its own, starting from that group's committed
//! offsets. After a transaction that did not commit (an abort, a failure, an unknown outcome)
//! it starts again from the committed offsets, so its inputs are processed again; it records
//! that start as an `assign` and one `committed` seek per partition, as consumers do.
//!
//! Inputs are identified by value (the checker does so): a value the pipeline meets at a second
//! position (a plain producer's retry wrote it twice) was processed at its first one, and gets
//! no second output.
//!
//! A poll that returns nothing and moves no position ends an empty transaction: nothing sent,
//! no EndTxn (Kafka clients commit an empty transaction without a request); it is recorded `ok`
//! with its poll.

use crate::client::group::Membership;
use crate::client::OffsetSpec;
use crate::codec::FetchSpec;
use crate::error::ClientError;
use crate::net::Connector;
use crate::recorder::Recorder;
use crate::transactions::{fill_offsets, Fault, Session, TxnSetup};
use crate::{Client, Topic};
use rand::Rng;
use riptide_checker::history::{
    AssignValue, HiddenRange, MicroOp, PartitionOffset, PollValue, SeekReason, SeekValue,
    SendValue, TopicPartition, TxnEnd, TxnValue,
};
use riptide_coverage::reached;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Most input records one transaction takes.
const MAX_RECORDS: std::ops::RangeInclusive<usize> = 1..=8;
/// Most record bytes per partition and per fetch.
const PARTITION_BYTES: i32 = 64 * 1024;
const FETCH_MAX_BYTES: i32 = 1 << 20;

/// What a pipeline consumes and where it writes.
#[derive(Clone, Debug)]
pub struct PipelineSetup {
    /// The input partitions it (alone) consumes.
    pub inputs: Vec<(String, i32)>,
    pub output: Topic,
    /// The group whose offsets its transactions commit.
    pub group: String,
    pub fetch_max_wait_ms: i32,
}

type Tp = (String, i32);

/// One input record a poll took.
struct Input {
    topic: String,
    partition: i32,
    offset: i64,
    value: String,
}

/// Per input partition: the records a fetch returned (offset, value), and where its batches
/// ended.
type Fetched = BTreeMap<Tp, (Vec<(i64, String)>, Option<i64>)>;

/// Takes up to `max` of the fetched records, partitions in turn from the `cursor`-th, each
/// partition's in offset order from its position (records below it are not handed out again,
/// as real clients do); returns them and every partition's position after them. A partition
/// whose records were all taken moves on to where its fetch's batches ended: past the control
/// batches and aborted records among and after them.
fn take(
    fetched: &Fetched,
    positions: &BTreeMap<Tp, i64>,
    cursor: usize,
    max: usize,
) -> (Vec<Input>, BTreeMap<Tp, i64>) {
    let mut next = positions.clone();
    let mut taken = Vec::new();
    let keys: Vec<&Tp> = fetched.keys().collect();
    for i in 0..keys.len() {
        let key = keys[(cursor + i) % keys.len()];
        let (records, batches_end) = &fetched[key];
        let Some(pos) = next.get_mut(key) else {
            continue;
        };
        let mut all = true;
        for (offset, v) in records {
            if *offset < *pos {
                continue;
            }
            if taken.len() >= max {
                all = false;
                break;
            }
            taken.push(Input {
                topic: key.0.clone(),
                partition: key.1,
                offset: *offset,
                value: v.clone(),
            });
            *pos = offset + 1;
        }
        if let (true, Some(end)) = (all, batches_end) {
            if *end > *pos {
                reached!(
                    "txn.pipeline_moved_past_hidden",
                    "a pipeline moved its position past offsets that held no data for it"
                );
                *pos = *end;
            }
        }
    }
    (taken, next)
}

/// Whether `r` is its value's first position (remembered the first time the value is met):
/// a value met again elsewhere was written twice (a plain producer's retry) and is one input.
fn first_position(first_seen: &mut BTreeMap<String, (Tp, i64)>, r: &Input) -> bool {
    let here = ((r.topic.clone(), r.partition), r.offset);
    *first_seen
        .entry(r.value.clone())
        .or_insert_with(|| here.clone())
        == here
}

/// What one poll gave: its micro-op, the records taken, every input's position after it.
struct Polled {
    poll: PollValue,
    taken: Vec<Input>,
    next: BTreeMap<Tp, i64>,
}

struct Pipeline<'a, C: Connector> {
    s: Session<'a, C>,
    p: &'a PipelineSetup,
    membership: Membership,
    /// Next offset to consume per input partition.
    positions: BTreeMap<Tp, i64>,
    /// The group's committed offset per input partition, as last read or committed.
    committed: BTreeMap<Tp, i64>,
    /// Positions are the committed offsets (read since the last transaction that did not
    /// commit).
    started: bool,
    /// Where each input value was first met.
    first_seen: BTreeMap<String, (Tp, i64)>,
    /// Which partition a poll takes records from first (round robin).
    cursor: usize,
    next_value: u64,
    /// Inputs whose last fetch was out of range (below the log start: records removed by
    /// DeleteRecords or retention), moved to the earliest offset before the next transaction.
    out_of_range: Vec<Tp>,
}

/// Runs one pipeline until `until`.
pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &TxnSetup,
    p: &PipelineSetup,
    until: Instant,
) {
    let mut pl = Pipeline {
        s: Session::new(client, rec, setup),
        membership: Membership::new(&p.group),
        p,
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        started: false,
        first_seen: BTreeMap::new(),
        cursor: 0,
        next_value: 0,
        out_of_range: Vec::new(),
    };
    while Instant::now() < until && !pl.s.refused {
        if p.inputs.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !pl.s.ready().await {
            continue;
        }
        if !pl.started && !pl.start().await {
            pl.s.pause().await;
            continue;
        }
        let gap = if pl.one().await {
            pl.s.rng.gen_range(10..100)
        } else {
            pl.s.rng.gen_range(50..200)
        };
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
}

impl<C: Connector> Pipeline<'_, C> {
    /// (Re)starts every input from the group's committed offsets, recorded as an assign and
    /// a `committed` seek per partition. False if the offsets could not be read.
    async fn start(&mut self) -> bool {
        let process = self.s.process;
        self.s.rec.invoke(process, AssignValue::default());
        let offsets = self
            .s
            .client
            .committed_offsets(&mut self.membership, &self.p.inputs)
            .await;
        let offsets = match offsets {
            Ok(o) => o,
            Err(e) => {
                self.s
                    .rec
                    .failed(process, AssignValue::default(), true, e.to_string());
                return false;
            }
        };
        let assign = AssignValue {
            partitions: offsets
                .iter()
                .map(|((t, p), _)| TopicPartition::new(t, *p))
                .collect(),
        };
        self.s.rec.ok(process, assign);
        self.positions.clear();
        self.committed.clear();
        for ((topic, partition), offset) in offsets {
            let start = offset.max(0);
            let seek = SeekValue::new(&topic, partition, start).because(SeekReason::Committed);
            self.s.rec.invoke(process, seek.clone());
            self.s.rec.ok(process, seek);
            self.positions.insert((topic.clone(), partition), start);
            self.committed.insert((topic, partition), start);
        }
        self.started = true;
        true
    }

    /// Moves inputs whose fetch was out of range to their earliest offset, as a consumer with
    /// `auto.offset.reset=earliest` does, each recorded as a `reset` seek. One whose lookup
    /// fails stays, and its next fetch tries again.
    async fn reset_out_of_range(&mut self) {
        for (topic, partition) in std::mem::take(&mut self.out_of_range) {
            let earliest = self
                .s
                .client
                .list_offsets(&topic, partition, OffsetSpec::Earliest)
                .await;
            let Ok(offset) = earliest else { continue };
            reached!(
                "pipeline.input_reset",
                "a pipeline's input position was below the log start and moved to the earliest offset"
            );
            let seek = SeekValue::new(&topic, partition, offset).because(SeekReason::Reset);
            self.s.rec.invoke(self.s.process, seek.clone());
            self.s.rec.ok(self.s.process, seek);
            self.positions.insert((topic, partition), offset);
        }
    }

    /// One transaction: poll, transform, send, commit offsets, end. True if it had inputs.
    async fn one(&mut self) -> bool {
        self.reset_out_of_range().await;
        let rng = &mut self.s.rng;
        let end = if rng.gen_bool(0.75) {
            TxnEnd::Commit
        } else {
            TxnEnd::Abort
        };
        let max = rng.gen_range(MAX_RECORDS);
        let fault = self.s.draw_fault();
        let at_offsets = fault != Fault::None && self.s.fault_coin();
        let mut value = TxnValue::new(self.s.txn.id.clone(), end);
        value.group = Some(self.p.group.clone());
        let value = value.poll(PollValue::default());
        let process = self.s.process;
        let invoke = self.s.rec.invoke(process, value.clone());
        self.s.client.witness().set_op(Some(invoke));
        let polled = self.poll(max).await;
        self.s.client.witness().set_op(None);
        let polled = match polled {
            Ok(p) => p,
            Err(e) => {
                // Nothing began: no partition added, nothing sent.
                self.s
                    .rec
                    .complete(process, invoke, value, Err((true, e.to_string())));
                return false;
            }
        };
        let moved: Vec<(String, i32, i64)> = polled
            .next
            .iter()
            .filter(|(tp, o)| self.committed.get(*tp).is_none_or(|c| **o > *c))
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        if polled.taken.is_empty() && moved.is_empty() {
            let value = TxnValue {
                ops: vec![MicroOp::Poll(polled.poll)],
                ..value
            };
            self.s.rec.complete(process, invoke, value, Ok(()));
            return false;
        }
        let mut value = TxnValue {
            ops: vec![MicroOp::Poll(polled.poll)],
            offsets: moved
                .iter()
                .map(|(t, p, o)| PartitionOffset {
                    topic: t.clone(),
                    partition: *p,
                    offset: *o,
                })
                .collect(),
            ..value
        };
        let batches = self.transform(&polled.taken);
        for (partition, outs) in &batches {
            for (out, src) in outs {
                let mut s = SendValue::new(&self.p.output.name, *partition, out);
                s.source = Some(src.clone());
                value = value.send(s);
            }
        }
        let outcome = self
            .attempt(&batches, &moved, end, (fault, at_offsets), &mut value)
            .await;
        match (&outcome, end) {
            (Ok(()), TxnEnd::Commit) => {
                reached!(
                    "txn.pipeline_committed",
                    "a consume-transform-produce pipeline committed its outputs and input offsets"
                );
                self.positions = polled.next;
                for (t, p, o) in &moved {
                    self.committed.insert((t.clone(), *p), *o);
                }
            }
            (Ok(()), TxnEnd::Abort) => {
                reached!(
                    "txn.pipeline_aborted",
                    "a consume-transform-produce pipeline aborted: it reads its inputs again from the committed offsets"
                );
                self.started = false;
            }
            (Err(_), _) => {
                self.s.reset();
                self.started = false;
            }
        }
        self.s.judge_fault(fault, &outcome);
        self.s.rec.complete(process, invoke, value, outcome);
        if self.s.take_over() {
            // The successor reads its inputs from the group's offsets, as a new instance does.
            self.started = false;
        }
        true
    }

    /// One output per input (a duplicate of an input met before gets none), each to a drawn
    /// output partition: the batches, by partition, of (output value, input value).
    fn transform(&mut self, taken: &[Input]) -> BTreeMap<i32, Vec<(String, String)>> {
        let mut batches: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
        let partitions = self.p.output.partitions.max(1);
        for r in taken {
            if !first_position(&mut self.first_seen, r) {
                reached!(
                    "txn.pipeline_duplicate_input",
                    "a pipeline met an input value at a second position (a retry wrote it twice) and gave it no second output"
                );
                continue;
            }
            self.next_value += 1;
            let out = format!("y{}-{}", self.s.setup.process, self.next_value);
            let partition = self.s.rng.gen_range(0..partitions);
            batches
                .entry(partition)
                .or_default()
                .push((out, r.value.clone()));
        }
        batches
    }

    /// Runs the transaction; fills in offsets (and when EndTxn was sent) as it goes.
    async fn attempt(
        &mut self,
        batches: &BTreeMap<i32, Vec<(String, String)>>,
        offsets: &[(String, i32, i64)],
        end: TxnEnd,
        (fault, at_offsets): (Fault, bool),
        value: &mut TxnValue,
    ) -> Result<(), (bool, String)> {
        let topic = self.p.output.name.clone();
        let parts: Vec<(String, i32)> = batches.keys().map(|p| (topic.clone(), *p)).collect();
        if !parts.is_empty() {
            if let Err(e) = self.s.step_add(&parts).await {
                return Err(self.s.abandon(e).await);
            }
        }
        let mut acked: BTreeMap<String, i64> = BTreeMap::new();
        for (k, (partition, outs)) in batches.iter().enumerate() {
            if k == 1 && !at_offsets {
                self.s.strike(fault).await;
            }
            let values: Vec<String> = outs.iter().map(|(o, _)| o.clone()).collect();
            match self.s.step_produce(&topic, *partition, &values).await {
                Ok(at) => acked.extend(values.into_iter().zip(at)),
                Err(e) => return Err(self.s.abandon(e).await),
            }
        }
        if batches.len() < 2 && !at_offsets {
            self.s.strike(fault).await;
        }
        fill_offsets(value, &acked);
        if let Err(e) = self.s.step_add_offsets(&self.membership).await {
            return Err(self.s.abandon(e).await);
        }
        if at_offsets {
            self.s.strike(fault).await;
        }
        if let Err(e) = self
            .s
            .step_commit_offsets(&mut self.membership, offsets)
            .await
        {
            return Err(self.s.abandon(e).await);
        }
        let commit = end == TxnEnd::Commit;
        value.end_sent_ns = Some(self.s.rec.now());
        self.s
            .step_end(commit)
            .await
            .map_err(|(certain, e)| (certain, e.to_string()))
    }

    /// Fetches every input partition from its position (read_committed) and takes up to `max`
    /// records, partitions in turn. `Err` if no fetch succeeded.
    async fn poll(&mut self, max: usize) -> Result<Polled, ClientError> {
        let mut poll = PollValue::default();
        let mut by_leader: BTreeMap<String, Vec<FetchSpec>> = BTreeMap::new();
        let mut last_error = None;
        for ((topic, partition), offset) in &self.positions {
            match self.s.client.leader_addr(topic, *partition).await {
                Ok(addr) => by_leader.entry(addr).or_default().push(FetchSpec {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    max_bytes: PARTITION_BYTES,
                }),
                Err(e) => {
                    if e.needs_metadata_refresh() {
                        self.s.client.mark_stale();
                    }
                    last_error = Some(e);
                }
            }
        }
        // Per partition: the records fetched (at or after the position), and where the fetch's
        // batches ended.
        let mut fetched: Fetched = BTreeMap::new();
        for (addr, specs) in by_leader {
            let results = match self
                .s
                .client
                .fetch_many(&addr, &specs, self.p.fetch_max_wait_ms, FETCH_MAX_BYTES)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // As the consumer does: an unreachable leader may lead nothing any more.
                    if e.needs_metadata_refresh() {
                        self.s.client.mark_stale();
                    }
                    last_error = Some(e);
                    continue;
                }
            };
            for (spec, result) in specs.iter().zip(results) {
                let r = match result {
                    Ok(r) => r,
                    Err(e) => {
                        if e.error() == Some(riptide_wire::ResponseError::OffsetOutOfRange) {
                            self.out_of_range.push((spec.topic.clone(), spec.partition));
                        }
                        last_error = Some(e);
                        continue;
                    }
                };
                poll = poll
                    .fetch_offset(&spec.topic, spec.partition, spec.offset)
                    .hwm(&spec.topic, spec.partition, r.high_watermark)
                    .lso(&spec.topic, spec.partition, r.last_stable_offset);
                for &(from, to, why) in &r.hidden {
                    poll.hidden.push(HiddenRange {
                        topic: spec.topic.clone(),
                        partition: spec.partition,
                        from,
                        to,
                        why,
                    });
                }
                let records = r
                    .records
                    .iter()
                    .filter(|x| x.offset >= spec.offset)
                    .map(|x| {
                        let v = x.value.as_ref().map(|b| String::from_utf8_lossy(b));
                        (x.offset, v.unwrap_or_default().into_owned())
                    })
                    .collect();
                fetched.insert(
                    (spec.topic.clone(), spec.partition),
                    (records, r.next_offset),
                );
            }
        }
        if fetched.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                ClientError::Invalid("the pipeline fetched no input partition".into())
            }));
        }
        let (taken, next) = take(&fetched, &self.positions, self.cursor, max);
        for r in &taken {
            poll = poll.record(&r.topic, r.partition, r.offset, &r.value);
        }
        self.cursor = self.cursor.wrapping_add(1);
        Ok(Polled { poll, taken, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_string(), p)
    }

    /// A partition's fetched records (offset, value) and where its batches ended.
    type Part<'a> = (Tp, &'a [(i64, &'a str)], Option<i64>);

    fn fetched(parts: &[Part<'_>]) -> Fetched {
        parts
            .iter()
            .map(|(k, recs, end)| {
                let recs = recs.iter().map(|(o, v)| (*o, v.to_string())).collect();
                (k.clone(), (recs, *end))
            })
            .collect()
    }

    fn positions(parts: &[(Tp, i64)]) -> BTreeMap<Tp, i64> {
        parts.iter().cloned().collect()
    }

    fn offsets(taken: &[Input]) -> Vec<(String, i32, i64)> {
        taken
            .iter()
            .map(|r| (r.topic.clone(), r.partition, r.offset))
            .collect()
    }

    #[test]
    fn a_poll_takes_at_most_max_records_partitions_in_turn() {
        let f = fetched(&[
            (tp("a", 0), &[(0, "a0"), (1, "a1"), (2, "a2")], Some(3)),
            (tp("a", 1), &[(5, "b5")], Some(6)),
        ]);
        let pos = positions(&[(tp("a", 0), 0), (tp("a", 1), 5)]);
        // From the second partition first: all of it, then two of the first.
        let (taken, next) = take(&f, &pos, 1, 3);
        assert_eq!(
            offsets(&taken),
            vec![("a".into(), 1, 5), ("a".into(), 0, 0), ("a".into(), 0, 1)]
        );
        // A partition cut short stays right after its last record taken.
        assert_eq!(next, positions(&[(tp("a", 0), 2), (tp("a", 1), 6)]));
    }

    #[test]
    fn a_partition_handed_out_whole_moves_past_the_hidden_offsets_after_it() {
        // Offsets 2..=4 are a marker and aborted records: the batches ended at 5.
        let f = fetched(&[
            (tp("a", 0), &[(0, "a0"), (1, "a1")], Some(5)),
            (tp("a", 1), &[], Some(9)),
            (tp("a", 2), &[], None),
        ]);
        let pos = positions(&[(tp("a", 0), 0), (tp("a", 1), 7), (tp("a", 2), 4)]);
        let (taken, next) = take(&f, &pos, 0, 8);
        assert_eq!(taken.len(), 2);
        assert_eq!(
            next,
            positions(&[(tp("a", 0), 5), (tp("a", 1), 9), (tp("a", 2), 4)])
        );
        // Cut short, it does not skip what it did not hand out.
        let (taken, next) = take(&f, &pos, 0, 1);
        assert_eq!(offsets(&taken), vec![("a".into(), 0, 0)]);
        assert_eq!(next[&tp("a", 0)], 1);
    }

    #[test]
    fn records_below_the_position_are_not_handed_out_again() {
        // A fetch from inside a batch returns it from its base.
        let f = fetched(&[(tp("a", 0), &[(3, "x"), (4, "y"), (5, "z")], Some(6))]);
        let pos = positions(&[(tp("a", 0), 5)]);
        let (taken, next) = take(&f, &pos, 0, 8);
        assert_eq!(offsets(&taken), vec![("a".into(), 0, 5)]);
        assert_eq!(next[&tp("a", 0)], 6);
    }

    #[test]
    fn an_input_value_met_at_a_second_position_is_the_same_input() {
        let input = |offset: i64, value: &str| Input {
            topic: "a".into(),
            partition: 0,
            offset,
            value: value.into(),
        };
        let mut seen = BTreeMap::new();
        assert!(first_position(&mut seen, &input(3, "v")));
        // Read again from the same position (after an abort): processed again.
        assert!(first_position(&mut seen, &input(3, "v")));
        // Written twice by a retry: the second copy gets no output of its own.
        assert!(!first_position(&mut seen, &input(8, "v")));
        assert!(first_position(&mut seen, &input(9, "w")));
    }
}
