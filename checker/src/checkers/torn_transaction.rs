//! **torn-transaction**: a transaction that committed, or may have (`ok` ended with commit, or
//! `info`), is visible in part: some of its records are in the read_committed final reads and
//! others, whose partition was final-read, are not. A transaction is all or nothing.
//!
//! A send is judged when its partition has a successful final read that reached it (its
//! acknowledged offset is below the final hwm; a send without an offset is judged by any final
//! read of its partition). A send below its partition's final log start was removed on
//! purpose: it is not judged (nor, once the log start moved, a send without an offset). A
//! committed transaction none of whose judged records is visible is
//! [`super::txn_lost_write`]'s instead: each transaction is reported once.
//!
//! Data-loss class: the committed records that are missing are lost, or the aborted part of a
//! transaction is visible.

use super::{q, Anomaly, Finding, Index, Txn};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// A transaction's judged sends (indices into `Index::sends`): visible in a final read, and
/// missing from every final read that reached them.
pub(crate) struct Judged {
    pub visible: Vec<usize>,
    pub missing: Vec<usize>,
    /// The final reads that reached the missing ones.
    pub readers: Vec<u64>,
}

pub(crate) fn judge(ix: &Index<'_>, txn: &Txn<'_>) -> Judged {
    let mut j = Judged {
        visible: Vec::new(),
        missing: Vec::new(),
        readers: Vec::new(),
    };
    for i in txn.sends.clone() {
        let s = &ix.sends[i];
        let part = ix.part_at(s.pid);
        let Some((hwm, fr_op)) = part.max_final_hwm else {
            continue;
        };
        if s.offset.is_some_and(|o| o >= hwm) {
            continue;
        }
        // Removed on purpose below the log start: neither visible nor missing. Without an
        // offset it cannot be told from a removed one once the log start moved.
        if s.offset.map_or(part.log_start() > 0, |o| part.removed(o)) {
            continue;
        }
        if ix
            .reads_of_id(s.vid)
            .any(|r| r.final_read && r.pid == s.pid)
        {
            j.visible.push(i);
        } else {
            j.missing.push(i);
            j.readers.push(fr_op);
        }
    }
    j
}

/// `"a" (t/0@3), "b" (t/1)`: sends for an explanation.
pub(crate) fn listed(ix: &Index<'_>, sends: &[usize]) -> String {
    let mut parts: Vec<String> = sends
        .iter()
        .take(8)
        .map(|&i| {
            let s = &ix.sends[i];
            match s.offset {
                Some(o) => format!(
                    "{} ({}/{}@{o})",
                    q(ix.value(s.vid)),
                    ix.tp(s.pid).0,
                    ix.tp(s.pid).1
                ),
                None => format!(
                    "{} ({}/{})",
                    q(ix.value(s.vid)),
                    ix.tp(s.pid).0,
                    ix.tp(s.pid).1
                ),
            }
        })
        .collect();
    if sends.len() > 8 {
        parts.push(format!("and {} more", sends.len() - 8));
    }
    parts.join(", ")
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for txn in &ix.txns {
        if txn.aborted() {
            continue;
        }
        let j = judge(ix, txn);
        if j.visible.is_empty() || j.missing.is_empty() {
            continue;
        }
        let first = &ix.sends[j.missing[0]];
        out.push(Finding::new(
            Anomaly::TornTransaction,
            ix.tp(first.pid),
            j.missing.iter().filter_map(|&i| ix.sends[i].offset).collect(),
            j.readers.iter().copied().chain([txn.op]).collect(),
            format!(
                "Only part of {} is in the final reads: {} visible, {} missing: {}. A transaction is all or nothing.",
                txn.describe(),
                listed(ix, &j.visible),
                j.missing.len(),
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

    /// Process 1's transaction writes "a" to partition 0 (offset 0) and "b" to partition 1
    /// (offset 0), completing `kind`; the final reads hold `p0` and `p1`.
    fn history(kind: OpKind, p0: &[(i64, &str)], p1: &[(i64, &str)]) -> crate::History {
        let mut b = HistoryBuilder::new();
        txn(&mut b, 1, TxnEnd::Commit, kind, &[(0, "a", 0), (1, "b", 0)]);
        final_read_hidden(&mut b, 20, 0, p0, &[(1, 2)], 2);
        final_read_hidden(&mut b, 20, 1, p1, &[(1, 2)], 2);
        b.build()
    }

    #[test]
    fn fires_when_a_transaction_is_visible_in_part() {
        for kind in [OpKind::Ok, OpKind::Info] {
            let h = history(kind, &[(0, "a")], &[]);
            h.validate().unwrap();
            let f = check(&h);
            assert_eq!(anomalies(&f), vec![Anomaly::TornTransaction], "{f:#?}");
            assert_eq!((f[0].topic.as_str(), f[0].partition), (T, 1));
            assert!(f[0].explanation.contains("\"b\""), "{}", f[0].explanation);
        }
    }

    #[test]
    fn silent_when_a_transaction_is_all_or_nothing() {
        let h = history(OpKind::Ok, &[(0, "a")], &[(0, "b")]);
        assert!(crate::checkers::run_all(&h, &Default::default()).is_empty());
        // An unknown outcome that did not commit: nothing visible, nothing to say.
        let h = history(OpKind::Info, &[], &[]);
        assert!(check(&h).is_empty());
    }
}
