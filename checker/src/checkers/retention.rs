//! Retention and DeleteRecords: records below a partition's log start are removed on purpose,
//! and the other checkers do not report them (see [`super::Part::removed`]). These checkers
//! judge the log start itself. An *observation* of a partition's log start is a successful
//! final read's `log_start` (absent: 0) or a `delete_records` `ok` answer's.
//!
//! - **premature-removal**: an acknowledged send at offset `o` below a log start `L` observed by
//!   an op X, when neither a `delete_records` op of that partition (`ok` or `info`) with offset
//!   above `o` was invoked before X completed, nor the topic's `retention.ms` `R` covers it: the
//!   send was invoked at least `R` before X completed. Records are stamped when their send is
//!   invoked, and retention removes a commit once its newest record is older than `R`, so no
//!   record may go sooner. A topic with `retention.bytes` may lose records to size at any
//!   time: it is not judged, nor is a topic without a `topic` fact (its retention is
//!   unknown). Each send is reported once, by the first observation that
//!   condemns it.
//! - **log-start-regression**: an observation completed before another was invoked, and the
//!   later one saw a lower log start: removed records came back, or the log start was forgotten.
//! - **read-below-log-start**: a poll returned offset `o` although an op that completed before
//!   the poll was invoked had observed a log start above `o`: it read records already removed.
//! - **retention-overdue** (freshness): the final read, invoked after a record's deadline,
//!   still returned it. The deadline is when the record was known to be in the log (its send's
//!   acknowledgement or the first poll that returned it, whichever is earlier) plus
//!   `retention.ms`, twice the retention check interval and the delete delay; never earlier
//!   than the last fault event plus twice the check interval, the delete delay and 3 s (an
//!   owner must exist again).
//!   Judged only when the topic fact gives all three, and only for offsets before the
//!   partition's first transactional record (retention stops at an open transaction).

use super::{ranges, Anomaly, Finding, Index, Tp, MAX_LISTED};
use crate::history::{History, OpKind, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// Timestamps are whole milliseconds on the client's clock: this much slack (ns) keeps the
/// rounding from condemning a record removed right on time.
const SLACK_NS: u64 = 5_000_000;

/// One observation of a partition's log start.
#[derive(Clone, Copy)]
struct Seen {
    log_start: i64,
    invoke_ns: u64,
    done_ns: u64,
    op: u64,
    /// A final read (else a `delete_records` answer).
    final_read: bool,
}

impl Seen {
    fn what(&self) -> String {
        if self.final_read {
            format!("the final read (op {})", self.op)
        } else {
            format!("the delete_records answer (op {})", self.op)
        }
    }
}

/// Every observation of the partition's log start, by completion time.
fn observations(ix: &Index<'_>, tp: Tp<'_>) -> Vec<Seen> {
    let Some(part) = ix.part(tp) else {
        return Vec::new();
    };
    let mut seen: Vec<Seen> = part
        .final_reads
        .iter()
        .map(|&f| &ix.final_reads[f])
        .map(|fr| Seen {
            log_start: fr.log_start,
            invoke_ns: fr.invoke_ns,
            done_ns: fr.done_ns,
            op: fr.op,
            final_read: true,
        })
        .collect();
    for &d in &part.deletes {
        let d = &ix.deletes[d];
        if let (OpKind::Ok, Some(l), Some(done)) = (d.outcome, d.log_start, d.done_ns) {
            seen.push(Seen {
                log_start: l,
                invoke_ns: d.invoke_ns,
                done_ns: done,
                op: d.op,
                final_read: false,
            });
        }
    }
    seen.sort_by_key(|s| (s.done_ns, s.op));
    seen
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    // Only partitions with a log start above 0 need the polls' records: gathered once, then.
    let mut polls = None;
    for (tp, part) in ix.parts() {
        let seen = observations(ix, tp);
        if seen.iter().all(|s| s.log_start <= 0) {
            continue;
        }
        premature(ix, tp, part, &seen, &mut out);
        regression(tp, &seen, &mut out);
        let polls = polls.get_or_insert_with(|| poll_records(ix));
        below(tp, &seen, polls.get(&tp).map_or(&[][..], |v| v), &mut out);
    }
    let last_fault_ns = ix
        .pairs_of(&[F::Fault])
        .map(|p| p.last().time_ns)
        .max()
        .unwrap_or(0);
    for (tp, part) in ix.parts() {
        overdue(ix, tp, part, last_fault_ns, &mut out);
    }
    out
}

/// After the last fault healed, an owner must exist again before retention can run: this long.
const OWNER_BACK_NS: u64 = 3_000_000_000;

fn overdue(
    ix: &Index<'_>,
    tp: Tp<'_>,
    part: &super::Part,
    last_fault_ns: u64,
    out: &mut Vec<Finding>,
) {
    let Some(topic) = ix.topics.get(tp.0) else {
        return;
    };
    let (Some(r), Some(check), Some(delay)) = (
        topic.retention_ms,
        topic.retention_check_ms,
        topic.delete_delay_ms,
    ) else {
        return;
    };
    if r < 0 {
        return;
    }
    let ms = 1_000_000u64;
    let late_ns = (2 * check + delay).saturating_mul(ms);
    let earliest_ns = last_fault_ns
        .saturating_add(late_ns)
        .saturating_add(OWNER_BACK_NS);
    // Retention stops at an open transaction: only offsets before the first transactional
    // record (or the first offset a reader said holds no data) are judged.
    let mut first_txn = i64::MAX;
    for &(o, i) in &part.acks {
        if ix.sends[i].txn.is_some() {
            first_txn = first_txn.min(o);
        }
    }
    if let Some(&(from, _)) = part.hidden.first() {
        first_txn = first_txn.min(from);
    }
    if part.txn_written && first_txn == i64::MAX {
        return;
    }
    let mut offsets: Vec<i64> = Vec::new();
    let mut first: Option<(i64, u64, u64)> = None;
    for &f in &part.final_reads {
        let fr = &ix.final_reads[f];
        for rec in fr.records.iter().filter(|rec| rec.offset < first_txn) {
            let o = rec.offset;
            // When it was known to be in the log: acknowledged, or first returned by a poll.
            let acked = part
                .acks
                .iter()
                .filter(|a| a.0 == o)
                .filter_map(|a| ix.sends[a.1].done_ns);
            let polled = part
                .reads_at(o)
                .map(|i| &ix.reads[i])
                .filter(|rd| !rd.final_read)
                .map(|rd| rd.time_ns);
            let Some(t0) = acked.chain(polled).min() else {
                continue;
            };
            let deadline = t0
                .saturating_add((r as u64).saturating_mul(ms))
                .saturating_add(late_ns)
                .max(earliest_ns);
            if fr.invoke_ns > deadline {
                offsets.push(o);
                first.get_or_insert((o, fr.op, deadline));
            }
        }
    }
    let Some((o, op, deadline)) = first else {
        return;
    };
    offsets.sort_unstable();
    offsets.dedup();
    out.push(Finding::new(
        Anomaly::RetentionOverdue,
        tp,
        offsets.clone(),
        vec![op],
        format!(
            "The final read returned {} record(s) past their retention deadline, at offset(s) {} (first: offset {o}, due by {deadline} ns with retention.ms {r}, retention check {check} ms, delete delay {delay} ms).",
            offsets.len(),
            ranges(&offsets)
        ),
    ));
}

/// (fetch time, poll op, offset) of every record a successful poll returned, by partition.
///
/// A consumer buffers what it fetched and hands it out over several polls: a poll that names
/// no fetch offsets fetched nothing, and its records come from the process's last poll that
/// did (the fetch time is that poll's invoke). Records of a poll with no earlier fetch are left
/// out.
fn poll_records<'a>(ix: &Index<'a>) -> std::collections::BTreeMap<Tp<'a>, Vec<(u64, u64, i64)>> {
    let mut by: std::collections::BTreeMap<Tp<'a>, Vec<(u64, u64, i64)>> = Default::default();
    let mut fetched: std::collections::BTreeMap<u64, u64> = Default::default();
    for pair in ix.pairs_of(&[F::Poll]) {
        let (OpKind::Ok, Value::Poll(p)) = (pair.outcome(), &pair.last().value) else {
            continue;
        };
        let process = pair.invoke.process;
        if !p.fetch_offsets.is_empty() {
            fetched.insert(process, pair.invoke.time_ns);
        }
        let Some(&at) = fetched.get(&process) else {
            continue;
        };
        for r in &p.records {
            by.entry((r.topic.as_str(), r.partition))
                .or_default()
                .push((at, pair.last().index, r.offset));
        }
    }
    by
}

fn premature(
    ix: &Index<'_>,
    tp: Tp<'_>,
    part: &super::Part,
    seen: &[Seen],
    out: &mut Vec<Finding>,
) {
    // Without the topic's fact its retention is unknown; with retention.bytes, size may
    // remove any record.
    let Some(topic) = ix.topics.get(tp.0) else {
        return;
    };
    if topic.retention_bytes.is_some() {
        return;
    }
    let retention_ns = topic
        .retention_ms
        .filter(|&r| r >= 0)
        .map(|r| (r as u64).saturating_mul(1_000_000));
    let deletes: Vec<_> = part
        .deletes
        .iter()
        .map(|&d| &ix.deletes[d])
        .filter(|d| matches!(d.outcome, OpKind::Ok | OpKind::Info))
        .collect();
    // Sends already reported, by index into `Index::sends`.
    let mut reported: Vec<usize> = Vec::new();
    for x in seen {
        let mut condemned: Vec<(i64, usize)> = Vec::new();
        for &(o, i) in part.acks.iter().take_while(|a| a.0 < x.log_start) {
            if reported.contains(&i) {
                continue;
            }
            let s = &ix.sends[i];
            let deleted = deletes
                .iter()
                .any(|d| d.offset > o && d.invoke_ns <= x.done_ns);
            let expired = retention_ns.is_some_and(|r| {
                s.invoke_ns.saturating_add(r) <= x.done_ns.saturating_add(SLACK_NS)
            });
            if !deleted && !expired {
                condemned.push((o, i));
            }
        }
        if condemned.is_empty() {
            continue;
        }
        reported.extend(condemned.iter().map(|c| c.1));
        let offsets: Vec<i64> = condemned.iter().map(|c| c.0).collect();
        let (o, first) = condemned[0];
        let s = &ix.sends[first];
        let age_ms = x.done_ns.saturating_sub(s.invoke_ns) / 1_000_000;
        let why = match retention_ns {
            Some(r) => format!("retention.ms is {}", r / 1_000_000),
            None => "the topic has no retention.ms".to_owned(),
        };
        out.push(Finding::new(
            Anomaly::PrematureRemoval,
            tp,
            offsets.clone(),
            condemned
                .iter()
                .take(MAX_LISTED)
                .map(|c| ix.sends[c.1].op)
                .chain([x.op])
                .collect(),
            format!(
                "{} saw log start {}, removing {} acknowledged record(s) at offset(s) {} that no DeleteRecords asked to remove and retention had not expired (offset {o} was {age_ms} ms old; {why}).",
                capitalized(&x.what()),
                x.log_start,
                offsets.len(),
                ranges(&offsets),
            ),
        ));
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn regression(tp: Tp<'_>, seen: &[Seen], out: &mut Vec<Finding>) {
    for y in seen {
        // The highest log start observed by an op that completed before `y` was invoked.
        let Some(x) = seen
            .iter()
            .filter(|x| x.done_ns < y.invoke_ns && x.log_start > y.log_start)
            .max_by_key(|x| (x.log_start, std::cmp::Reverse(x.done_ns)))
        else {
            continue;
        };
        out.push(Finding::new(
            Anomaly::LogStartRegression,
            tp,
            vec![x.log_start, y.log_start],
            vec![x.op, y.op],
            format!(
                "{} saw log start {}, but {}, invoked after it completed, saw {}: the log start went back.",
                capitalized(&x.what()),
                x.log_start,
                y.what(),
                y.log_start
            ),
        ));
    }
}

fn below(tp: Tp<'_>, seen: &[Seen], polls: &[(u64, u64, i64)], out: &mut Vec<Finding>) {
    // Running maximum of the log start by completion time: (done, log start, op).
    let mut max: Vec<(u64, i64, u64)> = Vec::new();
    for s in seen {
        let (l, op) = match max.last() {
            Some(&(_, l, op)) if l >= s.log_start => (l, op),
            _ => (s.log_start, s.op),
        };
        max.push((s.done_ns, l, op));
    }
    let mut offsets: Vec<i64> = Vec::new();
    let mut ops: Vec<u64> = Vec::new();
    let mut first: Option<(i64, u64, i64, u64)> = None;
    for &(invoke_ns, op, o) in polls {
        let k = max.partition_point(|m| m.0 < invoke_ns);
        if k == 0 {
            continue;
        }
        let (_, l, by) = max[k - 1];
        if o < l {
            offsets.push(o);
            if ops.len() < MAX_LISTED {
                ops.push(op);
                ops.push(by);
            }
            first.get_or_insert((o, op, l, by));
        }
    }
    let Some((o, op, l, by)) = first else { return };
    let n = offsets.len();
    offsets.sort_unstable();
    offsets.dedup();
    out.push(Finding::new(
        Anomaly::ReadBelowLogStart,
        tp,
        offsets.clone(),
        ops,
        format!(
            "Polls returned {n} record(s) below a log start observed before they were invoked, at offset(s) {} (first: poll op {op} read offset {o} after op {by} saw log start {l}).",
            ranges(&offsets)
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{DeleteRecordsValue, HistoryBuilder, PollValue, TopicValue};

    const SEC: u64 = 1_000_000_000;

    fn topic(b: &mut HistoryBuilder, retention_ms: Option<i64>) {
        let t = TopicValue {
            topic: T.into(),
            retention_ms,
            ..TopicValue::default()
        };
        b.call(0, t.clone(), OpKind::Ok, t);
    }

    fn delete(b: &mut HistoryBuilder, offset: i64, kind: OpKind, log_start: Option<i64>) -> u64 {
        let d = DeleteRecordsValue {
            topic: T.into(),
            partition: 0,
            offset,
            log_start: None,
        };
        let mut done = d.clone();
        done.log_start = log_start;
        let i = b.call(30, d, kind, done);
        b.advance(SEC);
        i
    }

    /// "a".."d" at 0..3, sent one second apart from t = 0; retention.ms `r`.
    fn sends(b: &mut HistoryBuilder, r: Option<i64>) {
        topic(b, r);
        for (o, v) in ["a", "b", "c", "d"].into_iter().enumerate() {
            send(b, 1, 0, v, o as i64);
            b.advance(SEC);
        }
    }

    fn kinds(h: &History) -> Vec<Anomaly> {
        anomalies(&check(h))
    }

    #[test]
    fn removal_by_retention_on_time_passes_and_early_fails() {
        // At 4 s "a" and "b" (sent at 0 and 1 s) are 4 and 3 s old: 3 s retention covers both.
        let mut b = HistoryBuilder::new();
        sends(&mut b, Some(3_000));
        final_read_from(&mut b, 20, 0, 2, &[(2, "c"), (3, "d")], 4);
        let h = b.build();
        assert!(check(&h).is_empty(), "{:#?}", check(&h));
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");

        // With 3.5 s retention "b" (3 s old) went early.
        let mut b = HistoryBuilder::new();
        sends(&mut b, Some(3_500));
        final_read_from(&mut b, 20, 0, 2, &[(2, "c"), (3, "d")], 4);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::PrematureRemoval], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1]);
    }

    #[test]
    fn removal_asked_by_delete_records_passes_unless_asked_after() {
        let mut b = HistoryBuilder::new();
        sends(&mut b, None);
        delete(&mut b, 3, OpKind::Info, None);
        final_read_from(&mut b, 20, 0, 3, &[(3, "d")], 4);
        assert!(kinds(&b.build()).is_empty());

        // A delete only up to 2: offset 2 went with nobody asking. A failed delete asks nothing.
        let mut b = HistoryBuilder::new();
        sends(&mut b, None);
        delete(&mut b, 2, OpKind::Ok, Some(2));
        delete(&mut b, 3, OpKind::Fail, None);
        final_read_from(&mut b, 20, 0, 3, &[(3, "d")], 4);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::PrematureRemoval], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2]);
    }

    #[test]
    fn a_log_start_that_goes_back_is_a_regression() {
        let mut b = HistoryBuilder::new();
        sends(&mut b, None);
        delete(&mut b, 2, OpKind::Ok, Some(2));
        final_read_from(&mut b, 20, 0, 2, &[(2, "c"), (3, "d")], 4);
        assert!(kinds(&b.build()).is_empty());

        let mut b = HistoryBuilder::new();
        sends(&mut b, None);
        delete(&mut b, 2, OpKind::Ok, Some(2));
        final_read_from(
            &mut b,
            20,
            0,
            0,
            &[(0, "a"), (1, "b"), (2, "c"), (3, "d")],
            4,
        );
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::LogStartRegression], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 0]);
    }

    /// A poll of partition 0 returning `records`: one that fetched from `fetch`, or (None) one
    /// that handed out what an earlier poll fetched.
    fn poll_at(b: &mut HistoryBuilder, fetch: Option<i64>, records: &[(i64, &str)]) {
        let mut v = PollValue::default().hwm(T, 0, 4);
        if let Some(f) = fetch {
            v = v.fetch_offset(T, 0, f);
        }
        for (o, val) in records {
            v = v.record(T, 0, *o, val);
        }
        b.call(10, PollValue::default(), OpKind::Ok, v);
    }

    #[test]
    fn a_poll_below_an_observed_log_start_is_a_read_below_it() {
        // `fetch_after`: the consumer fetches offsets 0 and 1 after the delete answered 2.
        // Else it fetched them before, and hands one of them out after the delete from its
        // buffer: that is no read below the log start.
        let build = |fetch_after: bool| {
            let mut b = HistoryBuilder::new();
            sends(&mut b, None);
            assign(&mut b, 10, 0);
            if !fetch_after {
                poll_at(&mut b, Some(0), &[(0, "a")]);
            }
            delete(&mut b, 2, OpKind::Ok, Some(2));
            if fetch_after {
                poll_at(&mut b, Some(0), &[(0, "a")]);
            }
            poll_at(&mut b, None, &[(1, "b")]);
            poll_at(&mut b, Some(2), &[(2, "c"), (3, "d")]);
            final_read_from(&mut b, 20, 0, 2, &[(2, "c"), (3, "d")], 4);
            b.build()
        };
        let h = build(false);
        assert!(kinds(&h).is_empty(), "{:#?}", check(&h));
        let f = check(&build(true));
        assert_eq!(anomalies(&f), vec![Anomaly::ReadBelowLogStart], "{f:#?}");
        assert_eq!(f[0].offsets, vec![0, 1]);
    }

    #[test]
    fn a_record_kept_well_past_its_retention_is_overdue() {
        let build = |final_at_s: u64| {
            let mut b = HistoryBuilder::new();
            let t = TopicValue {
                topic: T.into(),
                retention_ms: Some(1_000),
                retention_check_ms: Some(100),
                delete_delay_ms: Some(300),
                ..TopicValue::default()
            };
            b.call(0, t.clone(), OpKind::Ok, t);
            send(&mut b, 1, 0, "a", 0);
            b.advance(final_at_s * SEC);
            final_read_from(&mut b, 20, 0, 0, &[(0, "a")], 1);
            b.build()
        };
        // Due by 1.5 s after the ack, and not before 3.5 s (an owner must be back).
        assert!(kinds(&build(3)).is_empty());
        let f = check(&build(4));
        assert_eq!(anomalies(&f), vec![Anomaly::RetentionOverdue], "{f:#?}");
        assert_eq!(f[0].offsets, vec![0]);
    }

    #[test]
    fn silent_without_log_starts() {
        assert!(check(&clean()).is_empty());
    }
}
