//! The commit object: one immutable object that both holds a group of record
//! batches and assigns their offsets. Writing data and committing it is one
//! create-if-absent, so no crash can leave reserved-but-empty offsets.
//!
//! Format: `RPTC` | u8 version (1) | u32 header length | JSON header | batches.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"RPTC";
const VERSION: u8 = 1;
pub const PREFIX_LEN: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitHeader {
    pub seq: u64,
    /// Offset of the first record; equals the previous commit's end.
    pub base_offset: i64,
    /// Records in this commit; 0 for a fence (an ownership claim).
    pub records: i64,
    /// Ownership epoch of the writer. A commit with a higher epoch fences all
    /// writers of lower epochs.
    pub epoch: u64,
    pub node_id: i32,
    /// Unique per attempt, so a writer recognises its own commit after an
    /// ambiguous write.
    pub write_id: u64,
    /// Largest record timestamp in the commit (-1 if none).
    pub max_timestamp: i64,
    /// Length of the batch bytes after the header.
    pub data_len: u64,
    /// The state, after this commit, of every idempotent producer it touched.
    /// Replaying headers rebuilds producer state, so it survives crashes and
    /// ownership moves without a store of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub producers: Vec<ProducerEntry>,
    /// Transactions that began in this commit: a producer's first transactional batch in this
    /// partition since its last marker. With `txn_ends`, replaying headers rebuilds the open
    /// transactions (so the last stable offset) and the aborted ones (so what read_committed
    /// consumers skip), like producer state: no store of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txn_begins: Vec<TxnBegin>,
    /// Transaction markers (control batches) in this commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txn_ends: Vec<TxnEnd>,
    /// Markers that found nothing open here but came from a newer transaction coordinator
    /// than any before for their producer: the coordinator epoch they raise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txn_fences: Vec<TxnFence>,
    /// A new log start offset (DeleteRecords, or retention): readers may no longer fetch below
    /// it. It only moves forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnBegin {
    pub producer_id: i64,
    /// The offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Its transactional id and when it began here (the writer's clock, ms): so that any
    /// owner can wake the coordinator of a transaction left open (see `Broker::nudge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnEnd {
    pub producer_id: i64,
    pub commit: bool,
    /// The offset of the marker.
    pub offset: i64,
    /// The epoch of the transaction coordinator that sent it (its chain's claim epoch).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub coordinator_epoch: i32,
}

/// A producer's transaction coordinator epoch, raised by a marker that had nothing to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnFence {
    pub producer_id: i64,
    pub coordinator_epoch: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// How many recent batches per producer are remembered for deduplication
/// (Kafka clients keep at most five requests in flight).
pub const PRODUCER_BATCHES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last few batches, oldest first.
    pub batches: Vec<SeqBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

impl CommitHeader {
    pub fn end_offset(&self) -> i64 {
        self.base_offset + self.records
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommitFormatError {
    #[error("commit object too short")]
    Short,
    #[error("not a commit object")]
    Magic,
    #[error("unknown commit version {0}")]
    Version(u8),
    #[error("bad commit header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("commit data length {expected} but object holds {actual}")]
    DataLen { expected: u64, actual: u64 },
}

pub fn encode(header: &CommitHeader, data: &[u8]) -> Bytes {
    let json = serde_json::to_vec(header).expect("commit header serializes");
    let mut out = BytesMut::with_capacity(PREFIX_LEN + json.len() + data.len());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(json.len() as u32);
    out.put_slice(&json);
    out.put_slice(data);
    out.freeze()
}

/// How many bytes of the object hold the header (prefix included), read from
/// the first `PREFIX_LEN` bytes.
pub fn header_span(prefix: &[u8]) -> Result<usize, CommitFormatError> {
    if prefix.len() < PREFIX_LEN {
        return Err(CommitFormatError::Short);
    }
    if &prefix[..4] != MAGIC {
        return Err(CommitFormatError::Magic);
    }
    if prefix[4] != VERSION {
        return Err(CommitFormatError::Version(prefix[4]));
    }
    let len = (&prefix[5..9]).get_u32() as usize;
    Ok(PREFIX_LEN + len)
}

/// Decodes the header from the first bytes of an object (at least `header_span`).
pub fn decode_header(bytes: &[u8]) -> Result<CommitHeader, CommitFormatError> {
    let span = header_span(bytes)?;
    if bytes.len() < span {
        return Err(CommitFormatError::Short);
    }
    Ok(serde_json::from_slice(&bytes[PREFIX_LEN..span])?)
}

/// Decodes a whole object into its header and batch bytes.
pub fn decode(bytes: &Bytes) -> Result<(CommitHeader, Bytes), CommitFormatError> {
    let header = decode_header(bytes)?;
    let data = bytes.slice(header_span(bytes)?..);
    if data.len() as u64 != header.data_len {
        return Err(CommitFormatError::DataLen {
            expected: header.data_len,
            actual: data.len() as u64,
        });
    }
    Ok((header, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = CommitHeader {
            seq: 3,
            base_offset: 10,
            records: 2,
            epoch: 1,
            node_id: 9092,
            write_id: 77,
            max_timestamp: 5,
            data_len: 3,
            producers: vec![],
            txn_begins: vec![],
            txn_ends: vec![],
            txn_fences: vec![],
            log_start: None,
        };
        let obj = encode(&h, b"abc");
        let (h2, data) = decode(&obj).unwrap();
        assert_eq!(h, h2);
        assert_eq!(&data[..], b"abc");
        assert!(decode(&obj.slice(..obj.len() - 1)).is_err());
        assert!(decode(&Bytes::from_static(b"nope")).is_err());
    }
}
