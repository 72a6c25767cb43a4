//! The certification fault proxy over real TCP on 127.0.0.1, in front of
//! in-process reference brokers sharing one in-memory object store.
//!
//! Each test shows that one proxy behaviour really takes effect on the wire:
//! address rewriting keeps clients on the proxy, a partition holds bytes, a
//! dropped reply loses the answer but not the write, a cut closes open
//! connections, `refuse` closes new ones, a delay slows one node only, the
//! protocol table records versions and error codes, and garbage from a client
//! closes only that client's connection.
// The proxy serves real TCP; the madsim (simulation-only) build has none.
#![cfg(not(madsim))]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use object_store::memory::InMemory;
use riptide_broker::env::SystemClock;
use riptide_broker::{Broker, BrokerConfig};
use riptide_certify::client_proxy::{LinkFaults, NodeView, Proxy};
use riptide_workloads::{
    codec, Client, ClientConfig, ClientError, Connection, ConnectionOptions, OffsetSpec,
    TcpConnector,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout, Instant};

type Result<T = ()> = anyhow::Result<T>;

const PRODUCE: i16 = ApiKey::Produce as i16;
const FETCH: i16 = ApiKey::Fetch as i16;
const METADATA: i16 = ApiKey::Metadata as i16;
const API_VERSIONS: i16 = ApiKey::ApiVersions as i16;
const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();

/// Every test body is bounded, so a proxy that hangs fails instead of stalling CI.
async fn bounded(body: impl Future<Output = Result>) {
    match timeout(Duration::from_secs(25), body).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test did not finish within 25 s"),
    }
}

/// Starts `n` brokers (node ids 1..=n) sharing one object store; their addresses.
async fn start_cluster(n: i32, partitions: i32) -> Result<Vec<String>> {
    let store = Arc::new(InMemory::new());
    let mut addrs = Vec::new();
    for node_id in 1..=n {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut cfg = BrokerConfig::new(node_id, "127.0.0.1", port as i32);
        cfg.heartbeat_interval = Duration::from_millis(100);
        // Long: no broker dies in these tests, and a loaded machine must not
        // make one look dead (ownership would move under the test).
        cfg.session_timeout = Duration::from_secs(10);
        cfg.default_partitions = partitions;
        cfg.seed = node_id as u64;
        let broker = Broker::start(cfg, store.clone(), Arc::new(SystemClock::new())).await?;
        tokio::spawn(broker.clone().serve(listener));
        addrs.push(format!("127.0.0.1:{port}"));
    }
    Ok(addrs)
}

fn config(retries: u32, request_timeout: Duration) -> ClientConfig {
    ClientConfig {
        connection: ConnectionOptions {
            request_timeout,
            connect_timeout: Duration::from_secs(2),
            ..ConnectionOptions::default()
        },
        retries,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        broker_timeout_ms: 2_000,
        ..ClientConfig::default()
    }
}

async fn produce(
    c: &mut Client<TcpConnector>,
    topic: &str,
    partition: i32,
    value: &str,
) -> std::result::Result<i64, ClientError> {
    c.produce(topic, partition, None, value.as_bytes().to_vec().into(), -1)
        .await
}

/// Values in a partition, from offset 0 (`None` values as "").
async fn values(c: &mut Client<TcpConnector>, topic: &str, partition: i32) -> Result<Vec<String>> {
    let r = c.fetch(topic, partition, 0, 0, 1 << 20).await?;
    Ok(r.records
        .iter()
        .map(|r| {
            r.value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
        .collect())
}

/// Polls a partition until it holds `value` (bytes may still be in flight).
async fn wait_for_value(
    c: &mut Client<TcpConnector>,
    topic: &str,
    partition: i32,
    value: &str,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let vals = values(c, topic, partition).await?;
        if vals.iter().any(|v| v == value) {
            return Ok(vals);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{topic}-{partition} never got {value:?}: {vals:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster behind a proxy, with a topic whose leaders are all known and
/// settled (every partition written once through the proxy).
struct Rig {
    addrs: Vec<String>,
    proxy: Proxy,
    /// What `Proxy::bootstrap` said right after start.
    bootstrap: Vec<String>,
    /// Retrying client for setup and final reads.
    client: Client<TcpConnector>,
    topic: String,
    partitions: i32,
}

impl Rig {
    /// `brokers` brokers; the proxy is told only the first `bootstrap` of them.
    async fn start(brokers: i32, bootstrap: usize, partitions: i32, seed: u64) -> Result<Rig> {
        let addrs = start_cluster(brokers, partitions).await?;
        let proxy =
            Proxy::start("127.0.0.1", &addrs[..bootstrap], seed, Default::default()).await?;
        let bootstrap = proxy.bootstrap();
        let mut client = Client::new(
            TcpConnector,
            bootstrap.clone(),
            config(8, Duration::from_secs(2)),
        );
        // Metadata replies name every live broker; the proxy fronts each one
        // it sees. Wait until it has learned every node id.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            client.refresh_metadata(&[]).await?;
            let known = proxy
                .observed()
                .nodes
                .iter()
                .filter(|n| n.node_id.is_some())
                .count();
            if known == brokers as usize {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "proxy learned {known} of {brokers} brokers"
            );
            sleep(Duration::from_millis(50)).await;
        }
        // Let every broker re-read the membership, so ownership is settled.
        sleep(Duration::from_millis(300)).await;
        let topic = format!("proxy-test-{seed}");
        client.create_topic(&topic, partitions, &[]).await?;
        client.refresh_metadata(&[&topic]).await?;
        let mut rig = Rig {
            addrs,
            proxy,
            bootstrap,
            client,
            topic,
            partitions,
        };
        for p in 0..partitions {
            produce(&mut rig.client, &rig.topic.clone(), p, "warm-up").await?;
        }
        for p in 0..partitions {
            anyhow::ensure!(
                rig.client.cached_leader(&rig.topic, p).is_some(),
                "no leader for partition {p}"
            );
        }
        Ok(rig)
    }

    fn leader(&self, partition: i32) -> i32 {
        self.client
            .cached_leader(&self.topic, partition)
            .expect("leaders known after setup")
    }

    /// Partition 0 and a partition led by a different broker.
    fn two_partitions(&self) -> (i32, i32) {
        let p = 0;
        let q = (0..self.partitions)
            .find(|&q| self.leader(q) != self.leader(p))
            .expect("partitions spread over more than one broker");
        (p, q)
    }

    fn node(&self, node_id: i32) -> NodeView {
        self.proxy
            .observed()
            .nodes
            .into_iter()
            .find(|n| n.node_id == Some(node_id))
            .unwrap_or_else(|| panic!("proxy knows node {node_id}"))
    }

    /// Upstream address (the key of the proxy's fault controls) of a node.
    fn upstream(&self, node_id: i32) -> String {
        self.node(node_id).upstream
    }

    /// A client that makes exactly one attempt per operation, with its
    /// metadata loaded and a connection open to each partition in `warm`.
    async fn probe(&self, request_timeout: Duration, warm: &[i32]) -> Result<Client<TcpConnector>> {
        let mut c = Client::new(
            TcpConnector,
            self.bootstrap.clone(),
            config(0, request_timeout),
        );
        c.refresh_metadata(&[&self.topic]).await?;
        for &p in warm {
            produce(&mut c, &self.topic, p, "probe-warm-up").await?;
        }
        Ok(c)
    }
}

// ---- 1. address rewriting ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_rewriting_keeps_clients_on_the_proxy() {
    bounded(rewriting()).await
}

async fn rewriting() -> Result {
    // The proxy knows only broker 1; it must discover 2 and 3 from Metadata.
    let mut rig = Rig::start(3, 1, 12, 1).await?;
    let topic = rig.topic.clone();
    let bootstrap = rig.bootstrap.clone();
    assert_eq!(bootstrap.len(), 1);
    assert_eq!(bootstrap[0], rig.node(1).listen);
    assert!(
        !rig.addrs.contains(&bootstrap[0]),
        "bootstrap is a proxy address"
    );

    for p in 0..rig.partitions {
        let value = format!("value-{p}");
        let offset = produce(&mut rig.client, &topic, p, &value).await?;
        let r = rig.client.fetch(&topic, p, offset, 0, 1 << 20).await?;
        let first = r.records.first().expect("fetched what was produced");
        assert_eq!(first.offset, offset);
        assert_eq!(first.value.as_deref(), Some(value.as_bytes()));
    }

    let obs = rig.proxy.observed();
    assert_eq!(
        obs.nodes.len(),
        3,
        "one listener per broker: {:?}",
        obs.nodes
    );
    let ids: BTreeSet<i32> = obs.nodes.iter().filter_map(|n| n.node_id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    assert!(obs.rewritten > 0, "Metadata replies were rewritten");
    assert_eq!(obs.rewrite_failures, 0);
    for n in &obs.nodes {
        assert!(rig.addrs.contains(&n.upstream), "{n:?}");
        assert!(!rig.addrs.contains(&n.listen), "{n:?}");
    }

    // Every leader the client wrote to was reached through its proxy listener,
    // including brokers the proxy was never told about.
    let leaders: BTreeSet<i32> = (0..rig.partitions).map(|p| rig.leader(p)).collect();
    assert!(
        leaders.iter().any(|&l| rig.node(l).index > 0),
        "some partition is led by a discovered (non-bootstrap) broker: {leaders:?}"
    );
    for &l in &leaders {
        let n = rig.node(l);
        assert!(n.connections > 0, "leader {l} reached via the proxy: {n:?}");
    }

    // The client never learned a real broker address: its metadata and its
    // connection pool name proxy listeners only.
    let seen = format!("{:?}", rig.client);
    for addr in &rig.addrs {
        assert!(
            !seen.contains(&format!("\"{addr}\"")),
            "client knows upstream {addr}: {seen}"
        );
    }
    for &l in &leaders {
        let listen = rig.node(l).listen;
        assert!(seen.contains(&format!("\"{listen}\"")), "{seen}");
    }
    Ok(())
}

// ---- 2. partition ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_times_out_requests_and_delivers_held_bytes_after_heal() {
    bounded(partition()).await
}

async fn partition() -> Result {
    let mut rig = Rig::start(2, 2, 16, 2).await?;
    let topic = rig.topic.clone();
    let (p, q) = rig.two_partitions();
    let (a, b) = (rig.leader(p), rig.leader(q));
    let mut probe = rig.probe(Duration::from_secs(1), &[p]).await?;

    rig.proxy.set_faults(
        &rig.upstream(a),
        LinkFaults {
            partitioned: true,
            ..LinkFaults::default()
        },
    );
    assert!(rig.node(a).faults.partitioned);
    let started = Instant::now();
    let err = produce(&mut probe, &topic, p, "held")
        .await
        .expect_err("a produce to a partitioned node fails");
    let took = started.elapsed();
    assert!(
        matches!(err, ClientError::Timeout { written: true, .. }),
        "timeout after the request left the client: {err:?}"
    );
    assert!(!err.is_definite(), "held bytes may still arrive: {err}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "failed after the 1 s request timeout, took {took:?}"
    );

    // Only node `a` is cut off: node `b` keeps serving during the partition.
    produce(&mut rig.client, &topic, q, "other-node").await?;
    assert_ne!(a, b);

    rig.proxy.heal_all();
    assert!(!rig.node(a).faults.partitioned);
    produce(&mut probe, &topic, p, "after-heal").await?;

    // The request the client gave up on was held, not lost: it reaches the
    // broker once the partition heals (which is why it was indeterminate).
    let vals = wait_for_value(&mut rig.client, &topic, p, "held").await?;
    assert!(vals.iter().any(|v| v == "after-heal"), "{vals:?}");
    assert_eq!(vals.iter().filter(|v| *v == "held").count(), 1, "{vals:?}");

    // Replies are held too: a long-poll fetch passes before the partition
    // starts, and its (empty) answer, due at 800 ms, never gets back.
    let end = probe.list_offsets(&topic, p, OffsetSpec::Latest).await?;
    let proxy = rig.proxy.clone();
    let up = rig.upstream(a);
    let started = Instant::now();
    let (fetched, ()) = tokio::join!(probe.fetch(&topic, p, end, 800, 1 << 20), async {
        sleep(Duration::from_millis(300)).await;
        proxy.set_faults(
            &up,
            LinkFaults {
                partitioned: true,
                ..LinkFaults::default()
            },
        );
    });
    let took = started.elapsed();
    rig.proxy.heal_all();
    let err = fetched.expect_err("the fetch reply is held by the partition");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(1700),
        "timed out after request timeout + max wait, took {took:?}"
    );
    Ok(())
}

// ---- 3. dropped replies ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_reply_loses_the_answer_but_not_the_write() {
    bounded(dropped_reply()).await
}

async fn dropped_reply() -> Result {
    let mut rig = Rig::start(2, 2, 4, 3).await?;
    let topic = rig.topic.clone();
    let p = 0;
    let a = rig.leader(p);
    let mut probe = rig.probe(Duration::from_secs(2), &[p]).await?;
    let answered = rig.node(a).connections;

    rig.proxy.set_faults(
        &rig.upstream(a),
        LinkFaults {
            drop_reply_rate: 1.0,
            ..LinkFaults::default()
        },
    );
    let started = Instant::now();
    let err = produce(&mut probe, &topic, p, "reply-lost")
        .await
        .expect_err("the reply never reaches the client");
    let took = started.elapsed();
    assert!(
        matches!(err, ClientError::Io { written: true, .. }),
        "the connection closed after the request was sent: {err:?}"
    );
    assert!(!err.is_definite(), "outcome unknown to the client: {err}");
    assert!(
        took < Duration::from_millis(1500),
        "the drop closes the connection at once, not by timeout: {took:?}"
    );
    assert_eq!(
        rig.node(a).connections,
        answered,
        "failed on the pooled connection"
    );

    rig.proxy.heal_all();
    // The write happened: the broker appended it and only the reply was lost.
    let vals = wait_for_value(&mut rig.client, &topic, p, "reply-lost").await?;
    assert_eq!(
        vals.iter().filter(|v| *v == "reply-lost").count(),
        1,
        "{vals:?}"
    );
    produce(&mut probe, &topic, p, "after-heal").await?;
    Ok(())
}

// ---- 4. cut and refuse ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_closes_open_connections_and_refuse_closes_new_ones() {
    bounded(cut_and_refuse()).await
}

async fn cut_and_refuse() -> Result {
    let mut rig = Rig::start(2, 2, 4, 4).await?;
    let topic = rig.topic.clone();
    let p = 0;
    let a = rig.leader(p);
    let up = rig.upstream(a);
    let mut probe = rig.probe(Duration::from_secs(2), &[p]).await?;
    // An idle connection too: a cut must close it without waiting for traffic.
    let warm = rig.node(a).connections;
    let mut idle = TcpStream::connect(&rig.node(a).listen).await?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while rig.node(a).connections == warm {
        anyhow::ensure!(Instant::now() < deadline, "idle connection not relayed");
        sleep(Duration::from_millis(10)).await;
    }
    sleep(Duration::from_millis(50)).await; // its relay is under way
    let before = rig.node(a).connections;

    rig.proxy.cut(&up);
    assert_eq!(rig.node(a).faults.cut_generation, 1);
    let mut buf = [0u8; 16];
    match timeout(Duration::from_secs(1), idle.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => anyhow::bail!("idle connection got {n} bytes"),
        Err(_) => anyhow::bail!("the cut left an idle connection open"),
    }
    sleep(Duration::from_millis(100)).await; // the pooled one is closed as well
    let started = Instant::now();
    let err = produce(&mut probe, &topic, p, "on-cut-connection")
        .await
        .expect_err("the pooled connection was closed by the cut");
    assert!(matches!(err, ClientError::Io { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a closed connection, not a timeout"
    );
    assert_eq!(
        rig.node(a).connections,
        before,
        "the failure was on the old connection"
    );

    // A cut is one-shot; `refuse` closes every new connection.
    rig.proxy.set_faults(
        &up,
        LinkFaults {
            refuse: true,
            ..LinkFaults::default()
        },
    );
    assert_eq!(
        rig.node(a).faults.cut_generation,
        1,
        "set_faults keeps the cut count"
    );
    let err = produce(&mut probe, &topic, p, "refused")
        .await
        .expect_err("new connections are refused");
    assert!(
        matches!(err, ClientError::Io { .. } | ClientError::Connect { .. }),
        "{err:?}"
    );
    assert_eq!(
        rig.node(a).connections,
        before,
        "refused connections are not relayed"
    );

    rig.proxy.heal_all();
    produce(&mut probe, &topic, p, "after-heal").await?;
    assert!(rig.node(a).connections > before, "a new relayed connection");

    // Nothing sent on a cut or refused connection reached the broker.
    let vals = wait_for_value(&mut rig.client, &topic, p, "after-heal").await?;
    assert!(!vals.iter().any(|v| v == "on-cut-connection"), "{vals:?}");
    assert!(!vals.iter().any(|v| v == "refused"), "{vals:?}");
    Ok(())
}

// ---- 5. delay ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_slows_one_node_and_requests_still_succeed() {
    bounded(delay()).await
}

async fn delay() -> Result {
    let mut rig = Rig::start(2, 2, 16, 5).await?;
    let topic = rig.topic.clone();
    let (p, q) = rig.two_partitions();
    let a = rig.leader(p);
    let mut probe = rig.probe(Duration::from_secs(3), &[p, q]).await?;

    rig.proxy.set_faults(
        &rig.upstream(a),
        LinkFaults {
            delay_ms: 300,
            ..LinkFaults::default()
        },
    );
    let started = Instant::now();
    let offset = produce(&mut probe, &topic, p, "delayed").await?;
    let slow = started.elapsed();
    // One-way delay per frame: the request and its reply are each held 300 ms.
    assert!(
        slow >= Duration::from_millis(600),
        "delayed round trip took {slow:?}"
    );

    let started = Instant::now();
    produce(&mut probe, &topic, q, "not-delayed").await?;
    let fast = started.elapsed();
    assert!(
        fast + Duration::from_millis(300) < slow,
        "the other node is not delayed: {fast:?} vs {slow:?}"
    );

    rig.proxy.heal_all();
    let r = rig.client.fetch(&topic, p, offset, 0, 1 << 20).await?;
    assert_eq!(
        r.records.first().and_then(|r| r.value.as_deref()),
        Some(&b"delayed"[..])
    );
    Ok(())
}

// ---- 6. protocol observation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observes_versions_and_error_codes() {
    bounded(observation()).await
}

async fn observation() -> Result {
    let mut rig = Rig::start(2, 2, 4, 6).await?;
    let topic = rig.topic.clone();
    for p in 0..rig.partitions {
        for i in 0..3 {
            produce(&mut rig.client, &topic, p, &format!("obs-{p}-{i}")).await?;
        }
    }

    let obs = rig.proxy.observed();
    let produce_use: BTreeMap<i16, _> = obs
        .usage
        .iter()
        .filter(|((api, _), _)| *api == PRODUCE)
        .map(|((_, v), u)| (*v, u.clone()))
        .collect();
    assert_eq!(produce_use.len(), 1, "one Produce version: {produce_use:?}");
    let (&version, used) = produce_use.iter().next().expect("checked");
    // 4 warm-up records and 12 more, at least.
    assert!(used.requests >= 16, "{used:?}");
    assert_eq!(used.requests, used.responses, "{used:?}");
    assert_eq!(used.unanswered, 0, "{used:?}");
    assert_eq!(used.undecodable, 0, "{used:?}");
    for api in [API_VERSIONS, METADATA] {
        assert!(
            obs.usage
                .iter()
                .any(|((k, _), u)| *k == api && u.responses > 0),
            "api {api} seen: {:?}",
            obs.usage
        );
    }
    let used_nodes: Vec<&NodeView> = obs.nodes.iter().filter(|n| n.connections > 0).collect();
    assert!(!used_nodes.is_empty());
    for n in used_nodes {
        let (lo, hi) = *n
            .advertised
            .get(&PRODUCE)
            .unwrap_or_else(|| panic!("Produce advertised by {n:?}"));
        assert!(lo <= version && version <= hi, "{n:?} v{version}");
        assert!(n.advertised.contains_key(&API_VERSIONS), "{n:?}");
        assert!(n.advertised.contains_key(&FETCH), "{n:?}");
    }

    // A Produce to a partition that does not exist, sent raw through the
    // proxy (the client itself would refuse it from its metadata).
    let listen = rig.node(rig.leader(0)).listen;
    let opts = config(0, Duration::from_secs(2)).connection;
    let mut conn = Connection::open(&TcpConnector, &listen, &opts).await?;
    let v = conn.pick_version(ApiKey::Produce)?;
    let batch = codec::encode_record_batch(
        None,
        Some(b"nowhere".to_vec().into()),
        -1,
        Compression::None,
        None,
    )?;
    let req = codec::produce_request(&topic, 99, batch, -1, 2_000);
    let errors = |api: i16, code: i16| -> u64 {
        rig.proxy
            .observed()
            .usage
            .iter()
            .filter(|((k, _), _)| *k == api)
            .filter_map(|(_, u)| u.error_codes.get(&code))
            .sum()
    };
    let unknown_before = errors(PRODUCE, UNKNOWN_TOPIC_OR_PARTITION);
    let resp = conn.send(&req, v).await?;
    let code = resp
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .map(|p| p.error_code)
        .next()
        .expect("a partition response");
    assert_eq!(
        code, UNKNOWN_TOPIC_OR_PARTITION,
        "partition 99 does not exist"
    );
    // Counted as the reply passed, so already visible now.
    assert_eq!(
        errors(PRODUCE, code),
        unknown_before + 1,
        "{:?}",
        rig.proxy.observed().usage
    );

    // A fetch past the end: OFFSET_OUT_OF_RANGE, recorded under Fetch.
    let out_of_range_before = errors(FETCH, OFFSET_OUT_OF_RANGE);
    let err = rig
        .client
        .fetch(&topic, 0, 1_000_000, 0, 1 << 20)
        .await
        .expect_err("offset out of range");
    assert_eq!(err.code(), Some(OFFSET_OUT_OF_RANGE), "{err:?}");
    assert_eq!(
        errors(FETCH, OFFSET_OUT_OF_RANGE),
        out_of_range_before + 1,
        "{:?}",
        rig.proxy.observed().usage
    );
    Ok(())
}

// ---- 7. robustness ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_closes_only_its_connection() {
    bounded(garbage()).await
}

/// Writes `bytes` to a fresh connection to `addr` and waits for the far end
/// to close it (EOF or reset) within 3 s.
async fn closed_after(addr: &str, bytes: &[u8]) -> Result {
    let mut s = TcpStream::connect(addr).await?;
    // The proxy may close before reading everything; a failed write is fine.
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, s.read(&mut buf)).await {
            Err(_) => anyhow::bail!("connection sent {bytes:02x?} was left open"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => continue, // a reply to something that parsed; keep reading
        }
    }
}

async fn garbage() -> Result {
    let mut rig = Rig::start(1, 1, 1, 7).await?;
    let topic = rig.topic.clone();
    let listen = rig.node(1).listen;

    // A length far over the proxy's frame limit.
    closed_after(&listen, &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]).await?;
    // A plausible length, then an API key nobody knows: the broker closes,
    // and the proxy passes that on.
    let mut frame = 12u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef]);
    closed_after(&listen, &frame).await?;
    // A frame too short to hold a request header.
    closed_after(&listen, &[0, 0, 0, 2, 0xff, 0xff]).await?;
    // Seeded noise.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    closed_after(&listen, &noise).await?;
    // A client that connects and vanishes mid-frame.
    {
        let mut s = TcpStream::connect(&listen).await?;
        s.write_all(&[0, 0, 1, 0, 0]).await?;
    }

    // The proxy still serves: the open pooled connection and a new client.
    produce(&mut rig.client, &topic, 0, "still-serving").await?;
    let mut fresh = Client::new(
        TcpConnector,
        rig.bootstrap.clone(),
        config(0, Duration::from_secs(2)),
    );
    produce(&mut fresh, &topic, 0, "new-client").await?;
    let vals = values(&mut fresh, &topic, 0).await?;
    assert!(vals.iter().any(|v| v == "still-serving"), "{vals:?}");
    assert!(vals.iter().any(|v| v == "new-client"), "{vals:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_spelling_of_a_broker_address_is_the_same_node() {
    bounded(aliases()).await
}

/// The broker advertises `localhost:P`, the user bootstraps with
/// `127.0.0.1:P`: faults set under the bootstrap spelling must still reach
/// the clients that follow the advertised one.
async fn aliases() -> Result {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut cfg = BrokerConfig::new(1, "localhost", port as i32);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.session_timeout = Duration::from_secs(10);
    cfg.default_partitions = 1;
    let broker =
        Broker::start(cfg, Arc::new(InMemory::new()), Arc::new(SystemClock::new())).await?;
    tokio::spawn(broker.clone().serve(listener));
    let upstream = format!("127.0.0.1:{port}");
    let proxy = Proxy::start(
        "127.0.0.1",
        std::slice::from_ref(&upstream),
        1,
        Default::default(),
    )
    .await?;
    let mut c = Client::new(
        TcpConnector,
        proxy.bootstrap(),
        config(0, Duration::from_secs(1)),
    );
    c.create_topic("alias", 1, &[]).await?;
    produce(&mut c, "alias", 0, "before").await?;
    let nodes = proxy.observed().nodes;
    assert_eq!(nodes.len(), 1, "one node, not one per spelling: {nodes:?}");
    assert_eq!(nodes[0].node_id, Some(1));

    proxy.set_faults(
        &upstream,
        LinkFaults {
            partitioned: true,
            ..LinkFaults::default()
        },
    );
    let err = produce(&mut c, "alias", 0, "during")
        .await
        .expect_err("the partition reaches clients that use the advertised name");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    proxy.heal_all();
    produce(&mut c, "alias", 0, "after").await?;
    Ok(())
}
