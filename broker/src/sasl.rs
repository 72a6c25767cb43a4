//! The broker's side of Kafka's SASL exchange, per connection (KIP-43, KIP-152). With users
//! configured (`BrokerConfig::sasl`) a connection is served nothing but ApiVersions,
//! SaslHandshake (v1) and SaslAuthenticate until it has logged in: anything else closes it, as
//! Kafka does. A refused login is answered SASL_AUTHENTICATION_FAILED, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM with the offered list, and the connection closes after either.
//! After a SaslHandshake v0 (clients before Kafka 1.0) the mechanism's messages come bare.
//! Without users, SaslHandshake offers no mechanism.

use crate::api::encode_response;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use riptide_auth::sasl::{parse_plain, SaslError, ScramServer};
use riptide_auth::{Mechanism, Users};
use riptide_coverage::reached;
use riptide_wire::ResponseError;
use std::sync::Arc;

/// What the connection does with a request, as far as authentication goes.
pub(crate) enum Step {
    /// Serve it as usual.
    Serve,
    /// Answer this and read on.
    Reply(BytesMut),
    /// Answer this, then close (a refused login).
    ReplyAndClose(BytesMut, String),
    /// Close without answering.
    Close(String),
}

enum State {
    /// No handshake yet.
    Start,
    /// SaslHandshake chose this; SaslAuthenticate next (bare tokens after a v0 handshake).
    Chosen(Mechanism, bool),
    /// SCRAM: the server-first message went out; the client-final one is next.
    Scram(Box<ScramServer>, bool),
    /// Logged in.
    Done,
}

/// One connection's login.
pub(crate) struct Session {
    users: Option<Arc<Users>>,
    state: State,
}

impl Session {
    pub fn new(users: Option<Arc<Users>>) -> Self {
        let state = if users.is_some() {
            State::Start
        } else {
            State::Done
        };
        Session { users, state }
    }

    /// Decides about one request frame (its length prefix removed). `nonce` makes a SCRAM
    /// server nonce when one is needed.
    pub fn step(&mut self, frame: &BytesMut, nonce: impl FnOnce() -> String) -> Step {
        if let State::Chosen(_, true) | State::Scram(_, true) = self.state {
            return self.raw_token(frame, nonce);
        }
        let Some((raw_key, version, _)) = riptide_wire::versions::request_prefix(frame) else {
            return Step::Serve; // too short: the dispatcher closes it and says why
        };
        let key = ApiKey::try_from(raw_key).ok();
        match key {
            Some(ApiKey::SaslHandshake) | Some(ApiKey::SaslAuthenticate) => {}
            Some(ApiKey::ApiVersions) => return Step::Serve,
            _ if matches!(self.state, State::Done) => return Step::Serve,
            _ => {
                reached!(
                    "sasl.request_before_login",
                    "a request other than ApiVersions/SASL came before the login; closed"
                );
                return Step::Close(format!(
                    "{} request before SASL authentication",
                    key.map_or_else(|| format!("API key {raw_key}"), |k| format!("{k:?}"))
                ));
            }
        }
        let key = key.unwrap_or(ApiKey::SaslHandshake);
        let Some((lo, hi)) = crate::api::supported(key) else {
            return Step::Close(format!("{key:?} is not served"));
        };
        if version < lo || version > hi {
            return Step::Close(format!("{key:?} v{version} is not supported"));
        }
        let mut body = Bytes::copy_from_slice(frame);
        let header = match RequestHeader::decode(&mut body, key.request_header_version(version)) {
            Ok(h) => h,
            Err(e) => return Step::Close(format!("malformed {key:?} header: {e}")),
        };
        match key {
            ApiKey::SaslHandshake => self.handshake(header, body),
            _ => self.authenticate(header, body, nonce),
        }
    }

    fn handshake(&mut self, header: RequestHeader, mut body: Bytes) -> Step {
        let (v, corr) = (header.request_api_version, header.correlation_id);
        let req = match SaslHandshakeRequest::decode(&mut body, v) {
            Ok(r) => r,
            Err(e) => return Step::Close(format!("malformed SaslHandshake: {e}")),
        };
        let offered: Vec<Mechanism> = self
            .users
            .as_ref()
            .map(|u| u.mechanisms())
            .unwrap_or_default();
        let names = offered
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let resp = SaslHandshakeResponse::default().with_mechanisms(names);
        if self.users.is_some() && !matches!(self.state, State::Start) {
            let resp = resp.with_error_code(ResponseError::IllegalSaslState.code());
            return Step::ReplyAndClose(
                encode_response(corr, v, &resp),
                "SaslHandshake after the SASL exchange began".into(),
            );
        }
        let wanted = req.mechanism.as_str();
        match offered.iter().find(|m| m.name() == wanted) {
            Some(&m) => {
                self.state = State::Chosen(m, v == 0);
                Step::Reply(encode_response(corr, v, &resp))
            }
            None => {
                reached!(
                    "sasl.unsupported_mechanism",
                    "a client asked for a SASL mechanism the broker does not offer"
                );
                let resp = resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
                Step::ReplyAndClose(
                    encode_response(corr, v, &resp),
                    format!("unsupported SASL mechanism {wanted:?}"),
                )
            }
        }
    }

    fn authenticate(
        &mut self,
        header: RequestHeader,
        mut body: Bytes,
        nonce: impl FnOnce() -> String,
    ) -> Step {
        let (v, corr) = (header.request_api_version, header.correlation_id);
        let req = match SaslAuthenticateRequest::decode(&mut body, v) {
            Ok(r) => r,
            Err(e) => return Step::Close(format!("malformed SaslAuthenticate: {e}")),
        };
        match self.exchange(&req.auth_bytes, nonce) {
            Ok(bytes) => Step::Reply(encode_response(
                corr,
                v,
                &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
            )),
            Err((code, msg)) => {
                let resp = SaslAuthenticateResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(msg.clone())));
                Step::ReplyAndClose(encode_response(corr, v, &resp), msg)
            }
        }
    }

    /// After a SaslHandshake v0 the mechanism's messages travel bare, each in a length-prefixed
    /// frame of its own; a refusal closes the connection without a word (KIP-43).
    fn raw_token(&mut self, token: &[u8], nonce: impl FnOnce() -> String) -> Step {
        match self.exchange(token, nonce) {
            Ok(bytes) => Step::Reply(BytesMut::from(&bytes[..])),
            Err((_, msg)) => Step::Close(msg),
        }
    }

    /// One message of the mechanism: the answer, or the error code and message of a refusal.
    fn exchange(
        &mut self,
        auth_bytes: &[u8],
        nonce: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, (ResponseError, String)> {
        let Some(users) = self.users.clone() else {
            return Err((
                ResponseError::IllegalSaslState,
                "SaslAuthenticate on a listener without SASL".into(),
            ));
        };
        let failed = |e: SaslError| {
            reached!(
                "sasl.login_refused",
                "a SASL login was refused (wrong password, unknown user or malformed message)"
            );
            (
                ResponseError::SaslAuthenticationFailed,
                format!("Authentication failed: {e}"),
            )
        };
        match std::mem::replace(&mut self.state, State::Done) {
            State::Chosen(Mechanism::Plain, _) => {
                let (user, password) = parse_plain(auth_bytes).map_err(failed)?;
                if !users.check_plain(&user, &password) {
                    return Err(failed(SaslError::BadCredentials));
                }
                tracing::info!(%user, "SASL/PLAIN login");
                Ok(Vec::new())
            }
            State::Chosen(m, raw) => {
                let scram = m
                    .scram()
                    .ok_or_else(|| failed(SaslError::Malformed("SASL")))?;
                let server =
                    ScramServer::start(scram, auth_bytes, &nonce(), |u| users.scram(u, scram))
                        .map_err(failed)?;
                let first = server.server_first();
                self.state = State::Scram(Box::new(server), raw);
                Ok(first)
            }
            State::Scram(server, _) => {
                let last = server.finish(auth_bytes).map_err(failed)?;
                tracing::info!(user = %server.user(), "SASL/SCRAM login");
                Ok(last)
            }
            State::Start | State::Done => Err((
                ResponseError::IllegalSaslState,
                "SaslAuthenticate without a SaslHandshake before it".into(),
            )),
        }
    }
}

/// A SCRAM server nonce from the broker's seeded generator (a real broker's seed is random).
pub(crate) fn nonce(ids: &crate::env::Ids) -> String {
    let mut bytes = [0u8; 24];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&ids.next_u64().to_le_bytes());
    }
    B64.encode(bytes)
}
