//! `cargo bench -p riptide-broker --bench open_partition`: how long opening a partition takes,
//! and how many object-store calls it makes, as its commit chain grows (issue 17, item 6).
//!
//! For each store and chain length it builds a chain through the broker's own append path
//! (`PartitionLog::append` of one small batch at a time, each awaited: one commit per append,
//! plus whatever else the log writes as it goes), then opens the partition several times, each
//! time with a fresh `PartitionLog` and a fresh cache as a broker taking over would, and prints
//! the median wall time of those opens and the store calls of one of them.
//!
//! Settings (environment):
//! - `OPEN_BENCH_COMMITS` (default `1000,10000,100000`): chain lengths, commits in the chain
//!   before the first timed open (the builder's fence and its appends).
//! - `OPEN_BENCH_STORES` (default `local,s3`): `local` is `LocalFileSystem` in a temporary
//!   directory with fsync on (as `riptide broker --data`); `s3` is `AmazonS3` against moto.
//! - `OPEN_BENCH_OPENS` (default 5): timed opens per chain.
//! - `OPEN_BENCH_S3_ENDPOINT`: an S3 endpoint that creates buckets on an unsigned `PUT /bucket`
//!   (moto). Unset: the bench starts `moto_server` itself on a free port, from
//!   `OPEN_BENCH_MOTO` or else `.venv-ci/bin/moto_server` (`bash ci/python-env.sh` makes it),
//!   and skips `s3` with a message when there is none.
//!
//! Each chain gets its own directory or bucket.

// A benchmark measures real wall time from outside any simulation, and starts a real process.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::aws::AmazonS3Builder;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result as StoreResult,
};
use riptide_broker::batch;
use riptide_broker::config::BrokerConfig;
use riptide_broker::env::Ids;
use riptide_broker::storage::log::{Cache, LogOptions, PartitionLog};
use riptide_broker::storage::log_prefix;
use tokio::sync::Notify;

const TOPIC_ID: &str = "0000000000000000000000000000b0b0";
const PARTITION: i32 = 0;

// ------------------------------------------------------------------------------------------
// Counting: object-store calls (a wrapper store) and, for S3, HTTP requests (a wrapper client)
// ------------------------------------------------------------------------------------------

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Calls made through the `ObjectStore` trait, by kind.
#[derive(Default)]
struct StoreCounts {
    get: Counter,
    ranged_get: Counter,
    head: Counter,
    get_ranges: Counter,
    put: Counter,
    multipart: Counter,
    list: Counter,
    listed: Counter,
    list_nanos: Counter,
    list_delimiter: Counter,
    delete: Counter,
    copy_rename: Counter,
}

#[derive(Clone, Copy, Default, Debug)]
struct StoreSnap {
    get: u64,
    ranged_get: u64,
    head: u64,
    get_ranges: u64,
    put: u64,
    multipart: u64,
    list: u64,
    listed: u64,
    list_time: Duration,
    list_delimiter: u64,
    delete: u64,
    copy_rename: u64,
}

impl StoreCounts {
    fn take(&self) -> StoreSnap {
        StoreSnap {
            get: self.get.take(),
            ranged_get: self.ranged_get.take(),
            head: self.head.take(),
            get_ranges: self.get_ranges.take(),
            put: self.put.take(),
            multipart: self.multipart.take(),
            list: self.list.take(),
            listed: self.listed.take(),
            list_time: Duration::from_nanos(self.list_nanos.take()),
            list_delimiter: self.list_delimiter.take(),
            delete: self.delete.take(),
            copy_rename: self.copy_rename.take(),
        }
    }
}

/// Forwards every call to `inner` and counts it.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<StoreCounts>,
}

impl fmt::Debug for StoreCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreCounts")
    }
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl Counting {
    /// Counts one listing: the call, the objects it yields, and the time until it ends.
    fn count_list(
        &self,
        stream: BoxStream<'static, StoreResult<ObjectMeta>>,
    ) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        self.counts.list.add(1);
        let listed = self.counts.clone();
        let counts = self.counts.clone();
        let start = Instant::now();
        let items = stream.map(move |m| {
            if m.is_ok() {
                listed.listed.add(1);
            }
            Some(m)
        });
        let end = futures::stream::once(async move {
            counts.list_nanos.add(start.elapsed().as_nanos() as u64);
            None
        });
        items.chain(end).filter_map(futures::future::ready).boxed()
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> StoreResult<PutResult> {
        self.counts.put.add(1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> StoreResult<Box<dyn MultipartUpload>> {
        self.counts.multipart.add(1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> StoreResult<GetResult> {
        if options.head {
            self.counts.head.add(1);
        } else if options.range.is_some() {
            self.counts.ranged_get.add(1);
        } else {
            self.counts.get.add(1);
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> StoreResult<Vec<Bytes>> {
        self.counts.get_ranges.add(1);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, StoreResult<Path>>,
    ) -> BoxStream<'static, StoreResult<Path>> {
        let counts = self.counts.clone();
        self.inner
            .delete_stream(locations.inspect(move |_| counts.delete.add(1)).boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        self.count_list(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        self.count_list(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> StoreResult<ListResult> {
        self.counts.list_delimiter.add(1);
        let r = self.inner.list_with_delimiter(prefix).await;
        if let Ok(r) = &r {
            self.counts.listed.add(r.objects.len() as u64);
        }
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> StoreResult<()> {
        self.counts.copy_rename.add(1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> StoreResult<()> {
        self.counts.copy_rename.add(1);
        self.inner.rename_opts(from, to, options).await
    }
}

/// HTTP requests the S3 client sends, by kind (retries included).
#[derive(Default)]
struct HttpCounts {
    list_pages: Counter,
    get: Counter,
    ranged_get: Counter,
    head: Counter,
    put: Counter,
    delete: Counter,
    other: Counter,
}

impl fmt::Debug for HttpCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpCounts")
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct HttpSnap {
    list_pages: u64,
    get: u64,
    ranged_get: u64,
    head: u64,
    put: u64,
    delete: u64,
    other: u64,
}

impl HttpSnap {
    fn total(&self) -> u64 {
        self.list_pages
            + self.get
            + self.ranged_get
            + self.head
            + self.put
            + self.delete
            + self.other
    }
}

impl HttpCounts {
    fn take(&self) -> HttpSnap {
        HttpSnap {
            list_pages: self.list_pages.take(),
            get: self.get.take(),
            ranged_get: self.ranged_get.take(),
            head: self.head.take(),
            put: self.put.take(),
            delete: self.delete.take(),
            other: self.other.take(),
        }
    }
}

/// Hands the S3 client object_store's own reqwest client, wrapped to count requests.
#[derive(Debug)]
struct CountingConnector(Arc<HttpCounts>);

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> StoreResult<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService {
            inner,
            counts: self.0.clone(),
        }))
    }
}

#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    counts: Arc<HttpCounts>,
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let c = &self.counts;
        let query = req.uri().query().unwrap_or("");
        match req.method().as_str() {
            "GET" if query.contains("list-type=") => c.list_pages.add(1),
            "GET" if req.headers().contains_key("range") => c.ranged_get.add(1),
            "GET" => c.get.add(1),
            "HEAD" => c.head.add(1),
            "PUT" => c.put.add(1),
            "DELETE" => c.delete.add(1),
            _ => c.other.add(1),
        }
        self.inner.execute(req).await
    }
}

// ------------------------------------------------------------------------------------------
// Stores
// ------------------------------------------------------------------------------------------

/// A moto server started by the bench; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ has a parent")
        .to_path_buf()
}

/// Sends one unsigned HTTP/1.1 request and returns the status line.
fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<String> {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply.lines().next().unwrap_or("").to_string())
}

fn start_moto(dir: &std::path::Path) -> Result<Moto, String> {
    let bin = std::env::var_os("OPEN_BENCH_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-ci/bin/moto_server"));
    if !bin.exists() {
        return Err(format!(
            "no moto_server at {} (run `bash ci/python-env.sh`, or set OPEN_BENCH_MOTO or OPEN_BENCH_S3_ENDPOINT)",
            bin.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let log = std::fs::File::create(dir.join("moto.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!(
                "moto_server exited early ({status}); see {}",
                dir.join("moto.log").display()
            ));
        }
        if http(&moto.endpoint, "GET", "/").is_ok_and(|l| l.contains(" 200")) {
            return Ok(moto);
        }
        if Instant::now() > deadline {
            let _ = moto.child.kill();
            return Err("moto_server not ready within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where one chain lives: a store for the bench's use, and its counters.
struct Place {
    store: Arc<dyn ObjectStore>,
    counts: Arc<StoreCounts>,
    http: Option<Arc<HttpCounts>>,
    _dir: Option<tempfile::TempDir>,
}

fn counted(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<StoreCounts>) {
    let counts = Arc::new(StoreCounts::default());
    let store = Arc::new(Counting {
        inner,
        counts: counts.clone(),
    });
    (store, counts)
}

fn local_place() -> Place {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fs = LocalFileSystem::new_with_prefix(dir.path())
        .expect("local store")
        .with_fsync(true);
    let (store, counts) = counted(Arc::new(fs));
    Place {
        store,
        counts,
        http: None,
        _dir: Some(dir),
    }
}

fn s3_place(endpoint: &str, bucket: &str) -> Result<Place, String> {
    let status = http(endpoint, "PUT", &format!("/{bucket}"))
        .map_err(|e| format!("creating bucket {bucket}: {e}"))?;
    if !status.contains(" 200") {
        return Err(format!("creating bucket {bucket}: {status}"));
    }
    let http_counts = Arc::new(HttpCounts::default());
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_http_connector(CountingConnector(http_counts.clone()))
        .build()
        .map_err(|e| format!("configuring S3: {e}"))?;
    let (store, counts) = counted(Arc::new(s3));
    Ok(Place {
        store,
        counts,
        http: Some(http_counts),
        _dir: None,
    })
}

// ------------------------------------------------------------------------------------------
// Building a chain and opening it
// ------------------------------------------------------------------------------------------

/// One small non-idempotent batch of one record.
fn one_record(i: u64) -> Vec<(batch::BatchHeader, Bytes)> {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000 + i as i64,
        key: None,
        value: Some(Bytes::from(format!("record {i:08}"))),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [record].iter(), &opts).expect("encode");
    batch::validate(&buf.freeze()).expect("valid batch")
}

/// A partition log as a broker with node id `node_id` makes it: a fresh cache and id source.
fn log_on(store: &Arc<dyn ObjectStore>, node_id: i32) -> Arc<PartitionLog> {
    let cfg = BrokerConfig::new(node_id, "127.0.0.1", 9092);
    let opts = LogOptions {
        node_id,
        bug: None,
        store: store.clone(),
        ids: Arc::new(Ids::new(node_id as u64)),
        cache: Arc::new(Cache::new(cfg.cache_bytes)),
        appended: Arc::new(Notify::new()),
        max_commit_bytes: cfg.max_commit_bytes,
        delete_delay: cfg.delete_delay,
    };
    PartitionLog::new(TOPIC_ID, PARTITION, &opts)
}

/// Builds a chain of `commits` commits (the builder's fence, then one append per commit) and
/// returns the time it took and the records in it.
async fn build(place: &Place, commits: u64, label: &str) -> (Duration, i64) {
    let log = log_on(&place.store, 1);
    let start = Instant::now();
    log.open().await.expect("builder opens the empty partition");
    let appends = commits.saturating_sub(1);
    let step = (appends / 10).max(1);
    for i in 0..appends {
        log.append(one_record(i))
            .await
            .expect("append answered")
            .expect("append committed");
        if (i + 1).is_multiple_of(step) && appends >= 10_000 {
            eprintln!(
                "  {label}: {}/{appends} appends, {:.1} s",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    (start.elapsed(), log.high_watermark())
}

struct Opened {
    times: Vec<Duration>,
    store: StoreSnap,
    http: Option<HttpSnap>,
    /// Each open's object-store calls plus its LIST pages after the first of each listing.
    calls: Vec<u64>,
}

impl StoreSnap {
    /// Every call through the `ObjectStore` trait.
    fn total(&self) -> u64 {
        self.get
            + self.ranged_get
            + self.head
            + self.get_ranges
            + self.put
            + self.multipart
            + self.list
            + self.list_delimiter
            + self.delete
            + self.copy_rename
    }
}

/// Opens the partition `opens` times, each on a fresh `PartitionLog` of a new node (each open
/// fences, so the chain grows by one commit per open); the counts are those of the first open.
/// A failed open ends the series with what it had done.
async fn open_n(place: &Place, opens: usize, records: i64, label: &str) -> Result<Opened, String> {
    let mut times = Vec::new();
    let mut calls = Vec::new();
    let mut first = None;
    for i in 0..opens {
        place.counts.take();
        if let Some(h) = &place.http {
            h.take();
        }
        let log = log_on(&place.store, 100 + i as i32);
        let start = Instant::now();
        let r = log.open().await;
        let took = start.elapsed();
        if let Err(e) = r {
            let c = place.counts.take();
            return Err(format!(
                "open {} failed after {}: {e} (ranged GETs {}, LIST calls {}, objects listed {})",
                i + 1,
                secs(took),
                c.ranged_get,
                c.list,
                c.listed,
            ));
        }
        times.push(took);
        if took > Duration::from_secs(5) {
            eprintln!("  {label}: open {} of {opens} took {}", i + 1, secs(took));
        }
        assert_eq!(
            log.high_watermark(),
            records,
            "the opened log sees every record"
        );
        let snap = (place.counts.take(), place.http.as_ref().map(|h| h.take()));
        let extra_pages = snap
            .1
            .map_or(0, |h| h.list_pages.saturating_sub(snap.0.list));
        calls.push(snap.0.total() + extra_pages);
        first.get_or_insert(snap);
    }
    let (store, http) = first.expect("at least one open");
    Ok(Opened {
        times,
        store,
        http,
        calls,
    })
}

/// After a failed open: one listing of the partition's prefix with no time bound (the log bounds
/// its whole listing by one store-call timeout), to show what the open was waiting for.
async fn list_unbounded(place: &Place) -> String {
    place.counts.take();
    if let Some(h) = &place.http {
        h.take();
    }
    let start = Instant::now();
    let listed: StoreResult<Vec<ObjectMeta>> = place
        .store
        .list(Some(&log_prefix(TOPIC_ID, PARTITION)))
        .try_collect()
        .await;
    let took = start.elapsed();
    let pages = match &place.http {
        Some(h) => format!(", {} LIST pages", thousands(h.take().list_pages)),
        None => String::new(),
    };
    match listed {
        Ok(v) => format!(
            "one listing of the partition with no time bound: {} objects in {}{pages}",
            thousands(v.len() as u64),
            secs(took)
        ),
        Err(e) => format!(
            "one listing of the partition with no time bound failed after {}: {e}",
            secs(took)
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Output
// ------------------------------------------------------------------------------------------

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn row(store: &str, commits: u64, built: Duration, o: &Opened) -> String {
    let mut t = o.times.clone();
    t.sort();
    let median = t[t.len() / 2];
    let s = &o.store;
    let (pages, http) = match &o.http {
        Some(h) => (thousands(h.list_pages), thousands(h.total())),
        None => ("–".to_string(), "–".to_string()),
    };
    // Calls other than the columns' kinds would be a surprise: show them rather than drop them.
    let other = s.get_ranges + s.multipart + s.list_delimiter + s.copy_rename;
    let other = if other > 0 {
        format!(
            " (+ get_ranges {}, multipart {}, list_with_delimiter {}, copy/rename {})",
            s.get_ranges, s.multipart, s.list_delimiter, s.copy_rename
        )
    } else {
        String::new()
    };
    let calls = format!(
        "{}–{}",
        o.calls.iter().min().copied().unwrap_or(0),
        o.calls.iter().max().copied().unwrap_or(0)
    );
    format!(
        "| {store} | {} | {} | {} ({}–{}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {calls} |{other}",
        thousands(commits),
        secs(built),
        secs(median),
        secs(t[0]),
        secs(t[t.len() - 1]),
        secs(s.list_time),
        thousands(s.get),
        thousands(s.ranged_get),
        thousands(s.head),
        thousands(s.put),
        thousands(s.list),
        pages,
        thousands(s.listed),
        thousands(s.delete),
        http,
    )
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    let commits: Vec<u64> = env_list("OPEN_BENCH_COMMITS", "1000,10000,100000")
        .iter()
        .map(|s| {
            s.replace('_', "")
                .parse()
                .expect("OPEN_BENCH_COMMITS: numbers")
        })
        .collect();
    let stores = env_list("OPEN_BENCH_STORES", "local,s3");
    let opens: usize = std::env::var("OPEN_BENCH_OPENS")
        .ok()
        .map(|s| s.parse().expect("OPEN_BENCH_OPENS: a number"))
        .unwrap_or(5)
        .max(1);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let scratch = tempfile::tempdir().expect("temporary directory");

    // The S3 endpoint: given, or a moto server of our own.
    let mut moto = None;
    let mut endpoint = std::env::var("OPEN_BENCH_S3_ENDPOINT").ok();
    if stores.iter().any(|s| s == "s3") && endpoint.is_none() {
        match start_moto(scratch.path()) {
            Ok(m) => {
                eprintln!("started moto_server at {}", m.endpoint);
                endpoint = Some(m.endpoint.clone());
                moto = Some(m);
            }
            Err(e) => eprintln!("skipping s3: {e}"),
        }
    }

    println!(
        "open_partition: wall time to open a partition (PartitionLog::new + open: load the chain, \
         then fence), median of {opens} opens, each on a fresh PartitionLog and cache; store calls \
         of the first open. `list time` is from the list call to its last entry; LIST pages are \
         counted at the HTTP level (requests with list-type=2); `HTTP` is every request the S3 \
         client sent (retries included); `calls, each open` is the least and most, over the opens, \
         of store calls plus the LIST pages after each listing's first. local = LocalFileSystem \
         with fsync; s3 = AmazonS3 on moto."
    );
    println!();
    println!(
        "| store | commits | build | open, median (min–max) | list time | GET | ranged GET | HEAD | PUT | LIST calls | LIST pages | objects listed | DELETE | HTTP | calls, each open (min–max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for store in &stores {
        for (k, &n) in commits.iter().enumerate() {
            let place = match store.as_str() {
                "local" => local_place(),
                "s3" => {
                    let Some(endpoint) = &endpoint else { break };
                    let bucket = format!("riptide-open-bench-{}-{k}-{n}", std::process::id());
                    match s3_place(endpoint, &bucket) {
                        Ok(p) => p,
                        Err(e) => {
                            eprintln!("skipping s3: {e}");
                            break;
                        }
                    }
                }
                other => {
                    eprintln!("unknown store {other:?} in OPEN_BENCH_STORES (local, s3)");
                    break;
                }
            };
            let label = format!("{store} {n}");
            let (built, records) = rt.block_on(build(&place, n, &label));
            place.counts.take();
            match rt.block_on(open_n(&place, opens, records, &label)) {
                Ok(opened) => println!("{}", row(store, n, built, &opened)),
                Err(e) => {
                    println!("| {store} | {} | {} | {e} |", thousands(n), secs(built));
                    let note = rt.block_on(list_unbounded(&place));
                    notes.push(format!("{store} {}: {note}", thousands(n)));
                }
            }
        }
    }
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("- {n}");
        }
    }
    drop(moto);
}
