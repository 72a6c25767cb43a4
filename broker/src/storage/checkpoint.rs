//! Checkpoints: everything opening a partition needs, up to one commit, in one object, so a new
//! owner reads the newest checkpoint and the few commits after it instead of the whole chain.
//!
//! A checkpoint is only a cache of the chain. It is written with create-if-absent at
//! `log/{topic_id}/{partition}/checkpoints/{seq:020}.ckpt` by a writer that knows the chain up to
//! commit `seq`; any two writers would write the same state there. Opening trusts one only after
//! checking it against the chain: its checksum, and the commit it names (same write id, same end
//! offset). One that fails costs time: opening falls back to an older checkpoint or the chain.
//!
//! Format: `RPCK` | u8 version | u32 CRC-32C of the body | body (postcard). The index of commits
//! is stored as columns of differences (a commit's base offset is the previous one's end), about
//! six bytes a commit, since it is most of a checkpoint.

use super::commit::ProducerEntry;
use super::log::CommitRef;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"RPCK";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 9;

/// A partition's state after commit `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The last commit it covers, and that commit's write id: what ties it to this chain.
    pub seq: u64,
    pub write_id: u64,
    pub hwm: i64,
    /// Epoch and writer of commit `seq`.
    pub tail: Option<(u64, i32)>,
    /// The first offset a reader may fetch.
    pub log_start: i64,
    /// Commits below this were deleted (they lie below the log start).
    pub collected_below: u64,
    /// Idempotent producers' state.
    pub producers: Vec<ProducerEntry>,
    /// Open transactions: producer id, first offset.
    pub ongoing: Vec<(i64, i64)>,
    /// Of the open ones: producer id, transactional id, when it began.
    pub origins: Vec<(i64, String, i64)>,
    /// Each producer's newest transaction coordinator epoch.
    pub coordinators: Vec<(i64, i32)>,
    /// Aborted transactions: producer id, first offset, marker offset.
    pub aborted: Vec<(i64, i64, i64)>,
    /// The data commits a reader may need, oldest first.
    pub commits: Vec<CommitRef>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a checkpoint object")]
    Magic,
    #[error("unknown checkpoint version {0}")]
    Version(u8),
    #[error("checksum mismatch: the object is damaged")]
    Checksum,
    #[error("bad checkpoint body: {0}")]
    Body(String),
}

/// What is stored: the commits as columns of differences.
#[derive(Serialize, Deserialize)]
struct Stored {
    seq: u64,
    write_id: u64,
    hwm: i64,
    tail: Option<(u64, i32)>,
    log_start: i64,
    collected_below: u64,
    producers: Vec<ProducerEntry>,
    ongoing: Vec<(i64, i64)>,
    origins: Vec<(i64, String, i64)>,
    coordinators: Vec<(i64, i32)>,
    aborted: Vec<(i64, i64, i64)>,
    first_base: i64,
    seq_steps: Vec<u64>,
    records: Vec<u64>,
    timestamp_steps: Vec<i64>,
    data_lens: Vec<u64>,
}

pub fn encode(c: &Checkpoint) -> Bytes {
    let mut s = Stored {
        seq: c.seq,
        write_id: c.write_id,
        hwm: c.hwm,
        tail: c.tail,
        log_start: c.log_start,
        collected_below: c.collected_below,
        producers: c.producers.clone(),
        ongoing: c.ongoing.clone(),
        origins: c.origins.clone(),
        coordinators: c.coordinators.clone(),
        aborted: c.aborted.clone(),
        first_base: c.commits.first().map_or(0, |r| r.base_offset),
        seq_steps: Vec::with_capacity(c.commits.len()),
        records: Vec::with_capacity(c.commits.len()),
        timestamp_steps: Vec::with_capacity(c.commits.len()),
        data_lens: Vec::with_capacity(c.commits.len()),
    };
    let (mut seq, mut ts) = (0u64, 0i64);
    for r in &c.commits {
        s.seq_steps.push(r.seq.wrapping_sub(seq));
        s.records.push(r.records as u64);
        s.timestamp_steps.push(r.max_timestamp.wrapping_sub(ts));
        s.data_lens.push(r.data_len);
        (seq, ts) = (r.seq, r.max_timestamp);
    }
    let body = postcard::to_allocvec(&s).expect("a checkpoint serializes");
    let mut out = BytesMut::with_capacity(PREFIX_LEN + body.len());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.put_slice(&body);
    out.freeze()
}

pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() < PREFIX_LEN || &bytes[..4] != MAGIC {
        return Err(CheckpointError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(CheckpointError::Version(bytes[4]));
    }
    let crc = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let body = &bytes[PREFIX_LEN..];
    if crc32c::crc32c(body) != crc {
        return Err(CheckpointError::Checksum);
    }
    let s: Stored = postcard::from_bytes(body).map_err(|e| CheckpointError::Body(e.to_string()))?;
    let n = s.seq_steps.len();
    if [s.records.len(), s.timestamp_steps.len(), s.data_lens.len()] != [n, n, n] {
        return Err(CheckpointError::Body(
            "commit columns differ in length".into(),
        ));
    }
    let mut commits = Vec::with_capacity(n);
    let (mut seq, mut ts, mut base) = (0u64, 0i64, s.first_base);
    for i in 0..n {
        seq = seq.wrapping_add(s.seq_steps[i]);
        ts = ts.wrapping_add(s.timestamp_steps[i]);
        let records = s.records[i] as i64;
        commits.push(CommitRef {
            seq,
            base_offset: base,
            records,
            max_timestamp: ts,
            data_len: s.data_lens[i],
        });
        base += records;
    }
    Ok(Checkpoint {
        seq: s.seq,
        write_id: s.write_id,
        hwm: s.hwm,
        tail: s.tail,
        log_start: s.log_start,
        collected_below: s.collected_below,
        producers: s.producers,
        ongoing: s.ongoing,
        origins: s.origins,
        coordinators: s.coordinators,
        aborted: s.aborted,
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::commit::SeqBatch;

    fn sample() -> Checkpoint {
        let mut commits = Vec::new();
        let mut base = 40;
        for (seq, records) in [(7u64, 3i64), (9, 1), (10, 250)] {
            commits.push(CommitRef {
                seq,
                base_offset: base,
                records,
                max_timestamp: 1_700_000_000_000 + seq as i64 * 5 - (seq as i64 % 2) * 20,
                data_len: 100 * records as u64,
            });
            base += records;
        }
        Checkpoint {
            seq: 11,
            write_id: 99,
            hwm: base,
            tail: Some((4, 2)),
            log_start: 40,
            collected_below: 3,
            producers: vec![ProducerEntry {
                producer_id: 5,
                epoch: 2,
                batches: vec![SeqBatch {
                    first_seq: 0,
                    last_seq: 4,
                    base_offset: 41,
                }],
            }],
            ongoing: vec![(5, 41)],
            origins: vec![(5, "tx".into(), 1234)],
            coordinators: vec![(5, 3)],
            aborted: vec![(6, 40, 42)],
            commits,
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(decode(&encode(&c)).unwrap(), c);
        let empty = Checkpoint::default();
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn damage_is_detected() {
        let bytes = encode(&sample()).to_vec();
        for at in [0, 4, 6, PREFIX_LEN, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(
                decode(&bad).is_err(),
                "a flipped byte at {at} went unnoticed"
            );
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"RPCK").is_err());
    }

    #[test]
    fn a_large_index_stays_small() {
        let mut c = Checkpoint::default();
        let mut base = 0;
        for seq in 0..10_000u64 {
            c.commits.push(CommitRef {
                seq: seq + seq / 100,
                base_offset: base,
                records: 10,
                max_timestamp: 1_700_000_000_000 + seq as i64 * 3,
                data_len: 1500,
            });
            base += 10;
        }
        let bytes = encode(&c);
        assert!(bytes.len() < 10_000 * 8, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), c);
    }
}
