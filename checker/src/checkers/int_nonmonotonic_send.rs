//! **int-nonmonotonic-send** (Jepsen's internal nonmonotonic send): the records of one record
//! batch (same process, same `batch` tag, same partition), in invoke order, are not at strictly
//! increasing positions in the log. A batch is appended whole and in order, retried or not, so
//! this is the broker reordering (or splitting and interleaving) a batch. A record's position is
//! its acknowledged offset if its send is `ok`, else the offset of the first read of its value
//! in that partition; records with neither are skipped, and so are sends without a `batch` tag.
//! Out-of-order records of *different* sends of a process are [`super::nonmonotonic_send`].
//!
//! Jepsen's rule is the same over one *operation*: a pair of consecutive sends of one op to one
//! key that go backwards (or stay) in the log. riptide records one send per record, so its unit is
//! the record batch; the sends of one imported Jepsen op (`jepsen_op`) are judged together the
//! same way, so a Jepsen history gets Jepsen's name.

use std::collections::hash_map::Entry;

use super::{q, Anomaly, FastMap, Finding, Index, Send};

/// What groups sends: a record batch, or an imported Jepsen op.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Batch(u64),
    JepsenOp(u64),
}
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// A record's place: (offset, the read op it came from when not acknowledged).
pub(crate) fn position(ix: &Index<'_>, s: &Send<'_>) -> Option<(i64, Option<u64>)> {
    if let Some(o) = s.acked() {
        return Some((o, None));
    }
    ix.reads_of_id(s.vid)
        .find(|r| r.pid == s.pid)
        .map(|r| (r.offset, Some(r.op)))
}

/// The last placed record of a batch: (offset, send op, read op, value).
type Last<'a> = (i64, u64, Option<u64>, &'a str);

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    // (process, group, partition) → its last placed record. Lookups only, never iterated.
    let mut last: FastMap<(u64, Group, u32), Last<'_>> = FastMap::default();
    for s in &ix.sends {
        let groups = [s.batch.map(Group::Batch), s.jepsen_op.map(Group::JepsenOp)];
        if groups.iter().all(Option::is_none) {
            continue;
        }
        let Some((o, read_op)) = position(ix, s) else {
            continue;
        };
        for group in groups.into_iter().flatten() {
            let key = (s.process, group, s.pid);
            // One lookup: the entry is read, then overwritten.
            let slot = last.entry(key);
            if let Entry::Occupied(e) = &slot {
                let &(prev, prev_op, prev_read, prev_value) = e.get();
                if o <= prev {
                    let ops = [Some(prev_op), prev_read, Some(s.op), read_op];
                    out.push(Finding::new(
                    Anomaly::IntNonmonotonicSend,
                    ix.tp(s.pid),
                    vec![prev, o],
                    ops.into_iter().flatten().collect(),
                    format!(
                        "Process {} sent {} then {} in {}, but the second is at offset {o}, not after the first at {prev}: the broker reordered {}.",
                        s.process,
                        q(prev_value),
                        q(ix.value(s.vid)),
                        match group {
                            Group::Batch(b) => format!("record batch {b}"),
                            Group::JepsenOp(i) => format!("one operation (op {i})"),
                        },
                        match group {
                            Group::Batch(_) => "the batch",
                            Group::JepsenOp(_) => "them",
                        },
                    ),
                ));
                }
            }
            match slot {
                Entry::Occupied(mut e) => {
                    e.insert((o, s.op, read_op, ix.value(s.vid)));
                }
                Entry::Vacant(e) => {
                    e.insert((o, s.op, read_op, ix.value(s.vid)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, OpKind};

    #[test]
    fn silent_on_clean_histories() {
        assert!(check(&clean()).is_empty());
        assert!(check(&pipelined(Mutation::None)).is_empty());
    }

    #[test]
    fn fires_when_a_batch_is_read_back_reordered() {
        // Batch 7: "a" then "b", acknowledged at 5 and 4.
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        complete_send(&mut b, 1, bb, 0, "b", Done::acked(4));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(5));
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicSend], "{f:#?}");
        assert_eq!(f[0].offsets, vec![5, 4]);
        assert_eq!(f[0].ops, vec![2, 3]);
        assert_eq!(
            f[0].explanation,
            "Process 1 sent \"a\" then \"b\" in record batch 7, but the second is at offset 4, not after the first at 5: the broker reordered the batch."
        );
    }

    #[test]
    fn fires_from_reads_when_the_outcome_is_unknown() {
        // Neither record was acknowledged; the final read places them backwards, with a record
        // of another batch between.
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        complete_send(&mut b, 1, a, 0, "a", Done::outcome(OpKind::Info));
        complete_send(&mut b, 1, bb, 0, "b", Done::outcome(OpKind::Info));
        let fr = final_read(&mut b, 20, 0, &["b", "x", "a"]);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicSend], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 0]);
        assert_eq!(f[0].ops, vec![2, 3, fr]);
    }

    #[test]
    fn fires_when_two_sends_of_one_imported_jepsen_op_land_backwards() {
        let text =
            "{:index 0, :type :invoke, :process 0, :f :txn, :value [[:send 7 30] [:send 7 31]]}
{:index 1, :type :ok, :process 0, :f :txn, :value [[:send 7 [1 30]] [:send 7 [0 31]]]}
{:index 2, :type :invoke, :process 0, :f :send, :value [[:send 7 32] [:send 7 33]]}
{:index 3, :type :ok, :process 0, :f :send, :value [[:send 7 [2 32]] [:send 7 [3 33]]]}";
        let h = crate::jepsen::import(text).unwrap().history;
        h.validate().unwrap();
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicSend], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1, 0]);
        assert_eq!(f[0].ops, vec![2, 3]);
        assert!(
            f[0].explanation.contains("in one operation (op 0)"),
            "{}",
            f[0].explanation
        );
        // Not a nonmonotonic-send as well: the pair is one op's.
        assert!(crate::checkers::nonmonotonic_send::check(&h).is_empty());
    }

    #[test]
    fn silent_across_batches_partitions_and_untagged_sends() {
        let mut b = HistoryBuilder::new();
        // Batches 1 and 2 land in the other order: not this checker's business.
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let c = invoke_send(&mut b, 1, 0, "c", Some(2));
        complete_send(&mut b, 1, c, 0, "c", Done::acked(0));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(1));
        // The same batch id on another process or partition is another batch.
        let x = invoke_send(&mut b, 2, 0, "x", Some(1));
        complete_send(&mut b, 2, x, 0, "x", Done::acked(2));
        let y = invoke_send(&mut b, 1, 1, "y", Some(1));
        complete_send(&mut b, 1, y, 1, "y", Done::acked(0));
        // Untagged sends are ignored; so are records nobody placed.
        send(&mut b, 3, 0, "u", 9);
        send(&mut b, 3, 0, "v", 8);
        let d = invoke_send(&mut b, 1, 2, "d", Some(3));
        let e = invoke_send(&mut b, 1, 2, "e", Some(3));
        complete_send(&mut b, 1, d, 2, "d", Done::outcome(OpKind::Info));
        complete_send(&mut b, 1, e, 2, "e", Done::acked(0));
        assert!(check(&b.build()).is_empty());
    }
}
