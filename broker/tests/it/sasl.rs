//! SASL on the broker, over real TCP: before a login only ApiVersions, SaslHandshake and
//! SaslAuthenticate are served; PLAIN and SCRAM-SHA-256/512 logins work with the right password
//! and are refused (SASL_AUTHENTICATION_FAILED, connection closed) with a wrong one; an unknown
//! mechanism gets UNSUPPORTED_SASL_MECHANISM and the offered list; garbage closes the
//! connection and the broker serves on.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use object_store::memory::InMemory;
use riptide_auth::client::{authenticate, ConnectError};
use riptide_auth::users::UserEntry;
use riptide_auth::{ClientSasl, Mechanism, Users};
use riptide_broker::env::SystemClock;
use riptide_broker::{Broker, BrokerConfig};
use riptide_wire::{frame, ResponseError};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A broker whose only user is `alice`, password `wonderland` (`None`: no SASL at all).
async fn broker(sasl: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = BrokerConfig::new(1, "127.0.0.1", port as i32);
    cfg.session_timeout = Duration::from_secs(30);
    if sasl {
        let entry = UserEntry::from_password(
            "wonderland",
            [b"salt-number-one!", b"salt-number-two!"],
            4096,
        );
        cfg.sasl = Some(Arc::new(
            Users::from_toml(&Users::entry_toml("alice", &entry)).unwrap(),
        ));
    }
    let b = Broker::start(cfg, Arc::new(InMemory::new()), Arc::new(SystemClock::new()))
        .await
        .unwrap();
    tokio::spawn(b.serve(listener));
    port
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Sends one request; the reply, or `None` if the broker closed the connection instead.
async fn call<Req: Encodable, Resp: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Option<Resp> {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    conn.write_all(&frame::framed(&body)).await.ok()?;
    let mut reply = frame::read_frame(conn, 1 << 20).await.ok()??.freeze();
    let header = ResponseHeader::decode(&mut reply, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Some(Resp::decode(&mut reply, version).unwrap())
}

async fn metadata(conn: &mut TcpStream) -> Option<MetadataResponse> {
    call(conn, ApiKey::Metadata, 4, &MetadataRequest::default()).await
}

fn alice(mechanism: Mechanism, password: &str) -> ClientSasl {
    ClientSasl::new(mechanism, "alice", password)
}

#[tokio::test]
async fn every_mechanism_logs_in_with_the_right_password_and_then_is_served() {
    let port = broker(true).await;
    for m in Mechanism::ALL {
        let mut conn = connect(port).await;
        let versions: ApiVersionsResponse = call(
            &mut conn,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .await
        .expect("ApiVersions is served before the login");
        assert!(versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16));
        authenticate(&mut conn, &alice(m, "wonderland"), "client-nonce")
            .await
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        let md = metadata(&mut conn).await.expect("served after the login");
        assert_eq!(md.brokers.len(), 1, "{m}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_connection_closed() {
    let port = broker(true).await;
    for m in Mechanism::ALL {
        for (user, password) in [("alice", "Wonderland"), ("mallory", "wonderland")] {
            let mut conn = connect(port).await;
            let e = authenticate(&mut conn, &ClientSasl::new(m, user, password), "n")
                .await
                .expect_err("refused");
            let ConnectError::Refused(why) = &e else {
                panic!("{m} {user}: {e}");
            };
            assert!(why.contains("SaslAuthenticationFailed"), "{m}: {why}");
            assert!(!why.contains(password), "{why}");
            assert!(metadata(&mut conn).await.is_none(), "{m}: still served");
        }
    }
}

#[tokio::test]
async fn nothing_but_api_versions_and_sasl_before_the_login() {
    let port = broker(true).await;
    let mut conn = connect(port).await;
    assert!(metadata(&mut conn).await.is_none(), "Metadata before login");
    // Halfway through SCRAM is not logged in either.
    let mut conn = connect(port).await;
    let hs: SaslHandshakeResponse = call(
        &mut conn,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
    )
    .await
    .unwrap();
    assert_eq!(hs.error_code, 0);
    let first: SaslAuthenticateResponse = call(
        &mut conn,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=abc")),
    )
    .await
    .unwrap();
    assert_eq!(first.error_code, 0);
    assert!(first.auth_bytes.starts_with(b"r=abc"));
    assert!(metadata(&mut conn).await.is_none(), "Metadata mid-SCRAM");
}

#[tokio::test]
async fn an_unknown_mechanism_gets_the_offered_list() {
    let port = broker(true).await;
    let mut conn = connect(port).await;
    let hs: SaslHandshakeResponse = call(
        &mut conn,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    )
    .await
    .unwrap();
    assert_eq!(
        hs.error_code,
        ResponseError::UnsupportedSaslMechanism.code()
    );
    let offered: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(
        metadata(&mut conn).await.is_none(),
        "closed after the refusal"
    );

    // Without users no mechanism is offered, and everything is served.
    let open = broker(false).await;
    let mut conn = connect(open).await;
    let e = authenticate(&mut conn, &alice(Mechanism::Plain, "x"), "n")
        .await
        .expect_err("nothing to log in to");
    assert!(matches!(e, ConnectError::Unsupported { .. }), "{e}");
    let mut conn = connect(open).await;
    assert!(metadata(&mut conn).await.is_some());
}

#[tokio::test]
async fn garbage_during_the_login_closes_only_that_connection() {
    let port = broker(true).await;
    for (mechanism, junk) in [
        ("PLAIN", &b"no-nul-at-all"[..]),
        ("SCRAM-SHA-256", b"\xff\xfe\xfd"),
        ("SCRAM-SHA-512", b"p=tls-server-end-point,,n=alice,r=x"),
    ] {
        let mut conn = connect(port).await;
        let hs: SaslHandshakeResponse = call(
            &mut conn,
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        )
        .await
        .unwrap();
        assert_eq!(hs.error_code, 0);
        let r: SaslAuthenticateResponse = call(
            &mut conn,
            ApiKey::SaslAuthenticate,
            1,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(junk)),
        )
        .await
        .unwrap();
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        assert!(metadata(&mut conn).await.is_none());
    }
    // A frame that is not a request at all, then a good login on a new connection.
    let mut conn = connect(port).await;
    conn.write_all(&frame::framed(b"\x00\x11garbage"))
        .await
        .unwrap();
    assert!(frame::read_frame(&mut conn, 1 << 20)
        .await
        .map_or(true, |f| f.is_none()));
    let mut conn = connect(port).await;
    authenticate(&mut conn, &alice(Mechanism::ScramSha256, "wonderland"), "n")
        .await
        .unwrap();
    assert!(metadata(&mut conn).await.is_some());
}

/// One bare SASL token each way, as after a SaslHandshake v0; `None` if the broker closed.
async fn raw_token(conn: &mut TcpStream, token: &[u8]) -> Option<Bytes> {
    conn.write_all(&frame::framed(token)).await.ok()?;
    Some(frame::read_frame(conn, 1 << 20).await.ok()??.freeze())
}

#[tokio::test]
async fn after_a_v0_handshake_tokens_travel_bare() {
    use riptide_auth::sasl::{Scram, ScramClient};
    let port = broker(true).await;
    for (password, ok) in [("wonderland", true), ("wrong", false)] {
        let mut conn = connect(port).await;
        let hs: SaslHandshakeResponse = call(
            &mut conn,
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
        )
        .await
        .unwrap();
        assert_eq!(hs.error_code, 0);
        let mut client = ScramClient::new(Scram::Sha256, "alice", password, "bare-nonce");
        let first = raw_token(&mut conn, &client.client_first()).await.unwrap();
        let fin = client.client_final(&first).unwrap();
        match raw_token(&mut conn, &fin).await {
            Some(last) if ok => client.verify_server_final(&last).unwrap(),
            None if !ok => {}
            other => panic!("password {password}: {other:?}"),
        }
        assert_eq!(metadata(&mut conn).await.is_some(), ok, "{password}");
    }
}
