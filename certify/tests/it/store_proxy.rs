//! The S3 fault proxy over real TCP: an `object_store` S3 client whose retries are off, the
//! proxy as its endpoint, and a small S3-speaking upstream in the test (PUT with If-None-Match,
//! GET, HEAD) that shows what really landed. One test per store fault kind shows that it takes
//! effect, and that the proxy counts the requests it hit; faults are set over the proxy's HTTP
//! control endpoints, as `certify` sets them.
#![cfg(not(madsim))]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, RetryConfig};
use riptide_certify::store_proxy::{Mode, StoreControl, StoreProxy, LATE_LANDING};
use riptide_faults::Fault;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

type Objects = Arc<Mutex<BTreeMap<String, Bytes>>>;

/// Just enough of S3 for puts and gets: path-style `/bucket/key`.
async fn upstream() -> (String, Objects) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let objects: Objects = Arc::default();
    let store = objects.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| s3(req, store.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), objects)
}

async fn s3(
    req: Request<Incoming>,
    objects: Objects,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let key = req.uri().path().to_string();
    let create = req.headers().get("if-none-match").is_some();
    let method = req.method().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let reply = |status: StatusCode, body: Bytes, len: usize| {
        Response::builder()
            .status(status)
            .header("etag", "\"e1\"")
            .header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            .header("content-length", len)
            .body(Full::new(body))
            .unwrap()
    };
    let mut objects = objects.lock().unwrap();
    Ok(match method {
        Method::PUT if create && objects.contains_key(&key) => {
            let xml = Bytes::from_static(b"<Error><Code>PreconditionFailed</Code></Error>");
            let n = xml.len();
            reply(StatusCode::PRECONDITION_FAILED, xml, n)
        }
        Method::PUT => {
            objects.insert(key, body);
            reply(StatusCode::OK, Bytes::new(), 0)
        }
        Method::GET | Method::HEAD => match objects.get(&key) {
            Some(v) if method == Method::GET => reply(StatusCode::OK, v.clone(), v.len()),
            Some(v) => reply(StatusCode::OK, Bytes::new(), v.len()),
            None => reply(StatusCode::NOT_FOUND, Bytes::new(), 0),
        },
        _ => reply(StatusCode::NOT_IMPLEMENTED, Bytes::new(), 0),
    })
}

struct Rig {
    store: Arc<dyn ObjectStore>,
    control: StoreControl,
    objects: Objects,
}

async fn rig() -> Rig {
    let (up, objects) = upstream().await;
    let proxy = StoreProxy::start("127.0.0.1:0", Mode::Endpoint { upstream: up }, 7)
        .await
        .unwrap();
    let endpoint = format!("http://{}", proxy.local_addr());
    let store = AmazonS3Builder::new()
        .with_bucket_name("bucket")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_endpoint(&endpoint)
        // Client options replace the builder's, allow_http included: set them first.
        .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(5)))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        // Every fault must reach the caller: no retries hide it.
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let control = StoreControl::new(&proxy.local_addr().to_string());
    control.ping().await.unwrap();
    Rig {
        store: Arc::new(store),
        control,
        objects,
    }
}

fn landed(objects: &Objects, key: &str) -> bool {
    objects
        .lock()
        .unwrap()
        .contains_key(&format!("/bucket/{key}"))
}

fn b() -> String {
    "node".into()
}

#[tokio::test]
async fn a_healthy_link_forwards_everything_and_counts_it() {
    let r = rig().await;
    let p = Path::from("a/1");
    r.store
        .put_opts(&p, "v".into(), PutMode::Create.into())
        .await
        .unwrap();
    assert_eq!(r.store.get(&p).await.unwrap().bytes().await.unwrap(), "v");
    assert!(r.store.head(&p).await.is_ok());
    let o = r.control.observed().await.unwrap();
    assert_eq!(o.ops["PUT (If-None-Match)"].requests, 1, "{o:?}");
    assert_eq!(o.ops["GET"].statuses[&200], 1);
    assert_eq!(o.ops["HEAD"].requests, 1);
    assert!(o.wrote_conditionally() && o.hits.is_empty());
}

#[tokio::test]
async fn racing_conditional_puts_give_one_success_and_one_refusal() {
    let r = rig().await;
    let p = Path::from("race");
    let (a, c) = tokio::join!(
        r.store.put_opts(&p, "a".into(), PutMode::Create.into()),
        r.store.put_opts(&p, "c".into(), PutMode::Create.into()),
    );
    let refused = [&a, &c]
        .iter()
        .filter(|x| matches!(x, Err(object_store::Error::AlreadyExists { .. })))
        .count();
    assert_eq!(
        (a.is_ok() as u8 + c.is_ok() as u8, refused),
        (1, 1),
        "{a:?} {c:?}"
    );
    let o = r.control.observed().await.unwrap();
    assert_eq!(o.ops["PUT (If-None-Match)"].statuses[&412], 1, "{o:?}");
}

#[tokio::test]
async fn store_errors_fail_calls_with_5xx_and_apply_nothing() {
    let r = rig().await;
    r.control
        .set_faults(&[(
            3,
            Fault::StoreErrors {
                broker: b(),
                rate: 1.0,
            },
        )])
        .await
        .unwrap();
    for i in 0..4 {
        let p = Path::from(format!("e/{i}"));
        assert!(r.store.put(&p, "v".into()).await.is_err());
        assert!(!landed(&r.objects, &format!("e/{i}")));
    }
    let o = r.control.observed().await.unwrap();
    let put = &o.ops["PUT"];
    assert_eq!(put.statuses.values().sum::<u64>(), 4, "{o:?}");
    assert!(put.statuses.keys().all(|s| [500, 503].contains(s)));
    assert_eq!(o.hits[&3], 4);
    // Healed: the next call goes through.
    r.control.set_faults(&[]).await.unwrap();
    r.store.put(&Path::from("e/ok"), "v".into()).await.unwrap();
}

#[tokio::test]
async fn store_slow_delays_every_call() {
    let r = rig().await;
    r.control
        .set_faults(&[(
            0,
            Fault::StoreSlow {
                broker: b(),
                extra_ms: 400,
            },
        )])
        .await
        .unwrap();
    let t = Instant::now();
    r.store.put(&Path::from("s"), "v".into()).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.control.observed().await.unwrap().hits[&0], 1);
}

#[tokio::test]
async fn a_cut_link_closes_open_connections_refuses_new_ones_and_applies_nothing() {
    let r = rig().await;
    // A pooled connection exists before the cut.
    r.store
        .put(&Path::from("before"), "v".into())
        .await
        .unwrap();
    r.control
        .set_faults(&[(5, Fault::StoreCut { broker: b() })])
        .await
        .unwrap();
    for i in 0..3 {
        assert!(r
            .store
            .put(&Path::from(format!("c/{i}")), "v".into())
            .await
            .is_err());
        assert!(!landed(&r.objects, &format!("c/{i}")));
    }
    let o = r.control.observed().await.unwrap();
    assert!(o.hits[&5] >= 3 && o.refused >= 1, "{o:?}");
    r.control.set_faults(&[]).await.unwrap();
    r.store.put(&Path::from("after"), "v".into()).await.unwrap();
}

#[tokio::test]
async fn an_ambiguous_write_is_applied_while_the_caller_sees_an_error() {
    let r = rig().await;
    r.control
        .set_faults(&[(
            1,
            Fault::StoreAmbiguous {
                broker: b(),
                rate: 1.0,
            },
        )])
        .await
        .unwrap();
    let p = Path::from("amb");
    assert!(r
        .store
        .put_opts(&p, "v".into(), PutMode::Create.into())
        .await
        .is_err());
    assert!(landed(&r.objects, "amb"), "the write must have landed");
    // Reads are not writes: they pass.
    assert_eq!(r.store.get(&p).await.unwrap().bytes().await.unwrap(), "v");
    let o = r.control.observed().await.unwrap();
    assert_eq!(
        (o.hits[&1], o.ops["PUT (If-None-Match)"].no_reply),
        (1, 1),
        "{o:?}"
    );
}

#[tokio::test]
async fn a_late_write_fails_for_its_caller_then_lands() {
    let r = rig().await;
    r.control
        .set_faults(&[(
            2,
            Fault::StoreLate {
                broker: b(),
                rate: 1.0,
            },
        )])
        .await
        .unwrap();
    let t = Instant::now();
    assert!(r.store.put(&Path::from("late"), "v".into()).await.is_err());
    assert!(
        t.elapsed() < LATE_LANDING,
        "the caller gives up before it lands"
    );
    assert!(!landed(&r.objects, "late"), "not yet landed");
    tokio::time::sleep(LATE_LANDING + Duration::from_millis(700)).await;
    assert!(
        landed(&r.objects, "late"),
        "landed after the caller gave up"
    );
    let o = r.control.observed().await.unwrap();
    assert_eq!((o.hits[&2], o.late_landed), (1, 1), "{o:?}");
}

#[tokio::test]
async fn a_rate_fault_acts_on_the_first_request_it_applies_to_whatever_its_rate() {
    let r = rig().await;
    // A rate so low that the roll alone would almost never pick a request.
    let late = |id| {
        (
            id,
            Fault::StoreLate {
                broker: b(),
                rate: 1e-9,
            },
        )
    };
    r.control.set_faults(&[late(3)]).await.unwrap();
    // A read is not a write: the late fault is still owed after it.
    let _ = r.store.get(&Path::from("nothing")).await;
    assert!(r.store.put(&Path::from("first"), "v".into()).await.is_err());
    assert!(r.store.put(&Path::from("second"), "v".into()).await.is_ok());
    // Still in force (same id): nothing more is owed. A new window of the kind owes again.
    r.control.set_faults(&[late(3)]).await.unwrap();
    assert!(r.store.put(&Path::from("third"), "v".into()).await.is_ok());
    r.control.set_faults(&[late(4)]).await.unwrap();
    assert!(r
        .store
        .put(&Path::from("fourth"), "v".into())
        .await
        .is_err());
    let o = r.control.observed().await.unwrap();
    assert_eq!((o.hits[&3], o.hits[&4]), (1, 1), "{o:?}");
}

#[tokio::test]
async fn control_requests_that_make_no_sense_get_a_clear_error() {
    let r = rig().await;
    let err = StoreControl::new(r.control.addr()).set_faults(&[]).await;
    assert!(err.is_ok());
    // Not a proxy at all.
    let (up, _) = upstream().await;
    let stranger = StoreControl::new(up.trim_start_matches("http://"));
    assert!(stranger.ping().await.is_err());
}
