//! **protocol-violation**: a client saw a reply contrary to the Kafka protocol and recorded it as
//! a `violation` fact (see [`crate::history::ViolationValue`]): a successful produce without a
//! base offset, a response missing a requested partition or naming one not requested, an error
//! code the API version cannot return, a wrong correlation id, fetched records outside the range
//! asked for (other than the start of the batch holding the fetch offset), a corrupt batch, a high
//! watermark below the last stable offset or the log start offset, or anything else undecodable.
//!
//! A client is a witness, not a judge: it records the fact and goes on as a real client would, and
//! this checker judges it. Facts of one kind about one partition from one broker for one API
//! version are one finding (many bad replies of one broker are one defect), naming every
//! violation op and every operation the replies belonged to, the count, and the first fact's
//! detail. This checker needs nothing but the facts, so it applies to any history.

use std::collections::BTreeMap;

use super::{Anomaly, Finding, Index};
use crate::history::{History, ViolationKind, ViolationValue};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// What groups facts into one finding: kind, partition, broker, API, version.
type Key<'a> = (ViolationKind, Option<(&'a str, i32)>, &'a str, &'a str, i16);

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    // Key → (fact op, its value) in history order.
    let mut groups: BTreeMap<Key<'_>, Vec<(u64, &ViolationValue)>> = BTreeMap::new();
    for &(op, v) in &ix.violations {
        let tp = v
            .partition
            .as_ref()
            .map(|t| (t.topic.as_str(), t.partition));
        let key = (v.kind, tp, v.broker.as_str(), v.api.as_str(), v.version);
        groups.entry(key).or_default().push((op, v));
    }
    groups
        .into_iter()
        .map(|((kind, tp, broker, api, version), facts)| {
            let (first_op, first) = facts[0];
            let ops: Vec<u64> = facts
                .iter()
                .flat_map(|&(op, v)| std::iter::once(op).chain(v.op))
                .collect();
            let times = match facts.len() {
                1 => String::new(),
                n => format!(" {n} times, first at op {first_op}"),
            };
            let about = match first.op {
                Some(i) => format!(" (reply to op {i})"),
                None => String::new(),
            };
            Finding::new(
                Anomaly::ProtocolViolation,
                tp.unwrap_or(("", -1)),
                Vec::new(),
                ops,
                format!(
                    "{broker} answered {api} v{version} contrary to the protocol ({kind}){times}: {}{about}.",
                    first.detail.trim_end_matches('.')
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, OpKind, SendValue, TopicPartition};

    fn fact(kind: ViolationKind, partition: Option<i32>, op: Option<u64>) -> ViolationValue {
        ViolationValue {
            kind,
            broker: "broker-0".into(),
            api: "Produce".into(),
            version: 9,
            partition: partition.map(|p| TopicPartition::new(T, p)),
            op,
            detail: format!("{kind} seen"),
        }
    }

    #[test]
    fn silent_on_clean_histories() {
        assert!(check(&clean()).is_empty());
        assert!(check(&pipelined(Mutation::None)).is_empty());
    }

    #[test]
    fn fires_once_for_each_kind_of_violation() {
        for kind in ViolationKind::ALL {
            // The fact sits between the send's invoke and its completion, as a client writes it.
            let mut b = HistoryBuilder::new();
            let s = SendValue::new(T, 0, "a");
            let a = b.invoke(1, s.clone());
            let v = b.ok(1, fact(kind, Some(0), Some(a)));
            b.complete(1, a, OpKind::Ok, s.acked(0));
            final_read(&mut b, 20, 0, &["a"]);
            let h = b.build();
            h.validate().unwrap();
            let f = check(&h);
            assert_eq!(
                anomalies(&f),
                vec![Anomaly::ProtocolViolation],
                "{kind}: {f:#?}"
            );
            assert_eq!((f[0].topic.as_str(), f[0].partition), (T, 0));
            assert_eq!(f[0].ops, vec![a, v]);
            assert_eq!(
                f[0].explanation,
                format!("broker-0 answered Produce v9 contrary to the protocol ({kind}): {kind} seen (reply to op {a}).")
            );
            // Nothing else in that history is wrong: the whole run finds only this.
            let all = crate::check_all(&h, &crate::CheckerConfig::default());
            assert_eq!(anomalies(&all.findings), vec![Anomaly::ProtocolViolation]);
            assert_eq!(
                Anomaly::ProtocolViolation.severity(),
                crate::Severity::Contract
            );
        }
    }

    #[test]
    fn groups_facts_of_one_kind_partition_broker_and_api_version() {
        let mut b = HistoryBuilder::new();
        let v1 = b.ok(1, fact(ViolationKind::NoBaseOffset, Some(0), Some(40)));
        let v2 = b.ok(2, fact(ViolationKind::NoBaseOffset, Some(0), Some(41)));
        // Another partition, another kind, another version, another broker, no partition.
        let v3 = b.ok(1, fact(ViolationKind::NoBaseOffset, Some(1), None));
        let v4 = b.ok(1, fact(ViolationKind::Malformed, Some(0), None));
        let mut other_version = fact(ViolationKind::NoBaseOffset, Some(0), None);
        other_version.version = 3;
        let v5 = b.ok(1, other_version);
        let mut other_broker = fact(ViolationKind::NoBaseOffset, Some(0), None);
        other_broker.broker = "broker-1".into();
        let v6 = b.ok(1, other_broker);
        let v7 = b.ok(1, fact(ViolationKind::CorrelationMismatch, None, None));
        let f = check(&b.build());
        let got: Vec<(Vec<u64>, i32)> = f.iter().map(|f| (f.ops.clone(), f.partition)).collect();
        assert_eq!(
            got,
            vec![
                (vec![v5], 0),
                (vec![v1, v2, 40, 41], 0),
                (vec![v6], 0),
                (vec![v3], 1),
                (vec![v7], -1),
                (vec![v4], 0),
            ]
        );
        assert_eq!(
            f[1].explanation,
            format!("broker-0 answered Produce v9 contrary to the protocol (no-base-offset) 2 times, first at op {v1}: no-base-offset seen (reply to op 40).")
        );
    }
}
