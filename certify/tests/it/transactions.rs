//! `certify --scenario transactions` end to end over real TCP on 127.0.0.1, against in-process
//! reference brokers sharing one in-memory object store: the reference broker serves
//! transactions and passes; the same brokers behind a shim that leaves EndTxn out of their
//! ApiVersions replies do not serve them, which is a row of the compatibility table and not a
//! failed run.
// Certification runs over real TCP; the madsim (simulation-only) build has none.
#![cfg(not(madsim))]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use object_store::memory::InMemory;
use riptide_broker::env::SystemClock;
use riptide_broker::{Broker, BrokerConfig};
use riptide_certify::hooks::Hooks;
use riptide_certify::report::{compat_rows, transactions_row};
use riptide_certify::{certify, Certification, Config, NotServed};
use riptide_checker::history::{OpKind, TxnEnd, Value};
use riptide_checker::Verdict;
use riptide_wire::{frame, versions, MAX_FRAME_BYTES};
use riptide_workloads::mix::WorkloadMix;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

type Result<T = ()> = anyhow::Result<T>;

/// Starts `n` brokers (node ids 1..=n) on one in-memory store. With `hide`, each listens behind
/// a shim that removes that API from its ApiVersions replies, and advertises the shim's address
/// (so clients that follow Metadata stay behind it). Returns the addresses clients use.
async fn cluster(n: i32, hide: Option<ApiKey>) -> Result<Vec<String>> {
    let store = Arc::new(InMemory::new());
    let mut addrs = Vec::new();
    for node_id in 1..=n {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let served = listener.local_addr()?.to_string();
        let (front, shim) = match hide {
            Some(_) => {
                let shim = TcpListener::bind("127.0.0.1:0").await?;
                (shim.local_addr()?.port(), Some(shim))
            }
            None => (listener.local_addr()?.port(), None),
        };
        let mut cfg = BrokerConfig::new(node_id, "127.0.0.1", front as i32);
        cfg.heartbeat_interval = Duration::from_millis(100);
        // Long: no broker dies here, and a loaded machine must not make one look dead.
        cfg.session_timeout = Duration::from_secs(10);
        cfg.default_partitions = 2;
        cfg.seed = node_id as u64;
        let broker = Broker::start(cfg, store.clone(), Arc::new(SystemClock::new())).await?;
        tokio::spawn(broker.clone().serve(listener));
        if let (Some(shim), Some(api)) = (shim, hide) {
            tokio::spawn(hide_api(shim, served, api));
        }
        addrs.push(format!("127.0.0.1:{front}"));
    }
    Ok(addrs)
}

/// A TCP relay in front of `upstream` whose ApiVersions replies lack `api`: a broker that does
/// not serve it, as far as any client can tell.
async fn hide_api(listener: TcpListener, upstream: String, api: ApiKey) {
    while let Ok((client, _)) = listener.accept().await {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            // Correlation ids of ApiVersions requests in flight, with their versions.
            let asked: Arc<Mutex<Vec<(i32, i16)>>> = Arc::default();
            let requests = {
                let asked = asked.clone();
                async move {
                    while let Ok(f) = frame::read_owed_frame(&mut client_rx, MAX_FRAME_BYTES).await
                    {
                        if let Some((key, version, corr)) = versions::request_prefix(&f) {
                            if key == ApiKey::ApiVersions as i16 {
                                asked.lock().unwrap().push((corr, version));
                            }
                        }
                        if server_tx.write_all(&frame::framed(&f)).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let replies = async move {
                while let Ok(f) = frame::read_owed_frame(&mut server_rx, MAX_FRAME_BYTES).await {
                    let f = f.freeze();
                    let corr = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                    let version = {
                        let mut asked = asked.lock().unwrap();
                        let at = asked.iter().position(|(c, _)| *c == corr);
                        at.map(|i| asked.remove(i).1)
                    };
                    let f = match version {
                        Some(v) => without(f.clone(), v, api).unwrap_or(f),
                        None => f,
                    };
                    if client_tx.write_all(&frame::framed(&f)).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = requests => {}
                _ = replies => {}
            }
        });
    }
}

/// An ApiVersions reply (header and body) at `version` without `api`.
fn without(mut f: Bytes, version: i16, api: ApiKey) -> Option<Bytes> {
    let header = ResponseHeader::decode(&mut f, 0).ok()?;
    let mut r = versions::decode_api_versions(f, version).ok()?;
    r.api_keys.retain(|k| k.api_key != api as i16);
    let mut out = BytesMut::new();
    header.encode(&mut out, 0).ok()?;
    r.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

/// A short `transactions` certification of `bootstrap`: no hooks and no store proxies, so of
/// the scenario's faults only the client proxy's partitions apply.
fn config(bootstrap: Vec<String>, seed: u64) -> Config {
    Config {
        bootstrap,
        spares: vec![],
        duration: Duration::from_secs(9),
        seed,
        scenario: "transactions".into(),
        allow: BTreeSet::new(),
        max_realtime_lag_ns: None,
        topic: Some(format!("certify-transactions-{seed}")),
        partitions: 2,
        replication_factor: -1,
        producers: 1,
        consumers: 2,
        group_consumers: 0,
        txn_producers: None,
        txn_timeout_ms: 3_000,
        idempotent: true,
        send_interval_ms: 20,
        request_timeout_ms: 3_000,
        recovery: Duration::from_secs(3),
        final_read: Duration::from_secs(15),
        proxy_host: "127.0.0.1".into(),
        hooks: Hooks::default(),
        store_links: Vec::new(),
        security: Default::default(),
        clients: WorkloadMix::default(),
        args_line: "certify --scenario transactions (test)".into(),
    }
}

async fn run(config: Config) -> Certification {
    match tokio::time::timeout(Duration::from_secs(40), certify(&config)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("certify could not run: {e:#}"),
        Err(_) => panic!("certify did not finish within 40 s"),
    }
}

/// (committed, aborted) transactions of the history.
fn ended(c: &Certification) -> (usize, usize) {
    let ok = |end: TxnEnd| {
        c.history
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Ok)
            .filter(|o| matches!(&o.value, Value::Txn(t) if t.end == end))
            .count()
    };
    (ok(TxnEnd::Commit), ok(TxnEnd::Abort))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_broker_serves_transactions_and_passes() {
    let addrs = cluster(2, None).await.unwrap();
    let c = run(config(addrs, 11)).await;
    assert_eq!(c.report.verdict, Verdict::Pass, "{}", c.report.to_text());
    assert_eq!(c.txn_producers, 3, "the scenario's transactional producers");
    assert_eq!(c.txn_not_served, None);
    let (committed, aborted) = ended(&c);
    assert!(committed > 0, "no transaction committed");
    let row = transactions_row(&c).expect("a transactions row");
    assert_eq!(row.status, "served", "{}", row.used);
    let api = |k: ApiKey| {
        compat_rows(&c)
            .into_iter()
            .find(|r| r.key == k as i16)
            .map(|r| r.status)
    };
    assert_eq!(api(ApiKey::EndTxn).as_deref(), Some("ok"));
    assert_eq!(api(ApiKey::AddPartitionsToTxn).as_deref(), Some("ok"));
    // The scenario's faults were drawn and the ones the set-up can apply were applied.
    assert!(
        c.applied.iter().any(|a| a.fault.kind() == "partition"),
        "{:?}",
        c.applied
    );
    eprintln!("committed {committed}, aborted {aborted}: {}", row.used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_end_txn_is_a_compatibility_row_not_a_failed_run() {
    let addrs = cluster(1, Some(ApiKey::EndTxn)).await.unwrap();
    let c = run(config(addrs, 12)).await;
    assert_eq!(
        c.txn_not_served,
        Some(NotServed::Missing(vec!["EndTxn".into()]))
    );
    assert_eq!(ended(&c), (0, 0));
    assert!(
        !c.history
            .ops
            .iter()
            .any(|o| matches!(o.value, Value::Txn(_))),
        "no transactional producer ran"
    );
    let row = transactions_row(&c).expect("a transactions row");
    assert_eq!(
        row.status,
        "not served (EndTxn missing): the run went on without transactional producers"
    );
    // Everything else was certified as usual.
    assert_eq!(c.report.verdict, Verdict::Pass, "{}", c.report.to_text());
    assert!(
        riptide_certify::report::markdown(&c, &riptide_checker::figures::figures(&c.history))
            .contains("| **transactions** | — | — | — | 3 producer(s) asked for, none ran |")
    );
}
