//! Consumer-group checkers, from `commit` ops (with their group) and the
//! `seek` a group member makes when it is assigned a partition (to the
//! group's committed offset).
//!
//! - **committed-offset-regression**: an acknowledged commit is followed (in
//!   real time) by a lower acknowledged commit, or by a member starting from
//!   a lower committed offset: the group's progress went backwards.
//! - **rebalance-skip**: a member starts a partition beyond every offset any
//!   member tried to commit: the records in between were skipped.
//!
//! A seek with reason `back` is a member replaying records it read before,
//! not a starting position: both checks ignore it, and seeks the application
//! makes on its own (`external`, and the `reset` after an offset out of range)
//! too. Seeks with reason `committed` or without a reason are starting
//! positions.
//!
//! A transaction's offsets (consume-transform-produce: TxnOffsetCommit) are a commit of its
//! group too: acknowledged if it committed, failed if it did not, unknown if unknown.

use std::collections::BTreeMap;

use super::{Anomaly, FastMap, Finding, Index};
use crate::history::{History, OpKind, SeekReason, TxnEnd, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// (group, topic, partition)
type Gtp<'a> = (&'a str, &'a str, i32);

struct Commit {
    offset: i64,
    invoked_ns: u64,
    completed_ns: u64,
    ok: bool,
    /// Outcome unknown: it may take effect at any time after its invoke, even after a later
    /// commit was acknowledged (a request the client gave up on, applied late).
    unknown: bool,
    op: u64,
}

/// The commits of one (group, partition), in history order, and what the checks look up.
#[derive(Default)]
struct Commits {
    list: Vec<Commit>,
    /// The group's committed offset as the acknowledgements establish it, over time:
    /// (completion time, index into `list` of the commit that sets it).
    floor: Vec<(u64, usize)>,
    /// (invoke time, the highest offset of the commits invoked by then), by invoke time.
    tried: Vec<(u64, i64)>,
    /// Offset → the earliest invoke of a commit of it whose outcome is unknown.
    unknown_at: FastMap<i64, u64>,
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut group_of: BTreeMap<u64, &str> = BTreeMap::new();
    // Keys in order of first commit; the map only finds a key's slot.
    let mut keys: Vec<(Gtp<'_>, Commits)> = Vec::new();
    let mut slot: FastMap<Gtp<'_>, usize> = FastMap::default();
    for p in ix.pairs_of(&[F::Commit, F::Txn]) {
        let (group, offsets, ok, unknown) = match (&p.invoke.value, &p.last().value) {
            (Value::Commit(c), _) => (
                c.group.as_deref(),
                &c.offsets,
                p.outcome() == OpKind::Ok,
                p.outcome() == OpKind::Info,
            ),
            (Value::Txn(inv), last) => {
                let t = match last {
                    Value::Txn(t) if !t.offsets.is_empty() => t,
                    _ => inv,
                };
                let committed = p.outcome() == OpKind::Ok && t.end == TxnEnd::Commit;
                (
                    t.group.as_deref().or(inv.group.as_deref()),
                    &t.offsets,
                    committed,
                    p.outcome() == OpKind::Info,
                )
            }
            _ => continue,
        };
        let Some(group) = group else {
            continue;
        };
        group_of.entry(p.invoke.process).or_insert(group);
        for o in offsets {
            let key = (group, o.topic.as_str(), o.partition);
            let i = *slot.entry(key).or_insert_with(|| {
                keys.push((key, Commits::default()));
                keys.len() - 1
            });
            keys[i].1.list.push(Commit {
                offset: o.offset,
                invoked_ns: p.invoke.time_ns,
                completed_ns: p.last().time_ns,
                ok,
                unknown,
                op: p.last().index,
            });
        }
    }
    // In (group, topic, partition) order, as findings were always made.
    keys.sort_unstable_by_key(|k| k.0);
    let mut out = Vec::new();
    // Acknowledged commits must not go backwards in real time.
    for ((group, topic, partition), commits) in &mut keys {
        let list = &commits.list;
        let mut acked: Vec<usize> = (0..list.len()).filter(|&i| list[i].ok).collect();
        acked.sort_by_key(|&i| list[i].completed_ns);
        let mut best: Option<&Commit> = None;
        for i in acked {
            let c = &list[i];
            if let Some(b) = best {
                if c.invoked_ns > b.completed_ns && c.offset < b.offset {
                    // A commit of unknown outcome invoked before `c` may have landed after
                    // `b` and set the group back; `c` then moves on from there.
                    let set_back = list
                        .iter()
                        .any(|u| u.unknown && u.offset <= c.offset && u.invoked_ns < c.invoked_ns);
                    if set_back {
                        best = Some(c);
                        commits.floor.push((c.completed_ns, i));
                        continue;
                    }
                    out.push(Finding::new(
                        Anomaly::CommittedOffsetRegression,
                        (topic, *partition),
                        vec![b.offset, c.offset],
                        vec![b.op, c.op],
                        format!(
                            "Group {group} committed offset {} and then, later, offset {}.",
                            b.offset, c.offset
                        ),
                    ));
                }
            }
            if best.is_none_or(|b| c.offset >= b.offset) {
                best = Some(c);
                commits.floor.push((c.completed_ns, i));
            }
        }
        let mut by_invoke: Vec<(u64, i64)> =
            list.iter().map(|c| (c.invoked_ns, c.offset)).collect();
        by_invoke.sort_unstable();
        let mut high = i64::MIN;
        commits.tried = by_invoke
            .into_iter()
            .map(|(t, o)| {
                high = high.max(o);
                (t, high)
            })
            .collect();
        for c in list.iter().filter(|c| c.unknown) {
            let e = commits.unknown_at.entry(c.offset).or_insert(c.invoked_ns);
            *e = (*e).min(c.invoked_ns);
        }
    }
    let slot: FastMap<Gtp<'_>, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (key, _))| (*key, i))
        .collect();
    // A member's starting position must be the group's committed offset.
    for p in ix.pairs_of(&[F::Seek]) {
        let Value::Seek(s) = &p.invoke.value else {
            continue;
        };
        if p.outcome() != OpKind::Ok
            || matches!(
                s.reason,
                Some(SeekReason::Back | SeekReason::External | SeekReason::Reset)
            )
        {
            continue;
        }
        let Some(group) = group_of.get(&p.invoke.process) else {
            continue;
        };
        let key = (*group, s.topic.as_str(), s.partition);
        let commits = slot.get(&key).map(|&i| &keys[i].1);
        let start = p.invoke.time_ns;
        let done = p.last().time_ns;
        // What was certainly committed before the seek, and what might have been.
        let acked_before = commits.and_then(|c| {
            let at = c.floor.partition_point(|(t, _)| *t <= start);
            at.checked_sub(1).map(|i| &c.list[c.floor[i].1])
        });
        let tried = commits.and_then(|c| {
            let at = c.tried.partition_point(|(t, _)| *t <= done);
            at.checked_sub(1).map(|i| c.tried[i].1)
        });
        let applied_late = commits
            .and_then(|c| c.unknown_at.get(&s.offset))
            .is_some_and(|&t| t <= done);
        if let Some(a) = acked_before {
            if s.offset < a.offset && !applied_late {
                out.push(Finding::new(
                    Anomaly::CommittedOffsetRegression,
                    (s.topic.as_str(), s.partition),
                    vec![a.offset, s.offset],
                    vec![a.op, p.last().index],
                    format!(
                        "Group {group} had committed offset {} but a member was told to start at {}.",
                        a.offset, s.offset
                    ),
                ));
            }
        }
        if s.offset > tried.unwrap_or(0) {
            out.push(Finding::new(
                Anomaly::RebalanceSkip,
                (s.topic.as_str(), s.partition),
                vec![tried.unwrap_or(0), s.offset],
                vec![p.last().index],
                format!(
                    "A member of group {group} started at offset {} although no member ever committed past {}: the records in between were skipped.",
                    s.offset,
                    tried.unwrap_or(0)
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
    use crate::history::{CommitValue, HistoryBuilder, OpKind, PartitionOffset, SeekValue};

    fn commit(b: &mut HistoryBuilder, process: u64, partition: i32, offset: i64, outcome: OpKind) {
        let v = CommitValue {
            group: Some("g".into()),
            offsets: vec![PartitionOffset {
                topic: T.into(),
                partition,
                offset,
            }],
        };
        b.advance(1_000);
        b.call(process, v.clone(), outcome, v);
    }

    fn seek(b: &mut HistoryBuilder, process: u64, partition: i32, offset: i64) {
        let v = PartitionOffset {
            topic: T.into(),
            partition,
            offset,
        };
        b.advance(1_000);
        b.call(process, v.clone(), OpKind::Ok, v);
    }

    #[test]
    fn a_transaction_s_offsets_are_a_commit_of_its_group() {
        use crate::history::{TxnEnd, TxnValue};
        let history = |start: i64| {
            let mut b = HistoryBuilder::new();
            let mut t = TxnValue::new("pipe", TxnEnd::Commit);
            t.group = Some("g".into());
            t.offsets = vec![PartitionOffset {
                topic: T.into(),
                partition: 0,
                offset: 3,
            }];
            b.call(1, t.clone(), OpKind::Ok, t);
            seek(&mut b, 1, 0, start);
            b.build()
        };
        assert!(check(&history(3)).is_empty());
        assert_eq!(anomalies(&check(&history(5))), vec![Anomaly::RebalanceSkip]);
        assert_eq!(
            anomalies(&check(&history(1))),
            vec![Anomaly::CommittedOffsetRegression]
        );
    }

    #[test]
    fn silent_when_members_take_over_where_the_group_left_off() {
        let mut b = HistoryBuilder::new();
        seek(&mut b, 10, 0, 0);
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        commit(&mut b, 10, 0, 8, OpKind::Info);
        // The next owner may start at 5 (the ack) or 8 (the unknown commit).
        seek(&mut b, 11, 0, 8);
        commit(&mut b, 11, 0, 12, OpKind::Ok);
        commit(&mut b, 11, 0, 12, OpKind::Fail);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_when_acknowledged_commits_go_backwards() {
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        commit(&mut b, 11, 0, 3, OpKind::Ok);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::CommittedOffsetRegression]);
        assert_eq!(f[0].offsets, vec![5, 3]);
    }

    #[test]
    fn fires_when_a_new_owner_starts_below_the_committed_offset() {
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        seek(&mut b, 11, 0, 2);
        commit(&mut b, 11, 0, 6, OpKind::Ok);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::CommittedOffsetRegression]);
    }

    #[test]
    fn a_commit_of_unknown_outcome_may_land_after_a_later_one() {
        // 5's request timed out; 8 was acknowledged; then 5 was applied after all.
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Info);
        commit(&mut b, 10, 0, 8, OpKind::Ok);
        seek(&mut b, 11, 0, 5);
        // Going on from there, below the acknowledged 8, and then on up.
        commit(&mut b, 11, 0, 6, OpKind::Ok);
        commit(&mut b, 11, 0, 9, OpKind::Ok);
        assert!(check(&b.build()).is_empty());
        // ... but once moving on from 6, going back below it again is a regression.
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Info);
        commit(&mut b, 10, 0, 8, OpKind::Ok);
        commit(&mut b, 11, 0, 7, OpKind::Ok);
        commit(&mut b, 11, 0, 4, OpKind::Ok);
        assert_eq!(
            anomalies(&check(&b.build())),
            vec![Anomaly::CommittedOffsetRegression]
        );
        // A definitely failed commit cannot have landed.
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Fail);
        commit(&mut b, 10, 0, 8, OpKind::Ok);
        seek(&mut b, 11, 0, 5);
        commit(&mut b, 11, 0, 9, OpKind::Ok);
        assert_eq!(
            anomalies(&check(&b.build())),
            vec![Anomaly::CommittedOffsetRegression]
        );
    }

    #[test]
    fn after_a_late_commit_set_the_group_back_a_member_starts_where_it_moved_on_to() {
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 13, OpKind::Info);
        commit(&mut b, 10, 0, 23, OpKind::Ok);
        seek(&mut b, 11, 0, 13);
        commit(&mut b, 11, 0, 18, OpKind::Ok);
        seek(&mut b, 12, 0, 18);
        commit(&mut b, 12, 0, 20, OpKind::Ok);
        assert!(check(&b.build()).is_empty());
        // Starting below where it moved on to is still a regression.
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 13, OpKind::Info);
        commit(&mut b, 10, 0, 23, OpKind::Ok);
        seek(&mut b, 11, 0, 13);
        commit(&mut b, 11, 0, 18, OpKind::Ok);
        seek(&mut b, 12, 0, 15);
        commit(&mut b, 12, 0, 20, OpKind::Ok);
        assert_eq!(
            anomalies(&check(&b.build())),
            vec![Anomaly::CommittedOffsetRegression]
        );
    }

    #[test]
    fn fires_when_a_new_owner_skips_past_every_commit() {
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        seek(&mut b, 11, 0, 9);
        commit(&mut b, 11, 0, 12, OpKind::Ok);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::RebalanceSkip]);
        assert_eq!(f[0].offsets, vec![5, 9]);
    }

    fn seek_because(b: &mut HistoryBuilder, process: u64, offset: i64, reason: SeekReason) {
        let v = SeekValue::new(T, 0, offset).because(reason);
        b.advance(1_000);
        b.call(process, v.clone(), OpKind::Ok, v);
    }

    #[test]
    fn silent_when_a_member_seeks_back_to_replay() {
        let mut b = HistoryBuilder::new();
        seek_because(&mut b, 10, 0, SeekReason::Committed);
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        // Below the committed offset, and (for the second) beyond every commit: both replays.
        seek_because(&mut b, 10, 2, SeekReason::Back);
        commit(&mut b, 10, 0, 6, OpKind::Ok);
        seek_because(&mut b, 10, 9, SeekReason::Back);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_when_a_member_seeks_past_the_log_end_and_resets() {
        let mut b = HistoryBuilder::new();
        seek_because(&mut b, 10, 0, SeekReason::Committed);
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        // The application's own offset, past every commit; then auto.offset.reset to earliest.
        seek_because(&mut b, 10, 3_000_000, SeekReason::External);
        seek_because(&mut b, 10, 0, SeekReason::Reset);
        commit(&mut b, 10, 0, 6, OpKind::Ok);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_when_a_zombie_commit_of_an_old_generation_is_refused() {
        let mut b = HistoryBuilder::new();
        seek_because(&mut b, 10, 0, SeekReason::Committed);
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        seek_because(&mut b, 11, 5, SeekReason::Committed);
        commit(&mut b, 11, 0, 8, OpKind::Ok);
        // Member 10's commit from before the rebalance, refused ILLEGAL_GENERATION.
        commit(&mut b, 10, 0, 6, OpKind::Fail);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn fires_when_a_committed_seek_starts_below_the_committed_offset() {
        let mut b = HistoryBuilder::new();
        commit(&mut b, 10, 0, 5, OpKind::Ok);
        seek_because(&mut b, 11, 2, SeekReason::Committed);
        commit(&mut b, 11, 0, 6, OpKind::Ok);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::CommittedOffsetRegression]);
        assert_eq!(f[0].offsets, vec![5, 2]);
    }
}
