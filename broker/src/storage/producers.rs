//! Idempotent producers: per-partition sequence checks, as Kafka does them.
//! State comes from commit headers only (see `commit::ProducerEntry`).
//!
//! Asserted (`always!`, `producers.*`): a producer's epoch never goes back, and each batch
//! recorded follows the producer's last (or starts a new producer or epoch at sequence 0).

use super::commit::{ProducerEntry, SeqBatch, PRODUCER_BATCHES};
use crate::batch::BatchHeader;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not idempotent, or the next batch in sequence: write it.
    Append,
    /// Already written at this base offset: answer with it, write nothing.
    Duplicate(i64),
    /// A gap or a reordering.
    OutOfOrder,
    /// An older epoch of a producer that has since been re-initialised.
    Fenced,
}

/// Producer states keyed by producer id.
#[derive(Debug, Clone, Default)]
pub struct Producers {
    known: BTreeMap<i64, ProducerEntry>,
    /// `Bug::LoseProducerState`: take an unknown producer at any sequence.
    pub lenient: bool,
    /// `Bug::EpochBumpIgnored`: a newer epoch's batch numbered at or below the last one seen
    /// is answered as a duplicate of it.
    pub ignore_epoch: bool,
}

fn last_seq(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0.
    ((h.base_sequence as i64 + h.records as i64 - 1) % (i32::MAX as i64 + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl Producers {
    pub fn learn(&mut self, entries: &[ProducerEntry]) {
        for e in entries {
            if let Some(known) = self.known.get(&e.producer_id) {
                riptide_coverage::always!(
                    e.epoch >= known.epoch,
                    "producers.learned_epoch_never_decreases",
                    "a producer's state learned from a later commit never has an older epoch than what was known",
                    "producer {} learned at epoch {} after epoch {}",
                    e.producer_id,
                    e.epoch,
                    known.epoch
                );
            }
            self.known.insert(e.producer_id, e.clone());
        }
    }

    pub fn check(&self, h: &BatchHeader) -> Verdict {
        if h.producer_id < 0 {
            return Verdict::Append;
        }
        let Some(e) = self.known.get(&h.producer_id) else {
            return if h.base_sequence == 0 || self.lenient {
                Verdict::Append
            } else {
                Verdict::OutOfOrder
            };
        };
        if h.producer_epoch < e.epoch {
            return Verdict::Fenced;
        }
        if self.ignore_epoch && h.producer_epoch > e.epoch {
            if let Some(b) = e.batches.last().filter(|b| h.base_sequence <= b.last_seq) {
                return Verdict::Duplicate(b.base_offset);
            }
        }
        if h.producer_epoch > e.epoch {
            return if h.base_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::OutOfOrder
            };
        }
        let last = last_seq(h);
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return Verdict::Duplicate(b.base_offset);
        }
        match e.batches.last() {
            Some(b) if h.base_sequence == next_seq(b.last_seq) => Verdict::Append,
            None if h.base_sequence == 0 => Verdict::Append,
            _ => Verdict::OutOfOrder,
        }
    }

    /// Every known producer's state, by producer id: what a checkpoint keeps.
    pub fn entries(&self) -> Vec<ProducerEntry> {
        self.known.values().cloned().collect()
    }

    /// The producer's epoch, if it is known here.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.known.get(&producer_id).map(|e| e.epoch)
    }

    /// A transaction marker of `epoch` was written: a newer epoch (the coordinator fenced the
    /// producer, or aborted its transaction on a timeout) restarts its sequences, and batches
    /// of older epochs are refused from now on. Returns the new state if it changed.
    pub fn bump_epoch(&mut self, producer_id: i64, epoch: i16) -> Option<ProducerEntry> {
        let e = self
            .known
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_id,
                epoch,
                batches: Vec::new(),
            });
        if e.epoch >= epoch && !e.batches.is_empty() {
            return None;
        }
        if e.epoch < epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        Some(e.clone())
    }

    /// Records an appended batch; returns the producer's new state.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) -> Option<ProducerEntry> {
        if h.producer_id < 0 {
            return None;
        }
        let e = self
            .known
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                batches: Vec::new(),
            });
        riptide_coverage::always!(
            h.producer_epoch >= e.epoch,
            "producers.epoch_never_decreases",
            "a batch appended never carries an older epoch than its producer's last",
            "producer {} appended a batch of epoch {} after epoch {}",
            h.producer_id,
            h.producer_epoch,
            e.epoch
        );
        let follows = match e.batches.last() {
            Some(b) if e.epoch == h.producer_epoch => h.base_sequence == next_seq(b.last_seq),
            _ => h.base_sequence == 0,
        };
        riptide_coverage::always!(
            follows,
            "producers.sequence_follows",
            "a batch appended follows its producer's last one in sequence, or starts a new producer or epoch at 0",
            "producer {} epoch {} appended sequence {} after {:?}",
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            e.batches.last().map(|b| (e.epoch, b.last_seq))
        );
        if e.epoch != h.producer_epoch {
            riptide_coverage::reached!("idempotent.epoch_bumped", "a producer's batch came with a newer epoch (KIP-360 bump): its sequences start again");
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.batches.push(SeqBatch {
            first_seq: h.base_sequence,
            last_seq: last_seq(h),
            base_offset,
        });
        if e.batches.len() > PRODUCER_BATCHES {
            e.batches.remove(0);
        }
        Some(e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records,
        }
    }

    #[test]
    fn sequences() {
        let mut p = Producers::default();
        assert_eq!(p.check(&header(-1, -1, -1, 3)), Verdict::Append);
        assert_eq!(p.check(&header(7, 0, 5, 1)), Verdict::OutOfOrder);
        let first = header(7, 0, 0, 3);
        assert_eq!(p.check(&first), Verdict::Append);
        p.record(&first, 10);
        assert_eq!(p.check(&first), Verdict::Duplicate(10));
        assert_eq!(p.check(&header(7, 0, 4, 1)), Verdict::OutOfOrder);
        let second = header(7, 0, 3, 2);
        assert_eq!(p.check(&second), Verdict::Append);
        p.record(&second, 13);
        assert_eq!(p.check(&first), Verdict::Duplicate(10));
        assert_eq!(p.check(&header(7, 1, 0, 1)), Verdict::Append);
        p.record(&header(7, 1, 0, 1), 20);
        assert_eq!(p.check(&header(7, 0, 5, 1)), Verdict::Fenced);
    }

    #[test]
    fn only_the_last_five_batches_deduplicate() {
        let mut p = Producers::default();
        for i in 0..7 {
            p.record(&header(1, 0, i, 1), i as i64);
        }
        assert_eq!(p.check(&header(1, 0, 6, 1)), Verdict::Duplicate(6));
        assert_eq!(p.check(&header(1, 0, 0, 1)), Verdict::OutOfOrder);
    }

    fn breaches(f: impl FnOnce()) -> Vec<String> {
        let ((), c) = riptide_coverage::collect_all(f);
        c.invariants.breaches.into_iter().map(|b| b.name).collect()
    }

    #[test]
    fn a_batch_of_an_older_epoch_recorded_breaks_epoch_never_decreases() {
        let names = breaches(|| {
            let mut p = Producers::default();
            p.record(&header(7, 1, 0, 1), 0);
            // `check` would have said Fenced; recording it anyway moves the epoch back.
            p.record(&header(7, 0, 1, 1), 1);
        });
        assert!(
            names.contains(&"broker/producers.epoch_never_decreases".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn producer_state_learned_with_an_older_epoch_breaks_learned_epoch_never_decreases() {
        let entry = |epoch| ProducerEntry {
            producer_id: 7,
            epoch,
            batches: vec![SeqBatch {
                first_seq: 0,
                last_seq: 0,
                base_offset: 0,
            }],
        };
        let names = breaches(|| {
            let mut p = Producers::default();
            p.learn(&[entry(2)]);
            p.learn(&[entry(3)]);
            p.learn(&[entry(1)]);
        });
        assert_eq!(names, ["broker/producers.learned_epoch_never_decreases"]);
    }

    #[test]
    fn batches_recorded_in_sequence_break_nothing() {
        let names = breaches(|| {
            let mut p = Producers::default();
            p.record(&header(7, 0, 0, 3), 0);
            p.record(&header(7, 0, 3, 2), 3);
            p.record(&header(7, 1, 0, 1), 5);
        });
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn sequence_wraps() {
        let mut p = Producers::default();
        p.record(&header(1, 0, 0, 1), 0);
        let mut e = p.known.get(&1).unwrap().clone();
        e.batches[0].last_seq = i32::MAX;
        p.learn(&[e]);
        assert_eq!(p.check(&header(1, 0, 0, 1)), Verdict::Append);
    }
}
