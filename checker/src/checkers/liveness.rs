//! **liveness-after-heal**: every partition that was written to (or whose final read was
//! attempted) needs a successful final read after the faults healed. A missing or failed final
//! read means the cluster did not recover. Likewise every producer that sent after the last fault
//! event needs an acknowledgement after it: a cluster that accepts nothing after healing is not
//! live, even if it loses nothing. (The acknowledgement may be of a record handed over before the
//! heal: a pipelining producer's new records can wait behind a request lost during a fault.) A
//! transactional producer's `txn` ops count like its sends, one transaction as one record batch:
//! a transaction that ends `ok` (its commit or its abort went through) after the heal is
//! progress; transactions begun after it that fail, end `info` or never end are stalled
//! attempts.
//!
//! A history gets only the checks its facts support. This one needs a history from a run that
//! heals and then reads back, which riptide's runs say in their facts: a `final_read` op (the
//! read-back phase began), a nemesis event with a `phase` (riptide's nemesis records when each
//! fault starts and heals), or a `client` op (a riptide client describing itself). A history
//! with none of them (Jepsen's own, or one written by hand) gets no liveness finding at all:
//! Jepsen has no liveness check, and nothing says a read-back was due. A riptide run stopped
//! because a client never finished has its faults' and clients' facts, so its missing final
//! reads are still reported.

use std::collections::{BTreeMap, BTreeSet};

use super::{Anomaly, Finding, Index, Tp};
use crate::history::{History, OpKind, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(
        &Index::new(history),
        super::CheckerConfig::default().liveness_grace_ns,
    )
}

pub(crate) fn run(ix: &Index<'_>, grace_ns: u64) -> Vec<Finding> {
    if !judgeable(ix) {
        return Vec::new();
    }
    // Final-read attempts per partition (any outcome), by their last op.
    let mut attempts: BTreeMap<Tp<'_>, Vec<u64>> = BTreeMap::new();
    for p in ix.pairs_of(&[F::FinalRead]) {
        if let Value::FinalRead(fr) = &p.invoke.value {
            let tp = (fr.topic.as_str(), fr.partition);
            attempts.entry(tp).or_default().push(p.last().index);
        }
    }
    let mut out = Vec::new();
    for (tp, part) in ix.parts() {
        if !part.final_reads.is_empty() {
            continue;
        }
        let tried = attempts.remove(&tp).unwrap_or_default();
        if tried.is_empty() && !part.written {
            continue;
        }
        let explanation = match tried.len() {
            0 => "The partition was written to but no final read was attempted after healing."
                .to_owned(),
            n => format!(
                "No final read of the partition succeeded after healing ({n} attempt(s) failed or timed out)."
            ),
        };
        out.push(Finding::new(
            Anomaly::LivenessAfterHeal,
            tp,
            Vec::new(),
            tried,
            explanation,
        ));
    }
    out.extend(producers_stalled(ix, grace_ns));
    out
}

/// The history says it comes from a run that heals, then reads back (see the module doc).
fn judgeable(ix: &Index<'_>) -> bool {
    ix.pairs_of(&[F::FinalRead, F::Client, F::Fault])
        .any(|p| match &p.invoke.value {
            Value::FinalRead(_) | Value::Client(_) => true,
            Value::Fault(f) => f.detail.contains_key("phase"),
            _ => false,
        })
}

/// A process's sends and transactions invoked after the heal (op indices), the record batches
/// its sends travelled in, how many of the ops were transactions, whether any send of it was
/// acknowledged or any transaction of it ended `ok` after the heal, and the partition of the
/// first send (a transaction's first send).
#[derive(Default)]
struct AfterHeal<'a> {
    ops: Vec<u64>,
    batches: BTreeSet<Batch>,
    txns: usize,
    acked: bool,
    tp: Option<(&'a str, i32)>,
}

impl AfterHeal<'_> {
    /// Record batches and transactions: the attempts [`STALLED_AFTER`] counts.
    fn attempts(&self) -> usize {
        self.batches.len() + self.txns
    }
}

/// One record batch of a process: its number, or, in a history that does not say, the send
/// alone.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Batch {
    Numbered(u64),
    Send(u64),
}

/// A producer needs this many unacknowledged record batches after the grace period to count as
/// stalled: one batch can fail on a connection made before the heal (say, to a broker that
/// restarted since, which resets it when written to), and all its records share its fate.
const STALLED_AFTER: usize = 3;

/// Time a client needs, after its request timeout freed a connection, to reconnect and be
/// answered.
const RECONNECT_NS: u64 = 1_000_000_000;

/// Producers that invoked sends in at least `STALLED_AFTER` record batches (a transaction counts
/// as one) a grace period after the last fault event and got no acknowledgement (no transaction
/// ended `ok`) after that time. The grace is `grace_ns`, or longer for a
/// client whose own request timeout (from its self-description) is longer: a request written
/// into a partition that dropped it holds its connection, and every request pipelined behind
/// it, until that timeout, as a real client's would.
fn producers_stalled(ix: &Index<'_>, grace_ns: u64) -> Vec<Finding> {
    let last_fault_ns = ix
        .pairs
        .iter()
        .filter(|p| matches!(p.invoke.value, Value::Fault(_)))
        .map(|p| p.last().time_ns)
        .max()
        .unwrap_or(0);
    let grace = |process: u64| {
        ix.client(process)
            .and_then(|c| c.request_timeout_ns())
            .map_or(grace_ns, |t| grace_ns.max(t + RECONNECT_NS))
    };
    // Once per process, not per send.
    let mut healed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut after: BTreeMap<u64, AfterHeal<'_>> = BTreeMap::new();
    for p in ix.pairs_of(&[F::Send, F::Txn]) {
        // A send's record batch, or a transaction (and its first send, for the partition).
        let (batch, first) = match &p.invoke.value {
            Value::Send(s) => (
                Some(s.batch.map_or(Batch::Send(p.invoke.index), Batch::Numbered)),
                Some(s),
            ),
            Value::Txn(t) => (None, t.sends().next()),
            _ => continue,
        };
        let healed_ns = *healed
            .entry(p.invoke.process)
            .or_insert_with(|| last_fault_ns + grace(p.invoke.process));
        if p.last().time_ns < healed_ns {
            continue;
        }
        let e = after.entry(p.invoke.process).or_default();
        e.acked |= p.outcome() == OpKind::Ok;
        if p.invoke.time_ns >= healed_ns {
            e.ops.push(p.invoke.index);
            match batch {
                Some(b) => {
                    e.batches.insert(b);
                }
                None => e.txns += 1,
            }
            if let Some(s) = first {
                e.tp.get_or_insert((s.topic.as_str(), s.partition));
            }
        }
    }
    after
        .into_iter()
        .filter(|(_, a)| !a.acked && a.attempts() >= STALLED_AFTER)
        .map(|(process, a)| {
            let (records, batches, txns) = (a.ops.len() - a.txns, a.batches.len(), a.txns);
            let secs = grace(process) as f64 / 1e9;
            let explanation = match (records, txns) {
                (_, 0) => format!(
                    "Process {process} sent {records} record(s) in {batches} batch(es) more than {secs:.1} s after the last fault event and none was acknowledged."
                ),
                (0, _) => format!(
                    "Process {process} began {txns} transaction(s) more than {secs:.1} s after the last fault event and none ended with its commit or abort."
                ),
                _ => format!(
                    "Process {process} sent {records} record(s) in {batches} batch(es) and began {txns} transaction(s) more than {secs:.1} s after the last fault event; no record was acknowledged and no transaction ended with its commit or abort."
                ),
            };
            let mut ops = a.ops;
            ops.truncate(super::MAX_LISTED);
            Finding::new(
                Anomaly::LivenessAfterHeal,
                a.tp.unwrap_or(("", -1)),
                Vec::new(),
                ops,
                explanation,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{FinalReadValue, HistoryBuilder, OpKind};

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_when_a_producer_gets_no_ack_after_the_faults() {
        use crate::history::FaultValue;
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        b.advance(10);
        b.call(
            1000,
            FaultValue::new("crash"),
            OpKind::Ok,
            FaultValue::new("crash"),
        );
        // Within the grace period a failure says nothing; after it, it does.
        b.advance(1_000_000_000);
        send_outcome(&mut b, 1, 0, "early", OpKind::Fail);
        b.advance(3_000_000_000);
        send_outcome(&mut b, 1, 0, "b", OpKind::Fail);
        send_outcome(&mut b, 1, 0, "c", OpKind::Info);
        send_outcome(&mut b, 1, 0, "c2", OpKind::Fail);
        send(&mut b, 2, 0, "d", 1);
        final_read(&mut b, 20, 0, &["a", "d"]);
        let f = check(&b.build());
        assert!(
            !f.is_empty(),
            "a producer with no ack after the grace period must be flagged"
        );
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal]);
        assert!(
            f[0].explanation.starts_with("Process 1 "),
            "{}",
            f[0].explanation
        );
        assert_eq!(f[0].ops.len(), 3);
    }

    #[test]
    fn counts_record_batches_not_records() {
        use crate::history::{FaultValue, SendValue};
        // After the grace period, `batches` record batches of five records each fail with their
        // outcome unknown: one batch failing (say on a connection to a broker that restarted)
        // is not a stall; three are.
        let history = |batches: u64| {
            let mut b = HistoryBuilder::new();
            send(&mut b, 1, 0, "a", 0);
            b.call(
                1000,
                FaultValue::new("crash"),
                OpKind::Ok,
                FaultValue::new("crash"),
            );
            b.advance(10_000_000_000);
            for batch in 0..batches {
                for i in 0..5 {
                    let mut s = SendValue::new(T, 0, format!("b{batch}-{i}"));
                    s.batch = Some(batch);
                    b.call(1, s.clone(), OpKind::Info, s);
                }
            }
            final_read(&mut b, 20, 0, &["a"]);
            b.build()
        };
        assert!(check(&history(1)).is_empty());
        assert!(check(&history(2)).is_empty());
        let f = check(&history(3));
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal], "{f:#?}");
        assert!(
            f[0].explanation.contains("15 record(s) in 3 batch(es)"),
            "{}",
            f[0].explanation
        );
    }

    /// A transactional producer (process 1) that, a grace period after a fault, begins
    /// transactions that fail, end `info` and never end; with `one_ok`, one more commits.
    fn txn_producer_after_the_heal(one_ok: bool) -> crate::History {
        use crate::history::{FaultValue, TxnEnd, TxnValue};
        let mut b = HistoryBuilder::new();
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "a", 0)]);
        b.call(
            1000,
            FaultValue::new("crash"),
            OpKind::Ok,
            FaultValue::new("crash"),
        );
        b.advance(10_000_000_000);
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Fail, &[(0, "b", -1)]);
        txn(&mut b, 1, TxnEnd::Abort, OpKind::Info, &[(0, "c", -1)]);
        if one_ok {
            txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "d", 2)]);
        }
        final_read_hidden(&mut b, 20, 0, &[(0, "a")], &[(1, 2)], 2);
        // Begun, never ended: the run stopped first.
        b.invoke(
            1,
            TxnValue::new("tx-1", TxnEnd::Commit).send(crate::history::SendValue::new(T, 0, "e")),
        );
        b.build()
    }

    #[test]
    fn fires_when_a_transactional_producer_ends_no_transaction_after_the_faults() {
        let h = txn_producer_after_the_heal(false);
        let f = check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal], "{f:#?}");
        assert_eq!(
            f[0].explanation,
            "Process 1 began 3 transaction(s) more than 3.0 s after the last fault event and none ended with its commit or abort."
        );
        assert_eq!((f[0].topic.as_str(), f[0].partition), (T, 0));
        // The invokes of the three transactions after the heal.
        let invokes: Vec<u64> = h
            .pairs()
            .iter()
            .filter(|p| matches!(p.invoke.value, Value::Txn(_)))
            .skip(1)
            .map(|p| p.invoke.index)
            .collect();
        assert_eq!(f[0].ops, invokes);
    }

    #[test]
    fn one_transaction_ended_after_the_heal_is_progress() {
        assert!(check(&txn_producer_after_the_heal(true)).is_empty());
    }

    #[test]
    fn silent_on_a_history_without_final_reads() {
        use crate::history::FaultValue;
        // What a Jepsen history looks like: faults, a producer that stalls after them, a
        // partition never read back; but no read-back phase, so nothing to judge.
        let stalled = |with_final_read: bool| {
            let mut b = HistoryBuilder::new();
            send(&mut b, 1, 0, "a", 0);
            b.info(1000, FaultValue::new("start-partition"));
            b.info(1000, FaultValue::new("stop-partition"));
            b.advance(10_000_000_000);
            for v in ["b", "c", "d"] {
                send_outcome(&mut b, 1, 1, v, OpKind::Info);
            }
            if with_final_read {
                final_read(&mut b, 20, 0, &["a"]);
            }
            b.build()
        };
        assert!(check(&stalled(false)).is_empty());
        // The same history with a read-back phase: partition 1 was never read back and the
        // producer stalled.
        let f = check(&stalled(true));
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal; 2], "{f:#?}");
    }

    #[test]
    fn a_riptide_run_stopped_before_its_final_reads_still_fires() {
        use crate::history::FaultValue;
        // The run was stopped because a client never finished: no final read began, but
        // riptide's facts (a client's description, or the nemesis's phases) say one was due.
        for facts in ["client", "phase"] {
            let mut b = HistoryBuilder::new();
            if facts == "client" {
                client(&mut b, 1, "producer", true, 5);
            } else {
                b.info(1000, FaultValue::new("crash").with("phase", "start"));
                b.info(1000, FaultValue::new("crash").with("phase", "heal"));
            }
            send(&mut b, 1, 0, "a", 0);
            let f = check(&b.build());
            assert_eq!(
                anomalies(&f),
                vec![Anomaly::LivenessAfterHeal],
                "{facts}: {f:#?}"
            );
            assert_eq!(
                f[0].explanation,
                "The partition was written to but no final read was attempted after healing."
            );
        }
    }

    #[test]
    fn an_ack_after_the_heal_of_an_earlier_send_counts() {
        use crate::history::{FaultValue, SendValue};
        let mut b = HistoryBuilder::new();
        b.call(
            1000,
            FaultValue::new("crash"),
            OpKind::Ok,
            FaultValue::new("crash"),
        );
        // A record handed over during the fault, acknowledged only after the heal (its request
        // was lost and timed out); the records after the heal waited behind it and expired.
        let early = b.invoke(1, SendValue::new(T, 0, "early"));
        b.advance(4_000_000_000);
        let late: Vec<u64> = (0..3)
            .map(|i| b.invoke(1, SendValue::new(T, 0, format!("late{i}"))))
            .collect();
        b.advance(6_000_000_000);
        b.complete(1, early, OpKind::Ok, SendValue::new(T, 0, "early").acked(0));
        for (i, inv) in late.into_iter().enumerate() {
            b.complete(
                1,
                inv,
                OpKind::Fail,
                SendValue::new(T, 0, format!("late{i}")),
            );
        }
        final_read(&mut b, 20, 0, &["early"]);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_on_missing_and_failed_final_reads() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send_outcome(&mut b, 1, 1, "b", OpKind::Info);
        b.call(
            20,
            FinalReadValue::new(T, 1),
            OpKind::Fail,
            FinalReadValue::new(T, 1),
        );
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal; 2]);
        assert_eq!((f[0].partition, f[0].ops.clone()), (0, vec![]));
        assert_eq!((f[1].partition, f[1].ops.clone()), (1, vec![5]));
    }

    #[test]
    fn a_client_with_a_long_request_timeout_gets_that_long_to_recover() {
        use crate::history::{ClientValue, FaultValue};
        // Sends 3.5 s after the heal, none acknowledged: a stall for a client that gives up on a
        // response after 1 s, not yet for one that waits 4 s (its connection may still hold a
        // request the partition dropped).
        let history = |timeout_ms: u64| {
            let mut b = HistoryBuilder::new();
            let mut v = ClientValue {
                role: "producer".into(),
                ..ClientValue::default()
            };
            v.profile
                .insert("request_timeout_ms".into(), serde_json::json!(timeout_ms));
            client_op(&mut b, 1, v);
            b.call(
                1000,
                FaultValue::new("crash"),
                OpKind::Ok,
                FaultValue::new("crash"),
            );
            b.advance(3_500_000_000);
            for k in ["b", "c", "d"] {
                send_outcome(&mut b, 1, 0, k, OpKind::Fail);
            }
            final_read(&mut b, 20, 0, &[]);
            b.build()
        };
        assert_eq!(
            anomalies(&check(&history(1000))),
            vec![Anomaly::LivenessAfterHeal]
        );
        assert!(check(&history(4000)).is_empty());
    }
}
