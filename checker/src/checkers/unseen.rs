//! **unseen**: a send acknowledged `ok` whose value no read (poll or final read) ever returned,
//! and no read reached its offset: the final read's hwm is at or below it (or, without a final
//! read, no poll returned a higher offset). When a read did reach past the offset the same fact is
//! a [`super::lost_write`] instead; the two never report the same send. An offset below the
//! final read's log start was removed on purpose, and is not reported.

use super::{q, Anomaly, Finding, Index};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &ix.sends {
        if s.outcome != crate::history::OpKind::Ok || ix.is_read(s.vid) {
            continue;
        }
        let part = Some(ix.part_at(s.pid));
        let (reach, what, op) = match part.and_then(|p| p.max_final_hwm) {
            Some((hwm, op)) => (
                hwm,
                format!("the final read stopped at hwm {hwm}"),
                Some(op),
            ),
            None => match part.and_then(|p| p.max_poll_offset) {
                Some((max, op)) => (
                    max + 1,
                    format!("polls reached only offset {max}"),
                    Some(op),
                ),
                None => (0, "no read of the partition succeeded".to_owned(), None),
            },
        };
        let offsets = match s.offset {
            // Reached past it: that is a lost write, reported there.
            Some(o) if reach > o => continue,
            // Removed on purpose below the final read's log start (see `retention`).
            Some(o) if part.is_some_and(|p| p.removed(o)) => continue,
            Some(o) => vec![o],
            None => Vec::new(),
        };
        let at = s
            .offset
            .map(|o| format!(" at offset {o}"))
            .unwrap_or_default();
        out.push(Finding::new(
            Anomaly::Unseen,
            ix.tp(s.pid),
            offsets,
            std::iter::once(s.op).chain(op).collect(),
            format!(
                "Send of {} was acknowledged{at} but never read; {what}.",
                q(ix.value(s.vid))
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
    fn fires_when_reads_stop_short_of_an_acked_send() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        final_read(&mut b, 20, 0, &["a"]);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::Unseen);
        assert_eq!(f[0].offsets, vec![1]);
        assert_eq!(f[0].ops, vec![3, 5]);
    }

    #[test]
    fn fires_without_any_read() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        let f = check(&b.build());
        assert_eq!(f.len(), 1);
        assert!(f[0].explanation.contains("no read"), "{}", f[0].explanation);
    }

    #[test]
    fn defers_to_lost_write_when_a_read_reached_past() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        final_read(&mut b, 20, 0, &["z"]);
        assert!(check(&b.build()).is_empty());
    }

    #[test]
    fn an_ack_without_offset_is_judged_by_whether_it_was_read() {
        // Acked at -1 (no base offset): read back, no anomaly anywhere; never read, unseen.
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", -1);
        send(&mut b, 1, 0, "b", -1);
        final_read(&mut b, 20, 0, &["a", "b"]);
        let h = b.build();
        h.validate().unwrap();
        let all = crate::checkers::run_all(&h, &Default::default());
        assert!(all.is_empty(), "{all:#?}");

        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", -1);
        send(&mut b, 1, 0, "b", -1);
        final_read(&mut b, 20, 0, &["a"]);
        let all = crate::checkers::run_all(&b.build(), &Default::default());
        let names: Vec<_> = all.iter().map(|f| f.anomaly).collect();
        assert_eq!(names, vec![Anomaly::Unseen], "{all:#?}");
        assert!(all[0].offsets.is_empty());
    }
}
