//! **liveness-after-heal**: every partition that was written to (or whose final read was
//! attempted) needs a successful final read after the faults healed. A missing or failed final
//! read means the cluster did not recover.

use std::collections::BTreeMap;

use super::{Anomaly, Finding, Index, Tp};
use crate::history::{History, Value};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    // Final-read attempts per partition (any outcome), by their last op.
    let mut attempts: BTreeMap<Tp<'_>, Vec<u64>> = BTreeMap::new();
    for p in &ix.pairs {
        if let Value::FinalRead(fr) = &p.invoke.value {
            let tp = (fr.topic.as_str(), fr.partition);
            attempts.entry(tp).or_default().push(p.last().index);
        }
    }
    let mut out = Vec::new();
    for (tp, part) in ix.parts() {
        if !part.final_reads.is_empty() {
            continue;
        }
        let tried = attempts.remove(&tp).unwrap_or_default();
        if tried.is_empty() && !part.written {
            continue;
        }
        let explanation = match tried.len() {
            0 => "The partition was written to but no final read was attempted after healing."
                .to_owned(),
            n => format!(
                "No final read of the partition succeeded after healing ({n} attempt(s) failed or timed out)."
            ),
        };
        out.push(Finding::new(
            Anomaly::LivenessAfterHeal,
            tp,
            Vec::new(),
            tried,
            explanation,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{FinalReadValue, HistoryBuilder, OpKind};

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_on_missing_and_failed_final_reads() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send_outcome(&mut b, 1, 1, "b", OpKind::Info);
        b.call(
            20,
            FinalReadValue::new(T, 1),
            OpKind::Fail,
            FinalReadValue::new(T, 1),
        );
        let f = check(&b.build());
        assert_eq!(anomalies(&f), vec![Anomaly::LivenessAfterHeal; 2]);
        assert_eq!((f[0].partition, f[0].ops.clone()), (0, vec![]));
        assert_eq!((f[1].partition, f[1].ops.clone()), (1, vec![5]));
    }
}
