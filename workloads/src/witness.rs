//! A client is a witness, not a judge: a reply it finds contrary to the protocol becomes a
//! `violation` fact in its process's history (see `riptide_checker::history::ViolationValue`),
//! and the `protocol-violation` checker judges it. The client itself goes on as a real client
//! would: it accepts what librdkafka and the Java client accept and rejects what they reject.
//!
//! One mechanism, in simulation and in certification alike: the workload roster attaches its
//! [`Recorder`] and the process to the client's [`Witness`] ([`Client::witness`]), and a workload
//! says which operation its requests are for ([`Witness::set_op`]); every check, in the client,
//! the producer or a connection (correlation ids, undecodable replies), reports through it.
//!
//! What each kind is, where it is caught, and what the client then does (following the Java
//! client, whose behaviour librdkafka shares here):
//!
//! | kind | caught in | then |
//! |---|---|---|
//! | no-base-offset | `Client::try_produce`, `producer::on_response` | accepted: `ok` at offset -1 (Java: RecordMetadata offset -1, `hasOffset()` false) |
//! | missing-partition | produce, fetch, list offsets answers | produce: fails `info` (Java never completes the batch; it expires); fetch, list offsets: the attempt fails (the consumer asks again) |
//! | unrequested-partition | the same | ignored (no request waits for it) |
//! | unexpected-error-code | Produce, Fetch, ListOffsets codes (`riptide_wire::codes`) | handled as the code it is (Java: `Errors.forCode`, its exception class decides) |
//! | correlation-mismatch | `connection` (every API) | indeterminate error, connection dropped (Java: IllegalStateException, disconnect) |
//! | records-out-of-range | a fetched partition ([`judge_fetch`]) | accepted: records below the fetch offset dropped, the rest handed out (Java hands out what the broker sent at or after its position) |
//! | corrupt-batch | `codec::decode_fetched` (length, CRC-32C) | rejected: the partition's fetch fails, nothing handed out (Java: CorruptRecordException) |
//! | hwm-below-lso, hwm-below-log-start | a fetched partition | accepted (Java only uses them for lag) |
//! | malformed | an undecodable header, body or frame | indeterminate error, connection dropped, the API capped a version lower |
//!
//! The rules for a fetched partition ([`judge_fetch`]), the partitions of a response
//! ([`judge_partitions`]) and error codes (`riptide_wire::codes::may_return`) are pure, so they
//! are tested without a broker. What is not judged: ApiVersions replies (a bad one fails the
//! connection before any operation), responses of APIs other than Produce, Fetch and ListOffsets
//! beyond their correlation id and encoding.
//!
//! [`Client::witness`]: crate::Client::witness

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::ApiKey;
use riptide_checker::history::{TopicPartition, ViolationKind, ViolationValue};

use crate::recorder::Recorder;

/// Where a client's violation facts go (the history, as `ok` ops of its process) and which
/// operation its requests are for. A handle: the client and every connection it opens share it
/// (it lives in [`ConnectionOptions`], whose clones share it, like the version caps), so a reply
/// judged deep in a connection and one judged by the client land in the same place. Without a
/// sink attached facts are only logged.
///
/// [`ConnectionOptions`]: crate::ConnectionOptions
#[derive(Clone, Default)]
pub struct Witness {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Witness {
    /// The process and the current op, not the recorder's whole history.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Witness")
            .field("process", &inner.sink.as_ref().map(|(_, p)| *p))
            .field("op", &inner.op)
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    sink: Option<(Recorder, u64)>,
    op: Option<u64>,
}

impl Witness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on facts go to `rec` as ops of `process`.
    pub fn attach(&self, rec: &Recorder, process: u64) {
        self.lock().sink = Some((rec.clone(), process));
    }

    /// The operation the next requests are for (its invoke index), until changed.
    pub fn set_op(&self, op: Option<u64>) {
        self.lock().op = op;
    }

    /// Records one fact (naming the current operation unless it names one); returns its op
    /// index, or `None` without a sink.
    pub fn record(&self, mut fact: Fact<'_>) -> Option<u64> {
        let inner = self.lock();
        fact.op = fact.op.or(inner.op);
        tracing::warn!(kind = %fact.kind, broker = fact.broker, api = ?fact.api, version = fact.version,
            partition = ?fact.partition, op = ?fact.op, detail = %fact.detail, "reply contrary to the protocol");
        let (rec, process) = inner.sink.as_ref()?;
        Some(rec.ok(*process, fact.value()))
    }
}

/// One reply judged contrary to the protocol, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact<'a> {
    pub kind: ViolationKind,
    /// The broker's address (host:port).
    pub broker: &'a str,
    pub api: ApiKey,
    pub version: i16,
    pub partition: Option<(&'a str, i32)>,
    /// The invoke of the operation the reply belonged to, when there is one.
    pub op: Option<u64>,
    pub detail: String,
}

impl Fact<'_> {
    pub fn value(&self) -> ViolationValue {
        ViolationValue {
            kind: self.kind,
            broker: self.broker.to_string(),
            api: format!("{:?}", self.api),
            version: self.version,
            partition: self.partition.map(|(t, p)| TopicPartition::new(t, p)),
            op: self.op,
            detail: self.detail.clone(),
        }
    }
}

/// What a fetch response said about one partition (no error code), and what was asked.
#[derive(Clone, Debug)]
pub struct FetchedPartition<'a> {
    /// The fetch offset asked for.
    pub offset: i64,
    /// 1 = read_committed.
    pub isolation: i8,
    pub high_watermark: i64,
    /// -1 when the version has no such field or the broker does not say.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (base, last offset) of each whole batch returned, in order.
    pub batches: &'a [(i64, i64)],
}

/// What is wrong with one fetched partition, each with its detail. The rules:
///
/// - **records-out-of-range**: a batch wholly below the fetch offset (Kafka returns whole
///   batches, starting with the one that *holds* the fetch offset, so only the first batch may
///   start before it, and it must reach it); a batch that does not start after the one before it
///   (a log is in offset order); a record at or above the high watermark, or, read_committed, at
///   or above the last stable offset (a broker serves no further; in Kafka both are batch
///   boundaries, so a whole batch fits below them). Only with a known (>= 0) bound.
/// - **hwm-below-lso**: a last stable offset above the high watermark.
/// - **hwm-below-log-start**: a log start offset above the high watermark.
pub fn judge_fetch(p: &FetchedPartition<'_>) -> Vec<(ViolationKind, String)> {
    let mut out = Vec::new();
    let hwm = p.high_watermark;
    if hwm >= 0 && p.last_stable_offset > hwm {
        out.push((
            ViolationKind::HwmBelowLso,
            format!(
                "high watermark {hwm} below the last stable offset {}",
                p.last_stable_offset
            ),
        ));
    }
    if hwm >= 0 && p.log_start_offset > hwm {
        out.push((
            ViolationKind::HwmBelowLogStart,
            format!(
                "high watermark {hwm} below the log start offset {}",
                p.log_start_offset
            ),
        ));
    }
    if let Some(&(base, last)) = p.batches.iter().find(|&&(_, last)| last < p.offset) {
        out.push((
            ViolationKind::RecordsOutOfRange,
            format!(
                "fetch from offset {} returned a batch of offsets {base}..={last}, wholly below it",
                p.offset
            ),
        ));
    }
    if let Some(w) = p.batches.windows(2).find(|w| w[1].0 <= w[0].1) {
        out.push((
            ViolationKind::RecordsOutOfRange,
            format!(
                "fetch from offset {} returned a batch at {}..={} after one at {}..={}",
                p.offset, w[1].0, w[1].1, w[0].0, w[0].1
            ),
        ));
    }
    let (bound, name) = if p.isolation == 1 && p.last_stable_offset >= 0 {
        (p.last_stable_offset, "last stable offset")
    } else {
        (hwm, "high watermark")
    };
    if bound >= 0 {
        if let Some(&(base, last)) = p.batches.iter().find(|&&(_, last)| last >= bound) {
            out.push((
                ViolationKind::RecordsOutOfRange,
                format!(
                    "fetch from offset {} returned a batch of offsets {base}..={last}, at or above the {name} {bound}",
                    p.offset
                ),
            ));
        }
    }
    out
}

/// Partitions a response lacks (asked, not answered) and names without being asked, each with
/// its detail.
pub fn judge_partitions<'a>(
    asked: impl IntoIterator<Item = (&'a str, i32)>,
    answered: impl IntoIterator<Item = (&'a str, i32)>,
) -> Vec<(ViolationKind, (&'a str, i32), String)> {
    let asked: BTreeSet<(&str, i32)> = asked.into_iter().collect();
    let answered: BTreeSet<(&str, i32)> = answered.into_iter().collect();
    let missing = asked.difference(&answered).map(|&tp| {
        (
            ViolationKind::MissingPartition,
            tp,
            format!(
                "the response lacks {}/{}, which the request asked for",
                tp.0, tp.1
            ),
        )
    });
    let extra = answered.difference(&asked).map(|&tp| {
        (
            ViolationKind::UnrequestedPartition,
            tp,
            format!(
                "the response names {}/{}, which the request did not ask for",
                tp.0, tp.1
            ),
        )
    });
    missing.chain(extra).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(offset: i64, hwm: i64, batches: &[(i64, i64)]) -> FetchedPartition<'_> {
        FetchedPartition {
            offset,
            isolation: 0,
            high_watermark: hwm,
            last_stable_offset: hwm,
            log_start_offset: 0,
            batches,
        }
    }

    fn kinds(p: &FetchedPartition<'_>) -> Vec<ViolationKind> {
        judge_fetch(p).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_fetch_from_inside_a_batch_may_start_at_its_base() {
        assert!(kinds(&fetched(5, 10, &[(3, 6), (7, 9)])).is_empty());
        assert!(kinds(&fetched(10, 10, &[])).is_empty());
    }

    #[test]
    fn a_batch_wholly_below_the_fetch_offset_is_out_of_range() {
        let k = kinds(&fetched(5, 10, &[(0, 2), (3, 6)]));
        assert_eq!(k, vec![ViolationKind::RecordsOutOfRange]);
    }

    #[test]
    fn records_at_or_above_the_high_watermark_are_out_of_range() {
        let k = kinds(&fetched(0, 5, &[(0, 4), (5, 5)]));
        assert_eq!(k, vec![ViolationKind::RecordsOutOfRange]);
        // read_committed: the last stable offset bounds it.
        let mut p = fetched(0, 10, &[(0, 4), (5, 6)]);
        (p.isolation, p.last_stable_offset) = (1, 5);
        assert_eq!(kinds(&p), vec![ViolationKind::RecordsOutOfRange]);
        // An unknown high watermark bounds nothing.
        assert!(kinds(&fetched(0, -1, &[(0, 4)])).is_empty());
    }

    #[test]
    fn batches_out_of_order_are_out_of_range() {
        let k = kinds(&fetched(0, 10, &[(4, 6), (2, 3)]));
        assert_eq!(k, vec![ViolationKind::RecordsOutOfRange]);
    }

    #[test]
    fn a_high_watermark_below_the_lso_or_log_start_is_a_violation() {
        let mut p = fetched(0, 5, &[]);
        p.last_stable_offset = 6;
        assert_eq!(kinds(&p), vec![ViolationKind::HwmBelowLso]);
        let mut p = fetched(0, 5, &[]);
        p.log_start_offset = 7;
        assert_eq!(kinds(&p), vec![ViolationKind::HwmBelowLogStart]);
    }

    #[test]
    fn missing_and_unrequested_partitions_are_named() {
        let v = judge_partitions([("t", 0), ("t", 1)], [("t", 1), ("u", 0)]);
        let got: Vec<_> = v.iter().map(|(k, tp, _)| (*k, *tp)).collect();
        assert_eq!(
            got,
            vec![
                (ViolationKind::MissingPartition, ("t", 0)),
                (ViolationKind::UnrequestedPartition, ("u", 0)),
            ]
        );
        assert!(judge_partitions([("t", 0)], [("t", 0)]).is_empty());
    }
}
