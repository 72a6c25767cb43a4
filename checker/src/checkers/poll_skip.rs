//! **poll-skip**: one consumer process, polling a partition without an intervening assign or
//! seek, jumps over offsets that exist (some read returned them) from one poll to the next: a
//! poll starts (its fetch offset or first record) beyond where the previous one ended, or its
//! first record is beyond its own fetch offset. A jump between two records of one poll is
//! [`super::int_poll_skip`]. See `poll_walk` for how positions are followed.

use super::{Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    super::poll_walk::run(&Index::new(history)).skips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::Anomaly;
    use crate::history::{HistoryBuilder, OpKind, PartitionOffset, PollValue};

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_when_consecutive_polls_skip_existing_offsets() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        poll(&mut b, 10, 0, &[(3, "d")], 4);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d"]);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::PollSkip);
        assert_eq!(f[0].offsets, vec![1, 2]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn fires_via_fetch_offsets_but_not_within_one_poll() {
        // The skip from 0 to 2 inside the first poll is int-poll-skip's; the fetch from 3 after
        // ending at 2 is this checker's.
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (2, "c")], 5);
        let v = PollValue::default().fetch_offset(T, 0, 4).hwm(T, 0, 5);
        b.call(10, PollValue::default(), OpKind::Ok, v);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d", "e"]);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].offsets, vec![3]);
        assert_eq!(f[0].ops, vec![1, 3]);
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        let v = PollValue::default().fetch_offset(T, 0, 3).hwm(T, 0, 4);
        b.call(10, PollValue::default(), OpKind::Ok, v);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d"]);
        assert_eq!(check(&b.build())[0].offsets, vec![1, 2]);
    }

    #[test]
    fn fires_when_a_poll_starts_beyond_its_own_fetch_offset() {
        let mut b = HistoryBuilder::new();
        let v = PollValue::default()
            .fetch_offset(T, 0, 0)
            .record(T, 0, 2, "c")
            .hwm(T, 0, 3);
        b.call(10, PollValue::default(), OpKind::Ok, v);
        final_read(&mut b, 20, 0, &["a", "b", "c"]);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::PollSkip], "{f:#?}");
        assert_eq!(f[0].offsets, vec![0, 1]);
    }

    #[test]
    fn silent_after_assign_seek_or_info_poll() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        assign(&mut b, 10, 0);
        poll(&mut b, 10, 0, &[(2, "c")], 4);
        let seek = PartitionOffset {
            topic: T.into(),
            partition: 0,
            offset: 3,
        };
        b.call(10, seek.clone(), OpKind::Ok, seek);
        poll(&mut b, 10, 0, &[(3, "d")], 5);
        b.call(10, PollValue::default(), OpKind::Info, PollValue::default());
        poll(&mut b, 10, 0, &[(5, "f")], 6);
        // A different process starting elsewhere is no skip either.
        poll(&mut b, 11, 0, &[(4, "e")], 6);
        final_read(&mut b, 20, 0, &["a", "b", "c", "d", "e", "f"]);
        assert!(check(&b.build()).is_empty());
    }
}
