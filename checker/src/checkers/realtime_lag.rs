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
//! partition first met in a poll joins the map, and a seek forward (a group member starting at its
//! committed offset) counts the records below its offset as seen: another member consumed them. At every `ok` poll, for every partition in the
//! process's map (whether the poll returned records of it or not), after merging the poll's own
//! records: the lag is the poll's *invoke* time minus the time the next unseen offset was first
//! known to exist, or zero. It is a conservative lower bound: the poll could have been served as
//! early as its invoke. Jepsen's histories have no seeks; riptide follows forward ones only, so seeking back keeps the highest offset seen.
//! A seek to an application's own offset (reason `external`) is not followed: it may lie past
//! the log end, where the consumer reads nothing until a `reset` seek places it in the log.
//! Final reads prove offsets exist but are not polls of a consumer, so they are not measured.
//!
//! Transactions (`txn` ops): a committed one (`ok`, ended with a commit) makes its sends'
//! acknowledged offsets known at its completion, as an `ok` send does, for every reader alike
//! (a read_committed one may see them a little later, once the commit markers are written: that
//! wait counts as lag). An aborted or undecided one makes nothing known. An `ok` transaction
//! with polls among its micro-ops (consume-transform-produce) is one poll of its process,
//! measured at the transaction's invoke time: its polls' records and hidden ranges count as seen
//! and their records as known to exist, as a top-level poll's do.
//!
//! The walk does not visit every (poll, partition): between two polls that raise a process's
//! highest offset seen of a partition, the lag only grows with the invoke time, so the last poll
//! of each such run is its worst, and how many of the run exceed a bound is a binary search over
//! the process's poll times. (`tests/properties.rs` checks it against the poll-by-poll
//! computation.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{q, Anomaly, Finding, Index, PartIds, Read, Tp};
use crate::history::{HiddenRange, History, OpKind, SeekReason, Value, F};

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

/// One measurement of a partition: at `poll_time_ns`, `process` had not seen `offset`, known to
/// exist since `known` (time, op).
#[derive(Clone, Copy)]
struct Lag {
    lag_ns: u64,
    process: u64,
    poll_op: u64,
    poll_time_ns: u64,
    offset: i64,
    known: Option<(u64, u64)>,
}

/// The partitions met, and for each the steps of the highest offset known to exist: (time,
/// offset, op), both strictly increasing. (The output is sorted by partition.)
struct Known<'i, 'a> {
    ids: PartIds<'i, 'a>,
    steps: Vec<Vec<(u64, i64, u64)>>,
}

impl<'a> Known<'_, 'a> {
    fn id(&mut self, tp: Tp<'a>) -> usize {
        let id = self.ids.id(tp) as usize;
        if id >= self.steps.len() {
            self.steps.resize(id + 1, Vec::new());
        }
        id
    }

    fn tp(&self, id: usize) -> Tp<'a> {
        self.ids.tp(id as u32)
    }
}

fn known<'i, 'a>(ix: &'i Index<'a>) -> Known<'i, 'a> {
    // (time, op, partition, offset): an op that showed the offset exists.
    let mut events: Vec<(u64, u64, u32, i64)> = Vec::new();
    // Acknowledged sends, and a committed transaction's (their outcome is its: `ok` when it
    // committed).
    for s in &ix.sends {
        if let (Some(o), Some(done)) = (s.acked(), s.done_ns) {
            events.push((done, s.op, s.pid, o));
        }
    }
    // An ok poll's records, an ok transaction's polls' records, a final read's records: one
    // event per run of records of one partition, its highest offset. (The index keeps the
    // reads of `ok` polls and successful final reads only, and of every completed transaction.)
    for (i, p) in ix.numbered_pairs_of(&[F::Poll, F::Txn, F::FinalRead]) {
        if ix.f_at(i) == F::Txn && p.outcome() != OpKind::Ok {
            continue;
        }
        let mut run: Option<usize> = None;
        for r in ix.reads_of_pair(i) {
            match run {
                Some(e) if events[e].2 == r.pid => events[e].3 = events[e].3.max(r.offset),
                _ => {
                    run = Some(events.len());
                    events.push((r.time_ns, r.op, r.pid, r.offset));
                }
            }
        }
    }
    events.sort_unstable_by_key(|e| (e.0, e.1));
    let ids = PartIds::new(ix);
    let mut out = Known {
        steps: vec![Vec::new(); ids.len()],
        ids,
    };
    for (time, op, pid, o) in events {
        let steps = &mut out.steps[pid as usize];
        if steps.last().is_none_or(|s| o > s.1) {
            steps.push((time, o, op));
        }
    }
    out
}

/// The worst measurement of a partition so far, how many there were, how many above the bound.
type Worst = Option<(Lag, usize, usize)>;

/// One consumer process on its walk: its ok polls so far (invoke time, completion op), and for
/// each partition in its map the highest offset seen and the first of its polls measured with
/// it.
#[derive(Default)]
struct Walker {
    polls: Vec<(u64, u64)>,
    parts: BTreeMap<usize, (i64, usize)>,
}

impl Walker {
    /// The process has seen up to `offset` of `part` from its poll `at` on: a higher offset than
    /// before ends the run measured with the old one (handed to `end`); a lower one changes
    /// nothing.
    fn raise(&mut self, process: u64, part: usize, offset: i64, at: usize, end: impl FnOnce(Run)) {
        match self.parts.get_mut(&part) {
            None => {
                self.parts.insert(part, (offset, at));
            }
            Some(e) if offset > e.0 => {
                end(Run {
                    process,
                    part,
                    max_seen: e.0,
                    polls: &self.polls[e.1..at],
                });
                *e = (offset, at);
            }
            Some(_) => {}
        }
    }
}

/// One run of measurements: partition `part` of `process` at `polls`, all with the same highest
/// offset seen, `max_seen`.
struct Run<'p> {
    process: u64,
    part: usize,
    max_seen: i64,
    polls: &'p [(u64, u64)],
}

/// Folds a run of measurements into `worst`. Within a run the lag only grows with the poll's
/// invoke time, so its last poll is its worst and the others need not be visited one by one.
fn fold(worst: &mut Vec<Worst>, known: &Known<'_, '_>, run: Run<'_>, bound_ns: u64) {
    let Run {
        process,
        part,
        max_seen,
        polls,
    } = run;
    let Some(&(last_time, _)) = polls.last() else {
        return;
    };
    let next = max_seen + 1;
    let steps = &known.steps[part];
    let step = steps.get(steps.partition_point(|s| s.1 < next));
    let (lag_ns, at, above) = match step {
        Some(&(since, _, _)) => {
            let lag = last_time.saturating_sub(since);
            // The first poll with the worst lag (the first of all when there is none).
            let at = if lag == 0 {
                0
            } else {
                polls.partition_point(|p| p.0 < last_time)
            };
            let threshold = since.saturating_add(bound_ns);
            let above = polls.len() - polls.partition_point(|p| p.0 <= threshold);
            (lag, at, above)
        }
        None => (0, 0, 0),
    };
    let m = Lag {
        lag_ns,
        process,
        poll_op: polls[at].1,
        poll_time_ns: polls[at].0,
        offset: next,
        known: step.map(|s| (s.0, s.2)),
    };
    if worst.len() <= part {
        worst.resize(part + 1, None);
    }
    match &mut worst[part] {
        Some((w, n, up)) => {
            *n += polls.len();
            *up += above;
            let key = |l: &Lag| (l.lag_ns, std::cmp::Reverse(l.poll_op));
            if key(&m) > key(w) {
                *w = m;
            }
        }
        slot @ None => *slot = Some((m, polls.len(), above)),
    }
}

/// Raises the highest offsets `process` has seen by a poll's records and hidden ranges; the
/// poll is its walker's last (already pushed).
fn see<'a>(
    w: &mut Walker,
    process: u64,
    reads: &[Read],
    hidden: impl Iterator<Item = &'a HiddenRange>,
    known: &mut Known<'_, 'a>,
    worst: &mut Vec<Worst>,
    bound_ns: u64,
) {
    let k = w.polls.len() - 1;
    for r in reads {
        // The polls before this one were measured with the old offset.
        w.raise(process, r.pid as usize, r.offset, k, |run| {
            fold(worst, known, run, bound_ns)
        });
    }
    // Offsets that hold no data for it (control batches, aborted records) are passed, not
    // awaited.
    for h in hidden {
        let id = known.id((h.topic.as_str(), h.partition));
        w.raise(process, id, h.to - 1, k, |run| {
            fold(worst, known, run, bound_ns)
        });
    }
}

/// Walks the consumers' polls (see the module doc) and returns, for each partition some consumer
/// polled, in partition order: its worst measurement (the earliest poll among equals), the
/// number of measurements, and how many were above `bound_ns`.
fn walk<'a>(ix: &Index<'a>, bound_ns: u64) -> Vec<(Tp<'a>, Lag, usize, usize)> {
    let mut known = known(ix);
    let mut worst: Vec<Worst> = Vec::new();
    let mut walkers: BTreeMap<u64, Walker> = BTreeMap::new();
    for (i, p) in ix.numbered_pairs_of(&[F::Assign, F::Seek, F::Poll, F::Txn]) {
        if p.outcome() != OpKind::Ok {
            continue;
        }
        let process = p.invoke.process;
        match &p.last().value {
            Value::Assign(a) => {
                let w = walkers.entry(process).or_default();
                let now = w.polls.len();
                let mut parts = BTreeMap::new();
                for t in &a.partitions {
                    let id = known.id((t.topic.as_str(), t.partition));
                    let kept = w.parts.remove(&id).unwrap_or((-1, now));
                    parts.insert(id, kept);
                }
                // The partitions no longer assigned leave the map: their measurements end.
                for (part, (max_seen, since)) in std::mem::replace(&mut w.parts, parts) {
                    let polls = &w.polls[since..];
                    let run = Run {
                        process,
                        part,
                        max_seen,
                        polls,
                    };
                    fold(&mut worst, &known, run, bound_ns);
                }
            }
            // An application's own offset may lie past the log end: it places the consumer
            // nowhere it can read (an out-of-range fetch and a `reset` seek follow).
            Value::Seek(seek) if seek.reason == Some(SeekReason::External) => {}
            Value::Seek(seek) => {
                // A consumer placed at `offset` (its group's committed offset, say) is not behind
                // the records below it: they are not its to see. Seeking back keeps what it saw.
                let w = walkers.entry(process).or_default();
                let now = w.polls.len();
                let id = known.id((seek.topic.as_str(), seek.partition));
                w.raise(process, id, seek.offset - 1, now, |run| {
                    fold(&mut worst, &known, run, bound_ns)
                });
            }
            Value::Poll(poll) => {
                let w = walkers.entry(process).or_default();
                w.polls.push((p.invoke.time_ns, p.last().index));
                let (reads, hidden) = (ix.reads_of_pair(i), poll.hidden.iter());
                see(w, process, reads, hidden, &mut known, &mut worst, bound_ns);
            }
            // A consume-transform-produce transaction: its polls are one poll, invoked with it.
            Value::Txn(t) if t.polls().next().is_some() => {
                let w = walkers.entry(process).or_default();
                w.polls.push((p.invoke.time_ns, p.last().index));
                let (reads, hidden) = (ix.reads_of_pair(i), t.polls().flat_map(|p| &p.hidden));
                see(w, process, reads, hidden, &mut known, &mut worst, bound_ns);
            }
            _ => {}
        }
    }
    for (&process, w) in &walkers {
        for (&part, &(max_seen, since)) in &w.parts {
            let polls = &w.polls[since..];
            let run = Run {
                process,
                part,
                max_seen,
                polls,
            };
            fold(&mut worst, &known, run, bound_ns);
        }
    }
    let mut out: Vec<(Tp<'a>, Lag, usize, usize)> = worst
        .into_iter()
        .enumerate()
        .filter_map(|(id, w)| w.map(|(lag, n, up)| (known.tp(id), lag, n, up)))
        .collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The value at `offset` of `tp`, from an ack there or else a read.
fn value_at(ix: &Index<'_>, tp: Tp<'_>, offset: i64) -> Option<String> {
    let part = ix.part(tp)?;
    let acked = part
        .ack_groups()
        .find(|g| g[0].0 == offset)
        .map(|g| ix.value(ix.sends[g[0].1].vid));
    acked
        .or_else(|| {
            part.reads_at(offset)
                .next()
                .map(|i| ix.value(ix.reads[i].vid))
        })
        .map(str::to_owned)
}

/// The worst lag of each partition some consumer polled, in partition order.
pub(crate) fn worst(ix: &Index<'_>) -> Vec<PartitionLag> {
    figures(ix, &walk(ix, u64::MAX))
}

fn figures(ix: &Index<'_>, worst: &[(Tp<'_>, Lag, usize, usize)]) -> Vec<PartitionLag> {
    worst
        .iter()
        .map(|&(tp, w, polls, _)| {
            let lagging = w.lag_ns > 0;
            PartitionLag {
                topic: tp.0.to_owned(),
                partition: tp.1,
                lag_ns: w.lag_ns,
                process: w.process,
                poll_op: w.poll_op,
                poll_time_ns: w.poll_time_ns,
                offset: lagging.then_some(w.offset),
                value: lagging.then(|| value_at(ix, tp, w.offset)).flatten(),
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
    let worst = walk(ix, bound_ns);
    figures(ix, &worst)
        .into_iter()
        .zip(worst.iter().map(|w| w.3))
        .filter(|(w, _)| w.lag_ns > bound_ns)
        .map(|(w, n)| {
            let tp = (w.topic.as_str(), w.partition);
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
    fn a_member_that_starts_at_its_committed_offset_is_not_behind_the_records_below_it() {
        // Offsets 0 and 1 exist since 1 s; assigned at 5 s, the member seeks to the committed
        // offset 2 and polls at 6 s, seeing nothing new: no lag. Without the seek, 5 s.
        let history = |seek_to: Option<i64>| {
            let mut b = HistoryBuilder::new();
            b.advance(S);
            send(&mut b, 1, 0, "a", 0);
            send(&mut b, 1, 0, "b", 1);
            b.advance(4 * S);
            assign(&mut b, 10, 0);
            if let Some(offset) = seek_to {
                let seek = crate::history::SeekValue {
                    topic: T.into(),
                    partition: 0,
                    offset,
                    reason: None,
                };
                b.call(10, seek.clone(), OpKind::Ok, seek);
            }
            b.advance(S);
            poll(&mut b, 10, 0, &[], 1);
            b.build()
        };
        assert_eq!(figure(&history(Some(2)))[0].lag_ns, 0);
        // Placed at 0, both records are its to see: 5 s behind, as without a seek.
        assert_eq!(figure(&history(Some(0)))[0].lag_ns, 5 * S);
        assert_eq!(figure(&history(None))[0].lag_ns, 5 * S);
    }

    #[test]
    fn a_seek_past_the_log_end_does_not_hide_the_lag_after_a_reset_to_earliest() {
        // Offsets 0 and 1 exist since 1 s; the consumer is placed past the log end by the
        // application at 5 s, reset to 0 (auto.offset.reset) and polls at 6 s seeing nothing:
        // it is 5 s behind, as if the first seek had never happened.
        let mut b = HistoryBuilder::new();
        b.advance(S);
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        b.advance(4 * S);
        assign(&mut b, 10, 0);
        for (offset, reason) in [
            (5_000_000, crate::history::SeekReason::External),
            (0, crate::history::SeekReason::Reset),
        ] {
            let seek = crate::history::SeekValue::new(T, 0, offset).because(reason);
            b.call(10, seek.clone(), OpKind::Ok, seek);
        }
        b.advance(S);
        poll(&mut b, 10, 0, &[], 1);
        assert_eq!(figure(&b.build())[0].lag_ns, 5 * S);
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

    /// A read_committed consumer assigned at 0; a transaction of process 1 writes offset 0 and
    /// ends with `end` at about 1 s; at 5 s the consumer polls, returning that record when
    /// `seen`. Returns the history and the transaction's completion.
    fn after_a_txn(end: crate::history::TxnEnd, seen: bool) -> (crate::History, u64) {
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 10);
        assign(&mut b, 10, 0);
        b.advance(S);
        let done = txn(&mut b, 1, end, OpKind::Ok, &[(0, "a", 0)]);
        b.advance(4 * S);
        let records: &[(i64, &str)] = if seen { &[(0, "a")] } else { &[] };
        poll(&mut b, 10, 0, records, 2);
        (b.build(), done)
    }

    #[test]
    fn a_committed_transactions_records_are_known_from_its_completion() {
        use crate::history::TxnEnd;
        let (h, done) = after_a_txn(TxnEnd::Commit, false);
        let lags = figure(&h);
        let done_ns = h.ops[done as usize].time_ns;
        assert_eq!(
            (lags[0].lag_ns, lags[0].offset, lags[0].known_by_op),
            (5 * S + 2_000 - done_ns, Some(0), Some(done))
        );
        assert_eq!(lags[0].value.as_deref(), Some("a"));
        let f = run(&Index::new(&h), S);
        assert_eq!(anomalies(&f), vec![Anomaly::RealtimeLag], "{f:#?}");
        assert!(f[0].ops.contains(&done), "{f:#?}");
    }

    #[test]
    fn silent_when_the_committed_records_are_seen_or_the_transaction_aborted() {
        use crate::history::TxnEnd;
        for (end, seen) in [(TxnEnd::Commit, true), (TxnEnd::Abort, false)] {
            let h = after_a_txn(end, seen).0;
            assert_eq!(figure(&h)[0].lag_ns, 0, "{end:?} {seen}");
            assert!(run(&Index::new(&h), 0).is_empty(), "{end:?} {seen}");
        }
    }

    /// Partition 0: "x" of an aborted transaction at 0, its marker at 1, then "b" at 2 (a plain
    /// send at 5.5 s). A read_uncommitted consumer reads "x" at 1 s. At 5 s a
    /// consume-transform-produce process (5) runs a transaction whose poll returns nothing but
    /// says 0..2 hold no data for it (when `hidden`) and, at 6 s, one whose poll returns "b".
    fn pipeline_past_an_aborted_txn(hidden: bool) -> crate::History {
        use crate::history::{Hidden, TxnEnd, TxnValue};
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 5);
        assign(&mut b, 5, 0);
        txn(&mut b, 2, TxnEnd::Abort, OpKind::Ok, &[(0, "x", 0)]);
        b.advance(S);
        poll(&mut b, 11, 0, &[(0, "x")], 2);
        b.advance(4 * S);
        let mut first = PollValue::default().hwm(T, 0, 3);
        if hidden {
            first = first
                .hidden(T, 0, 0, 1, Hidden::Aborted)
                .hidden(T, 0, 1, 2, Hidden::Control);
        }
        let inv = TxnValue::new("tx-5", TxnEnd::Commit);
        let done = inv.clone().poll(first);
        b.call(5, inv.clone(), OpKind::Ok, done);
        b.advance(S / 2);
        send(&mut b, 1, 0, "b", 2);
        b.advance(S / 2);
        let done = inv
            .clone()
            .poll(PollValue::default().record(T, 0, 2, "b").hwm(T, 0, 3));
        b.call(5, inv, OpKind::Ok, done);
        b.build()
    }

    #[test]
    fn hidden_ranges_of_a_transactions_polls_count_as_seen() {
        let h = pipeline_past_an_aborted_txn(true);
        let lags = figure(&h);
        // Not behind offset 0 at 5 s: it passed it. Its two transactions are two measurements;
        // the read_uncommitted poll is the third.
        assert_eq!((lags[0].lag_ns, lags[0].polls), (0, 3), "{lags:#?}");
        assert!(run(&Index::new(&h), 0).is_empty());
    }

    #[test]
    fn without_hidden_ranges_a_transactions_poll_is_behind_the_aborted_record() {
        let h = pipeline_past_an_aborted_txn(false);
        let lags = figure(&h);
        assert_eq!(
            (lags[0].process, lags[0].lag_ns, lags[0].offset),
            (5, 4 * S, Some(0)),
            "{lags:#?}"
        );
        assert_eq!(
            anomalies(&run(&Index::new(&h), S)),
            vec![Anomaly::RealtimeLag]
        );
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
