//! riptide-checker: the history model and the checkers. Pure functions from a recorded history to
//! findings and a report; no async, no I/O beyond the reader/writer you hand in.
//!
//! # Model
//!
//! A [`History`] is a Jepsen-shaped list of [`Op`]s stored as JSON lines. Each operation has an
//! `invoke` and a completion sharing its `process`: `ok` (it happened), `fail` (it definitely did
//! not) or `info` (unknown). A process has at most one outstanding operation. Functions (`f`):
//! `send` (ok carries the acked offset), `poll` (records, high watermarks, fetch offsets),
//! `assign`, `seek`, `list_offsets`, `final_read` (a full read of one partition from offset 0 to
//! its hwm after healing), `commit`, and nemesis `fault` events. Workloads write unique values, so
//! a value identifies a record.
//!
//! # Anomalies
//!
//! - **lost-write**: an acked send is absent although a read reached past its offset.
//! - **duplicate**: one value sits at two positions (tolerable after non-ok retries, by config).
//! - **inconsistent-offsets**: an ack disagrees with another ack or with what reads show there.
//! - **offset-gap**: a final read (or a poll) is not contiguous from 0 to the hwm.
//! - **poll-skip**: a consumer jumps over offsets that exist, with no assign/seek in between.
//! - **nonmonotonic-poll**: a consumer reads backwards, with no assign/seek in between.
//! - **nonmonotonic-send**: a producer's acked offsets on a partition do not increase.
//! - **replay-mismatch**: the same offset read twice returns different values.
//! - **hwm-regression**: a process sees the hwm drop, or the final hwm is below an acked/seen one.
//! - **unseen**: an acked send never read, and no read reached its offset.
//! - **liveness-after-heal**: a written partition has no successful final read.
//!
//! Each checker module has `check(&History) -> Vec<Finding>`; [`check_all`] runs them all once
//! over a shared index and returns a [`Report`].

pub mod checkers;
pub mod history;
pub mod report;

pub use checkers::{check_all, Anomaly, CheckerConfig, Finding};
pub use history::{History, HistoryBuilder, HistoryError, Op, OpKind, Pair, Value, F};
pub use report::{Report, Verdict};
