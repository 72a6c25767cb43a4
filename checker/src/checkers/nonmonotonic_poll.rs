//! **nonmonotonic-poll**: one consumer process, polling a partition without an intervening
//! assign or seek, reads an offset at or below one it already read (across consecutive polls or
//! within one poll). See `poll_walk` for how positions are followed.

use super::{Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    super::poll_walk::run(&Index::new(history)).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::Anomaly;
    use crate::history::{HistoryBuilder, OpKind, PartitionOffset};

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
    fn fires_within_one_poll() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b"), (1, "b")], 2);
        assert_eq!(check(&b.build()).len(), 1);
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
