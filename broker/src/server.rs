//! Connections: framing, version negotiation, and dispatch in request order.
//!
//! A connection's requests are started one at a time in arrival order (so two
//! produces to one partition on one connection commit in that order) and may
//! then complete concurrently; responses are written in request order, as
//! Kafka clients require.
//!
//! Produce requests share one budget of bytes per broker
//! ([`BrokerConfig::max_produce_bytes_in_flight`](crate::config::BrokerConfig)): a produce is
//! handled only once its frame's bytes fit, and gives them back when the log is done with its
//! batches. Until then its connection reads nothing more, so a producer faster than the store
//! is slowed by TCP instead of queued in memory.

use crate::api::{self, Reply};
use crate::broker::Broker;
use crate::net::{Listener, Upgrade};
use crate::sasl::{Session, Step};
use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use riptide_wire::{frame, versions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// The bytes of produce requests a broker holds at once (see the module's doc).
#[derive(Clone)]
struct ProduceBudget {
    permits: Arc<Semaphore>,
    /// The whole budget: a larger request takes all of it.
    total: u32,
}

impl ProduceBudget {
    fn new(bytes: usize) -> Self {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ProduceBudget {
            permits: Arc::new(Semaphore::new(total)),
            total: total as u32,
        }
    }

    /// A produce request's share, waited for until it fits; `None` for other requests.
    async fn admit(&self, frame: &[u8]) -> Option<OwnedSemaphorePermit> {
        let (key, _, _) = versions::request_prefix(frame)?;
        if ApiKey::try_from(key) != Ok(ApiKey::Produce) {
            return None;
        }
        let n = u32::try_from(frame.len()).map_or(self.total, |n| n.clamp(1, self.total));
        // Without waiting when it fits, so an unloaded broker runs as before.
        match self.permits.clone().try_acquire_many_owned(n) {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::trace!(bytes = n, "produce waits for the in-flight budget");
                self.permits.clone().acquire_many_owned(n).await.ok()
            }
        }
    }
}

/// How long a connection may take over its upgrade (TLS handshake) before it is closed.
pub const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a connection whose last reply refused it waits for the client to close first.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a connection was closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Out of bounds or cut short (never an I/O error: see `From`).
    #[error(transparent)]
    Frame(frame::FrameError),
    #[error("io: {0}")]
    Io(std::io::Error),
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{0:?} v{1} is not supported")]
    Version(ApiKey, i16),
    #[error("malformed {0:?} request: {1}")]
    Malformed(ApiKey, String),
}

impl From<frame::FrameError> for RequestError {
    fn from(e: frame::FrameError) -> Self {
        match e {
            frame::FrameError::Io(e) => RequestError::Io(e),
            e => RequestError::Frame(e),
        }
    }
}

impl Broker {
    /// Accepts connections until the listener fails for good.
    pub async fn serve<L: Listener>(self: Arc<Self>, listener: L) {
        self.serve_with(listener, None).await
    }

    /// Like [`Broker::serve`], each connection first going through `upgrade` (a TLS handshake,
    /// given at most [`UPGRADE_TIMEOUT`]); one that fails it is closed with a log line.
    pub async fn serve_with<L: Listener>(
        self: Arc<Self>,
        mut listener: L,
        upgrade: Option<Upgrade>,
    ) {
        let budget = ProduceBudget::new(self.cfg.max_produce_bytes_in_flight);
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let b = self.clone();
                    let budget = budget.clone();
                    let Some(upgrade) = upgrade.clone() else {
                        tokio::spawn(async move { b.connection(stream, peer, budget).await });
                        continue;
                    };
                    tokio::spawn(async move {
                        let upgraded =
                            tokio::time::timeout(UPGRADE_TIMEOUT, upgrade(Box::new(stream))).await;
                        match upgraded {
                            Ok(Ok(stream)) => b.connection(stream, peer, budget).await,
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, error = %e, "TLS handshake failed; closing connection")
                            }
                            Err(_) => tracing::warn!(
                                %peer,
                                "no TLS handshake within {UPGRADE_TIMEOUT:?}; closing connection"
                            ),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection<S>(self: Arc<Self>, stream: S, peer: SocketAddr, budget: ProduceBudget)
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
                let out = frame::framed(&frame);
                // Flush: a no-op on real and turmoil TCP, but a buffered
                // stream (madsim's) sends only on flush.
                if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let mut login = Session::new(self.cfg.sasl.clone());
        // Set when the last reply says why the connection closes: see below.
        let mut linger = false;
        loop {
            let request = match frame::read_frame(&mut rd, self.cfg.max_request_bytes).await {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %RequestError::from(e), "bad frame; closing connection");
                    break;
                }
            };
            match login.step(&request, || crate::sasl::nonce(&self.nonces)) {
                Step::Serve => {}
                Step::Reply(frame) => {
                    if tx
                        .send(tokio::spawn(async move { Some(frame) }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                Step::ReplyAndClose(frame, why) => {
                    tracing::warn!(%peer, reason = %why, "SASL login refused; closing connection");
                    let _ = tx.send(tokio::spawn(async move { Some(frame) })).await;
                    linger = true;
                    break;
                }
                Step::Close(why) => {
                    tracing::warn!(%peer, reason = %why, "closing connection");
                    break;
                }
            }
            // Backpressure: a produce that does not fit in the budget holds up this connection.
            let permit = budget.admit(&request).await;
            match self.clone().dispatch(request, permit).await {
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
        if linger {
            // The last reply says why the connection closes. Closing first can lose it: unread
            // bytes from the client make TCP reset the connection, and some clients drop what
            // they read once they see the close. So let the client close first (it will, having
            // read the refusal), reading and discarding until then, for a while at most.
            let mut sink = tokio::io::sink();
            let _ = tokio::time::timeout(LINGER, tokio::io::copy(&mut rd, &mut sink)).await;
        }
        drop(tx);
        let _ = writer.await;
        tracing::debug!(%peer, "connection closed");
    }

    async fn dispatch(
        self: Arc<Self>,
        mut frame: BytesMut,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Reply, RequestError> {
        let (raw_key, version, correlation_id) =
            versions::request_prefix(&frame).ok_or(RequestError::Short(frame.len()))?;
        let key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApi(raw_key))?;
        let (lo, hi) = api::supported(key).ok_or(RequestError::Version(key, version))?;
        let hi = match key {
            ApiKey::ApiVersions => hi.min(self.cfg.api_versions_max),
            _ => hi,
        };
        if key == ApiKey::ApiVersions && version > hi {
            let resp = versions::refuse_api_versions(api::api_versions(self.cfg.api_versions_max));
            return Ok(Reply::Now(Some(api::encode_response(
                correlation_id,
                0,
                &resp,
            ))));
        }
        if version < lo || version > hi {
            return Err(RequestError::Version(key, version));
        }
        let malformed = |e: anyhow::Error| RequestError::Malformed(key, e.to_string());
        let mut buf = frame.split().freeze();
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
            .map_err(malformed)?;
        api::handle(self, key, header, buf, permit)
            .await
            .map_err(malformed)
    }
}
