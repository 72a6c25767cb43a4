//! **nonmonotonic-poll**: one consumer process, polling a partition without an intervening
//! assign or seek, starts a poll (its fetch offset or first record) at or below an offset it
//! already read. Going backwards between two records of one poll is
//! [`super::int_nonmonotonic_poll`]. See `poll_walk` for how positions are followed.

use super::{Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    super::poll_walk::run(&Index::new(history)).backwards
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
    fn fires_when_polls_go_backwards() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b"), (2, "c")], 3);
        poll(&mut b, 10, 0, &[(1, "b")], 3);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::NonmonotonicPoll);
        assert_eq!(f[0].offsets, vec![3, 1]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn fires_when_a_fetch_offset_goes_back_but_not_within_one_poll() {
        let history = |refetch: bool| {
            let mut b = HistoryBuilder::new();
            // Within one poll: int-nonmonotonic-poll's.
            poll(&mut b, 10, 0, &[(0, "a"), (1, "b"), (1, "b")], 2);
            if refetch {
                let v = PollValue::default().fetch_offset(T, 0, 0).hwm(T, 0, 2);
                b.call(10, PollValue::default(), OpKind::Ok, v);
            }
            b.build()
        };
        assert!(check(&history(false)).is_empty());
        let f = check(&history(true));
        assert_eq!(anomalies(&f), vec![Anomaly::NonmonotonicPoll], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 0]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn silent_after_a_seek_back() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        let seek = PartitionOffset {
            topic: T.into(),
            partition: 0,
            offset: 0,
        };
        b.call(10, seek.clone(), OpKind::Ok, seek);
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        assign(&mut b, 10, 0);
        poll(&mut b, 10, 0, &[(0, "a")], 2);
        assert!(check(&b.build()).is_empty());
    }
}
