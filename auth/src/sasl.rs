//! The SASL mechanisms Kafka clusters offer: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
//! RFC 7677), both sides. Only message logic lives here; the primitives (PBKDF2, HMAC, SHA-2,
//! constant-time comparison) are aws-lc-rs's. Nonces come from the caller, so a seeded world
//! can hand out seeded ones.

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations`/`maxIterations`).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Iterations of credentials riptide makes.
pub const DEFAULT_ITERATIONS: u32 = 8192;

/// A SASL mechanism by its IANA name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The SCRAM hash, `None` for PLAIN.
    pub fn scram(self) -> Option<Scram> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(Scram::Sha256),
            Mechanism::ScramSha512 => Some(Scram::Sha512),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown SASL mechanism {s:?} (known: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
            })
    }
}

/// The hash of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scram {
    #[serde(rename = "scram-sha-256")]
    Sha256,
    #[serde(rename = "scram-sha-512")]
    Sha512,
}

impl Scram {
    pub fn mechanism(self) -> Mechanism {
        match self {
            Scram::Sha256 => Mechanism::ScramSha256,
            Scram::Sha512 => Mechanism::ScramSha512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Scram::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Scram::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Scram::Sha256 => hmac::HMAC_SHA256,
            Scram::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn len(self) -> usize {
        match self {
            Scram::Sha256 => 32,
            Scram::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_alg(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Scram::Sha256 => &digest::SHA256,
            Scram::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// `SaltedPassword := Hi(password, salt, i)`.
    fn salted(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.len()];
        let i = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), i, salt, password.as_bytes(), &mut out);
        out
    }
}

/// What a server stores of a SCRAM password: never the password itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Base64, as Kafka's `kafka-configs --describe` shows them.
    pub salt: String,
    pub iterations: u32,
    pub stored_key: String,
    pub server_key: String,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScramCredential(iterations {})", self.iterations)
    }
}

impl ScramCredential {
    pub fn new(scram: Scram, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = scram.salted(password, salt, iterations);
        let client_key = scram.hmac(&salted, b"Client Key");
        ScramCredential {
            salt: B64.encode(salt),
            iterations,
            stored_key: B64.encode(scram.hash(&client_key)),
            server_key: B64.encode(scram.hmac(&salted, b"Server Key")),
        }
    }

    /// Whether `password` is the one this was made from (SASL/PLAIN checks against it).
    pub fn matches(&self, scram: Scram, password: &str) -> bool {
        let (Ok(salt), Ok(stored)) = (B64.decode(&self.salt), B64.decode(&self.stored_key)) else {
            return false;
        };
        let salted = scram.salted(password, &salt, self.iterations);
        let stored_now = scram.hash(&scram.hmac(&salted, b"Client Key"));
        constant_time::verify_slices_are_equal(&stored_now, &stored).is_ok()
    }
}

/// Why an exchange failed. The texts name no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("invalid username or password")]
    BadCredentials,
    #[error("{0}")]
    Refused(String),
    #[error("the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("the server's signature does not match: it does not know the password")]
    BadServerSignature,
    #[error("SCRAM iterations {0} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
}

/// SASL/PLAIN's one message: `authzid NUL user NUL password`.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// The user and password of a PLAIN message (an authorization id other than the user is refused).
pub fn parse_plain(msg: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| SaslError::Malformed("PLAIN"))?;
    let mut parts = text.split('\0');
    let (Some(authz), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    if user.is_empty() || (!authz.is_empty() && authz != user) {
        return Err(SaslError::Malformed("PLAIN"));
    }
    Ok((user.to_string(), password.to_string()))
}

/// `saslname` escaping of RFC 5802: `,` and `=` in user names.
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn unescape_name(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at + 1..at + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(SaslError::Malformed("SCRAM client-first")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `k=value` attributes of a SCRAM message, in order.
fn attributes<'a>(msg: &'a str, what: &'static str) -> Result<Vec<(char, &'a str)>, SaslError> {
    msg.split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(SaslError::Malformed(what)),
            }
        })
        .collect()
}

fn attribute<'a>(attrs: &[(char, &'a str)], key: char) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    scram: Scram,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    /// Set by [`ScramClient::client_final`]: the signature the server must answer with.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange; `nonce` is printable and has no comma (base64 of random bytes).
    pub fn new(scram: Scram, user: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            scram,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", escape_name(user)),
            client_nonce: nonce.to_string(),
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message answering the server-first one.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::Malformed("SCRAM server-first"))?;
        let attrs = attributes(server_first, "SCRAM server-first")?;
        if let Some(e) = attribute(&attrs, 'e') {
            return Err(SaslError::Refused(e.to_string()));
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (
            attribute(&attrs, 'r'),
            attribute(&attrs, 's'),
            attribute(&attrs, 'i'),
        ) else {
            return Err(SaslError::Malformed("SCRAM server-first"));
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| SaslError::Malformed("SCRAM server-first"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| SaslError::Malformed("SCRAM server-first"))?;
        // A server may not make the client burn CPU at will.
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(SaslError::Iterations(iterations));
        }
        let s = self.scram;
        let salted = s.salted(&self.password, &salt, iterations);
        let client_key = s.hmac(&salted, b"Client Key");
        let stored_key = s.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let proof = xor(&client_key, &s.hmac(&stored_key, auth_message.as_bytes()));
        let server_key = s.hmac(&salted, b"Server Key");
        self.server_signature = Some(s.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows the password too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| SaslError::Malformed("SCRAM server-final"))?;
        let attrs = attributes(text, "SCRAM server-final")?;
        if let Some(e) = attribute(&attrs, 'e') {
            return Err(SaslError::Refused(e.to_string()));
        }
        let got = attribute(&attrs, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or(SaslError::Malformed("SCRAM server-final"))?;
        let want = self
            .server_signature
            .as_ref()
            .ok_or(SaslError::Malformed("SCRAM server-final"))?;
        constant_time::verify_slices_are_equal(&got, want)
            .map_err(|_| SaslError::BadServerSignature)
    }
}

/// The server side of one SCRAM exchange, between the client's two messages.
pub struct ScramServer {
    scram: Scram,
    user: String,
    credential: Option<ScramCredential>,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

impl ScramServer {
    /// Reads the client-first message. `lookup` finds the user's credential; an unknown user
    /// still gets a server-first message (with a salt derived from its name) so that a client
    /// cannot tell unknown users from wrong passwords. `server_nonce` is printable, no comma.
    pub fn start(
        scram: Scram,
        client_first: &[u8],
        server_nonce: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramServer, SaslError> {
        let what = "SCRAM client-first";
        let text = std::str::from_utf8(client_first).map_err(|_| SaslError::Malformed(what))?;
        // gs2 header: no channel binding (`n`), or a client that could but thinks we can't (`y`).
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or(SaslError::Malformed(what))?;
        let attrs = attributes(bare, what)?;
        let (Some(('n', name)), Some(('r', nonce))) = (attrs.first(), attrs.get(1)) else {
            return Err(SaslError::Malformed(what));
        };
        if nonce.is_empty() || name.is_empty() {
            return Err(SaslError::Malformed(what));
        }
        let user = unescape_name(name)?;
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                B64.encode(&scram.hash(user.as_bytes())[..16]),
                DEFAULT_ITERATIONS,
            ),
        };
        let nonce = format!("{nonce}{server_nonce}");
        Ok(ScramServer {
            scram,
            server_first: format!("r={nonce},s={salt},i={iterations}"),
            user,
            credential,
            nonce,
            client_first_bare: bare.to_string(),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn server_first(&self) -> Vec<u8> {
        self.server_first.clone().into_bytes()
    }

    /// Checks the client's proof; on success, the server-final message.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, SaslError> {
        let what = "SCRAM client-final";
        let text = std::str::from_utf8(client_final).map_err(|_| SaslError::Malformed(what))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(SaslError::Malformed(what))?;
        let attrs = attributes(without_proof, what)?;
        // Ending with ours, as Kafka checks: librdkafka sends its own nonce before the whole
        // combined one.
        if !attribute(&attrs, 'r').is_some_and(|r| r.ends_with(&self.nonce)) {
            return Err(SaslError::NonceMismatch);
        }
        // Channel binding data: the gs2 header we were sent, base64 ("biws" = "n,,").
        if !matches!(attribute(&attrs, 'c'), Some("biws") | Some("eSws")) {
            return Err(SaslError::Malformed(what));
        }
        let proof = B64.decode(proof).map_err(|_| SaslError::Malformed(what))?;
        let Some(cred) = &self.credential else {
            return Err(SaslError::BadCredentials);
        };
        let s = self.scram;
        let (Ok(stored_key), Ok(server_key)) =
            (B64.decode(&cred.stored_key), B64.decode(&cred.server_key))
        else {
            return Err(SaslError::BadCredentials);
        };
        if proof.len() != s.len() {
            return Err(SaslError::BadCredentials);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_key = xor(&proof, &s.hmac(&stored_key, auth_message.as_bytes()));
        constant_time::verify_slices_are_equal(&s.hash(&client_key), &stored_key)
            .map_err(|_| SaslError::BadCredentials)?;
        let signature = s.hmac(&server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (SCRAM-SHA-256, user "user", password "pencil").
    #[test]
    fn rfc7677_example() {
        let mut client = ScramClient::new(Scram::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = client.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            client.verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::BadServerSignature)
        );
    }

    fn exchange(scram: Scram, stored: &str, tried: &str) -> Result<(), SaslError> {
        let cred = ScramCredential::new(scram, stored, b"salt-of-sixteen!", 4096);
        let mut client = ScramClient::new(scram, "al,i=ce", tried, "client-nonce");
        let server = ScramServer::start(scram, &client.client_first(), "server-nonce", |u| {
            (u == "al,i=ce").then(|| cred.clone())
        })?;
        assert_eq!(server.user(), "al,i=ce");
        let client_final = client.client_final(&server.server_first())?;
        let server_final = server.finish(&client_final)?;
        client.verify_server_final(&server_final)
    }

    #[test]
    fn both_sides_agree_and_a_wrong_password_fails() {
        for scram in [Scram::Sha256, Scram::Sha512] {
            assert_eq!(exchange(scram, "secret", "secret"), Ok(()));
            assert_eq!(
                exchange(scram, "secret", "Secret"),
                Err(SaslError::BadCredentials)
            );
        }
    }

    #[test]
    fn an_unknown_user_looks_like_a_wrong_password() {
        let client = ScramClient::new(Scram::Sha512, "nobody", "x", "n1");
        let server = ScramServer::start(Scram::Sha512, &client.client_first(), "n2", |_| None)
            .expect("an unknown user still gets a server-first message");
        let first = String::from_utf8(server.server_first()).unwrap();
        assert!(first.starts_with("r=n1n2,s="), "{first}");
        let mut client = client;
        let fin = client.client_final(first.as_bytes()).unwrap();
        assert_eq!(server.finish(&fin), Err(SaslError::BadCredentials));
    }

    #[test]
    fn plain_checks_against_the_salted_credential() {
        let cred = ScramCredential::new(Scram::Sha512, "pw", b"0123456789abcdef", 4096);
        assert!(cred.matches(Scram::Sha512, "pw"));
        assert!(!cred.matches(Scram::Sha512, "pW"));
        assert!(!cred.matches(Scram::Sha256, "pw"));
        let (user, pw) = parse_plain(&plain_message("bob", "pw")).unwrap();
        assert_eq!((user.as_str(), pw.as_str()), ("bob", "pw"));
        assert!(parse_plain(b"eve\0bob\0pw").is_err());
        assert!(parse_plain(b"\0bob").is_err());
        assert!(parse_plain(&[0xff, 0, b'a', 0, b'b']).is_err());
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for junk in [
            &b""[..],
            b"n,,",
            b"n,,n=,r=",
            b"p=tls-unique,,n=a,r=b",
            b"n,,r=x,n=a",
            b"\xff\xfe",
            b"n,,n=a=ZZ,r=b",
        ] {
            assert!(
                ScramServer::start(Scram::Sha256, junk, "s", |_| None).is_err(),
                "{junk:?}"
            );
        }
        let server = ScramServer::start(Scram::Sha256, b"n,,n=a,r=b", "s", |_| None).unwrap();
        for junk in [&b""[..], b"c=biws", b"c=biws,r=bs,p=!!", b"r=bs,p=AAAA"] {
            assert!(server.finish(junk).is_err(), "{junk:?}");
        }
        let mut client = ScramClient::new(Scram::Sha256, "a", "p", "b");
        for junk in [
            &b""[..],
            b"r=b,s=AAAA,i=4096",
            b"r=bx,s=!!,i=4096",
            b"r=bx,s=AAAA,i=1",
        ] {
            assert!(client.client_final(junk).is_err(), "{junk:?}");
        }
    }
}
