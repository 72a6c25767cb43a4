//! Requests one broker sends another, as Kafka brokers do: a transaction coordinator asks
//! partition owners to write markers (WriteTxnMarkers), and a partition owner asks a coordinator
//! whether a transaction holds a partition before it takes the transaction's first batch there
//! (AddPartitionsToTxn v4, `verify_only`; KIP-890 part 1).
//!
//! One connection per request: these are rare (a few per transaction) and a fresh connection
//! never carries a stale reply. Every failure is an error the caller retries or answers with.

use crate::broker::Broker;
use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use riptide_wire::frame;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long one request to a peer may take, connection included.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("broker {0} is not a live member")]
    Unknown(i32),
    #[error("broker {node}: {error}")]
    Io { node: i32, error: String },
    #[error("broker {0} did not answer in time")]
    Timeout(i32),
}

/// Sends `req` at `version` to broker `node` and waits for its response.
pub async fn call<R: Request>(
    b: &Broker,
    node: i32,
    version: i16,
    req: &R,
) -> Result<R::Response, PeerError> {
    let member = b
        .cluster
        .members()
        .into_iter()
        .find(|m| m.node_id == node)
        .ok_or(PeerError::Unknown(node))?;
    let addr = format!("{}:{}", member.host, member.port);
    let io = |e: std::io::Error| PeerError::Io {
        node,
        error: e.to_string(),
    };
    let exchange = async {
        let mut stream = (b.dialer)(addr).await.map_err(io)?;
        let mut buf = frame::start(256);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_string(format!(
                "riptide-broker-{}",
                b.cfg.node_id
            ))));
        let key = ApiKey::try_from(R::KEY).map_err(|_| PeerError::Io {
            node,
            error: format!("unknown api key {}", R::KEY),
        })?;
        let encoded = header
            .encode(&mut buf, key.request_header_version(version))
            .and_then(|_| req.encode(&mut buf, version));
        encoded.map_err(|e| PeerError::Io {
            node,
            error: e.to_string(),
        })?;
        frame::seal(&mut buf).map_err(|len| PeerError::Io {
            node,
            error: format!("request of {len} bytes"),
        })?;
        stream.write_all(&buf).await.map_err(io)?;
        // madsim's stream sends what was written only on flush.
        stream.flush().await.map_err(io)?;
        let mut body: BytesMut = frame::read_owed_frame(&mut stream, frame::MAX_FRAME_BYTES)
            .await
            .map_err(|e| io(e.into()))?;
        let decoded = kafka_protocol::messages::ResponseHeader::decode(
            &mut body,
            R::Response::header_version(version),
        )
        .and_then(|_| R::Response::decode(&mut body, version));
        decoded.map_err(|e| PeerError::Io {
            node,
            error: format!("undecodable response: {e}"),
        })
    };
    match tokio::time::timeout(PEER_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(PeerError::Timeout(node)),
    }
}
