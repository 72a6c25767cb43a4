//! What every side needs to know about a frame before it decodes it: the request header prefix,
//! which response header version applies, and KIP-511 (an ApiVersions request at a version the
//! broker does not know is answered with UNSUPPORTED_VERSION in a v0 body, so the client can retry
//! at a version both know).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;

/// The fixed start of every request header (v1+): api key, api version, correlation id, and the
/// client id's length.
/// Version ranges by API: (key, lowest, highest). What a broker serves, or what a client
/// implements.
pub type VersionTable = [(ApiKey, i16, i16)];

/// `key`'s (lowest, highest) versions in `table`, if it is there at all.
pub fn range_in(table: &VersionTable, key: ApiKey) -> Option<(i16, i16)> {
    table
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

pub const REQUEST_PREFIX_BYTES: usize = 10;

/// `(api key, api version, correlation id)` from the start of a request frame; `None` if the
/// frame is too short to be a request.
pub fn request_prefix(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < REQUEST_PREFIX_BYTES {
        return None;
    }
    let mut b = &frame[..8];
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}

/// The response header version for `api` at `version`. ApiVersions always answers with a v0
/// header, whatever the request's version (KIP-511), so a client can read the error of a version
/// the broker does not know.
pub fn response_header_version(api: ApiKey, version: i16) -> i16 {
    if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    }
}

/// Decodes an ApiVersions response body (after its header) sent for a request at `version`. A
/// broker that refuses the version answers UNSUPPORTED_VERSION in v0, and some brokers answer v0
/// without saying so; both decode.
pub fn decode_api_versions(body: Bytes, version: i16) -> Result<ApiVersionsResponse, String> {
    let code = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    if version > 0 && code == Some(ResponseError::UnsupportedVersion.code()) {
        return ApiVersionsResponse::decode(&mut body.clone(), 0)
            .map_err(|e| format!("ApiVersions v0 body: {e}"));
    }
    match ApiVersionsResponse::decode(&mut body.clone(), version) {
        Ok(r) => Ok(r),
        Err(_) if version > 0 => ApiVersionsResponse::decode(&mut body.clone(), 0)
            .map_err(|e| format!("ApiVersions v{version}/v0 body: {e}")),
        Err(e) => Err(format!("ApiVersions v{version} body: {e}")),
    }
}

/// After `resp` refused ApiVersions at `tried`: the version to try next (the highest the broker
/// advertised, below `tried`), or `None` when the answer was not a KIP-511 refusal.
pub fn retry_version(resp: &ApiVersionsResponse, tried: i16) -> Option<i16> {
    if tried == 0 || resp.error_code != ResponseError::UnsupportedVersion.code() {
        return None;
    }
    let broker_max = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .map_or(0, |k| k.max_version);
    Some(broker_max.clamp(0, tried - 1))
}

/// The KIP-511 answer to an ApiVersions request at a version above what the broker serves: its
/// own list with UNSUPPORTED_VERSION, to be encoded at v0 (header and body).
pub fn refuse_api_versions(mut supported: ApiVersionsResponse) -> ApiVersionsResponse {
    supported.error_code = ResponseError::UnsupportedVersion.code();
    supported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_found_by_key() {
        let table: &VersionTable = &[(ApiKey::Produce, 3, 9), (ApiKey::Fetch, 4, 12)];
        assert_eq!(range_in(table, ApiKey::Fetch), Some((4, 12)));
        assert_eq!(range_in(table, ApiKey::Metadata), None);
    }
    use bytes::BytesMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::protocol::Encodable;

    fn broker_list(max: i16) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(0)
            .with_max_version(max)])
    }

    fn encode(r: &ApiVersionsResponse, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        r.encode(&mut b, version).unwrap();
        b.freeze()
    }

    #[test]
    fn a_refusal_in_v0_decodes_and_names_the_retry() {
        let refusal = refuse_api_versions(broker_list(2));
        let resp = decode_api_versions(encode(&refusal, 0), 3).unwrap();
        assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
        assert_eq!(retry_version(&resp, 3), Some(2));
        // A broker advertising nothing useful: retry at v0; already at v0: give up.
        assert_eq!(
            retry_version(&refuse_api_versions(broker_list(9)), 3),
            Some(2)
        );
        assert_eq!(retry_version(&resp, 0), None);
        assert_eq!(retry_version(&broker_list(3), 3), None);
    }

    #[test]
    fn an_answer_at_the_asked_version_decodes() {
        let resp = decode_api_versions(encode(&broker_list(3), 3), 3).unwrap();
        assert_eq!(resp.api_keys[0].max_version, 3);
        assert!(decode_api_versions(Bytes::from_static(&[0]), 0).is_err());
    }

    #[test]
    fn prefixes_and_headers() {
        assert_eq!(
            request_prefix(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 0]),
            Some((18, 3, 7))
        );
        assert_eq!(request_prefix(&[0, 18, 0, 3, 0, 0, 0, 7, 0]), None);
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3), 0);
        assert_eq!(response_header_version(ApiKey::Metadata, 12), 1);
    }
}
