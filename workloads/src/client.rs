//! The Kafka client used by workloads: metadata cache, pooled connections per broker, bounded
//! retries with seeded backoff. Identical in simulation and over real TCP; the difference is the
//! [`Connector`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, MetadataResponse, ProducerId};
use kafka_protocol::records::{Compression, NO_TIMESTAMP};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::codec::{self, FetchedRecord};
use crate::connection::{Connection, ConnectionOptions};
use crate::error::ClientError;
use crate::net::Connector;
use crate::witness::{judge_fetch, judge_partitions, Fact, FetchedPartition, Witness};
use kafka_protocol::messages::fetch_response::PartitionData;
use riptide_checker::history::{Hidden, ViolationKind};
pub use riptide_wire::clock::Clock;
use riptide_wire::{codes, error_of, ResponseError};

pub mod group;
pub mod txn;
/// Whether a produce is retried after an attempt whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProduceRetry {
    /// Retry only errors that certainly did not write (and are retriable). An indeterminate error
    /// is returned to the caller, who records it as `info` and decides what to do.
    #[default]
    DefiniteOnly,
    /// Also retry after indeterminate errors. This can duplicate the record; the result says so
    /// ([`ProduceAck::after_indeterminate`], [`ClientError::AfterIndeterminate`]).
    Always,
}

/// Client settings. `Default` is reasonable for both simulation and real clusters.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub connection: ConnectionOptions,
    /// Retries after the first attempt (so at most `retries + 1` attempts per operation).
    pub retries: u32,
    /// Backoff before retry n is `min(backoff_max, backoff_base * 2^n)`, jittered into [d/2, d].
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Seed for backoff jitter.
    pub seed: u64,
    pub produce_retry: ProduceRetry,
    /// Broker-side wait for acks (`timeout_ms` in Produce) and for CreateTopics.
    pub broker_timeout_ms: i32,
    pub compression: Compression,
    /// Replication factor for `create_topic`; -1 = broker default (CreateTopics v4+).
    pub replication_factor: i16,
    /// 0 = read_uncommitted, 1 = read_committed (Fetch, ListOffsets v2+).
    pub isolation_level: i8,
    /// Record timestamps (a simulation hands in its own clock); `None` sends -1 (no timestamp).
    pub clock: Option<Arc<dyn Clock>>,
    /// Idempotent producer: a producer id from InitProducerId and a sequence
    /// number per partition, so the broker drops retried duplicates. Use with
    /// `ProduceRetry::Always`.
    pub idempotent: bool,
    /// How long one Metadata request may take before the next broker is asked (`None`: the
    /// request timeout). A client stuck asking a broker that is cut off learns nothing else.
    pub metadata_timeout: Option<Duration>,
    /// After failing to connect to a broker, how long to fail fast instead of trying it again
    /// (Kafka's `reconnect.backoff.ms`; `None`: try every time).
    pub reconnect_backoff: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connection: ConnectionOptions::default(),
            retries: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            seed: 0,
            produce_retry: ProduceRetry::DefiniteOnly,
            broker_timeout_ms: 5_000,
            compression: Compression::None,
            replication_factor: -1,
            isolation_level: 0,
            clock: None,
            idempotent: false,
            metadata_timeout: None,
            reconnect_backoff: None,
        }
    }
}

impl ClientConfig {
    /// A workload client: idempotent producers retry every failure (the broker
    /// deduplicates), others only definite ones; connecting may take at most
    /// the request timeout, capped at 5 s.
    pub fn workload(seed: u64, idempotent: bool, request_timeout: Duration) -> ClientConfig {
        ClientConfig {
            seed,
            idempotent,
            produce_retry: if idempotent {
                ProduceRetry::Always
            } else {
                ProduceRetry::DefiniteOnly
            },
            connection: ConnectionOptions {
                request_timeout,
                connect_timeout: request_timeout.min(Duration::from_secs(5)),
                ..ConnectionOptions::default()
            },
            ..ClientConfig::default()
        }
    }
}

/// A successful produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset the broker assigned (-1 for acks=0, which gets no answer).
    pub offset: i64,
    /// Attempts made, including the successful one.
    pub attempts: u32,
    /// An earlier attempt had an unknown outcome, so the record may also exist at another offset.
    pub after_indeterminate: bool,
}

/// Records read by one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    /// Records at or after the requested offset, in offset order as the broker returned them.
    pub records: Vec<FetchedRecord>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// Offsets at or after the fetch offset that hold no data for this reader: control batches
    /// (transaction markers), and with read_committed the records of aborted transactions.
    pub hidden: Vec<(i64, i64, Hidden)>,
    /// The offset after the last whole batch returned (where the next fetch starts when every
    /// record was handed out), if any batch came.
    pub next_offset: Option<i64>,
}

/// A fetch's records as a reader sees them, the offsets hidden from it, and where its batches
/// ended.
type Settled = (Vec<FetchedRecord>, Vec<(i64, i64, Hidden)>, Option<i64>);

/// Which batches a reader does not see as data, and the records it does. With read_committed,
/// Kafka's rule: a transactional batch of a producer with an aborted transaction that began at
/// or before it is skipped until that producer's abort marker.
fn settle(
    fetched: codec::Fetched,
    offset: i64,
    read_committed: bool,
    aborted: &[(i64, i64)],
) -> Settled {
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(pid, first)| (first, pid));
    let mut pending = pending.into_iter().peekable();
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut hidden = Vec::new();
    let mut dropped: BTreeSet<i64> = BTreeSet::new();
    for (&(base, last), kind) in fetched.batches.iter().zip(&fetched.kinds) {
        if read_committed {
            while let Some(&(pid, _)) = pending.peek().filter(|(_, first)| *first <= last) {
                aborting.insert(pid);
                pending.next();
            }
        }
        let why = match kind.marker {
            Some(commit) => {
                if !commit {
                    aborting.remove(&kind.producer_id);
                }
                Some(Hidden::Control)
            }
            None if read_committed
                && kind.transactional
                && aborting.contains(&kind.producer_id) =>
            {
                dropped.insert(base);
                Some(Hidden::Aborted)
            }
            None => None,
        };
        if let Some(why) = why {
            let from = base.max(offset);
            if from <= last {
                hidden.push((from, last + 1, why));
            }
        }
    }
    let next = fetched.batches.last().map(|&(_, last)| last + 1);
    let records = fetched
        .records
        .into_iter()
        .filter(|r| !dropped.contains(&r.batch_base))
        .collect();
    (records, hidden, next)
}

/// Which offset `list_offsets` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// First offset whose timestamp is >= this (ms). The broker answers -1 if there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// Cached cluster metadata. BTreeMaps keep every iteration order deterministic.
#[derive(Debug, Default)]
struct Metadata {
    /// node id -> "host:port"
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
    /// topic -> partition -> leader node id (-1 = none)
    topics: BTreeMap<String, BTreeMap<i32, i32>>,
    /// topic -> error code from the last metadata answer that failed for it
    topic_errors: BTreeMap<String, i16>,
    /// Set by errors that suggest leadership moved; the next lookup refreshes.
    stale: bool,
}

/// A Kafka client. Methods take `&mut self`: one operation at a time per client (a workload
/// process owns one).
pub struct Client<C: Connector> {
    connector: C,
    config: ClientConfig,
    bootstrap: Vec<String>,
    metadata: Metadata,
    /// Pooled connections, by "host:port".
    conns: BTreeMap<String, Connection<C::Stream>>,
    rng: ChaCha8Rng,
    /// Rotates which known broker a metadata refresh asks first.
    refresh_cursor: usize,
    /// Idempotent producer state: id and epoch, next sequence per partition.
    producer: Option<(i64, i16)>,
    sequences: BTreeMap<(String, i32), i32>,
    /// Brokers a connection to failed, and until when they are not tried again.
    unreachable: BTreeMap<String, tokio::time::Instant>,
}

impl<C: Connector> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.bootstrap)
            .field("metadata", &self.metadata)
            .field("connections", &self.conns.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Client<C> {
    /// A client that will contact `bootstrap` ("host:port" each) on first use.
    pub fn new(connector: C, bootstrap: Vec<String>, config: ClientConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Client {
            connector,
            config,
            bootstrap,
            metadata: Metadata::default(),
            conns: BTreeMap::new(),
            rng,
            refresh_cursor: 0,
            producer: None,
            sequences: BTreeMap::new(),
            unreachable: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn config_mut(&mut self) -> &mut ClientConfig {
        &mut self.config
    }

    /// Where this client (and every connection it opens) reports replies contrary to the
    /// protocol, and which operation they were for (see [`crate::witness`]).
    pub fn witness(&self) -> &Witness {
        &self.config.connection.witness
    }

    /// Reports that a reply from `addr` broke the protocol (see [`crate::witness`]).
    pub(crate) fn report(
        &self,
        kind: ViolationKind,
        addr: &str,
        (api, version): (ApiKey, i16),
        partition: Option<(&str, i32)>,
        detail: String,
    ) {
        self.witness().record(Fact {
            kind,
            broker: addr,
            api,
            version,
            partition,
            op: None,
            detail,
        });
    }

    /// Reports an error code `api` at `version` cannot return. The code is still handled as the
    /// code it is, as the Java client does (`Errors.forCode`, then the exception's class decides).
    pub(crate) fn judge_code(
        &self,
        addr: &str,
        at: (ApiKey, i16),
        partition: Option<(&str, i32)>,
        code: i16,
    ) {
        if !codes::may_return(at.0, at.1, code) {
            let name = riptide_wire::code_name(code);
            let detail = format!(
                "error code {code} ({name}), which {:?} v{} cannot return",
                at.0, at.1
            );
            self.report(
                ViolationKind::UnexpectedErrorCode,
                addr,
                at,
                partition,
                detail,
            );
        }
    }

    /// Reports partitions a response lacks or names unasked.
    fn judge_answered<'a>(
        &self,
        addr: &str,
        at: (ApiKey, i16),
        asked: impl IntoIterator<Item = (&'a str, i32)>,
        answered: impl IntoIterator<Item = (&'a str, i32)>,
    ) {
        for (kind, tp, detail) in judge_partitions(asked, answered) {
            self.report(kind, addr, at, Some(tp), detail);
        }
    }

    /// One partition of a fetch response (found, as asked for `topic`/`partition` from
    /// `offset`): its records or its error, after judging it.
    ///
    /// Accepted as the Java consumer accepts them, with a fact: records at or above the high
    /// watermark or the last stable offset (handed out; the consumer does not compare them), a
    /// batch wholly below the fetch offset (dropped, as the consumer drops records below its
    /// position), watermarks out of order (kept). Rejected as it rejects them: a corrupt batch
    /// (CorruptRecordException: an error for this partition, nothing handed out).
    fn take_fetched(
        &self,
        addr: &str,
        version: i16,
        (topic, partition, offset): (&str, i32, i64),
        p: &PartitionData,
    ) -> Result<FetchResult, ClientError> {
        let at = (ApiKey::Fetch, version);
        let tp = Some((topic, partition));
        if p.error_code != 0 {
            self.judge_code(addr, at, tp, p.error_code);
            return Err(ClientError::broker(ApiKey::Fetch, p.error_code, None));
        }
        let fetched = match &p.records {
            Some(data) => codec::decode_fetched(data.clone(), offset).map_err(|bad| {
                if let Some(kind) = bad.kind {
                    self.report(kind, addr, at, tp, bad.reason.clone());
                }
                bad.into_error(addr)
            })?,
            None => codec::Fetched::default(),
        };
        let judged = judge_fetch(&FetchedPartition {
            offset,
            isolation: self.config.isolation_level,
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            log_start_offset: p.log_start_offset,
            batches: &fetched.batches,
        });
        for (kind, detail) in judged {
            self.report(kind, addr, at, tp, detail);
        }
        let read_committed = self.config.isolation_level == 1;
        let aborted: Vec<(i64, i64)> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect();
        let (records, hidden, next_offset) = settle(fetched, offset, read_committed, &aborted);
        Ok(FetchResult {
            records,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            last_stable_offset: p.last_stable_offset,
            hidden,
            next_offset,
        })
    }

    /// Drops every pooled connection (e.g. after a fault is healed, to start clean).
    pub fn disconnect_all(&mut self) {
        self.conns.clear();
    }

    /// The cached leader node of a partition, if known.
    pub fn cached_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.metadata
            .topics
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .filter(|&l| l >= 0)
    }

    /// Creates a topic with these settings (`retention.ms`, ...); succeeds if it already exists.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_create_topic(name, partitions, configs).await {
                Ok(()) => {
                    // Forget cached metadata so the next use sees the new partitions.
                    self.metadata.topics.remove(name);
                    return Ok(());
                }
                Err(e) => self.retry_or_fail(e, &mut attempt).await?,
            }
        }
    }

    /// Appends one record (a batch of one) and returns its offset. Retries per
    /// [`ClientConfig::produce_retry`]; see [`Client::produce_detailed`].
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<Bytes>,
        value: Bytes,
        acks: i16,
    ) -> Result<i64, ClientError> {
        self.produce_detailed(topic, partition, key, value, acks)
            .await
            .map(|ack| ack.offset)
    }

    /// Like [`Client::produce`], also saying how many attempts it took and whether an earlier one
    /// had an unknown outcome. If a retry follows an indeterminate attempt and then fails definitely,
    /// the error is wrapped in [`ClientError::AfterIndeterminate`] so it stays indeterminate.
    pub async fn produce_detailed(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<Bytes>,
        value: Bytes,
        acks: i16,
    ) -> Result<ProduceAck, ClientError> {
        let timestamp = self
            .config
            .clock
            .as_ref()
            .map_or(NO_TIMESTAMP, |c| c.now_ms());
        let sequenced = if self.config.idempotent {
            let (producer_id, producer_epoch) = self.producer_id().await?;
            let sequence = *self
                .sequences
                .get(&(topic.to_string(), partition))
                .unwrap_or(&0);
            Some(codec::Sequenced {
                producer_id,
                producer_epoch,
                sequence,
            })
        } else {
            None
        };
        // Encoded once: every retry sends the identical batch (and, when
        // idempotent, the same sequence number, so the broker can drop it).
        let batch = codec::encode_record_batch(
            key,
            Some(value),
            timestamp,
            self.config.compression,
            sequenced,
        )?;
        let mut attempts = 0;
        let mut after_indeterminate = false;
        loop {
            attempts += 1;
            let err = match self.try_produce(topic, partition, &batch, acks).await {
                Ok(offset) => {
                    if let Some(s) = sequenced {
                        let next = if s.sequence == i32::MAX {
                            0
                        } else {
                            s.sequence + 1
                        };
                        self.sequences.insert((topic.to_string(), partition), next);
                    }
                    return Ok(ProduceAck {
                        offset,
                        attempts,
                        after_indeterminate,
                    });
                }
                Err(e) => e,
            };
            let definite = err.is_definite();
            let retry = err.is_retriable()
                && attempts <= self.config.retries
                && (definite || self.config.produce_retry == ProduceRetry::Always);
            if !retry {
                // Whoever answers next time, it should be the current leader.
                if err.needs_metadata_refresh() {
                    self.metadata.stale = true;
                }
                if sequenced.is_some() {
                    // Whether this batch was written is unknown (or the broker
                    // rejected the sequence): start over as a new producer
                    // rather than guess the next sequence number.
                    self.producer = None;
                    self.sequences.clear();
                }
                return Err(if after_indeterminate && definite {
                    ClientError::AfterIndeterminate {
                        last: Box::new(err),
                    }
                } else {
                    err
                });
            }
            if !definite {
                tracing::debug!(%topic, partition, error = %err, "retrying produce after indeterminate error");
                after_indeterminate = true;
            }
            self.prepare_retry(&err, attempts - 1).await;
        }
    }

    /// Reads from `offset`, waiting up to `max_wait_ms` for data.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<FetchResult, ClientError> {
        let mut attempt = 0;
        loop {
            match self
                .try_fetch(topic, partition, offset, max_wait_ms, max_bytes)
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) => self.retry_or_fail(e, &mut attempt).await?,
            }
        }
    }

    /// Looks up an offset of a partition (Earliest = log start, Latest = high watermark).
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partition: i32,
        which: OffsetSpec,
    ) -> Result<i64, ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_list_offsets(topic, partition, which).await {
                Ok(o) => return Ok(o),
                Err(e) => self.retry_or_fail(e, &mut attempt).await?,
            }
        }
    }

    /// DeleteRecords of one partition, sent once to its leader (no retry: a retry of a request
    /// whose outcome is unknown would be a second deletion). The log start it answered.
    pub async fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, ClientError> {
        let addr = self.leader_addr(topic, partition).await?;
        let timeout_ms = self.config.broker_timeout_ms;
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::DeleteRecords)?;
        let req = codec::delete_records_request(topic, partition, offset, timeout_ms);
        let resp = conn.send(&req, version).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing_partition(&addr, "delete records"))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(
                ApiKey::DeleteRecords,
                p.error_code,
                None,
            ));
        }
        Ok(p.low_watermark)
    }

    /// Fetches metadata for `topics` (none: brokers and controller only) from some reachable broker.
    pub async fn refresh_metadata(&mut self, topics: &[&str]) -> Result<(), ClientError> {
        // Candidates: known brokers, then bootstrap, rotated so that a dead first broker does not
        // absorb every refresh. Deduplicated, order deterministic.
        let mut candidates: Vec<String> = Vec::new();
        for addr in self.metadata.brokers.values().chain(self.bootstrap.iter()) {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        if candidates.is_empty() {
            return Err(ClientError::Invalid("no bootstrap brokers".to_string()));
        }
        let start = self.refresh_cursor % candidates.len();
        self.refresh_cursor = self.refresh_cursor.wrapping_add(1);
        candidates.rotate_left(start);

        let mut last_err = None;
        for addr in candidates {
            match self.try_metadata(&addr, topics).await {
                Ok(resp) => {
                    self.apply_metadata(resp, topics);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "metadata request failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ClientError::Invalid("no brokers".to_string())))
    }

    // ---- attempts (one request each) ----

    async fn try_metadata(
        &mut self,
        addr: &str,
        topics: &[&str],
    ) -> Result<MetadataResponse, ClientError> {
        let timeout = self
            .config
            .metadata_timeout
            .unwrap_or(self.config.connection.request_timeout);
        let conn = self.conn(addr).await?;
        let version = conn.pick_version(ApiKey::Metadata)?;
        let req = codec::metadata_request(topics, version);
        conn.send_with_timeout(&req, version, timeout).await
    }

    fn apply_metadata(&mut self, resp: MetadataResponse, asked: &[&str]) {
        let md = &mut self.metadata;
        md.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        md.controller = Some(resp.controller_id.0).filter(|&c| c >= 0);
        for t in asked {
            md.topics.remove(*t);
            md.topic_errors.remove(*t);
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.as_str().to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                md.topic_errors.insert(name, t.error_code);
                continue;
            }
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        if p.error_code == 0 { p.leader_id.0 } else { -1 },
                    )
                })
                .collect();
            md.topics.insert(name, parts);
        }
        md.stale = false;
    }

    /// Address of the partition leader, refreshing metadata when unknown or stale.
    pub(crate) async fn leader_addr(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<String, ClientError> {
        let known = self.metadata.topics.contains_key(topic);
        if self.metadata.stale || !known || self.cached_leader(topic, partition).is_none() {
            self.refresh_metadata(&[topic]).await?;
        }
        if let Some(&code) = self.metadata.topic_errors.get(topic) {
            return Err(ClientError::broker(ApiKey::Metadata, code, None));
        }
        let Some(parts) = self.metadata.topics.get(topic) else {
            return Err(ClientError::broker(
                ApiKey::Metadata,
                ResponseError::UnknownTopicOrPartition.code(),
                None,
            ));
        };
        let Some(&leader) = parts.get(&partition) else {
            return Err(ClientError::broker(
                ApiKey::Metadata,
                ResponseError::UnknownTopicOrPartition.code(),
                None,
            ));
        };
        self.metadata
            .brokers
            .get(&leader)
            .cloned()
            .ok_or_else(|| ClientError::NoLeader {
                topic: topic.to_string(),
                partition,
            })
    }

    /// A pooled connection to `addr`, opened (and negotiated) if needed.
    async fn conn(&mut self, addr: &str) -> Result<&mut Connection<C::Stream>, ClientError> {
        if self.conns.get(addr).is_some_and(|c| c.is_broken()) {
            self.conns.remove(addr);
        }
        if !self.conns.contains_key(addr) {
            let conn = self.connect(addr).await?;
            self.conns.insert(addr.to_string(), conn);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| ClientError::Invalid("connection pool lost an entry".to_string()))
    }

    /// Opens (and negotiates) a connection, failing fast while `addr` is in reconnect backoff.
    async fn connect(&mut self, addr: &str) -> Result<Connection<C::Stream>, ClientError> {
        let now = tokio::time::Instant::now();
        if self.unreachable.get(addr).is_some_and(|until| *until > now) {
            return Err(ClientError::Connect {
                addr: addr.to_string(),
                reason: "unreachable a moment ago; backing off".to_string(),
            });
        }
        let result = Connection::open(&self.connector, addr, &self.config.connection).await;
        match (&result, self.config.reconnect_backoff) {
            (Err(ClientError::Connect { .. }), Some(backoff)) => {
                self.unreachable
                    .insert(addr.to_string(), tokio::time::Instant::now() + backoff);
            }
            _ => {
                self.unreachable.remove(addr);
            }
        }
        result
    }

    async fn try_produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &Bytes,
        acks: i16,
    ) -> Result<i64, ClientError> {
        let addr = self.leader_addr(topic, partition).await?;
        let broker_timeout_ms = self.config.broker_timeout_ms;
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::Produce)?;
        let req = codec::produce_request(topic, partition, batch.clone(), acks, broker_timeout_ms);
        if acks == 0 {
            conn.send_oneway(&req, version).await?;
            return Ok(-1);
        }
        let resp = conn.send(&req, version).await?;
        let at = (ApiKey::Produce, version);
        let tp = Some((topic, partition));
        self.judge_answered(
            &addr,
            at,
            [(topic, partition)],
            resp.responses.iter().flat_map(|t| {
                let name = t.name.0.as_str();
                t.partition_responses.iter().map(move |p| (name, p.index))
            }),
        );
        // A partition missing from the answer: the batch failed with its outcome unknown (the
        // Java producer never completes it and expires it after delivery.timeout.ms).
        let p = resp
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition)
            .ok_or_else(|| missing_partition(&addr, "produce"))?;
        if p.error_code != 0 {
            self.judge_code(&addr, at, tp, p.error_code);
            let message = p.error_message.as_ref().map(|m| m.as_str().to_string());
            return Err(ClientError::broker(ApiKey::Produce, p.error_code, message));
        }
        if p.base_offset < 0 {
            // Accepted as the Java producer accepts it: the send succeeds and its RecordMetadata
            // has offset -1 (hasOffset() false); librdkafka likewise reports offset -1
            // (RD_KAFKA_OFFSET_INVALID). Whatever then happens to the record is what
            // applications live with, so the other checkers judge it as an ack without offset.
            let detail = format!("base offset {} on a successful produce", p.base_offset);
            self.report(ViolationKind::NoBaseOffset, &addr, at, tp, detail);
            return Ok(-1);
        }
        Ok(p.base_offset)
    }

    async fn try_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<FetchResult, ClientError> {
        let addr = self.leader_addr(topic, partition).await?;
        let isolation = self.config.isolation_level;
        // The broker may hold the request for max_wait_ms before answering.
        let timeout = self.config.connection.request_timeout
            + Duration::from_millis(max_wait_ms.max(0) as u64);
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::Fetch)?;
        let req = codec::fetch_request(topic, partition, offset, max_wait_ms, max_bytes, isolation);
        let resp = conn.send_with_timeout(&req, version, timeout).await?;
        let at = (ApiKey::Fetch, version);
        if resp.error_code != 0 {
            self.judge_code(&addr, at, None, resp.error_code);
            return Err(ClientError::broker(ApiKey::Fetch, resp.error_code, None));
        }
        self.judge_answered(&addr, at, [(topic, partition)], fetch_answered(&resp));
        // A partition missing from a fetch: the Java consumer simply fetches it again; here the
        // attempt fails (a fetch has no effect, so nothing is lost either way).
        let p = resp
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing_partition(&addr, "fetch"))?;
        self.take_fetched(&addr, version, (topic, partition, offset), p)
    }

    async fn try_list_offsets(
        &mut self,
        topic: &str,
        partition: i32,
        which: OffsetSpec,
    ) -> Result<i64, ClientError> {
        let addr = self.leader_addr(topic, partition).await?;
        let isolation = self.config.isolation_level;
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::ListOffsets)?;
        let req = codec::list_offsets_request(topic, partition, which.wire(), isolation, version);
        let resp = conn.send(&req, version).await?;
        let at = (ApiKey::ListOffsets, version);
        self.judge_answered(
            &addr,
            at,
            [(topic, partition)],
            resp.topics.iter().flat_map(|t| {
                let name = t.name.0.as_str();
                t.partitions.iter().map(move |p| (name, p.partition_index))
            }),
        );
        // Missing: the lookup fails (the Java consumer retries the partitions a ListOffsets
        // answer left out); unrequested ones are ignored, as there.
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing_partition(&addr, "list offsets"))?;
        if p.error_code != 0 {
            self.judge_code(&addr, at, Some((topic, partition)), p.error_code);
            return Err(ClientError::broker(ApiKey::ListOffsets, p.error_code, None));
        }
        Ok(p.offset)
    }

    async fn try_create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        if self.metadata.brokers.is_empty() || self.metadata.stale {
            self.refresh_metadata(&[]).await?;
        }
        // Older brokers accept CreateTopics only on the controller; newer ones forward it.
        let addr = self
            .metadata
            .controller
            .and_then(|c| self.metadata.brokers.get(&c))
            .or_else(|| self.metadata.brokers.values().next())
            .cloned()
            .ok_or_else(|| ClientError::Invalid("metadata lists no brokers".to_string()))?;
        let (rf, timeout_ms) = (
            self.config.replication_factor,
            self.config.broker_timeout_ms,
        );
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::CreateTopics)?;
        let req = codec::create_topics_request(name, partitions, configs, rf, timeout_ms, version);
        let resp = conn.send(&req, version).await?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| ClientError::Malformed {
                addr: addr.clone(),
                reason: "create topics response lacks the topic".to_string(),
                kind: Some(ViolationKind::MissingPartition),
            })?;
        match error_of(t.error_code) {
            None | Some(ResponseError::TopicAlreadyExists) => Ok(()),
            Some(_) => Err(ClientError::broker(
                ApiKey::CreateTopics,
                t.error_code,
                t.error_message.as_ref().map(|m| m.as_str().to_string()),
            )),
        }
    }

    /// The idempotent producer id, asking a broker for one if needed.
    async fn producer_id(&mut self) -> Result<(i64, i16), ClientError> {
        if let Some(p) = self.producer {
            return Ok(p);
        }
        let p = self.init_producer_id(None).await?;
        self.producer = Some(p);
        Ok(p)
    }

    /// InitProducerId (with retries): a new idempotent producer id and epoch, or, given the
    /// current ones (InitProducerId v3+, KIP-360), the same id with the next epoch. Against a
    /// broker older than v3 a bump gets a new id instead.
    pub async fn init_producer_id(
        &mut self,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ClientError> {
        let mut attempt = 0;
        loop {
            match self.try_init_producer_id(current).await {
                Ok(p) => return Ok(p),
                Err(e) => self.retry_or_fail(e, &mut attempt).await?,
            }
        }
    }

    /// One InitProducerId attempt, without retries (see [`Client::init_producer_id`]): for a
    /// caller that has other work to do while it waits to try again.
    pub async fn init_producer_id_once(
        &mut self,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ClientError> {
        let r = self.try_init_producer_id(current).await;
        if r.as_ref().is_err_and(|e| e.needs_metadata_refresh()) {
            self.metadata.stale = true;
        }
        r
    }

    /// Marks cached metadata stale: the next lookup refreshes it.
    pub fn mark_stale(&mut self) {
        self.metadata.stale = true;
    }

    /// A connection to `addr` that keeps several requests outstanding (not pooled: the caller
    /// owns it).
    pub async fn open_pipe(
        &mut self,
        addr: &str,
    ) -> Result<crate::connection::Pipe<C::Stream>, ClientError> {
        Ok(self.connect(addr).await?.into_pipe())
    }

    /// One fetch of several partitions led by the same broker (`addr`): each partition's records
    /// (at or after its offset) or its error. `Err` when the request as a whole failed.
    pub async fn fetch_many(
        &mut self,
        addr: &str,
        parts: &[codec::FetchSpec],
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<Vec<Result<FetchResult, ClientError>>, ClientError> {
        let isolation = self.config.isolation_level;
        let timeout = self.config.connection.request_timeout
            + Duration::from_millis(max_wait_ms.max(0) as u64);
        let conn = self.conn(addr).await?;
        let version = conn.pick_version(ApiKey::Fetch)?;
        let req = codec::fetch_request_many(parts, max_wait_ms, max_bytes, isolation);
        let resp = match conn.send_with_timeout(&req, version, timeout).await {
            Ok(r) => r,
            Err(e) => {
                if e.needs_metadata_refresh() {
                    self.metadata.stale = true;
                }
                return Err(e);
            }
        };
        let at = (ApiKey::Fetch, version);
        if resp.error_code != 0 {
            self.judge_code(addr, at, None, resp.error_code);
            return Err(ClientError::broker(ApiKey::Fetch, resp.error_code, None));
        }
        let asked = parts.iter().map(|p| (p.topic.as_str(), p.partition));
        self.judge_answered(addr, at, asked, fetch_answered(&resp));
        let mut out = Vec::with_capacity(parts.len());
        for spec in parts {
            let p = resp
                .responses
                .iter()
                .filter(|t| t.topic.0.as_str() == spec.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == spec.partition);
            let result = match p {
                None => Err(ClientError::Malformed {
                    addr: addr.to_string(),
                    reason: format!("fetch response lacks {}/{}", spec.topic, spec.partition),
                    kind: Some(ViolationKind::MissingPartition),
                }),
                Some(p) => {
                    let asked = (spec.topic.as_str(), spec.partition, spec.offset);
                    self.take_fetched(addr, version, asked, p)
                }
            };
            if result.as_ref().is_err_and(|e| e.needs_metadata_refresh()) {
                self.metadata.stale = true;
            }
            out.push(result);
        }
        Ok(out)
    }

    /// The address of some live broker (for requests any broker can answer),
    /// refreshing metadata first if it is missing or stale.
    pub(crate) async fn any_broker(&mut self) -> Result<String, ClientError> {
        if self.metadata.brokers.is_empty() || self.metadata.stale {
            self.refresh_metadata(&[]).await?;
        }
        // The first one not just found unreachable (with a reconnect backoff).
        let now = tokio::time::Instant::now();
        let reachable = |a: &&String| self.unreachable.get(*a).is_none_or(|until| *until <= now);
        let brokers = &self.metadata.brokers;
        brokers
            .values()
            .find(reachable)
            .or_else(|| brokers.values().next())
            .cloned()
            .ok_or_else(|| ClientError::Invalid("metadata lists no brokers".to_string()))
    }

    async fn try_init_producer_id(
        &mut self,
        current: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ClientError> {
        let addr = self.any_broker().await?;
        let conn = self.conn(&addr).await?;
        let version = conn.pick_version(ApiKey::InitProducerId)?;
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = None;
        req.transaction_timeout_ms = 60_000;
        if version >= 3 {
            let (id, epoch) = current.unwrap_or((-1, -1));
            req.producer_id = ProducerId(id);
            req.producer_epoch = epoch;
        }
        let resp = conn.send(&req, version).await?;
        match resp.error_code {
            0 => Ok((resp.producer_id.0, resp.producer_epoch)),
            code => Err(ClientError::broker(ApiKey::InitProducerId, code, None)),
        }
    }

    // ---- retry plumbing ----

    /// Returns the error if it should not be retried; otherwise backs off and returns `Ok`.
    async fn retry_or_fail(
        &mut self,
        err: ClientError,
        attempt: &mut u32,
    ) -> Result<(), ClientError> {
        if !err.is_retriable() || *attempt >= self.config.retries {
            if err.needs_metadata_refresh() {
                self.metadata.stale = true;
            }
            return Err(err);
        }
        self.prepare_retry(&err, *attempt).await;
        *attempt += 1;
        Ok(())
    }

    /// Marks metadata stale if the error calls for it, then sleeps the jittered backoff.
    async fn prepare_retry(&mut self, err: &ClientError, attempt: u32) {
        if err.needs_metadata_refresh() {
            self.metadata.stale = true;
        }
        let delay = self.backoff(attempt);
        tracing::debug!(error = %err, attempt, ?delay, "retrying");
        tokio::time::sleep(delay).await;
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.config.backoff_max);
        let nanos = exp.as_nanos() as u64;
        if nanos < 2 {
            return exp;
        }
        // Seeded jitter in [d/2, d]: spreads retries of many clients without losing determinism.
        Duration::from_nanos(self.rng.gen_range(nanos / 2..=nanos))
    }
}

/// The (topic, partition) pairs a fetch response names.
fn fetch_answered(
    resp: &kafka_protocol::messages::FetchResponse,
) -> impl Iterator<Item = (&str, i32)> {
    resp.responses.iter().flat_map(|t| {
        let name = t.topic.0.as_str();
        t.partitions.iter().map(move |p| (name, p.partition_index))
    })
}

/// A response that leaves out the partition asked about: malformed, and a protocol fact.
fn missing_partition(addr: &str, response: &str) -> ClientError {
    ClientError::Malformed {
        addr: addr.to_string(),
        reason: format!("{response} response lacks the partition"),
        kind: Some(ViolationKind::MissingPartition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: for any connector, client futures can go to `tokio::spawn`.
    #[allow(dead_code)]
    fn futures_are_send<C: Connector>(mut client: Client<C>) {
        fn is_send<T: Send + 'static>(_: T) {}
        is_send(async move {
            let _ = client.produce("t", 0, None, Bytes::new(), -1).await;
            let _ = client.fetch("t", 0, 0, 0, 1).await;
            let _ = client.list_offsets("t", 0, OffsetSpec::Latest).await;
            let _ = client.create_topic("t", 1, &[]).await;
        });
    }

    fn client(seed: u64) -> Client<crate::net::TcpConnector> {
        let config = ClientConfig {
            seed,
            ..ClientConfig::default()
        };
        Client::new(crate::net::TcpConnector, vec!["127.0.0.1:1".into()], config)
    }

    #[test]
    fn backoff_is_seeded_exponential_and_capped() {
        let delays = |seed| {
            let mut c = client(seed);
            (0..12).map(|a| c.backoff(a)).collect::<Vec<_>>()
        };
        assert_eq!(delays(7), delays(7), "same seed, same delays");
        assert_ne!(delays(7), delays(8));
        let cfg = ClientConfig::default();
        for (attempt, d) in delays(7).into_iter().enumerate() {
            let full = cfg
                .backoff_base
                .saturating_mul(1 << attempt)
                .min(cfg.backoff_max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn offset_spec_wire_values() {
        assert_eq!(OffsetSpec::Earliest.wire(), -2);
        assert_eq!(OffsetSpec::Latest.wire(), -1);
        assert_eq!(OffsetSpec::Timestamp(123).wire(), 123);
    }
}
