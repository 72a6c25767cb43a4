//! A deterministic, valid history shaped like a `chaos` run, for the throughput bench.
//!
//! # The mix
//!
//! Measured from `riptide sim --scenario chaos --seed S` for S in 1..=8 (17,614 ops; counting
//! the `f` of every line of history.jsonl), the share of each function among all ops (invokes
//! and completions):
//!
//! | f | share | outcomes of the completions |
//! |---|---|---|
//! | send | 64.4 % | 97.8 % ok, 2.0 % info, 0.2 % fail |
//! | poll | 20.4 % | 89 % ok (5.5 records per ok poll; 11 % of them empty), 11 % fail |
//! | commit | 6.2 % | 88 % ok, 8.6 % fail, 3.5 % info |
//! | seek | 4.2 % | all ok; 89 % to the committed offset, 9.5 % back, 1 % external/reset |
//! | client | 1.5 % | all ok (each process describes itself at its start and its end) |
//! | assign | 1.1 % | 68 % ok, 32 % fail (JoinGroup/OffsetFetch errors) |
//! | fault | 0.9 % | nemesis start/heal events |
//! | final_read | 0.9 % | all ok, one per partition |
//! | txn | 0.5 % | 80 % ok, 20 % fail; 4.1 sends and 0.6 polls per transaction |
//!
//! The generator draws sends, polls, commits, seeks, assigns, faults and transactions in those
//! proportions (whichever is furthest below its share goes next). Client ops (two per process)
//! and final reads (one per partition) are per process and per partition, not per second of
//! workload, so in a history this long they are a far smaller share than in a 15 s chaos run.
//!
//! The cluster it imitates: three topics of 8 partitions written by 8 pipelining producers
//! (record batches of 1..=4 records, 3 in flight) and a transactional producer; 4 standalone
//! consumers (each with its own group; the read_committed ones see control batches and aborted
//! records as hidden ranges and report LSOs), a group of 4 members that rebalances (assign, then
//! a seek to the committed offset of each partition), a consume-transform-produce pipeline from
//! `riptide-2` to `riptide-out`, a nemesis, and final reads of every partition after the faults
//! heal. The history is valid and clean: the bench asserts that `check_all` finds nothing, so it
//! cannot time a checker that stopped early.

use std::collections::{BTreeMap, VecDeque};

use riptide_checker::history::*;
use riptide_checker::History;

/// Topics 0..3 take producers' records; topic 3 is the pipeline's output.
const TOPICS: [&str; 4] = ["riptide", "riptide-1", "riptide-2", "riptide-out"];
const PARTS: usize = 8;
const INPUT_PARTS: usize = 3 * PARTS;
const ALL_PARTS: usize = 4 * PARTS;
const PRODUCERS: u64 = 8;
const NEMESIS: u64 = 1000;
/// The last fraction of the workload runs without faults (liveness after heal).
const QUIET_TAIL: f64 = 0.1;

/// What the generator draws, with its share of ops in a chaos run (percent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Send,
    Poll,
    Commit,
    Seek,
    Assign,
    Fault,
    Txn,
}

const MIX: [(Action, F, f64); 7] = [
    (Action::Send, F::Send, 64.4),
    (Action::Poll, F::Poll, 20.4),
    (Action::Commit, F::Commit, 6.2),
    (Action::Seek, F::Seek, 4.2),
    (Action::Assign, F::Assign, 1.1),
    (Action::Fault, F::Fault, 0.9),
    (Action::Txn, F::Txn, 0.5),
];

/// xorshift64*: enough randomness for a fixed, reproducible workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

fn tp(pid: usize) -> (&'static str, i32) {
    (TOPICS[pid / PARTS], (pid % PARTS) as i32)
}

/// One offset of a partition's log.
#[derive(Clone)]
enum Slot {
    Data(String),
    /// A record of a transaction that did not commit.
    Aborted(String),
    /// A transaction marker.
    Control,
}

/// What a poll from `from` returns: records, hidden ranges, and where it stopped.
struct Fetch {
    records: Vec<(i64, String)>,
    hidden: Vec<(i64, i64, Hidden)>,
    end: i64,
}

fn fetch(log: &[Slot], from: i64, max: usize, read_committed: bool) -> Fetch {
    let mut f = Fetch {
        records: Vec::new(),
        hidden: Vec::new(),
        end: from,
    };
    let mut o = from as usize;
    while o < log.len() && f.records.len() < max {
        let hide = match &log[o] {
            Slot::Data(v) => {
                f.records.push((o as i64, v.clone()));
                None
            }
            Slot::Aborted(v) if !read_committed => {
                f.records.push((o as i64, v.clone()));
                None
            }
            Slot::Aborted(_) => Some(Hidden::Aborted),
            Slot::Control => Some(Hidden::Control),
        };
        if let Some(why) = hide {
            match f.hidden.last_mut() {
                Some(last) if last.1 == o as i64 && last.2 == why => last.1 += 1,
                _ => f.hidden.push((o as i64, o as i64 + 1, why)),
            }
        }
        o += 1;
    }
    f.end = o as i64;
    f
}

/// Appends ops with strictly increasing times.
struct Recorder {
    ops: Vec<Op>,
    now_ns: u64,
}

impl Recorder {
    fn push(
        &mut self,
        rng: &mut Rng,
        kind: OpKind,
        process: u64,
        invoke: Option<u64>,
        value: impl Into<Value>,
        error: Option<&str>,
    ) -> u64 {
        self.now_ns += 20_000 + rng.below(160_000);
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            kind,
            process,
            invoke,
            time_ns: self.now_ns,
            value: value.into(),
            error: error.map(str::to_owned),
        });
        index
    }
}

struct Batch {
    pid: usize,
    sends: Vec<(u64, SendValue)>,
}

struct Producer {
    process: u64,
    outstanding: VecDeque<Batch>,
    batches: u64,
    requests: u64,
    records: u64,
}

struct Consumer {
    process: u64,
    /// Index into `World::groups`.
    group: usize,
    read_committed: bool,
    member: bool,
    assigned: Vec<usize>,
    pos: Vec<i64>,
    next: usize,
    max_poll: u64,
}

struct Group {
    name: String,
    committed: Vec<i64>,
}

/// A transaction invoked and not yet completed.
struct OpenTxn {
    invoke: u64,
    value: TxnValue,
    /// Pipeline: the input partition and where its poll started.
    input: Option<(usize, i64)>,
}

struct World {
    rng: Rng,
    rec: Recorder,
    logs: Vec<Vec<Slot>>,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    groups: Vec<Group>,
    txn_producer: u64,
    txn_open: Option<OpenTxn>,
    txn_n: u64,
    pipeline: u64,
    pipeline_group: usize,
    pipeline_pos: Vec<i64>,
    pipeline_open: Option<OpenTxn>,
    pipeline_n: u64,
    fault: Option<FaultValue>,
    faults: u64,
}

const FAULT_KINDS: [&str; 6] = [
    "crash",
    "pause",
    "partition",
    "store-slow",
    "store-ambiguous",
    "zone-loss",
];

impl World {
    fn new(seed: u64) -> World {
        let mut w = World {
            rng: Rng(seed),
            rec: Recorder {
                ops: Vec::new(),
                now_ns: 0,
            },
            logs: vec![Vec::new(); ALL_PARTS],
            producers: Vec::new(),
            consumers: Vec::new(),
            groups: Vec::new(),
            txn_producer: 20,
            txn_open: None,
            txn_n: 0,
            pipeline: 21,
            pipeline_group: 0,
            pipeline_pos: vec![0; PARTS],
            pipeline_open: None,
            pipeline_n: 0,
            fault: None,
            faults: 0,
        };
        for p in 0..PRODUCERS {
            w.producers.push(Producer {
                process: p,
                outstanding: VecDeque::new(),
                batches: 0,
                requests: 0,
                records: 0,
            });
            let mut c = client("producer", format!("producer-{p}"), &mut w.rng);
            c.idempotent = p % 2 == 0;
            c.max_in_flight = 3;
            w.describe(p, c);
        }
        // Standalone consumers: one per topic (the output topic's reads read_committed too).
        for t in 0..4 {
            let process = 10 + t as u64;
            let group = w.group(format!("riptide-group-standalone-{process}"));
            let rc = t >= 2;
            w.consumers.push(Consumer {
                process,
                group,
                read_committed: rc,
                member: false,
                assigned: Vec::new(),
                pos: vec![0; ALL_PARTS],
                next: 0,
                max_poll: 4 + 4 * t as u64,
            });
            let mut c = client("consumer", format!("consumer-{t}"), &mut w.rng);
            c.read_committed = rc;
            w.describe(process, c);
            let parts: Vec<usize> = (t * PARTS..(t + 1) * PARTS).collect();
            let i = w.consumers.len() - 1;
            w.assign(i, parts);
        }
        // One group of four members over the first two topics.
        let group = w.group("riptide-group".to_owned());
        for m in 0..4 {
            let process = 14 + m as u64;
            let rc = m % 2 == 1;
            w.consumers.push(Consumer {
                process,
                group,
                read_committed: rc,
                member: true,
                assigned: Vec::new(),
                pos: vec![0; ALL_PARTS],
                next: 0,
                max_poll: 2 + 4 * m as u64,
            });
            let mut c = client("member", format!("member-{m}"), &mut w.rng);
            c.read_committed = rc;
            w.describe(process, c);
        }
        w.rebalance();
        let mut c = client("txn-producer", "txn-producer-0".into(), &mut w.rng);
        c.idempotent = true;
        c.max_in_flight = 1;
        w.describe(w.txn_producer, c);
        w.pipeline_group = w.group(format!("riptide-group-pipeline-{}", w.pipeline));
        let mut c = client("pipeline", "pipeline-0".into(), &mut w.rng);
        c.idempotent = true;
        c.read_committed = true;
        c.max_in_flight = 1;
        w.describe(w.pipeline, c);
        w
    }

    fn group(&mut self, name: String) -> usize {
        self.groups.push(Group {
            name,
            committed: vec![0; ALL_PARTS],
        });
        self.groups.len() - 1
    }

    fn ok(&mut self, process: u64, invoke: impl Into<Value>, done: impl Into<Value>) {
        let i = self
            .rec
            .push(&mut self.rng, OpKind::Invoke, process, None, invoke, None);
        self.rec
            .push(&mut self.rng, OpKind::Ok, process, Some(i), done, None);
    }

    fn describe(&mut self, process: u64, c: ClientValue) {
        self.ok(process, c.clone(), c);
    }

    /// Consumer `i` is given `parts` (an ok assign) and seeks each to its group's offset.
    fn assign(&mut self, i: usize, parts: Vec<usize>) {
        let c = &self.consumers[i];
        let (process, group) = (c.process, c.group);
        let done = AssignValue {
            partitions: parts
                .iter()
                .map(|&p| TopicPartition::new(tp(p).0, tp(p).1))
                .collect(),
        };
        self.ok(process, AssignValue::default(), done);
        for &p in &parts {
            let at = self.groups[group].committed[p];
            self.consumers[i].pos[p] = at;
            let s = SeekValue::new(tp(p).0, tp(p).1, at).because(SeekReason::Committed);
            self.ok(process, s.clone(), s);
        }
        self.consumers[i].assigned = parts;
    }

    /// The group's members rejoin; each that succeeds gets a share of the partitions.
    fn rebalance(&mut self) {
        let members: Vec<usize> = (0..self.consumers.len())
            .filter(|&i| self.consumers[i].member)
            .collect();
        let mut parts: Vec<usize> = (0..2 * PARTS).collect();
        for k in (1..parts.len()).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            parts.swap(k, j);
        }
        for (k, &i) in members.iter().enumerate() {
            let mine: Vec<usize> = parts
                .iter()
                .copied()
                .skip(k)
                .step_by(members.len())
                .collect();
            if self.rng.chance(680) {
                self.assign(i, mine);
            } else {
                let process = self.consumers[i].process;
                let inv = self.rec.push(
                    &mut self.rng,
                    OpKind::Invoke,
                    process,
                    None,
                    AssignValue::default(),
                    None,
                );
                self.rec.push(
                    &mut self.rng,
                    OpKind::Fail,
                    process,
                    Some(inv),
                    AssignValue::default(),
                    Some("JoinGroup: broker error 27 (RebalanceInProgress)"),
                );
                self.consumers[i].assigned.clear();
            }
        }
    }

    fn append(&mut self, pid: usize, slot: Slot) -> i64 {
        self.logs[pid].push(slot);
        self.logs[pid].len() as i64 - 1
    }

    /// A producer invokes a new record batch, or completes its oldest.
    fn send(&mut self, quiet: bool) {
        let k = self.rng.below(PRODUCERS) as usize;
        let in_flight = self.producers[k].outstanding.len();
        if in_flight < 3 && (in_flight == 0 || self.rng.below(2) == 0) {
            self.invoke_batch(k);
        } else {
            self.complete_batch(k, quiet);
        }
    }

    fn invoke_batch(&mut self, k: usize) {
        let pid = self.rng.below(INPUT_PARTS as u64) as usize;
        let n = 1 + self.rng.below(4);
        let p = &mut self.producers[k];
        let (process, id) = (p.process, p.batches);
        p.batches += 1;
        let mut sends = Vec::new();
        for _ in 0..n {
            let p = &mut self.producers[k];
            let mut s = SendValue::new(tp(pid).0, tp(pid).1, format!("p{process}-{}", p.records));
            p.records += 1;
            s.batch = Some(id);
            let i = self.rec.push(
                &mut self.rng,
                OpKind::Invoke,
                process,
                None,
                s.clone(),
                None,
            );
            sends.push((i, s));
        }
        self.producers[k]
            .outstanding
            .push_back(Batch { pid, sends });
    }

    /// Producer `k`'s oldest batch completes: its records land if it is acknowledged.
    fn complete_batch(&mut self, k: usize, quiet: bool) {
        let Some(batch) = self.producers[k].outstanding.pop_front() else {
            return;
        };
        let p = &mut self.producers[k];
        let (process, request) = (p.process, p.requests);
        p.requests += 1;
        // Faults make a few batches end unknown or failed; none once the faults have healed.
        let roll = if quiet { 0 } else { self.rng.below(1000) };
        let broker = format!("broker-{}:9092", self.rng.below(5));
        let attempts = if self.rng.chance(30) { 2 } else { 1 };
        if roll < 978 {
            for (inv, s) in batch.sends {
                let offset = self.append(batch.pid, Slot::Data(s.value.clone()));
                let mut done = s.acked(offset);
                done.request = Some(request);
                done.attempts = Some(attempts);
                done.broker = Some(broker.clone());
                self.rec
                    .push(&mut self.rng, OpKind::Ok, process, Some(inv), done, None);
            }
        } else {
            // Unknown: it may have been written; failed: it was not.
            let info = roll < 998;
            let written = info && self.rng.below(2) == 0;
            for (inv, s) in batch.sends {
                if written {
                    self.append(batch.pid, Slot::Data(s.value.clone()));
                }
                let (kind, error) = if info {
                    (OpKind::Info, "request timed out")
                } else {
                    (OpKind::Fail, "broker error 6 (NotLeaderOrFollower)")
                };
                self.rec
                    .push(&mut self.rng, kind, process, Some(inv), s, Some(error));
            }
        }
    }

    fn poll_value(&self, pid: usize, from: i64, max: usize, rc: bool) -> (PollValue, i64) {
        let (topic, partition) = tp(pid);
        let f = fetch(&self.logs[pid], from, max, rc);
        let hwm = self.logs[pid].len() as i64;
        let mut v = PollValue::default();
        for (o, val) in &f.records {
            v = v.record(topic, partition, *o, val);
        }
        v = v
            .hwm(topic, partition, hwm)
            .fetch_offset(topic, partition, from);
        for &(a, b, why) in &f.hidden {
            v = v.hidden(topic, partition, a, b, why);
        }
        if rc {
            v = v.lso(topic, partition, hwm);
        }
        (v, f.end)
    }

    fn pick_consumer(&mut self) -> Option<usize> {
        let start = self.rng.below(self.consumers.len() as u64) as usize;
        (0..self.consumers.len())
            .map(|k| (start + k) % self.consumers.len())
            .find(|&i| !self.consumers[i].assigned.is_empty())
    }

    fn poll(&mut self) {
        let Some(i) = self.pick_consumer() else {
            return;
        };
        let c = &mut self.consumers[i];
        let pid = c.assigned[c.next % c.assigned.len()];
        c.next += 1;
        let (process, rc, from) = (c.process, c.read_committed, c.pos[pid]);
        let max = 1 + self.rng.below(self.consumers[i].max_poll) as usize;
        let inv = self.rec.push(
            &mut self.rng,
            OpKind::Invoke,
            process,
            None,
            PollValue::default(),
            None,
        );
        if self.rng.chance(107) {
            self.rec.push(
                &mut self.rng,
                OpKind::Fail,
                process,
                Some(inv),
                PollValue::default(),
                Some("connect to broker-1:9092: timed out"),
            );
            return;
        }
        let (v, end) = self.poll_value(pid, from, max, rc);
        self.consumers[i].pos[pid] = end;
        self.rec
            .push(&mut self.rng, OpKind::Ok, process, Some(inv), v, None);
    }

    fn commit(&mut self) {
        let Some(i) = self.pick_consumer() else {
            return;
        };
        let c = &self.consumers[i];
        let (process, g) = (c.process, c.group);
        let offsets: Vec<PartitionOffset> = c
            .assigned
            .iter()
            .map(|&p| PartitionOffset {
                topic: tp(p).0.to_owned(),
                partition: tp(p).1,
                offset: c.pos[p].max(self.groups[g].committed[p]),
            })
            .collect();
        let v = CommitValue {
            group: Some(self.groups[g].name.clone()),
            offsets,
        };
        let inv = self.rec.push(
            &mut self.rng,
            OpKind::Invoke,
            process,
            None,
            v.clone(),
            None,
        );
        let roll = self.rng.below(1000);
        if roll < 880 {
            for o in &v.offsets {
                let p = TOPICS.iter().position(|t| *t == o.topic).unwrap_or(0) * PARTS
                    + o.partition as usize;
                self.groups[g].committed[p] = o.offset;
            }
            self.rec
                .push(&mut self.rng, OpKind::Ok, process, Some(inv), v, None);
        } else {
            let (kind, error) = if roll < 966 {
                (
                    OpKind::Fail,
                    "OffsetCommit: broker error 27 (RebalanceInProgress)",
                )
            } else {
                (OpKind::Info, "request timed out")
            };
            self.rec
                .push(&mut self.rng, kind, process, Some(inv), v, Some(error));
        }
    }

    /// A consumer goes back to read records again.
    fn seek_back(&mut self) {
        let Some(i) = self.pick_consumer() else {
            return;
        };
        let c = &self.consumers[i];
        let pid = c.assigned[self.rng.below(c.assigned.len() as u64) as usize];
        let (process, pos) = (c.process, c.pos[pid]);
        let to = pos - self.rng.below(pos.min(20) as u64 + 1) as i64;
        self.consumers[i].pos[pid] = to;
        let s = SeekValue::new(tp(pid).0, tp(pid).1, to).because(SeekReason::Back);
        self.ok(process, s.clone(), s);
    }

    fn fault(&mut self) {
        let v = match self.fault.take() {
            Some(f) => f.with("phase", "heal"),
            None => {
                let kind = FAULT_KINDS[self.rng.below(FAULT_KINDS.len() as u64) as usize];
                self.faults += 1;
                let f = FaultValue::new(kind)
                    .with("broker", format!("broker-{}", self.rng.below(5)))
                    .with("id", self.faults);
                self.fault = Some(f.clone());
                f.with("phase", "start")
            }
        };
        self.ok(NEMESIS, v.clone(), v);
    }

    /// The transactional producer or the pipeline invokes a transaction or completes its open
    /// one.
    fn txn(&mut self) {
        if self.rng.below(2) == 0 {
            self.txn_producer_step();
        } else {
            self.pipeline_step();
        }
    }

    fn txn_producer_step(&mut self) {
        let process = self.txn_producer;
        if let Some(open) = self.txn_open.take() {
            self.end_txn(process, open);
            return;
        }
        let end = if self.rng.chance(850) {
            TxnEnd::Commit
        } else {
            TxnEnd::Abort
        };
        let mut v = TxnValue::new(format!("txn-txn-producer-{process}"), end);
        let parts = 1 + self.rng.below(3);
        for _ in 0..parts {
            let pid = self.rng.below(INPUT_PARTS as u64) as usize;
            for _ in 0..1 + self.rng.below(3) {
                self.txn_n += 1;
                let s = SendValue::new(tp(pid).0, tp(pid).1, format!("x{process}-{}", self.txn_n));
                v = v.send(s);
            }
        }
        let invoke = self.rec.push(
            &mut self.rng,
            OpKind::Invoke,
            process,
            None,
            v.clone(),
            None,
        );
        self.txn_open = Some(OpenTxn {
            invoke,
            value: v,
            input: None,
        });
    }

    fn pipeline_step(&mut self) {
        let process = self.pipeline;
        if let Some(open) = self.pipeline_open.take() {
            self.end_txn(process, open);
            return;
        }
        let input = 2 * PARTS + self.rng.below(PARTS as u64) as usize;
        let from = self.pipeline_pos[input - 2 * PARTS];
        let max = 1 + self.rng.below(8) as usize;
        let (poll, end) = self.poll_value(input, from, max, true);
        if poll.records.is_empty() {
            return self.txn_producer_step();
        }
        let mut v = TxnValue::new(format!("txn-pipeline-{process}"), TxnEnd::Commit);
        let sends: Vec<SendValue> = poll
            .records
            .iter()
            .map(|r| {
                self.pipeline_n += 1;
                let out = 3 * PARTS + self.rng.below(PARTS as u64) as usize;
                let mut s = SendValue::new(
                    tp(out).0,
                    tp(out).1,
                    format!("y{process}-{}", self.pipeline_n),
                );
                s.source = Some(r.value.clone());
                s
            })
            .collect();
        v = v.poll(poll);
        for s in sends {
            v = v.send(s);
        }
        v.group = Some(self.groups[self.pipeline_group].name.clone());
        v.offsets = vec![PartitionOffset {
            topic: tp(input).0.to_owned(),
            partition: tp(input).1,
            offset: end,
        }];
        self.pipeline_pos[input - 2 * PARTS] = end;
        let invoke = self.rec.push(
            &mut self.rng,
            OpKind::Invoke,
            process,
            None,
            v.clone(),
            None,
        );
        self.pipeline_open = Some(OpenTxn {
            invoke,
            value: v,
            input: Some((input, from)),
        });
    }

    /// Completes a transaction: ok (committed or aborted as it said) or failed. Its records
    /// land, then a marker in each partition it wrote, when it ends.
    fn end_txn(&mut self, process: u64, open: OpenTxn) {
        let end_sent_ns = self.rec.now_ns + 1;
        if self.rng.chance(200) {
            if let Some((input, from)) = open.input {
                self.pipeline_pos[input - 2 * PARTS] = from;
            }
            self.rec.push(
                &mut self.rng,
                OpKind::Fail,
                process,
                Some(open.invoke),
                open.value,
                Some("no leader for riptide-out-3"),
            );
            return;
        }
        let mut done = open.value;
        let commit = done.end == TxnEnd::Commit;
        let mut touched: BTreeMap<usize, ()> = BTreeMap::new();
        for m in &mut done.ops {
            if let MicroOp::Send(s) = m {
                let pid = TOPICS.iter().position(|t| *t == s.topic).unwrap_or(0) * PARTS
                    + s.partition as usize;
                let slot = if commit {
                    Slot::Data(s.value.clone())
                } else {
                    Slot::Aborted(s.value.clone())
                };
                s.offset = Some(self.append(pid, slot));
                touched.insert(pid, ());
            }
        }
        for &pid in touched.keys() {
            self.append(pid, Slot::Control);
        }
        match open.input {
            Some((input, from)) if !commit => self.pipeline_pos[input - 2 * PARTS] = from,
            Some((input, _)) if commit => {
                let g = self.pipeline_group;
                self.groups[g].committed[input] = done.offsets[0].offset;
            }
            _ => {}
        }
        done.end_sent_ns = Some(end_sent_ns);
        self.rec.push(
            &mut self.rng,
            OpKind::Ok,
            process,
            Some(open.invoke),
            done,
            None,
        );
    }

    fn step(&mut self, action: Action, quiet: bool) {
        match action {
            Action::Send => self.send(quiet),
            Action::Poll => self.poll(),
            Action::Commit => self.commit(),
            Action::Seek => self.seek_back(),
            Action::Assign => self.rebalance(),
            Action::Fault => self.fault(),
            Action::Txn => self.txn(),
        }
    }

    /// Ends the run: outstanding batches and transactions complete, clients describe what they
    /// did, and every partition is read back.
    fn finish(mut self) -> History {
        for k in 0..self.producers.len() {
            while !self.producers[k].outstanding.is_empty() {
                self.complete_batch(k, true);
            }
        }
        if let Some(open) = self.txn_open.take() {
            self.end_txn(self.txn_producer, open);
        }
        if let Some(open) = self.pipeline_open.take() {
            self.end_txn(self.pipeline, open);
        }
        for k in 0..self.producers.len() {
            let p = &self.producers[k];
            let mut c = client("producer", format!("producer-{k}"), &mut self.rng);
            c.idempotent = k % 2 == 0;
            c.max_in_flight = 3;
            c.counters = Some(ClientCounters {
                batches: p.batches,
                records: p.records,
                requests: p.requests,
                ..ClientCounters::default()
            });
            let process = p.process;
            self.describe(process, c);
        }
        let reader = 30;
        let mut c = client("reader", "final-read".into(), &mut self.rng);
        c.read_committed = true;
        self.describe(reader, c);
        for pid in 0..ALL_PARTS {
            let (topic, partition) = tp(pid);
            let f = fetch(&self.logs[pid], 0, usize::MAX, true);
            let mut v = FinalReadValue::new(topic, partition);
            v.hwm = Some(self.logs[pid].len() as i64);
            v.records = f
                .records
                .into_iter()
                .map(|(offset, value)| OffsetValue { offset, value })
                .collect();
            v.hidden = f
                .hidden
                .into_iter()
                .map(|(from, to, why)| HiddenSpan { from, to, why })
                .collect();
            self.ok(reader, FinalReadValue::new(topic, partition), v);
        }
        History::new(self.rec.ops)
    }
}

fn client(role: &str, name: String, rng: &mut Rng) -> ClientValue {
    let mut c = ClientValue {
        role: role.to_owned(),
        name,
        ..ClientValue::default()
    };
    let timeout = 1500 + rng.below(2000);
    c.profile
        .insert("request_timeout_ms".into(), timeout.into());
    if role.ends_with("producer") {
        c.profile.insert("linger_ms".into(), rng.below(30).into());
        c.profile.insert("codec".into(), "zstd".into());
    } else {
        c.profile
            .insert("max_poll_records".into(), (1 + rng.below(40)).into());
    }
    c
}

/// A chaos-shaped history of about `target` ops.
pub fn generate(seed: u64, target: usize) -> History {
    let mut w = World::new(seed);
    let total: f64 = MIX.iter().map(|m| m.2).sum();
    let loud_until = ((1.0 - QUIET_TAIL) * target as f64) as usize;
    // Reserve room for the final reads and the closing client ops.
    let end = target.saturating_sub(2 * ALL_PARTS + 2 * 20 + 64);
    let mut count: BTreeMap<F, usize> = BTreeMap::new();
    let mut last = 0;
    while w.rec.ops.len() < end {
        let quiet = w.rec.ops.len() >= loud_until;
        if quiet && w.fault.is_some() {
            w.fault();
        }
        let n = w.rec.ops.len() as f64;
        let action = MIX
            .iter()
            .filter(|m| !(quiet && m.0 == Action::Fault))
            .max_by(|a, b| {
                let da = a.2 / total * n - *count.get(&a.1).unwrap_or(&0) as f64;
                let db = b.2 / total * n - *count.get(&b.1).unwrap_or(&0) as f64;
                da.total_cmp(&db)
            })
            .map_or(Action::Send, |m| m.0);
        w.step(action, quiet);
        for op in &w.rec.ops[last..] {
            *count.entry(op.f()).or_default() += 1;
        }
        last = w.rec.ops.len();
    }
    w.finish()
}
