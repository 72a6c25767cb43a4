//! **nonmonotonic-send**: one producer process's acknowledged sends to a partition, in invocation
//! order, receive offsets that do not increase.

use std::collections::BTreeMap;

use super::{q, Anomaly, Finding, Index, Tp};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    // (process, partition) → (last acked offset, its op, its value).
    let mut last: BTreeMap<(u64, Tp<'_>), (i64, u64, &str)> = BTreeMap::new();
    for s in &ix.sends {
        let Some(o) = s.acked() else { continue };
        if let Some(&(prev, prev_op, prev_value)) = last.get(&(s.process, s.tp)) {
            if o <= prev {
                out.push(Finding::new(
                    Anomaly::NonmonotonicSend,
                    s.tp,
                    vec![prev, o],
                    vec![prev_op, s.op],
                    format!(
                        "Process {} sent {} after {} but it was acknowledged at offset {o}, not after {prev}.",
                        s.process,
                        q(s.value),
                        q(prev_value)
                    ),
                ));
            }
        }
        last.insert((s.process, s.tp), (o, s.op, s.value));
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
    fn fires_when_a_producer_gets_a_lower_offset() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        send(&mut b, 2, 0, "x", 1);
        send(&mut b, 1, 0, "b", 3);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::NonmonotonicSend);
        assert_eq!(f[0].offsets, vec![5, 3]);
        assert_eq!(f[0].ops, vec![1, 5]);
    }

    #[test]
    fn silent_across_partitions_and_processes() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        send(&mut b, 1, 1, "b", 0);
        send(&mut b, 2, 0, "c", 1);
        assert!(check(&b.build()).is_empty());
    }
}
