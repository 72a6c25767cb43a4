//! One broker connection: a byte stream, correlation ids, negotiated API versions, and one request
//! in flight at a time ([`Connection`]) or several ([`Pipe`], for a pipelining producer).

use riptide_coverage::reached;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::oneshot;

use crate::codec::{self, BadReply, BrokerVersions};
use crate::error::ClientError;
use crate::net::Connector;
use crate::witness::{Fact, Witness};
use riptide_checker::history::ViolationKind;
use riptide_wire::{frame, versions};

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// `client_id` in every request header.
    pub client_id: Option<String>,
    /// Deadline for opening the stream (before anything is written).
    pub connect_timeout: Duration,
    /// Deadline for one request/response round trip.
    pub request_timeout: Duration,
    /// Largest response frame accepted.
    pub max_frame_bytes: usize,
    /// ApiVersions version tried first; lowered per KIP-511 if the broker asks. 0 is the most
    /// widely accepted; 3 is what current Java clients and librdkafka send.
    pub api_versions_version: i16,
    /// Highest version to use per API key, lowered when a broker's reply at some version could
    /// not be decoded. Shared by every connection made with these options (clones share it), so
    /// one client stops using a version the cluster gets wrong.
    pub version_caps: VersionCaps,
    /// Where replies contrary to the protocol are reported (shared by clones, like
    /// `version_caps`: one per client).
    pub witness: Witness,
}

/// API key → highest version still trusted.
pub type VersionCaps = Arc<Mutex<BTreeMap<i16, i16>>>;

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            client_id: Some("riptide".to_string()),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_frame_bytes: riptide_wire::MAX_FRAME_BYTES,
            api_versions_version: 3,
            version_caps: VersionCaps::default(),
            witness: Witness::default(),
        }
    }
}

/// A connection to one broker. After any transport or framing failure it is marked broken and must
/// be discarded: the stream position is unknown.
pub struct Connection<S> {
    stream: S,
    addr: String,
    opts: ConnectionOptions,
    next_correlation_id: i32,
    versions: BrokerVersions,
    broken: bool,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    /// Wraps an open stream. No versions are known until [`Connection::negotiate`].
    pub fn new(stream: S, addr: impl Into<String>, opts: ConnectionOptions) -> Self {
        Connection {
            stream,
            addr: addr.into(),
            opts,
            next_correlation_id: 1,
            versions: BrokerVersions::default(),
            broken: false,
        }
    }

    /// Connects to `addr` and negotiates API versions.
    pub async fn open<C: Connector<Stream = S>>(
        connector: &C,
        addr: &str,
        opts: &ConnectionOptions,
    ) -> Result<Self, ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(opts.connect_timeout, connector.connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                reached!(
                    "connection.refused",
                    "a connection attempt failed (refused, reset or unreachable)"
                );
                return Err(connect_err(e.to_string()));
            }
            Err(_) => {
                reached!(
                    "connection.connect_timed_out",
                    "a connection attempt got no answer in time (a partition)"
                );
                return Err(connect_err("timed out".to_string()));
            }
        };
        let mut conn = Connection::new(stream, addr, opts.clone());
        // Whatever goes wrong here, the caller's request was never sent: a definite failure.
        conn.negotiate().await.map_err(|e| match e {
            ClientError::Io { reason, .. } | ClientError::Malformed { reason, .. } => {
                connect_err(format!("during ApiVersions: {reason}"))
            }
            ClientError::Timeout { .. } => connect_err("ApiVersions timed out".to_string()),
            other => other,
        })?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// The version to use for `api` on this connection.
    pub fn pick_version(&self, api: ApiKey) -> Result<i16, ClientError> {
        let cap = lock(&self.opts.version_caps).get(&(api as i16)).copied();
        self.versions.pick_capped(api, cap)
    }

    /// Sends ApiVersions and records the broker's ranges. Starts at the configured version and, if
    /// the broker answers UNSUPPORTED_VERSION, retries once at the highest version it advertised.
    pub async fn negotiate(&mut self) -> Result<&BrokerVersions, ClientError> {
        let mut version = self.opts.api_versions_version.clamp(0, 3);
        for _ in 0..2 {
            let req = codec::api_versions_request(version);
            let (body, corr) = self
                .exchange(&req, version, self.opts.request_timeout)
                .await?;
            let resp = codec::decode_api_versions(body, version, corr)
                .map_err(|bad| self.malformed(bad, version))?;
            if let Some(lower) = versions::retry_version(&resp, version) {
                reached!(
                    "connection.api_versions_fallback",
                    "ApiVersions was refused at our version and retried lower (KIP-511)"
                );
                version = lower;
                continue;
            }
            if resp.error_code != 0 {
                return Err(ClientError::broker(
                    ApiKey::ApiVersions,
                    resp.error_code,
                    None,
                ));
            }
            self.versions = BrokerVersions::from_response(&resp);
            return Ok(&self.versions);
        }
        Err(ClientError::Unsupported {
            api: ApiKey::ApiVersions,
            reason: "broker rejected every ApiVersions version tried".to_string(),
        })
    }

    /// Sends `req` at `version` and waits for its response (default request timeout).
    pub async fn send<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        self.send_with_timeout(req, version, self.opts.request_timeout)
            .await
    }

    /// Like [`Connection::send`] with an explicit deadline (a long-poll fetch needs more than the
    /// default).
    pub async fn send_with_timeout<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let (body, corr) = self.exchange(req, version, timeout).await?;
        decode_or_cap::<R>(&self.opts, &self.addr, body, version, corr).inspect_err(|_| {
            // A broker that sent garbage once is not trusted again on this stream.
            self.broken = true;
        })
    }

    /// Turns this (negotiated) connection into one that keeps several requests outstanding.
    pub fn into_pipe(self) -> Pipe<S>
    where
        S: 'static,
    {
        Pipe::new(self)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_oneway<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        let (frame, _) = self.frame(req, version)?;
        self.round_trip(&frame, false, self.opts.request_timeout)
            .await?;
        Ok(())
    }

    fn frame<R: Request>(&mut self, req: &R, version: i16) -> Result<(Bytes, i32), ClientError> {
        let corr = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let frame = codec::encode_request(req, version, corr, self.opts.client_id.as_deref())?;
        Ok((frame.freeze(), corr))
    }

    async fn exchange<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<(Bytes, i32), ClientError> {
        let (frame, corr) = self.frame(req, version)?;
        let body = self.round_trip(&frame, true, timeout).await;
        if let (
            Err(ClientError::Malformed {
                reason,
                kind: Some(kind),
                ..
            }),
            Ok(api),
        ) = (&body, ApiKey::try_from(R::KEY))
        {
            self.opts.witness.record(Fact {
                kind: *kind,
                broker: &self.addr,
                api,
                version,
                partition: None,
                op: None,
                detail: reason.clone(),
            });
        }
        Ok((body?.unwrap_or_default(), corr))
    }

    /// Writes one frame and optionally reads one back, under `timeout`. Tracks whether any request
    /// byte left the client: that is what separates a definite failure from an indeterminate one.
    async fn round_trip(
        &mut self,
        frame: &[u8],
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<Bytes>, ClientError> {
        if self.broken {
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: "connection already broken".to_string(),
                written: false,
            });
        }
        let mut written = false;
        let max = self.opts.max_frame_bytes;
        let stream = &mut self.stream;
        let io = async {
            let mut pos = 0;
            while pos < frame.len() {
                let n = stream.write(&frame[pos..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                pos += n;
                written = true;
            }
            stream.flush().await?;
            if expect_response {
                frame::read_owed_frame(stream, max)
                    .await
                    .map(|f| Some(f.freeze()))
                    .map_err(std::io::Error::from)
            } else {
                Ok(None)
            }
        };
        let result = tokio::time::timeout(timeout, io).await;
        let addr = self.addr.clone();
        match result {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => {
                self.broken = true;
                if e.kind() == std::io::ErrorKind::InvalidData {
                    // A frame whose length prefix is negative or beyond any sane size.
                    Err(ClientError::Malformed {
                        addr,
                        reason: e.to_string(),
                        kind: Some(ViolationKind::Malformed),
                    })
                } else {
                    Err(ClientError::Io {
                        addr,
                        reason: e.to_string(),
                        written,
                    })
                }
            }
            Err(_) => {
                reached!(
                    "connection.request_timed_out",
                    "a request got no answer within the request timeout"
                );
                self.broken = true;
                Err(ClientError::Timeout { addr, written })
            }
        }
    }

    /// An ApiVersions reply at `version` that could not be taken.
    fn malformed(&mut self, bad: BadReply, version: i16) -> ClientError {
        if let Some(kind) = bad.kind {
            self.opts.witness.record(Fact {
                kind,
                broker: &self.addr,
                api: ApiKey::ApiVersions,
                version,
                partition: None,
                op: None,
                detail: bad.reason.clone(),
            });
        }
        // The next frame boundary is still known, but a broker that sent garbage once is not
        // trusted again on this stream.
        self.broken = true;
        bad.into_error(&self.addr)
    }
}

/// Decodes a response; when it cannot be decoded, caps the API one version lower for every
/// connection sharing `opts`: a broker that encodes one version wrongly may get the one before
/// right, and the run can go on testing its data path.
fn decode_or_cap<R: Request>(
    opts: &ConnectionOptions,
    addr: &str,
    body: Bytes,
    version: i16,
    corr: i32,
) -> Result<R::Response, ClientError> {
    // A correlation id that does not match is answered as the Java client does (NetworkClient:
    // IllegalStateException, the connection is closed): an indeterminate error, the stream is not
    // used again; the client records the fact. Only an undecodable body lowers the version.
    codec::decode_response::<R>(body, version, corr).map_err(|bad| {
        if let (Some(kind), Ok(api)) = (bad.kind, ApiKey::try_from(R::KEY)) {
            opts.witness.record(Fact {
                kind,
                broker: addr,
                api,
                version,
                partition: None,
                op: None,
                detail: bad.reason.clone(),
            });
        }
        if bad.kind != Some(ViolationKind::CorrelationMismatch) {
            let mut caps = lock(&opts.version_caps);
            let cap = caps.entry(R::KEY).or_insert(version);
            if *cap >= version {
                *cap = version - 1;
                tracing::warn!(api = R::KEY, version, %addr, reason = %bad,
                    "reply undecodable; this client now uses at most v{}", version - 1);
            }
        }
        bad.into_error(addr)
    })
}

/// Requests written and not yet answered, oldest first: Kafka answers in request order.
type Waiting = Arc<Mutex<VecDeque<oneshot::Sender<Result<Bytes, ClientError>>>>>;

/// A connection with several requests outstanding. Requests are written in order; a reader task
/// reads the responses back and hands each to the oldest waiting request. Any transport failure
/// breaks the pipe: every waiting request gets an indeterminate error.
pub struct Pipe<S> {
    writer: WriteHalf<S>,
    addr: String,
    opts: ConnectionOptions,
    versions: BrokerVersions,
    next_correlation_id: i32,
    waiting: Waiting,
    broken: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl<S> Drop for Pipe<S> {
    fn drop(&mut self) {
        // Dropping the reader drops the waiting senders: their requests end indeterminate.
        self.reader.abort();
    }
}

/// One request written on a [`Pipe`]; [`Sent::response`] waits for its answer.
pub struct Sent<R> {
    rx: oneshot::Receiver<Result<Bytes, ClientError>>,
    corr: i32,
    version: i16,
    addr: String,
    opts: ConnectionOptions,
    _request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> Sent<R> {
    /// The decoded response, or why there is none by `deadline` (then the request may or may
    /// not have taken effect).
    pub async fn response(
        self,
        deadline: tokio::time::Instant,
    ) -> Result<R::Response, ClientError> {
        let lost = |addr: &str| ClientError::Io {
            addr: addr.to_string(),
            reason: "connection closed with the request outstanding".to_string(),
            written: true,
        };
        // `timeout`, not `timeout_at`: madsim's tokio has only the former.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, self.rx).await {
            Ok(Ok(Ok(body))) => {
                decode_or_cap::<R>(&self.opts, &self.addr, body, self.version, self.corr)
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => {
                reached!(
                    "connection.lost_with_requests_outstanding",
                    "a pipelined connection closed with requests unanswered"
                );
                Err(lost(&self.addr))
            }
            Err(_) => {
                reached!(
                    "connection.pipelined_request_timed_out",
                    "a pipelined request got no answer in time"
                );
                Err(ClientError::Timeout {
                    addr: self.addr.clone(),
                    written: true,
                })
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Pipe<S> {
    fn new(conn: Connection<S>) -> Self {
        let (mut rd, writer) = tokio::io::split(conn.stream);
        let waiting: Waiting = Arc::default();
        let broken = Arc::new(AtomicBool::new(conn.broken));
        let reader = {
            let (waiting, broken) = (waiting.clone(), broken.clone());
            let (addr, max) = (conn.addr.clone(), conn.opts.max_frame_bytes);
            tokio::spawn(async move {
                let failure = loop {
                    match frame::read_owed_frame(&mut rd, max).await {
                        Ok(body) => match lock(&waiting).pop_front() {
                            // A receiver that gave up (timed out) just drops its answer.
                            Some(tx) => {
                                let _ = tx.send(Ok(body.freeze()));
                            }
                            None => break "a response nobody asked for".to_string(),
                        },
                        Err(e) => break e.to_string(),
                    }
                };
                broken.store(true, Ordering::SeqCst);
                for tx in lock(&waiting).drain(..) {
                    let _ = tx.send(Err(ClientError::Io {
                        addr: addr.clone(),
                        reason: failure.clone(),
                        written: true,
                    }));
                }
            })
        };
        Pipe {
            writer,
            addr: conn.addr,
            opts: conn.opts,
            versions: conn.versions,
            next_correlation_id: conn.next_correlation_id,
            waiting,
            broken,
            reader,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Marks the pipe unusable (e.g. after a request timed out: later answers may never come).
    pub fn break_off(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    /// Requests written and not answered yet.
    pub fn in_flight(&self) -> usize {
        lock(&self.waiting).len()
    }

    /// The version to use for `api` on this connection.
    pub fn pick_version(&self, api: ApiKey) -> Result<i16, ClientError> {
        let cap = lock(&self.opts.version_caps).get(&(api as i16)).copied();
        self.versions.pick_capped(api, cap)
    }

    /// Writes `req` at `version`; the returned [`Sent`] waits for its response. An error here is
    /// definite unless some of the request's bytes were written.
    pub async fn send<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<Sent<R>, ClientError> {
        if self.is_broken() {
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: "connection already broken".to_string(),
                written: false,
            });
        }
        let corr = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let frame = codec::encode_request(req, version, corr, self.opts.client_id.as_deref())?;
        let (tx, rx) = oneshot::channel();
        // Queued before writing: the answer cannot come before the request is whole, but the
        // reader must find its slot when it does.
        lock(&self.waiting).push_back(tx);
        let mut written = false;
        let write = async {
            let mut pos = 0;
            while pos < frame.len() {
                let n = self.writer.write(&frame[pos..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                pos += n;
                written = true;
            }
            self.writer.flush().await
        };
        let result: std::io::Result<()> =
            match tokio::time::timeout(self.opts.request_timeout, write).await {
                Ok(r) => r,
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            };
        if let Err(e) = result {
            self.break_off();
            lock(&self.waiting).pop_back();
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: e.to_string(),
                written,
            });
        }
        Ok(Sent {
            rx,
            corr,
            version,
            addr: self.addr.clone(),
            opts: self.opts.clone(),
            _request: std::marker::PhantomData,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
    use tokio::io::{duplex, AsyncWriteExt, DuplexStream};

    fn opts() -> ConnectionOptions {
        ConnectionOptions {
            request_timeout: Duration::from_secs(1),
            ..ConnectionOptions::default()
        }
    }

    async fn read_request(server: &mut DuplexStream) -> RequestHeader {
        let mut frame = frame::read_owed_frame(server, 1 << 20)
            .await
            .unwrap()
            .freeze();
        decode_request_header_from_buffer(&mut frame).unwrap()
    }

    async fn respond<R: Encodable>(server: &mut DuplexStream, h: &RequestHeader, corr: i32, r: &R) {
        let api = ApiKey::try_from(h.request_api_key).unwrap();
        let mut buf = frame::start(64);
        ResponseHeader::default()
            .with_correlation_id(corr)
            .encode(&mut buf, api.response_header_version(h.request_api_version))
            .unwrap();
        r.encode(&mut buf, h.request_api_version).unwrap();
        frame::seal(&mut buf).unwrap();
        server.write_all(&buf).await.unwrap();
    }

    fn versions() -> ApiVersionsResponse {
        let api = |k: ApiKey, hi: i16| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(0)
                .with_max_version(hi)
        };
        ApiVersionsResponse::default()
            .with_api_keys(vec![api(ApiKey::ApiVersions, 3), api(ApiKey::Metadata, 9)])
    }

    /// A connection whose ApiVersions exchange has completed, and the broker's end of it.
    async fn negotiated() -> (Connection<DuplexStream>, DuplexStream) {
        let (client, mut server) = duplex(1 << 16);
        let mut conn = Connection::new(client, "test:1", opts());
        let broker = async {
            let h = read_request(&mut server).await;
            assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
            respond(&mut server, &h, h.correlation_id, &versions()).await;
        };
        let (r, ()) = tokio::join!(conn.negotiate(), broker);
        r.unwrap();
        (conn, server)
    }

    #[tokio::test]
    async fn negotiates_then_sends_at_the_common_version() {
        let (mut conn, mut server) = negotiated().await;
        assert_eq!(conn.pick_version(ApiKey::Metadata).unwrap(), 9);
        let broker = async {
            let h = read_request(&mut server).await;
            assert_eq!(h.request_api_version, 9);
            respond(
                &mut server,
                &h,
                h.correlation_id,
                &MetadataResponse::default(),
            )
            .await;
        };
        let req = codec::metadata_request(&["t"], 9);
        let (r, ()) = tokio::join!(conn.send(&req, 9), broker);
        r.unwrap();
        assert!(!conn.is_broken());
    }

    #[tokio::test]
    async fn peer_gone_before_write_is_definite() {
        let (mut conn, server) = negotiated().await;
        drop(server);
        let err = conn.send(&MetadataRequest::default(), 9).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Io { written: false, .. }),
            "{err:?}"
        );
        assert!(err.is_definite());
        assert!(conn.is_broken());
        // A broken connection refuses further requests without writing: still definite.
        let err = conn.send(&MetadataRequest::default(), 9).await.unwrap_err();
        assert!(err.is_definite());
    }

    #[tokio::test]
    async fn connection_lost_after_write_is_indeterminate() {
        let (mut conn, mut server) = negotiated().await;
        let broker = async move {
            read_request(&mut server).await;
            drop(server); // the request arrived; the reply never comes
        };
        let req = MetadataRequest::default();
        let (r, ()) = tokio::join!(conn.send(&req, 9), broker);
        let err = r.unwrap_err();
        assert!(
            matches!(err, ClientError::Io { written: true, .. }),
            "{err:?}"
        );
        assert!(!err.is_definite());
        assert!(err.is_retriable());
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_after_write_is_indeterminate() {
        let (mut conn, mut server) = negotiated().await;
        let broker = async {
            read_request(&mut server).await; // and never answer
        };
        let req = MetadataRequest::default();
        let (r, ()) = tokio::join!(conn.send(&req, 9), broker);
        let err = r.unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { written: true, .. }),
            "{err:?}"
        );
        assert!(!err.is_definite());
        assert!(conn.is_broken());
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_before_anything_is_written_is_definite() {
        // A 1-byte pipe nobody reads: the first byte goes out, so this is indeterminate; with a
        // full pipe from the start nothing goes out and the timeout is definite.
        let (client, _server) = duplex(1);
        let mut conn = Connection::new(client, "test:1", opts());
        conn.versions.0.insert(ApiKey::Metadata as i16, (0, 9));
        let err = conn.send(&MetadataRequest::default(), 9).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { written: true, .. }),
            "{err:?}"
        );

        let (mut client, _server) = duplex(1);
        client.write_all(b"x").await.unwrap(); // fill the pipe
        let mut conn = Connection::new(client, "test:1", opts());
        let err = conn.send(&MetadataRequest::default(), 9).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { written: false, .. }),
            "{err:?}"
        );
        assert!(err.is_definite());
    }

    #[tokio::test]
    async fn wrong_correlation_id_is_malformed_and_indeterminate() {
        let (mut conn, mut server) = negotiated().await;
        let broker = async {
            let h = read_request(&mut server).await;
            respond(
                &mut server,
                &h,
                h.correlation_id + 100,
                &MetadataResponse::default(),
            )
            .await;
        };
        let req = MetadataRequest::default();
        let (r, ()) = tokio::join!(conn.send(&req, 9), broker);
        let err = r.unwrap_err();
        assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
        assert!(!err.is_definite());
        assert!(conn.is_broken());
    }

    #[tokio::test]
    async fn oversized_frame_is_malformed() {
        let (mut conn, mut server) = negotiated().await;
        let broker = async {
            read_request(&mut server).await;
            server.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
        };
        let req = MetadataRequest::default();
        let (r, ()) = tokio::join!(conn.send(&req, 9), broker);
        assert!(matches!(r.unwrap_err(), ClientError::Malformed { .. }));
    }

    #[tokio::test]
    async fn api_versions_downgrades_per_kip_511() {
        let (client, mut server) = duplex(1 << 16);
        let mut conn = Connection::new(client, "test:1", opts());
        let broker = async {
            // First try at v3: this broker knows only v0..=1, so it answers UNSUPPORTED_VERSION
            // with a v0 body.
            let h = read_request(&mut server).await;
            assert_eq!(h.request_api_version, 3);
            let refuse = ApiVersionsResponse::default()
                .with_error_code(riptide_wire::ResponseError::UnsupportedVersion.code())
                .with_api_keys(vec![ApiVersion::default()
                    .with_api_key(ApiKey::ApiVersions as i16)
                    .with_max_version(1)]);
            let v0 = h.clone().with_request_api_version(0);
            respond(&mut server, &v0, h.correlation_id, &refuse).await;
            let h = read_request(&mut server).await;
            assert_eq!(h.request_api_version, 1);
            respond(&mut server, &h, h.correlation_id, &versions()).await;
        };
        let (r, ()) = tokio::join!(conn.negotiate(), broker);
        r.unwrap();
        assert_eq!(conn.pick_version(ApiKey::Metadata).unwrap(), 9);
    }
}
