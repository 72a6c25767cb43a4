//! **txn-lost-write**: a transaction ended `ok` with commit, and none of its records that a
//! final read reached (acknowledged offset below the final hwm) is in the read_committed final
//! reads. The sends of transactions are judged here and in [`super::torn_transaction`] (when
//! some of them are visible), not by [`super::lost_write`]: one finding per transaction.
//!
//! Data-loss class: a committed transaction's records are gone.

use super::torn_transaction::{judge, listed};
use super::{Anomaly, Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for txn in ix.txns.iter().filter(|t| t.committed()) {
        let j = judge(ix, txn);
        if !j.visible.is_empty() || j.missing.is_empty() {
            continue;
        }
        let first = &ix.sends[j.missing[0]];
        out.push(Finding::new(
            Anomaly::TxnLostWrite,
            ix.tp(first.pid),
            j.missing
                .iter()
                .filter_map(|&i| ix.sends[i].offset)
                .collect(),
            j.readers.iter().copied().chain([txn.op]).collect(),
            format!(
                "{} committed, but its record(s) {} are not in the final reads that reached them.",
                txn.describe(),
                listed(ix, &j.missing)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, OpKind, TxnEnd};

    /// Process 1 commits "a" at offset 0 (marker at 1), process 2's transaction with "b" at 2
    /// (marker at 3) ends `end`; the final read holds `log`.
    fn history(end: TxnEnd, log: &[(i64, &str)], hidden: &[(i64, i64)]) -> crate::History {
        let mut b = HistoryBuilder::new();
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "a", 0)]);
        txn(&mut b, 2, end, OpKind::Ok, &[(0, "b", 2)]);
        final_read_hidden(&mut b, 20, 0, log, hidden, 4);
        b.build()
    }

    #[test]
    fn fires_when_a_committed_transaction_is_missing_from_the_final_read() {
        let h = history(TxnEnd::Commit, &[(0, "a")], &[(1, 4)]);
        h.validate().unwrap();
        let all = crate::checkers::run_all(&h, &Default::default());
        assert_eq!(anomalies(&all), vec![Anomaly::TxnLostWrite], "{all:#?}");
        assert_eq!(all[0].offsets, vec![2]);
        assert_eq!(all[0].ops, vec![3, 5]);
    }

    #[test]
    fn silent_when_it_is_there_or_was_aborted() {
        let h = history(TxnEnd::Commit, &[(0, "a"), (2, "b")], &[(1, 2), (3, 4)]);
        assert!(crate::checkers::run_all(&h, &Default::default()).is_empty());
        let h = history(TxnEnd::Abort, &[(0, "a")], &[(1, 4)]);
        assert!(crate::checkers::run_all(&h, &Default::default()).is_empty());
    }
}
