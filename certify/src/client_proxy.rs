//! A Kafka-aware TCP proxy for certification: one listener in front of each
//! broker of a real cluster. It rewrites the broker addresses in Metadata,
//! FindCoordinator and DescribeCluster replies so that clients keep going
//! through it, and on command partitions, delays, drops replies and cuts
//! connections of one node — faults that need no root on the target.
//!
//! It also watches the protocol: which API versions each node advertises,
//! which versions clients used, which requests got error codes or no answer.
//! That is the compatibility table of a certification report.
//!
//! Towards the brokers it speaks what the cluster requires (TLS, a SASL login on every
//! connection it opens: [`Security`]); towards the clients, plaintext with no login, so the
//! workload and the faults are the same for every cluster.
//!
//! Real TCP only (`tokio::net`); it never runs inside the simulator.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeClusterResponse, FindCoordinatorResponse,
    MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_auth::Security;
use riptide_coverage::reached;
use riptide_faults::Fault;
use riptide_wire::{frame, versions, MAX_FRAME_BYTES};
use riptide_workloads::codec::client_range;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What is currently wrong with the link between clients and one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkFaults {
    /// Nothing passes in either direction (bytes wait, as TCP would
    /// retransmit them); new connections are accepted but not forwarded.
    pub partitioned: bool,
    /// Extra one-way delay per frame.
    pub delay_ms: u64,
    /// Probability that a reply is discarded and the connection closed: the
    /// request took effect but the client cannot know.
    pub drop_reply_rate: f64,
    /// New connections are closed at once.
    pub refuse: bool,
    /// Bumped to close every open connection.
    pub cut_generation: u64,
}

impl LinkFaults {
    /// The client-link faults of one broker while `active` faults are in force: overlapping
    /// delays add up, the highest drop rate wins. Partitions cut the clients' side (the only
    /// link the proxy holds).
    pub fn combine<'a>(broker: &str, active: impl IntoIterator<Item = &'a Fault>) -> LinkFaults {
        let mut l = LinkFaults::default();
        for f in active.into_iter().filter(|f| f.brokers().contains(&broker)) {
            match f {
                Fault::Partition { .. } | Fault::PartitionOneway { .. } => l.partitioned = true,
                Fault::LinkSlow { ms, .. } => l.delay_ms += ms,
                Fault::RepliesLost { rate, .. } => l.drop_reply_rate = l.drop_reply_rate.max(*rate),
                Fault::ConnectionsCut { .. } => l.refuse = true,
                _ => {}
            }
        }
        l
    }
}

/// Per API key and version: what clients asked and what came back.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ApiUse {
    pub requests: u64,
    pub responses: u64,
    /// Requests whose connection closed before any reply.
    pub unanswered: u64,
    /// Replies the proxy could not decode at the version asked.
    pub undecodable: u64,
    /// Non-zero error codes in replies, with counts.
    pub error_codes: BTreeMap<i16, u64>,
}

/// What the proxy saw of one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeView {
    /// Index in discovery order: bootstrap addresses first.
    pub index: usize,
    pub upstream: String,
    pub listen: String,
    /// From Metadata replies, once seen.
    pub node_id: Option<i32>,
    /// Advertised `(min, max)` per API key, from the last ApiVersions reply.
    pub advertised: BTreeMap<i16, (i16, i16)>,
    pub connections: u64,
    pub faults: LinkFaults,
}

/// Everything the proxy observed, for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observed {
    pub nodes: Vec<NodeView>,
    /// `(api key, version)` → use.
    #[serde(serialize_with = "usage_as_list")]
    pub usage: BTreeMap<(i16, i16), ApiUse>,
    /// Replies whose addresses were rewritten, and ones that could not be.
    pub rewritten: u64,
    pub rewrite_failures: u64,
}

/// The APIs a transactional producer cannot do without (FindCoordinator and Produce aside, which
/// every workload needs).
pub const TXN_APIS: [ApiKey; 3] = [
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::EndTxn,
];

/// The further APIs of consume-transform-produce: input offsets committed in the transaction.
pub const TXN_OFFSET_APIS: [ApiKey; 2] = [ApiKey::AddOffsetsToTxn, ApiKey::TxnOffsetCommit];

impl Observed {
    /// The APIs of `apis` that some node which answered ApiVersions does not advertise at any
    /// version riptide's client speaks. Nodes never heard from say nothing.
    pub fn missing(&self, apis: &[ApiKey]) -> Vec<ApiKey> {
        apis.iter()
            .copied()
            .filter(|api| {
                let Some((clo, chi)) = client_range(*api) else {
                    return true;
                };
                self.nodes
                    .iter()
                    .filter(|n| !n.advertised.is_empty())
                    .any(|n| match n.advertised.get(&(*api as i16)) {
                        Some((lo, hi)) => clo.max(*lo) > chi.min(*hi),
                        None => true,
                    })
            })
            .collect()
    }
}

struct Node {
    view: NodeView,
    faults: watch::Sender<LinkFaults>,
    /// Where the upstream address resolves to: two spellings of one broker
    /// (`localhost:9092`, `127.0.0.1:9092`) must be one node, or faults set
    /// on one spelling would miss clients using the other.
    resolved: Vec<std::net::SocketAddr>,
}

struct State {
    nodes: BTreeMap<String, Node>,
    /// Other spellings of a node's upstream address → its key in `nodes`.
    aliases: BTreeMap<String, String>,
    usage: BTreeMap<(i16, i16), ApiUse>,
    rewritten: u64,
    rewrite_failures: u64,
    rng: ChaCha8Rng,
}

impl State {
    fn node(&self, upstream: &str) -> Option<&Node> {
        let key = self.aliases.get(upstream).map_or(upstream, String::as_str);
        self.nodes.get(key)
    }

    fn node_mut(&mut self, upstream: &str) -> Option<&mut Node> {
        let key = self.aliases.get(upstream).map_or(upstream, String::as_str);
        self.nodes.get_mut(key)
    }
}

struct Inner {
    /// How the proxy reaches the brokers.
    security: Security,
    /// Host clients use to reach the proxy's listeners.
    host: String,
    /// The upstream addresses given at start, in order.
    bootstrap: Vec<String>,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy. Cheap to clone; listeners live until the runtime stops.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl Proxy {
    /// Starts listeners on `host` (ephemeral ports) in front of each
    /// bootstrap address. `seed` drives which replies are dropped.
    pub async fn start(
        host: &str,
        bootstrap: &[String],
        seed: u64,
        security: Security,
    ) -> io::Result<Proxy> {
        let proxy = Proxy {
            inner: Arc::new(Inner {
                host: host.to_string(),
                security,
                bootstrap: bootstrap.to_vec(),
                state: Mutex::new(State {
                    nodes: BTreeMap::new(),
                    aliases: BTreeMap::new(),
                    usage: BTreeMap::new(),
                    rewritten: 0,
                    rewrite_failures: 0,
                    rng: ChaCha8Rng::seed_from_u64(seed),
                }),
            }),
        };
        for upstream in bootstrap {
            proxy.front(upstream)?;
        }
        Ok(proxy)
    }

    /// Proxy addresses for the bootstrap nodes, in order.
    pub fn bootstrap(&self) -> Vec<String> {
        let st = self.inner.state();
        self.inner
            .bootstrap
            .iter()
            .filter_map(|u| st.node(u).map(|n| n.view.listen.clone()))
            .collect()
    }

    /// The listener in front of `upstream`, started if new. Binding is
    /// synchronous (it does not block) so that reply rewriting can call it.
    fn front(&self, upstream: &str) -> io::Result<String> {
        if let Some(n) = self.inner.state().node(upstream) {
            return Ok(n.view.listen.clone());
        }
        // Resolving may consult DNS; it happens once per new spelling.
        let resolved: Vec<std::net::SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(upstream)
                .map(|a| a.collect())
                .unwrap_or_default();
        {
            let mut st = self.inner.state();
            let same = st
                .nodes
                .iter()
                .find(|(_, n)| n.resolved.iter().any(|a| resolved.contains(a)))
                .map(|(k, n)| (k.clone(), n.view.listen.clone()));
            if let Some((key, listen)) = same {
                tracing::info!(%upstream, node = %key, "same broker under another name");
                st.aliases.insert(upstream.to_string(), key);
                return Ok(listen);
            }
        }
        let std_listener = std::net::TcpListener::bind((self.inner.host.as_str(), 0))?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let listen = format!("{}:{}", self.inner.host, listener.local_addr()?.port());
        let (tx, rx) = watch::channel(LinkFaults::default());
        {
            let mut st = self.inner.state();
            if let Some(n) = st.node(upstream) {
                // Lost a race with another reply naming the same node.
                return Ok(n.view.listen.clone());
            }
            let index = st.nodes.len();
            st.nodes.insert(
                upstream.to_string(),
                Node {
                    view: NodeView {
                        index,
                        upstream: upstream.to_string(),
                        listen: listen.clone(),
                        ..NodeView::default()
                    },
                    faults: tx,
                    resolved,
                },
            );
        }
        tracing::info!(%upstream, %listen, "proxy listening");
        let proxy = self.clone();
        let upstream = upstream.to_string();
        tokio::spawn(async move { proxy.accept_loop(listener, upstream, rx).await });
        Ok(listen)
    }

    async fn accept_loop(
        self,
        listener: TcpListener,
        upstream: String,
        faults: watch::Receiver<LinkFaults>,
    ) {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%upstream, error = %e, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if faults.borrow().refuse {
                drop(client);
                continue;
            }
            if let Some(n) = self.inner.state().nodes.get_mut(&upstream) {
                n.view.connections += 1;
            }
            let (proxy, upstream, faults) = (self.clone(), upstream.clone(), faults.clone());
            tokio::spawn(async move {
                if let Err(e) = proxy.relay(client, &upstream, faults).await {
                    tracing::debug!(%upstream, %peer, error = %e, "proxied connection ended");
                }
            });
        }
    }

    /// Sets the faults of the node behind `upstream` (keeps its cut count).
    pub fn set_faults(&self, upstream: &str, mut faults: LinkFaults) {
        let st = self.inner.state();
        if let Some(n) = st.node(upstream) {
            faults.cut_generation = n.faults.borrow().cut_generation;
            n.faults.send_replace(faults);
        }
    }

    /// Closes every open connection to the node behind `upstream`.
    pub fn cut(&self, upstream: &str) {
        let st = self.inner.state();
        if let Some(n) = st.node(upstream) {
            n.faults.send_modify(|f| f.cut_generation += 1);
        }
    }

    /// Heals every node.
    pub fn heal_all(&self) {
        let st = self.inner.state();
        for n in st.nodes.values() {
            n.faults.send_modify(|f| {
                *f = LinkFaults {
                    cut_generation: f.cut_generation,
                    ..LinkFaults::default()
                }
            });
        }
    }

    pub fn observed(&self) -> Observed {
        let st = self.inner.state();
        Observed {
            nodes: st
                .nodes
                .values()
                .map(|n| NodeView {
                    faults: n.faults.borrow().clone(),
                    ..n.view.clone()
                })
                .collect(),
            usage: st.usage.clone(),
            rewritten: st.rewritten,
            rewrite_failures: st.rewrite_failures,
        }
    }

    /// Relays one client connection until either side closes or a fault cuts it.
    async fn relay(
        &self,
        client: TcpStream,
        upstream: &str,
        mut faults: watch::Receiver<LinkFaults>,
    ) -> io::Result<()> {
        let _ = client.set_nodelay(true);
        let generation = faults.borrow().cut_generation;
        // A partitioned node cannot be reached: wait (the client times out).
        wait_passable(&mut faults, generation).await?;
        let server = self
            .inner
            .security
            .connect(upstream)
            .await
            .map_err(|e| {
                tracing::warn!(%upstream, error = %e, "proxy could not open a connection to the broker");
                io::Error::other(e)
            })?;
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = tokio::io::split(server);
        let in_flight: Arc<Mutex<BTreeMap<i32, (i16, i16)>>> = Arc::default();

        let requests = {
            let (mut faults, in_flight) = (faults.clone(), in_flight.clone());
            let proxy = self.clone();
            async move {
                loop {
                    let frame = frame::read_owed_frame(&mut client_rx, MAX_FRAME_BYTES)
                        .await?
                        .freeze();
                    if let Some((api, version, corr)) = versions::request_prefix(&frame) {
                        lock(&in_flight).insert(corr, (api, version));
                        proxy.count(api, version, |u| u.requests += 1);
                    }
                    forward(&mut faults, generation, &mut server_tx, &frame).await?;
                }
            }
        };
        let replies = {
            let (mut faults, in_flight) = (faults.clone(), in_flight.clone());
            let proxy = self.clone();
            let upstream = upstream.to_string();
            async move {
                loop {
                    let frame = frame::read_owed_frame(&mut server_rx, MAX_FRAME_BYTES)
                        .await?
                        .freeze();
                    let corr = frame
                        .get(..4)
                        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let asked = corr.and_then(|c| lock(&in_flight).remove(&c));
                    let frame = match asked {
                        Some((api, version)) => proxy.inspect(&upstream, api, version, frame),
                        None => frame,
                    };
                    wait_passable(&mut faults, generation).await?;
                    let drop_rate = faults.borrow().drop_reply_rate;
                    if drop_rate > 0.0 && proxy.roll(drop_rate) {
                        reached!(
                            "proxy.reply_dropped",
                            "the certify proxy dropped a reply and closed the connection"
                        );
                        tracing::info!(%upstream, "proxy dropped a reply and closed the connection");
                        return Err::<(), io::Error>(io::Error::other("reply dropped by fault"));
                    }
                    forward(&mut faults, generation, &mut client_tx, &frame).await?;
                }
            }
        };
        let cut = {
            let mut faults = faults.clone();
            async move {
                if faults
                    .wait_for(|f| f.cut_generation != generation)
                    .await
                    .is_ok()
                {
                    reached!(
                        "proxy.connection_cut",
                        "the certify proxy cut a live connection"
                    );
                }
                Err::<(), io::Error>(io::Error::other("connection cut by fault"))
            }
        };
        let result = tokio::select! {
            r = requests => r,
            r = replies => r,
            r = cut => r,
        };
        let unanswered: Vec<(i16, i16)> = lock(&in_flight).values().copied().collect();
        if !unanswered.is_empty() {
            reached!(
                "proxy.closed_with_requests_unanswered",
                "a proxied connection ended with requests the broker never answered"
            );
        }
        for (api, version) in unanswered {
            self.count(api, version, |u| u.unanswered += 1);
        }
        result
    }

    fn roll(&self, rate: f64) -> bool {
        self.inner.state().rng.gen_bool(rate.clamp(0.0, 1.0))
    }

    fn count(&self, api: i16, version: i16, f: impl FnOnce(&mut ApiUse)) {
        f(self.inner.state().usage.entry((api, version)).or_default());
    }

    /// Records what a reply says and rewrites broker addresses in it.
    fn inspect(&self, upstream: &str, api: i16, version: i16, frame: Bytes) -> Bytes {
        self.count(api, version, |u| u.responses += 1);
        let Ok(key) = ApiKey::try_from(api) else {
            return frame;
        };
        let header_version = versions::response_header_version(key, version);
        let mut body = frame.clone();
        let header = match ResponseHeader::decode(&mut body, header_version) {
            Ok(h) => h,
            Err(_) => {
                self.count(api, version, |u| u.undecodable += 1);
                return frame;
            }
        };
        let codes = match error_codes(key, version, body.clone()) {
            Some(c) => c,
            None => {
                self.count(api, version, |u| u.undecodable += 1);
                return frame;
            }
        };
        self.count(api, version, |u| {
            for c in codes {
                *u.error_codes.entry(c).or_default() += 1;
            }
        });
        match key {
            ApiKey::ApiVersions => {
                if let Some(r) = decode_api_versions(body, version) {
                    let ranges = r
                        .api_keys
                        .iter()
                        .map(|k| (k.api_key, (k.min_version, k.max_version)))
                        .collect();
                    if let Some(n) = self.inner.state().node_mut(upstream) {
                        n.view.advertised = ranges;
                    }
                }
                frame
            }
            ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster => {
                match self.rewrite(key, version, &header, header_version, body) {
                    Some(f) => {
                        self.inner.state().rewritten += 1;
                        f
                    }
                    None => {
                        self.inner.state().rewrite_failures += 1;
                        tracing::warn!(%upstream, ?key, version, "could not rewrite broker addresses; clients may bypass the proxy");
                        frame
                    }
                }
            }
            _ => frame,
        }
    }

    /// The proxy address for a broker a reply names; learns its node id.
    fn map_addr(&self, node_id: i32, host: &str, port: i32) -> Option<(String, i32)> {
        let upstream = format!("{host}:{port}");
        let listen = self.front(&upstream).ok()?;
        if node_id >= 0 {
            if let Some(n) = self.inner.state().node_mut(&upstream) {
                n.view.node_id = Some(node_id);
            }
        }
        let (h, p) = listen.rsplit_once(':')?;
        Some((h.to_string(), p.parse().ok()?))
    }

    fn rewrite(
        &self,
        key: ApiKey,
        version: i16,
        header: &ResponseHeader,
        header_version: i16,
        mut body: Bytes,
    ) -> Option<Bytes> {
        let mut out = BytesMut::new();
        header.encode(&mut out, header_version).ok()?;
        match key {
            ApiKey::Metadata => {
                let mut r = MetadataResponse::decode(&mut body, version).ok()?;
                for b in r.brokers.iter_mut() {
                    let (h, p) = self.map_addr(b.node_id.0, &b.host, b.port)?;
                    b.host = StrBytes::from_string(h);
                    b.port = p;
                }
                r.encode(&mut out, version).ok()?;
            }
            ApiKey::FindCoordinator => {
                let mut r = FindCoordinatorResponse::decode(&mut body, version).ok()?;
                if version < 4 {
                    if r.error_code == 0 && r.port > 0 {
                        let (h, p) = self.map_addr(r.node_id.0, &r.host, r.port)?;
                        r.host = StrBytes::from_string(h);
                        r.port = p;
                    }
                } else {
                    for c in r.coordinators.iter_mut() {
                        if c.error_code == 0 && c.port > 0 {
                            let (h, p) = self.map_addr(c.node_id.0, &c.host, c.port)?;
                            c.host = StrBytes::from_string(h);
                            c.port = p;
                        }
                    }
                }
                r.encode(&mut out, version).ok()?;
            }
            ApiKey::DescribeCluster => {
                let mut r = DescribeClusterResponse::decode(&mut body, version).ok()?;
                for b in r.brokers.iter_mut() {
                    let (h, p) = self.map_addr(b.broker_id.0, &b.host, b.port)?;
                    b.host = StrBytes::from_string(h);
                    b.port = p;
                }
                r.encode(&mut out, version).ok()?;
            }
            _ => return None,
        }
        Some(out.freeze())
    }
}

/// JSON maps need string keys: `[{api_key, version, ...use}]` instead.
fn usage_as_list<S: serde::Serializer>(
    usage: &BTreeMap<(i16, i16), ApiUse>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        api_key: i16,
        version: i16,
        #[serde(flatten)]
        usage: &'a ApiUse,
    }
    s.collect_seq(usage.iter().map(|((api_key, version), usage)| Row {
        api_key: *api_key,
        version: *version,
        usage,
    }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits while the node is partitioned; fails if the connection was cut.
async fn wait_passable(
    faults: &mut watch::Receiver<LinkFaults>,
    generation: u64,
) -> io::Result<()> {
    if faults.borrow().partitioned {
        reached!(
            "proxy.held_by_partition",
            "the certify proxy held a connection while its node was partitioned"
        );
    }
    let f = faults
        .wait_for(|f| !f.partitioned || f.cut_generation != generation)
        .await
        .map_err(|_| io::Error::other("proxy stopped"))?;
    if f.cut_generation != generation {
        return Err(io::Error::other("connection cut by fault"));
    }
    Ok(())
}

/// Writes one frame (length prefix added) after the node's delay, unless a
/// partition holds it.
async fn forward<W: AsyncWrite + Unpin>(
    faults: &mut watch::Receiver<LinkFaults>,
    generation: u64,
    to: &mut W,
    body: &[u8],
) -> io::Result<()> {
    let delay = faults.borrow().delay_ms;
    if delay > 0 {
        reached!("proxy.frame_delayed", "the certify proxy delayed a frame");
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    wait_passable(faults, generation).await?;
    to.write_all(&frame::framed(body)).await
}

fn decode_api_versions(body: Bytes, version: i16) -> Option<ApiVersionsResponse> {
    versions::decode_api_versions(body, version).ok()
}

/// The non-zero error codes in a reply to an API the workloads use; `None`
/// if it does not decode. Other APIs report none.
fn error_codes(key: ApiKey, version: i16, mut body: Bytes) -> Option<Vec<i16>> {
    use kafka_protocol::messages::*;
    let mut codes = Vec::new();
    let mut push = |c: i16| {
        if c != 0 {
            codes.push(c)
        }
    };
    match key {
        ApiKey::ApiVersions => push(decode_api_versions(body, version)?.error_code),
        ApiKey::Produce => {
            let r = ProduceResponse::decode(&mut body, version).ok()?;
            r.responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .for_each(|p| push(p.error_code));
        }
        ApiKey::Fetch => {
            let r = FetchResponse::decode(&mut body, version).ok()?;
            push(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
        }
        ApiKey::ListOffsets => {
            let r = ListOffsetsResponse::decode(&mut body, version).ok()?;
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
        }
        ApiKey::Metadata => {
            let r = MetadataResponse::decode(&mut body, version).ok()?;
            r.topics.iter().for_each(|t| push(t.error_code));
        }
        ApiKey::CreateTopics => {
            let r = CreateTopicsResponse::decode(&mut body, version).ok()?;
            r.topics.iter().for_each(|t| push(t.error_code));
        }
        ApiKey::InitProducerId => push(
            InitProducerIdResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorResponse::decode(&mut body, version).ok()?;
            push(r.error_code);
            r.coordinators.iter().for_each(|c| push(c.error_code));
        }
        ApiKey::JoinGroup => push(
            JoinGroupResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::SyncGroup => push(
            SyncGroupResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::Heartbeat => push(
            HeartbeatResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::LeaveGroup => push(
            LeaveGroupResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::OffsetCommit => {
            let r = OffsetCommitResponse::decode(&mut body, version).ok()?;
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
        }
        ApiKey::AddPartitionsToTxn => {
            let r = AddPartitionsToTxnResponse::decode(&mut body, version).ok()?;
            push(r.error_code);
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| push(p.partition_error_code));
            r.results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| push(p.partition_error_code));
        }
        ApiKey::AddOffsetsToTxn => push(
            AddOffsetsToTxnResponse::decode(&mut body, version)
                .ok()?
                .error_code,
        ),
        ApiKey::EndTxn => push(EndTxnResponse::decode(&mut body, version).ok()?.error_code),
        ApiKey::TxnOffsetCommit => {
            let r = TxnOffsetCommitResponse::decode(&mut body, version).ok()?;
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
        }
        ApiKey::OffsetFetch => {
            let r = OffsetFetchResponse::decode(&mut body, version).ok()?;
            push(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| push(p.error_code));
            r.groups.iter().for_each(|g| push(g.error_code));
        }
        _ => {}
    }
    Some(codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::BrokerId;

    /// A FindCoordinator reply at `version` through [`Proxy::rewrite`], decoded again.
    fn through(
        proxy: &Proxy,
        version: i16,
        r: &FindCoordinatorResponse,
    ) -> FindCoordinatorResponse {
        let key = ApiKey::FindCoordinator;
        let header_version = versions::response_header_version(key, version);
        let mut body = BytesMut::new();
        r.encode(&mut body, version).unwrap();
        let mut out = proxy
            .rewrite(
                key,
                version,
                &ResponseHeader::default(),
                header_version,
                body.freeze(),
            )
            .expect("rewritten");
        ResponseHeader::decode(&mut out, header_version).unwrap();
        FindCoordinatorResponse::decode(&mut out, version).unwrap()
    }

    /// Transaction coordinators (key type 1) are found with FindCoordinator like group
    /// coordinators: the one-key form (v0-v3) and the batched `coordinator_keys` form (v4+) are
    /// both rewritten, so a transactional producer keeps going through the proxy. No other
    /// transactional API (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
    /// TxnOffsetCommit) carries a broker address.
    #[tokio::test]
    async fn transaction_coordinators_are_rewritten_in_both_reply_forms() {
        let (a, b) = ("127.0.0.1:1".to_string(), "127.0.0.1:2".to_string());
        let proxy = Proxy::start(
            "127.0.0.1",
            std::slice::from_ref(&a),
            1,
            Security::default(),
        )
        .await
        .unwrap();
        let listen_a = proxy.bootstrap()[0].clone();
        let split = |l: &str| {
            let (h, p) = l.rsplit_once(':').unwrap();
            (h.to_string(), p.parse::<i32>().unwrap())
        };

        let mut one = FindCoordinatorResponse::default();
        one.node_id = BrokerId(1);
        one.host = StrBytes::from_static_str("127.0.0.1");
        one.port = 1;
        let r = through(&proxy, 3, &one);
        assert_eq!((r.host.to_string(), r.port), split(&listen_a));

        let coordinator = |key: &'static str, node: i32, port: i32| {
            Coordinator::default()
                .with_key(StrBytes::from_static_str(key))
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(port)
        };
        let mut batched = FindCoordinatorResponse::default();
        batched.coordinators = vec![coordinator("txn-a", 1, 1), coordinator("txn-b", 2, 2)];
        let r = through(&proxy, 4, &batched);
        let listen_b = proxy
            .observed()
            .nodes
            .iter()
            .find(|n| n.upstream == b)
            .map(|n| n.listen.clone())
            .expect("the second coordinator is fronted");
        let got: Vec<(String, i32)> = r
            .coordinators
            .iter()
            .map(|c| (c.host.to_string(), c.port))
            .collect();
        assert_eq!(got, vec![split(&listen_a), split(&listen_b)]);
        let ids: Vec<Option<i32>> = proxy.observed().nodes.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, vec![Some(1), Some(2)]);
    }

    #[test]
    fn an_api_one_node_lacks_is_missing() {
        let node = |keys: &[(ApiKey, i16, i16)]| NodeView {
            advertised: keys
                .iter()
                .map(|(k, lo, hi)| (*k as i16, (*lo, *hi)))
                .collect(),
            ..NodeView::default()
        };
        let full = node(&[
            (ApiKey::InitProducerId, 0, 5),
            (ApiKey::AddPartitionsToTxn, 0, 5),
            (ApiKey::EndTxn, 0, 5),
        ]);
        let no_end = node(&[
            (ApiKey::InitProducerId, 0, 5),
            (ApiKey::AddPartitionsToTxn, 4, 5),
        ]);
        let silent = NodeView::default();
        let o = |nodes: Vec<NodeView>| Observed {
            nodes,
            ..Observed::default()
        };
        assert!(o(vec![full.clone(), silent.clone()])
            .missing(&TXN_APIS)
            .is_empty());
        // AddPartitionsToTxn only from v4, which riptide's client does not speak (v0-v3).
        assert_eq!(
            o(vec![full, no_end]).missing(&TXN_APIS),
            vec![ApiKey::AddPartitionsToTxn, ApiKey::EndTxn]
        );
        assert!(o(vec![silent]).missing(&TXN_APIS).is_empty());
    }

    #[test]
    fn overlapping_faults_on_one_node_combine() {
        let n = |i: usize| format!("n{i}");
        let active = [
            Fault::LinkSlow {
                broker: n(1),
                ms: 50,
            },
            Fault::LinkSlow {
                broker: n(1),
                ms: 20,
            },
            Fault::RepliesLost {
                broker: n(1),
                rate: 0.2,
            },
            Fault::Partition {
                a: vec![n(0)],
                b: vec!["clients".into()],
            },
            Fault::StoreCut { broker: n(1) },
        ];
        let l = LinkFaults::combine(&n(1), &active);
        assert_eq!(
            (l.delay_ms, l.drop_reply_rate, l.partitioned, l.refuse),
            (70, 0.2, false, false)
        );
        assert!(LinkFaults::combine(&n(0), &active).partitioned);
        assert!(LinkFaults::combine(&n(2), &[Fault::ConnectionsCut { broker: n(2) }]).refuse);
    }
}
