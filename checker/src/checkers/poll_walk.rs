//! Follows each consumer process's position per partition through its polls; shared by
//! [`super::poll_skip`], [`super::int_poll_skip`], [`super::nonmonotonic_poll`] and
//! [`super::int_nonmonotonic_poll`].
//!
//! The expected next offset is one past the last record returned (or a poll's fetch offset, or a
//! successful seek's target). An `assign` forgets the process's positions, and so does an `info`
//! poll (it may have consumed records nobody saw); a `fail` poll consumed nothing.
//!
//! A step from one record to the next record of the same partition inside one poll is
//! *internal* (`int-poll-skip`, `int-nonmonotonic-poll`: the broker's response itself is out of
//! order). Every other step is between polls: a poll's first record (or its fetch offset)
//! against where the previous poll, seek or the poll's own fetch offset left the process.
//!
//! Transactions: the polls of an `ok` transaction are walked like polls; a transaction that did
//! not commit forgets the process's positions afterwards (a consume-transform-produce client goes back to
//! its group's offsets after an abort). Offsets that hold no data for a read_committed reader
//! (control batches, aborted records: see [`super::Index::hidden_at`]) are never skipped.

use std::collections::hash_map::Entry;

use super::{ranges, Anomaly, FastMap, Finding, Index, PartIds, Read};
use crate::history::{OpKind, PartitionOffset, TxnEnd, Value, F};

/// Where a process expects to read next: (offset, op that set it, set by a record of that op
/// rather than a fetch offset or a seek). Kept in a hash map that is only looked up, never
/// iterated into output.
type Cursor = (i64, u64, bool);

/// The findings of one walk, by anomaly.
#[derive(Default)]
pub(crate) struct Walk {
    pub skips: Vec<Finding>,
    pub int_skips: Vec<Finding>,
    pub backwards: Vec<Finding>,
    pub int_backwards: Vec<Finding>,
}

pub(crate) fn run<'a>(ix: &Index<'a>) -> Walk {
    let mut w = Walker {
        ix,
        ids: PartIds::new(ix),
        out: Walk::default(),
    };
    // By (process, partition number).
    let mut cursors: FastMap<(u64, u32), Cursor> = FastMap::default();
    for (i, pair) in ix.numbered_pairs_of(&[F::Assign, F::Poll, F::Txn, F::Seek]) {
        let process = pair.invoke.process;
        let outcome = pair.outcome();
        match (&pair.invoke.value, outcome) {
            (Value::Assign(_), _)
            | (Value::Poll(_), OpKind::Info)
            | (Value::Txn(_), OpKind::Fail | OpKind::Info) => {
                cursors.retain(|(p, _), _| *p != process);
            }
            (Value::Txn(_), OpKind::Ok) => {
                let Value::Txn(t) = &pair.last().value else {
                    continue;
                };
                // The index's records of the transaction are its polls' in turn.
                let mut reads = ix.reads_of_pair(i);
                for p in t.polls() {
                    let (these, rest) = reads.split_at(p.records.len().min(reads.len()));
                    w.poll(
                        &mut cursors,
                        process,
                        &p.fetch_offsets,
                        these,
                        pair.last().index,
                    );
                    reads = rest;
                }
                if t.end == TxnEnd::Abort {
                    // After an abort the client rewinds to its group's offsets.
                    cursors.retain(|(p, _), _| *p != process);
                }
            }
            (Value::Seek(s), OpKind::Ok) => {
                let key = (process, w.ids.id((s.topic.as_str(), s.partition)));
                cursors.insert(key, (s.offset, pair.last().index, false));
            }
            (Value::Seek(s), _) => {
                cursors.remove(&(process, w.ids.id((s.topic.as_str(), s.partition))));
            }
            (Value::Poll(_), OpKind::Ok) => {
                let Value::Poll(p) = &pair.last().value else {
                    continue;
                };
                let reads = ix.reads_of_pair(i);
                w.poll(
                    &mut cursors,
                    process,
                    &p.fetch_offsets,
                    reads,
                    pair.last().index,
                );
            }
            _ => {}
        }
    }
    w.out
}

struct Walker<'i, 'a> {
    ix: &'i Index<'a>,
    ids: PartIds<'i, 'a>,
    out: Walk,
}

impl<'a> Walker<'_, 'a> {
    /// One successful poll `op` of `process`: its fetch offsets, then its records (the
    /// index's, numbered).
    fn poll(
        &mut self,
        cursors: &mut FastMap<(u64, u32), Cursor>,
        process: u64,
        fetched: &'a [PartitionOffset],
        reads: &[Read],
        op: u64,
    ) {
        for f in fetched {
            let id = self.ids.id((f.topic.as_str(), f.partition));
            self.step(cursors, process, id, f.offset, (f.offset, op, false));
        }
        for r in reads {
            self.step(cursors, process, r.pid, r.offset, (r.offset + 1, op, true));
        }
    }

    /// The process reads (or fetches from) `offset`; compare with where it should be, then
    /// move its cursor to `then` (one lookup for both).
    fn step(
        &mut self,
        cursors: &mut FastMap<(u64, u32), Cursor>,
        process: u64,
        id: u32,
        offset: i64,
        then: Cursor,
    ) {
        let op = then.1;
        let (next, prev_op, by_record) = match cursors.entry((process, id)) {
            Entry::Occupied(mut e) => e.insert(then),
            Entry::Vacant(e) => {
                e.insert(then);
                return;
            }
        };
        // The previous record of this partition came in the same poll.
        let internal = by_record && prev_op == op;
        let tp = self.ids.tp(id);
        if offset < next {
            let finding = if internal {
                let prev = next - 1;
                Finding::new(
                    Anomaly::IntNonmonotonicPoll,
                    tp,
                    vec![prev, offset],
                    vec![op],
                    format!(
                        "One poll of process {process} returned offset {offset} after offset {prev}."
                    ),
                )
            } else {
                Finding::new(
                    Anomaly::NonmonotonicPoll,
                    tp,
                    vec![next, offset],
                    vec![prev_op, op],
                    format!(
                        "Process {process} expected offset {next} next but polled offset {offset}, with no assign or seek in between."
                    ),
                )
            };
            if internal {
                self.out.int_backwards.push(finding);
            } else {
                self.out.backwards.push(finding);
            }
        } else if offset > next {
            let mut skipped = self.ix.read_offsets_in(tp, next, offset);
            if !skipped.is_empty() {
                skipped.retain(|&o| !self.ix.hidden_at(tp, o));
            }
            if skipped.is_empty() {
                return;
            }
            if internal {
                self.out.int_skips.push(Finding::new(
                    Anomaly::IntPollSkip,
                    tp,
                    skipped.clone(),
                    vec![op],
                    format!(
                        "One poll of process {process} returned offset {} then offset {offset}, skipping existing offset(s) {}.",
                        next - 1,
                        ranges(&skipped)
                    ),
                ));
            } else {
                self.out.skips.push(Finding::new(
                    Anomaly::PollSkip,
                    tp,
                    skipped.clone(),
                    vec![prev_op, op],
                    format!(
                        "Process {process} expected offset {next} next but polled offset {offset}, skipping existing offset(s) {}.",
                        ranges(&skipped)
                    ),
                ));
            }
        }
    }
}
