//! **exactly-once**: a consume-transform-produce pipeline processed an input record twice, or
//! not at all, by what the read_committed final reads hold.
//!
//! Inputs are identified by value; an output is a send with `source` = the input's value, and
//! it is *committed* when a final read of its partition holds it. (a) An input with committed
//! outputs of two or more distinct values was processed twice. (b) For each group and input
//! partition, the highest offset an `ok` committed transaction committed for it (`offsets`:
//! the next offset to consume) says every input below it was processed: each record of the
//! input partition's final read below it must have a committed output. (b) is judged only when
//! every partition outputs were sent to has a final read. An input or output below its
//! partition's final log start was removed on purpose (DeleteRecords, retention): an input whose
//! output was removed is not skipped, nor is a removed input (no final read holds it). One finding per input processed
//! twice, one per group and input partition with skipped inputs. Assumes one pipeline per input
//! topic (two groups consuming the same input would each produce an output).
//!
//! Data-loss class: an input with no output is lost to the pipeline's readers; one with two is
//! what exactly-once exists to prevent.

use std::collections::BTreeMap;

use super::{q, ranges, Anomaly, Finding, Index, Tp};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    // Input value → its committed outputs (send indices, one per distinct value).
    let mut outputs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut out_parts: Vec<Tp<'_>> = Vec::new();
    // Inputs with an output below its partition's final log start: removed on purpose, so
    // neither missing nor skipped.
    let mut removed: Vec<&str> = Vec::new();
    for (i, s) in ix.sends.iter().enumerate() {
        let Some(src) = s.source else { continue };
        out_parts.push(ix.tp(s.pid));
        if s.acked().is_some_and(|o| ix.part_at(s.pid).removed(o)) {
            removed.push(src);
        }
        if !ix
            .reads_of_id(s.vid)
            .any(|r| r.final_read && r.pid == s.pid)
        {
            continue;
        }
        let outs = outputs.entry(src).or_default();
        if !outs.iter().any(|&o| ix.sends[o].vid == s.vid) {
            outs.push(i);
        }
    }
    if out_parts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (&input, outs) in &outputs {
        if outs.len() < 2 {
            continue;
        }
        let at = ix.reads_of(input).find(|r| r.final_read);
        let tp = at.map_or(ix.tp(ix.sends[outs[0]].pid), |r| ix.tp(r.pid));
        let place = at.map_or(String::new(), |r| {
            format!(
                " (at {}/{} offset {})",
                ix.tp(r.pid).0,
                ix.tp(r.pid).1,
                r.offset
            )
        });
        let listed: Vec<String> = outs
            .iter()
            .map(|&o| {
                let s = &ix.sends[o];
                let by = s
                    .txn
                    .map_or(format!("op {}", s.op), |t| ix.txns[t].describe());
                format!(
                    "{} in {}/{} by {by}",
                    q(ix.value(s.vid)),
                    ix.tp(s.pid).0,
                    ix.tp(s.pid).1
                )
            })
            .collect();
        out.push(Finding::new(
            Anomaly::ExactlyOnce,
            tp,
            at.map(|r| r.offset).into_iter().collect(),
            outs.iter()
                .map(|&o| ix.sends[o].op)
                .chain(at.map(|r| r.op))
                .collect(),
            format!(
                "Input {}{place} was processed {} times: committed outputs {}.",
                q(input),
                outs.len(),
                listed.join(", ")
            ),
        ));
    }
    out_parts.sort_unstable();
    out_parts.dedup();
    removed.sort_unstable();
    removed.dedup();
    let all_read = out_parts
        .iter()
        .all(|&tp| ix.part(tp).is_some_and(|p| p.max_final_hwm.is_some()));
    if !all_read {
        return out;
    }
    // (group, input partition) → (highest committed offset, the transaction that committed it).
    let mut committed: BTreeMap<(&str, Tp<'_>), (i64, usize)> = BTreeMap::new();
    for (t, txn) in ix.txns.iter().enumerate() {
        let (true, Some(group)) = (txn.committed(), txn.group) else {
            continue;
        };
        for o in txn.offsets {
            let e = committed
                .entry((group, (o.topic.as_str(), o.partition)))
                .or_insert((o.offset, t));
            if o.offset > e.0 {
                *e = (o.offset, t);
            }
        }
    }
    for ((group, tp), (upto, t)) in committed {
        let Some(part) = ix.part(tp) else { continue };
        let mut skipped: Vec<(i64, &str, u64)> = part
            .final_reads
            .iter()
            .map(|&f| &ix.final_reads[f])
            .flat_map(|fr| {
                fr.records
                    .iter()
                    .map(move |r| (r.offset, r.value.as_str(), fr.op))
            })
            .filter(|&(o, v, _)| {
                o < upto && !outputs.contains_key(v) && removed.binary_search(&v).is_err()
            })
            .collect();
        skipped.sort_unstable();
        skipped.dedup_by_key(|s| s.0);
        let Some(&(first_o, first_v, fr_op)) = skipped.first() else {
            continue;
        };
        let offsets: Vec<i64> = skipped.iter().map(|s| s.0).collect();
        let txn = &ix.txns[t];
        out.push(Finding::new(
            Anomaly::ExactlyOnce,
            tp,
            offsets.clone(),
            vec![txn.op, fr_op],
            format!(
                "Group {group} committed offset {upto} in {}, but {} input record(s) below it have no committed output (skipped): offset(s) {} (first {} at {first_o}).",
                txn.describe(),
                offsets.len(),
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
    use crate::history::{HistoryBuilder, OpKind, PartitionOffset, SendValue, TxnEnd, TxnValue};

    const IN: &str = "in";

    /// A transaction's outputs: (value, source, offset).
    type Outs<'s> = &'s [(&'s str, &'s str, i64)];

    /// One pipeline transaction of process 1: outputs `(value, source, offset)` to partition 0
    /// of `T` and commits group "g"'s offset `upto` of partition 0 of `IN`.
    fn pipeline_txn(b: &mut HistoryBuilder, outs: &[(&str, &str, i64)], upto: i64) {
        let mut inv = TxnValue::new("pipe", TxnEnd::Commit);
        inv.group = Some("g".into());
        inv.offsets = vec![PartitionOffset {
            topic: IN.into(),
            partition: 0,
            offset: upto,
        }];
        let mut done = inv.clone();
        for &(v, src, o) in outs {
            let mut s = SendValue::new(T, 0, v);
            s.source = Some(src.into());
            inv = inv.send(s.clone());
            done = done.send(s.acked(o));
        }
        let i = b.invoke(1, inv);
        b.advance(1_000);
        done.end_sent_ns = Some(b.now_ns());
        b.complete(1, i, OpKind::Ok, done);
    }

    /// Inputs "i0", "i1" at offsets 0, 1 of `IN`; the pipeline's transactions; final reads.
    fn history(txns: &[(Outs<'_>, i64)], outputs: &[(i64, &str)], hwm: i64) -> crate::History {
        let mut b = HistoryBuilder::new();
        for (o, v) in [(0, "i0"), (1, "i1")] {
            let s = SendValue::new(IN, 0, v);
            b.call(2, s.clone(), OpKind::Ok, s.acked(o));
        }
        for (outs, upto) in txns {
            pipeline_txn(&mut b, outs, *upto);
        }
        let mut input = crate::history::FinalReadValue::new(IN, 0).contiguous(&["i0", "i1"]);
        input.hwm = Some(2);
        b.call(
            20,
            crate::history::FinalReadValue::new(IN, 0),
            OpKind::Ok,
            input,
        );
        let markers: Vec<(i64, i64)> = (0..hwm)
            .filter(|o| !outputs.iter().any(|r| r.0 == *o))
            .map(|o| (o, o + 1))
            .collect();
        final_read_hidden(&mut b, 20, 0, outputs, &markers, hwm);
        b.build()
    }

    #[test]
    fn silent_when_each_input_has_one_committed_output() {
        let h = history(
            &[(&[("o0", "i0", 0)], 1), (&[("o1", "i1", 2)], 2)],
            &[(0, "o0"), (2, "o1")],
            4,
        );
        h.validate().unwrap();
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");
    }

    #[test]
    fn fires_when_an_input_is_processed_twice() {
        let h = history(
            &[
                (&[("o0", "i0", 0)], 1),
                (&[("o0b", "i0", 2), ("o1", "i1", 3)], 2),
            ],
            &[(0, "o0"), (2, "o0b"), (3, "o1")],
            5,
        );
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::ExactlyOnce], "{f:#?}");
        assert_eq!((f[0].topic.as_str(), f[0].offsets.clone()), (IN, vec![0]));
        assert!(
            f[0].explanation.contains("processed 2 times"),
            "{}",
            f[0].explanation
        );
    }

    #[test]
    fn fires_when_a_committed_offset_passes_an_input_without_output() {
        let h = history(&[(&[("o1", "i1", 0)], 2)], &[(0, "o1")], 2);
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::ExactlyOnce], "{f:#?}");
        assert_eq!(f[0].offsets, vec![0]);
        assert!(f[0].explanation.contains("skipped"), "{}", f[0].explanation);
    }
}
