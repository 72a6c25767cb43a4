//! The Kafka wire basics every riptide component shares: the broker, the instrumented client and
//! the certify proxy all read and write frames, handle ApiVersions and name error codes through
//! this crate, so a new transport (TLS, SASL) or a new limit is written once.
//!
//! - [`frame`]: 4-byte big-endian length-prefixed frames, read with a bound and grown as bytes
//!   arrive (a lying length prefix costs nothing up front).
//! - [`versions`]: the request header prefix and KIP-511 (ApiVersions answered in v0 when the
//!   requested version is too new).
//! - Error codes: use [`ResponseError`] (re-exported from `kafka-protocol`) and [`error_of`],
//!   never a number written by hand (`ci/wire-check.sh` enforces it); [`codes::may_return`]
//!   says which codes an API may answer with.

pub mod clock;
pub mod codes;
pub mod frame;
pub mod versions;

pub use frame::{read_frame, FrameError, MAX_FRAME_BYTES};
pub use kafka_protocol::ResponseError;

/// The error code of a success.
pub const NO_ERROR: i16 = 0;

/// The error a Kafka error code stands for; `None` for 0 (no error).
pub fn error_of(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

/// True when `code` is `err`.
pub fn is(code: i16, err: ResponseError) -> bool {
    code == err.code()
}

/// A code's name for people: `NotLeaderOrFollower`, `NONE` for 0, `Unknown(9999)` for a code
/// this crate does not know.
pub fn code_name(code: i16) -> String {
    match error_of(code) {
        Some(e) => format!("{e:?}"),
        None => "NONE".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_names() {
        assert_eq!(code_name(0), "NONE");
        assert_eq!(code_name(6), "NotLeaderOrFollower");
        assert_eq!(code_name(9999), "Unknown(9999)");
        assert!(is(35, ResponseError::UnsupportedVersion));
        assert!(!is(0, ResponseError::UnsupportedVersion));
        assert_eq!(error_of(-1), Some(ResponseError::UnknownServerError));
    }
}
