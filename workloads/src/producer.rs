//! A producer that behaves like a real Kafka client's.
//!
//! Records go into a per-partition accumulator and leave in batches (full, or after the linger
//! time); one produce request carries a batch for every ready partition the same broker leads,
//! across topics; up to `max_in_flight` requests stay outstanding per connection. An idempotent
//! producer numbers each batch's records per partition and keeps the numbers across retries, so
//! the broker can drop a retried duplicate; after a sequence error, or after giving up on a batch
//! whose outcome is unknown, it bumps its epoch (KIP-360: InitProducerId with its id and epoch,
//! or locally) and starts every partition's sequence at 0 again.
//!
//! Every record is its own `send` in the history, tagged with its batch, the request that brought
//! its outcome and the attempts its batch took. A record is `ok` with its offset (the batch's base
//! offset plus its position), `fail` when it was certainly never written, `info` when it may have
//! been. A batch whose outcome is unknown is never sent again under a new epoch (that could write
//! it twice); it ends `info`.

use crate::client::Client;
use crate::codec::{self, OutRecord, Sequenced};
use crate::error::ClientError;
use crate::mix::{profile_map, EpochBump, ProducerProfile};
use crate::net::Connector;
use crate::pipes::{PipeId, Pipes};
use crate::recorder::Recorder;
use crate::witness::judge_partitions;
use crate::Topic;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::{ClientCounters, ClientValue, SendValue, ViolationKind};
use riptide_coverage::reached;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hasher;
use std::time::Duration;
use tokio::time::Instant;

/// Keys a keyed producer uses (so that several records share a key and a partition), and the
/// most keys one burst of records is about.
const KEYS: u64 = 16;
const BURST_KEYS: usize = 3;
/// Beyond the request timeout (which the broker also waits at most), time for the answer to come.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Bursts the loop missed by more than this (while it waited on the network) are skipped.
const CATCH_UP: Duration = Duration::from_secs(1);
/// After the workload ends, how long outstanding batches may still take.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The broker remembers this many batches per producer and partition for deduplication: an
/// idempotent producer keeps no more in flight.
const MAX_IDEMPOTENT_IN_FLIGHT: u32 = 5;

/// Where a producer process writes and how often it makes records.
#[derive(Clone, Debug)]
pub struct ProducerSetup {
    pub process: u64,
    pub name: String,
    pub topics: Vec<Topic>,
    pub profile: ProducerProfile,
    pub seed: u64,
    /// Shared with the roster: a traffic spike makes records come faster.
    pub pace: crate::Pace,
}

struct Rec {
    value: String,
    key: Option<String>,
    invoke: u64,
    /// CreateTime (ms); -1 without a clock.
    timestamp: i64,
}

struct Batch {
    id: u64,
    topic: usize,
    partition: i32,
    records: Vec<Rec>,
    out: Vec<OutRecord>,
    bytes: usize,
    created: Instant,
    /// (epoch, base sequence) once an idempotent producer has sent it.
    sequence: Option<(i16, i32)>,
    /// Encoded for its current sequence; kept so that every retry sends the same bytes.
    encoded: Option<Bytes>,
    attempts: u32,
    /// Some attempt's outcome is unknown: the batch may be in the log already.
    in_doubt: bool,
    last_error: String,
}

#[derive(Default)]
struct Part {
    open: Option<Batch>,
    /// Closed batches waiting to be sent, oldest (lowest sequence) first.
    queue: VecDeque<Batch>,
    next_sequence: i32,
    /// No sends before this (backoff after a failed attempt), and how many failed in a row.
    not_before: Option<Instant>,
    failures: u32,
}

struct InFlight {
    addr: String,
    /// The connection it went out on: its failure closes that one, not a newer one.
    pipe: PipeId,
    /// The Produce version it was sent at.
    version: i16,
    batches: Vec<Batch>,
}

type Done = (u64, Result<ProduceResponse, ClientError>);

struct Producer<'a, C: Connector> {
    client: &'a mut Client<C>,
    rec: &'a Recorder,
    setup: &'a ProducerSetup,
    rng: ChaCha8Rng,
    parts: BTreeMap<(usize, i32), Part>,
    pipes: Pipes<C::Stream>,
    requests: BTreeMap<u64, InFlight>,
    responses: FuturesUnordered<BoxFuture<'static, Done>>,
    producer: Option<(i64, i16)>,
    /// A sequence gap is possible: bump the epoch once nothing is in flight.
    need_bump: bool,
    /// No InitProducerId before this (it failed).
    init_not_before: Option<Instant>,
    /// Where the sticky partitioner puts unkeyed records of each topic.
    sticky: BTreeMap<usize, i32>,
    next_record: u64,
    next_batch: u64,
    next_request: u64,
    counters: ClientCounters,
}

/// Runs one producer until `until`, then sends what it holds and waits for the outcomes (at most
/// a delivery timeout plus a few seconds more).
pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &ProducerSetup,
    until: Instant,
) {
    let mut p = Producer {
        client,
        rec,
        setup,
        rng: ChaCha8Rng::seed_from_u64(setup.seed),
        parts: BTreeMap::new(),
        pipes: Pipes::default(),
        requests: BTreeMap::new(),
        responses: FuturesUnordered::new(),
        producer: None,
        need_bump: false,
        init_not_before: None,
        sticky: BTreeMap::new(),
        next_record: 0,
        next_batch: 0,
        next_request: 0,
        counters: ClientCounters::default(),
    };
    p.describe(None);
    p.run(until).await;
    let counters = std::mem::take(&mut p.counters);
    p.describe(Some(counters));
}

impl<C: Connector> Producer<'_, C> {
    fn profile(&self) -> &ProducerProfile {
        &self.setup.profile
    }

    /// The delivery timeout, at least a request timeout and the linger time long (as Kafka
    /// requires), so that every batch gets one full attempt.
    fn delivery_timeout(&self) -> Duration {
        let least = self.client.config().connection.request_timeout
            + Duration::from_millis(self.profile().linger_ms);
        Duration::from_millis(self.profile().delivery_timeout_ms).max(least)
    }

    fn describe(&self, counters: Option<ClientCounters>) {
        let p = self.profile();
        self.rec.event(
            self.setup.process,
            ClientValue {
                role: "producer".into(),
                name: self.setup.name.clone(),
                idempotent: p.idempotent,
                max_in_flight: p.max_in_flight,
                read_committed: false,
                profile: profile_map(p),
                counters,
            },
        );
    }

    async fn run(&mut self, until: Instant) {
        let hard_stop = until
            + self.delivery_timeout()
            + self.client.config().connection.request_timeout
            + DRAIN_GRACE;
        let mut next_burst = Instant::now();
        loop {
            let now = Instant::now();
            if now < until {
                // An application blocked as long as the producer was does not make up for it.
                if next_burst + CATCH_UP < now {
                    next_burst = now;
                }
                while next_burst <= now {
                    self.burst(now);
                    next_burst += self.gap();
                }
            } else {
                self.close_all();
            }
            self.close_lingered(now);
            self.expire(now);
            if self.idle() && now >= until {
                break;
            }
            if now >= hard_stop {
                self.abandon("still unresolved when the producer stopped");
                break;
            }
            if self.need_bump && self.requests.is_empty() {
                self.bump().await;
            }
            self.send_ready().await;
            let wake = self.next_wake(now, until, next_burst).min(hard_stop);
            tokio::select! {
                biased;
                Some((id, result)) = self.responses.next(), if !self.responses.is_empty() => {
                    self.on_response(id, result);
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Nothing held: no open, queued or in-flight batch.
    fn idle(&self) -> bool {
        self.requests.is_empty()
            && self
                .parts
                .values()
                .all(|p| p.open.is_none() && p.queue.is_empty())
    }

    /// Time to the next burst: bursts average (1 + burst) / 2 records, so that records come at
    /// `records_per_second` on average.
    fn gap(&mut self) -> Duration {
        let p = self.profile();
        let per_burst = (1 + p.burst_records.max(1) as u64) as f64 / 2.0;
        let mean_us = per_burst * 1e6 / p.records_per_second.max(1) as f64;
        let most = self.setup.pace.gap_us((2.0 * mean_us) as u64);
        Duration::from_micros(self.rng.gen_range(0..=most))
    }

    /// The application hands over a burst of records.
    /// A burst is what an application writes about a few things at once: one topic, and (keyed)
    /// one to three keys, so its records share a few batches.
    fn burst(&mut self, now: Instant) {
        let n = self.rng.gen_range(1..=self.profile().burst_records.max(1));
        let topic = self.rng.gen_range(0..self.setup.topics.len());
        let keys: Vec<u64> = (0..self.rng.gen_range(1..=BURST_KEYS))
            .map(|_| self.rng.gen_range(0..KEYS))
            .collect();
        for _ in 0..n {
            let key = keys[self.rng.gen_range(0..keys.len())];
            self.add_record(now, topic, key);
        }
    }

    fn add_record(&mut self, now: Instant, topic: usize, key: u64) {
        let setup = self.setup;
        let topics = &setup.topics;
        let partitions = topics[topic].partitions.max(1);
        let n = self.next_record;
        self.next_record += 1;
        let value = format!("p{}-{n}", self.setup.process);
        let (key, partition) = if self.profile().keyed {
            let key = format!("k{key}");
            let partition = (fnv1a(key.as_bytes()) % partitions as u64) as i32;
            (Some(key), partition)
        } else {
            // Sticky partitioning (Kafka's default for unkeyed records): one partition until
            // its batch is sent.
            let rng = &mut self.rng;
            let p = *self
                .sticky
                .entry(topic)
                .or_insert_with(|| rng.gen_range(0..partitions));
            (None, p)
        };
        let timestamp = self
            .client
            .config()
            .clock
            .as_ref()
            .map_or(-1, |c| c.now_ms());
        let out = OutRecord {
            key: key.clone().map(Bytes::from),
            value: Some(Bytes::from(value.clone())),
            headers: vec![
                (
                    "riptide-process".into(),
                    Bytes::from(self.setup.process.to_string()),
                ),
                ("riptide-record".into(), Bytes::from(n.to_string())),
            ],
            timestamp,
        };
        let bytes = value.len() + key.as_ref().map_or(0, String::len) + 48;
        let part = self.parts.entry((topic, partition)).or_default();
        if part.open.is_none() {
            self.next_batch += 1;
        }
        let batch_id = self.next_batch - 1;
        let batch = part.open.get_or_insert_with(|| Batch {
            id: batch_id,
            topic,
            partition,
            records: Vec::new(),
            out: Vec::new(),
            bytes: 0,
            created: now,
            sequence: None,
            encoded: None,
            attempts: 0,
            in_doubt: false,
            last_error: String::new(),
        });
        let mut send = SendValue::new(&topics[topic].name, partition, &value);
        send.key = key.clone();
        send.batch = Some(batch.id);
        send.timestamp = (timestamp >= 0).then_some(timestamp);
        let invoke = self.rec.invoke(self.setup.process, send);
        batch.records.push(Rec {
            value,
            key,
            invoke,
            timestamp,
        });
        batch.out.push(out);
        batch.bytes += bytes;
        let profile = &setup.profile;
        if batch.records.len() >= profile.batch_records as usize
            || batch.bytes >= profile.batch_bytes as usize
        {
            self.close(topic, partition);
        }
    }

    /// Moves a partition's open batch to its send queue.
    fn close(&mut self, topic: usize, partition: i32) {
        let Some(part) = self.parts.get_mut(&(topic, partition)) else {
            return;
        };
        if let Some(b) = part.open.take() {
            part.queue.push_back(b);
            if self.sticky.get(&topic) == Some(&partition) {
                self.sticky.remove(&topic);
            }
        }
    }

    fn close_lingered(&mut self, now: Instant) {
        let linger = Duration::from_millis(self.profile().linger_ms);
        let due: Vec<(usize, i32)> = self
            .parts
            .iter()
            .filter(|(_, p)| p.open.as_ref().is_some_and(|b| b.created + linger <= now))
            .map(|(k, _)| *k)
            .collect();
        for (t, p) in due {
            self.close(t, p);
        }
    }

    fn close_all(&mut self) {
        let keys: Vec<(usize, i32)> = self.parts.keys().copied().collect();
        for (t, p) in keys {
            self.close(t, p);
        }
    }

    /// Gives up on queued batches past their delivery timeout.
    fn expire(&mut self, now: Instant) {
        let timeout = self.delivery_timeout();
        let mut expired = Vec::new();
        for part in self.parts.values_mut() {
            let mut keep = VecDeque::new();
            for b in part.queue.drain(..) {
                if b.created + timeout <= now {
                    expired.push(b);
                } else {
                    keep.push_back(b);
                }
            }
            part.queue = keep;
        }
        for b in expired {
            reached!(
                "producer.delivery_timeout",
                "a queued batch ran out of delivery time before it could be sent again"
            );
            let why = format!("delivery timeout; last error: {}", b.last_error);
            self.give_up(b, &why);
        }
    }

    /// Ends every record of a batch that will not be sent again: `fail` when no attempt could
    /// have written it, else `info`. A sent idempotent batch leaves a possible sequence gap.
    fn give_up(&mut self, b: Batch, why: &str) {
        if b.sequence.is_some() {
            self.need_bump = true;
        }
        let definite = !b.in_doubt;
        if definite {
            reached!(
                "producer.gave_up_definitely",
                "a producer gave up on a batch that certainly was not written (fail)"
            );
        } else {
            reached!(
                "producer.gave_up_in_doubt",
                "a producer gave up on a batch that may have been written (info)"
            );
        }
        self.finish(&b, None, Err((definite, why.to_string())));
    }

    fn abandon(&mut self, why: &str) {
        let mut left: Vec<Batch> = Vec::new();
        for part in self.parts.values_mut() {
            left.extend(part.open.take());
            left.extend(part.queue.drain(..));
        }
        for (_, r) in std::mem::take(&mut self.requests) {
            for mut b in r.batches {
                b.in_doubt = true;
                left.push(b);
            }
        }
        for b in left {
            self.give_up(b, why);
        }
    }

    /// Records the outcome of every record of `b`.
    fn finish(
        &mut self,
        b: &Batch,
        request: Option<(u64, &str)>,
        outcome: Result<i64, (bool, String)>,
    ) {
        let topic = &self.setup.topics[b.topic].name;
        for (i, r) in b.records.iter().enumerate() {
            let mut v = SendValue::new(topic, b.partition, &r.value);
            v.key = r.key.clone();
            v.batch = Some(b.id);
            v.timestamp = (r.timestamp >= 0).then_some(r.timestamp);
            v.request = request.map(|r| r.0);
            v.broker = request.map(|r| r.1.to_string());
            v.attempts = Some(b.attempts);
            let result = match &outcome {
                Ok(base) => {
                    // A base offset of -1 (no offset) is -1 for every record, as in Java.
                    v.offset = Some(if *base < 0 { -1 } else { base + i as i64 });
                    Ok(())
                }
                Err(e) => Err(e.clone()),
            };
            self.rec.complete(self.setup.process, r.invoke, v, result);
        }
    }

    /// When the loop must look again: the next burst, linger expiry, backoff end, delivery
    /// timeout, or the end of the workload.
    fn next_wake(&self, now: Instant, until: Instant, next_burst: Instant) -> Instant {
        let linger = Duration::from_millis(self.profile().linger_ms);
        let timeout = self.delivery_timeout();
        let mut wake = if now < until {
            next_burst.min(until)
        } else {
            now + Duration::from_millis(100)
        };
        // Only future events: a batch that is ready but waits for room in flight (or for the
        // epoch bump) is woken by an answer, not by polling.
        let mut at = |t: Instant| {
            if t > now {
                wake = wake.min(t);
            }
        };
        for part in self.parts.values() {
            if let Some(b) = &part.open {
                at(b.created + linger);
            }
            if let Some(b) = part.queue.front() {
                at(b.created + timeout);
                if let Some(t) = part.not_before {
                    at(t);
                }
            }
        }
        if let Some(t) = self.init_not_before {
            at(t);
        }
        wake
    }

    /// Sends every batch that can go: per broker, one request with the front batch of each ready
    /// partition it leads, while the connection has room.
    async fn send_ready(&mut self) {
        if self.need_bump {
            return;
        }
        let now = Instant::now();
        // With one request in flight a partition waits for its batch's answer, on whatever
        // connection (leadership may have moved): that is what keeps its order without
        // idempotence (Kafka's client mutes the partition likewise).
        let muted: std::collections::BTreeSet<(usize, i32)> = if self.max_in_flight() == 1 {
            self.requests
                .values()
                .flat_map(|r| r.batches.iter().map(|b| (b.topic, b.partition)))
                .collect()
        } else {
            Default::default()
        };
        let ready: Vec<(usize, i32)> = self
            .parts
            .iter()
            .filter(|(k, p)| {
                !p.queue.is_empty() && p.not_before.is_none_or(|t| t <= now) && !muted.contains(k)
            })
            .map(|(k, _)| *k)
            .collect();
        if ready.is_empty() {
            return;
        }
        if self.profile().idempotent && self.producer.is_none() {
            if self.init_not_before.is_some_and(|t| t > now) {
                return;
            }
            match self.client.init_producer_id_once(None).await {
                Ok(p) => self.producer = Some(p),
                Err(e) => {
                    tracing::debug!(error = %e, "InitProducerId failed");
                    self.init_not_before = Some(Instant::now() + Duration::from_millis(500));
                    return;
                }
            }
        }
        // Leaders, in partition order.
        let mut by_leader: BTreeMap<String, Vec<(usize, i32)>> = BTreeMap::new();
        for (t, p) in ready {
            let topic = self.setup.topics[t].name.clone();
            match self.client.leader_addr(&topic, p).await {
                Ok(addr) => by_leader.entry(addr).or_default().push((t, p)),
                Err(e) => self.backoff((t, p), &e),
            }
        }
        for (addr, parts) in by_leader {
            self.send_to(&addr, &parts).await;
        }
    }

    fn max_in_flight(&self) -> usize {
        let limit = self.profile().max_in_flight.max(1);
        if self.profile().idempotent {
            limit.min(MAX_IDEMPOTENT_IN_FLIGHT) as usize
        } else {
            limit as usize
        }
    }

    async fn send_to(&mut self, addr: &str, parts: &[(usize, i32)]) {
        loop {
            let in_flight = self.requests.values().filter(|r| r.addr == addr).count();
            if in_flight >= self.max_in_flight() {
                return;
            }
            let mut batches = Vec::new();
            for key in parts {
                if let Some(b) = self.parts.get_mut(key).and_then(|p| p.queue.pop_front()) {
                    batches.push(b);
                }
            }
            if batches.is_empty() {
                return;
            }
            if !self.send_request(addr, batches).await {
                return;
            }
        }
    }

    /// Sends one request; false if it could not be sent (its batches went back to their queues).
    async fn send_request(&mut self, addr: &str, mut batches: Vec<Batch>) -> bool {
        for b in &mut batches {
            if let Err(e) = self.prepare(b) {
                tracing::warn!(error = %e, "could not encode a batch");
                b.last_error = e.to_string();
            }
        }
        // A batch that cannot be encoded cannot be sent at all.
        let (good, bad): (Vec<Batch>, Vec<Batch>) =
            batches.into_iter().partition(|b| b.encoded.is_some());
        for b in bad {
            let why = b.last_error.clone();
            self.give_up(b, &why);
        }
        let mut batches = good;
        if batches.is_empty() {
            return false;
        }
        if self.pipes.usable(addr).is_none() {
            match self.client.open_pipe(addr).await {
                Ok(p) => {
                    self.pipes.insert(addr, p);
                }
                Err(e) => {
                    self.client.mark_stale();
                    for b in batches {
                        self.retry_or_give_up(b, &e);
                    }
                    return false;
                }
            }
        }
        let Some((pipe_id, pipe)) = self.pipes.usable(addr) else {
            return false;
        };
        let version = match pipe.pick_version(ApiKey::Produce) {
            Ok(v) => v,
            Err(e) => {
                for b in batches {
                    self.retry_or_give_up(b, &e);
                }
                return false;
            }
        };
        let req = {
            let topics = &self.setup.topics;
            let list: Vec<(&str, i32, Bytes)> = batches
                .iter()
                .map(|b| {
                    let data = b.encoded.clone().unwrap_or_default();
                    (topics[b.topic].name.as_str(), b.partition, data)
                })
                .collect();
            // The broker waits no longer for the commit than the client waits for the answer.
            let request_timeout = self.client.config().connection.request_timeout;
            let broker_timeout = (self.client.config().broker_timeout_ms.max(0) as u128)
                .min(request_timeout.as_millis()) as i32;
            codec::produce_request_many(&list, -1, broker_timeout)
        };
        let c = &mut self.counters;
        c.requests += 1;
        c.max_partitions_per_request = c.max_partitions_per_request.max(batches.len() as u64);
        let mut topics: Vec<usize> = batches.iter().map(|b| b.topic).collect();
        topics.dedup();
        topics.sort_unstable();
        topics.dedup();
        c.max_topics_per_request = c.max_topics_per_request.max(topics.len() as u64);
        for b in &mut batches {
            if b.attempts == 0 {
                c.batches += 1;
                c.records += b.records.len() as u64;
                c.max_records_per_batch = c.max_records_per_batch.max(b.records.len() as u64);
            } else {
                c.retried_batches += 1;
            }
            b.attempts += 1;
        }
        let sent = pipe.send(&req, version).await;
        let in_flight = pipe.in_flight() as u64;
        let sent = match sent {
            Ok(s) => s,
            Err(e) => {
                self.pipes.close(addr, pipe_id);
                self.client.mark_stale();
                for b in batches {
                    self.retry_or_give_up(b, &e);
                }
                return false;
            }
        };
        if in_flight > 1 {
            reached!(
                "producer.pipelined",
                "a producer had several requests in flight to one broker"
            );
        }
        if batches.len() > 1 {
            reached!(
                "producer.request_several_partitions",
                "one produce request carried batches for several partitions"
            );
        }
        let c = &mut self.counters;
        c.max_requests_in_flight = c.max_requests_in_flight.max(in_flight);
        let id = self.next_request;
        self.next_request += 1;
        let deadline =
            Instant::now() + self.client.config().connection.request_timeout + ANSWER_MARGIN;
        self.responses
            .push(async move { (id, sent.response(deadline).await) }.boxed());
        self.requests.insert(
            id,
            InFlight {
                addr: addr.to_string(),
                pipe: pipe_id,
                version,
                batches,
            },
        );
        true
    }

    /// Numbers (idempotent) and encodes a batch for its next attempt.
    fn prepare(&mut self, b: &mut Batch) -> Result<(), ClientError> {
        let sequenced = match (self.profile().idempotent, self.producer) {
            (true, Some((producer_id, epoch))) => {
                let (epoch, sequence) = match b.sequence {
                    Some(s) => s,
                    None => {
                        let part = self.parts.entry((b.topic, b.partition)).or_default();
                        let s = part.next_sequence;
                        part.next_sequence = next_sequence(s, b.records.len());
                        b.sequence = Some((epoch, s));
                        b.encoded = None;
                        (epoch, s)
                    }
                };
                Some(Sequenced {
                    producer_id,
                    producer_epoch: epoch,
                    sequence,
                })
            }
            _ => None,
        };
        if b.encoded.is_none() {
            let compression = self.profile().codec.compression();
            b.encoded = Some(codec::encode_batch(&b.out, compression, sequenced)?);
        }
        Ok(())
    }

    fn on_response(&mut self, id: u64, result: Result<ProduceResponse, ClientError>) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                // After a timeout the connection's later answers may never come. A failure
                // handled after a newer connection to the broker was opened leaves that open.
                self.pipes.close(&req.addr, req.pipe);
                self.client.mark_stale();
                for b in req.batches {
                    self.retry_or_give_up(b, &e);
                }
                return;
            }
        };
        let at = (ApiKey::Produce, req.version);
        let topics = &self.setup.topics;
        let asked = req
            .batches
            .iter()
            .map(|b| (topics[b.topic].name.as_str(), b.partition));
        let answered = resp.responses.iter().flat_map(|t| {
            let name = t.name.0.as_str();
            t.partition_responses.iter().map(move |p| (name, p.index))
        });
        // Partitions answered unasked are ignored (no batch waits for them); missing ones are
        // reported below with their batch.
        for (kind, tp, detail) in judge_partitions(asked, answered) {
            if kind == ViolationKind::UnrequestedPartition {
                self.client.report(kind, &req.addr, at, Some(tp), detail);
            }
        }
        for b in req.batches {
            let topic = &self.setup.topics[b.topic].name;
            let tp = Some((topic.as_str(), b.partition));
            // Facts about this batch's answer name its first record's send.
            self.client
                .witness()
                .set_op(b.records.first().map(|r| r.invoke));
            let found = resp
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == b.partition);
            let result = match found {
                // The batch fails with its outcome unknown: the Java producer never completes a
                // batch its answer leaves out, and expires it after delivery.timeout.ms.
                None => {
                    let detail = format!(
                        "the response lacks {topic}/{}, which the request asked for",
                        b.partition
                    );
                    self.client
                        .report(ViolationKind::MissingPartition, &req.addr, at, tp, detail);
                    Err(ClientError::Malformed {
                        addr: req.addr.clone(),
                        reason: format!("produce response lacks {topic}/{}", b.partition),
                        kind: Some(ViolationKind::MissingPartition),
                    })
                }
                Some(p) if p.error_code != 0 => {
                    self.client.judge_code(&req.addr, at, tp, p.error_code);
                    Err(ClientError::Broker {
                        api: ApiKey::Produce,
                        code: p.error_code,
                        message: p.error_message.as_ref().map(|m| m.to_string()),
                    })
                }
                // Accepted as the Java producer accepts it: every record's RecordMetadata has
                // offset -1 (hasOffset() false); librdkafka reports RD_KAFKA_OFFSET_INVALID. The
                // sends are `ok` at offset -1, which the checkers read as an ack without offset.
                Some(p) if p.base_offset < 0 => {
                    let detail = format!("base offset {} on a successful produce", p.base_offset);
                    self.client
                        .report(ViolationKind::NoBaseOffset, &req.addr, at, tp, detail);
                    Ok(-1)
                }
                Some(p) => Ok(p.base_offset),
            };
            self.client.witness().set_op(None);
            match result {
                Ok(base) => {
                    if b.in_doubt {
                        reached!("producer.acked_after_unknown_outcome", "a batch was acknowledged after an earlier attempt's outcome was unknown");
                    } else if b.attempts > 1 {
                        reached!(
                            "producer.acked_after_retry",
                            "a batch was acknowledged on a later attempt"
                        );
                    }
                    if let Some(part) = self.parts.get_mut(&(b.topic, b.partition)) {
                        part.failures = 0;
                        part.not_before = None;
                    }
                    self.finish(&b, Some((id, &req.addr)), Ok(base));
                }
                Err(e) => self.on_batch_error(b, e),
            }
        }
    }

    fn on_batch_error(&mut self, mut b: Batch, e: ClientError) {
        let sequence_error = matches!(
            e.code().map(ResponseError::try_from_code),
            Some(Some(
                ResponseError::OutOfOrderSequenceNumber | ResponseError::UnknownProducerId
            ))
        );
        if self.profile().idempotent && sequence_error {
            // The broker did not append this batch now. If an earlier batch of the partition is
            // still unresolved, this one simply follows it again; if not, the broker has lost
            // or never had our sequence: bump the epoch and start over at 0.
            if self.earlier_unresolved(&b) {
                reached!("producer.sequence_error_behind_earlier", "an idempotent batch was refused as out of order while an earlier one was unresolved");
            } else {
                reached!("producer.sequence_lost", "the broker lost or never had an idempotent producer's sequence: the epoch is bumped");
                self.need_bump = true;
            }
            b.last_error = e.to_string();
            self.requeue(b);
            return;
        }
        self.retry_or_give_up(b, &e);
    }

    /// Is an earlier (lower-sequence) batch of `b`'s partition queued or in flight?
    fn earlier_unresolved(&self, b: &Batch) -> bool {
        let Some((epoch, seq)) = b.sequence else {
            return false;
        };
        let earlier = |x: &Batch| {
            x.topic == b.topic
                && x.partition == b.partition
                && x.sequence.is_some_and(|(e, s)| e == epoch && s < seq)
        };
        self.parts
            .get(&(b.topic, b.partition))
            .is_some_and(|p| p.queue.iter().any(earlier))
            || self
                .requests
                .values()
                .any(|r| r.batches.iter().any(earlier))
    }

    /// After a failed attempt: again (after a backoff) if that can still help, else give up.
    fn retry_or_give_up(&mut self, mut b: Batch, e: &ClientError) {
        if e.needs_metadata_refresh() {
            self.client.mark_stale();
        }
        let definite = e.is_definite();
        if !definite {
            reached!("producer.outcome_unknown", "a produce attempt's outcome is unknown (timeout, lost connection, ambiguous error)");
            b.in_doubt = true;
        }
        b.last_error = e.to_string();
        let timeout = self.delivery_timeout();
        // Without idempotence a retry after an unknown outcome could write the batch twice.
        let retry = e.is_retriable()
            && (definite || self.profile().idempotent)
            && Instant::now() < b.created + timeout;
        if retry {
            if b.in_doubt {
                reached!("producer.retry_in_doubt", "an idempotent producer sent again a batch whose earlier attempt may have been written");
            }
            self.backoff((b.topic, b.partition), e);
            self.requeue(b);
        } else {
            let why = b.last_error.clone();
            self.give_up(b, &why);
        }
    }

    /// Puts a batch back in its partition's queue, in sequence (else creation) order.
    fn requeue(&mut self, b: Batch) {
        let part = self.parts.entry((b.topic, b.partition)).or_default();
        let key = |x: &Batch| (x.sequence.map_or(i64::MAX, |(_, s)| s as i64), x.id);
        let at = part.queue.partition_point(|x| key(x) < key(&b));
        part.queue.insert(at, b);
    }

    fn backoff(&mut self, key: (usize, i32), e: &ClientError) {
        tracing::debug!(error = %e, "produce attempt failed; backing off");
        if e.needs_metadata_refresh() {
            self.client.mark_stale();
        }
        let part = self.parts.entry(key).or_default();
        let cfg = self.client.config();
        let exp = cfg
            .backoff_base
            .saturating_mul(1u32 << part.failures.min(16))
            .min(cfg.backoff_max);
        part.failures += 1;
        let nanos = exp.as_nanos() as u64;
        let delay = Duration::from_nanos(self.rng.gen_range(nanos / 2..=nanos.max(1)));
        part.not_before = Some(Instant::now() + delay);
    }

    /// KIP-360: a new epoch (same producer id), every sequence back to 0. Batches that may
    /// already be in the log end `info`; the others are numbered again when next sent.
    async fn bump(&mut self) {
        let Some((id, epoch)) = self.producer else {
            self.need_bump = false;
            return;
        };
        if self.init_not_before.is_some_and(|t| t > Instant::now()) {
            return;
        }
        let bumped = match self.profile().epoch_bump {
            EpochBump::Local if epoch < i16::MAX => Ok((id, epoch + 1)),
            EpochBump::Local => self.client.init_producer_id_once(None).await,
            EpochBump::InitProducerId => self.client.init_producer_id_once(Some((id, epoch))).await,
        };
        let new = match bumped {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "epoch bump failed; will retry");
                self.init_not_before = Some(Instant::now() + Duration::from_millis(500));
                return;
            }
        };
        tracing::debug!(producer = id, from = epoch, to = ?new, "bumped producer epoch");
        reached!(
            "producer.epoch_bumped",
            "an idempotent producer bumped its epoch and numbered its batches from 0 again"
        );
        self.producer = Some(new);
        self.need_bump = false;
        self.counters.epoch_bumps += 1;
        let mut in_doubt = Vec::new();
        for part in self.parts.values_mut() {
            part.next_sequence = 0;
            let mut keep = VecDeque::new();
            for mut b in part.queue.drain(..) {
                if b.in_doubt {
                    in_doubt.push(b);
                } else {
                    b.sequence = None;
                    b.encoded = None;
                    keep.push_back(b);
                }
            }
            part.queue = keep;
        }
        for b in in_doubt {
            reached!(
                "producer.in_doubt_at_epoch_bump",
                "a batch of unknown outcome ended info at an epoch bump"
            );
            let why = format!(
                "outcome unknown at epoch bump; last error: {}",
                b.last_error
            );
            // No gap to mend: this is the bump.
            let definite = false;
            self.finish(&b, None, Err((definite, why)));
        }
    }
}

/// The sequence after a batch of `n` records starting at `s` (sequences wrap at i32::MAX).
fn next_sequence(s: i32, n: usize) -> i32 {
    ((s as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

/// FNV-1a: a small hash for key partitioning, stable across Rust versions
/// (std's is not), so a seed places keys the same way on every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap() {
        assert_eq!(next_sequence(5, 3), 8);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn key_hash_is_pinned() {
        // Placement of keys is in every trace hash: it must never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"k7"), 0x08be_1107_b562_2827);
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..KEYS {
            seen.insert(fnv1a(format!("k{k}").as_bytes()) % 4);
        }
        assert_eq!(seen.len(), 4);
    }
}
