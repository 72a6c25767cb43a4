//! Planted bugs: realistic mistakes of a stateless broker, switched on with
//! `--bug NAME` (real and simulated), to prove the checkers catch them.
//! The correct code path is always the default; each bug is one small
//! detour from it, marked `Bug::` where it happens.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Named in kebab case everywhere (`--bug`, scenario files): `Bug::name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Acknowledges a produce even when its commit write failed.
    AckBeforeCommit,
    /// Reserves offsets in one write and writes data in another; when the
    /// data write fails the reserved offsets stay empty (a permanent gap).
    ReserveThenWrite,
    /// Keeps its in-memory view of a partition after ownership moved away
    /// and back: no tail check, and on meeting the other owner's commits it
    /// takes the partition back without reloading the log.
    StaleCacheAfterMove,
    /// On losing the race for a commit slot, overwrites the winner instead of
    /// re-reading the tail: two owners commit without fencing.
    NoFencing,
    /// Does not rebuild idempotent-producer state when opening a partition,
    /// and (to stay available) accepts producers it does not know at any
    /// sequence number.
    LoseProducerState,
    /// Keeps committed group offsets in memory only.
    OffsetsInMemory,
    /// Reports a high watermark one past the last record.
    HwmOffByOne,
    /// Acknowledges a group of batches but writes all but the last one.
    DropBatchTail,
    /// A fetch from inside a record batch starts at the next batch (compares the fetch offset
    /// with the batch's first offset instead of its last).
    MidBatchFetchSkip,
    /// When one partition of a produce request fails, answers every partition with that error,
    /// though the others were written.
    OneErrorFailsAll,
    /// Gives a compressed batch one offset, as if it were one wrapper message (the old message
    /// format's rule), whatever the records inside.
    CompressedBatchAsOne,
    /// Compares an idempotent producer's sequence numbers across an epoch bump: a new epoch's
    /// batch numbered below the last one seen is taken for a retry of it, answered with its
    /// offset and not written.
    EpochBumpIgnored,
    /// Answers some successful produces (those whose base offset is 3 modulo 5) with base offset
    /// -1, though the data is committed at its offsets: only the reply breaks the protocol.
    ProduceOffsetUnknown,
    /// Reports (and serves read_committed consumers up to) a last stable offset one past the
    /// first record of the oldest open transaction.
    LsoOffByOne,
    /// The transaction coordinator writes no marker in the last partition of a transaction
    /// that spans several: that partition's transaction stays open until the producer's next
    /// marker there, which ends both transactions the same way.
    MarkerSkipsPartition,
    /// Takes a producer's first transactional batch in a partition without asking the
    /// coordinator whether its transaction holds the partition (no KIP-890 check): a batch
    /// that arrives after its transaction was aborted opens a transaction nobody will end.
    NoTxnVerification,
    /// A new owner forgets the partition's log start (it keeps the index): the log start goes
    /// back to 0 after every move, and reads below the real one are served what lies past it.
    LogStartForgotten,
    /// Retention compares a commit's newest timestamp with half of `retention.ms`: records go
    /// before their time.
    EarlyRetention,
    /// Deletes the commit objects below the oldest checkpoint kept without checking that they
    /// lie below the log start: records readers still need are gone.
    DeleteUnderReaders,
}

impl Bug {
    pub const ALL: [Bug; 19] = [
        Bug::AckBeforeCommit,
        Bug::ReserveThenWrite,
        Bug::StaleCacheAfterMove,
        Bug::NoFencing,
        Bug::LoseProducerState,
        Bug::OffsetsInMemory,
        Bug::HwmOffByOne,
        Bug::DropBatchTail,
        Bug::MidBatchFetchSkip,
        Bug::OneErrorFailsAll,
        Bug::CompressedBatchAsOne,
        Bug::EpochBumpIgnored,
        Bug::ProduceOffsetUnknown,
        Bug::LsoOffByOne,
        Bug::MarkerSkipsPartition,
        Bug::NoTxnVerification,
        Bug::LogStartForgotten,
        Bug::EarlyRetention,
        Bug::DeleteUnderReaders,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::ReserveThenWrite => "reserve-then-write",
            Bug::StaleCacheAfterMove => "stale-cache-after-move",
            Bug::NoFencing => "no-fencing",
            Bug::LoseProducerState => "lose-producer-state",
            Bug::OffsetsInMemory => "offsets-in-memory",
            Bug::HwmOffByOne => "hwm-off-by-one",
            Bug::DropBatchTail => "drop-batch-tail",
            Bug::MidBatchFetchSkip => "mid-batch-fetch-skip",
            Bug::OneErrorFailsAll => "one-error-fails-all",
            Bug::CompressedBatchAsOne => "compressed-batch-as-one",
            Bug::EpochBumpIgnored => "epoch-bump-ignored",
            Bug::ProduceOffsetUnknown => "produce-offset-unknown",
            Bug::LsoOffByOne => "lso-off-by-one",
            Bug::MarkerSkipsPartition => "marker-skips-partition",
            Bug::NoTxnVerification => "no-txn-verification",
            Bug::LogStartForgotten => "log-start-forgotten",
            Bug::EarlyRetention => "early-retention",
            Bug::DeleteUnderReaders => "delete-under-readers",
        }
    }

    /// One line for `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Bug::AckBeforeCommit => "acknowledges a produce whose commit write failed",
            Bug::ReserveThenWrite => {
                "reserves offsets, then writes data separately: a failed data write leaves a gap"
            }
            Bug::StaleCacheAfterMove => {
                "keeps a stale view of the log after ownership moved away and back"
            }
            Bug::NoFencing => "overwrites a competing commit instead of being fenced",
            Bug::LoseProducerState => "forgets idempotent-producer state when ownership moves",
            Bug::OffsetsInMemory => "keeps committed group offsets only in memory",
            Bug::HwmOffByOne => "reports the high watermark one too high",
            Bug::DropBatchTail => "acknowledges a group commit but drops its last batch",
            Bug::MidBatchFetchSkip => "a fetch from inside a batch skips the rest of that batch",
            Bug::OneErrorFailsAll => {
                "one failed partition fails every partition of a produce request"
            }
            Bug::CompressedBatchAsOne => "gives a compressed batch a single offset",
            Bug::EpochBumpIgnored => {
                "answers an idempotent producer's batches after an epoch bump as old duplicates"
            }
            Bug::ProduceOffsetUnknown => {
                "answers some successful produces with base offset -1 (the data is committed)"
            }
            Bug::LsoOffByOne => {
                "serves read_committed consumers one record into the oldest open transaction"
            }
            Bug::MarkerSkipsPartition => {
                "writes no transaction marker in the last partition of a multi-partition transaction"
            }
            Bug::NoTxnVerification => {
                "lets a late transactional batch open a transaction without asking its coordinator"
            }
            Bug::LogStartForgotten => "a new owner forgets the log start: it goes back to 0",
            Bug::EarlyRetention => "retention removes records at half their retention.ms",
            Bug::DeleteUnderReaders => {
                "deletes commit objects below the oldest checkpoint, though above the log start"
            }
        }
    }

    /// The scenario whose faults expose the bug.
    pub fn scenario(self) -> &'static str {
        match self {
            Bug::AckBeforeCommit | Bug::ReserveThenWrite => "object-store",
            Bug::StaleCacheAfterMove | Bug::NoFencing => "ownership",
            Bug::LoseProducerState => "idempotent",
            Bug::OffsetsInMemory => "groups",
            Bug::HwmOffByOne | Bug::DropBatchTail => "baseline",
            Bug::MidBatchFetchSkip | Bug::CompressedBatchAsOne => "baseline",
            // Owners replaced while requests are in flight: a request that spans an old and a
            // new owner's partitions is the one that gets a partition error.
            Bug::OneErrorFailsAll => "ownership",
            Bug::EpochBumpIgnored => "idempotent",
            // Any produce traffic shows it; only protocol-violation can see it.
            Bug::ProduceOffsetUnknown => "baseline",
            Bug::LsoOffByOne | Bug::MarkerSkipsPartition | Bug::NoTxnVerification => "transactions",
            Bug::LogStartForgotten | Bug::EarlyRetention | Bug::DeleteUnderReaders => "retention",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}' (known: {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_cli_names() {
        for bug in Bug::ALL {
            assert_eq!(serde_json::to_value(bug).unwrap(), bug.name());
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
    }
}
