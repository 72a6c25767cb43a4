//! The transactional producer workload (Jepsen's transactional shape): each transaction is one
//! history op carrying its transactional id and its sends as micro-ops; it writes to one to
//! three partitions (of every topic), and ends with a commit or an abort, as the seed says.
//!
//! Outcomes: `ok` when EndTxn ended it as intended; `fail` when it certainly did not commit (it
//! never sent a commit); `info` when a commit was sent and its answer never came. After any
//! failure the producer initialises again (InitProducerId bumps its epoch, which aborts what it
//! left open), as Kafka clients do after an abortable error.

use crate::client::txn::Txn;
use crate::codec::OutRecord;
use crate::error::ClientError;
use crate::mix::derive;
use crate::net::Connector;
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

/// One transactional producer process.
#[derive(Clone, Debug)]
pub struct TxnSetup {
    pub process: u64,
    pub name: String,
    pub topics: Vec<Topic>,
    pub seed: u64,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
}

impl TxnSetup {
    pub fn transactional_id(&self) -> String {
        format!("txn-{}", self.name)
    }
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

struct Producer<'a, C: Connector> {
    client: &'a mut Client<C>,
    rec: &'a Recorder,
    setup: &'a TxnSetup,
    txn: Txn,
    rng: ChaCha8Rng,
    next_value: u64,
}

pub async fn run<C: Connector>(
    client: &mut Client<C>,
    rec: &Recorder,
    setup: &TxnSetup,
    until: Instant,
) {
    let mut p = Producer {
        txn: Txn::new(&setup.transactional_id(), setup.timeout_ms),
        client,
        rec,
        setup,
        rng: ChaCha8Rng::seed_from_u64(derive(setup.seed, &[1])),
        next_value: 0,
    };
    rec.event(
        setup.process,
        ClientValue {
            role: "txn-producer".into(),
            name: setup.name.clone(),
            idempotent: true,
            max_in_flight: 1,
            profile: BTreeMap::from([
                (
                    "transactional_id".to_string(),
                    setup.transactional_id().into(),
                ),
                (
                    "transaction_timeout_ms".to_string(),
                    setup.timeout_ms.into(),
                ),
            ]),
            ..ClientValue::default()
        },
    );
    while Instant::now() < until {
        if p.txn.producer.is_none() {
            if let Err(e) = p.client.init_transactions(&mut p.txn).await {
                tracing::debug!(error = %e, "init_transactions failed");
                p.pause().await;
                continue;
            }
        }
        p.one().await;
        let gap = p.rng.gen_range(10..200);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
}

impl<C: Connector> Producer<'_, C> {
    async fn pause(&mut self) {
        let ms = self.rng.gen_range(100..400);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// One transaction, drawn, run and recorded.
    async fn one(&mut self) {
        let all: Vec<(String, i32)> = self
            .setup
            .topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
            .collect();
        let wanted = self.rng.gen_range(1..=3usize.min(all.len()));
        let mut parts: Vec<(String, i32)> = Vec::new();
        while parts.len() < wanted {
            let tp = all[self.rng.gen_range(0..all.len())].clone();
            if !parts.contains(&tp) {
                parts.push(tp);
            }
        }
        let end = if self.rng.gen_bool(0.75) {
            TxnEnd::Commit
        } else {
            TxnEnd::Abort
        };
        let mut batches: Vec<(String, i32, Vec<String>)> = Vec::new();
        for (topic, partition) in &parts {
            let n = self.rng.gen_range(1..=3);
            let values = (0..n)
                .map(|_| {
                    self.next_value += 1;
                    format!("x{}-{}", self.setup.process, self.next_value)
                })
                .collect();
            batches.push((topic.clone(), *partition, values));
        }
        let mut value = TxnValue::new(self.txn.id.clone(), end);
        for (topic, partition, values) in &batches {
            for v in values {
                value = value.send(SendValue::new(topic.clone(), *partition, v.clone()));
            }
        }
        let invoke = self.rec.invoke(self.setup.process, value.clone());
        let outcome = self.attempt(&parts, &batches, end, &mut value).await;
        if outcome.is_err() {
            // Start again with a new epoch: it aborts whatever this one left open.
            self.txn.producer = None;
            self.txn.coordinator = None;
        }
        self.rec
            .complete(self.setup.process, invoke, value, outcome);
    }

    /// Runs the transaction; fills in offsets (and when EndTxn was sent) as it goes.
    async fn attempt(
        &mut self,
        parts: &[(String, i32)],
        batches: &[(String, i32, Vec<String>)],
        end: TxnEnd,
        value: &mut TxnValue,
    ) -> Result<(), (bool, String)> {
        if let Err(e) = self.step_add(parts).await {
            return Err(self.abandon(e).await);
        }
        let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
        for (topic, partition, values) in batches {
            let records: Vec<OutRecord> = values
                .iter()
                .map(|v| OutRecord {
                    value: Some(Bytes::from(v.clone())),
                    ..OutRecord::default()
                })
                .collect();
            match self.step_produce(topic, *partition, &records).await {
                Ok(base) => {
                    for (i, v) in values.iter().enumerate() {
                        offsets.insert(v.clone(), base + i as i64);
                    }
                }
                Err(e) => return Err(self.abandon(e).await),
            }
        }
        for op in &mut value.ops {
            if let MicroOp::Send(s) = op {
                s.offset = offsets.get(&s.value).copied();
            }
        }
        let commit = end == TxnEnd::Commit;
        value.end_sent_ns = Some(self.rec.now());
        match self.step_end(commit).await {
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
            // A commit that never got its answer may have happened; an abort never commits.
            Err(e) => Err((!commit, e.to_string())),
        }
    }

    /// Gives up on the open transaction: it never sent a commit, so it certainly did not
    /// commit. Aborts it if it can (else the next epoch or the timeout will).
    async fn abandon(&mut self, e: ClientError) -> (bool, String) {
        let _ = self.step_end(false).await;
        (true, e.to_string())
    }

    async fn retry_pause(&mut self, attempt: u32) {
        let ms = (50u64 << attempt.min(4)).min(800);
        let ms = self.rng.gen_range(ms / 2..=ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn step_add(&mut self, parts: &[(String, i32)]) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            match self
                .client
                .add_partitions_to_txn(&mut self.txn, parts)
                .await
            {
                Err(e) if worth_retrying(&e) && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    self.retry_pause(attempt).await;
                }
                r => return r,
            }
        }
    }

    async fn step_produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[OutRecord],
    ) -> Result<i64, ClientError> {
        // One batch, the same bytes (and sequence) on every attempt: a retry of a batch that
        // was written is answered with its offset.
        let (batch, _) = self
            .client
            .txn_batch(&self.txn, topic, partition, records)?;
        let mut attempt = 0;
        loop {
            match self
                .client
                .produce_txn(&mut self.txn, topic, partition, &batch, records.len())
                .await
            {
                Err(e) if worth_retrying(&e) && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    self.retry_pause(attempt).await;
                }
                r => {
                    tracing::debug!(topic, partition, result = ?r, "txn batch done");
                    return r;
                }
            }
        }
    }

    async fn step_end(&mut self, commit: bool) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            match self.client.end_txn(&mut self.txn, commit).await {
                Err(e) if worth_retrying(&e) && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    self.retry_pause(attempt).await;
                }
                r => return r,
            }
        }
    }
}
