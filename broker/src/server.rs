//! Connections: framing, version negotiation, and dispatch in request order.
//!
//! A connection's requests are started one at a time in arrival order (so two
//! produces to one partition on one connection commit in that order) and may
//! then complete concurrently; responses are written in request order, as
//! Kafka clients require.

use crate::api::{self, Reply};
use crate::broker::Broker;
use crate::net::Listener;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Version ranges this broker serves: within what kafka-protocol decodes,
/// and including the old versions older librdkafka probes for features.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
];

pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Why a connection was closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} out of bounds")]
    Size(i32),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{0:?} v{1} is not supported")]
    Version(ApiKey, i16),
    #[error("malformed {0:?} request: {1}")]
    Malformed(ApiKey, String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Broker {
    /// Accepts connections until the listener fails for good.
    pub async fn serve<L: Listener>(self: Arc<Self>, mut listener: L) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let b = self.clone();
                    tokio::spawn(async move { b.connection(stream, peer).await });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection<S>(self: Arc<Self>, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tracing::debug!(%peer, "connection opened");
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<JoinHandle<Option<BytesMut>>>(32);
        let writer = tokio::spawn(async move {
            while let Some(pending) = rx.recv().await {
                let frame = match pending.await {
                    Ok(Some(frame)) if !frame.is_empty() => frame,
                    Ok(Some(_)) => break, // could not encode: already logged
                    Ok(None) => continue, // acks=0: no response
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "request handler failed; closing");
                        break;
                    }
                };
                let mut out = BytesMut::with_capacity(4 + frame.len());
                out.put_u32(frame.len() as u32);
                out.put_slice(&frame);
                // Flush: a no-op on real and turmoil TCP, but a buffered
                // stream (madsim's) sends only on flush.
                if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        loop {
            let request = match read_frame(&mut rd, self.cfg.max_request_bytes).await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing connection");
                    break;
                }
            };
            match self.clone().dispatch(request).await {
                Ok(reply) => {
                    let handle = match reply {
                        Reply::Now(frame) => tokio::spawn(async move { frame }),
                        Reply::Later(fut) => tokio::spawn(fut),
                    };
                    if tx.send(handle).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad request; closing connection");
                    break;
                }
            }
        }
        drop(tx);
        let _ = writer.await;
        tracing::debug!(%peer, "connection closed");
    }

    async fn dispatch(self: Arc<Self>, mut frame: BytesMut) -> Result<Reply, FrameError> {
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
        let (lo, hi) = supported(key).ok_or(FrameError::Version(key, version))?;
        if key == ApiKey::ApiVersions && version > hi {
            // KIP-511: answer a too-new ApiVersions in v0 so the client can retry.
            let mut resp = api::api_versions();
            resp.error_code = ResponseError::UnsupportedVersion.code();
            return Ok(Reply::Now(Some(encode_response(correlation_id, 0, &resp))));
        }
        if version < lo || version > hi {
            return Err(FrameError::Version(key, version));
        }
        let malformed = |e: anyhow::Error| FrameError::Malformed(key, e.to_string());
        let mut buf = frame.split().freeze();
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
            .map_err(malformed)?;
        api::handle(self, key, header, buf).await.map_err(malformed)
    }
}

/// Reads one length-prefixed frame. `None` at a clean end of stream. The
/// buffer grows as bytes arrive, so a lying length costs nothing up front.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    // api key, version, correlation id and the client id's length at least.
    if len < 10 || len as usize > max {
        return Err(FrameError::Size(len));
    }
    let mut buf = BytesMut::new();
    let mut limited = rd.take(len as u64);
    while buf.len() < len as usize {
        buf.reserve((len as usize - buf.len()).min(64 * 1024));
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(Some(buf))
}

/// A response frame body: header then message, at the versions Kafka fixes.
/// Empty if it cannot be encoded, which closes the connection.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    resp: &R,
) -> BytesMut {
    let mut out = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut out, R::header_version(version))
        .and_then(|_| resp.encode(&mut out, version));
    match encoded {
        Ok(()) => out,
        Err(e) => {
            // Only reachable through a bug of ours.
            tracing::error!(error = %e, "could not encode response; closing connection");
            BytesMut::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_bounded() {
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 1024).await,
            Err(FrameError::Size(_))
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 1024).await,
            Err(FrameError::Size(_))
        ));
        let mut truncated: &[u8] = &[0, 0, 0, 20, 1, 2, 3];
        assert!(read_frame(&mut truncated, 1024).await.is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 1024).await.unwrap().is_none());
    }
}
