//! **duplicate** (Jepsen's `duplicate`): one value at two or more positions (partition and
//! offset) of the log, as the log is known from every read *and* every `ok` send's acknowledged
//! offset (Jepsen's version order, built from polls and from sends whose effects were visible).
//! Values are unique per workload, so the log holds it twice: a value acknowledged at 5 and read
//! at 2 is a duplicate, whether or not offset 5 was ever read. (What offset 5 holds is
//! [`super::inconsistent_offsets`]' business.) With
//! [`CheckerConfig::allow_duplicates_from_retries`] a duplicate is tolerated when some send of the
//! value did not end `ok` (a retry without idempotence may write twice), unless every send of it
//! came from a process whose `client` op says it is an idempotent producer: those retries keep
//! their sequence numbers, so the broker must not write them twice.
//!
//! A value sent in a transaction that did not (or may not have) committed is never a
//! duplicate: an aborted transaction's records stay in the log, so the client may rightly
//! send the value again in a later one.

use std::collections::BTreeMap;

use super::{q, Anomaly, CheckerConfig, FastMap, Finding, Index, Tp};
use crate::history::{History, OpKind};

pub fn check(history: &History) -> Vec<Finding> {
    check_with(history, &CheckerConfig::default())
}

pub fn check_with(history: &History, config: &CheckerConfig) -> Vec<Finding> {
    run(&Index::new(history), config)
}

/// Values at two positions or more: those read at two (found while indexing), then those an ack
/// puts somewhere a read or another ack does not, in partition and offset order.
fn candidates<'a>(ix: &Index<'a>) -> Vec<&'a str> {
    let mut out = ix.multi_position.clone();
    // Lookups only.
    let mut seen: FastMap<u32, ()> = FastMap::default();
    for (_, part) in ix.parts() {
        for &(o, i) in &part.acks {
            let s = &ix.sends[i];
            // The common case, cheaply: the ack's offset was read with its value, so the ack
            // adds no position that reads lack. Another ok send of the value is looked for from
            // the earlier of the two (whose chain goes on).
            let confirmed = part.reads_at(o).any(|r| ix.reads[r].vid == s.vid);
            if confirmed && !ix.has_later_send(i) {
                continue;
            }
            // (The ack is in its own partition's list: `s.pid` is this partition.)
            let elsewhere = ix
                .reads_of_id(s.vid)
                .any(|r| (r.pid, r.offset) != (s.pid, o))
                || ix
                    .sends_of_id(s.vid)
                    .any(|t| t.acked().is_some_and(|a| (t.pid, a) != (s.pid, o)));
            if elsewhere && !ix.flagged_id(s.vid) && seen.insert(s.vid, ()).is_none() {
                out.push(ix.value(s.vid));
            }
        }
    }
    out
}

pub(crate) fn run(ix: &Index<'_>, config: &CheckerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for value in candidates(ix) {
        // Position → (first read there, else its ack's send; only acknowledged).
        let mut positions: BTreeMap<Tp<'_>, BTreeMap<i64, (u64, bool)>> = BTreeMap::new();
        for r in ix.reads_of(value) {
            positions
                .entry(ix.tp(r.pid))
                .or_default()
                .entry(r.offset)
                .or_insert((r.op, false));
        }
        for s in ix.sends_of(value) {
            if let Some(o) = s.acked() {
                positions
                    .entry(ix.tp(s.pid))
                    .or_default()
                    .entry(o)
                    .or_insert((s.op, true));
            }
        }
        let count: usize = positions.values().map(BTreeMap::len).sum();
        let sends: Vec<_> = ix.sends_of(value).collect();
        if sends
            .iter()
            .any(|s| s.txn.is_some_and(|t| !ix.txns[t].committed()))
        {
            continue;
        }
        let retried = sends.iter().any(|s| s.outcome != OpKind::Ok);
        let idempotent = !sends.is_empty() && sends.iter().all(|s| ix.idempotent(s.process));
        if config.allow_duplicates_from_retries && retried && !idempotent {
            continue;
        }
        let Some((&tp, _)) = positions.iter().next() else {
            continue;
        };
        let where_: Vec<String> = positions
            .iter()
            .flat_map(|(tp, offs)| {
                offs.iter().map(move |(o, &(_, acked_only))| {
                    let how = if acked_only { " (acknowledged)" } else { "" };
                    format!("{}/{}@{o}{how}", tp.0, tp.1)
                })
            })
            .collect();
        let offsets = positions.values().flat_map(|o| o.keys().copied()).collect();
        let ops = sends
            .iter()
            .map(|s| s.op)
            .chain(positions.values().flat_map(|o| o.values().map(|p| p.0)))
            .collect();
        let why = match (retried, idempotent) {
            (true, true) => {
                " (a send of it had no ok outcome, but its producer is idempotent: a retry must not write twice)"
            }
            (true, false) => " (a send of it had no ok outcome: retry without idempotence)",
            (false, _) => "",
        };
        out.push(Finding::new(
            Anomaly::Duplicate,
            tp,
            offsets,
            ops,
            format!(
                "Value {} appears at {} positions: {}{why}.",
                q(value),
                count,
                where_.join(", ")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::HistoryBuilder;

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    fn twice(outcome: OpKind) -> crate::History {
        let mut b = HistoryBuilder::new();
        if outcome == OpKind::Ok {
            send(&mut b, 1, 0, "a", 0);
        } else {
            send_outcome(&mut b, 1, 0, "a", outcome);
            send(&mut b, 1, 0, "a", 1);
        }
        final_read(&mut b, 20, 0, &["a", "a"]);
        b.build()
    }

    #[test]
    fn fires_when_a_value_is_at_two_offsets() {
        let f = check(&twice(OpKind::Ok));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::Duplicate);
        assert_eq!(f[0].offsets, vec![0, 1]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn tolerates_retries_unless_strict() {
        let h = twice(OpKind::Info);
        assert!(check(&h).is_empty());
        let strict = CheckerConfig {
            allow_duplicates_from_retries: false,
            ..CheckerConfig::default()
        };
        let f = check_with(&h, &strict);
        assert_eq!(f.len(), 1);
        assert!(f[0].explanation.contains("retry"), "{}", f[0].explanation);
    }

    /// "a" sent by process 1 (an idempotent producer or not), first with an unknown outcome,
    /// then acknowledged, and read twice.
    fn retried_by(idempotent: bool) -> crate::History {
        let mut b = HistoryBuilder::new();
        client(&mut b, 1, "producer", idempotent, 5);
        send_outcome(&mut b, 1, 0, "a", OpKind::Info);
        send(&mut b, 1, 0, "a", 1);
        final_read(&mut b, 20, 0, &["a", "a"]);
        b.build()
    }

    #[test]
    fn fires_after_retries_of_an_idempotent_producer_even_when_tolerant() {
        let h = retried_by(true);
        let tolerant = CheckerConfig::default();
        assert!(tolerant.allow_duplicates_from_retries);
        let f = check_with(&h, &tolerant);
        assert_eq!(anomalies(&f), vec![Anomaly::Duplicate], "{f:#?}");
        assert!(
            f[0].explanation.contains("idempotent"),
            "{}",
            f[0].explanation
        );
        let strict = CheckerConfig {
            allow_duplicates_from_retries: false,
            ..CheckerConfig::default()
        };
        assert_eq!(check_with(&h, &strict).len(), 1);
    }

    #[test]
    fn tolerates_retries_of_a_non_idempotent_producer() {
        assert!(check(&retried_by(false)).is_empty());
        // One send from a process that is not (known to be) idempotent makes the value tolerant.
        let mut b = HistoryBuilder::new();
        client(&mut b, 1, "producer", true, 5);
        send_outcome(&mut b, 1, 0, "a", OpKind::Info);
        send(&mut b, 2, 0, "a", 1);
        final_read(&mut b, 20, 0, &["a", "a"]);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_when_an_ack_and_a_read_put_a_value_at_two_offsets() {
        // Acknowledged at 5, read at 2, offset 5 never read: Jepsen's duplicate.
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        let p = poll(&mut b, 10, 0, &[(2, "a")], 6);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::Duplicate], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 5]);
        assert_eq!(f[0].ops, vec![1, p]);
        assert_eq!(
            f[0].explanation,
            "Value \"a\" appears at 2 positions: t/0@2, t/0@5 (acknowledged)."
        );
        // Two acks of one value at two offsets, never read, likewise.
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 3);
        send(&mut b, 1, 0, "a", 7);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::Duplicate], "{f:#?}");
        assert_eq!(f[0].offsets, vec![3, 7]);
    }

    #[test]
    fn silent_when_ack_and_reads_agree_on_one_position() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        final_read(&mut b, 20, 0, &["a", "b"]);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_when_the_same_offset_is_read_repeatedly() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        poll(&mut b, 10, 0, &[(0, "a")], 1);
        poll(&mut b, 11, 0, &[(0, "a")], 1);
        final_read(&mut b, 20, 0, &["a"]);
        assert!(check(&b.build()).is_empty());
    }
}
