//! **offset-gap**: offsets are not contiguous. A successful final read must hold every offset in
//! `log_start..hwm` (below the partition's final log start records were removed on purpose).
//! A poll's records for one partition must be consecutive unless the skipped offsets
//! are known to exist (that is a [`super::poll_skip`]); a poll gap is reported here only when no
//! read ever returned those offsets and no final read already covers them.
//!
//! Offsets a reader said hold no data (control batches, aborted records: `hidden` ranges of
//! polls and final reads), or that another reader saw holding a record of a transaction that
//! did not commit, are present, not holes. In a partition written by transactions, a
//! reader that reports no hidden ranges at all cannot tell a control batch from a hole, so its
//! reads are not judged.

use super::{ranges, Anomaly, Finding, Index};
use crate::history::{History, OpKind, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for fr in &ix.final_reads {
        let Some(part) = ix.part(fr.tp) else { continue };
        if part.txn_written && fr.hidden.is_empty() {
            continue;
        }
        let mut offsets: Vec<i64> = fr.records.iter().map(|r| r.offset).collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mut missing = Vec::new();
        let mut count: i64 = 0;
        // Below the log start records were removed on purpose: no holes there.
        let mut expected = part.log_start().max(0);
        for o in offsets.into_iter().chain(std::iter::once(fr.hwm)) {
            if o > expected {
                for (from, to) in part.unhidden(expected, o.min(fr.hwm)) {
                    // Offsets another reader saw holding an aborted transaction's record.
                    let aborted = if ix.txns.is_empty() {
                        Vec::new()
                    } else {
                        let read = part.read_offsets_in(from, to);
                        read.into_iter()
                            .filter(|&o| ix.hidden_at(fr.tp, o))
                            .collect()
                    };
                    count += to - from - aborted.len() as i64;
                    let room = super::MAX_LISTED.saturating_sub(missing.len());
                    missing.extend((from..to).filter(|o| !aborted.contains(o)).take(room));
                }
            }
            expected = expected.max(o + 1);
            if expected >= fr.hwm {
                break;
            }
        }
        if count > 0 {
            out.push(Finding::new(
                Anomaly::OffsetGap,
                fr.tp,
                missing.clone(),
                vec![fr.op],
                format!(
                    "The final read up to hwm {} is missing {count} offset(s): {}.",
                    fr.hwm,
                    ranges(&missing)
                ),
            ));
        }
    }
    for pair in ix.pairs_of(&[F::Poll]) {
        let (OpKind::Ok, Value::Poll(p)) = (pair.outcome(), &pair.last().value) else {
            continue;
        };
        for w in p.records.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let tp = (a.topic.as_str(), a.partition);
            if (b.topic.as_str(), b.partition) != tp || b.offset <= a.offset + 1 {
                continue;
            }
            // Offsets below a final read's hwm are judged by that final read.
            let covered = ix
                .part(tp)
                .and_then(|p| p.max_final_hwm)
                .map_or(a.offset + 1, |(h, _)| h.max(a.offset + 1));
            if covered >= b.offset {
                continue;
            }
            let known = ix.read_offsets_in(tp, covered, b.offset);
            if !known.is_empty() {
                continue;
            }
            let Some(part) = ix.part(tp) else { continue };
            if part.txn_written && p.hidden.is_empty() {
                continue;
            }
            let missing: Vec<i64> = part
                .unhidden(covered, b.offset)
                .into_iter()
                .flat_map(|(from, to)| from..to)
                .take(super::MAX_LISTED)
                .collect();
            if missing.is_empty() {
                continue;
            }
            out.push(Finding::new(
                Anomaly::OffsetGap,
                tp,
                missing.clone(),
                vec![pair.last().index],
                format!(
                    "A poll returned offset {} then {} and no read ever returned offset {}.",
                    a.offset,
                    b.offset,
                    ranges(&missing)
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

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_on_holes_in_the_final_read() {
        let mut b = HistoryBuilder::new();
        final_read_records(&mut b, 20, 0, &[(0, "a"), (3, "d"), (4, "e")], 7);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::OffsetGap);
        assert_eq!(f[0].offsets, vec![1, 2, 5, 6]);
        assert_eq!(
            f[0].explanation,
            "The final read up to hwm 7 is missing 4 offset(s): 1..2, 5..6."
        );
    }

    #[test]
    fn fires_on_a_poll_gap_nobody_can_fill() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (2, "c")], 3);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].offsets, vec![1]);
    }

    #[test]
    fn leaves_poll_gaps_over_existing_offsets_to_poll_skip() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (2, "c")], 3);
        final_read(&mut b, 20, 0, &["a", "b", "c"]);
        assert!(check(&b.build()).is_empty());
    }
}
