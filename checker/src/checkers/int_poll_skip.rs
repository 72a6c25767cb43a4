//! **int-poll-skip** (Jepsen's internal poll skip): one poll returns two records of a partition
//! with offsets between them that exist (some read returned them) missing: the broker's response
//! itself skipped records. Skips from one poll to the next are [`super::poll_skip`]. See
//! `poll_walk` for how positions are followed.

use super::{Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    super::poll_walk::run(&Index::new(history)).int_skips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::Anomaly;
    use crate::history::{HistoryBuilder, OpKind, PollValue};

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_when_one_poll_skips_existing_offsets() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (3, "d")], 4);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d"]);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntPollSkip], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1, 2]);
        assert_eq!(f[0].ops, vec![1]);
        assert_eq!(
            f[0].explanation,
            "One poll of process 10 returned offset 0 then offset 3, skipping existing offset(s) 1..2."
        );
    }

    #[test]
    fn fires_per_partition_when_records_of_partitions_interleave() {
        let mut b = HistoryBuilder::new();
        let v = PollValue::default()
            .record(T, 0, 0, "a")
            .record(T, 1, 0, "x")
            .record(T, 0, 1, "b")
            .record(T, 1, 2, "z");
        b.call(10, PollValue::default(), OpKind::Ok, v);
        final_read(&mut b, 20, 0, &["a", "b"]);
        final_read(&mut b, 20, 1, &["x", "y", "z"]);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntPollSkip], "{f:#?}");
        assert_eq!((f[0].partition, f[0].offsets.clone()), (1, vec![1]));
    }

    #[test]
    fn silent_when_the_skip_is_between_polls() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        poll(&mut b, 10, 0, &[(3, "d")], 4);
        // A fetch offset, then a first record beyond it: also between polls.
        let v = PollValue::default()
            .fetch_offset(T, 1, 0)
            .record(T, 1, 2, "z");
        b.call(10, PollValue::default(), OpKind::Ok, v);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d"]);
        final_read(&mut b, 20, 1, &["x", "y", "z"]);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn silent_when_the_missing_offsets_exist_nowhere() {
        // No read ever returned offset 1: that is an offset gap, not a skip.
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (2, "c")], 3);
        assert!(check(&b.build()).is_empty());
    }
}
