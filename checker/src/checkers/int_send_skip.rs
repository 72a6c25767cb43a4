//! **int-send-skip** (Jepsen's `int-send-skip`, applied to one record batch): records that one
//! producer sent together in one record batch (same process, same `batch` tag, same partition)
//! landed with *foreign* records between them: some offset strictly between two consecutive
//! records of the batch (in send order) holds a record of another batch or producer. Kafka
//! appends a record batch whole, at consecutive offsets from its base offset, so nothing else
//! can sit inside it.
//!
//! A record's position is its acknowledged offset, else the offset of the first read of its
//! value in that partition (as [`super::int_nonmonotonic_send`]); records with neither are
//! skipped. An offset "holds a foreign record" when some read returned, or some ack placed,
//! a value there that is not one of the batch's. Offsets nothing is known about are not counted
//! (Jepsen's dense index ignores them too; a hole is [`super::offset_gap`]'s), nor are the
//! batch's own records out of order (that is [`super::int_nonmonotonic_send`]'s). One finding
//! per batch, listing the foreign offsets.
//!
//! Jepsen checks every pair of consecutive sends of one *operation*, and counts int-send-skip
//! among its allowed error types: the sends of a transaction may interleave with other writers
//! in Kafka's model. riptide's unit is the record batch, where interleaving breaks the protocol,
//! so it is a contract violation; the sends of an imported Jepsen op (`jepsen_op`) are not
//! judged by it. Nor are the sends of one transaction as such: other producers append between
//! them all the time in Kafka (Jepsen's reason to allow it); a transaction's records that
//! travelled in one record batch are judged like any batch's.

use std::collections::BTreeMap;

use super::int_nonmonotonic_send::position;
use super::{q, ranges, Anomaly, FastMap, Finding, Index, Tp};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// One placed record of a batch: (offset, send op, read op when placed by a read, value).
type Placed<'a> = (i64, u64, Option<u64>, &'a str);

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    // (process, batch, partition) and its placed records in send order, in order of first
    // send; the map only finds a batch's slot.
    // (The partition is keyed by its number, and a batch's sends mostly come one after another:
    // the last slot is tried before the map.)
    let mut batches: Vec<((u64, u64, Tp<'_>), Vec<Placed<'_>>)> = Vec::new();
    let mut slot: FastMap<(u64, u64, u32), usize> = FastMap::default();
    let mut last: Option<((u64, u64, u32), usize)> = None;
    for s in &ix.sends {
        let Some(batch) = s.batch else { continue };
        if let Some((o, read_op)) = position(ix, s) {
            let key = (s.process, batch, s.pid);
            let i = match last {
                Some((k, i)) if k == key => i,
                _ => *slot.entry(key).or_insert_with(|| {
                    batches.push(((s.process, batch, ix.tp(s.pid)), Vec::new()));
                    batches.len() - 1
                }),
            };
            last = Some((key, i));
            batches[i].1.push((o, s.op, read_op, ix.value(s.vid)));
        }
    }
    let mut out = Vec::new();
    for ((process, batch, tp), records) in batches {
        // Only a batch with room between two of its records can hold a foreign one.
        if !records
            .windows(2)
            .any(|w| w[1].0 > w[0].0.saturating_add(1))
        {
            continue;
        }
        let Some(part) = ix.part(tp) else { continue };
        let ours = |v: &str| records.iter().any(|r| r.3 == v);
        // Foreign offset → (op that shows it, its value), first evidence in history order.
        let mut foreign: BTreeMap<i64, (u64, &str)> = BTreeMap::new();
        for w in records.windows(2) {
            let (lo, hi) = (w[0].0, w[1].0);
            if hi <= lo.saturating_add(1) {
                continue;
            }
            for o in part.read_offsets_in(lo + 1, hi) {
                if let Some(r) = part
                    .reads_at(o)
                    .map(|i| &ix.reads[i])
                    .find(|r| !ours(ix.value(r.vid)))
                {
                    foreign.entry(o).or_insert((r.op, ix.value(r.vid)));
                }
            }
            let lo_i = part.acks.partition_point(|a| a.0 <= lo);
            let hi_i = part.acks.partition_point(|a| a.0 < hi);
            for &(o, i) in &part.acks[lo_i..hi_i.max(lo_i)] {
                let s = &ix.sends[i];
                if !ours(ix.value(s.vid)) {
                    foreign.entry(o).or_insert((s.op, ix.value(s.vid)));
                }
            }
        }
        let Some((&first_o, &(_, first_v))) = foreign.iter().next() else {
            continue;
        };
        let offsets: Vec<i64> = foreign.keys().copied().collect();
        let ops = records
            .iter()
            .flat_map(|r| std::iter::once(r.1).chain(r.2))
            .chain(foreign.values().map(|f| f.0))
            .collect();
        let span = (
            records.iter().map(|r| r.0).min().unwrap_or(first_o),
            records.iter().map(|r| r.0).max().unwrap_or(first_o),
        );
        out.push(Finding::new(
            Anomaly::IntSendSkip,
            tp,
            offsets.clone(),
            ops,
            format!(
                "Process {process} sent {} records together in record batch {batch} (first {}), but they landed at offsets {}..{} with foreign records between them at {} ({} at {first_o}): a batch is appended whole, at consecutive offsets.",
                records.len(),
                q(records[0].3),
                span.0,
                span.1,
                ranges(&offsets),
                q(first_v)
            ),
        ));
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

    /// Process 1 sends "a" then "b" in record batch 7 ("a" acknowledged at 0 or not, "b" timing
    /// out), process 2 sends "x" acknowledged at `x_at`; the final read holds `log`.
    fn batch_with(a_acked: bool, x_at: i64, log: &[&str]) -> crate::History {
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        let done = if a_acked {
            Done::acked(0)
        } else {
            Done::outcome(OpKind::Info)
        };
        complete_send(&mut b, 1, a, 0, "a", done);
        complete_send(&mut b, 1, bb, 0, "b", Done::outcome(OpKind::Info));
        send(&mut b, 2, 0, "x", x_at);
        final_read(&mut b, 20, 0, log);
        b.build()
    }

    #[test]
    fn fires_when_a_foreign_record_lands_inside_a_batch() {
        for a_acked in [true, false] {
            let h = batch_with(a_acked, 1, &["a", "x", "b"]);
            let f = check(&h);
            assert_eq!(anomalies(&f), vec![Anomaly::IntSendSkip], "{f:#?}");
            assert_eq!(f[0].offsets, vec![1]);
            // The batch's sends, and the final read that places "b" and shows "x" inside.
            assert_eq!(f[0].ops, vec![2, 3, 7]);
            assert_eq!(
                f[0].explanation,
                "Process 1 sent 2 records together in record batch 7 (first \"a\"), but they landed at offsets 0..2 with foreign records between them at 1 (\"x\" at 1): a batch is appended whole, at consecutive offsets."
            );
            // The whole run names it as this and nothing else.
            let all = crate::check_all(&h, &crate::CheckerConfig::default());
            assert_eq!(anomalies(&all.findings), vec![Anomaly::IntSendSkip]);
        }
    }

    #[test]
    fn fires_on_a_foreign_record_known_from_an_ack_alone() {
        // Nobody read offset 1, but "x" was acknowledged there, between "a" (0) and "b" (2).
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        complete_send(&mut b, 1, a, 0, "a", Done::outcome(OpKind::Info));
        complete_send(&mut b, 1, bb, 0, "b", Done::outcome(OpKind::Info));
        send(&mut b, 2, 0, "x", 1);
        poll(&mut b, 10, 0, &[(0, "a")], 3);
        poll(&mut b, 11, 0, &[(2, "b")], 3);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntSendSkip], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1]);
    }

    #[test]
    fn silent_when_the_batch_is_contiguous_or_the_gap_holds_nothing_known() {
        assert!(check(&batch_with(true, 2, &["a", "b", "x"])).is_empty());
        assert!(check(&batch_with(false, 0, &["x", "a", "b"])).is_empty());
        // Offset 1 is a hole (offset-gap's business), not a foreign record.
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(7));
        let bb = invoke_send(&mut b, 1, 0, "b", Some(7));
        complete_send(&mut b, 1, a, 0, "a", Done::outcome(OpKind::Info));
        complete_send(&mut b, 1, bb, 0, "b", Done::outcome(OpKind::Info));
        final_read_records(&mut b, 20, 0, &[(0, "a"), (2, "b")], 3);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_across_batches_and_for_the_sends_of_one_jepsen_op() {
        // Two batches of one producer with another's record between them.
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let c = invoke_send(&mut b, 1, 0, "c", Some(2));
        complete_send(&mut b, 1, a, 0, "a", Done::acked(0));
        complete_send(&mut b, 1, c, 0, "c", Done::acked(2));
        send(&mut b, 2, 0, "x", 1);
        final_read(&mut b, 20, 0, &["a", "x", "c"]);
        assert!(check(&b.build()).is_empty());
        // One Jepsen txn whose sends another writer's record separates: Jepsen's int-send-skip,
        // which Jepsen allows; not a record batch, so riptide says nothing.
        let text =
            "{:index 0, :type :invoke, :process 0, :f :txn, :value [[:send 7 30] [:send 7 31]]}
{:index 1, :type :ok, :process 0, :f :txn, :value [[:send 7 [0 30]] [:send 7 [2 31]]]}
{:index 2, :type :invoke, :process 1, :f :send, :value [[:send 7 32]]}
{:index 3, :type :ok, :process 1, :f :send, :value [[:send 7 [1 32]]]}";
        let h = crate::jepsen::import(text).unwrap().history;
        assert!(check(&h).is_empty());
    }
}
