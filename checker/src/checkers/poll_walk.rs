//! Follows each consumer process's position per partition through its polls; shared by
//! [`super::poll_skip`] and [`super::nonmonotonic_poll`].
//!
//! The expected next offset is one past the last record returned (or a poll's fetch offset, or a
//! successful seek's target). An `assign` forgets the process's positions, and so does an `info`
//! poll (it may have consumed records nobody saw); a `fail` poll consumed nothing.

use super::{ranges, Anomaly, FastMap, Finding, Index, Tp};
use crate::history::{OpKind, Value};

/// Where a process expects to read next: (offset, op that set it). Kept in a hash map that is
/// only looked up, never iterated into output.
type Cursor = (i64, u64);

/// Returns (poll-skip findings, nonmonotonic-poll findings).
pub(crate) fn run(ix: &Index<'_>) -> (Vec<Finding>, Vec<Finding>) {
    let mut w = Walker {
        ix,
        skips: Vec::new(),
        backwards: Vec::new(),
    };
    let mut cursors: FastMap<(u64, Tp<'_>), Cursor> = FastMap::default();
    for pair in &ix.pairs {
        let process = pair.invoke.process;
        let outcome = pair.outcome();
        match (&pair.invoke.value, outcome) {
            (Value::Assign(_), _) | (Value::Poll(_), OpKind::Info) => {
                cursors.retain(|(p, _), _| *p != process);
            }
            (Value::Seek(s), OpKind::Ok) => {
                let key = (process, (s.topic.as_str(), s.partition));
                cursors.insert(key, (s.offset, pair.last().index));
            }
            (Value::Seek(s), _) => {
                cursors.remove(&(process, (s.topic.as_str(), s.partition)));
            }
            (Value::Poll(_), OpKind::Ok) => {
                let Value::Poll(p) = &pair.last().value else {
                    continue;
                };
                let op = pair.last().index;
                for f in &p.fetch_offsets {
                    let tp = (f.topic.as_str(), f.partition);
                    w.step(&mut cursors, process, tp, f.offset, op);
                }
                for r in &p.records {
                    let tp = (r.topic.as_str(), r.partition);
                    w.step(&mut cursors, process, tp, r.offset, op);
                    cursors.insert((process, tp), (r.offset + 1, op));
                }
            }
            _ => {}
        }
    }
    (w.skips, w.backwards)
}

struct Walker<'i, 'a> {
    ix: &'i Index<'a>,
    skips: Vec<Finding>,
    backwards: Vec<Finding>,
}

impl<'a> Walker<'_, 'a> {
    /// The process reads (or fetches from) `offset`; compare with where it should be.
    fn step(
        &mut self,
        cursors: &mut FastMap<(u64, Tp<'a>), Cursor>,
        process: u64,
        tp: Tp<'a>,
        offset: i64,
        op: u64,
    ) {
        let Some(&(next, prev_op)) = cursors.get(&(process, tp)) else {
            cursors.insert((process, tp), (offset, op));
            return;
        };
        if offset < next {
            self.backwards.push(Finding::new(
                Anomaly::NonmonotonicPoll,
                tp,
                vec![next, offset],
                vec![prev_op, op],
                format!(
                    "Process {process} expected offset {next} next but polled offset {offset}, with no assign or seek in between."
                ),
            ));
        } else if offset > next {
            let skipped = self.ix.read_offsets_in(tp, next, offset);
            if !skipped.is_empty() {
                self.skips.push(Finding::new(
                    Anomaly::PollSkip,
                    tp,
                    skipped.clone(),
                    vec![prev_op, op],
                    format!(
                        "Process {process} expected offset {next} next but polled offset {offset}, skipping existing offset(s) {}.",
                        ranges(&skipped)
                    ),
                ));
            }
        }
        cursors.insert((process, tp), (offset, op));
    }
}
