//! **broken-invariant**: the system under test broke an invariant it asserts in its own code
//! (riptide's broker: `always!`). The simulator records each breach as an `invariant` event
//! (name, place, detail); each is a finding of its own, whatever the clients saw: the state
//! the broker keeps is not what it promises, even if no client has read the damage yet.
//!
//! What this cannot do: see a breach in a system that asserts nothing, or one outside a
//! simulation (a real broker logs and counts it; its history has no such events).

use super::{Anomaly, Finding, Index};
use crate::history::{History, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    ix.pairs_of(&[F::Invariant])
        .filter_map(|p| {
            let op = p.last();
            let Value::Invariant(v) = &op.value else {
                return None;
            };
            let detail = if v.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", v.detail)
            };
            Some(Finding::new(
                Anomaly::BrokenInvariant,
                (&v.name, -1),
                Vec::new(),
                vec![op.index],
                format!(
                    "The invariant {} was broken at {}{detail}.",
                    v.name, v.place
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, InvariantValue, OpKind};
    use crate::Severity;

    fn breach(b: &mut HistoryBuilder, name: &str, detail: &str) {
        let v = InvariantValue {
            name: name.into(),
            place: "broker/src/storage/log.rs:870".into(),
            detail: detail.into(),
        };
        b.call(1001, v.clone(), OpKind::Ok, v);
    }

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_once_for_each_breach_recorded_and_counts_as_data_loss() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        breach(
            &mut b,
            "broker/log.offsets_contiguous",
            "commit 1 starts at 5",
        );
        breach(&mut b, "broker/log.chain_has_no_holes", "");
        let h = b.build();
        h.validate().unwrap();
        let f = check(&h);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::BrokenInvariant);
        assert_eq!(f[0].anomaly.severity(), Severity::DataLoss);
        assert_eq!(f[0].topic, "broker/log.offsets_contiguous");
        assert_eq!(f[0].ops, vec![3]);
        assert_eq!(
            f[0].explanation,
            "The invariant broker/log.offsets_contiguous was broken at \
             broker/src/storage/log.rs:870: commit 1 starts at 5."
        );
        assert!(
            f[1].explanation.ends_with("log.rs:870."),
            "{}",
            f[1].explanation
        );
    }

    #[test]
    fn an_invariant_event_round_trips_through_json_lines() {
        let mut b = HistoryBuilder::new();
        breach(&mut b, "broker/log.offsets_contiguous", "detail");
        let h = b.build();
        let mut out = Vec::new();
        h.to_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\"f\":\"invariant\""), "{text}");
        let back = History::from_jsonl(&out[..]).unwrap();
        assert_eq!(back, h);
        assert_eq!(check(&back).len(), 1);
    }
}
