//! **hwm-regression**: a high watermark went down. Either one process saw a partition's hwm (in
//! polls or list-offsets) lower than the previous value it saw, or a final read's hwm is below
//! something already established: an acknowledged offset + 1, a polled offset + 1, or an hwm any
//! process observed.

use super::{Anomaly, FastMap, Finding, Index, Numbers, Tp};
use crate::history::{History, OpKind, Value, F};

pub fn check(history: &History) -> Vec<Finding> {
    run(&Index::new(history))
}

/// Why a partition's final hwm must be at least some value. Order breaks ties (acks first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    Acked,
    Polled,
    Observed,
}

/// The strongest lower bound on a partition's final hwm: (hwm, why, op), first one wins ties.
type Bound = (i64, Why, u64);

/// Partitions numbered as met (lookups only), and by number the strongest bound on each.
#[derive(Default)]
struct Bounds<'a> {
    ids: Numbers<'a, i32>,
    list: Vec<Option<Bound>>,
}

impl<'a> Bounds<'a> {
    fn id(&mut self, tp: Tp<'a>) -> u32 {
        let id = self.ids.get_or_insert(tp.0, tp.1, self.list.len() as u32);
        if id as usize == self.list.len() {
            self.list.push(None);
        }
        id
    }

    fn raise(&mut self, id: u32, b: Bound) {
        let e = self.list[id as usize].get_or_insert(b);
        if b.0 > e.0 {
            *e = b;
        }
    }
}

pub(crate) fn run(ix: &Index<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut bounds = Bounds::default();
    let mut raise = |tp, b: Bound| {
        let id = bounds.id(tp);
        bounds.raise(id, b);
    };
    for (tp, part) in ix.parts() {
        if let Some((o, op)) = part.max_ack {
            raise(tp, (o + 1, Why::Acked, op));
        }
        if let Some((o, op)) = part.max_poll_offset {
            raise(tp, (o + 1, Why::Polled, op));
        }
    }
    // Per process and partition: the last hwm seen and its op.
    // Lookups only, never iterated.
    // (Partitions by their number in `bounds`.)
    let mut seen: FastMap<(u64, u32), (i64, u64)> = FastMap::default();
    let mut observed: Vec<(Tp<'_>, i64)> = Vec::new();
    for pair in ix.pairs_of(&[F::Poll, F::ListOffsets]) {
        if pair.outcome() != OpKind::Ok {
            continue;
        }
        let op = pair.last().index;
        let process = pair.invoke.process;
        observed.clear();
        match &pair.last().value {
            Value::Poll(p) => observed.extend(
                p.high_watermarks
                    .iter()
                    .map(|h| ((h.topic.as_str(), h.partition), h.hwm)),
            ),
            Value::ListOffsets(l) => observed.extend(
                l.partitions
                    .iter()
                    .filter_map(|p| Some(((p.topic.as_str(), p.partition), p.latest?))),
            ),
            _ => continue,
        }
        for &(tp, hwm) in &observed {
            let id = bounds.id(tp);
            if let Some(&(prev, prev_op)) = seen.get(&(process, id)) {
                if hwm < prev {
                    out.push(Finding::new(
                        Anomaly::HwmRegression,
                        tp,
                        vec![prev, hwm],
                        vec![prev_op, op],
                        format!(
                            "Process {process} saw the high watermark drop from {prev} to {hwm}."
                        ),
                    ));
                }
            }
            seen.insert((process, id), (hwm, op));
            bounds.raise(id, (hwm, Why::Observed, op));
        }
    }
    for fr in &ix.final_reads {
        let bound = bounds.ids.get(fr.tp.0, fr.tp.1);
        let Some((bound, why, op)) = bound.and_then(|id| bounds.list[id as usize]) else {
            continue;
        };
        if fr.hwm >= bound {
            continue;
        }
        let what = match why {
            Why::Acked => format!("offset {} was acknowledged", bound - 1),
            Why::Polled => format!("offset {} was polled", bound - 1),
            Why::Observed => format!("a high watermark of {bound} was observed"),
        };
        out.push(Finding::new(
            Anomaly::HwmRegression,
            fr.tp,
            vec![bound, fr.hwm],
            vec![op, fr.op],
            format!(
                "The final read's high watermark is {} although {what}.",
                fr.hwm
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::{HistoryBuilder, ListOffsetsValue, PartitionOffsets};

    #[test]
    fn silent_on_clean_history() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn fires_when_a_process_sees_the_hwm_drop() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[], 5);
        let lo = |latest| ListOffsetsValue {
            partitions: vec![PartitionOffsets {
                topic: T.into(),
                partition: 0,
                earliest: Some(0),
                latest,
            }],
        };
        b.call(10, lo(None), OpKind::Ok, lo(Some(3)));
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].anomaly, Anomaly::HwmRegression);
        assert_eq!(f[0].offsets, vec![5, 3]);
        assert_eq!(f[0].ops, vec![1, 3]);
    }

    #[test]
    fn fires_when_the_final_read_ends_below_an_ack() {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 1, 0, "b", 1);
        final_read(&mut b, 20, 0, &["a"]);
        let f = check(&b.build());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].offsets, vec![2, 1]);
        assert_eq!(
            f[0].explanation,
            "The final read's high watermark is 1 although offset 1 was acknowledged."
        );
    }

    #[test]
    fn silent_when_different_processes_see_different_hwms() {
        let mut b = HistoryBuilder::new();
        poll(&mut b, 10, 0, &[], 5);
        poll(&mut b, 11, 0, &[], 3);
        final_read_records(&mut b, 20, 0, &[], 5);
        let h = b.build();
        // Only the (odd) empty final read up to 5 might complain, and it does not: 5 >= 5.
        assert!(check(&h).is_empty());
    }
}
