//! Record batches (magic v2) as the broker needs them: validated, counted and
//! re-based, never decompressed on the produce path (no decompression bombs,
//! no CPU spent on data the broker only stores).

use bytes::{Bytes, BytesMut};

pub const HEADER_LEN: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated")]
    Truncated,
    #[error("unsupported message format (magic {0}); only v2 record batches are accepted")]
    Magic(i8),
    #[error("record batch CRC mismatch")]
    Crc,
    #[error("unknown compression codec {0}")]
    Compression(i16),
    #[error("record batch is invalid: {0}")]
    Invalid(&'static str),
}

/// The header fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes of the whole batch including the offset and length fields.
    pub size: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: i32,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Reads the header of the batch at the start of `b` without validating its body.
pub fn peek(b: &[u8]) -> Result<BatchHeader, BatchError> {
    if b.len() < HEADER_LEN {
        return Err(BatchError::Truncated);
    }
    let length = be_i32(b, 8);
    if length < (HEADER_LEN - 12) as i32 {
        return Err(BatchError::Invalid("batch length too small"));
    }
    let size = 12 + length as usize;
    if b.len() < size {
        return Err(BatchError::Truncated);
    }
    let magic = b[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    Ok(BatchHeader {
        base_offset: be_i64(b, 0),
        size,
        attributes: be_i16(b, ATTRIBUTES_AT),
        last_offset_delta: be_i32(b, 23),
        first_timestamp: be_i64(b, 27),
        max_timestamp: be_i64(b, 35),
        producer_id: be_i64(b, 43),
        producer_epoch: be_i16(b, 51),
        base_sequence: be_i32(b, 53),
        records: be_i32(b, 57),
    })
}

/// Splits a produce payload into validated batches. Every batch must be a
/// complete v2 batch with a correct CRC, a known codec and consistent counts.
pub fn validate(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let h = peek(&records[at..])?;
        let raw = records.slice(at..at + h.size);
        let crc = be_i32(&raw, CRC_AT) as u32;
        if crc32c::crc32c(&raw[ATTRIBUTES_AT..]) != crc {
            return Err(BatchError::Crc);
        }
        let codec = h.attributes & 0x07;
        if codec > 4 {
            return Err(BatchError::Compression(codec));
        }
        if h.records < 1 || h.last_offset_delta != h.records - 1 {
            return Err(BatchError::Invalid(
                "record count does not match the offset delta",
            ));
        }
        out.push((h, raw));
        at += h.size;
    }
    if out.is_empty() {
        return Err(BatchError::Invalid("no record batch"));
    }
    Ok(out)
}

/// Copies `raw` with its base offset set. The base offset is outside the CRC,
/// so the batch stays valid.
pub fn rebase(raw: &[u8], base_offset: i64, out: &mut BytesMut) {
    out.extend_from_slice(&base_offset.to_be_bytes());
    out.extend_from_slice(&raw[8..]);
}

/// A transaction marker: one control batch of the producer's id and `epoch` holding one
/// control record (key: version 0 and type 1 commit / 0 abort; value: version 0 and the
/// coordinator epoch), at offset 0 until [`rebase`]d.
pub fn control(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> (BatchHeader, Bytes) {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, std::iter::once(&record), &opts)
        .expect("a control record encodes");
    let raw = buf.freeze();
    let header = peek(&raw).expect("a control batch has a header");
    (header, raw)
}

/// Whether a control batch marks a commit (else an abort), from its record's key.
pub fn control_commits(raw: &Bytes) -> Option<bool> {
    let mut b = raw.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).ok()?;
    let key = set.records.first()?.key.clone()?;
    (key.len() >= 4).then(|| i16::from_be_bytes([key[2], key[3]]) == 1)
}

/// Iterates over the headers of the (already validated) batches in `b`.
pub fn headers(b: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= b.len() {
            return None;
        }
        let h = peek(&b[at..]).ok()?;
        let start = at;
        at += h.size;
        Some((start, h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    pub fn encode(values: &[&str], compression: Compression) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(Bytes::from(v.to_string())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).unwrap();
        buf.freeze()
    }

    #[test]
    fn validates_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode(&["a", "b", "c"], c);
            let batches = validate(&b).unwrap();
            let records: i32 = batches.iter().map(|(h, _)| h.records).sum();
            assert_eq!(records, 3, "{c:?}");
            let max_ts = batches.iter().map(|(h, _)| h.max_timestamp).max();
            assert_eq!(max_ts, Some(1002), "{c:?}");
        }
    }

    #[test]
    fn rejects_corruption_and_truncation() {
        let b = encode(&["a", "b"], Compression::None);
        assert_eq!(
            validate(&b.slice(..b.len() - 1)),
            Err(BatchError::Truncated)
        );
        let mut bad = b.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(validate(&Bytes::from(bad)), Err(BatchError::Crc));
        let mut magic = b.to_vec();
        magic[MAGIC_AT] = 1;
        assert_eq!(validate(&Bytes::from(magic)), Err(BatchError::Magic(1)));
        assert!(validate(&Bytes::new()).is_err());
    }

    #[test]
    fn a_control_batch_is_a_valid_transactional_control_batch_of_one_record() {
        for commit in [true, false] {
            let (h, raw) = control(7, 3, commit, 0, 1000);
            let (vh, _) = validate(&raw).unwrap().remove(0);
            assert_eq!(vh, h);
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.records), (7, 3, 1));
            assert_eq!(control_commits(&raw), Some(commit));
        }
    }

    #[test]
    fn rebase_keeps_crc_valid() {
        let b = encode(&["x"], Compression::None);
        let mut out = BytesMut::new();
        rebase(&b, 42, &mut out);
        let v = validate(&out.freeze()).unwrap();
        assert_eq!(v[0].0.base_offset, 42);
    }
}
