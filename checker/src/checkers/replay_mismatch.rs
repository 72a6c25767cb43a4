//! **replay-mismatch**: the same offset read twice (two polls, a poll and a final read, two final
//! reads) returned different values: the record at an offset changed.

use super::{q, Anomaly, Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (tp, part) in ix.parts() {
        for group in part.read_groups() {
            let o = group[0].0;
            // First read of each distinct value, in history order.
            let mut distinct: Vec<(u32, &str, u64)> = Vec::new();
            for &(_, i) in group {
                let r = &ix.reads[i];
                if !distinct.iter().any(|(v, _, _)| *v == r.vid) {
                    distinct.push((r.vid, ix.value(r.vid), r.op));
                }
            }
            if distinct.len() < 2 {
                continue;
            }
            let seen: Vec<String> = distinct
                .iter()
                .map(|(_, v, op)| format!("{} (op {op})", q(v)))
                .collect();
            out.push(Finding::new(
                Anomaly::ReplayMismatch,
                tp,
                vec![o],
                distinct.iter().map(|(_, _, op)| *op).collect(),
                format!("Offset {o} was read as {}.", seen.join(" and as ")),
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
    fn fires_when_a_poll_and_the_final_read_disagree() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 1);
        final_read(&mut b, 20, 0, &["b"]);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::ReplayMismatch);
        assert_eq!(f[0].offsets, vec![0]);
        assert_eq!(f[0].ops, vec![1, 3]);
        assert_eq!(
            f[0].explanation,
            "Offset 0 was read as \"a\" (op 1) and as \"b\" (op 3)."
        );
    }

    #[test]
    fn fires_when_two_polls_disagree() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[(0, "a")], 1);
        poll(&mut b, 11, 0, &[(0, "b")], 1);
        assert_eq!(check(&b.build()).len(), 1);
    }
}
