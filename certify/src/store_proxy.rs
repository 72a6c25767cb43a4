//! The S3 fault proxy: it sits on the link between one broker of a real cluster and its bucket
//! and injects there the object-store faults the simulator injects in its simulated store (the
//! same [`Fault`] kinds, the same [`StoreFaults::fate`] rule): 500 and 503 SlowDown replies,
//! latency, a cut link, a write applied with its reply lost, a write that lands after its caller
//! gave up. It also counts what the broker does to its store: requests per operation, status
//! codes, latency, conditional puts.
//!
//! Two modes. *Endpoint*: the broker uses the proxy as its S3 endpoint (path-style, plain HTTP)
//! and every request goes to one upstream, byte for byte, Host header included, so the upstream
//! must accept the Host the request was signed for (moto does). *Forward*: the broker keeps its
//! real endpoint and sends through the proxy as its HTTP proxy; plain-HTTP requests arrive in
//! absolute form and are forwarded where they name, so signatures stay valid; HTTPS arrives as
//! CONNECT and is tunnelled, which allows only the link faults (a cut, latency).
//!
//! It is driven over HTTP on its own listener (`/_riptide/...`; no S3 bucket name can start
//! with `_`), so `certify` drives a proxy it started itself and one started earlier with
//! `riptide store-proxy` the same way ([`StoreControl`]). Real TCP only.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, HOST, IF_MATCH, IF_NONE_MATCH, RANGE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_coverage::reached;
use riptide_faults::store::Fate;
use riptide_faults::{Fault, StoreFaults};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long after its caller saw the connection close a late write is forwarded.
pub const LATE_LANDING: Duration = Duration::from_millis(1500);
/// Largest request body held in memory (a broker's batch objects are far smaller).
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const CONTROL_PREFIX: &str = "/_riptide/";

type Body = BoxBody<Bytes, hyper::Error>;

/// Where requests go.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Every request to this upstream (`http://HOST:PORT`).
    Endpoint { upstream: String },
    /// Each request where it names (the broker's HTTP proxy setting).
    Forward,
}

impl Mode {
    /// `forward`, or an upstream URL such as `http://127.0.0.1:5000`.
    pub fn parse(s: &str) -> Result<Mode, String> {
        if s == "forward" {
            return Ok(Mode::Forward);
        }
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("upstream '{s}' is not a URL: {e}"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(a)) if uri.path() == "/" || uri.path().is_empty() => {
                Ok(Mode::Endpoint {
                    upstream: format!("http://{a}"),
                })
            }
            (Some("https"), _) => Err(format!(
                "upstream '{s}': an endpoint-mode upstream is plain HTTP; for an HTTPS store use \
                 'forward' and point the broker's HTTP proxy setting at this proxy"
            )),
            _ => Err(format!(
                "upstream '{s}' must be http://HOST:PORT (no path) or 'forward'"
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Mode::Endpoint { upstream } => upstream.clone(),
            Mode::Forward => "forward".into(),
        }
    }
}

/// Per operation: what the broker asked its store and what came back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpUse {
    pub requests: u64,
    /// Status codes of the replies the broker received (injected ones included).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests whose connection the proxy closed without a reply (cut, reply lost, late).
    pub no_reply: u64,
    /// Requests a fault acted on.
    pub faulted: u64,
    pub latency_us_total: u64,
    pub latency_us_max: u64,
}

/// Everything one store proxy saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreObserved {
    pub listen: String,
    pub upstream: String,
    pub connections: u64,
    /// Connections refused while the link was cut.
    pub refused: u64,
    /// Operation name ([`classify`]) → use.
    pub ops: BTreeMap<String, OpUse>,
    /// Requests each fault acted on, by its id in the schedule.
    pub hits: BTreeMap<usize, u64>,
    /// The same, by fault kind.
    pub hits_by_kind: BTreeMap<String, u64>,
    /// Late writes forwarded after their caller gave up: applied, or refused by the store
    /// (a conditional put whose object was taken meanwhile).
    pub late_landed: u64,
    pub late_refused: u64,
}

impl StoreObserved {
    /// Whether the broker ever wrote conditionally (If-None-Match or If-Match).
    pub fn wrote_conditionally(&self) -> bool {
        self.ops.keys().any(|k| k.contains("If-"))
    }

    /// Whether the broker wrote at all.
    pub fn wrote(&self) -> bool {
        self.ops.keys().any(|k| k.starts_with("PUT"))
    }
}

/// The name of one S3 operation, from its method, query and headers. `path_style`: the first
/// path segment is the bucket (so a GET of the bucket alone is a listing).
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, path_style: bool) -> &'static str {
    let query = uri.query().unwrap_or("");
    let has = |k: &str| {
        query
            .split('&')
            .any(|kv| kv == k || kv.strip_prefix(k).is_some_and(|r| r.starts_with('=')))
    };
    let segments = uri.path().split('/').filter(|s| !s.is_empty()).count();
    let bucket_only = path_style && segments <= 1;
    match *method {
        Method::GET if has("list-type") || has("delimiter") || bucket_only => "LIST",
        Method::GET if has("uploadId") => "multipart (list parts)",
        Method::GET if headers.contains_key(RANGE) => "GET (ranged)",
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT if has("partNumber") => "multipart (part)",
        Method::PUT if headers.contains_key("x-amz-copy-source") => "COPY",
        Method::PUT if headers.contains_key(IF_NONE_MATCH) => "PUT (If-None-Match)",
        Method::PUT if headers.contains_key(IF_MATCH) => "PUT (If-Match)",
        Method::PUT => "PUT",
        Method::POST if has("uploads") => "multipart (create)",
        Method::POST if has("uploadId") => "multipart (complete)",
        Method::POST if has("delete") => "DELETE (batch)",
        Method::DELETE if has("uploadId") => "multipart (abort)",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT (TLS tunnel)",
        _ => "other",
    }
}

struct State {
    /// Store faults in force, with their ids in the schedule.
    active: Vec<(usize, Fault)>,
    faults: StoreFaults,
    /// Rate faults (errors, ambiguous, late) in force that have not acted on a request yet: the
    /// next request they apply to is theirs, whatever its roll. A window of real time is dear
    /// and may see few writes; a fault that never acts tests nothing.
    owed: BTreeSet<usize>,
    rng: ChaCha8Rng,
    observed: StoreObserved,
}

impl State {
    /// Counts a request that the faults of `kind` acted on.
    fn hit(&mut self, kind: &str, op: &str) {
        for (id, f) in &self.active {
            if f.kind() == kind {
                *self.observed.hits.entry(*id).or_default() += 1;
                self.owed.remove(id);
            }
        }
        *self
            .observed
            .hits_by_kind
            .entry(kind.to_string())
            .or_default() += 1;
        self.observed.ops.entry(op.to_string()).or_default().faulted += 1;
    }

    /// The fate an owed rate fault claims for this request, if one applies to it: errors to
    /// any request, late and reply-lost to writes only.
    fn owed_fate(&self, write: bool) -> Option<Fate> {
        let owed = |kind: &str| {
            self.active
                .iter()
                .any(|(id, f)| f.kind() == kind && self.owed.contains(id))
        };
        if owed("store-errors") {
            Some(Fate::Fail)
        } else if write && owed("store-late") {
            Some(Fate::Late)
        } else if write && owed("store-ambiguous") {
            Some(Fate::Apply { reply_lost: true })
        } else {
            None
        }
    }

    fn done(&mut self, op: &str, status: Option<u16>, began: Instant) {
        let u = self.observed.ops.entry(op.to_string()).or_default();
        match status {
            Some(s) => *u.statuses.entry(s).or_default() += 1,
            None => u.no_reply += 1,
        }
        let us = began.elapsed().as_micros() as u64;
        u.latency_us_total += us;
        u.latency_us_max = u.latency_us_max.max(us);
    }
}

struct Inner {
    mode: Mode,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    /// Bumped when a cut begins: every open connection closes.
    cut_generation: watch::Sender<u64>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running store proxy; its listener lives until the runtime stops.
#[derive(Clone)]
pub struct StoreProxy {
    inner: Arc<Inner>,
    listen: SocketAddr,
}

/// Why a request got no reply: hyper closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Closed(&'static str);

impl StoreProxy {
    /// Listens on `listen` (port 0: any) in front of `mode`'s upstream. `seed` draws which
    /// requests the rates hit.
    pub async fn start(listen: &str, mode: Mode, seed: u64) -> std::io::Result<StoreProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (cut_generation, _) = watch::channel(0);
        let proxy = StoreProxy {
            inner: Arc::new(Inner {
                client: Client::builder(TokioExecutor::new()).build_http(),
                state: Mutex::new(State {
                    active: Vec::new(),
                    faults: StoreFaults::default(),
                    owed: BTreeSet::new(),
                    rng: ChaCha8Rng::seed_from_u64(seed),
                    observed: StoreObserved {
                        listen: addr.to_string(),
                        upstream: mode.describe(),
                        ..StoreObserved::default()
                    },
                }),
                mode,
                cut_generation,
            }),
            listen: addr,
        };
        tracing::info!(listen = %addr, upstream = %proxy.inner.mode.describe(), "store proxy listening");
        let p = proxy.clone();
        tokio::spawn(async move { p.accept_loop(listener).await });
        Ok(proxy)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Sets the store faults in force (ids from the schedule; other kinds are ignored).
    pub fn set_faults(&self, active: Vec<(usize, Fault)>) {
        let active: Vec<(usize, Fault)> = active
            .into_iter()
            .filter(|(_, f)| f.is_store_fault())
            .collect();
        let faults = StoreFaults::combine((0, 0), active.iter().map(|(_, f)| f));
        let cut_begins = {
            let mut st = self.inner.state();
            let was_cut = st.faults.cut;
            // Still owed if still in force; newly in force rate faults are owed from now.
            st.owed.retain(|id| active.iter().any(|(a, _)| a == id));
            let new_rate_faults: Vec<usize> = active
                .iter()
                .filter(|(id, f)| {
                    let is_rate = matches!(
                        f,
                        Fault::StoreErrors { .. }
                            | Fault::StoreAmbiguous { .. }
                            | Fault::StoreLate { .. }
                    );
                    is_rate && !st.active.iter().any(|(a, _)| a == id)
                })
                .map(|(id, _)| *id)
                .collect();
            st.owed.extend(new_rate_faults);
            st.active = active;
            st.faults = faults;
            st.faults.cut && !was_cut
        };
        if cut_begins {
            self.inner.cut_generation.send_modify(|g| *g += 1);
        }
    }

    pub fn observed(&self) -> StoreObserved {
        self.inner.state().observed.clone()
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "store proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let cut = {
                let mut st = self.inner.state();
                st.observed.connections += 1;
                st.faults.cut
            };
            let p = self.clone();
            tokio::spawn(async move {
                // certify's control requests share the listener and must get through a cut.
                if cut && !carries_control_request(&stream).await {
                    let mut st = p.inner.state();
                    st.observed.refused += 1;
                    st.hit("store-cut", "connect");
                    reached!(
                        "store_proxy.connection_refused",
                        "a broker's connection to its store was refused while the link was cut"
                    );
                    return;
                }
                p.serve(stream, peer).await
            });
        }
    }

    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let mut cut = self.inner.cut_generation.subscribe();
        let p = self.clone();
        // Set once the connection carries a control request: a cut leaves it open.
        let control = Arc::new(AtomicBool::new(false));
        let is_control = control.clone();
        let service = service_fn(move |req| {
            let p = p.clone();
            let control = control.clone();
            async move { p.handle(req, &control).await }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        loop {
            tokio::select! {
                r = &mut conn => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "store connection ended");
                    }
                    return;
                }
                changed = cut.changed() => {
                    if changed.is_err() || !is_control.load(Ordering::Relaxed) {
                        // Dropping the connection closes the socket: the link is cut.
                        tracing::debug!(%peer, "store connection cut");
                        return;
                    }
                }
            }
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        control: &AtomicBool,
    ) -> Result<Response<Body>, Closed> {
        if is_control_target(req.uri()) {
            control.store(true, Ordering::Relaxed);
            return Ok(self.control(req).await);
        }
        let path_style = matches!(self.inner.mode, Mode::Endpoint { .. });
        let op = classify(req.method(), req.uri(), req.headers(), path_style);
        let began = Instant::now();
        let (faults, roll) = {
            let mut st = self.inner.state();
            st.observed.ops.entry(op.to_string()).or_default().requests += 1;
            let roll: f64 = st.rng.gen();
            (st.faults.clone(), roll)
        };
        if faults.cut {
            let mut st = self.inner.state();
            st.hit("store-cut", op);
            st.done(op, None, began);
            return Err(Closed("store link cut"));
        }
        if faults.extra_latency_ms > 0 {
            self.inner.state().hit("store-slow", op);
            reached!(
                "store_proxy.request_slowed",
                "a broker's store request was slowed by a latency spike"
            );
            tokio::time::sleep(Duration::from_millis(faults.extra_latency_ms)).await;
        }
        if req.method() == Method::CONNECT {
            return Ok(self.tunnel(req, op, began));
        }
        // As in the simulator's store: only object puts can be late or lose their reply.
        let write = op.starts_with("PUT");
        let owed = self.inner.state().owed_fate(write);
        match owed.unwrap_or_else(|| faults.fate(roll, write)) {
            Fate::Fail => {
                // Half the injected errors are 500s, half 503 SlowDown (throttling).
                let slow_down = roll >= faults.error_rate / 2.0;
                let mut st = self.inner.state();
                st.hit("store-errors", op);
                let status = if slow_down {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                st.done(op, Some(status.as_u16()), began);
                reached!(
                    "store_proxy.error_injected",
                    "a broker's store request got an injected 500 or 503 SlowDown"
                );
                Ok(s3_error(status, slow_down))
            }
            Fate::Late => {
                let forward = self.prepare(req).await?;
                {
                    let mut st = self.inner.state();
                    st.hit("store-late", op);
                    st.done(op, None, began);
                }
                let p = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(LATE_LANDING).await;
                    let status = p.inner.client.request(forward).await.map(|r| r.status());
                    let landed = status.as_ref().is_ok_and(|s| s.is_success());
                    let mut st = p.inner.state();
                    if landed {
                        st.observed.late_landed += 1;
                        reached!(
                            "store_proxy.late_write_landed",
                            "a write whose caller gave up was forwarded later and applied"
                        );
                    } else {
                        st.observed.late_refused += 1;
                    }
                    tracing::info!(?status, "late write forwarded");
                });
                Err(Closed(
                    "late write: held, forwarded after the caller gave up",
                ))
            }
            // The broker's own S3 client re-sends a write whose connection closed: a lost reply
            // here is re-sent by the real retry layer, so both fates close after applying.
            fate @ (Fate::Apply { .. } | Fate::Resent) => {
                let reply_lost = fate != (Fate::Apply { reply_lost: false });
                let forward = self.prepare(req).await?;
                let resp = match self.inner.client.request(forward).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "store upstream unreachable");
                        self.inner.state().done(op, Some(502), began);
                        return Ok(s3_error(StatusCode::BAD_GATEWAY, false));
                    }
                };
                if reply_lost && resp.status().is_success() {
                    // Let the store finish the reply, then close on the broker.
                    let _ = resp.into_body().collect().await;
                    let mut st = self.inner.state();
                    st.hit("store-ambiguous", op);
                    st.done(op, None, began);
                    reached!(
                        "store_proxy.applied_reply_lost",
                        "a broker's store write was applied and its reply lost"
                    );
                    return Err(Closed("write applied, reply lost"));
                }
                self.inner
                    .state()
                    .done(op, Some(resp.status().as_u16()), began);
                Ok(resp.map(|b| b.boxed()))
            }
        }
    }

    /// The request to send upstream: same method, path, query, headers and body.
    async fn prepare(&self, req: Request<Incoming>) -> Result<Request<Full<Bytes>>, Closed> {
        let (parts, body) = req.into_parts();
        let uri: Uri = match &self.inner.mode {
            Mode::Endpoint { upstream } => {
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                format!("{upstream}{pq}")
                    .parse()
                    .map_err(|_| Closed("bad request target"))?
            }
            Mode::Forward if parts.uri.authority().is_some() => parts.uri.clone(),
            Mode::Forward => return Err(Closed("forward mode needs absolute-form requests")),
        };
        let body = http_body_util::Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| Closed("request body unreadable or too large"))?
            .to_bytes();
        let mut out = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|_| Closed("bad request"))?;
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name.as_str()) {
                out.headers_mut().append(name.clone(), value.clone());
            }
        }
        if !out.headers().contains_key(HOST) {
            if let Some(a) = parts.uri.authority() {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    out.headers_mut().insert(HOST, v);
                }
            }
        }
        Ok(out)
    }

    /// A CONNECT tunnel (forward mode, HTTPS): bytes only, so only cuts and latency apply.
    fn tunnel(&self, req: Request<Incoming>, op: &str, began: Instant) -> Response<Body> {
        let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
            self.inner.state().done(op, Some(400), began);
            return plain(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        self.inner.state().done(op, Some(200), began);
        let mut cut = self.inner.cut_generation.subscribe();
        tokio::spawn(async move {
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(u) => u,
                Err(e) => return tracing::debug!(error = %e, "CONNECT upgrade failed"),
            };
            let Ok(mut server) = TcpStream::connect(&target).await else {
                return tracing::warn!(%target, "CONNECT target unreachable");
            };
            let mut client = TokioIo::new(upgraded);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
        Response::new(empty())
    }

    async fn control(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req
            .uri()
            .path()
            .trim_start_matches(CONTROL_PREFIX)
            .to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "ping") => plain(StatusCode::OK, "riptide store-proxy"),
            (Method::GET, "observed") => match serde_json::to_vec(&self.observed()) {
                Ok(v) => json(v),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            },
            (Method::PUT, "faults") => {
                let body = match http_body_util::Limited::new(req.into_body(), 1 << 20)
                    .collect()
                    .await
                {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
                };
                match serde_json::from_slice::<Vec<(usize, Fault)>>(&body) {
                    Ok(active) => {
                        tracing::info!(faults = ?active, "store faults set");
                        self.set_faults(active);
                        plain(StatusCode::OK, "ok")
                    }
                    Err(e) => plain(StatusCode::BAD_REQUEST, &format!("bad fault list: {e}")),
                }
            }
            _ => plain(
                StatusCode::NOT_FOUND,
                "riptide store-proxy control: GET ping, GET observed, PUT faults",
            ),
        }
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "proxy-connection"
            | "proxy-authorization"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|n| match n {}).boxed()
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|n| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

fn json(v: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v)).map_err(|n| match n {}).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// An S3-style error reply, as a store under load sends it.
fn s3_error(status: StatusCode, slow_down: bool) -> Response<Body> {
    let (code, message) = if slow_down {
        ("SlowDown", "Please reduce your request rate.")
    } else if status == StatusCode::BAD_GATEWAY {
        (
            "BadGateway",
            "The store behind the riptide proxy did not answer.",
        )
    } else {
        (
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message} (injected by riptide)</Message></Error>"
    );
    let mut r = Response::new(Full::new(Bytes::from(xml)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r.headers_mut()
        .insert("x-riptide-fault", HeaderValue::from_static("store-errors"));
    r
}

/// A control request is for the proxy itself: origin-form and under [`CONTROL_PREFIX`].
fn is_control_target(uri: &Uri) -> bool {
    uri.authority().is_none() && uri.path().starts_with(CONTROL_PREFIX)
}

/// Whether the first bytes on a new connection are a control request (`GET /_riptide/...`),
/// read without consuming them. A store client sends its request at once; one that stays
/// silent for a second is treated as a store connection.
async fn carries_control_request(stream: &TcpStream) -> bool {
    let mut head = [0u8; 32];
    let peeked = tokio::time::timeout(Duration::from_secs(1), stream.peek(&mut head)).await;
    let Ok(Ok(n)) = peeked else {
        return false;
    };
    let line = &head[..n];
    let target = line.splitn(3, |b| *b == b' ').nth(1).unwrap_or_default();
    target.starts_with(CONTROL_PREFIX.as_bytes())
}

/// Drives a store proxy, in this process or another (`riptide store-proxy`), over its control
/// endpoints.
#[derive(Clone)]
pub struct StoreControl {
    /// `http://HOST:PORT`
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl StoreControl {
    /// The proxy listening at `addr` (HOST:PORT).
    pub fn new(addr: &str) -> StoreControl {
        StoreControl {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    async fn call(&self, method: Method, what: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{CONTROL_PREFIX}{what}", self.base))
            .body(Full::new(Bytes::from(body)))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| anyhow::anyhow!("store proxy {} did not answer in 10 s", self.base))??;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            anyhow::bail!(
                "store proxy {} answered {status}: {}",
                self.base,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// Checks that a riptide store proxy answers there.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let body = self.call(Method::GET, "ping", Vec::new()).await?;
        anyhow::ensure!(
            body.as_ref() == b"riptide store-proxy",
            "{} is not a riptide store proxy",
            self.base
        );
        Ok(())
    }

    pub async fn set_faults(&self, active: &[(usize, Fault)]) -> anyhow::Result<()> {
        self.call(Method::PUT, "faults", serde_json::to_vec(active)?)
            .await
            .map(|_| ())
    }

    pub async fn observed(&self) -> anyhow::Result<StoreObserved> {
        let body = self.call(Method::GET, "observed", Vec::new()).await?;
        Ok(serde_json::from_slice(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, uri: &str, headers: &[(&'static str, &'static str)]) -> &'static str {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        classify(&method, &uri, &h, true)
    }

    #[test]
    fn operations_are_named_from_method_query_and_headers() {
        assert_eq!(op(Method::GET, "/b?list-type=2&prefix=x", &[]), "LIST");
        assert_eq!(op(Method::GET, "/b", &[]), "LIST");
        assert_eq!(op(Method::GET, "/b/k", &[]), "GET");
        assert_eq!(
            op(Method::GET, "/b/k", &[("range", "bytes=0-9")]),
            "GET (ranged)"
        );
        assert_eq!(op(Method::HEAD, "/b/k", &[]), "HEAD");
        assert_eq!(op(Method::PUT, "/b/k", &[]), "PUT");
        assert_eq!(
            op(Method::PUT, "/b/k", &[("if-none-match", "*")]),
            "PUT (If-None-Match)"
        );
        assert_eq!(
            op(Method::PUT, "/b/k", &[("if-match", "\"e\"")]),
            "PUT (If-Match)"
        );
        assert_eq!(
            op(Method::PUT, "/b/k?partNumber=1&uploadId=u", &[]),
            "multipart (part)"
        );
        assert_eq!(op(Method::POST, "/b/k?uploads", &[]), "multipart (create)");
        assert_eq!(
            op(Method::POST, "/b/k?uploadId=u", &[]),
            "multipart (complete)"
        );
        assert_eq!(op(Method::POST, "/b?delete", &[]), "DELETE (batch)");
        assert_eq!(op(Method::DELETE, "/b/k", &[]), "DELETE");
        // A key that merely contains a query word is not that query.
        assert_eq!(op(Method::GET, "/b/k?prefixes=1", &[]), "GET");
    }

    #[test]
    fn upstreams_parse_or_say_why_not() {
        assert_eq!(
            Mode::parse("http://127.0.0.1:5000").unwrap(),
            Mode::Endpoint {
                upstream: "http://127.0.0.1:5000".into()
            }
        );
        assert_eq!(Mode::parse("forward").unwrap(), Mode::Forward);
        assert!(Mode::parse("https://s3.amazonaws.com")
            .unwrap_err()
            .contains("forward"));
        assert!(Mode::parse("http://h:1/bucket").is_err());
        assert!(Mode::parse("nonsense").is_err());
    }

    #[test]
    fn conditional_writes_are_noticed() {
        let mut o = StoreObserved::default();
        o.ops.insert("PUT".into(), OpUse::default());
        assert!(o.wrote() && !o.wrote_conditionally());
        o.ops.insert("PUT (If-None-Match)".into(), OpUse::default());
        assert!(o.wrote_conditionally());
    }
}
