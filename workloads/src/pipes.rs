//! A pipelining producer's connections: at most one open [`Pipe`] per broker, each with an id, so
//! that a request's failure closes the connection the request was sent on and never a newer one
//! to the same broker.
//!
//! A failure can come to light late: a connection breaks with two requests on it, the producer
//! opens a new one and sends on it, and only then handles the second request's failure. Closing
//! "the connection to that broker" at that point would close the new connection, whose request
//! would then fail the same way and close the next one: a producer that never gets an answer
//! again while the broker is healthy (chaos seeds 323 and 712).
//!
//! What it cannot do: it does not open connections (the client does) and does not know which
//! requests are outstanding (the producer does).

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::Pipe;

/// Which connection a request went out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PipeId(u64);

/// Open connections by broker address.
pub struct Pipes<S> {
    open: BTreeMap<String, (PipeId, Pipe<S>)>,
    next: u64,
}

impl<S> Default for Pipes<S> {
    fn default() -> Self {
        Pipes {
            open: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Pipes<S> {
    /// The open connection to `addr` that can still take requests. A broken one is dropped
    /// (its outstanding requests end indeterminate) and `None` returned: open another.
    pub fn usable(&mut self, addr: &str) -> Option<(PipeId, &mut Pipe<S>)> {
        if self.open.get(addr).is_some_and(|(_, p)| p.is_broken()) {
            self.open.remove(addr);
        }
        self.open.get_mut(addr).map(|(id, p)| (*id, p))
    }

    /// Makes `pipe` the connection to `addr` (replacing and dropping any other) and names it.
    pub fn insert(&mut self, addr: &str, pipe: Pipe<S>) -> PipeId {
        let id = PipeId(self.next);
        self.next += 1;
        self.open.insert(addr.to_string(), (id, pipe));
        id
    }

    /// Closes connection `id` to `addr` after a request on it failed: later answers on it may
    /// never come, and its other outstanding requests end indeterminate. A newer connection to
    /// the same broker is left alone. True if `id` was still open.
    pub fn close(&mut self, addr: &str, id: PipeId) -> bool {
        match self.open.get(addr) {
            Some((open, pipe)) if *open == id => {
                pipe.break_off();
                self.open.remove(addr);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Connection, ConnectionOptions};
    use kafka_protocol::messages::{
        ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
    use riptide_wire::frame;
    use std::time::Duration;
    use tokio::io::{duplex, AsyncWriteExt, DuplexStream};

    const BROKER: &str = "broker-0:9092";

    /// A pipe to `BROKER` and the broker's end of it.
    fn pipe() -> (Pipe<DuplexStream>, DuplexStream) {
        let (client, server) = duplex(1 << 16);
        let opts = ConnectionOptions {
            request_timeout: Duration::from_secs(1),
            ..ConnectionOptions::default()
        };
        (Connection::new(client, BROKER, opts).into_pipe(), server)
    }

    async fn answer_metadata(server: &mut DuplexStream) {
        let mut body = frame::read_owed_frame(server, 1 << 20)
            .await
            .unwrap()
            .freeze();
        let h: RequestHeader = decode_request_header_from_buffer(&mut body).unwrap();
        let mut buf = frame::start(64);
        ResponseHeader::default()
            .with_correlation_id(h.correlation_id)
            .encode(
                &mut buf,
                ApiKey::Metadata.response_header_version(h.request_api_version),
            )
            .unwrap();
        MetadataResponse::default()
            .encode(&mut buf, h.request_api_version)
            .unwrap();
        frame::seal(&mut buf).unwrap();
        server.write_all(&buf).await.unwrap();
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(1)
    }

    #[tokio::test]
    async fn a_failure_found_late_on_an_old_connection_leaves_the_new_one_open() {
        let mut pipes = Pipes::default();
        let (old_pipe, _old_server) = pipe();
        let old = pipes.insert(BROKER, old_pipe);
        // Two requests go out on the old connection; the first times out, which closes it.
        let (_, p) = pipes.usable(BROKER).unwrap();
        let _first = p.send(&MetadataRequest::default(), 9).await.unwrap();
        let second = p.send(&MetadataRequest::default(), 9).await.unwrap();
        assert!(pipes.close(BROKER, old));
        assert!(pipes.usable(BROKER).is_none());
        // The producer opens a new connection and sends on it before it learns that the second
        // request was lost with the old one.
        let (new_pipe, mut new_server) = pipe();
        let new = pipes.insert(BROKER, new_pipe);
        let (_, p) = pipes.usable(BROKER).unwrap();
        let third = p.send(&MetadataRequest::default(), 9).await.unwrap();
        assert!(second.response(soon()).await.is_err());
        assert!(
            !pipes.close(BROKER, old),
            "the old connection is gone already"
        );

        let (id, p) = pipes
            .usable(BROKER)
            .expect("the new connection is still open");
        assert_eq!(id, new);
        assert_eq!(p.in_flight(), 1);
        let (answer, ()) = tokio::join!(third.response(soon()), answer_metadata(&mut new_server));
        answer.expect("the request on the new connection is answered");
    }

    #[tokio::test]
    async fn a_failure_on_the_open_connection_closes_it() {
        let mut pipes = Pipes::default();
        let (p, _server) = pipe();
        let id = pipes.insert(BROKER, p);
        let (_, p) = pipes.usable(BROKER).unwrap();
        let sent = p.send(&MetadataRequest::default(), 9).await.unwrap();
        assert!(pipes.close(BROKER, id));
        assert!(pipes.usable(BROKER).is_none());
        let err = sent.response(soon()).await.unwrap_err();
        assert!(!err.is_definite(), "{err:?}");
    }

    #[tokio::test]
    async fn a_broken_connection_is_not_usable() {
        let mut pipes = Pipes::default();
        let (p, _server) = pipe();
        let id = pipes.insert(BROKER, p);
        pipes.usable(BROKER).unwrap().1.break_off();
        assert!(pipes.usable(BROKER).is_none());
        assert!(!pipes.close(BROKER, id), "already dropped");
    }
}
