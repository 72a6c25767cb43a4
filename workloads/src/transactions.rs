//! The transactional producer workload (Jepsen's transactional shape): each transaction is one
//! history op carrying its transactional id and its sends as micro-ops; it writes to one to
//! three partitions (of every topic), and ends with a commit or an abort, as the seed says. A
//! transactional producer the roster drew as a consume-transform-produce pipeline runs
//! [`crate::pipeline`] instead, on the same [`Session`].
//!
//! Outcomes: `ok` when EndTxn ended it as intended; `fail` when it certainly did not commit (it
//! never sent a commit, or every EndTxn it sent was answered and the last answer fenced it);
//! `info` when a commit was sent and may have taken effect. After any failure the producer
//! initialises again (InitProducerId bumps its epoch, which aborts what it left open), as Kafka
//! clients do after an abortable error.
//!
//! Producer-side faults, drawn from the seed per transaction (rarely), both in the middle of a
//! transaction (after its first batch, or for a pipeline also between AddOffsetsToTxn and
//! TxnOffsetCommit):
//! - **stall**: the producer sleeps past its `transaction.timeout.ms`, then carries on with its
//!   old epoch. The coordinator should have aborted the transaction meanwhile (and bumped the
//!   epoch), so what follows is fenced and the op ends `fail`; a coordinator that could not
//!   look at the transaction in time (its broker down) may still let it commit, which is then
//!   recorded `ok`, as it happened.
//! - **zombie**: a second instance of the producer (same transactional id) calls
//!   InitProducerId, which aborts the open transaction and bumps the epoch; the first instance
//!   (the zombie) carries on and must be fenced. The successor is a new history process (as
//!   Jepsen replaces a process whose client it gave up on): it describes itself, takes over the
//!   workload, and the zombie's process ends with its fenced transaction.
//!
//! What it cannot do: a zombie runs no transaction of its own beside its successor's (they
//! share one client and one task); a stall is a sleep of the producer task, not of its
//! connections, whose requests already in flight finish.

use crate::client::group::Membership;
use crate::client::txn::Txn;
use crate::codec::OutRecord;
use crate::error::ClientError;
use crate::mix::derive;
use crate::net::Connector;
use crate::pipeline::{self, PipelineSetup};
use crate::recorder::Recorder;
use crate::{Client, Topic};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riptide_checker::history::{ClientValue, MicroOp, SendValue, TxnEnd, TxnValue};
use riptide_coverage::reached;
use riptide_wire::ResponseError;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// How often one step (add partitions, a batch, EndTxn) is tried before the transaction is
/// given up.
const ATTEMPTS: u32 = 12;
/// Chance per transaction of each producer-side fault.
const STALL: f64 = 0.012;
const ZOMBIE: f64 = 0.015;
/// How far past its transaction timeout a stalled producer sleeps (ms).
const STALL_PAST_TIMEOUT_MS: std::ops::Range<u64> = 500..3_000;
/// How often a successor tries InitProducerId before the zombie fault is given up.
const SUCCESSOR_ATTEMPTS: u32 = 4;
/// Successors' history processes: `SUCCESSORS + process * 100 + n` for the n-th successor of
/// `process` (clear of the roster's processes and of the nemesis, 1000).
const SUCCESSORS: u64 = 10_000;
const MAX_SUCCESSORS: u64 = 99;

/// One transactional producer process.
#[derive(Clone, Debug)]
pub struct TxnSetup {
    pub process: u64,
    pub name: String,
    pub topics: Vec<Topic>,
    pub seed: u64,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// `request.timeout.ms` (drawn; else the scenario's).
    pub request_timeout_ms: Option<u64>,
    /// A consume-transform-produce pipeline (drawn by the roster) rather than a producer of
    /// its own records.
    pub pipeline: Option<PipelineSetup>,
}

impl TxnSetup {
    pub fn transactional_id(&self) -> String {
        format!("txn-{}", self.name)
    }

    fn role(&self) -> &'static str {
        if self.pipeline.is_some() {
            "pipeline"
        } else {
            "txn-producer"
        }
    }
}

/// The history process of the n-th successor (n ≥ 1) of `process`.
pub fn successor_process(process: u64, n: u64) -> u64 {
    SUCCESSORS + process * (MAX_SUCCESSORS + 1) + n
}

/// `$call` (one client request with its `.await`), tried again after a growing, jittered
/// pause while its error is worth retrying, at most [`ATTEMPTS`] times; its last result.
macro_rules! retried {
    ($s:ident, $call:expr) => {{
        let mut attempt = 0;
        loop {
            match $call {
                Err(e) if worth_retrying(&e) && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    $s.retry_pause(attempt).await;
                }
                r => break r,
            }
        }
    }};
}

/// Errors worth trying the same step again for: what the client retries anyway, and the
/// coordinator's "not now" answers.
fn worth_retrying(e: &ClientError) -> bool {
    e.is_retriable()
        || matches!(
            e.error(),
            Some(
                ResponseError::ConcurrentTransactions
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress
            )
        )
}

/// Errors after which Kafka clients give a transactional producer up: the target does not
/// serve what it needs (not advertised, UNSUPPORTED_VERSION), or refuses the transactional id
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED: Kafka's answer to a principal without rights to it,
/// and the answer of brokers without transactions, such as Nisshi 0.8.1, to any).
pub fn refuses_transactions(e: &ClientError) -> bool {
    matches!(e, ClientError::Unsupported { .. })
        || matches!(
            e.error(),
            Some(
                ResponseError::UnsupportedVersion
                    | ResponseError::TransactionalIdAuthorizationFailed
            )
        )
}

/// The coordinator refused the producer's epoch: a newer instance, or the coordinator itself
/// (a timeout), ended its transaction.
pub(crate) fn fenced(e: &ClientError) -> bool {
    matches!(
        e.error(),
        Some(
            ResponseError::InvalidProducerEpoch
                | ResponseError::ProducerFenced
                | ResponseError::InvalidProducerIdMapping
        )
    )
}

/// A producer-side fault in the middle of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Stall,
    Zombie,
}

/// The transactional state and retry discipline a producer and a pipeline share: their
/// client, their transactional state, the history process they record as (which changes when a
/// successor takes over from a zombie), and the producer-side faults.
pub(crate) struct Session<'a, C: Connector> {
    pub client: &'a mut Client<C>,
    pub rec: &'a Recorder,
    pub setup: &'a TxnSetup,
    pub txn: Txn,
    pub rng: ChaCha8Rng,
    /// Producer-side faults are drawn from their own stream, so that the workload's other
    /// draws stay what they were.
    faults: ChaCha8Rng,
    /// The history process this instance records as.
    pub process: u64,
    successors: u64,
    /// A successor initialised during the current transaction: it takes over when the
    /// transaction's op is complete.
    successor: Option<(Txn, u64)>,
    /// The target refused transactions ([`refuses_transactions`]): the producer stops.
    pub refused: bool,
    /// The fault drawn for the current transaction struck (it may end before its middle).
    struck: bool,
}

impl<'a, C: Connector> Session<'a, C> {
    pub fn new(client: &'a mut Client<C>, rec: &'a Recorder, setup: &'a TxnSetup) -> Self {
        let s = Session {
            txn: Txn::new(&setup.transactional_id(), setup.timeout_ms),
            client,
            rec,
            setup,
            rng: ChaCha8Rng::seed_from_u64(derive(setup.seed, &[1])),
            faults: ChaCha8Rng::seed_from_u64(derive(setup.seed, &[2])),
            process: setup.process,
            successors: 0,
            successor: None,
            refused: false,
            struck: false,
        };
        s.describe(&setup.name);
        s
    }

    fn describe(&self, name: &str) {
        self.rec.event(
            self.process,
            ClientValue {
                role: self.setup.role().into(),
                name: name.to_string(),
                idempotent: true,
                max_in_flight: 1,
                read_committed: self.setup.pipeline.is_some(),
                profile: BTreeMap::from([
                    (
                        "transactional_id".to_string(),
                        self.setup.transactional_id().into(),
                    ),
                    (
                        "transaction_timeout_ms".to_string(),
                        self.setup.timeout_ms.into(),
                    ),
                ]),
                ..ClientValue::default()
            },
        );
    }

    /// InitProducerId if the producer has none. False (after a pause) if it failed.
    pub async fn ready(&mut self) -> bool {
        if self.txn.producer.is_some() {
            return true;
        }
        match self.client.init_transactions(&mut self.txn).await {
            Ok(()) => true,
            Err(e) if refuses_transactions(&e) => {
                tracing::warn!(error = %e, "the target refuses transactions: the producer stops");
                self.refused = true;
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "init_transactions failed");
                self.pause().await;
                false
            }
        }
    }

    pub async fn pause(&mut self) {
        let ms = self.rng.gen_range(100..400);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// After a failed transaction: start again with a new epoch (it aborts whatever this one
    /// left open).
    pub fn reset(&mut self) {
        self.txn.producer = None;
        self.txn.coordinator = None;
    }

    /// Draws this transaction's producer-side fault (rarely one).
    pub fn draw_fault(&mut self) -> Fault {
        let x: f64 = self.faults.gen();
        if x < STALL {
            Fault::Stall
        } else if x < STALL + ZOMBIE && self.successors < MAX_SUCCESSORS {
            Fault::Zombie
        } else {
            Fault::None
        }
    }

    /// A fair coin from the faults' stream (where in a pipeline's transaction a fault strikes).
    pub fn fault_coin(&mut self) -> bool {
        self.faults.gen_bool(0.5)
    }

    /// Applies `fault` in the middle of the open transaction.
    pub async fn strike(&mut self, fault: Fault) {
        self.struck = fault != Fault::None;
        match fault {
            Fault::None => {}
            Fault::Stall => {
                let past = self.faults.gen_range(STALL_PAST_TIMEOUT_MS);
                let ms = self.setup.timeout_ms.max(0) as u64 + past;
                reached!(
                    "txn.workload_stalled",
                    "a transactional producer stalled mid-transaction past its transaction timeout"
                );
                tracing::debug!(
                    transactional_id = %self.txn.id,
                    ms,
                    "producer stalls past its transaction timeout"
                );
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Fault::Zombie => {
                let mut next = Txn::new(&self.txn.id, self.txn.timeout_ms);
                for attempt in 0..SUCCESSOR_ATTEMPTS {
                    match self.client.init_transactions(&mut next).await {
                        Ok(()) => {
                            reached!(
                                "txn.workload_zombie",
                                "a second instance of a transactional producer initialised while the first had a transaction open"
                            );
                            tracing::debug!(
                                transactional_id = %self.txn.id,
                                zombie = ?self.txn.producer,
                                successor = ?next.producer,
                                "a successor fenced the producer mid-transaction"
                            );
                            self.successors += 1;
                            let process = successor_process(self.setup.process, self.successors);
                            self.successor = Some((next, process));
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, attempt, "successor's InitProducerId failed");
                            self.retry_pause(attempt + 1).await;
                        }
                    }
                }
            }
        }
    }

    /// Once the struck transaction's op is complete: the successor (if one initialised) takes
    /// over as a new history process; the zombie's process is done.
    pub fn take_over(&mut self) -> bool {
        let Some((txn, process)) = self.successor.take() else {
            return false;
        };
        self.txn = txn;
        self.process = process;
        self.client.witness().attach(self.rec, process);
        self.describe(&format!(
            "{}-successor-{}",
            self.setup.name, self.successors
        ));
        true
    }

    /// Notes what became of a transaction struck by `fault`, by its outcome.
    pub fn judge_fault(&mut self, fault: Fault, outcome: &Result<(), (bool, String)>) {
        if !std::mem::take(&mut self.struck) {
            return;
        }
        match (fault, outcome) {
            (Fault::None, _) => {}
            (Fault::Stall, Err((true, _))) => reached!(
                "txn.workload_stalled_fenced",
                "a transaction stalled past its timeout was refused afterwards (fail)"
            ),
            (Fault::Stall, Ok(())) => reached!(
                "txn.workload_stalled_ended",
                "a transaction stalled past its timeout still ended as meant (its coordinator had not aborted it yet)"
            ),
            (Fault::Zombie, _) if self.successor.is_none() => {}
            (Fault::Zombie, Err((true, _))) => reached!(
                "txn.workload_zombie_fenced",
                "a zombie producer's transaction was refused after its successor initialised (fail)"
            ),
            (Fault::Zombie, Ok(())) => tracing::warn!(
                transactional_id = %self.txn.id,
                "a zombie's transaction ended ok after its successor initialised"
            ),
            (_, Err((false, _))) => {}
        }
    }

    async fn retry_pause(&mut self, attempt: u32) {
        let ms = (50u64 << attempt.min(4)).min(800);
        let ms = self.rng.gen_range(ms / 2..=ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    pub async fn step_add(&mut self, parts: &[(String, i32)]) -> Result<(), ClientError> {
        retried!(
            self,
            self.client
                .add_partitions_to_txn(&mut self.txn, parts)
                .await
        )
    }

    /// Sends one transactional batch of `values`; their offsets.
    pub async fn step_produce(
        &mut self,
        topic: &str,
        partition: i32,
        values: &[String],
    ) -> Result<Vec<i64>, ClientError> {
        // Stamped with the client's clock, as real clients do: retention judges records by it.
        let timestamp = self
            .client
            .config()
            .clock
            .as_ref()
            .map_or(-1, |c| c.now_ms());
        let records: Vec<OutRecord> = values
            .iter()
            .map(|v| OutRecord {
                value: Some(Bytes::from(v.clone())),
                timestamp,
                ..OutRecord::default()
            })
            .collect();
        // One batch, the same bytes (and sequence) on every attempt: a retry of a batch that
        // was written is answered with its offset.
        let (batch, _) = self
            .client
            .txn_batch(&self.txn, topic, partition, &records)?;
        let r = retried!(
            self,
            self.client
                .produce_txn(&mut self.txn, topic, partition, &batch, records.len())
                .await
        );
        tracing::debug!(topic, partition, result = ?r, "txn batch done");
        r.map(|base| (0..values.len() as i64).map(|i| base + i).collect())
    }

    /// AddOffsetsToTxn for `m`'s group.
    pub async fn step_add_offsets(&mut self, m: &Membership) -> Result<(), ClientError> {
        retried!(
            self,
            self.client
                .add_offsets_to_txn(&mut self.txn, &m.group)
                .await
        )
    }

    /// TxnOffsetCommit of `offsets` (the next offsets to consume) to `m`'s group.
    pub async fn step_commit_offsets(
        &mut self,
        m: &mut Membership,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        retried!(
            self,
            self.client
                .txn_offset_commit(&mut self.txn, m, offsets)
                .await
        )
    }

    /// EndTxn, retried. On error, whether the transaction certainly did not end as asked: an
    /// abort never commits; a commit did not happen if every attempt was answered and the
    /// coordinator fenced the producer (the transaction was aborted under it).
    pub async fn step_end(&mut self, commit: bool) -> Result<(), (bool, ClientError)> {
        let mut attempt = 0;
        let mut ambiguous = false;
        loop {
            match self.client.end_txn(&mut self.txn, commit).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    ambiguous |= !e.is_definite();
                    if worth_retrying(&e) && attempt + 1 < ATTEMPTS {
                        attempt += 1;
                        self.retry_pause(attempt).await;
                        continue;
                    }
                    let certain = !commit || (!ambiguous && fenced(&e));
                    if commit && certain {
                        reached!(
                            "txn.workload_commit_fenced",
                            "a transactional producer's commit was refused: it had been fenced"
                        );
                    }
                    return Err((certain, e));
                }
            }
        }
    }

    /// Gives up on the open transaction before sending a commit: it certainly did not commit.
    /// Aborts it if it can (else the next epoch or the timeout will).
    pub async fn abandon(&mut self, e: ClientError) -> (bool, String) {
        let _ = self.step_end(false).await;
        (true, e.to_string())
    }
}

/// Runs one transactional producer (or pipeline) until `until`.
pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &TxnSetup,
    until: Instant,
) {
    if let Some(p) = &setup.pipeline {
        return pipeline::run(client, rec, setup, p, until).await;
    }
    let mut p = Producer {
        s: Session::new(client, rec, setup),
        next_value: 0,
    };
    while Instant::now() < until && !p.s.refused {
        if !p.s.ready().await {
            continue;
        }
        p.one().await;
        let gap = p.s.rng.gen_range(10..200);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
}

struct Producer<'a, C: Connector> {
    s: Session<'a, C>,
    next_value: u64,
}

impl<C: Connector> Producer<'_, C> {
    /// One transaction, drawn, run and recorded.
    async fn one(&mut self) {
        let setup = self.s.setup;
        let rng = &mut self.s.rng;
        let all: Vec<(String, i32)> = setup
            .topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
            .collect();
        let wanted = rng.gen_range(1..=3usize.min(all.len()));
        let mut parts: Vec<(String, i32)> = Vec::new();
        while parts.len() < wanted {
            let tp = all[rng.gen_range(0..all.len())].clone();
            if !parts.contains(&tp) {
                parts.push(tp);
            }
        }
        let end = if rng.gen_bool(0.75) {
            TxnEnd::Commit
        } else {
            TxnEnd::Abort
        };
        let mut batches: Vec<(String, i32, Vec<String>)> = Vec::new();
        for (topic, partition) in &parts {
            let n = rng.gen_range(1..=3);
            let values = (0..n)
                .map(|_| {
                    self.next_value += 1;
                    format!("x{}-{}", setup.process, self.next_value)
                })
                .collect();
            batches.push((topic.clone(), *partition, values));
        }
        let fault = self.s.draw_fault();
        let mut value = TxnValue::new(self.s.txn.id.clone(), end);
        for (topic, partition, values) in &batches {
            for v in values {
                value = value.send(SendValue::new(topic.clone(), *partition, v.clone()));
            }
        }
        let process = self.s.process;
        let invoke = self.s.rec.invoke(process, value.clone());
        let outcome = self.attempt(&parts, &batches, end, fault, &mut value).await;
        if outcome.is_err() {
            self.s.reset();
        }
        self.s.judge_fault(fault, &outcome);
        self.s.rec.complete(process, invoke, value, outcome);
        self.s.take_over();
    }

    /// Runs the transaction; fills in offsets (and when EndTxn was sent) as it goes.
    async fn attempt(
        &mut self,
        parts: &[(String, i32)],
        batches: &[(String, i32, Vec<String>)],
        end: TxnEnd,
        fault: Fault,
        value: &mut TxnValue,
    ) -> Result<(), (bool, String)> {
        if let Err(e) = self.s.step_add(parts).await {
            return Err(self.s.abandon(e).await);
        }
        let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
        for (k, (topic, partition, values)) in batches.iter().enumerate() {
            if k == 1 {
                self.s.strike(fault).await;
            }
            let sent = self.s.step_produce(topic, *partition, values).await;
            match sent {
                Ok(at) => offsets.extend(values.iter().cloned().zip(at)),
                Err(e) => return Err(self.s.abandon(e).await),
            }
        }
        if batches.len() < 2 {
            self.s.strike(fault).await;
        }
        fill_offsets(value, &offsets);
        let commit = end == TxnEnd::Commit;
        value.end_sent_ns = Some(self.s.rec.now());
        match self.s.step_end(commit).await {
            Ok(()) => {
                if commit {
                    reached!(
                        "txn.workload_committed",
                        "a transactional producer committed a transaction"
                    );
                } else {
                    reached!(
                        "txn.workload_aborted",
                        "a transactional producer aborted a transaction as it meant to"
                    );
                }
                Ok(())
            }
            Err((certain, e)) => Err((certain, e.to_string())),
        }
    }
}

/// Each send of `value` gets the offset its record was acknowledged at, if it was.
pub(crate) fn fill_offsets(value: &mut TxnValue, offsets: &BTreeMap<String, i64>) {
    for op in &mut value.ops {
        if let MicroOp::Send(s) = op {
            s.offset = offsets.get(&s.value).copied();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;
    use std::collections::BTreeSet;

    #[test]
    fn successors_get_processes_of_their_own() {
        let mut seen = BTreeSet::new();
        for process in 0..50 {
            for n in 1..=MAX_SUCCESSORS {
                let id = successor_process(process, n);
                // Clear of the roster's processes, the reader and the nemesis (1000).
                assert!(id > 1_000, "{id}");
                assert!(seen.insert(id), "{process} {n}: {id} twice");
            }
        }
    }

    #[test]
    fn only_an_epoch_refusal_says_the_producer_was_fenced() {
        let e = |code: ResponseError| ClientError::broker(ApiKey::EndTxn, code.code(), None);
        assert!(fenced(&e(ResponseError::InvalidProducerEpoch)));
        assert!(fenced(&e(ResponseError::ProducerFenced)));
        assert!(!fenced(&e(ResponseError::ConcurrentTransactions)));
        assert!(!fenced(&e(ResponseError::NotCoordinator)));
        assert!(!fenced(&e(ResponseError::RequestTimedOut)));
    }
}
