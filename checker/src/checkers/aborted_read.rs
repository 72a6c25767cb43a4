//! **aborted-read** (Jepsen's G1a): a read_committed reader returned a record written by a
//! transaction that definitely did not commit (`fail`, or `ok` ended with abort). Kafka keeps
//! an aborted transaction's records in the log but a read_committed consumer must skip them.
//!
//! Readers: polls (and transactions' polls) of a process whose `client` op says
//! `read_committed`, and final reads (read_committed in a history with transactions). A
//! value is an aborted transaction's when every send of it was in such a transaction (values
//! are unique; a value sent again later is judged by that send). One finding per aborted
//! transaction and partition, listing the offsets read.
//!
//! Data-loss class: the committed log a reader sees holds records nobody committed.

use super::{q, ranges, Anomaly, Finding, Index, SeenOfTxn};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    if ix.txns.is_empty() {
        return Vec::new();
    }
    // (aborted txn, partition) → (offsets, reader ops, first value).
    let mut found = SeenOfTxn::new();
    for r in &ix.reads {
        let committed_reader = if r.final_read {
            ix.final_reads_committed(r.process)
        } else {
            ix.read_committed(r.process)
        };
        if !committed_reader {
            continue;
        }
        let mut sends = ix.sends_of_id(r.vid).peekable();
        let Some(t) = sends.peek().and_then(|s| s.txn) else {
            continue;
        };
        if !sends.all(|s| s.txn.is_some_and(|t| ix.txns[t].aborted())) {
            continue;
        }
        let e = found
            .entry((t, ix.tp(r.pid)))
            .or_insert_with(|| (Vec::new(), Vec::new(), ix.value(r.vid)));
        e.0.push(r.offset);
        e.1.push(r.op);
    }
    found
        .into_iter()
        .map(|((t, tp), (mut offsets, readers, value))| {
            offsets.sort_unstable();
            offsets.dedup();
            let txn = &ix.txns[t];
            let ops = readers.iter().copied().chain([txn.op]).collect();
            Finding::new(
                Anomaly::AbortedRead,
                tp,
                offsets.clone(),
                ops,
                format!(
                    "Read-committed readers returned records of {} at offset(s) {} (first {}): a transaction that did not commit must stay invisible to them.",
                    txn.describe(),
                    ranges(&offsets),
                    q(value)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, OpKind, TxnEnd};

    /// Process 1 commits "a" (offset 0), process 2's transaction with "x" (offset 2) ends
    /// `end`/`kind`; read_committed consumer 10 polls `polled`; the final read holds `log`.
    fn history(
        end: TxnEnd,
        kind: OpKind,
        polled: &[(i64, &str)],
        log: &[(i64, &str)],
    ) -> crate::History {
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 10);
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "a", 0)]);
        txn(&mut b, 2, end, kind, &[(0, "x", 2)]);
        poll(&mut b, 10, 0, polled, 4);
        // Commit marker at 1, "x" at 2, its marker at 3.
        let hidden: &[(i64, i64)] = if log.len() == 2 {
            &[(1, 2), (3, 4)]
        } else {
            &[(1, 4)]
        };
        final_read_hidden(&mut b, 20, 0, log, hidden, 4);
        b.build()
    }

    #[test]
    fn fires_when_a_read_committed_poll_returns_an_aborted_record() {
        for (end, kind) in [(TxnEnd::Abort, OpKind::Ok), (TxnEnd::Commit, OpKind::Fail)] {
            let h = history(end, kind, &[(0, "a"), (2, "x")], &[(0, "a")]);
            h.validate().unwrap();
            let f = check(&h);
            assert_eq!(anomalies(&f), vec![Anomaly::AbortedRead], "{f:#?}");
            assert_eq!(f[0].offsets, vec![2]);
            assert!(
                f[0].explanation.contains("\"tx-2\""),
                "{}",
                f[0].explanation
            );
        }
    }

    #[test]
    fn fires_when_the_final_read_holds_an_aborted_record() {
        let h = history(
            TxnEnd::Abort,
            OpKind::Ok,
            &[(0, "a")],
            &[(0, "a"), (2, "x")],
        );
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::AbortedRead], "{f:#?}");
        assert_eq!(f[0].ops, vec![5, 9]);
    }

    #[test]
    fn silent_when_the_writer_committed_or_may_have() {
        for kind in [OpKind::Ok, OpKind::Info] {
            let h = history(
                TxnEnd::Commit,
                kind,
                &[(0, "a"), (2, "x")],
                &[(0, "a"), (2, "x")],
            );
            assert!(check(&h).is_empty());
        }
        // Aborted and unseen by read_committed readers: nothing, from any checker.
        let h = history(TxnEnd::Abort, OpKind::Ok, &[(0, "a")], &[(0, "a")]);
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");
    }

    #[test]
    fn silent_for_a_read_uncommitted_consumer() {
        let mut b = HistoryBuilder::new();
        txn(&mut b, 2, TxnEnd::Abort, OpKind::Ok, &[(0, "x", 0)]);
        poll(&mut b, 10, 0, &[(0, "x")], 2);
        assert!(check(&b.build()).is_empty());
    }
}
