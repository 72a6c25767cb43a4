//! A client's way into a secured cluster: TCP, then TLS if asked (SNI and certificate checked
//! against the host name it dialled), then Kafka's SASL exchange (SaslHandshake v1, then
//! SaslAuthenticate until the mechanism is done). Real TCP only: the certify proxy and brokers
//! dialling each other use it outside the simulator.

use crate::sasl::{plain_message, Mechanism, SaslError, ScramClient};
use crate::users::ClientSasl;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use riptide_wire::frame;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 1;
/// SASL replies are small; anything bigger is not one.
const MAX_SASL_FRAME: usize = 1 << 20;

/// Why a connection could not be opened. Names no secret.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake with {host}: {error}")]
    Tls { host: String, error: std::io::Error },
    #[error("{0:?} is not a host name TLS can check a certificate against")]
    ServerName(String),
    #[error("the broker does not offer SASL {wanted} (it offers: {offered})")]
    Unsupported { wanted: Mechanism, offered: String },
    #[error("SASL authentication failed: {0}")]
    Refused(String),
    #[error("SASL: {0}")]
    Sasl(#[from] SaslError),
    #[error("SASL exchange: {0}")]
    Protocol(String),
}

/// How to reach the brokers: plaintext, TLS, SASL over either.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<ClientSasl>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.protocol())?;
        if let Some(s) = &self.sasl {
            write!(f, " ({s:?})")?;
        }
        Ok(())
    }
}

/// A byte stream to a broker, whatever it goes over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

impl Security {
    /// Kafka's name for it: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub fn protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// Opens an authenticated stream to `addr` (`host:port`).
    pub async fn connect(&self, addr: &str) -> Result<Box<dyn Stream>, ConnectError> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let mut stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = host_of(addr);
                let name = ServerName::try_from(host.to_string())
                    .map_err(|_| ConnectError::ServerName(host.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|error| ConnectError::Tls {
                        host: host.to_string(),
                        error,
                    })?;
                Box::new(tls)
            }
        };
        if let Some(sasl) = &self.sasl {
            authenticate(&mut stream, sasl, &random_nonce()).await?;
        }
        Ok(stream)
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// 24 random bytes as base64: a SCRAM client nonce. Outside the simulator only.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 24];
    // Only fails if the OS has no entropy source: then no nonce is better than a guessable one.
    aws_lc_rs::rand::fill(&mut bytes).expect("the OS random source");
    B64.encode(bytes)
}

/// 16 random bytes: a SCRAM salt. Outside the simulator only.
pub fn random_salt() -> Vec<u8> {
    let mut bytes = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the OS random source");
    bytes
}

/// Kafka's SASL exchange on a fresh connection, before any other request.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    sasl: &ClientSasl,
    nonce: &str,
) -> Result<(), ConnectError> {
    let mut corr = 0;
    let req = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(sasl.mechanism.name().to_string()));
    let resp: SaslHandshakeResponse = call(
        stream,
        ApiKey::SaslHandshake,
        HANDSHAKE_VERSION,
        &mut corr,
        &req,
    )
    .await?;
    if resp.error_code != 0 {
        let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(ConnectError::Unsupported {
            wanted: sasl.mechanism,
            offered: if offered.is_empty() {
                "none".into()
            } else {
                offered.join(", ")
            },
        });
    }
    match sasl.mechanism.scram() {
        None => {
            let msg = plain_message(&sasl.username, sasl.password());
            step(stream, &mut corr, msg).await?;
        }
        Some(scram) => {
            let mut client = ScramClient::new(scram, &sasl.username, sasl.password(), nonce);
            let server_first = step(stream, &mut corr, client.client_first()).await?;
            let client_final = client.client_final(&server_first)?;
            let server_final = step(stream, &mut corr, client_final).await?;
            client.verify_server_final(&server_final)?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate round: our bytes, the server's.
async fn step<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    corr: &mut i32,
    auth_bytes: Vec<u8>,
) -> Result<Bytes, ConnectError> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes));
    let resp: SaslAuthenticateResponse = call(
        stream,
        ApiKey::SaslAuthenticate,
        AUTHENTICATE_VERSION,
        corr,
        &req,
    )
    .await?;
    if resp.error_code != 0 {
        let name = riptide_wire::code_name(resp.error_code);
        let msg = resp
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        return Err(ConnectError::Refused(if msg.is_empty() {
            name
        } else {
            format!("{name}: {msg}")
        }));
    }
    Ok(resp.auth_bytes)
}

async fn call<S, Req, Resp>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    corr: &mut i32,
    req: &Req,
) -> Result<Resp, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Encodable,
    Resp: Decodable,
{
    *corr += 1;
    let bad = |e: anyhow::Error| ConnectError::Protocol(e.to_string());
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(*corr)
        .with_client_id(Some(StrBytes::from_static_str("riptide")))
        .encode(&mut body, key.request_header_version(version))
        .map_err(bad)?;
    req.encode(&mut body, version).map_err(bad)?;
    stream.write_all(&frame::framed(&body)).await?;
    stream.flush().await?;
    let mut reply = frame::read_owed_frame(stream, MAX_SASL_FRAME)
        .await
        .map_err(|e| match e {
            frame::FrameError::Io(e) => ConnectError::Io(e),
            e => ConnectError::Protocol(e.to_string()),
        })?
        .freeze();
    let header =
        ResponseHeader::decode(&mut reply, key.response_header_version(version)).map_err(bad)?;
    if header.correlation_id != *corr {
        return Err(ConnectError::Protocol(format!(
            "reply to correlation id {} while waiting for {}",
            header.correlation_id, corr
        )));
    }
    Resp::decode(&mut reply, version).map_err(bad)
}
