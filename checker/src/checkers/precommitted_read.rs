//! **precommitted-read**: a read_committed consumer's poll returned a record of a transaction
//! before that transaction was ended: the poll completed before the writer sent EndTxn
//! (`end_sent_ns`), or the writer never sent it. Its records were not committed yet, so a
//! read_committed fetch (which stops at the last stable offset) must not have returned them.
//!
//! A read inside a transaction is dated by the transaction's completion (it came no later).
//! Writers that definitely did not commit are [`super::aborted_read`]'s. A writer without
//! `end_sent_ns` is judged "never ended" only when it has an `info` completion and the history
//! records `end_sent_ns` at all (a client that does not record it proves nothing). Final reads
//! come after every transaction ended and are not judged. One finding per writer transaction
//! and partition.
//!
//! Contract class: the records did commit in the end; the reader saw them too early.

use super::{q, ranges, Anomaly, Finding, Index, SeenOfTxn};
use crate::history::{History, OpKind};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    if ix.txns.is_empty() {
        return Vec::new();
    }
    let records_end = ix.txns.iter().any(|t| t.value.end_sent_ns.is_some());
    // The reader was done at `read_ns`, before the writer `t` ended (or it never did).
    let early = |t: usize, read_ns: u64| {
        let txn = &ix.txns[t];
        if txn.aborted() {
            return false;
        }
        match txn.value.end_sent_ns {
            Some(end) => read_ns < end,
            None => records_end && txn.outcome == OpKind::Info && txn.done_ns.is_some(),
        }
    };
    // (writer txn, partition) → (offsets, reader ops, first value).
    let mut found = SeenOfTxn::new();
    for r in &ix.reads {
        if r.final_read || !ix.read_committed(r.process) {
            continue;
        }
        let mut sends = ix.sends_of_id(r.vid).peekable();
        let Some(t) = sends.peek().and_then(|s| s.txn) else {
            continue;
        };
        // Not the reader's own transaction, and every send of the value too early for it.
        if ix.txns[t].op == r.op || !sends.all(|s| s.txn.is_some_and(|t| early(t, r.time_ns))) {
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
            let when = match txn.value.end_sent_ns {
                Some(end) => format!("before it sent EndTxn (at {end} ns)"),
                None => "although it never sent EndTxn".to_owned(),
            };
            Finding::new(
                Anomaly::PrecommittedRead,
                tp,
                offsets.clone(),
                readers.iter().copied().chain([txn.op]).collect(),
                format!(
                    "Read-committed polls returned records of {} at offset(s) {} (first {}) {when}: they were not committed yet.",
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
    use crate::history::{HistoryBuilder, PollValue, SendValue, TxnEnd, TxnValue};

    /// Transaction of process 1 sends "x" at 0; read_committed consumer 10's poll returning it
    /// completes `before` EndTxn is sent, or after.
    fn history(before: bool) -> crate::History {
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 10);
        let inv = TxnValue::new("tx-1", TxnEnd::Commit).send(SendValue::new(T, 0, "x"));
        let i = b.invoke(1, inv.clone());
        b.advance(1_000);
        let poll_value = PollValue::default().record(T, 0, 0, "x").hwm(T, 0, 2);
        if before {
            b.call(10, PollValue::default(), OpKind::Ok, poll_value.clone());
        }
        b.advance(1_000);
        let mut done =
            TxnValue::new("tx-1", TxnEnd::Commit).send(SendValue::new(T, 0, "x").acked(0));
        done.end_sent_ns = Some(b.now_ns());
        b.advance(1_000);
        b.complete(1, i, OpKind::Ok, done);
        if !before {
            b.call(10, PollValue::default(), OpKind::Ok, poll_value);
        }
        final_read_hidden(&mut b, 20, 0, &[(0, "x")], &[(1, 2)], 2);
        b.build()
    }

    #[test]
    fn fires_when_a_poll_returns_a_record_before_its_transaction_ended() {
        let h = history(true);
        h.validate().unwrap();
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::PrecommittedRead], "{f:#?}");
        assert_eq!(f[0].offsets, vec![0]);
        assert_eq!(f[0].ops, vec![4, 5]);
    }

    #[test]
    fn silent_when_the_poll_came_after_end_txn() {
        let h = history(false);
        h.validate().unwrap();
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");
    }
}
