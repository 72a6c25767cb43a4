//! **inconsistent-offsets** (Jepsen's `inconsistent-offsets`, where it involves an
//! acknowledgement): one offset holds two values according to the broker's acknowledgements and
//! the reads. Either two sends were acknowledged at the same offset with different values, or a
//! send acknowledged at `o` is contradicted by a read of `o` that returned another value.
//! Disagreements among reads alone (Jepsen's inconsistent-offsets too) are
//! [`super::replay_mismatch`], and one value at two offsets (an ack at `o`, a read elsewhere) is
//! Jepsen's and riptide's [`super::duplicate`].

use super::{q, ranges, Anomaly, Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    // Two acks for one offset.
    for (tp, part) in ix.parts() {
        for acks in part.ack_groups() {
            let (o, first) = (acks[0].0, &ix.sends[acks[0].1]);
            if let Some(other) = acks[1..]
                .iter()
                .map(|&(_, i)| &ix.sends[i])
                .find(|s| s.vid != first.vid)
            {
                out.push(Finding::new(
                    Anomaly::InconsistentOffsets,
                    tp,
                    vec![o],
                    vec![first.op, other.op],
                    format!(
                        "Offset {o} was acknowledged for both {} and {}.",
                        q(ix.value(first.vid)),
                        q(ix.value(other.vid))
                    ),
                ));
            }
        }
    }
    // Acks contradicted by reads: each partition's acks and reads, both sorted by offset, walked
    // together; then reported in send order.
    let mut contradicted: Vec<(usize, usize)> = Vec::new();
    for (_, part) in ix.parts() {
        let mut at = 0;
        for &(o, i) in &part.acks {
            while at < part.reads.len() && part.reads[at].0 < o {
                at += 1;
            }
            let vid = ix.sends[i].vid;
            let other = part.reads[at..]
                .iter()
                .take_while(|e| e.0 == o)
                .find(|e| ix.reads[e.1].vid != vid);
            if let Some(&(_, r)) = other {
                contradicted.push((i, r));
            }
        }
    }
    contradicted.sort_unstable();
    for (i, r) in contradicted {
        let (s, r) = (&ix.sends[i], &ix.reads[r]);
        let Some(o) = s.acked() else { continue };
        let elsewhere: Vec<i64> = ix
            .reads_of_id(s.vid)
            .filter(|r| r.pid != s.pid || r.offset != o)
            .map(|r| r.offset)
            .collect();
        let mut elsewhere_sorted = elsewhere;
        elsewhere_sorted.sort_unstable();
        elsewhere_sorted.dedup();
        let also = if elsewhere_sorted.is_empty() {
            String::new()
        } else {
            format!(
                " (the value was read at offset {})",
                ranges(&elsewhere_sorted)
            )
        };
        out.push(Finding::new(
            Anomaly::InconsistentOffsets,
            ix.tp(s.pid),
            std::iter::once(o).chain(elsewhere_sorted).collect(),
            vec![s.op, r.op],
            format!(
                "Send of {} was acknowledged at offset {o} but a read of offset {o} returned {}{also}.",
                q(ix.value(s.vid)),
                q(ix.value(r.vid))
            ),
        ));
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
    fn fires_when_a_read_contradicts_an_ack() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        final_read(&mut b, 20, 0, &["b", "a"]);
        let f = check(&b.build());
        assert_eq!(
            anomalies(&f),
            vec![Anomaly::InconsistentOffsets; 2],
            "{f:#?}"
        );
        assert_eq!(f[0].offsets, vec![0, 1]);
        assert_eq!(f[0].ops, vec![1, 5]);
    }

    #[test]
    fn fires_when_two_sends_are_acked_at_one_offset() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 2, 0, "b", 0);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn leaves_a_value_read_elsewhere_and_its_offset_never_to_duplicate() {
        // Jepsen's version order puts "a" at 5 (the ack) and 2 (the read): a duplicate, and no
        // offset holds two values.
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 5);
        poll(&mut b, 10, 0, &[(2, "a")], 6);
        let h = b.build();
        assert!(check(&h).is_empty());
        let f = crate::checkers::duplicate::check(&h);
        assert_eq!(anomalies(&f), vec![Anomaly::Duplicate], "{f:#?}");
    }
}
