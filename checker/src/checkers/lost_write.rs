//! **lost-write**: a send acknowledged with offset `o` whose value is missing although a read
//! reached past `o`. With a successful final read of the partition, "reached" means the final
//! read's hwm is above `o` and "missing" means absent from every final read (even if a poll saw
//! it earlier: it was there and vanished). Without a final read, Jepsen's rule applies: some poll
//! returned an offset above `o` and no read ever returned the value.
//!
//! Compare [`super::unseen`]: an acked value that no read returned, where no read reached it.
//!
//! An offset below the final read's log start was removed on purpose (DeleteRecords,
//! retention), not lost: [`super::retention`] judges whether it was removed too early.
//!
//! The sends of a transaction are judged by [`super::txn_lost_write`] and
//! [`super::torn_transaction`] instead, one finding per transaction, never here too.

use super::{q, Anomaly, Finding, Index, Send};
use crate::history::History;

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &ix.sends {
        if s.txn.is_some() {
            continue;
        }
        if let Some(f) = missing(ix, s) {
            out.push(f);
        }
    }
    out
}

/// The lost-write finding for one send, if its value is missing although a read reached past
/// its acknowledged offset.
pub(crate) fn missing(ix: &Index<'_>, s: &Send<'_>) -> Option<Finding> {
    let o = s.acked()?;
    let part = ix.part_at(s.pid);
    if part.removed(o) {
        return None;
    }
    if let Some((hwm, fr_op)) = part.max_final_hwm {
        if hwm <= o || ix.reads_of_id(s.vid).any(|r| r.final_read) {
            return None;
        }
        let seen = match ix.reads_of_id(s.vid).count() {
            0 => String::new(),
            n => format!(", though {n} earlier poll(s) had returned it"),
        };
        return Some(Finding::new(
            Anomaly::LostWrite,
            ix.tp(s.pid),
            vec![o],
            vec![s.op, fr_op],
            format!(
                "Send of {} was acknowledged at offset {o} but the final read up to hwm {hwm} does not contain it{seen}.",
                q(ix.value(s.vid))
            ),
        ));
    }
    let (max, poll_op) = part.max_poll_offset?;
    if max <= o || ix.is_read(s.vid) {
        return None;
    }
    Some(Finding::new(
        Anomaly::LostWrite,
        ix.tp(s.pid),
        vec![o, max],
        vec![s.op, poll_op],
        format!(
            "Send of {} was acknowledged at offset {o} but was never read, although polls reached offset {max}.",
            q(ix.value(s.vid))
        ),
    ))
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
    fn fires_when_final_read_passes_the_acked_offset_without_the_value() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        final_read_records(&mut b, 20, 0, &[(0, "a"), (2, "z")], 3);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::LostWrite);
        assert_eq!(f[0].offsets, vec![1]);
        assert_eq!(f[0].ops, vec![3, 7]);
        assert!(
            f[0].explanation.contains("1 earlier poll"),
            "{}",
            f[0].explanation
        );
    }

    #[test]
    fn fires_on_polls_alone_without_final_read() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        poll(&mut b, 10, 0, &[(1, "b")], 2);
        let f = check(&b.build());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].offsets, vec![0, 1]);
    }

    #[test]
    fn silent_when_the_final_read_did_not_reach_the_offset() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        final_read(&mut b, 20, 0, &["a"]);
        assert!(check(&b.build()).is_empty());
    }
}
