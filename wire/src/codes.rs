//! Which error codes an API may answer with: a small table, from the error lists in Kafka's
//! `ProduceResponse`, `FetchResponse` and `ListOffsetsResponse` (clients/src/main/java/.../requests)
//! and the codes the Java client's handlers for those responses expect, plus the few any request
//! may get (an unknown server error, an unsupported version, an invalid request).
//!
//! Only Produce, Fetch and ListOffsets are judged; every other API may return any code here (no
//! table is better than a guessed one). A code outside the table is still an error to the client,
//! handled as its code says; [`may_return`] only lets the client record that the broker answered
//! something the protocol does not allow (a produce answered OFFSET_OUT_OF_RANGE, a fetch
//! answered NOT_ENOUGH_REPLICAS), which is a `protocol-violation` fact, not a retry decision.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError::{self, *};

/// Codes any request may get.
const ANY: &[ResponseError] = &[UnknownServerError, UnsupportedVersion, InvalidRequest];

/// (code, first version that may return it).
const PRODUCE: &[(ResponseError, i16)] = &[
    (CorruptMessage, 0),
    (UnknownTopicOrPartition, 0),
    (NotLeaderOrFollower, 0),
    (LeaderNotAvailable, 0),
    (RequestTimedOut, 0),
    (MessageTooLarge, 0),
    (InvalidTopicException, 0),
    (RecordListTooLarge, 0),
    (NotEnoughReplicas, 0),
    (NotEnoughReplicasAfterAppend, 0),
    (InvalidRequiredAcks, 0),
    (TopicAuthorizationFailed, 0),
    (ClusterAuthorizationFailed, 0),
    (InvalidTimestamp, 0),
    (UnsupportedForMessageFormat, 0),
    (KafkaStorageError, 0),
    (UnsupportedCompressionType, 0),
    (InvalidRecord, 0),
    // Idempotence and transactions: record batch v2, Produce v3+.
    (InvalidProducerEpoch, 3),
    (ProducerFenced, 3),
    (TransactionalIdAuthorizationFailed, 3),
    (DuplicateSequenceNumber, 3),
    (OutOfOrderSequenceNumber, 3),
    (UnknownProducerId, 3),
    (InvalidProducerIdMapping, 3),
    (InvalidTxnState, 3),
    (TransactionAbortable, 3),
    // Topic ids in Produce (KIP-516): v13+.
    (UnknownTopicId, 13),
];

const FETCH: &[(ResponseError, i16)] = &[
    (OffsetOutOfRange, 0),
    (UnknownTopicOrPartition, 0),
    (NotLeaderOrFollower, 0),
    (LeaderNotAvailable, 0),
    (ReplicaNotAvailable, 0),
    (TopicAuthorizationFailed, 0),
    (ClusterAuthorizationFailed, 0),
    (KafkaStorageError, 0),
    (CorruptMessage, 0),
    (UnsupportedCompressionType, 0),
    (UnsupportedForMessageFormat, 0),
    // Fetch sessions (KIP-227): v7+.
    (FetchSessionIdNotFound, 7),
    (InvalidFetchSessionEpoch, 7),
    // Leader epochs in Fetch (KIP-320): v9+.
    (FencedLeaderEpoch, 9),
    (UnknownLeaderEpoch, 9),
    (OffsetNotAvailable, 9),
    // Topic ids in Fetch (KIP-516): v13+.
    (UnknownTopicId, 13),
    (InconsistentTopicId, 13),
    (FetchSessionTopicIdError, 13),
];

const LIST_OFFSETS: &[(ResponseError, i16)] = &[
    (UnknownTopicOrPartition, 0),
    (NotLeaderOrFollower, 0),
    (LeaderNotAvailable, 0),
    (ReplicaNotAvailable, 0),
    (TopicAuthorizationFailed, 0),
    (KafkaStorageError, 0),
    (UnsupportedForMessageFormat, 0),
    // Leader epochs in ListOffsets (KIP-320): v4+; OFFSET_NOT_AVAILABLE (KIP-207): v5+.
    (FencedLeaderEpoch, 4),
    (UnknownLeaderEpoch, 4),
    (OffsetNotAvailable, 5),
];

/// False when `api` at `version` cannot answer `code` (0, no error, it always may). True for
/// APIs this module has no table for.
pub fn may_return(api: ApiKey, version: i16, code: i16) -> bool {
    let err = match crate::error_of(code) {
        // No error, or a code newer than this crate: nothing to judge it by.
        None | Some(Unknown(_)) => return true,
        Some(err) => err,
    };
    if ANY.contains(&err) {
        return true;
    }
    let table = match api {
        ApiKey::Produce => PRODUCE,
        ApiKey::Fetch => FETCH,
        ApiKey::ListOffsets => LIST_OFFSETS,
        _ => return true,
    };
    table.iter().any(|&(e, since)| e == err && version >= since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_may_return_its_own_codes_and_not_anothers() {
        assert!(may_return(ApiKey::Produce, 9, 0));
        assert!(may_return(ApiKey::Produce, 9, NotLeaderOrFollower.code()));
        assert!(may_return(ApiKey::Produce, 9, UnknownServerError.code()));
        assert!(!may_return(ApiKey::Produce, 9, OffsetOutOfRange.code()));
        assert!(may_return(ApiKey::Fetch, 12, OffsetOutOfRange.code()));
        assert!(!may_return(ApiKey::Fetch, 12, NotEnoughReplicas.code()));
        assert!(!may_return(
            ApiKey::ListOffsets,
            7,
            OutOfOrderSequenceNumber.code()
        ));
        // Other APIs are not judged.
        assert!(may_return(ApiKey::Metadata, 12, OffsetOutOfRange.code()));
    }

    #[test]
    fn codes_introduced_by_a_version_are_unexpected_before_it() {
        assert!(!may_return(ApiKey::Fetch, 8, FencedLeaderEpoch.code()));
        assert!(may_return(ApiKey::Fetch, 9, FencedLeaderEpoch.code()));
        assert!(!may_return(
            ApiKey::Produce,
            2,
            OutOfOrderSequenceNumber.code()
        ));
        assert!(!may_return(ApiKey::Fetch, 12, UnknownTopicId.code()));
    }

    #[test]
    fn a_code_unknown_to_this_crate_is_not_judged() {
        assert!(may_return(ApiKey::Produce, 9, 9999));
    }
}
