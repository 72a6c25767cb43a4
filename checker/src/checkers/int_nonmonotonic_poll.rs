//! **int-nonmonotonic-poll** (Jepsen's internal nonmonotonic poll): one poll returns a record of
//! a partition at or below the offset of an earlier record of that partition in the same poll:
//! the broker's response itself goes backwards (or repeats a record). Going backwards from one
//! poll to the next is [`super::nonmonotonic_poll`]. See `poll_walk` for how positions are
//! followed.

use super::{Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    super::poll_walk::run(&Index::new(history)).int_backwards
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
    fn fires_when_one_poll_goes_backwards() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (2, "c"), (1, "b")], 3);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicPoll], "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 1]);
        assert_eq!(f[0].ops, vec![1]);
        assert_eq!(
            f[0].explanation,
            "One poll of process 10 returned offset 1 after offset 2."
        );
    }

    #[test]
    fn fires_when_one_poll_repeats_a_record() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b"), (1, "b")], 2);
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::IntNonmonotonicPoll], "{f:#?}");
        assert_eq!(f[0].offsets, vec![1, 1]);
    }

    #[test]
    fn silent_when_going_back_between_polls_or_across_partitions() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        poll(&mut b, 10, 0, &[(0, "a")], 2);
        // Partition 1's records after partition 0's higher offsets are in order.
        let v = PollValue::default()
            .record(T, 0, 1, "b")
            .record(T, 1, 0, "x");
        b.call(11, PollValue::default(), OpKind::Ok, v);
        assert!(check(&b.build()).is_empty());
    }
}
