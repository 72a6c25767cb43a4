//! riptide-checker: the history model and the checkers. Pure functions from a recorded history to
//! findings and a report; no async, no I/O beyond the reader/writer you hand in.
//!
//! # Model
//!
//! A [`History`] is a Jepsen-shaped list of [`Op`]s stored as JSON lines. Each operation has an
//! `invoke` and a completion sharing its `process`: `ok` (it happened), `fail` (it definitely did
//! not) or `info` (unknown). A process may have several operations outstanding (a pipelined
//! producer keeps one `send` per record in flight); a completion then names its invoke. Functions
//! (`f`): `send` (ok carries the acked offset; optional tags: record `batch`, produce `request`,
//! `attempts`), `poll` (records, high watermarks, fetch offsets), `assign`, `seek` (optional
//! reason: `committed` or `back`), `list_offsets`, `final_read` (a full read of one partition
//! from offset 0 to its hwm after healing), `commit`, nemesis `fault` events, and `client` (a
//! process describing itself: role, idempotence, requests in flight, counters), and `violation`
//! (a standalone `ok` fact: a reply the client judged contrary to the protocol). Workloads write
//! unique values, so a value identifies a record. Checkers ignore ops they do not use.
//!
//! # Anomalies
//!
//! - **lost-write**: an acked send is absent although a read reached past its offset.
//! - **duplicate**: one value sits at two positions, by reads or acks (tolerable after non-ok
//!   retries, by config, unless every send of it came from an idempotent producer).
//! - **inconsistent-offsets**: an ack disagrees with another ack or with a read of its offset.
//! - **offset-gap**: a final read (or a poll) is not contiguous from 0 to the hwm.
//! - **poll-skip**: a consumer jumps over offsets that exist from one poll to the next, with no
//!   assign/seek in between.
//! - **int-poll-skip**: one poll jumps over existing offsets between two of its records.
//! - **nonmonotonic-poll**: a consumer reads backwards from one poll to the next, with no
//!   assign/seek in between.
//! - **int-nonmonotonic-poll**: one poll returns a record at or below an earlier one of its own.
//! - **nonmonotonic-send**: a producer's acked offsets on a partition do not increase (except
//!   after retries of a non-idempotent producer with several requests in flight, which Kafka
//!   allows to reorder).
//! - **int-nonmonotonic-send**: the records of one record batch (or the sends of one imported
//!   Jepsen op) are not in order in the log.
//! - **int-send-skip**: other records landed between the records of one record batch.
//! - **replay-mismatch**: the same offset read twice returns different values.
//! - **hwm-regression**: a process sees the hwm drop, or the final hwm is below an acked/seen one.
//! - **unseen**: an acked send never read, and no read reached its offset.
//! - **committed-offset-regression**: a group's committed offset goes backwards, or a member
//!   starts below it (seeks `back` to replay are not starts).
//! - **rebalance-skip**: a member starts beyond every offset the group tried to commit.
//! - **protocol-violation**: a client recorded a reply contrary to the Kafka protocol.
//! - **liveness-after-heal**: a written partition has no successful final read, or a producer
//!   gets no ack after the faults healed (only in histories whose facts say a read-back was
//!   due: final reads, riptide's fault phases or client descriptions; not Jepsen's).
//! - **realtime-lag** (only with `CheckerConfig::max_realtime_lag_ns`): a consumer polling a
//!   partition went longer than the bound without seeing a record known to exist. Without the
//!   bound the worst lag per partition is a figure of the report (Jepsen's `realtime-lag`).
//! - **broken-invariant**: the system broke an invariant it asserts in its own code (an
//!   `invariant` event the simulator records).
//!
//! Transactions (`txn` ops: a transactional producer's sends and polls, ended with commit or
//! abort; `ok` = ended as said, `fail` = not committed, `info` = all or nothing, unknown). Their
//! sends count as acknowledged when committed, as failed when not, as unknown when unknown;
//! offsets that hold no data for a reader (`hidden`: control batches, aborted records) are
//! present, not holes. Only histories with transactions get these:
//!
//! - **aborted-read**: a read_committed reader returned a record of a transaction that did not
//!   commit.
//! - **precommitted-read**: a read_committed poll returned a record before its transaction
//!   sent EndTxn.
//! - **torn-transaction**: a transaction that committed, or may have, is visible in part.
//! - **txn-lost-write**: a committed transaction is missing from the final reads.
//! - **exactly-once**: a consume-transform-produce input with two committed outputs, or none
//!   below its group's committed offset.
//! - **lso-regression**: a later poll saw a lower last stable offset (any history).
//! - **g0**, **g1c** and their **-process** / **-realtime** variants: dependency cycles.
//!
//! Each checker module has `check(&History) -> Vec<Finding>`; [`check_all`] runs them all once
//! over a shared index and returns a [`Report`].

pub mod checkers;
pub mod figures;
pub mod history;
pub mod html;
pub mod jepsen;
mod jsonl;
mod jsonl_fast;
pub mod report;

pub use checkers::realtime_lag::PartitionLag;
pub use checkers::{Anomaly, CheckerConfig, Finding, Severity};
pub use history::{
    History, HistoryBuilder, HistoryError, Op, OpKind, Pair, Value, ViolationKind, ViolationValue,
    F,
};
pub use report::{check_all, Report, Verdict};
