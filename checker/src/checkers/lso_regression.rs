//! **lso-regression**: a partition's last stable offset went backwards in real time: a poll
//! invoked after another poll had completed reports a lower LSO for the partition than that
//! one did. The LSO (the offset below which every transaction is decided) only moves forward:
//! a transaction begins at or above it and only ends.
//!
//! LSOs come from `last_stable_offsets` of `ok` polls and of the polls inside `ok`
//! transactions (dated by the transaction's invoke and completion), of any process. Modelled on
//! [`super::hwm_regression`]; freshness class: a stale answer, no record lost.

use std::collections::BTreeMap;

use super::{Anomaly, Finding, Index, Tp};
use crate::history::{History, OpKind, PollValue, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// One observation: (invoke time, completion time, lso, completion op).
type Seen = (u64, u64, i64, u64);

pub(crate) fn run<'a>(ix: &Index<'a>) -> Vec<Finding> {
    let mut seen: BTreeMap<Tp<'a>, Vec<Seen>> = BTreeMap::new();
    let mut note = |p: &'a PollValue, inv: u64, done: u64, op: u64| {
        for l in &p.last_stable_offsets {
            let tp = (l.topic.as_str(), l.partition);
            seen.entry(tp).or_default().push((inv, done, l.lso, op));
        }
    };
    for pair in ix.pairs_of(&[F::Poll, F::Txn]) {
        let (Some(c), OpKind::Ok) = (pair.completion, pair.outcome()) else {
            continue;
        };
        match &c.value {
            Value::Poll(p) => note(p, pair.invoke.time_ns, c.time_ns, c.index),
            Value::Txn(t) => {
                for p in t.polls() {
                    note(p, pair.invoke.time_ns, c.time_ns, c.index);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (tp, mut list) in seen {
        // Sweep the invokes in time order against the completions before each.
        let mut done: Vec<Seen> = list.clone();
        done.sort_unstable_by_key(|s| (s.1, s.3));
        list.sort_unstable_by_key(|s| (s.0, s.3));
        let mut j = 0;
        let mut best: Option<Seen> = None;
        for s in list {
            while j < done.len() && done[j].1 < s.0 {
                if best.is_none_or(|b| done[j].2 > b.2) {
                    best = Some(done[j]);
                }
                j += 1;
            }
            let Some(b) = best.filter(|b| s.2 < b.2) else {
                continue;
            };
            out.push(Finding::new(
                Anomaly::LsoRegression,
                tp,
                vec![b.2, s.2],
                vec![b.3, s.3],
                format!(
                    "A poll reported a last stable offset of {} after an earlier poll (op {}) had reported {}.",
                    s.2, b.3, b.2
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::HistoryBuilder;

    fn lso_poll(b: &mut HistoryBuilder, process: u64, lso: i64) -> u64 {
        b.advance(1_000);
        let v = PollValue::default().hwm(T, 0, 9).lso(T, 0, lso);
        b.call(process, PollValue::default(), OpKind::Ok, v)
    }

    #[test]
    fn fires_when_a_later_poll_sees_a_lower_lso() {
        let mut b = HistoryBuilder::new();
        lso_poll(&mut b, 10, 5);
        lso_poll(&mut b, 11, 3);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::LsoRegression], "{f:#?}");
        assert_eq!(f[0].offsets, vec![5, 3]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn silent_when_lsos_only_rise_or_polls_overlap() {
        let mut b = HistoryBuilder::new();
        lso_poll(&mut b, 10, 3);
        lso_poll(&mut b, 11, 5);
        lso_poll(&mut b, 10, 5);
        assert!(check(&b.build()).is_empty());
        // Concurrent polls may see either order.
        let mut b = HistoryBuilder::new();
        let i = b.invoke(10, PollValue::default());
        lso_poll(&mut b, 11, 3);
        b.complete(10, i, OpKind::Ok, PollValue::default().lso(T, 0, 5));
        b.advance(1_000);
        let i = b.invoke(12, PollValue::default());
        b.complete(12, i, OpKind::Ok, PollValue::default().lso(T, 0, 4));
        let f = check(&b.build());
        // The last poll was invoked after both completed: 4 < 5 is a regression.
        assert_eq!(f.len(), 1, "{f:#?}");
        let mut b = HistoryBuilder::new();
        let i = b.invoke(10, PollValue::default());
        lso_poll(&mut b, 11, 3);
        b.complete(10, i, OpKind::Ok, PollValue::default().lso(T, 0, 5));
        assert!(check(&b.build()).is_empty());
    }
}
