//! The checkers. Each submodule has a pure `check(&History) -> Vec<Finding>`; `run_all` builds
//! one shared index and runs them all ([`crate::check_all`] turns that into a report).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{
    ClientValue, HiddenSpan, History, OffsetValue, Op, OpKind, Pair, PartitionOffset, PollValue,
    TopicValue, TxnEnd, TxnValue, Value, ViolationValue, F,
};

pub mod aborted_read;
pub mod broken_invariant;
pub mod cycles;
pub mod duplicate;
pub mod exactly_once;
pub mod groups;
pub mod hwm_regression;
pub mod inconsistent_offsets;
pub mod int_nonmonotonic_poll;
pub mod int_nonmonotonic_send;
pub mod int_poll_skip;
pub mod int_send_skip;
pub mod liveness;
pub mod lost_write;
pub mod lso_regression;
pub mod nonmonotonic_poll;
pub mod nonmonotonic_send;
pub mod offset_gap;
pub mod poll_skip;
pub mod precommitted_read;
pub mod protocol_violation;
pub mod realtime_lag;
pub mod replay_mismatch;
pub mod retention;
pub mod torn_transaction;
pub mod txn_lost_write;
pub mod unseen;

mod poll_walk;

/// At most this many offsets are listed in one finding; its explanation gives the total.
pub const MAX_LISTED: usize = 32;

/// The kinds of anomaly the checkers report. Declaration order is report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anomaly {
    BrokenInvariant,
    LostWrite,
    Duplicate,
    InconsistentOffsets,
    OffsetGap,
    PollSkip,
    IntPollSkip,
    NonmonotonicPoll,
    IntNonmonotonicPoll,
    NonmonotonicSend,
    IntNonmonotonicSend,
    IntSendSkip,
    ReplayMismatch,
    HwmRegression,
    Unseen,
    CommittedOffsetRegression,
    RebalanceSkip,
    ProtocolViolation,
    LivenessAfterHeal,
    RealtimeLag,
    AbortedRead,
    PrecommittedRead,
    TornTransaction,
    TxnLostWrite,
    ExactlyOnce,
    LsoRegression,
    G0,
    G0Process,
    G0Realtime,
    G1c,
    G1cProcess,
    G1cRealtime,
    /// An acknowledged record removed below the log start before any DeleteRecords asked for
    /// it or its retention.ms expired.
    PrematureRemoval,
    /// A partition's log start observed lower than an earlier observation of it.
    LogStartRegression,
    /// A poll returned a record below a log start observed before the poll began.
    ReadBelowLogStart,
    /// The final read returned a record well past its retention deadline.
    RetentionOverdue,
    /// A window of unavailability or a latency above a bound given with `--slo` (see
    /// [`crate::figures::Slo`]).
    SloExceeded,
}

impl Anomaly {
    pub const ALL: [Anomaly; 37] = [
        Anomaly::BrokenInvariant,
        Anomaly::LostWrite,
        Anomaly::Duplicate,
        Anomaly::InconsistentOffsets,
        Anomaly::OffsetGap,
        Anomaly::PollSkip,
        Anomaly::IntPollSkip,
        Anomaly::NonmonotonicPoll,
        Anomaly::IntNonmonotonicPoll,
        Anomaly::NonmonotonicSend,
        Anomaly::IntNonmonotonicSend,
        Anomaly::IntSendSkip,
        Anomaly::ReplayMismatch,
        Anomaly::HwmRegression,
        Anomaly::Unseen,
        Anomaly::CommittedOffsetRegression,
        Anomaly::RebalanceSkip,
        Anomaly::ProtocolViolation,
        Anomaly::LivenessAfterHeal,
        Anomaly::RealtimeLag,
        Anomaly::AbortedRead,
        Anomaly::PrecommittedRead,
        Anomaly::TornTransaction,
        Anomaly::TxnLostWrite,
        Anomaly::ExactlyOnce,
        Anomaly::LsoRegression,
        Anomaly::G0,
        Anomaly::G0Process,
        Anomaly::G0Realtime,
        Anomaly::G1c,
        Anomaly::G1cProcess,
        Anomaly::G1cRealtime,
        Anomaly::PrematureRemoval,
        Anomaly::LogStartRegression,
        Anomaly::ReadBelowLogStart,
        Anomaly::RetentionOverdue,
        Anomaly::SloExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::BrokenInvariant => "broken-invariant",
            Anomaly::LostWrite => "lost-write",
            Anomaly::Duplicate => "duplicate",
            Anomaly::InconsistentOffsets => "inconsistent-offsets",
            Anomaly::OffsetGap => "offset-gap",
            Anomaly::PollSkip => "poll-skip",
            Anomaly::IntPollSkip => "int-poll-skip",
            Anomaly::NonmonotonicPoll => "nonmonotonic-poll",
            Anomaly::IntNonmonotonicPoll => "int-nonmonotonic-poll",
            Anomaly::NonmonotonicSend => "nonmonotonic-send",
            Anomaly::IntNonmonotonicSend => "int-nonmonotonic-send",
            Anomaly::IntSendSkip => "int-send-skip",
            Anomaly::ReplayMismatch => "replay-mismatch",
            Anomaly::HwmRegression => "hwm-regression",
            Anomaly::Unseen => "unseen",
            Anomaly::CommittedOffsetRegression => "committed-offset-regression",
            Anomaly::RebalanceSkip => "rebalance-skip",
            Anomaly::ProtocolViolation => "protocol-violation",
            Anomaly::LivenessAfterHeal => "liveness-after-heal",
            Anomaly::RealtimeLag => "realtime-lag",
            Anomaly::AbortedRead => "aborted-read",
            Anomaly::PrecommittedRead => "precommitted-read",
            Anomaly::TornTransaction => "torn-transaction",
            Anomaly::TxnLostWrite => "txn-lost-write",
            Anomaly::ExactlyOnce => "exactly-once",
            Anomaly::LsoRegression => "lso-regression",
            Anomaly::G0 => "g0",
            Anomaly::G0Process => "g0-process",
            Anomaly::G0Realtime => "g0-realtime",
            Anomaly::G1c => "g1c",
            Anomaly::G1cProcess => "g1c-process",
            Anomaly::G1cRealtime => "g1c-realtime",
            Anomaly::PrematureRemoval => "premature-removal",
            Anomaly::LogStartRegression => "log-start-regression",
            Anomaly::ReadBelowLogStart => "read-below-log-start",
            Anomaly::RetentionOverdue => "retention-overdue",
            Anomaly::SloExceeded => "slo-exceeded",
        }
    }

    /// Only histories with transactions (`txn` ops) can have it; reports list these kinds only
    /// for such histories (or when found).
    pub fn transactional(self) -> bool {
        (Anomaly::AbortedRead..=Anomaly::G1cRealtime).contains(&self)
    }

    /// Only histories where records are removed on purpose (`topic` facts, `delete_records`
    /// ops, final reads from a log start) can have it; reports list these kinds only for such
    /// histories (or when found).
    pub fn retention(self) -> bool {
        (Anomaly::PrematureRemoval..=Anomaly::RetentionOverdue).contains(&self)
    }

    /// Only runs given bounds (`--slo`) can have it; reports list it only when found.
    pub fn slo(self) -> bool {
        self == Anomaly::SloExceeded
    }
}

/// How bad a kind of anomaly is, for triage: the verdict names the worst class found. Ordered
/// from least to most severe, so the worst of several is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The cluster was late or stalled, but nothing it said was wrong: a high watermark behind
    /// an acknowledgement, a record never read back in time, no progress after the heal.
    Freshness,
    /// Kafka's promises to a client broken without losing data: a duplicate unknown outcomes
    /// cannot explain, an offset hole, out-of-order polls or sends, offsets skipped by a
    /// consumer, a committed offset that went back.
    Contract,
    /// An acknowledged record lost, or the log's contents not what they were: lost write,
    /// two values at one offset, one value at two offsets, records a group never delivered;
    /// or the system broke an invariant it asserts itself (its durable state is not what it
    /// promises).
    DataLoss,
}

impl Severity {
    /// Worst first, as reports list them.
    pub const WORST_FIRST: [Severity; 3] =
        [Severity::DataLoss, Severity::Contract, Severity::Freshness];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::DataLoss => "data-loss",
            Severity::Contract => "contract",
            Severity::Freshness => "freshness",
        }
    }

    /// The class's name in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            Severity::DataLoss => "data loss or corruption",
            Severity::Contract => "contract violation",
            Severity::Freshness => "freshness or liveness",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Anomaly {
    /// The anomaly's class (the README's severity table lists them all).
    pub fn severity(self) -> Severity {
        match self {
            Anomaly::BrokenInvariant
            | Anomaly::LostWrite
            | Anomaly::InconsistentOffsets
            | Anomaly::ReplayMismatch
            | Anomaly::RebalanceSkip
            // A read_committed reader shown records that were never committed, a committed
            // transaction seen in part or not at all, an input processed twice or never: the
            // committed log is not what the transactions made it (Jepsen treats G1a as
            // serious too).
            | Anomaly::AbortedRead
            | Anomaly::TornTransaction
            | Anomaly::TxnLostWrite
            | Anomaly::ExactlyOnce
            // Records gone before their time, or read after they were gone.
            | Anomaly::PrematureRemoval
            | Anomaly::ReadBelowLogStart => Severity::DataLoss,
            Anomaly::Duplicate
            | Anomaly::OffsetGap
            | Anomaly::PollSkip
            | Anomaly::IntPollSkip
            | Anomaly::NonmonotonicPoll
            | Anomaly::IntNonmonotonicPoll
            | Anomaly::NonmonotonicSend
            | Anomaly::IntNonmonotonicSend
            | Anomaly::IntSendSkip
            | Anomaly::CommittedOffsetRegression
            | Anomaly::ProtocolViolation
            // Isolation broken without losing data: a read before the commit, a cycle of
            // dependencies no order of the transactions explains.
            | Anomaly::PrecommittedRead
            | Anomaly::G0
            | Anomaly::G0Process
            | Anomaly::G0Realtime
            | Anomaly::G1c
            | Anomaly::G1cProcess
            | Anomaly::G1cRealtime
            | Anomaly::LogStartRegression => Severity::Contract,
            Anomaly::HwmRegression
            | Anomaly::Unseen
            | Anomaly::LivenessAfterHeal
            | Anomaly::RealtimeLag
            | Anomaly::LsoRegression
            // Kept too long: nothing lost, but retention did not keep its promise.
            | Anomaly::RetentionOverdue
            // Slower to recover than promised: nothing lost or wrong.
            | Anomaly::SloExceeded => Severity::Freshness,
        }
    }

    /// The kind named `s` (as [`Anomaly::as_str`] writes it).
    pub fn from_name(s: &str) -> Option<Anomaly> {
        Anomaly::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly found in a history. Field order is sort order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub anomaly: Anomaly,
    pub topic: String,
    pub partition: i32,
    /// The offsets involved (at most [`MAX_LISTED`]).
    pub offsets: Vec<i64>,
    /// Indices of the ops that carry the evidence (usually completions), ascending.
    pub ops: Vec<u64>,
    /// One sentence.
    pub explanation: String,
}

impl Finding {
    /// Where it was found, for people: `topic/partition`, or "no partition" for a finding about
    /// the run as a whole (a broken invariant's place, a stalled producer with no send).
    pub fn place(&self) -> String {
        if self.topic.is_empty() || self.partition < 0 {
            "no partition".to_string()
        } else {
            format!("{}/{}", self.topic, self.partition)
        }
    }

    pub(crate) fn new(
        anomaly: Anomaly,
        tp: Tp<'_>,
        mut offsets: Vec<i64>,
        mut ops: Vec<u64>,
        explanation: String,
    ) -> Finding {
        offsets.truncate(MAX_LISTED);
        ops.sort_unstable();
        ops.dedup();
        Finding {
            anomaly,
            topic: tp.0.to_owned(),
            partition: tp.1,
            offsets,
            ops,
            explanation,
        }
    }
}

/// Knobs for [`crate::check_all`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckerConfig {
    /// Tolerate a duplicate when some send of that value had a `fail`/`info` outcome (or none):
    /// a client retry without idempotence may legitimately write twice.
    pub allow_duplicates_from_retries: bool,
    /// How long after the last fault event a producer may go without an
    /// acknowledgement before that counts against liveness.
    pub liveness_grace_ns: u64,
    /// When set, a partition whose worst realtime lag (see [`realtime_lag`]) is above this many
    /// nanoseconds is a `realtime-lag` finding. Unset (the default), the lag is only a figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_realtime_lag_ns: Option<u64>,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        CheckerConfig {
            allow_duplicates_from_retries: true,
            liveness_grace_ns: 3_000_000_000,
            max_realtime_lag_ns: None,
        }
    }
}

/// Runs every checker over one shared index; their findings, in checker order
/// ([`crate::check_all`] sorts them into a report).
#[cfg(test)]
pub(crate) fn run_all(history: &History, config: &CheckerConfig) -> Vec<Finding> {
    run_all_with_figures(history, config).0
}

/// Runs every checker over one shared index: their findings in checker order, and the report's
/// figures from the same index (the worst realtime lag per partition, the nemesis ops).
pub(crate) fn run_all_with_figures(
    history: &History,
    config: &CheckerConfig,
) -> (
    Vec<Finding>,
    Vec<realtime_lag::PartitionLag>,
    Vec<crate::report::FaultEvent>,
) {
    let ix = Index::new(history);
    let mut findings = Vec::new();
    findings.extend(broken_invariant::run(&ix));
    findings.extend(lost_write::run(&ix));
    findings.extend(duplicate::run(&ix, config));
    findings.extend(inconsistent_offsets::run(&ix));
    findings.extend(offset_gap::run(&ix));
    let walk = poll_walk::run(&ix);
    findings.extend(walk.skips);
    findings.extend(walk.int_skips);
    findings.extend(walk.backwards);
    findings.extend(walk.int_backwards);
    findings.extend(nonmonotonic_send::run(&ix));
    findings.extend(int_nonmonotonic_send::run(&ix));
    findings.extend(int_send_skip::run(&ix));
    findings.extend(replay_mismatch::run(&ix));
    findings.extend(hwm_regression::run(&ix));
    findings.extend(unseen::run(&ix));
    findings.extend(groups::run(&ix));
    findings.extend(protocol_violation::run(&ix));
    findings.extend(liveness::run(&ix, config.liveness_grace_ns));
    if let Some(bound) = config.max_realtime_lag_ns {
        findings.extend(realtime_lag::run(&ix, bound));
    }
    findings.extend(retention::run(&ix));
    if !ix.txns.is_empty() {
        findings.extend(aborted_read::run(&ix));
        findings.extend(precommitted_read::run(&ix));
        findings.extend(torn_transaction::run(&ix));
        findings.extend(txn_lost_write::run(&ix));
        findings.extend(exactly_once::run(&ix));
        findings.extend(cycles::run(&ix));
    }
    findings.extend(lso_regression::run(&ix));
    let faults = crate::report::fault_events(ix.pairs_of(&[F::Fault]));
    (findings, realtime_lag::worst(&ix), faults)
}

/// A borrowed topic/partition.
pub(crate) type Tp<'a> = (&'a str, i32);

/// Records of a writer transaction seen by readers, per (transaction, partition): offsets,
/// reader ops, the first value.
pub(crate) type SeenOfTxn<'a> = BTreeMap<(usize, Tp<'a>), (Vec<i64>, Vec<u64>, &'a str)>;

/// One send operation (invoke plus completion).
pub(crate) struct Send<'a> {
    /// The partition's number in the index (see [`Index::tp`] and [`Index::part_at`]).
    pub pid: u32,
    /// The value's number in the index (see [`Index::value`]): equal values, equal numbers.
    pub vid: u32,
    pub process: u64,
    /// The op carrying the evidence: the completion if any, else the invoke.
    pub op: u64,
    /// When it was invoked (a transaction's send: when the transaction was), and when it
    /// completed (if it did), ns since the run began.
    pub invoke_ns: u64,
    pub done_ns: Option<u64>,
    pub outcome: OpKind,
    /// The acknowledged offset (only for `ok`).
    pub offset: Option<i64>,
    /// The record batch it travelled in (the invoke's tag, else the completion's).
    pub batch: Option<u64>,
    /// How many times its batch was sent, from the completion.
    pub attempts: Option<u32>,
    /// The broker that answered, from the completion.
    pub broker: Option<&'a str>,
    /// The op it was one of several sends of: an imported Jepsen op, or a transaction (its
    /// invoke's index).
    pub jepsen_op: Option<u64>,
    /// The transaction it was sent in (index into `Index::txns`). Its outcome is the
    /// transaction's: `ok` if committed, `fail` if definitely not, else `info`.
    pub txn: Option<usize>,
    /// The input value it was derived from (consume-transform-produce).
    pub source: Option<&'a str>,
}

impl Send<'_> {
    /// Acknowledged with an offset.
    pub fn acked(&self) -> Option<i64> {
        match self.outcome {
            OpKind::Ok => self.offset,
            _ => None,
        }
    }

    /// Its batch was sent more than once.
    pub fn retried(&self) -> bool {
        self.attempts.is_some_and(|a| a > 1)
    }
}

/// No index: the end of a chain, or a value without sends or reads.
pub(crate) const NONE: u32 = u32::MAX;

/// One transaction (a `txn` op).
pub(crate) struct Txn<'a> {
    pub process: u64,
    pub id: &'a str,
    pub end: TxnEnd,
    pub outcome: OpKind,
    /// The invoke's index.
    pub invoke: u64,
    /// The op carrying the evidence: the completion if any, else the invoke; and the
    /// completion's time if there is one.
    pub op: u64,
    pub done_ns: Option<u64>,
    /// What the completion says (else the invoke).
    pub value: &'a TxnValue,
    /// The group and offsets it committed: the completion's, else the invoke's.
    pub group: Option<&'a str>,
    pub offsets: &'a [PartitionOffset],
    /// Its sends, in order: `Index::sends[sends]`.
    pub sends: std::ops::Range<usize>,
}

impl Txn<'_> {
    /// EndTxn with commit succeeded.
    pub fn committed(&self) -> bool {
        self.outcome == OpKind::Ok && self.end == TxnEnd::Commit
    }

    /// Definitely not committed: failed, or ended with a successful abort.
    pub fn aborted(&self) -> bool {
        self.outcome == OpKind::Fail || (self.outcome == OpKind::Ok && self.end == TxnEnd::Abort)
    }

    /// Short description for explanations: `txn op 7 ("tx-1", committed)`.
    pub fn describe(&self) -> String {
        let how = match (self.outcome, self.end) {
            (OpKind::Ok, TxnEnd::Commit) => "committed",
            (OpKind::Ok, TxnEnd::Abort) => "aborted",
            (OpKind::Fail, _) => "failed",
            _ => "outcome unknown",
        };
        format!("txn op {} ({}, {how})", self.op, q(self.id))
    }
}

/// One record observed by a poll or a final read.
pub(crate) struct Read {
    /// The partition's and the value's numbers (see [`Index::tp`] and [`Index::value`]).
    pub pid: u32,
    pub offset: i64,
    pub vid: u32,
    pub op: u64,
    pub final_read: bool,
    /// The reader's process, and the time of the op that returned it.
    pub process: u64,
    pub time_ns: u64,
}

/// A successful final read.
pub(crate) struct FinalRead<'a> {
    pub tp: Tp<'a>,
    pub hwm: i64,
    pub op: u64,
    pub records: &'a [OffsetValue],
    /// Offsets it said hold no data.
    pub hidden: &'a [HiddenSpan],
    /// Where it began: the partition's log start (absent in the history: 0).
    pub log_start: i64,
    /// When it was invoked and when it completed.
    pub invoke_ns: u64,
    pub done_ns: u64,
}

/// One `delete_records` op: records of a partition below `offset` to be removed on purpose.
pub(crate) struct DeleteRecords {
    pub offset: i64,
    pub outcome: OpKind,
    /// The op carrying the evidence (the completion if any).
    pub op: u64,
    pub invoke_ns: u64,
    pub done_ns: Option<u64>,
    /// The log start the broker answered (`ok` only).
    pub log_start: Option<i64>,
}

/// What is known about one partition.
#[derive(Default)]
pub(crate) struct Part {
    /// (offset, index into `Index::reads`), sorted: history order within an offset.
    pub reads: Vec<(i64, usize)>,
    /// (offset, index into `Index::sends`) of acknowledged sends, sorted likewise.
    pub acks: Vec<(i64, usize)>,
    /// Indices into `Index::final_reads`.
    pub final_reads: Vec<usize>,
    /// Highest hwm of any successful final read, with its op.
    pub max_final_hwm: Option<(i64, u64)>,
    /// Highest offset returned by any poll, with its op.
    pub max_poll_offset: Option<(i64, u64)>,
    /// Highest acknowledged offset, with its send's op.
    pub max_ack: Option<(i64, u64)>,
    /// Some send (of any outcome) targeted this partition.
    pub written: bool,
    /// Some send of a transaction targeted it: control batches occupy offsets.
    pub txn_written: bool,
    /// Offset ranges `[from, to)` some reader said hold no data (control batches, aborted
    /// records), merged and sorted once indexed.
    pub hidden: Vec<(i64, i64)>,
    /// Highest log start of any successful final read, with its op: offsets below it were
    /// removed on purpose (DeleteRecords, retention), not lost.
    pub final_log_start: Option<(i64, u64)>,
    /// Indices into `Index::deletes` of the partition's `delete_records` ops, in invoke order.
    pub deletes: Vec<usize>,
}

/// The entries of a sorted `(offset, index)` list whose offset is in `from..to`.
fn span(list: &[(i64, usize)], from: i64, to: i64) -> &[(i64, usize)] {
    let lo = list.partition_point(|e| e.0 < from);
    let hi = list.partition_point(|e| e.0 < to);
    &list[lo..hi.max(lo)]
}

impl Part {
    /// Offset `o` is below the final read's log start: removed on purpose, not missing.
    pub fn removed(&self, o: i64) -> bool {
        self.final_log_start.is_some_and(|(l, _)| o < l)
    }

    /// The final read's log start (0 without one).
    pub fn log_start(&self) -> i64 {
        self.final_log_start.map_or(0, |(l, _)| l)
    }

    /// Indices of the reads of offset `o`, in history order.
    pub fn reads_at(&self, o: i64) -> impl Iterator<Item = usize> + '_ {
        span(&self.reads, o, o.saturating_add(1))
            .iter()
            .map(|e| e.1)
    }

    /// Distinct offsets in `from..to` that some read returned.
    pub fn read_offsets_in(&self, from: i64, to: i64) -> Vec<i64> {
        let mut v: Vec<i64> = span(&self.reads, from, to).iter().map(|e| e.0).collect();
        v.dedup();
        v
    }

    /// Reads grouped by offset, ascending.
    pub fn read_groups(&self) -> impl Iterator<Item = &[(i64, usize)]> {
        self.reads.chunk_by(|a, b| a.0 == b.0)
    }

    /// Acknowledged sends grouped by offset, ascending.
    pub fn ack_groups(&self) -> impl Iterator<Item = &[(i64, usize)]> {
        self.acks.chunk_by(|a, b| a.0 == b.0)
    }

    /// Some reader said offset `o` holds no data (a control batch or an aborted record).
    pub fn hidden_at(&self, o: i64) -> bool {
        let i = self.hidden.partition_point(|h| h.0 <= o);
        i > 0 && self.hidden[i - 1].1 > o
    }

    /// The parts of `[from, to)` no reader said hold no data, as ranges.
    pub fn unhidden(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut at = from;
        let start = self.hidden.partition_point(|h| h.1 <= from);
        for &(hf, ht) in &self.hidden[start..] {
            if hf >= to {
                break;
            }
            if hf > at {
                out.push((at, hf));
            }
            at = at.max(ht);
        }
        if at < to {
            out.push((at, to));
        }
        out
    }

    fn merge_hidden(&mut self) {
        self.hidden.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.hidden.len());
        for &(f, t) in &self.hidden {
            match merged.last_mut() {
                Some(last) if f <= last.1 => last.1 = last.1.max(t),
                _ => merged.push((f, t)),
            }
        }
        self.hidden = merged;
    }
}

/// Lookups shared by the checkers, built in one pass over the history. Partitions and values are
/// numbered as they are met (a send's or a read's `pid` and `vid`), so that the checkers look
/// them up by number: strings are hashed once, while indexing.
pub(crate) struct Index<'a> {
    pub pairs: Vec<Pair<'a>>,
    /// By pair: its function, so that a checker skips the pairs it ignores without reading
    /// their ops (see [`Index::pairs_of`]).
    fs: Vec<F>,
    pub sends: Vec<Send<'a>>,
    pub reads: Vec<Read>,
    /// By pair: where its records begin in `reads` (one more entry at the end).
    read_start: Vec<u32>,
    pub final_reads: Vec<FinalRead<'a>>,
    /// Transactions, in invoke order.
    pub txns: Vec<Txn<'a>>,
    /// `delete_records` ops, in invoke order.
    pub deletes: Vec<DeleteRecords>,
    /// Each topic's `topic` fact (the first, if several).
    pub topics: BTreeMap<&'a str, &'a TopicValue>,
    /// Partition → its number. Lookups only: never iterated.
    part_ids: Numbers<'a, i32>,
    /// The partition numbered or looked up last, and its number.
    last_part: Option<(Tp<'a>, u32)>,
    /// By partition number: the partition and what is known of it.
    tps: Vec<Tp<'a>>,
    part_list: Vec<Part>,
    /// Partition numbers in partition order.
    order: Vec<u32>,
    /// Value → its number. Lookups only.
    vids: ValueIds<'a>,
    /// By value number: the value.
    values: Vec<&'a str>,
    /// By value number: read at two positions or more (it is in `multi_position`). One byte a
    /// value, taken from `vids` once everything is indexed.
    flagged: Vec<bool>,
    /// By value number: indices into `reads`, and into `sends`, in history order (filled once
    /// everything is indexed: one sequential pass instead of a chain through scattered records).
    reads_by_value: Groups,
    sends_by_value: Groups,
    /// Values read at more than one position, in order of discovery.
    pub multi_position: Vec<&'a str>,
    /// Each process's first `client` op: what kind of client it is.
    clients: BTreeMap<u64, &'a ClientValue>,
    /// Protocol violation facts (op, value), in history order.
    pub violations: Vec<(u64, &'a ViolationValue)>,
}

impl<'a> Index<'a> {
    pub fn new(history: &'a History) -> Index<'a> {
        let pairs = history.pairs();
        let mut ix = Index {
            pairs: Vec::new(),
            fs: pairs.iter().map(|p| p.invoke.f()).collect(),
            sends: Vec::new(),
            reads: Vec::new(),
            read_start: Vec::new(),
            final_reads: Vec::new(),
            txns: Vec::new(),
            deletes: Vec::new(),
            topics: BTreeMap::new(),
            part_ids: Numbers::default(),
            last_part: None,
            tps: Vec::new(),
            part_list: Vec::new(),
            order: Vec::new(),
            vids: ValueIds::default(),
            values: Vec::new(),
            flagged: Vec::new(),
            reads_by_value: Groups::default(),
            sends_by_value: Groups::default(),
            multi_position: Vec::new(),
            clients: BTreeMap::new(),
            violations: Vec::new(),
        };
        // Sized up front: growing these long vectors copies them, and rehashing the values
        // reads every one again.
        // (A transaction's sends: at most those of its invoke and its completion.)
        let sends: usize = pairs
            .iter()
            .zip(&ix.fs)
            .map(|(p, &f)| match (f, &p.invoke.value, &p.last().value) {
                (F::Send, _, _) => 1,
                (F::Txn, Value::Txn(i), Value::Txn(d)) => i.sends().count() + d.sends().count(),
                _ => 0,
            })
            .sum();
        let reads: usize = pairs
            .iter()
            .zip(&ix.fs)
            .filter(|&(_, &f)| f == F::Poll || f == F::FinalRead)
            .map(|(p, _)| match &p.last().value {
                Value::Poll(p) => p.records.len(),
                Value::FinalRead(fr) => fr.records.len(),
                _ => 0,
            })
            .sum();
        ix.sends.reserve(sends);
        ix.reads.reserve(reads);
        ix.vids.reserve(sends);
        ix.values.reserve(sends);
        ix.read_start.reserve(pairs.len() + 1);
        for pair in &pairs {
            ix.read_start.push(ix.reads.len() as u32);
            ix.add(pair);
        }
        ix.read_start.push(ix.reads.len() as u32);
        let n = ix.vids.len;
        ix.flagged = ix.vids.flagged();
        ix.reads_by_value = Groups::new(n, ix.reads.iter().map(|r| r.vid));
        ix.sends_by_value = Groups::new(n, ix.sends.iter().map(|s| s.vid));
        for part in &mut ix.part_list {
            part.reads.sort_unstable();
            part.acks.sort_unstable();
            part.merge_hidden();
        }
        ix.order = (0..ix.tps.len() as u32).collect();
        ix.order.sort_unstable_by_key(|&p| ix.tps[p as usize]);
        ix.pairs = pairs;
        ix
    }

    /// The pairs whose function is one of `fs`, in order; the others are passed over without
    /// reading their ops.
    pub fn pairs_of(&self, fs: &[F]) -> impl Iterator<Item = &Pair<'a>> + '_ {
        self.numbered_pairs_of(fs).map(|(_, p)| p)
    }

    /// Pair `i`'s function.
    pub fn f_at(&self, i: usize) -> F {
        self.fs[i]
    }

    /// The partition's number, if anything mentioned it.
    pub fn part_id(&self, tp: Tp<'_>) -> Option<u32> {
        self.part_ids.get(tp.0, tp.1)
    }

    /// [`Index::pairs_of`] with each pair's position (for [`Index::reads_of_pair`]).
    pub fn numbered_pairs_of(&self, fs: &[F]) -> impl Iterator<Item = (usize, &Pair<'a>)> + '_ {
        let mask = fs.iter().fold(0u32, |m, &f| m | 1 << f as u32);
        self.pairs
            .iter()
            .zip(&self.fs)
            .enumerate()
            .filter(move |&(_, (_, &f))| mask & 1 << f as u32 != 0)
            .map(|(i, (p, _))| (i, p))
    }

    /// The records pair `i` read, numbered, in their order: an `ok` poll's, a transaction's polls'
    /// (when it completed), a successful final read's; none for other pairs. Reading them here
    /// rather than in the op hashes no topic string again.
    pub fn reads_of_pair(&self, i: usize) -> &[Read] {
        &self.reads[self.read_start[i] as usize..self.read_start[i + 1] as usize]
    }

    /// The partition's number, numbering it if it is new.
    fn pid(&mut self, tp: Tp<'a>) -> u32 {
        // A poll's records and a producer's sends mostly name the partition named just before.
        if let Some((last, id)) = self.last_part {
            if last == tp {
                return id;
            }
        }
        let next = self.tps.len() as u32;
        let id = self.part_ids.get_or_insert(tp.0, tp.1, next);
        if id == next {
            debug_assert!(next < FLAGGED, "partition numbers stay below FLAGGED");
            self.tps.push(tp);
            self.part_list.push(Part::default());
        }
        self.last_part = Some((tp, id));
        id
    }

    /// The value's number, numbering it if it is new.
    fn vid(&mut self, value: &'a str) -> u32 {
        let id = self.vids.get_or_insert(value).id;
        if id as usize == self.values.len() {
            self.values.push(value);
        }
        id
    }

    /// Value number `vid`.
    pub fn value(&self, vid: u32) -> &'a str {
        self.values[vid as usize]
    }

    /// Partition number `pid`.
    pub fn tp(&self, pid: u32) -> Tp<'a> {
        self.tps[pid as usize]
    }

    fn part_mut(&mut self, tp: Tp<'a>) -> &mut Part {
        let id = self.pid(tp);
        &mut self.part_list[id as usize]
    }

    /// The partition's facts, if anything mentioned it.
    pub fn part(&self, tp: Tp<'_>) -> Option<&Part> {
        self.part_id(tp).map(|id| self.part_at(id))
    }

    /// The facts of partition number `pid`.
    pub fn part_at(&self, pid: u32) -> &Part {
        &self.part_list[pid as usize]
    }

    /// Every partition in order.
    pub fn parts(&self) -> impl Iterator<Item = (Tp<'a>, &Part)> + '_ {
        self.order
            .iter()
            .map(|&id| (self.tps[id as usize], &self.part_list[id as usize]))
    }

    /// The value's number, if some send or read has it.
    pub fn value_id(&self, value: &str) -> Option<u32> {
        self.vids.get(value)
    }

    /// How the process described itself, if it did (histories before `client` ops: never).
    pub fn client(&self, process: u64) -> Option<&'a ClientValue> {
        self.clients.get(&process).copied()
    }

    /// Its client op says it is an idempotent producer.
    pub fn idempotent(&self, process: u64) -> bool {
        self.client(process).is_some_and(|c| c.idempotent)
    }

    /// Its client op says it reads with `isolation.level=read_committed`.
    pub fn read_committed(&self, process: u64) -> bool {
        self.client(process).is_some_and(|c| c.read_committed)
    }

    /// Final reads count as read_committed: in a history with transactions, or when the
    /// reader's client op says so.
    pub fn final_reads_committed(&self, process: u64) -> bool {
        !self.txns.is_empty() || self.read_committed(process)
    }

    /// Every send of value number `vid` was in a transaction that did not (or may not have)
    /// committed: a read_committed reader may rightly pass over it.
    pub fn maybe_aborted_id(&self, vid: u32) -> bool {
        let mut sends = self.sends_of_id(vid).peekable();
        sends.peek().is_some() && sends.all(|s| s.txn.is_some_and(|t| !self.txns[t].committed()))
    }

    /// Offset `o` of `tp` may hold no data for a read_committed reader: a reader said so, or
    /// a read there returned a record of a transaction that did not commit.
    pub fn hidden_at(&self, tp: Tp<'_>, o: i64) -> bool {
        let Some(part) = self.part(tp) else {
            return false;
        };
        part.hidden_at(o)
            || (!self.txns.is_empty()
                && part
                    .reads_at(o)
                    .any(|i| self.maybe_aborted_id(self.reads[i].vid)))
    }

    /// A non-idempotent producer with more than one request in flight: Kafka lets a retried batch
    /// land after batches sent later.
    pub fn may_reorder_on_retry(&self, process: u64) -> bool {
        self.client(process)
            .is_some_and(|c| !c.idempotent && c.max_in_flight > 1)
    }

    fn add(&mut self, pair: &Pair<'a>) {
        let outcome = pair.outcome();
        let last = pair.last();
        match (&pair.invoke.value, outcome, &last.value) {
            (Value::Send(s), _, done) => {
                let (offset, batch, attempts, broker, jepsen_op) = match done {
                    Value::Send(d) => (
                        d.offset,
                        s.batch.or(d.batch),
                        d.attempts,
                        d.broker.as_deref(),
                        s.jepsen_op.or(d.jepsen_op),
                    ),
                    _ => (None, s.batch, None, None, s.jepsen_op),
                };
                let (pid, vid) = (
                    self.pid((s.topic.as_str(), s.partition)),
                    self.vid(&s.value),
                );
                self.add_send(Send {
                    pid,
                    vid,
                    process: pair.invoke.process,
                    op: last.index,
                    invoke_ns: pair.invoke.time_ns,
                    done_ns: pair.completion.map(|c| c.time_ns),
                    outcome,
                    offset,
                    batch,
                    attempts,
                    broker,
                    jepsen_op,
                    txn: None,
                    source: s.source.as_deref(),
                });
            }
            (Value::Txn(inv), _, done) => self.add_txn(pair, inv, done),
            (Value::Poll(_), OpKind::Ok, Value::Poll(p)) => self.add_poll(p, last),
            (Value::FinalRead(_), OpKind::Ok, Value::FinalRead(fr)) => {
                let tp = (fr.topic.as_str(), fr.partition);
                // A final read without an hwm ends after its last record.
                let hwm = fr
                    .hwm
                    .unwrap_or_else(|| fr.records.iter().map(|r| r.offset + 1).max().unwrap_or(0));
                for r in &fr.records {
                    self.add_read(tp, r.offset, &r.value, last, true);
                }
                let spans = fr.hidden.iter().map(|h| (h.from, h.to));
                self.part_mut(tp).hidden.extend(spans);
                let log_start = fr.log_start.unwrap_or(0);
                let i = self.final_reads.len();
                self.final_reads.push(FinalRead {
                    tp,
                    hwm,
                    op: last.index,
                    records: &fr.records,
                    hidden: &fr.hidden,
                    log_start,
                    invoke_ns: pair.invoke.time_ns,
                    done_ns: last.time_ns,
                });
                let part = self.part_mut(tp);
                part.final_reads.push(i);
                if part.max_final_hwm.is_none_or(|(h, _)| hwm > h) {
                    part.max_final_hwm = Some((hwm, last.index));
                }
                if part.final_log_start.is_none_or(|(l, _)| log_start > l) {
                    part.final_log_start = Some((log_start, last.index));
                }
            }
            (Value::FinalRead(fr), _, _) => {
                // Failed final reads still name a partition that liveness must account for.
                self.part_mut((&fr.topic, fr.partition));
            }
            (Value::DeleteRecords(d), _, done) => {
                let tp = (d.topic.as_str(), d.partition);
                let log_start = match (outcome, done) {
                    (OpKind::Ok, Value::DeleteRecords(r)) => r.log_start,
                    _ => None,
                };
                let i = self.deletes.len();
                self.deletes.push(DeleteRecords {
                    offset: d.offset,
                    outcome,
                    op: last.index,
                    invoke_ns: pair.invoke.time_ns,
                    done_ns: pair.completion.map(|c| c.time_ns),
                    log_start,
                });
                self.part_mut(tp).deletes.push(i);
            }
            (Value::Topic(t), _, _) => {
                self.topics.entry(t.topic.as_str()).or_insert(t);
            }
            (Value::Client(c), _, _) => {
                self.clients.entry(pair.invoke.process).or_insert(c);
            }
            (Value::Violation(v), _, _) => self.violations.push((last.index, v)),
            _ => {}
        }
    }

    /// Indexes one send (its partition and value numbered by the caller).
    fn add_send(&mut self, mut send: Send<'a>) {
        // A negative offset is none: a client records -1 when the broker acknowledged
        // without a base offset (the Java client's RecordMetadata then says
        // `hasOffset() == false`; the reply itself is a `protocol-violation` fact). An
        // ack without an offset is judged only where none is needed (`unseen`).
        send.offset = send.offset.filter(|&o| o >= 0);
        let (pid, outcome, offset, op) = (send.pid, send.outcome, send.offset, send.op);
        let in_txn = send.txn.is_some();
        let i = self.sends.len() as u32;
        self.sends.push(send);
        let part = &mut self.part_list[pid as usize];
        part.written = true;
        part.txn_written |= in_txn;
        if let (OpKind::Ok, Some(o)) = (outcome, offset) {
            part.acks.push((o, i as usize));
            if part.max_ack.is_none_or(|(m, _)| o > m) {
                part.max_ack = Some((o, op));
            }
        }
    }

    /// Indexes a transaction: its sends take its outcome, its polls' records are reads.
    fn add_txn(&mut self, pair: &Pair<'a>, inv: &'a TxnValue, done: &'a Value) {
        let last = pair.last();
        let value = match (pair.completion, done) {
            (Some(_), Value::Txn(d)) => d,
            _ => inv,
        };
        let t = self.txns.len();
        let mut txn = Txn {
            process: pair.invoke.process,
            id: &value.transactional_id,
            end: value.end,
            outcome: pair.outcome(),
            invoke: pair.invoke.index,
            op: last.index,
            done_ns: pair.completion.map(|c| c.time_ns),
            value,
            group: value.group.as_deref().or(inv.group.as_deref()),
            offsets: if value.offsets.is_empty() {
                &inv.offsets
            } else {
                &value.offsets
            },
            sends: 0..0,
        };
        let outcome = if txn.committed() {
            OpKind::Ok
        } else if txn.aborted() {
            OpKind::Fail
        } else {
            OpKind::Info
        };
        // The completion's sends when it lists them (with offsets), else the invoke's.
        let from = if value.sends().next().is_some() {
            value
        } else {
            inv
        };
        let start = self.sends.len();
        for (k, s) in from.sends().enumerate() {
            let batch = s.batch.or_else(|| inv.sends().nth(k).and_then(|i| i.batch));
            let (pid, vid) = (
                self.pid((s.topic.as_str(), s.partition)),
                self.vid(&s.value),
            );
            self.add_send(Send {
                pid,
                vid,
                process: txn.process,
                op: last.index,
                invoke_ns: pair.invoke.time_ns,
                done_ns: pair.completion.map(|c| c.time_ns),
                outcome,
                offset: s.offset,
                batch,
                attempts: s.attempts,
                broker: s.broker.as_deref(),
                jepsen_op: Some(txn.invoke),
                txn: Some(t),
                source: s.source.as_deref(),
            });
        }
        txn.sends = start..self.sends.len();
        if pair.completion.is_some() {
            for p in value.polls() {
                self.add_poll(p, last);
            }
        }
        self.txns.push(txn);
    }

    /// Indexes the records and hidden ranges of a poll (or a transaction's poll) seen by `op`.
    fn add_poll(&mut self, p: &'a PollValue, last: &'a Op) {
        let op = last.index;
        for r in &p.records {
            let tp = (r.topic.as_str(), r.partition);
            let pid = self.add_read(tp, r.offset, &r.value, last, false);
            let part = &mut self.part_list[pid as usize];
            if part.max_poll_offset.is_none_or(|(o, _)| r.offset > o) {
                part.max_poll_offset = Some((r.offset, op));
            }
        }
        for h in &p.hidden {
            self.part_mut((&h.topic, h.partition))
                .hidden
                .push((h.from, h.to));
        }
    }

    /// Indexes one record read; returns its partition's number.
    fn add_read(
        &mut self,
        tp: Tp<'a>,
        offset: i64,
        value: &'a str,
        by: &Op,
        final_read: bool,
    ) -> u32 {
        let pid = self.pid(tp);
        let i = self.reads.len() as u32;
        let seen = self.vids.get_or_insert(value);
        let vid = seen.id;
        let new = vid as usize == self.values.len();
        if seen.pid == NONE {
            (seen.pid, seen.offset) = (pid, offset);
        } else if seen.pid & FLAGGED == 0 && (seen.pid != pid || seen.offset != offset) {
            // The second distinct position makes it a candidate duplicate, once.
            seen.pid |= FLAGGED;
            self.multi_position.push(value);
        }
        if new {
            self.values.push(value);
        }
        self.reads.push(Read {
            pid,
            offset,
            vid,
            op: by.index,
            final_read,
            process: by.process,
            time_ns: by.time_ns,
        });
        self.part_list[pid as usize]
            .reads
            .push((offset, i as usize));
        pid
    }

    /// Value number `vid` was read at two positions or more (it is in `multi_position`).
    pub fn flagged_id(&self, vid: u32) -> bool {
        self.flagged.get(vid as usize).is_some_and(|&f| f)
    }

    /// Indices into `sends` of the sends of value number `vid`, in history order.
    pub fn send_indices_of_id(&self, vid: u32) -> impl Iterator<Item = usize> + '_ {
        self.sends_by_value.of(vid).iter().map(|&i| i as usize)
    }

    /// Send `i` (an index into `sends`) is not the last send of its value.
    pub fn has_later_send(&self, i: usize) -> bool {
        self.sends_by_value
            .of(self.sends[i].vid)
            .last()
            .is_some_and(|&l| l as usize != i)
    }

    /// Reads of value number `vid`, in history order.
    pub fn reads_of_id(&self, vid: u32) -> impl Iterator<Item = &Read> + '_ {
        self.reads_by_value
            .of(vid)
            .iter()
            .map(|&i| &self.reads[i as usize])
    }

    /// Reads of `value`, in history order.
    pub fn reads_of(&self, value: &str) -> impl Iterator<Item = &Read> + '_ {
        self.reads_of_id(self.value_id(value).unwrap_or(NONE))
    }

    /// Some read returned value number `vid`.
    pub fn is_read(&self, vid: u32) -> bool {
        !self.reads_by_value.of(vid).is_empty()
    }

    /// Sends of value number `vid`, in history order.
    pub fn sends_of_id(&self, vid: u32) -> impl Iterator<Item = &Send<'a>> + '_ {
        self.send_indices_of_id(vid).map(|i| &self.sends[i])
    }

    /// Sends of `value`, in history order.
    pub fn sends_of(&self, value: &str) -> impl Iterator<Item = &Send<'a>> + '_ {
        self.sends_of_id(self.value_id(value).unwrap_or(NONE))
    }

    /// Offsets of `tp` in `[from, to)` that some read returned.
    pub fn read_offsets_in(&self, tp: Tp<'a>, from: i64, to: i64) -> Vec<i64> {
        match self.part(tp) {
            Some(p) if from < to => p.read_offsets_in(from, to),
            _ => Vec::new(),
        }
    }
}

/// Partition numbers for a checker that also meets partitions the index may not know (an
/// assign's, a seek's, a fetch offset's, where nothing was read or written): the index's numbers,
/// then its own after them, so that records read are looked up by their number, not their topic.
pub(crate) struct PartIds<'i, 'a> {
    ix: &'i Index<'a>,
    extra: Numbers<'a, i32>,
    extra_tps: Vec<Tp<'a>>,
}

impl<'i, 'a> PartIds<'i, 'a> {
    pub fn new(ix: &'i Index<'a>) -> Self {
        PartIds {
            ix,
            extra: Numbers::default(),
            extra_tps: Vec::new(),
        }
    }

    pub fn id(&mut self, tp: Tp<'a>) -> u32 {
        if let Some(pid) = self.ix.part_id(tp) {
            return pid;
        }
        let next = (self.ix.tps.len() + self.extra_tps.len()) as u32;
        let id = self.extra.get_or_insert(tp.0, tp.1, next);
        if id == next {
            self.extra_tps.push(tp);
        }
        id
    }

    pub fn tp(&self, id: u32) -> Tp<'a> {
        match (id as usize).checked_sub(self.ix.tps.len()) {
            Some(extra) => self.extra_tps[extra],
            None => self.ix.tp(id),
        }
    }

    /// How many partitions are numbered.
    pub fn len(&self) -> usize {
        self.ix.tps.len() + self.extra_tps.len()
    }
}

/// A hash map with a fixed (so deterministic) hasher, rustc's FxHash, for lookups only: nothing
/// is ever iterated out of one into output.
// The one std HashMap the determinism lints allow: its hasher is fixed, not RandomState.
#[allow(clippy::disallowed_types)]
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Indices grouped by a number (a value's), each group in ascending order: group `g` is
/// `list[start[g]..start[g + 1]]`.
#[derive(Default)]
struct Groups {
    start: Vec<u32>,
    list: Vec<u32>,
}

impl Groups {
    /// Groups `0..n` of the positions of `keys` (each below `n`), by counting.
    fn new(n: usize, keys: impl Iterator<Item = u32> + Clone) -> Groups {
        let mut start = vec![0u32; n + 1];
        for k in keys.clone() {
            start[k as usize + 1] += 1;
        }
        for g in 0..n {
            start[g + 1] += start[g];
        }
        let mut list = vec![0u32; start[n] as usize];
        for (i, k) in keys.enumerate() {
            list[start[k as usize] as usize] = i as u32;
            start[k as usize] += 1;
        }
        // Each start moved to its group's end, the next group's start: shift them back (no
        // second array of cursors, which would raise the peak memory).
        for g in (1..=n).rev() {
            start[g] = start[g - 1];
        }
        start[0] = 0;
        Groups { start, list }
    }

    /// Group `g` (empty if there is none: [`NONE`], say).
    fn of(&self, g: u32) -> &[u32] {
        match (self.start.get(g as usize), self.start.get(g as usize + 1)) {
            (Some(&lo), Some(&hi)) => &self.list[lo as usize..hi as usize],
            _ => &[],
        }
    }
}

/// Numbers of (string, tag) keys: a value's (tag `()`), a partition's (its number). Strings of
/// up to 15 bytes (nearly all) are keyed by their bytes packed into two words, so that a lookup
/// neither follows the string's pointer nor calls `memcmp`; longer ones by the string. Lookups
/// only.
#[derive(Default)]
pub(crate) struct Numbers<'a, T> {
    short: FastMap<([u64; 2], T), u32>,
    long: FastMap<(&'a str, T), u32>,
}

/// The bytes of a string of up to 15 bytes, and its length in the top byte (so "a" and "a\0"
/// differ); None if it is longer. (Read as whole words, overlapping, rather than copied byte by
/// byte into a buffer: the copy's call was most of a lookup.)
fn pack(s: &str) -> Option<[u64; 2]> {
    let b = s.as_bytes();
    let n = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            b[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    let (lo, hi) = match n {
        // Bytes 8.. are the last word's top bytes; the bytes it shares with the first go.
        8..=15 => (
            word(0),
            word(n - 8).checked_shr((16 - n) as u32 * 8).unwrap_or(0),
        ),
        // Two overlapping halves: the bytes they share are equal, so or-ing keeps them.
        4..=7 => (half(0) | half(n - 4) << ((n - 4) * 8), 0),
        _ if n < 4 => (b.iter().rev().fold(0, |w, &c| w << 8 | u64::from(c)), 0),
        _ => return None,
    };
    Some([lo, hi | (n as u64) << 56])
}

impl<'a, T: Copy + Eq + std::hash::Hash> Numbers<'a, T> {
    /// The key's number, `next` if it is new.
    pub fn get_or_insert(&mut self, s: &'a str, tag: T, next: u32) -> u32 {
        match pack(s) {
            Some(k) => *self.short.entry((k, tag)).or_insert(next),
            None => *self.long.entry((s, tag)).or_insert(next),
        }
    }

    pub fn get(&self, s: &str, tag: T) -> Option<u32> {
        match pack(s) {
            Some(k) => self.short.get(&(k, tag)),
            None => self.long.get(&(s, tag)),
        }
        .copied()
    }
}

/// Value → number, for the many values of a history, and where each was first read. Short
/// values (nearly all) live in `slots`, an open-addressed table whose 32-byte slots hold the
/// packed bytes, the number and the first read together: indexing a record reads one slot (one
/// cache line), where a table of numbers beside an array of keys and another of first reads
/// missed the cache three times. Longer values go to a map. Lookups only.
#[derive(Default)]
struct ValueIds<'a> {
    /// `id == NONE` where empty; a power of two long (or empty).
    slots: Vec<Slot>,
    long: FastMap<&'a str, Slot>,
    /// How many values are numbered.
    len: usize,
}

/// A value's number and where it was first read: `pid` [`NONE`] while unread, with
/// [`FLAGGED`] set once some read had it at another position.
#[derive(Clone, Copy)]
struct Slot {
    key: [u64; 2],
    offset: i64,
    id: u32,
    pid: u32,
}

/// In [`Slot::pid`]: read at two positions or more. (Partitions are numbered far below it.)
const FLAGGED: u32 = 1 << 31;

const EMPTY: Slot = Slot {
    key: [0; 2],
    offset: 0,
    id: NONE,
    pid: NONE,
};

impl<'a> ValueIds<'a> {
    fn reserve(&mut self, n: usize) {
        self.resize((n * 4 / 3 + 1).next_power_of_two());
    }

    /// Where the probe for `k` starts (Fibonacci hashing: the product's top bits).
    fn start(&self, k: [u64; 2]) -> usize {
        let h = (k[0] ^ k[1].rotate_left(8)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    /// Re-slots every short value into a table of `len` slots.
    fn resize(&mut self, len: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; len.max(16)]);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|s| s.id != NONE) {
            let mut i = self.start(slot.key);
            while self.slots[i].id != NONE {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }

    /// The value's slot; numbered `self.len` (the count so far) if it is new.
    fn get_or_insert(&mut self, value: &'a str) -> &mut Slot {
        let next = self.len as u32;
        let Some(k) = pack(value) else {
            let slot = self.long.entry(value).or_insert(Slot { id: next, ..EMPTY });
            if slot.id == next {
                self.len += 1;
            }
            return slot;
        };
        // At most three quarters full.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(self.slots.len() * 2);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.start(k);
        loop {
            let slot = &self.slots[i];
            if slot.id == NONE {
                self.len += 1;
                self.slots[i] = Slot {
                    key: k,
                    id: next,
                    ..EMPTY
                };
                return &mut self.slots[i];
            }
            if slot.key == k {
                return &mut self.slots[i];
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, value: &str) -> Option<u32> {
        let Some(k) = pack(value) else {
            return self.long.get(value).map(|s| s.id);
        };
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.start(k);
        loop {
            match &self.slots[i] {
                s if s.id == NONE => return None,
                s if s.key == k => return Some(s.id),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// By number: read at two positions or more.
    fn flagged(&self) -> Vec<bool> {
        let mut out = vec![false; self.len];
        for s in self.slots.iter().chain(self.long.values()) {
            if s.id != NONE {
                out[s.id as usize] = s.pid != NONE && s.pid & FLAGGED != 0;
            }
        }
        out
    }
}

/// Quotes a record value for an explanation, shortening long ones.
pub(crate) fn q(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Formats offsets compactly: `3..5, 9` (ranges inclusive), at most [`MAX_LISTED`] items.
pub(crate) fn ranges(offsets: &[i64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < offsets.len() && parts.len() < MAX_LISTED {
        let start = offsets[i];
        let mut end = start;
        while i + 1 < offsets.len() && offsets[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..{end}")
        });
        i += 1;
    }
    if i < offsets.len() {
        parts.push("…".into());
    }
    parts.join(", ")
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Small helpers to write histories by hand in tests.
    use crate::history::*;

    pub const T: &str = "t";

    pub fn send(b: &mut HistoryBuilder, process: u64, partition: i32, value: &str, offset: i64) {
        let s = SendValue::new(T, partition, value);
        b.call(process, s.clone(), OpKind::Ok, s.acked(offset));
    }

    pub fn send_outcome(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        value: &str,
        kind: OpKind,
    ) {
        let s = SendValue::new(T, partition, value);
        b.call(process, s.clone(), kind, s);
    }

    /// A poll of partition `partition` returning `(offset, value)` records and an hwm.
    pub fn poll(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        records: &[(i64, &str)],
        hwm: i64,
    ) -> u64 {
        let mut v = PollValue::default().hwm(T, partition, hwm);
        for (o, val) in records {
            v = v.record(T, partition, *o, val);
        }
        b.call(process, PollValue::default(), OpKind::Ok, v)
    }

    pub fn assign(b: &mut HistoryBuilder, process: u64, partition: i32) {
        let a = AssignValue {
            partitions: vec![TopicPartition::new(T, partition)],
        };
        b.call(process, a.clone(), OpKind::Ok, a);
    }

    pub fn final_read(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        values: &[&str],
    ) -> u64 {
        b.call(
            process,
            FinalReadValue::new(T, partition),
            OpKind::Ok,
            FinalReadValue::new(T, partition).contiguous(values),
        )
    }

    pub fn final_read_records(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        records: &[(i64, &str)],
        hwm: i64,
    ) -> u64 {
        let mut v = FinalReadValue::new(T, partition);
        v.hwm = Some(hwm);
        v.records = records
            .iter()
            .map(|(o, val)| OffsetValue {
                offset: *o,
                value: (*val).to_owned(),
            })
            .collect();
        b.call(process, FinalReadValue::new(T, partition), OpKind::Ok, v)
    }

    /// A final read of `partition` from log start `log_start`: `records` up to `hwm`.
    pub fn final_read_from(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        log_start: i64,
        records: &[(i64, &str)],
        hwm: i64,
    ) -> u64 {
        let mut v = FinalReadValue::new(T, partition);
        v.hwm = Some(hwm);
        v.log_start = Some(log_start);
        v.records = records
            .iter()
            .map(|(o, val)| OffsetValue {
                offset: *o,
                value: (*val).to_owned(),
            })
            .collect();
        b.call(process, FinalReadValue::new(T, partition), OpKind::Ok, v)
    }

    /// A clean history: two producers, one consumer reading everything in two polls, final reads.
    pub fn clean() -> History {
        let mut b = HistoryBuilder::new();
        send(&mut b, 1, 0, "a", 0);
        send(&mut b, 2, 0, "b", 1);
        send(&mut b, 1, 0, "c", 2);
        send(&mut b, 2, 1, "x", 0);
        send_outcome(&mut b, 1, 1, "lost-maybe", OpKind::Info);
        send_outcome(&mut b, 2, 1, "never", OpKind::Fail);
        assign(&mut b, 10, 0);
        poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
        poll(&mut b, 10, 0, &[(2, "c")], 3);
        poll(&mut b, 10, 0, &[], 3);
        final_read(&mut b, 20, 0, &["a", "b", "c"]);
        final_read(&mut b, 20, 1, &["x"]);
        b.build()
    }

    /// A read_committed consumer describing itself.
    pub fn rc_client(b: &mut HistoryBuilder, process: u64) -> u64 {
        let v = ClientValue {
            role: "consumer".into(),
            name: format!("consumer-{process}"),
            read_committed: true,
            ..ClientValue::default()
        };
        client_op(b, process, v)
    }

    /// A transaction of `process` (id `tx-{process}`) sending `(partition, value, offset)`
    /// records, completed `kind` and ended with `end`: an `ok` completion carries the offsets
    /// and, like `fail`, says EndTxn was sent when it completed. Returns the completion's index.
    pub fn txn(
        b: &mut HistoryBuilder,
        process: u64,
        end: TxnEnd,
        kind: OpKind,
        sends: &[(i32, &str, i64)],
    ) -> u64 {
        let mut inv = TxnValue::new(format!("tx-{process}"), end);
        let mut done = inv.clone();
        for &(p, v, o) in sends {
            inv = inv.send(SendValue::new(T, p, v));
            let s = SendValue::new(T, p, v);
            done = done.send(if kind == OpKind::Ok { s.acked(o) } else { s });
        }
        let i = b.invoke(process, inv);
        b.advance(1_000);
        if kind != OpKind::Info {
            done.end_sent_ns = Some(b.now_ns());
        }
        b.advance(1_000);
        b.complete(process, i, kind, done)
    }

    /// A final read of `partition`: `records`, `hidden` spans `(from, to)` of control batches,
    /// up to `hwm`.
    pub fn final_read_hidden(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        records: &[(i64, &str)],
        hidden: &[(i64, i64)],
        hwm: i64,
    ) -> u64 {
        let mut v = FinalReadValue::new(T, partition);
        v.hwm = Some(hwm);
        v.records = records
            .iter()
            .map(|(o, val)| OffsetValue {
                offset: *o,
                value: (*val).to_owned(),
            })
            .collect();
        v.hidden = hidden
            .iter()
            .map(|&(from, to)| HiddenSpan {
                from,
                to,
                why: Hidden::Control,
            })
            .collect();
        b.call(process, FinalReadValue::new(T, partition), OpKind::Ok, v)
    }

    pub fn anomalies(findings: &[crate::Finding]) -> Vec<crate::Anomaly> {
        findings.iter().map(|f| f.anomaly).collect()
    }

    /// A client process describing itself (one completed op), as at its start.
    pub fn client(
        b: &mut HistoryBuilder,
        process: u64,
        role: &str,
        idempotent: bool,
        max_in_flight: u32,
    ) -> u64 {
        let v = ClientValue {
            role: role.into(),
            name: format!("{role}-{process}"),
            idempotent,
            max_in_flight,
            ..ClientValue::default()
        };
        client_op(b, process, v)
    }

    /// Records `v` as one completed `client` op of `process`.
    pub fn client_op(b: &mut HistoryBuilder, process: u64, v: ClientValue) -> u64 {
        let i = b.invoke(process, v.clone());
        b.complete(process, i, OpKind::Ok, v)
    }

    /// Invokes a send of one record (of record batch `batch`); returns the invoke's index for
    /// [`complete_send`].
    pub fn invoke_send(
        b: &mut HistoryBuilder,
        process: u64,
        partition: i32,
        value: &str,
        batch: Option<u64>,
    ) -> u64 {
        let mut s = SendValue::new(T, partition, value);
        s.batch = batch;
        b.invoke(process, s)
    }

    /// How a send completes.
    #[derive(Clone, Copy)]
    pub struct Done {
        pub kind: OpKind,
        pub offset: Option<i64>,
        pub request: Option<u64>,
        pub attempts: Option<u32>,
        pub broker: Option<&'static str>,
    }

    impl Done {
        pub fn acked(offset: i64) -> Done {
            Done {
                offset: Some(offset),
                ..Done::outcome(OpKind::Ok)
            }
        }

        pub fn outcome(kind: OpKind) -> Done {
            Done {
                kind,
                offset: None,
                request: None,
                attempts: Some(1),
                broker: None,
            }
        }

        pub fn broker(mut self, addr: &'static str) -> Done {
            self.broker = Some(addr);
            self
        }

        pub fn attempts(mut self, n: u32) -> Done {
            self.attempts = Some(n);
            self
        }

        pub fn request(mut self, id: u64) -> Done {
            self.request = Some(id);
            self
        }
    }

    /// Completes the send invoked at `invoke`, naming it (the batch tag stays on the invoke).
    pub fn complete_send(
        b: &mut HistoryBuilder,
        process: u64,
        invoke: u64,
        partition: i32,
        value: &str,
        done: Done,
    ) -> u64 {
        let mut s = SendValue::new(T, partition, value);
        s.offset = done.offset;
        s.request = done.request;
        s.attempts = done.attempts;
        s.broker = done.broker.map(str::to_owned);
        b.complete(process, invoke, done.kind, s)
    }

    /// A poll that fetched `partition` from `fetch` and returned `(offset, value)` records of it
    /// (and of partition 1 when `also` is not empty), with hwms.
    fn poll_from(
        b: &mut HistoryBuilder,
        process: u64,
        fetch: i64,
        records: &[(i64, &str)],
        also: &[(i64, &str)],
        hwms: (i64, i64),
    ) -> u64 {
        let mut v = PollValue::default()
            .fetch_offset(T, 0, fetch)
            .hwm(T, 0, hwms.0)
            .hwm(T, 1, hwms.1);
        for (o, val) in records {
            v = v.record(T, 0, *o, val);
        }
        for (o, val) in also {
            v = v.record(T, 1, *o, val);
        }
        b.advance(1_000);
        b.call(process, PollValue::default(), OpKind::Ok, v)
    }

    /// What to break in [`pipelined`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mutation {
        None,
        /// The consumer's second poll jumps over an existing offset between two records.
        IntPollSkip,
        /// The consumer's second poll returns a record again after a later one.
        IntNonmonotonicPoll,
        /// The broker stores producer 1's batch 3 ("a3", "a4") the other way round.
        IntNonmonotonicSend,
        /// Producer 2 says it is idempotent, so its retried batch landing late is a reorder.
        IdempotentReorder,
        /// The broker writes producer 1's unacknowledged "a5" twice although it is idempotent.
        IdempotentDuplicate,
    }

    /// A pipelined run: two producers keep several record batches outstanding at once, on two
    /// partitions, and their completions come back out of invoke order, naming their invokes.
    /// Producer 1 is idempotent (5 requests in flight); producer 2 is not (3 in flight) and one
    /// of its batches is retried and lands after a batch it sent later, which Kafka allows. A
    /// group member reads everything, commits, and seeks back to replay. Clean unless mutated.
    pub fn pipelined(m: Mutation) -> History {
        let mut b = HistoryBuilder::new();
        let mut first = ClientValue {
            role: "producer".into(),
            name: "producer-1".into(),
            idempotent: true,
            max_in_flight: 5,
            ..ClientValue::default()
        };
        first.profile.insert("linger_ms".into(), 12.into());
        first.profile.insert("codec".into(), "lz4".into());
        client_op(&mut b, 1, first);
        client(&mut b, 2, "producer", m == Mutation::IdempotentReorder, 3);
        client(&mut b, 10, "member", false, 0);
        // What the broker appended, in order.
        let p0: Vec<&str> = match m {
            Mutation::IntNonmonotonicSend => vec!["a0", "a1", "b0", "b3", "a4", "a3", "b1", "b2"],
            _ => vec!["a0", "a1", "b0", "b3", "a3", "a4", "b1", "b2"],
        };
        let p1: Vec<&str> = match m {
            Mutation::IdempotentDuplicate => vec!["a2", "a5", "a5"],
            _ => vec!["a2"],
        };
        let at = |log: &[&str], v: &str| log.iter().position(|x| *x == v).unwrap() as i64;
        let a0 = invoke_send(&mut b, 1, 0, "a0", Some(1));
        let a1 = invoke_send(&mut b, 1, 0, "a1", Some(1));
        let b0 = invoke_send(&mut b, 2, 0, "b0", Some(1));
        let a2 = invoke_send(&mut b, 1, 1, "a2", Some(2));
        let b1 = invoke_send(&mut b, 2, 0, "b1", Some(2));
        let b2 = invoke_send(&mut b, 2, 0, "b2", Some(2));
        let a3 = invoke_send(&mut b, 1, 0, "a3", Some(3));
        let a4 = invoke_send(&mut b, 1, 0, "a4", Some(3));
        let b3 = invoke_send(&mut b, 2, 0, "b3", Some(3));
        let a5 = invoke_send(&mut b, 1, 1, "a5", Some(4));
        let b4 = invoke_send(&mut b, 2, 1, "b4", Some(4));
        b.advance(1_000);
        let ack = |log: &[&str], v: &str, request: u64| Done::acked(at(log, v)).request(request);
        complete_send(&mut b, 1, a2, 1, "a2", ack(&p1, "a2", 2));
        complete_send(&mut b, 2, b0, 0, "b0", ack(&p0, "b0", 1));
        complete_send(&mut b, 1, a0, 0, "a0", ack(&p0, "a0", 1));
        complete_send(&mut b, 1, a1, 0, "a1", ack(&p0, "a1", 1));
        complete_send(&mut b, 2, b3, 0, "b3", ack(&p0, "b3", 3));
        complete_send(&mut b, 1, a4, 0, "a4", ack(&p0, "a4", 3));
        complete_send(&mut b, 1, a3, 0, "a3", ack(&p0, "a3", 3));
        let fail = Done::outcome(OpKind::Fail).request(4);
        complete_send(&mut b, 2, b4, 1, "b4", fail);
        complete_send(&mut b, 2, b2, 0, "b2", ack(&p0, "b2", 5).attempts(2));
        complete_send(&mut b, 2, b1, 0, "b1", ack(&p0, "b1", 5).attempts(2));
        let lost = Done::outcome(OpKind::Info).attempts(2);
        complete_send(&mut b, 1, a5, 1, "a5", lost);
        // The member starts from the group's (empty) commit, reads, commits, replays.
        let a = AssignValue {
            partitions: vec![TopicPartition::new(T, 0), TopicPartition::new(T, 1)],
        };
        b.call(10, a.clone(), OpKind::Ok, a);
        let seek = SeekValue::new(T, 0, 0).because(SeekReason::Committed);
        b.call(10, seek.clone(), OpKind::Ok, seek);
        let hwms = (p0.len() as i64, p1.len() as i64);
        let rec = |log: &[&'static str], offsets: &[i64]| -> Vec<(i64, &'static str)> {
            offsets.iter().map(|&o| (o, log[o as usize])).collect()
        };
        poll_from(&mut b, 10, 0, &rec(&p0, &[0, 1, 2, 3]), &[], hwms);
        let second: &[i64] = match m {
            Mutation::IntPollSkip => &[4, 6, 7],
            Mutation::IntNonmonotonicPoll => &[4, 5, 6, 7, 6],
            _ => &[4, 5, 6, 7],
        };
        poll_from(&mut b, 10, 4, &rec(&p0, second), &rec(&p1, &[0]), hwms);
        let commit = CommitValue {
            group: Some("g".into()),
            offsets: vec![PartitionOffset {
                topic: T.into(),
                partition: 0,
                offset: 8,
            }],
        };
        b.advance(1_000);
        b.call(10, commit.clone(), OpKind::Ok, commit);
        b.advance(1_000);
        let back = SeekValue::new(T, 0, 2).because(SeekReason::Back);
        b.call(10, back.clone(), OpKind::Ok, back);
        poll_from(&mut b, 10, 2, &rec(&p0, &[2, 3]), &[], hwms);
        final_read(&mut b, 20, 0, &p0);
        final_read(&mut b, 20, 1, &p1);
        for (process, idempotent, in_flight) in [(1, true, 5), (2, false, 3)] {
            let v = ClientValue {
                role: "producer".into(),
                name: format!("producer-{process}"),
                idempotent,
                max_in_flight: in_flight,
                counters: Some(ClientCounters {
                    batches: 4,
                    records: 6,
                    max_records_per_batch: 2,
                    requests: 5,
                    retried_batches: 1,
                    ..ClientCounters::default()
                }),
                ..ClientValue::default()
            };
            client_op(&mut b, process, v);
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_holds_each_byte_and_the_length() {
        // The plain way: the bytes copied into 16, the length in the last.
        let plain = |s: &str| {
            (s.len() < 16).then(|| {
                let mut k = [0u8; 16];
                k[..s.len()].copy_from_slice(s.as_bytes());
                k[15] = s.len() as u8;
                [0, 8].map(|at| u64::from_le_bytes(k[at..at + 8].try_into().unwrap()))
            })
        };
        let text = "p3-1234567890abcdefé\0x";
        for from in 0..4 {
            for to in from..text.len() {
                if let Some(s) = text.get(from..to) {
                    assert_eq!(pack(s), plain(s), "{s:?}");
                }
            }
        }
        assert_ne!(pack("a"), pack("a\0"));
        assert_ne!(pack("aaaaaaaa"), pack("aaaaaaaaa"));
    }

    #[test]
    fn clean_history_passes_every_checker() {
        let findings = run_all(&testkit::clean(), &CheckerConfig::default());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn pipelined_history_is_valid_and_clean() {
        use crate::history::{OpKind, F};
        let h = testkit::pipelined(testkit::Mutation::None);
        h.validate().unwrap();
        // Several sends of one process outstanding at once, completed out of invoke order.
        let pairs = h.pairs();
        let sends: Vec<_> = pairs
            .iter()
            .filter(|p| p.invoke.f() == F::Send && p.invoke.process == 1)
            .collect();
        assert!(sends.iter().all(|p| p.completion.is_some()));
        assert!(sends
            .windows(2)
            .any(|w| w[0].last().index > w[1].last().index));
        let outstanding = sends
            .iter()
            .filter(|p| p.invoke.index < sends[0].last().index)
            .count();
        assert!(outstanding > 3, "{outstanding}");
        // Every op is accounted for by some pair, client ops included.
        assert_eq!(
            pairs.iter().filter(|p| p.invoke.f() == F::Client).count(),
            5
        );
        assert!(pairs.iter().all(|p| p.outcome() != OpKind::Invoke));
        let findings = run_all(&h, &CheckerConfig::default());
        assert!(findings.is_empty(), "{findings:#?}");
        // Strict about retries too: nothing in it was written twice.
        let strict = CheckerConfig {
            allow_duplicates_from_retries: false,
            ..CheckerConfig::default()
        };
        assert!(run_all(&h, &strict).is_empty());
    }

    #[test]
    fn pipelined_history_with_each_new_anomaly() {
        use testkit::Mutation as M;
        let cases = [
            (M::IntPollSkip, vec![Anomaly::IntPollSkip]),
            (M::IntNonmonotonicPoll, vec![Anomaly::IntNonmonotonicPoll]),
            (M::IntNonmonotonicSend, vec![Anomaly::IntNonmonotonicSend]),
            (M::IdempotentReorder, vec![Anomaly::NonmonotonicSend]),
            (M::IdempotentDuplicate, vec![Anomaly::Duplicate]),
        ];
        for (m, expected) in cases {
            let h = testkit::pipelined(m);
            h.validate().unwrap();
            let findings = run_all(&h, &CheckerConfig::default());
            assert_eq!(
                testkit::anomalies(&findings),
                expected,
                "{m:?}: {findings:#?}"
            );
        }
    }

    #[test]
    fn client_ops_amid_outstanding_sends_change_nothing() {
        use crate::history::HistoryBuilder;
        use testkit::*;
        let mut b = HistoryBuilder::new();
        let a = invoke_send(&mut b, 1, 0, "a", Some(1));
        let c = invoke_send(&mut b, 1, 0, "c", Some(2));
        // A (re)start description while both are in flight pairs with itself.
        client(&mut b, 1, "producer", true, 5);
        complete_send(&mut b, 1, c, 0, "c", Done::acked(1));
        client(&mut b, 1, "producer", true, 5);
        complete_send(&mut b, 1, a, 0, "a", Done::acked(0));
        final_read(&mut b, 20, 0, &["a", "c"]);
        let h = b.build();
        h.validate().unwrap();
        let ix = Index::new(&h);
        let got: Vec<(&str, Option<i64>, Option<u64>)> = ix
            .sends
            .iter()
            .map(|s| (ix.value(s.vid), s.acked(), s.batch))
            .collect();
        assert_eq!(got, vec![("a", Some(0), Some(1)), ("c", Some(1), Some(2))]);
        assert!(ix.idempotent(1) && !ix.may_reorder_on_retry(1));
        let findings = run_all(&h, &CheckerConfig::default());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    /// Partition 0 holds "a" (tx-1, committed) at 0, its commit marker at 1, "x" (tx-2,
    /// aborted) at 2, its abort marker at 3, "b" (tx-3, committed) at 4, its marker at 5. A
    /// read_committed consumer passes over 1..4 and 5 (saying so, or not when `quiet`); a
    /// read_uncommitted one reads "x" too; the final read says `final_hidden` hold no data.
    fn transactional(quiet: bool, final_hidden: &[(i64, i64)]) -> History {
        use crate::history::{Hidden, HistoryBuilder, PollValue, TxnEnd};
        use testkit::*;
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 10);
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "a", 0)]);
        txn(&mut b, 2, TxnEnd::Abort, OpKind::Ok, &[(0, "x", 2)]);
        txn(&mut b, 3, TxnEnd::Commit, OpKind::Ok, &[(0, "b", 4)]);
        assign(&mut b, 10, 0);
        let mut first = PollValue::default().record(T, 0, 0, "a").hwm(T, 0, 6);
        let mut second = PollValue::default().record(T, 0, 4, "b").hwm(T, 0, 6);
        if !quiet {
            first = first
                .hidden(T, 0, 1, 2, Hidden::Control)
                .hidden(T, 0, 2, 3, Hidden::Aborted)
                .hidden(T, 0, 3, 4, Hidden::Control)
                .lso(T, 0, 6);
            second = second.hidden(T, 0, 5, 6, Hidden::Control).lso(T, 0, 6);
        }
        b.call(10, PollValue::default(), OpKind::Ok, first);
        b.call(10, PollValue::default(), OpKind::Ok, second);
        assign(&mut b, 11, 0);
        poll(&mut b, 11, 0, &[(0, "a"), (2, "x"), (4, "b")], 6);
        final_read_hidden(&mut b, 20, 0, &[(0, "a"), (4, "b")], final_hidden, 6);
        b.build()
    }

    #[test]
    fn a_transactional_history_with_hidden_offsets_is_clean() {
        for quiet in [false, true] {
            let h = transactional(quiet, &[(1, 4), (5, 6)]);
            h.validate().unwrap();
            let findings = run_all(&h, &CheckerConfig::default());
            assert!(findings.is_empty(), "{quiet}: {findings:#?}");
        }
    }

    #[test]
    fn holes_that_no_reader_says_are_hidden_are_still_offset_gaps() {
        let h = transactional(true, &[(5, 6)]);
        let findings = run_all(&h, &CheckerConfig::default());
        assert_eq!(testkit::anomalies(&findings), vec![Anomaly::OffsetGap]);
        assert_eq!(findings[0].offsets, vec![1, 3]);
    }

    #[test]
    fn a_read_committed_consumer_that_skips_a_committed_record_is_a_poll_skip() {
        use crate::history::{HistoryBuilder, TxnEnd};
        use testkit::*;
        let mut b = HistoryBuilder::new();
        rc_client(&mut b, 10);
        txn(&mut b, 1, TxnEnd::Commit, OpKind::Ok, &[(0, "a", 0)]);
        txn(&mut b, 3, TxnEnd::Commit, OpKind::Ok, &[(0, "b", 2)]);
        assign(&mut b, 10, 0);
        poll(&mut b, 10, 0, &[(2, "b")], 4);
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        assign(&mut b, 10, 0);
        poll(&mut b, 10, 0, &[(0, "a")], 4);
        poll(&mut b, 10, 0, &[(4, "c")], 5);
        final_read_hidden(&mut b, 20, 0, &[(0, "a"), (2, "b")], &[(1, 2), (3, 4)], 4);
        let findings = run_all(&b.build(), &CheckerConfig::default());
        assert!(
            testkit::anomalies(&findings).contains(&Anomaly::PollSkip),
            "{findings:#?}"
        );
    }

    #[test]
    fn records_below_the_final_log_start_are_removed_not_lost() {
        use crate::history::HistoryBuilder;
        use testkit::*;
        // "a" and "b" (0, 1) removed; "t" of a committed transaction at 2 (marker at 3)
        // removed too; "c" at 4 read from log start 4.
        let build = |log_start: i64| {
            let mut b = HistoryBuilder::new();
            send(&mut b, 1, 0, "a", 0);
            send(&mut b, 1, 0, "b", 1);
            txn(&mut b, 2, TxnEnd::Commit, OpKind::Ok, &[(0, "t", 2)]);
            send(&mut b, 1, 0, "c", 4);
            final_read_from(&mut b, 20, 0, log_start, &[(4, "c")], 5);
            b.build()
        };
        let h = build(4);
        h.validate().unwrap();
        let findings = run_all(&h, &CheckerConfig::default());
        assert!(findings.is_empty(), "{findings:#?}");
        // Without the log start, the same history loses them.
        let findings = run_all(&build(0), &CheckerConfig::default());
        let kinds = testkit::anomalies(&findings);
        assert!(kinds.contains(&Anomaly::LostWrite), "{findings:#?}");
        assert!(kinds.contains(&Anomaly::TxnLostWrite), "{findings:#?}");
    }

    #[test]
    fn ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1..3, 5, 7..8");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn quotes_shorten_long_values() {
        assert_eq!(q("ab"), "\"ab\"");
        assert_eq!(q(&"x".repeat(50)), format!("{:?}…", "x".repeat(40)));
    }
}
