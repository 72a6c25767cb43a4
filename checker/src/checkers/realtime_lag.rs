//! **Realtime lag** (Jepsen's `realtime-lag`): how long a consumer that kept polling a partition
//! went without seeing a record that was known to exist. A figure of the report, not a failure;
//! with [`super::CheckerConfig::max_realtime_lag_ns`] set, a partition whose worst lag is above
//! the bound is a **realtime-lag** finding (freshness).
//!
//! Computed as Jepsen computes it. First, per partition, the time each offset was first known to
//! exist: the completion time of the first `ok` op that showed that offset or a higher one (an
//! acknowledged send, a poll's records, a final read's records). Then each consumer process is
//! walked through its `ok` polls, keeping the highest offset it has seen per partition: an
//! `assign` keeps the partitions still assigned and starts the new ones at -1 (nothing seen), a
//! partition first met in a poll joins the map. At every `ok` poll, for every partition in the
//! process's map (whether the poll returned records of it or not), after merging the poll's own
//! records: the lag is the poll's *invoke* time minus the time the next unseen offset was first
//! known to exist, or zero. It is a conservative lower bound: the poll could have been served as
//! early as its invoke. Seeks are not followed (Jepsen has none): the highest offset seen stays.
//! Final reads prove offsets exist but are not polls of a consumer, so they are not measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{q, Anomaly, Finding, Index, Tp};
use crate::history::{History, OpKind, Value};

/// The worst realtime lag measured on one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The lag, in nanoseconds (0: every poll saw everything known when it was invoked).
    pub lag_ns: u64,
    /// The consumer process and its poll (the completion's index, the invoke's time).
    pub process: u64,
    pub poll_op: u64,
    pub poll_time_ns: u64,
    /// With a lag: the first offset the consumer had not seen, its value when a send or read
    /// names it, when it was first known to exist and the op that showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_since_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_by_op: Option<u64>,
    /// How many (poll, partition) measurements there were.
    pub polls: usize,
}

/// One measurement: at `poll_time`, `process` had not seen `offset`, known since `since`.
struct Lag<'a> {
    tp: Tp<'a>,
    lag_ns: u64,
    process: u64,
    poll_op: u64,
    poll_time_ns: u64,
    offset: i64,
    known: Option<(u64, u64)>,
}

/// Per partition, the steps of the highest offset known to exist: (time, offset, op), both
/// strictly increasing.
type Known<'a> = BTreeMap<Tp<'a>, Vec<(u64, i64, u64)>>;

fn known<'a>(ix: &Index<'a>) -> Known<'a> {
    let mut events: Vec<(u64, u64, Tp<'a>, i64)> = Vec::new();
    for p in &ix.pairs {
        if p.outcome() != OpKind::Ok {
            continue;
        }
        let last = p.last();
        let mut note = |tp: Tp<'a>, o: i64| events.push((last.time_ns, last.index, tp, o));
        match &last.value {
            Value::Send(s) => {
                if let Some(o) = s.offset {
                    note((&s.topic, s.partition), o);
                }
            }
            Value::Poll(poll) => {
                // One event per partition of the poll: its highest offset.
                let mut top: BTreeMap<Tp<'a>, i64> = BTreeMap::new();
                for r in &poll.records {
                    let e = top.entry((&r.topic, r.partition)).or_insert(r.offset);
                    *e = (*e).max(r.offset);
                }
                for (tp, o) in top {
                    note(tp, o);
                }
            }
            Value::FinalRead(fr) => {
                if let Some(o) = fr.records.iter().map(|r| r.offset).max() {
                    note((&fr.topic, fr.partition), o);
                }
            }
            _ => {}
        }
    }
    events.sort_unstable();
    let mut out: Known<'a> = BTreeMap::new();
    for (time, op, tp, o) in events {
        let steps = out.entry(tp).or_default();
        if steps.last().is_none_or(|s| o > s.1) {
            steps.push((time, o, op));
        }
    }
    out
}

fn measure<'a>(ix: &Index<'a>) -> Vec<Lag<'a>> {
    let known = known(ix);
    let mut seen: BTreeMap<u64, BTreeMap<Tp<'a>, i64>> = BTreeMap::new();
    let mut out = Vec::new();
    for p in &ix.pairs {
        if p.outcome() != OpKind::Ok {
            continue;
        }
        let process = p.invoke.process;
        match &p.last().value {
            Value::Assign(a) => {
                let before = seen.remove(&process).unwrap_or_default();
                let now = a
                    .partitions
                    .iter()
                    .map(|t| {
                        let tp = (t.topic.as_str(), t.partition);
                        (tp, before.get(&tp).copied().unwrap_or(-1))
                    })
                    .collect();
                seen.insert(process, now);
            }
            Value::Poll(poll) => {
                let mine = seen.entry(process).or_default();
                for r in &poll.records {
                    let e = mine.entry((&r.topic, r.partition)).or_insert(-1);
                    *e = (*e).max(r.offset);
                }
                let invoked = p.invoke.time_ns;
                for (&tp, &max_seen) in mine.iter() {
                    let next = max_seen + 1;
                    let step = known.get(&tp).and_then(|steps| {
                        let i = steps.partition_point(|s| s.1 < next);
                        steps.get(i)
                    });
                    let lag_ns = step.map_or(0, |s| invoked.saturating_sub(s.0));
                    out.push(Lag {
                        tp,
                        lag_ns,
                        process,
                        poll_op: p.last().index,
                        poll_time_ns: invoked,
                        offset: next,
                        known: step.map(|s| (s.0, s.2)),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The value at `offset` of `tp`, from an ack there or else a read.
fn value_at(ix: &Index<'_>, tp: Tp<'_>, offset: i64) -> Option<String> {
    let part = ix.part(tp)?;
    let acked = part
        .ack_groups()
        .find(|g| g[0].0 == offset)
        .map(|g| ix.sends[g[0].1].value);
    acked
        .or_else(|| part.reads_at(offset).next().map(|i| ix.reads[i].value))
        .map(str::to_owned)
}

/// The worst lag of each partition some consumer polled, in partition order.
pub(crate) fn worst(ix: &Index<'_>) -> Vec<PartitionLag> {
    let mut by_tp: BTreeMap<Tp<'_>, (Lag<'_>, usize)> = BTreeMap::new();
    for m in measure(ix) {
        match by_tp.get_mut(&m.tp) {
            Some((w, n)) => {
                *n += 1;
                if m.lag_ns > w.lag_ns {
                    *w = m;
                }
            }
            None => {
                by_tp.insert(m.tp, (m, 1));
            }
        }
    }
    by_tp
        .into_values()
        .map(|(w, polls)| {
            let lagging = w.lag_ns > 0;
            PartitionLag {
                topic: w.tp.0.to_owned(),
                partition: w.tp.1,
                lag_ns: w.lag_ns,
                process: w.process,
                poll_op: w.poll_op,
                poll_time_ns: w.poll_time_ns,
                offset: lagging.then_some(w.offset),
                value: lagging.then(|| value_at(ix, w.tp, w.offset)).flatten(),
                known_since_ns: w.known.filter(|_| lagging).map(|k| k.0),
                known_by_op: w.known.filter(|_| lagging).map(|k| k.1),
                polls,
            }
        })
        .collect()
}

/// The figure for a history (what [`crate::Report`] shows).
pub fn figure(history: &History) -> Vec<PartitionLag> {
    worst(&Index::new(history))
}

/// A duration or a time for people: `1.250 s`, `3.000 ms`, `14.000 µs`, `0 ns`.
pub(crate) fn secs(ns: u64) -> String {
    match ns {
        1_000_000_000.. => format!("{:.3} s", ns as f64 / 1e9),
        1_000_000.. => format!("{:.3} ms", ns as f64 / 1e6),
        1_000.. => format!("{:.3} µs", ns as f64 / 1e3),
        _ => format!("{ns} ns"),
    }
}

/// A finding for each partition whose worst lag is above `bound_ns`.
pub(crate) fn run(ix: &Index<'_>, bound_ns: u64) -> Vec<Finding> {
    let mut above: BTreeMap<Tp<'_>, usize> = BTreeMap::new();
    for m in measure(ix) {
        if m.lag_ns > bound_ns {
            *above.entry(m.tp).or_default() += 1;
        }
    }
    worst(ix)
        .into_iter()
        .filter(|w| w.lag_ns > bound_ns)
        .map(|w| {
            let tp = (w.topic.as_str(), w.partition);
            let n = above.get(&tp).copied().unwrap_or(0);
            let record = match (&w.value, w.offset) {
                (Some(v), Some(o)) => format!("offset {o} ({})", q(v)),
                (None, Some(o)) => format!("offset {o}"),
                _ => "a record".to_owned(),
            };
            let since = match (w.known_since_ns, w.known_by_op) {
                (Some(t), Some(op)) => format!(", known to exist since {} (op {op})", secs(t)),
                _ => String::new(),
            };
            Finding::new(
                Anomaly::RealtimeLag,
                tp,
                w.offset.into_iter().collect(),
                w.known_by_op.into_iter().chain([w.poll_op]).collect(),
                format!(
                    "Process {} polled at {} without having seen {record}{since}: a realtime lag of {}, above the bound of {} ({n} of {} poll measurements above it).",
                    w.process,
                    secs(w.poll_time_ns),
                    secs(w.lag_ns),
                    secs(bound_ns),
                    w.polls
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::CheckerConfig;
    use crate::history::{HistoryBuilder, PollValue};

    const S: u64 = 1_000_000_000;

    /// Jepsen's docstring example, in seconds: x gets offset 0 at 1, a poll sees it at 2; x gets
    /// offset 1 at 3, a poll invoked at 4 sees nothing new: lag 1. Then a poll invoked at 7 sees
    /// offset 1: lag 0 there. Partition 1 is assigned and never written: lag 0.
    fn docstring() -> crate::History {
        let mut b = HistoryBuilder::new();
        let a = crate::history::AssignValue {
            partitions: vec![
                crate::history::TopicPartition::new(T, 0),
                crate::history::TopicPartition::new(T, 1),
            ],
        };
        b.call(10, a.clone(), OpKind::Ok, a);
        b.advance(S);
        send(&mut b, 1, 0, "a", 0); // t = 1
        b.advance(S);
        poll(&mut b, 10, 0, &[(0, "a")], 1); // t = 2
        b.advance(S);
        send(&mut b, 1, 0, "b", 1); // t = 3
        b.advance(S);
        b.invoke(10, PollValue::default()); // t = 4
        b.advance(S);
        b.ok(10, PollValue::default().hwm(T, 0, 2)); // t = 5
        b.advance(2 * S);
        poll(&mut b, 10, 0, &[(1, "b")], 2); // t = 7
        b.build()
    }

    #[test]
    fn computes_jepsens_lag_on_its_docstring_example() {
        let lags = figure(&docstring());
        assert_eq!(lags.len(), 2, "{lags:#?}");
        assert_eq!(
            lags[0],
            PartitionLag {
                topic: T.into(),
                partition: 0,
                lag_ns: S,
                process: 10,
                poll_op: 9,
                poll_time_ns: 4 * S,
                offset: Some(1),
                value: Some("b".into()),
                known_since_ns: Some(3 * S),
                known_by_op: Some(7),
                polls: 3,
            }
        );
        assert_eq!(
            (lags[1].partition, lags[1].lag_ns, lags[1].offset),
            (1, 0, None)
        );
    }

    #[test]
    fn a_consumer_that_starts_behind_lags_from_the_first_record() {
        // Assigned at 0 and first polling at 5 s, when offset 0 has existed since 1 s.
        let mut b = HistoryBuilder::new();
        assign(&mut b, 10, 0);
        b.advance(S);
        send(&mut b, 1, 0, "a", 0);
        b.advance(4 * S);
        let p = poll(&mut b, 10, 0, &[], 1);
        let lags = figure(&b.build());
        assert_eq!(
            (lags[0].lag_ns, lags[0].poll_op, lags[0].offset),
            (4 * S, p, Some(0))
        );
    }

    #[test]
    fn the_bound_fires_above_the_worst_lag_and_stays_silent_at_or_above_it() {
        let h = docstring();
        let ix = Index::new(&h);
        let f = run(&ix, S / 2);
        assert_eq!(anomalies(&f), vec![Anomaly::RealtimeLag], "{f:#?}");
        assert_eq!(
            (f[0].partition, f[0].offsets.clone(), f[0].ops.clone()),
            (0, vec![1], vec![7, 9])
        );
        assert_eq!(
            f[0].explanation,
            "Process 10 polled at 4.000 s without having seen offset 1 (\"b\"), known to exist since 3.000 s (op 7): a realtime lag of 1.000 s, above the bound of 500.000 ms (1 of 3 poll measurements above it)."
        );
        assert!(run(&ix, S).is_empty());
        // Through check_all: only with the bound set.
        let all = |bound: Option<u64>| {
            let config = CheckerConfig {
                max_realtime_lag_ns: bound,
                ..CheckerConfig::default()
            };
            anomalies(&crate::check_all(&h, &config).findings)
        };
        assert_eq!(all(Some(S / 2)), vec![Anomaly::RealtimeLag]);
        assert!(all(Some(2 * S)).is_empty());
        assert!(all(None).is_empty());
        assert_eq!(Anomaly::RealtimeLag.severity(), crate::Severity::Freshness);
    }

    #[test]
    fn silent_and_zero_on_a_consumer_that_keeps_up() {
        let mut b = HistoryBuilder::new();
        assign(&mut b, 10, 0);
        for (o, v) in ["a", "b", "c"].iter().enumerate() {
            b.advance(S);
            send(&mut b, 1, 0, v, o as i64);
            b.advance(S);
            poll(&mut b, 10, 0, &[(o as i64, v)], o as i64 + 1);
        }
        final_read(&mut b, 20, 0, &["a", "b", "c"]);
        let h = b.build();
        let lags = figure(&h);
        assert_eq!(lags.len(), 1);
        assert_eq!((lags[0].lag_ns, lags[0].polls), (0, 3));
        assert!(run(&Index::new(&h), 0).is_empty());
        assert!(figure(&clean()).iter().all(|l| l.lag_ns == 0));
    }

    #[test]
    fn durations_read_in_a_unit_that_shows_them() {
        let got: Vec<String> = [2_500_000_000, 3_000_000, 14_000, 7, 0]
            .into_iter()
            .map(secs)
            .collect();
        assert_eq!(got, ["2.500 s", "3.000 ms", "14.000 µs", "7 ns", "0 ns"]);
    }

    #[test]
    fn an_assign_drops_partitions_no_longer_assigned() {
        // The consumer reads partition 0, then is assigned partition 1 only: partition 0's new
        // record is not its to see.
        let mut b = HistoryBuilder::new();
        assign(&mut b, 10, 0);
        send(&mut b, 1, 0, "a", 0);
        poll(&mut b, 10, 0, &[(0, "a")], 1);
        assign(&mut b, 10, 1);
        send(&mut b, 1, 0, "b", 1);
        b.advance(10 * S);
        poll(&mut b, 10, 1, &[], 0);
        let lags = figure(&b.build());
        assert!(lags.iter().all(|l| l.lag_ns == 0), "{lags:#?}");
    }
}
