//! The history model: Jepsen-shaped operations stored as JSON lines.
//!
//! Every line is one [`Op`]:
//! `{"index":3,"kind":"ok","process":1,"time_ns":2000,"f":"send","value":{...}}`.
//! The shape of `value` depends on `f` (see [`Value`]); `f` is derived from the value's variant so
//! the two can never disagree in memory.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, Write};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// Whether an op starts an operation or completes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// The client started the operation.
    Invoke,
    /// The operation definitely happened.
    Ok,
    /// The operation definitely did not happen.
    Fail,
    /// The outcome is unknown: it may or may not have happened.
    Info,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Invoke => "invoke",
            OpKind::Ok => "ok",
            OpKind::Fail => "fail",
            OpKind::Info => "info",
        }
    }
}

/// The operation's function, Jepsen's `:f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum F {
    Send,
    Poll,
    Assign,
    Seek,
    ListOffsets,
    FinalRead,
    Commit,
    Fault,
    /// A client process describing itself: what it drew from the seed when it started, what it
    /// did (counters) when it stopped.
    Client,
    /// A reply a client judged contrary to the Kafka protocol: a standalone `ok` fact.
    Violation,
    /// An invariant the system under test asserts in its own code was broken (a fact the
    /// simulator records; see [`InvariantValue`]).
    Invariant,
    /// A Kafka transaction: its sends and polls between InitTransactions/BeginTransaction and
    /// EndTxn, as one operation (see [`TxnValue`]).
    Txn,
    /// DeleteRecords: a partition's records below an offset removed on purpose (see
    /// [`DeleteRecordsValue`]).
    DeleteRecords,
    /// A topic's settings that decide how long its records are kept: a standalone `ok` fact from
    /// the process that created it (see [`TopicValue`]).
    Topic,
}

impl F {
    pub fn as_str(self) -> &'static str {
        match self {
            F::Send => "send",
            F::Poll => "poll",
            F::Assign => "assign",
            F::Seek => "seek",
            F::ListOffsets => "list_offsets",
            F::FinalRead => "final_read",
            F::Commit => "commit",
            F::Fault => "fault",
            F::Client => "client",
            F::Violation => "violation",
            F::Invariant => "invariant",
            F::Txn => "txn",
            F::DeleteRecords => "delete_records",
            F::Topic => "topic",
        }
    }
}

/// A topic and partition; displayed as `topic/partition`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// `f = send`: one record. The invoke carries the record; an `ok` completion repeats it and adds the
/// offset the broker returned (for a record inside a batch: the batch's base offset plus its
/// position).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendValue {
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Workloads write unique values; the checkers identify records by them.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The record batch it travelled in (unique per process); its records are in send order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// On a completion: the produce request that brought the outcome (unique per process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    /// On a completion: how many times its batch was sent (1 = never retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// On a completion: the broker (address) that answered the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// On a send imported from a Jepsen op that sent several records (a `:txn`, or a `:send` of
    /// several micro-ops): the index of the first op split from that op's invoke. Jepsen's
    /// internal rules (`int-nonmonotonic-send`) judge one op's sends together; unlike `batch`,
    /// it does not say they travelled in one record batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jepsen_op: Option<u64>,
    /// In a consume-transform-produce pipeline: the value of the input record this one was
    /// derived from (the `exactly-once` checker counts committed outputs per input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The record's timestamp (CreateTime, ms since the epoch on the client's clock): what
    /// retention judges it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl SendValue {
    pub fn new(topic: impl Into<String>, partition: i32, value: impl Into<String>) -> Self {
        SendValue {
            topic: topic.into(),
            partition,
            key: None,
            value: value.into(),
            offset: None,
            batch: None,
            request: None,
            attempts: None,
            broker: None,
            jepsen_op: None,
            source: None,
            timestamp: None,
        }
    }

    /// The same record with the offset the broker acknowledged.
    pub fn acked(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// One record returned by a poll.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolledRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// A partition's high watermark as reported to a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionHwm {
    pub topic: String,
    pub partition: i32,
    pub hwm: i64,
}

/// A partition's last stable offset as a fetch reply gave it to a consumer (read_committed:
/// the offset below which every transaction is decided).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLso {
    pub topic: String,
    pub partition: i32,
    pub lso: i64,
}

/// Why offsets hold no data for a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hidden {
    /// A control batch: a transaction's commit or abort marker. No reader sees it as data.
    Control,
    /// Records of an aborted transaction, which a read_committed consumer skips.
    Aborted,
}

/// Offsets `from..to` (exclusive) of a partition that a poll passed over as holding no data
/// for it: present in the log, not records to the reader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenRange {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
    pub why: Hidden,
}

/// Offsets `from..to` (exclusive) of a final read's partition that held no data for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenSpan {
    pub from: i64,
    pub to: i64,
    pub why: Hidden,
}

/// A partition and an offset (fetch positions, seeks, commits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// `f = poll`. The invoke is usually `{}`; an `ok` completion carries the records in the order the
/// consumer returned them, the high watermarks it saw, and optionally the offset each partition's
/// fetch started at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollValue {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<PolledRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub high_watermarks: Vec<PartitionHwm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch_offsets: Vec<PartitionOffset>,
    /// Offsets the fetch passed over as holding no data for this consumer: control batches,
    /// and aborted records for a read_committed one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<HiddenRange>,
    /// The last stable offsets the fetch reply gave (read_committed consumers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_stable_offsets: Vec<PartitionLso>,
}

impl PollValue {
    pub fn record(mut self, topic: &str, partition: i32, offset: i64, value: &str) -> Self {
        self.records.push(PolledRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            value: value.to_owned(),
        });
        self
    }

    pub fn hwm(mut self, topic: &str, partition: i32, hwm: i64) -> Self {
        self.high_watermarks.push(PartitionHwm {
            topic: topic.to_owned(),
            partition,
            hwm,
        });
        self
    }

    pub fn fetch_offset(mut self, topic: &str, partition: i32, offset: i64) -> Self {
        self.fetch_offsets.push(PartitionOffset {
            topic: topic.to_owned(),
            partition,
            offset,
        });
        self
    }

    /// Offsets `from..to` of the partition held no data for this consumer.
    pub fn hidden(mut self, topic: &str, partition: i32, from: i64, to: i64, why: Hidden) -> Self {
        self.hidden.push(HiddenRange {
            topic: topic.to_owned(),
            partition,
            from,
            to,
            why,
        });
        self
    }

    pub fn lso(mut self, topic: &str, partition: i32, lso: i64) -> Self {
        self.last_stable_offsets.push(PartitionLso {
            topic: topic.to_owned(),
            partition,
            lso,
        });
        self
    }
}

/// `f = assign`: the consumer's new assignment. Resets the poll checkers' expectations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignValue {
    #[serde(default)]
    pub partitions: Vec<TopicPartition>,
}

/// `f = seek`: the consumer moved its position explicitly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeekValue {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Why it moved; absent means [`SeekReason::Committed`] for a process that commits to a group,
    /// else unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SeekReason>,
}

/// Why a consumer seeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeekReason {
    /// (Re)starting from its group's committed offset: joining, after a rebalance or a restart.
    Committed,
    /// Going back to an offset it read before, to read it again (the replay must match).
    Back,
    /// To an offset the application keeps outside Kafka (an external offset store), which may
    /// lie outside the log: not a position the group gave it, nor one it read.
    External,
    /// After OFFSET_OUT_OF_RANGE, to the log's earliest or latest offset, as the consumer's
    /// `auto.offset.reset` says.
    Reset,
}

impl SeekValue {
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        SeekValue {
            topic: topic.into(),
            partition,
            offset,
            reason: None,
        }
    }

    pub fn because(mut self, reason: SeekReason) -> Self {
        self.reason = Some(reason);
        self
    }
}

impl From<PartitionOffset> for SeekValue {
    fn from(p: PartitionOffset) -> Self {
        SeekValue::new(p.topic, p.partition, p.offset)
    }
}

/// Earliest and latest (high watermark) offsets of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<i64>,
}

/// `f = list_offsets`: the invoke names partitions, the `ok` fills in earliest/latest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsValue {
    #[serde(default)]
    pub partitions: Vec<PartitionOffsets>,
}

/// One record of a final read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub value: String,
}

/// `f = final_read`: after healing, read a partition from offset 0 to its high watermark. The invoke
/// names the partition; the `ok` adds `hwm` and every record read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalReadValue {
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hwm: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<OffsetValue>,
    /// Offsets below the hwm that held no data for the reader (control batches; aborted
    /// records for a read_committed reader): present, not holes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<HiddenSpan>,
    /// Where the read began: the partition's log start (ListOffsets earliest). Records below it
    /// were removed (DeleteRecords, retention); absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
}

/// `f = delete_records`: the invoke asks the broker to remove a partition's records below
/// `offset`; an `ok` adds the log start it answered (the "low watermark").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRecordsValue {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
}

/// `f = topic`: how long a topic's records are kept, as its creator set it, and, when the
/// creator knows the cluster's settings (the simulator does), how often retention is applied
/// and how long removed objects linger: together, how late a record may outlive its retention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicValue {
    pub topic: String,
    /// `retention.ms`; absent: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// `retention.bytes`; absent: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<i64>,
    /// How often an owner applies retention (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_check_ms: Option<u64>,
    /// How long objects below the log start are kept (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_delay_ms: Option<u64>,
}

impl FinalReadValue {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        FinalReadValue {
            topic: topic.into(),
            partition,
            hwm: None,
            records: Vec::new(),
            hidden: Vec::new(),
            log_start: None,
        }
    }

    /// A complete read: records at offsets `0..values.len()`, hwm = number of records.
    pub fn contiguous<S: AsRef<str>>(mut self, values: &[S]) -> Self {
        self.records = values
            .iter()
            .enumerate()
            .map(|(o, v)| OffsetValue {
                offset: o as i64,
                value: v.as_ref().to_owned(),
            })
            .collect();
        self.hwm = Some(values.len() as i64);
        self
    }
}

/// `f = commit`: consumer-group offsets (not checked yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default)]
    pub offsets: Vec<PartitionOffset>,
}

/// `f = fault`: a nemesis event. `kind` names the fault; everything else is free-form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultValue {
    pub kind: String,
    #[serde(flatten)]
    pub detail: BTreeMap<String, serde_json::Value>,
}

impl FaultValue {
    pub fn new(kind: impl Into<String>) -> Self {
        FaultValue {
            kind: kind.into(),
            detail: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// `f = invariant`: the system under test broke an invariant it asserts in its own code
/// (`always!`), seen by the simulator that ran it. A fact, not an operation: one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantValue {
    /// The invariant's key, e.g. `broker/log.offsets_contiguous`.
    pub name: String,
    /// `file:line` of the assertion.
    pub place: String,
    /// What was seen.
    #[serde(default)]
    pub detail: String,
}

/// `f = client`: a client process describing itself, as a completed op of its own process. At the
/// start it says what it is and what it drew from the seed (`profile`); at the end it adds what it
/// did (`counters`). Checkers read `idempotent` and `max_in_flight`; the rest is for people.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientValue {
    /// `producer`, `consumer`, `member` (of a consumer group) or `reader` (the final read).
    pub role: String,
    /// The host or task name (`producer-0`, ...).
    #[serde(default)]
    pub name: String,
    /// An idempotent producer: its retries keep their sequence numbers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// Most produce requests it keeps outstanding per connection (0: not a producer, or unknown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_in_flight: u32,
    /// A consumer with `isolation.level=read_committed`: it must see only committed
    /// transactions' records. (In a history with transactions the final reads count as
    /// read_committed too.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_committed: bool,
    /// What else it drew (batching, codec, poll size, ...), free-form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<ClientCounters>,
}

impl ClientValue {
    /// How long the client waits for one response, if its profile says.
    pub fn request_timeout_ns(&self) -> Option<u64> {
        self.profile
            .get("request_timeout_ms")
            .and_then(serde_json::Value::as_u64)
            .map(|ms| ms.saturating_mul(1_000_000))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What one client process did, counted by the client itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientCounters {
    /// Record batches sent (first attempts) and the records in them.
    pub batches: u64,
    pub records: u64,
    pub max_records_per_batch: u64,
    /// Produce requests sent (every attempt), the most partitions and topics one carried, and the
    /// most outstanding on one connection at once.
    pub requests: u64,
    pub max_partitions_per_request: u64,
    pub max_topics_per_request: u64,
    pub max_requests_in_flight: u64,
    /// Batches sent again after a failed attempt.
    pub retried_batches: u64,
    /// Idempotent producer epoch bumps (KIP-360).
    pub epoch_bumps: u64,
    /// Fetch requests, those that started inside a record batch, those for several partitions.
    pub fetches: u64,
    pub fetches_inside_batch: u64,
    pub multi_partition_fetches: u64,
    /// Offset commits, and those whose offset is inside a record batch.
    pub commits: u64,
    pub commits_inside_batch: u64,
    /// Seeks back to an offset read before; restarts from the committed offsets.
    pub seeks_back: u64,
    pub restarts: u64,
}

impl ClientCounters {
    /// Records per batch on average (0 without batches).
    pub fn mean_records_per_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }
}

/// `f = violation`: a reply a client judged contrary to the protocol. Recorded as an `ok` op of
/// the client's process, right after it saw the reply. It stands alone: it has no invoke and
/// completes nothing, so it may sit between the invoke and the completion of the operation the
/// reply belonged to (named by `op`). The client still treats the reply as a real client would;
/// this fact only lets a checker judge it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationValue {
    /// What was wrong (see [`ViolationKind`]).
    pub kind: ViolationKind,
    /// The broker that sent the reply (`broker-0`, or host:port in certification).
    pub broker: String,
    /// The API name as kafka-protocol's ApiKey Debug prints it (`Produce`, `Fetch`,
    /// `ListOffsets`, ...) and the request version.
    pub api: String,
    pub version: i16,
    /// The partition concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<TopicPartition>,
    /// The index of the invoke of the history operation the reply belonged to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<u64>,
    /// One sentence, with the numbers: "base offset -1 on a successful produce".
    pub detail: String,
}

/// What a [`ViolationValue`] says was wrong with a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// A produce success without a valid (>= 0) base offset.
    NoBaseOffset,
    /// The response lacks a partition (or topic) the request asked for.
    MissingPartition,
    /// The response names a partition the request did not ask for.
    UnrequestedPartition,
    /// An error code this API/version cannot return.
    UnexpectedErrorCode,
    /// The correlation id does not match the request.
    CorrelationMismatch,
    /// A fetch returned records outside the requested range other than at a batch boundary.
    RecordsOutOfRange,
    /// A batch CRC or length is wrong.
    CorruptBatch,
    /// The high watermark is below the last stable offset.
    HwmBelowLso,
    /// The high watermark is below the log start offset.
    HwmBelowLogStart,
    /// Anything else undecodable or contrary to the protocol.
    Malformed,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 10] = [
        ViolationKind::NoBaseOffset,
        ViolationKind::MissingPartition,
        ViolationKind::UnrequestedPartition,
        ViolationKind::UnexpectedErrorCode,
        ViolationKind::CorrelationMismatch,
        ViolationKind::RecordsOutOfRange,
        ViolationKind::CorruptBatch,
        ViolationKind::HwmBelowLso,
        ViolationKind::HwmBelowLogStart,
        ViolationKind::Malformed,
    ];

    /// The name as it is written in a history.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::NoBaseOffset => "no-base-offset",
            ViolationKind::MissingPartition => "missing-partition",
            ViolationKind::UnrequestedPartition => "unrequested-partition",
            ViolationKind::UnexpectedErrorCode => "unexpected-error-code",
            ViolationKind::CorrelationMismatch => "correlation-mismatch",
            ViolationKind::RecordsOutOfRange => "records-out-of-range",
            ViolationKind::CorruptBatch => "corrupt-batch",
            ViolationKind::HwmBelowLso => "hwm-below-lso",
            ViolationKind::HwmBelowLogStart => "hwm-below-log-start",
            ViolationKind::Malformed => "malformed",
        }
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the client will end a transaction (the seed decides): EndTxn with commit or abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnEnd {
    Commit,
    Abort,
}

/// One operation inside a transaction, tagged by `f` like an op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum MicroOp {
    /// A record produced in the transaction; on an `ok` completion it carries the offset the
    /// broker acknowledged.
    Send(SendValue),
    /// A poll made inside the transaction (its records, hwms, hidden ranges, LSOs).
    Poll(PollValue),
}

/// `f = txn`: one Kafka transaction of a transactional producer. The invoke lists what the
/// client will do; the completion repeats it with outcomes (sends' offsets, polls' records).
///
/// The completion says what became of it: `ok` = EndTxn with `end` succeeded (committed if
/// `end` is commit, aborted if abort); `fail` = definitely not committed, whatever `end` said;
/// `info` = unknown: committed or aborted, but all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnValue {
    pub transactional_id: String,
    pub end: TxnEnd,
    /// In the order the client did them.
    #[serde(default)]
    pub ops: Vec<MicroOp>,
    /// Consume-transform-produce: the group whose offsets the transaction committed
    /// (TxnOffsetCommit), and those offsets (the next offset to consume, as Kafka commits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<PartitionOffset>,
    /// On a completion: when EndTxn was sent (the op's `time_ns` clock); absent when it never
    /// was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_sent_ns: Option<u64>,
}

impl TxnValue {
    pub fn new(transactional_id: impl Into<String>, end: TxnEnd) -> Self {
        TxnValue {
            transactional_id: transactional_id.into(),
            end,
            ops: Vec::new(),
            group: None,
            offsets: Vec::new(),
            end_sent_ns: None,
        }
    }

    pub fn send(mut self, s: SendValue) -> Self {
        self.ops.push(MicroOp::Send(s));
        self
    }

    pub fn poll(mut self, p: PollValue) -> Self {
        self.ops.push(MicroOp::Poll(p));
        self
    }

    /// The sends, in order.
    pub fn sends(&self) -> impl Iterator<Item = &SendValue> {
        self.ops.iter().filter_map(|m| match m {
            MicroOp::Send(s) => Some(s),
            MicroOp::Poll(_) => None,
        })
    }

    /// The polls, in order.
    pub fn polls(&self) -> impl Iterator<Item = &PollValue> {
        self.ops.iter().filter_map(|m| match m {
            MicroOp::Poll(p) => Some(p),
            MicroOp::Send(_) => None,
        })
    }
}

/// An op's value; the variant determines `f`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Send(SendValue),
    Poll(PollValue),
    Assign(AssignValue),
    Seek(SeekValue),
    ListOffsets(ListOffsetsValue),
    FinalRead(FinalReadValue),
    Commit(CommitValue),
    Fault(FaultValue),
    Client(ClientValue),
    Violation(ViolationValue),
    Invariant(InvariantValue),
    Txn(TxnValue),
    DeleteRecords(DeleteRecordsValue),
    Topic(TopicValue),
}

impl Value {
    pub fn f(&self) -> F {
        match self {
            Value::Send(_) => F::Send,
            Value::Poll(_) => F::Poll,
            Value::Assign(_) => F::Assign,
            Value::Seek(_) => F::Seek,
            Value::ListOffsets(_) => F::ListOffsets,
            Value::FinalRead(_) => F::FinalRead,
            Value::Commit(_) => F::Commit,
            Value::Fault(_) => F::Fault,
            Value::Client(_) => F::Client,
            Value::Violation(_) => F::Violation,
            Value::Invariant(_) => F::Invariant,
            Value::Txn(_) => F::Txn,
            Value::DeleteRecords(_) => F::DeleteRecords,
            Value::Topic(_) => F::Topic,
        }
    }

    /// Parses a JSON value as the value of an op with function `f`. `null` reads as `{}`, so
    /// invokes of polls, assigns and the like may omit their value.
    pub fn from_json(f: F, value: serde_json::Value) -> Result<Value, serde_json::Error> {
        use serde_json::from_value as de;
        let value = match value {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            v => v,
        };
        Ok(match f {
            F::Send => Value::Send(de(value)?),
            F::Poll => Value::Poll(de(value)?),
            F::Assign => Value::Assign(de(value)?),
            F::Seek => Value::Seek(de(value)?),
            F::ListOffsets => Value::ListOffsets(de(value)?),
            F::FinalRead => Value::FinalRead(de(value)?),
            F::Commit => Value::Commit(de(value)?),
            F::Fault => Value::Fault(de(value)?),
            F::Client => Value::Client(de(value)?),
            F::Violation => Value::Violation(de(value)?),
            F::Invariant => Value::Invariant(de(value)?),
            F::Txn => Value::Txn(de(value)?),
            F::DeleteRecords => Value::DeleteRecords(de(value)?),
            F::Topic => Value::Topic(de(value)?),
        })
    }
}

macro_rules! value_from {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for Value {
            fn from(v: $ty) -> Value {
                Value::$variant(v)
            }
        })*
    };
}
value_from!(
    Send(SendValue),
    Poll(PollValue),
    Assign(AssignValue),
    Seek(SeekValue),
    ListOffsets(ListOffsetsValue),
    FinalRead(FinalReadValue),
    Commit(CommitValue),
    Fault(FaultValue),
    Client(ClientValue),
    Violation(ViolationValue),
    Invariant(InvariantValue),
    Txn(TxnValue),
    DeleteRecords(DeleteRecordsValue),
    Topic(TopicValue)
);

impl From<PartitionOffset> for Value {
    fn from(p: PartitionOffset) -> Value {
        Value::Seek(p.into())
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawOp")]
pub struct Op {
    /// Position in the history; strictly increasing. Findings refer to ops by it.
    pub index: u64,
    pub kind: OpKind,
    /// Client process (or nemesis id for faults).
    pub process: u64,
    /// On a completion: the index of the invoke it completes. A process may have several
    /// operations outstanding (a producer's records in flight); a completion without it completes
    /// its process's latest outstanding invoke, and is then the only one outstanding.
    pub invoke: Option<u64>,
    /// Simulated (or wall) time in nanoseconds since the start of the run.
    pub time_ns: u64,
    pub value: Value,
    /// Optional error text on `fail`/`info` completions.
    pub error: Option<String>,
}

impl Op {
    pub fn f(&self) -> F {
        self.value.f()
    }
}

/// The wire form: `f` is a plain field and `value` is parsed according to it.
#[derive(Deserialize)]
struct RawOp {
    index: u64,
    kind: OpKind,
    process: u64,
    #[serde(default)]
    invoke: Option<u64>,
    time_ns: u64,
    f: F,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    error: Option<String>,
}

impl TryFrom<RawOp> for Op {
    type Error = String;

    fn try_from(raw: RawOp) -> Result<Op, String> {
        let value = Value::from_json(raw.f, raw.value)
            .map_err(|e| format!("invalid value for f={}: {e}", raw.f.as_str()))?;
        Ok(Op {
            index: raw.index,
            kind: raw.kind,
            process: raw.process,
            invoke: raw.invoke,
            time_ns: raw.time_ns,
            value,
            error: raw.error,
        })
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Op", 8)?;
        st.serialize_field("index", &self.index)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("process", &self.process)?;
        match self.invoke {
            Some(i) => st.serialize_field("invoke", &i)?,
            None => st.skip_field("invoke")?,
        }
        st.serialize_field("time_ns", &self.time_ns)?;
        st.serialize_field("f", &self.f())?;
        st.serialize_field("value", &self.value)?;
        match &self.error {
            Some(e) => st.serialize_field("error", e)?,
            None => st.skip_field("error")?,
        }
        st.end()
    }
}

/// Reading, writing or validating a history went wrong.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {source}")]
    Parse {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: read failed: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("op {index}: {message}")]
    Invalid { index: u64, message: String },
}

/// An invoke and its completion. `completion` is `None` when the history ended (or the process
/// moved on) without one: treat that as `info`. An event recorded without an invoke (e.g. a
/// nemesis `info` event) pairs with itself.
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a> {
    pub invoke: &'a Op,
    pub completion: Option<&'a Op>,
}

impl<'a> Pair<'a> {
    /// `Ok`, `Fail` or `Info`; a missing completion counts as `Info`.
    pub fn outcome(&self) -> OpKind {
        match self.completion {
            Some(c) if c.kind != OpKind::Invoke => c.kind,
            _ => OpKind::Info,
        }
    }

    /// The completion if there is one, else the invoke.
    pub fn last(&self) -> &'a Op {
        self.completion.unwrap_or(self.invoke)
    }
}

/// A whole history, in recorded order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new(ops: Vec<Op>) -> Self {
        History { ops }
    }

    /// Reads JSON lines; blank lines are skipped. Errors name the 1-based line. (Each line is
    /// read in place and its value straight into its type: see `jsonl.rs`.)
    pub fn from_jsonl<R: BufRead>(reader: R) -> Result<History, HistoryError> {
        crate::jsonl::read(reader)
    }

    /// Writes one JSON object per line.
    pub fn to_jsonl<W: Write>(&self, mut writer: W) -> Result<(), HistoryError> {
        for op in &self.ops {
            serde_json::to_writer(&mut writer, op)
                .map_err(|e| HistoryError::Write(std::io::Error::other(e)))?;
            writer.write_all(b"\n").map_err(HistoryError::Write)?;
        }
        writer.flush().map_err(HistoryError::Write)
    }

    /// Pairs every invoke with its completion, in invoke order. Lenient: see [`Pair`]. A
    /// violation fact pairs with itself and leaves its process's outstanding invokes alone.
    pub fn pairs(&self) -> Vec<Pair<'_>> {
        // At most one pair per op: no regrowing (pages never written are never touched).
        let mut pairs: Vec<Pair<'_>> = Vec::with_capacity(self.ops.len());
        let mut open = Outstanding::default();
        for op in &self.ops {
            if op.f() == F::Violation {
                // A standalone fact: it completes nothing, even amid outstanding operations.
                pairs.push(Pair {
                    invoke: op,
                    completion: Some(op),
                });
                continue;
            }
            if op.kind == OpKind::Invoke {
                open.add(op.process, op.index, pairs.len());
                pairs.push(Pair {
                    invoke: op,
                    completion: None,
                });
                continue;
            }
            match open.take(op) {
                Some(i) if pairs[i].invoke.f() == op.f() => pairs[i].completion = Some(op),
                _ => pairs.push(Pair {
                    invoke: op,
                    completion: Some(op),
                }),
            }
        }
        pairs
    }

    /// Checks the structure: strictly increasing indices; completions matching an outstanding
    /// invoke of the same process and `f` (the one named by `invoke`, else the process's only
    /// outstanding one; fault and invariant events may stand alone); violations standing alone
    /// as `ok` facts that complete nothing; every `ok` send, and every send of an `ok`
    /// committed txn, carrying an offset.
    pub fn validate(&self) -> Result<(), HistoryError> {
        let invalid = |op: &Op, message: String| HistoryError::Invalid {
            index: op.index,
            message,
        };
        let mut open = Outstanding::default();
        let mut f_of: BTreeMap<u64, F> = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for op in &self.ops {
            if prev.is_some_and(|p| op.index <= p) {
                return Err(invalid(op, "index does not increase".into()));
            }
            prev = Some(op.index);
            if op.f() == F::Violation {
                if op.kind != OpKind::Ok || op.invoke.is_some() {
                    return Err(invalid(
                        op,
                        "a violation is a standalone ok fact (no invoke, completes nothing)".into(),
                    ));
                }
                continue;
            }
            if op.kind == OpKind::Invoke {
                open.add(op.process, op.index, 0);
                f_of.insert(op.index, op.f());
                continue;
            }
            if op.invoke.is_none() && open.count(op.process) > 1 {
                return Err(invalid(
                    op,
                    format!(
                        "completion without `invoke` while process {} has {} operations outstanding",
                        op.process,
                        open.count(op.process)
                    ),
                ));
            }
            let invoked = open.take_invoke(op);
            match invoked.and_then(|i| f_of.remove(&i)) {
                Some(f) if f == op.f() => {}
                Some(f) => {
                    return Err(invalid(
                        op,
                        format!(
                            "{} completes an outstanding {}",
                            op.f().as_str(),
                            f.as_str()
                        ),
                    ))
                }
                None if matches!(op.f(), F::Fault | F::Invariant | F::Topic)
                    && op.invoke.is_none() => {}
                None => match op.invoke {
                    Some(i) => {
                        return Err(invalid(
                            op,
                            format!(
                            "completes op {i}, which is not an outstanding invoke of process {}",
                            op.process
                        ),
                        ))
                    }
                    None => return Err(invalid(op, "completion without an invoke".into())),
                },
            }
            if let (OpKind::Ok, Value::Send(s)) = (op.kind, &op.value) {
                if s.offset.is_none() {
                    return Err(invalid(op, "ok send without an offset".into()));
                }
            }
            if let (OpKind::Ok, Value::Txn(t)) = (op.kind, &op.value) {
                if t.end == TxnEnd::Commit && t.sends().any(|s| s.offset.is_none()) {
                    return Err(invalid(
                        op,
                        "ok committed txn with a send without an offset".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Outstanding invokes per process, for pairing: (invoke index, slot) in invoke order. (A
/// pipelining producer has many, completing mostly oldest first: a queue, so that taking the
/// oldest moves none of the others. Looked up only, never iterated.)
#[derive(Default)]
struct Outstanding {
    by_process: crate::checkers::FastMap<u64, VecDeque<(u64, usize)>>,
}

impl Outstanding {
    fn add(&mut self, process: u64, index: u64, slot: usize) {
        self.by_process
            .entry(process)
            .or_default()
            .push_back((index, slot));
    }

    fn count(&self, process: u64) -> usize {
        self.by_process.get(&process).map_or(0, VecDeque::len)
    }

    /// Removes the invoke a completion completes: the one it names, else the process's latest
    /// (an earlier one without a completion was abandoned). Returns its (index, slot).
    fn remove(&mut self, op: &Op) -> Option<(u64, usize)> {
        let list = self.by_process.get_mut(&op.process)?;
        let at = match op.invoke {
            // Completions come soon after their invokes: search from the newest.
            Some(i) => list.iter().rposition(|&(index, _)| index == i)?,
            None => list.len().checked_sub(1)?,
        };
        let found = list.remove(at)?;
        if op.invoke.is_none() {
            // Without names, the earlier invokes were abandoned.
            list.clear();
        }
        Some(found)
    }

    fn take(&mut self, op: &Op) -> Option<usize> {
        self.remove(op).map(|(_, slot)| slot)
    }

    fn take_invoke(&mut self, op: &Op) -> Option<u64> {
        self.remove(op).map(|(index, _)| index)
    }
}

/// Builds histories in code (tests, generators, workloads): assigns indices and times.
#[derive(Debug, Default)]
pub struct HistoryBuilder {
    ops: Vec<Op>,
    now_ns: u64,
}

impl HistoryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The time the next op will carry.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Moves the clock forward; ops recorded afterwards carry the new time.
    pub fn advance(&mut self, ns: u64) -> &mut Self {
        self.now_ns += ns;
        self
    }

    /// Appends an op and returns its index.
    pub fn push(&mut self, kind: OpKind, process: u64, value: impl Into<Value>) -> u64 {
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            kind,
            process,
            invoke: None,
            time_ns: self.now_ns,
            value: value.into(),
            error: None,
        });
        index
    }

    pub fn invoke(&mut self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Invoke, process, value)
    }

    /// Completes the invoke at index `invoke` (of a process with several outstanding) with `kind`;
    /// returns the completion's index.
    pub fn complete(
        &mut self,
        process: u64,
        invoke: u64,
        kind: OpKind,
        value: impl Into<Value>,
    ) -> u64 {
        let index = self.push(kind, process, value);
        self.ops[index as usize].invoke = Some(invoke);
        index
    }

    pub fn ok(&mut self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Ok, process, value)
    }

    pub fn fail(&mut self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Fail, process, value)
    }

    pub fn info(&mut self, process: u64, value: impl Into<Value>) -> u64 {
        self.push(OpKind::Info, process, value)
    }

    /// Invoke then complete with `kind`; returns the completion's index.
    pub fn call(
        &mut self,
        process: u64,
        invoke: impl Into<Value>,
        kind: OpKind,
        completion: impl Into<Value>,
    ) -> u64 {
        self.invoke(process, invoke);
        self.push(kind, process, completion)
    }

    pub fn build(self) -> History {
        History { ops: self.ops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut b = HistoryBuilder::new();
        let s = SendValue::new("t", 0, "a");
        b.call(1, s.clone(), OpKind::Ok, s.acked(0));
        b.advance(1_000);
        b.call(
            2,
            PollValue::default(),
            OpKind::Ok,
            PollValue::default().record("t", 0, 0, "a").hwm("t", 0, 1),
        );
        b.info(9, FaultValue::new("partition").with("zone", "a"));
        b.call(
            3,
            FinalReadValue::new("t", 0),
            OpKind::Ok,
            FinalReadValue::new("t", 0).contiguous(&["a"]),
        );
        b.build()
    }

    #[test]
    fn jsonl_round_trip() {
        let h = sample();
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.lines().count(), h.ops.len());
        assert!(text.starts_with(
            r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"send","value":{"topic":"t","partition":0,"value":"a"}}"#
        ));
        let back = History::from_jsonl(&buf[..]).unwrap();
        assert_eq!(back, h);
        assert!(h.validate().is_ok());
    }

    #[test]
    fn invoke_value_may_be_omitted() {
        let line = r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#;
        let h = History::from_jsonl(line.as_bytes()).unwrap();
        assert_eq!(h.ops[0].value, Value::Poll(PollValue::default()));
    }

    #[test]
    fn malformed_lines_report_line_numbers() {
        let good = r#"{"index":0,"kind":"invoke","process":1,"time_ns":0,"f":"poll"}"#;
        let cases = [
            "not json",
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"send","value":{"topic":"t"}}"#,
            r#"{"index":1,"kind":"bogus","process":1,"time_ns":0,"f":"poll"}"#,
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"teleport"}"#,
            r#"{"index":1,"kind":"ok","process":-1,"time_ns":0,"f":"poll"}"#,
        ];
        for bad in cases {
            let text = format!("{good}\n\n{bad}\n");
            match History::from_jsonl(text.as_bytes()) {
                Err(HistoryError::Parse { line, .. }) => assert_eq!(line, 3, "{bad}"),
                other => panic!("expected a parse error for {bad}, got {other:?}"),
            }
        }
        let err = History::from_jsonl("x".as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 1: "), "{err}");
    }

    #[test]
    fn pairs_match_invokes_with_completions() {
        let h = sample();
        let pairs = h.pairs();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].invoke.index, 0);
        assert_eq!(pairs[0].completion.map(|c| c.index), Some(1));
        assert_eq!(pairs[0].outcome(), OpKind::Ok);
        // The standalone fault event pairs with itself.
        assert_eq!(pairs[2].invoke.index, 4);
        assert_eq!(pairs[2].last().index, 4);
        assert_eq!(pairs[2].outcome(), OpKind::Info);
    }

    #[test]
    fn pairs_leave_abandoned_invokes_open() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, SendValue::new("t", 0, "a"));
        b.invoke(1, SendValue::new("t", 0, "b"));
        b.ok(1, SendValue::new("t", 0, "b").acked(0));
        let h = b.build();
        let pairs = h.pairs();
        assert_eq!(pairs.len(), 2);
        assert!(pairs[0].completion.is_none());
        assert_eq!(pairs[0].outcome(), OpKind::Info);
        assert_eq!(pairs[1].outcome(), OpKind::Ok);
        // Which of the two the completion completes is ambiguous.
        assert!(matches!(
            h.validate(),
            Err(HistoryError::Invalid { index: 2, .. })
        ));
    }

    #[test]
    fn completions_naming_their_invoke_pair_out_of_order() {
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        let c = b.invoke(1, SendValue::new("t", 1, "c"));
        let x = b.invoke(1, SendValue::new("t", 0, "x"));
        b.complete(1, c, OpKind::Ok, SendValue::new("t", 1, "c").acked(0));
        b.complete(1, a, OpKind::Info, SendValue::new("t", 0, "a"));
        b.complete(1, x, OpKind::Ok, SendValue::new("t", 0, "x").acked(4));
        let h = b.build();
        h.validate().unwrap();
        let pairs = h.pairs();
        assert_eq!(pairs.len(), 3);
        let got: Vec<(u64, Option<u64>, OpKind)> = pairs
            .iter()
            .map(|p| (p.invoke.index, p.completion.map(|c| c.index), p.outcome()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Some(4), OpKind::Info),
                (1, Some(3), OpKind::Ok),
                (2, Some(5), OpKind::Ok)
            ]
        );
        // The wire form carries the link and reads back the same.
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.lines().nth(3).unwrap().contains(r#""invoke":1"#),
            "{text}"
        );
        assert_eq!(History::from_jsonl(&buf[..]).unwrap(), h);
    }

    #[test]
    fn validate_rejects_completions_of_what_is_not_outstanding() {
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        b.complete(1, a, OpKind::Ok, SendValue::new("t", 0, "a").acked(0));
        b.complete(1, a, OpKind::Ok, SendValue::new("t", 0, "a").acked(0));
        let err = b.build().validate().unwrap_err().to_string();
        assert!(err.contains("not an outstanding invoke"), "{err}");
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        b.complete(2, a, OpKind::Ok, SendValue::new("t", 0, "a").acked(0));
        assert!(b.build().validate().is_err(), "another process's invoke");
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        b.complete(1, a, OpKind::Ok, PollValue::default());
        let err = b.build().validate().unwrap_err().to_string();
        assert!(err.contains("poll completes an outstanding send"), "{err}");
    }

    fn violation(kind: ViolationKind, op: Option<u64>) -> ViolationValue {
        ViolationValue {
            kind,
            broker: "broker-0".into(),
            api: "Produce".into(),
            version: 9,
            partition: Some(TopicPartition::new("t", 0)),
            op,
            detail: "base offset -1 on a successful produce".into(),
        }
    }

    #[test]
    fn a_violation_amid_outstanding_sends_stands_alone_and_round_trips() {
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        let c = b.invoke(1, SendValue::new("t", 0, "c"));
        let v = b.ok(1, violation(ViolationKind::NoBaseOffset, Some(a)));
        b.complete(1, a, OpKind::Info, SendValue::new("t", 0, "a"));
        b.complete(1, c, OpKind::Ok, SendValue::new("t", 0, "c").acked(0));
        let h = b.build();
        h.validate().unwrap();
        let pairs = h.pairs();
        let got: Vec<(u64, Option<u64>)> = pairs
            .iter()
            .map(|p| (p.invoke.index, p.completion.map(|c| c.index)))
            .collect();
        assert_eq!(got, vec![(a, Some(3)), (c, Some(4)), (v, Some(v))]);
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text.lines().nth(2).unwrap(),
            r#"{"index":2,"kind":"ok","process":1,"time_ns":0,"f":"violation","value":{"kind":"no-base-offset","broker":"broker-0","api":"Produce","version":9,"partition":{"topic":"t","partition":0},"op":0,"detail":"base offset -1 on a successful produce"}}"#
        );
        assert_eq!(History::from_jsonl(&buf[..]).unwrap(), h);
    }

    #[test]
    fn every_violation_kind_reads_by_its_kebab_name_and_optional_fields_may_be_absent() {
        for kind in ViolationKind::ALL {
            let line = format!(
                r#"{{"index":0,"kind":"ok","process":3,"time_ns":5,"f":"violation","value":{{"kind":"{kind}","broker":"b:9092","api":"Fetch","version":12,"detail":"x"}}}}"#
            );
            let h = History::from_jsonl(line.as_bytes()).unwrap();
            h.validate().unwrap();
            let Value::Violation(v) = &h.ops[0].value else {
                panic!("{line}")
            };
            assert_eq!((v.kind, v.partition.as_ref(), v.op), (kind, None, None));
            let mut buf = Vec::new();
            h.to_jsonl(&mut buf).unwrap();
            assert_eq!(String::from_utf8(buf).unwrap().trim_end(), line);
        }
        let bad = r#"{"index":0,"kind":"ok","process":3,"time_ns":5,"f":"violation","value":{"kind":"rude","broker":"b","api":"Fetch","version":1,"detail":"x"}}"#;
        assert!(History::from_jsonl(bad.as_bytes()).is_err());
    }

    #[test]
    fn validate_rejects_a_violation_that_is_not_a_standalone_ok() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, violation(ViolationKind::Malformed, None));
        let err = b.build().validate().unwrap_err().to_string();
        assert!(err.contains("standalone ok fact"), "{err}");
        let mut b = HistoryBuilder::new();
        let a = b.invoke(1, SendValue::new("t", 0, "a"));
        b.complete(1, a, OpKind::Ok, violation(ViolationKind::Malformed, None));
        assert!(b.build().validate().is_err());
    }

    #[test]
    fn a_txn_op_round_trips_and_must_carry_offsets_when_committed() {
        let inv = TxnValue::new("tx-1", TxnEnd::Commit)
            .poll(PollValue::default())
            .send(SendValue::new("t", 0, "a"));
        let mut done = TxnValue::new("tx-1", TxnEnd::Commit)
            .poll(
                PollValue::default()
                    .record("in", 0, 3, "i3")
                    .hidden("in", 0, 4, 5, Hidden::Control)
                    .lso("in", 0, 5),
            )
            .send(SendValue::new("t", 0, "a").acked(7));
        done.group = Some("g".into());
        done.end_sent_ns = Some(5);
        let mut b = HistoryBuilder::new();
        b.call(1, inv.clone(), OpKind::Ok, done.clone());
        let h = b.build();
        h.validate().unwrap();
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            r#"{"index":1,"kind":"ok","process":1,"time_ns":0,"f":"txn","value":{"transactional_id":"tx-1","end":"commit","ops":[{"f":"poll","records":[{"topic":"in","partition":0,"offset":3,"value":"i3"}],"hidden":[{"topic":"in","partition":0,"from":4,"to":5,"why":"control"}],"last_stable_offsets":[{"topic":"in","partition":0,"lso":5}]},{"f":"send","topic":"t","partition":0,"value":"a","offset":7}],"group":"g","end_sent_ns":5}}"#
        );
        assert_eq!(History::from_jsonl(&buf[..]).unwrap(), h);
        // Committed without an offset for its send: invalid; aborted: fine.
        let mut b = HistoryBuilder::new();
        b.call(1, inv.clone(), OpKind::Ok, inv.clone());
        let err = b.build().validate().unwrap_err().to_string();
        assert!(err.contains("without an offset"), "{err}");
        let mut aborted = inv.clone();
        aborted.end = TxnEnd::Abort;
        let mut b = HistoryBuilder::new();
        b.call(1, aborted.clone(), OpKind::Ok, aborted);
        b.build().validate().unwrap();
    }

    #[test]
    fn validate_rejects_orphan_completion_and_ok_send_without_offset() {
        let mut b = HistoryBuilder::new();
        b.ok(1, PollValue::default());
        assert!(b.build().validate().is_err());
        let mut b = HistoryBuilder::new();
        let s = SendValue::new("t", 0, "a");
        b.call(1, s.clone(), OpKind::Ok, s);
        let err = b.build().validate().unwrap_err().to_string();
        assert_eq!(err, "op 1: ok send without an offset");
    }
}
