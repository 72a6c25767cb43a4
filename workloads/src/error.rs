//! Client errors, classified by whether the request could have taken effect.
//!
//! A history records `fail` only when the client *knows* the operation did not happen; anything else
//! is `info`. Calling a write `fail` when it may have been applied turns a correct broker into a false
//! "lost write"/"aborted read" finding, so when in doubt an error is indeterminate.

use kafka_protocol::messages::ApiKey;
use riptide_checker::history::ViolationKind;
use riptide_wire::{error_of, ResponseError};
use ResponseError::*;

/// Why a client operation did not return a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with a non-zero error code.
    #[error("{api:?}: broker error {code} ({})", code_name(*code))]
    Broker {
        api: ApiKey,
        code: i16,
        message: Option<String>,
    },
    /// Could not open a connection; nothing was sent.
    #[error("connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The connection failed during a request. `written` = some request bytes had left the client.
    #[error("connection to {addr} failed (request written: {written}): {reason}")]
    Io {
        addr: String,
        reason: String,
        written: bool,
    },
    /// No response within the request timeout. `written` = some request bytes had left the client.
    #[error("request to {addr} timed out (request written: {written})")]
    Timeout { addr: String, written: bool },
    /// The broker's reply could not be parsed (or did not match the request). `kind` says what
    /// the protocol forbids in it, for the client's `violation` fact ([`crate::witness`]); `None`
    /// when riptide cannot read a reply the protocol allows (an old record batch format).
    #[error("malformed response from {addr}: {reason}")]
    Malformed {
        addr: String,
        reason: String,
        kind: Option<ViolationKind>,
    },
    /// The broker does not support any version of an API this client implements; nothing was sent.
    #[error("{api:?} unsupported: {reason}")]
    Unsupported { api: ApiKey, reason: String },
    /// Metadata names no usable leader for the partition; nothing was sent.
    #[error("no leader for {topic}-{partition}")]
    NoLeader { topic: String, partition: i32 },
    /// The caller's request could not be built (e.g. encoding failed); nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A produce was retried after an attempt whose outcome was unknown, and then failed: whatever the
    /// last error says, the write may have happened.
    #[error("after an indeterminate attempt: {last}")]
    AfterIndeterminate { last: Box<ClientError> },
}

impl ClientError {
    /// True when the request certainly did not take effect (Jepsen `fail`); false when it may have
    /// (Jepsen `info`).
    pub fn is_definite(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => !code_is_ambiguous(*code),
            ClientError::Connect { .. }
            | ClientError::Unsupported { .. }
            | ClientError::NoLeader { .. }
            | ClientError::Invalid(_) => true,
            ClientError::Io { written, .. } | ClientError::Timeout { written, .. } => !written,
            ClientError::Malformed { .. } | ClientError::AfterIndeterminate { .. } => false,
        }
    }

    /// True when trying again (possibly after a metadata refresh) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code_is_retriable(*code),
            ClientError::Connect { .. }
            | ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoLeader { .. } => true,
            ClientError::Malformed { .. }
            | ClientError::Unsupported { .. }
            | ClientError::Invalid(_)
            | ClientError::AfterIndeterminate { .. } => false,
        }
    }

    /// True when cached metadata is probably stale (leadership moved, broker gone).
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => matches!(
                error_of(*code),
                Some(
                    UnknownTopicOrPartition
                        | LeaderNotAvailable
                        | NotLeaderOrFollower
                        | NotController
                        | FencedLeaderEpoch
                        | UnknownLeaderEpoch
                        | KafkaStorageError
                )
            ),
            ClientError::Connect { .. }
            | ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoLeader { .. } => true,
            _ => false,
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::AfterIndeterminate { last } => last.code(),
            _ => None,
        }
    }

    /// The Kafka error the broker sent, if any.
    pub fn error(&self) -> Option<ResponseError> {
        self.code().and_then(error_of)
    }

    pub(crate) fn broker(api: ApiKey, code: i16, message: Option<String>) -> Self {
        ClientError::Broker { api, code, message }
    }
}

/// Error codes after which a write may nevertheless have been applied. Kafka appends before it
/// waits for replication (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND), and a stateless
/// broker may see an object-store put whose outcome it does not know (UNKNOWN_SERVER_ERROR,
/// KAFKA_STORAGE_ERROR). Codes this crate does not know are treated the same way.
pub fn code_is_ambiguous(code: i16) -> bool {
    matches!(
        error_of(code),
        Some(
            UnknownServerError
                | RequestTimedOut
                | NetworkException
                | NotEnoughReplicasAfterAppend
                | KafkaStorageError
                | Unknown(_)
        )
    )
}

/// Error codes worth retrying: transient leadership, availability and timeout conditions.
pub fn code_is_retriable(code: i16) -> bool {
    matches!(
        error_of(code),
        Some(
            UnknownTopicOrPartition
                | LeaderNotAvailable
                | NotLeaderOrFollower
                | RequestTimedOut
                | NetworkException
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | NotController
                | KafkaStorageError
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | OffsetNotAvailable
        )
    )
}

pub use riptide_wire::code_name;

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: i16) -> ClientError {
        ClientError::broker(ApiKey::Produce, code, None)
    }

    #[test]
    fn definite_versus_indeterminate() {
        let addr = || "b:9092".to_string();
        let definite = [
            broker(NotLeaderOrFollower.code()),
            broker(UnknownTopicOrPartition.code()),
            broker(NotEnoughReplicas.code()),
            broker(OffsetOutOfRange.code()),
            ClientError::Connect {
                addr: addr(),
                reason: "refused".into(),
            },
            ClientError::Io {
                addr: addr(),
                reason: "reset".into(),
                written: false,
            },
            ClientError::Timeout {
                addr: addr(),
                written: false,
            },
            ClientError::Unsupported {
                api: ApiKey::Fetch,
                reason: "".into(),
            },
            ClientError::NoLeader {
                topic: "t".into(),
                partition: 0,
            },
            ClientError::Invalid("x".into()),
        ];
        for e in &definite {
            assert!(e.is_definite(), "{e}");
        }
        let indeterminate = [
            broker(RequestTimedOut.code()),
            broker(NotEnoughReplicasAfterAppend.code()),
            broker(UnknownServerError.code()),
            broker(KafkaStorageError.code()),
            broker(9999), // unknown to this client: assume the worst
            ClientError::Io {
                addr: addr(),
                reason: "reset".into(),
                written: true,
            },
            ClientError::Timeout {
                addr: addr(),
                written: true,
            },
            ClientError::Malformed {
                addr: addr(),
                reason: "junk".into(),
                kind: Some(ViolationKind::Malformed),
            },
            ClientError::AfterIndeterminate {
                last: Box::new(broker(NotLeaderOrFollower.code())),
            },
        ];
        for e in &indeterminate {
            assert!(!e.is_definite(), "{e}");
        }
    }

    #[test]
    fn retriable_and_refresh() {
        assert!(broker(NotLeaderOrFollower.code()).is_retriable());
        assert!(broker(NotLeaderOrFollower.code()).needs_metadata_refresh());
        assert!(broker(LeaderNotAvailable.code()).needs_metadata_refresh());
        assert!(broker(RequestTimedOut.code()).is_retriable());
        assert!(!broker(RequestTimedOut.code()).needs_metadata_refresh());
        assert!(!broker(OffsetOutOfRange.code()).is_retriable());
        assert!(!broker(TopicAlreadyExists.code()).is_retriable());
        let lost = ClientError::Io {
            addr: "b:1".into(),
            reason: "eof".into(),
            written: true,
        };
        assert!(lost.is_retriable() && lost.needs_metadata_refresh());
        let junk = ClientError::Malformed {
            addr: "b:1".into(),
            reason: "junk".into(),
            kind: Some(ViolationKind::Malformed),
        };
        assert!(!junk.is_retriable());
        let wrapped = ClientError::AfterIndeterminate {
            last: Box::new(broker(NotLeaderOrFollower.code())),
        };
        assert_eq!(wrapped.code(), Some(NotLeaderOrFollower.code()));
        assert!(!wrapped.is_retriable());
    }

    #[test]
    fn display_names_the_code() {
        let s = broker(NotLeaderOrFollower.code()).to_string();
        assert!(s.contains("NotLeaderOrFollower"), "{s}");
    }
}
