//! Property tests: generated valid histories have no findings, and targeted mutations of them
//! are flagged by the right checker.
//!
//! Producers 1-3 send one record at a time and never describe themselves (old histories).
//! Producers 4 (idempotent) and 5 (not) are pipelined: they keep several record batches
//! outstanding, one `send` per record with a `batch` tag, completions out of invoke order naming
//! their invokes, and `client` ops at start and end. A retried batch of producer 5 may land after
//! batches it sent later, as Kafka allows a non-idempotent producer with several requests in
//! flight.

use proptest::prelude::*;
use riptide_checker::history::*;
use riptide_checker::{check_all, Anomaly, CheckerConfig, History};

const T: &str = "t";
const PARTITIONS: usize = 3;
const CONSUMERS: u64 = 2;
/// The pipelined producers: (process, idempotent, max in flight).
const PIPELINED: [(u64, bool, u32); 2] = [(4, true, 5), (5, false, 3)];

#[derive(Clone, Debug)]
enum Action {
    /// outcome: 0 ok, 1 info (written), 2 info (not written), 3 fail.
    Send {
        producer: u64,
        partition: usize,
        outcome: u8,
    },
    Poll {
        consumer: u64,
        partition: usize,
        max: usize,
    },
    /// A poll whose outcome is unknown; the consumer silently advances.
    InfoPoll {
        consumer: u64,
        partition: usize,
        advance: usize,
    },
    SeekBack {
        consumer: u64,
        partition: usize,
        back: usize,
    },
    ListOffsets {
        consumer: u64,
        partition: usize,
    },
    Fault,
    /// A pipelined producer invokes a record batch and leaves it outstanding. outcome as for
    /// `Send`; `retried`: sent twice (for producer 5 it then lands when it completes).
    Batch {
        producer: u64,
        partition: usize,
        records: usize,
        outcome: u8,
        retried: bool,
    },
    /// One outstanding batch completes (records in reverse order if `reverse`).
    Complete {
        pick: prop::sample::Index,
        reverse: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let part = 0..PARTITIONS;
    let cons = 100..100 + CONSUMERS;
    prop_oneof![
        6 => (1u64..4, part.clone(), prop_oneof![6 => Just(0u8), 1 => 1u8..4])
            .prop_map(|(producer, partition, outcome)| Action::Send { producer, partition, outcome }),
        4 => (cons.clone(), part.clone(), 0usize..5)
            .prop_map(|(consumer, partition, max)| Action::Poll { consumer, partition, max }),
        1 => (cons.clone(), part.clone(), 0usize..3)
            .prop_map(|(consumer, partition, advance)| Action::InfoPoll { consumer, partition, advance }),
        1 => (cons.clone(), part.clone(), 0usize..4)
            .prop_map(|(consumer, partition, back)| Action::SeekBack { consumer, partition, back }),
        1 => (cons, part.clone()).prop_map(|(consumer, partition)| Action::ListOffsets { consumer, partition }),
        1 => Just(Action::Fault),
        3 => (4u64..6, part, 1usize..4, prop_oneof![6 => Just(0u8), 1 => 1u8..4], any::<bool>())
            .prop_map(|(producer, partition, records, outcome, retried)| Action::Batch {
                producer, partition, records, outcome, retried,
            }),
        3 => (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(pick, reverse)| Action::Complete { pick, reverse }),
    ]
}

/// A record batch of a pipelined producer, invoked and not yet completed.
struct Pending {
    producer: u64,
    partition: usize,
    /// (invoke index, value) per record, in batch order.
    records: Vec<(u64, String)>,
    outcome: u8,
    attempts: u32,
    /// Offset of its first record if the broker already appended it; `None` with `late` means
    /// it is appended when it completes.
    base: Option<i64>,
    late: bool,
}

/// What a pipelined producer counted, for its closing `client` op.
#[derive(Default)]
struct Counted {
    batches: u64,
    records: u64,
    max_records: u64,
    retried: u64,
}

fn client(process: u64, role: &str, idempotent: bool, in_flight: u32) -> ClientValue {
    ClientValue {
        role: role.into(),
        name: format!("{role}-{process}"),
        idempotent,
        max_in_flight: in_flight,
        ..ClientValue::default()
    }
}

/// Records one completed `client` op.
fn describe(b: &mut HistoryBuilder, process: u64, v: ClientValue) {
    let i = b.invoke(process, v.clone());
    b.complete(process, i, OpKind::Ok, v);
}

/// Completes every record of `p`, appending it first if it lands only now.
fn complete(b: &mut HistoryBuilder, logs: &mut [Vec<String>], mut p: Pending, reverse: bool) {
    if p.late {
        p.base = Some(logs[p.partition].len() as i64);
        logs[p.partition].extend(p.records.iter().map(|(_, v)| v.clone()));
    }
    let mut order: Vec<usize> = (0..p.records.len()).collect();
    if reverse {
        order.reverse();
    }
    for i in order {
        let (invoke, value) = &p.records[i];
        let mut s = SendValue::new(T, p.partition as i32, value.as_str());
        s.attempts = Some(p.attempts);
        let kind = match p.outcome {
            0 => {
                s.offset = p.base.map(|base| base + i as i64);
                OpKind::Ok
            }
            1 | 2 => OpKind::Info,
            _ => OpKind::Fail,
        };
        b.complete(p.producer, *invoke, kind, s);
    }
}

/// Plays the actions against a correct log and records what the clients saw.
fn build(actions: &[Action]) -> History {
    let mut b = HistoryBuilder::new();
    let mut logs: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS];
    let mut pos = vec![[0usize; PARTITIONS]; CONSUMERS as usize];
    let mut pending: Vec<Pending> = Vec::new();
    let mut counted: [Counted; 2] = Default::default();
    let mut next_batch = 0u64;
    for (producer, idempotent, in_flight) in PIPELINED {
        describe(
            &mut b,
            producer,
            client(producer, "producer", idempotent, in_flight),
        );
    }
    for c in 0..CONSUMERS {
        describe(&mut b, 100 + c, client(100 + c, "consumer", false, 0));
    }
    for c in 0..CONSUMERS {
        let a = AssignValue {
            partitions: (0..PARTITIONS as i32)
                .map(|p| TopicPartition::new(T, p))
                .collect(),
        };
        b.call(100 + c, a.clone(), OpKind::Ok, a);
    }
    // The first action always sends, so every history has an acknowledged record.
    let first = Action::Send {
        producer: 1,
        partition: 0,
        outcome: 0,
    };
    for (n, a) in std::iter::once(&first).chain(actions).enumerate() {
        b.advance(1_000);
        match *a {
            Action::Send {
                producer,
                partition,
                outcome,
            } => {
                let log = &mut logs[partition];
                let s = SendValue::new(T, partition as i32, format!("v{n}"));
                if outcome <= 1 {
                    log.push(s.value.clone());
                }
                b.invoke(producer, s.clone());
                match outcome {
                    0 => b.ok(producer, s.acked(log.len() as i64 - 1)),
                    1 | 2 => b.info(producer, s),
                    _ => b.fail(producer, s),
                };
            }
            Action::Poll {
                consumer,
                partition,
                max,
            } => {
                let log = &logs[partition];
                let at = &mut pos[(consumer - 100) as usize][partition];
                let end = (*at + max).min(log.len());
                let mut v = PollValue::default()
                    .fetch_offset(T, partition as i32, *at as i64)
                    .hwm(T, partition as i32, log.len() as i64);
                for (o, val) in log.iter().enumerate().take(end).skip(*at) {
                    v = v.record(T, partition as i32, o as i64, val);
                }
                *at = end;
                b.call(consumer, PollValue::default(), OpKind::Ok, v);
            }
            Action::InfoPoll {
                consumer,
                partition,
                advance,
            } => {
                let at = &mut pos[(consumer - 100) as usize][partition];
                *at = (*at + advance).min(logs[partition].len());
                b.call(
                    consumer,
                    PollValue::default(),
                    OpKind::Info,
                    PollValue::default(),
                );
            }
            Action::SeekBack {
                consumer,
                partition,
                back,
            } => {
                let at = &mut pos[(consumer - 100) as usize][partition];
                *at = at.saturating_sub(back);
                let s = PartitionOffset {
                    topic: T.into(),
                    partition: partition as i32,
                    offset: *at as i64,
                };
                b.call(consumer, s.clone(), OpKind::Ok, s);
            }
            Action::ListOffsets {
                consumer,
                partition,
            } => {
                let lo = |latest| ListOffsetsValue {
                    partitions: vec![PartitionOffsets {
                        topic: T.into(),
                        partition: partition as i32,
                        earliest: Some(0),
                        latest,
                    }],
                };
                let latest = Some(logs[partition].len() as i64);
                b.call(consumer, lo(None), OpKind::Ok, lo(latest));
            }
            Action::Fault => {
                b.info(1000, FaultValue::new("pause").with("broker", n as u64 % 3));
            }
            Action::Batch {
                producer,
                partition,
                records,
                outcome,
                retried,
            } => {
                next_batch += 1;
                let may_reorder = PIPELINED.iter().any(|&(p, idem, _)| p == producer && !idem);
                let written = outcome <= 1;
                let late = written && retried && may_reorder;
                let log = &mut logs[partition];
                let base = (written && !late).then_some(log.len() as i64);
                let mut invoked = Vec::new();
                for r in 0..records {
                    let mut s = SendValue::new(T, partition as i32, format!("v{n}-{r}"));
                    s.batch = Some(next_batch);
                    if base.is_some() {
                        log.push(s.value.clone());
                    }
                    invoked.push((b.invoke(producer, s.clone()), s.value));
                }
                let c = &mut counted[(producer - 4) as usize];
                c.batches += 1;
                c.records += records as u64;
                c.max_records = c.max_records.max(records as u64);
                c.retried += u64::from(retried);
                pending.push(Pending {
                    producer,
                    partition,
                    records: invoked,
                    outcome,
                    attempts: 1 + u32::from(retried),
                    base,
                    late,
                });
            }
            Action::Complete { pick, reverse } => {
                if !pending.is_empty() {
                    let p = pending.remove(pick.index(pending.len()));
                    complete(&mut b, &mut logs, p, reverse);
                }
            }
        }
    }
    // The outstanding batches come back, newest first.
    while let Some(p) = pending.pop() {
        b.advance(1_000);
        complete(&mut b, &mut logs, p, false);
    }
    // After the last fault, a live cluster acknowledges every producer again.
    for producer in 1u64..6 {
        b.advance(1_000);
        let s = SendValue::new(T, 0, format!("healed-{producer}"));
        logs[0].push(s.value.clone());
        let i = b.invoke(producer, s.clone());
        b.complete(producer, i, OpKind::Ok, s.acked(logs[0].len() as i64 - 1));
    }
    for ((producer, idempotent, in_flight), c) in PIPELINED.into_iter().zip(counted) {
        let mut v = client(producer, "producer", idempotent, in_flight);
        v.counters = Some(ClientCounters {
            batches: c.batches,
            records: c.records,
            max_records_per_batch: c.max_records,
            retried_batches: c.retried,
            ..ClientCounters::default()
        });
        describe(&mut b, producer, v);
    }
    for (p, log) in logs.iter().enumerate() {
        b.call(
            200,
            FinalReadValue::new(T, p as i32),
            OpKind::Ok,
            FinalReadValue::new(T, p as i32).contiguous(log),
        );
    }
    b.build()
}

fn anomalies(h: &History) -> Vec<Anomaly> {
    check_all(h, &CheckerConfig::default())
        .findings
        .iter()
        .map(|f| f.anomaly)
        .collect()
}

/// Acknowledged sends: (partition, offset, value).
fn acked(h: &History) -> Vec<(i32, i64, String)> {
    h.ops
        .iter()
        .filter_map(|op| match (&op.kind, &op.value) {
            (OpKind::Ok, Value::Send(s)) => Some((s.partition, s.offset?, s.value.clone())),
            _ => None,
        })
        .collect()
}

/// The final read of a partition, to mutate.
fn final_read(h: &mut History, partition: i32) -> &mut FinalReadValue {
    h.ops
        .iter_mut()
        .rev()
        .find_map(|op| match (&op.kind, &mut op.value) {
            (OpKind::Ok, Value::FinalRead(fr)) if fr.partition == partition => Some(fr),
            _ => None,
        })
        .expect("every partition has a final read")
}

/// Acknowledged sends of `process` in invoke order: (partition, offset, batch).
fn acked_in_invoke_order(h: &History, process: u64) -> Vec<(i32, i64, Option<u64>)> {
    h.pairs()
        .iter()
        .filter(|p| p.invoke.process == process && p.outcome() == OpKind::Ok)
        .filter_map(|p| match (&p.invoke.value, &p.last().value) {
            (Value::Send(i), Value::Send(c)) => Some((i.partition, c.offset?, i.batch)),
            _ => None,
        })
        .collect()
}

/// Some later-invoked acked send of `process` sits below an earlier one of another batch.
fn reorders_across_batches(h: &History, process: u64) -> bool {
    let acks = acked_in_invoke_order(h, process);
    acks.iter().enumerate().any(|(i, a)| {
        acks[i + 1..]
            .iter()
            .any(|b| b.0 == a.0 && b.1 < a.1 && b.2 != a.2)
    })
}

/// Two acknowledged records of one batch: their values.
fn batch_pair(h: &History) -> Option<(String, String)> {
    let pairs = h.pairs();
    let acked: Vec<(u64, u64, &str)> = pairs
        .iter()
        .filter(|p| p.outcome() == OpKind::Ok)
        .filter_map(|p| match &p.invoke.value {
            Value::Send(s) => Some((p.invoke.process, s.batch?, s.value.as_str())),
            _ => None,
        })
        .collect();
    acked.windows(2).find_map(|w| {
        (w[0].0 == w[1].0 && w[0].1 == w[1].1).then(|| (w[0].2.to_owned(), w[1].2.to_owned()))
    })
}

fn histories() -> impl Strategy<Value = (History, prop::sample::Index, prop::sample::Index)> {
    (
        prop::collection::vec(action(), 0..60),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(actions, i, j)| (build(&actions), i, j))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn valid_histories_have_no_findings((h, _, _) in histories()) {
        h.validate().unwrap();
        let report = check_all(&h, &CheckerConfig::default());
        prop_assert!(report.findings.is_empty(), "{}", report.to_text());
        // The JSON-lines form round-trips.
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        prop_assert_eq!(History::from_jsonl(&buf[..]).unwrap(), h);
    }

    #[test]
    fn dropping_an_acked_record_is_a_lost_write((mut h, i, _) in histories()) {
        let acks = acked(&h);
        let (p, o, _) = acks[i.index(acks.len())].clone();
        final_read(&mut h, p).records.retain(|r| r.offset != o);
        let found = anomalies(&h);
        prop_assert!(found.contains(&Anomaly::LostWrite), "{:?}", found);
        prop_assert!(found.contains(&Anomaly::OffsetGap), "{:?}", found);
    }

    #[test]
    fn swapping_two_records_is_inconsistent((mut h, i, j) in histories()) {
        let acks = acked(&h);
        let (p, o, _) = acks[i.index(acks.len())].clone();
        let fr = final_read(&mut h, p);
        prop_assume!(fr.records.len() >= 2);
        let a = o as usize;
        let mut b = j.index(fr.records.len() - 1);
        if b >= a {
            b += 1;
        }
        let va = fr.records[a].value.clone();
        fr.records[a].value = std::mem::replace(&mut fr.records[b].value, va);
        let found = anomalies(&h);
        prop_assert!(found.contains(&Anomaly::InconsistentOffsets), "{:?}", found);
    }

    #[test]
    fn writing_a_value_twice_is_a_duplicate((mut h, i, _) in histories()) {
        let acks = acked(&h);
        let (p, _, v) = acks[i.index(acks.len())].clone();
        let fr = final_read(&mut h, p);
        let hwm = fr.hwm.unwrap_or(0);
        fr.records.push(OffsetValue { offset: hwm, value: v });
        fr.hwm = Some(hwm + 1);
        let found = anomalies(&h);
        prop_assert!(found.contains(&Anomaly::Duplicate), "{:?}", found);
    }

    #[test]
    fn two_values_at_one_offset_is_a_replay_mismatch((mut h, i, _) in histories()) {
        let acks = acked(&h);
        let (p, o, _) = acks[i.index(acks.len())].clone();
        // A late reader sees something else at an acknowledged offset.
        let mut b = HistoryBuilder::new();
        let v = PollValue::default().record(T, p, o, "mutant");
        b.call(300, PollValue::default(), OpKind::Ok, v);
        let base = h.ops.len() as u64;
        h.ops.extend(b.build().ops.into_iter().map(|mut op| {
            op.index += base;
            op
        }));
        let found = anomalies(&h);
        prop_assert!(found.contains(&Anomaly::ReplayMismatch), "{:?}", found);
        prop_assert!(found.contains(&Anomaly::InconsistentOffsets), "{:?}", found);
    }

    #[test]
    fn reordering_a_batch_is_an_int_nonmonotonic_send((mut h, _, _) in histories()) {
        let Some((va, vb)) = batch_pair(&h) else {
            return Ok(());
        };
        // The broker stored (and acknowledged) the two records the other way round.
        let offset_of = |h: &History, v: &str| h.ops.iter().find_map(|op| match (&op.kind, &op.value) {
            (OpKind::Ok, Value::Send(s)) if s.value == v => s.offset,
            _ => None,
        });
        let (oa, ob) = (offset_of(&h, &va), offset_of(&h, &vb));
        let swap = |v: &mut String| {
            if *v == va {
                v.clone_from(&vb);
            } else if *v == vb {
                v.clone_from(&va);
            }
        };
        for op in &mut h.ops {
            match &mut op.value {
                Value::Send(s) if op.kind == OpKind::Ok && s.value == va => s.offset = ob,
                Value::Send(s) if op.kind == OpKind::Ok && s.value == vb => s.offset = oa,
                Value::Poll(p) => p.records.iter_mut().for_each(|r| swap(&mut r.value)),
                Value::FinalRead(fr) => fr.records.iter_mut().for_each(|r| swap(&mut r.value)),
                _ => {}
            }
        }
        prop_assert_eq!(anomalies(&h), vec![Anomaly::IntNonmonotonicSend]);
    }

    #[test]
    fn a_violation_fact_anywhere_is_one_protocol_violation_and_nothing_else(
        (mut h, i, j) in histories()
    ) {
        // A client records a bad reply at any point, amid its own outstanding operations.
        let at = i.index(h.ops.len() + 1);
        let index = h.ops.get(at).map_or(h.ops.len() as u64, |op| op.index);
        for op in &mut h.ops {
            if op.index >= index {
                op.index += 1;
            }
            if let Some(inv) = op.invoke.as_mut().filter(|inv| **inv >= index) {
                *inv += 1;
            }
        }
        let kind = ViolationKind::ALL[j.index(ViolationKind::ALL.len())];
        let process = h.ops.get(at).map_or(1, |op| op.process);
        let fact = ViolationValue {
            kind,
            broker: "broker-0".into(),
            api: "Fetch".into(),
            version: 12,
            partition: Some(TopicPartition::new(T, 0)),
            op: None,
            detail: "high watermark 3 below log start offset 5".into(),
        };
        let time_ns = h.ops.get(at).map_or(0, |op| op.time_ns);
        h.ops.insert(at, Op {
            index,
            kind: OpKind::Ok,
            process,
            invoke: None,
            time_ns,
            value: Value::Violation(fact),
            error: None,
        });
        h.validate().unwrap();
        let report = check_all(&h, &CheckerConfig::default());
        let found: Vec<Anomaly> = report.findings.iter().map(|f| f.anomaly).collect();
        prop_assert_eq!(found, vec![Anomaly::ProtocolViolation], "{}", report.to_text());
        prop_assert_eq!(&report.findings[0].ops, &vec![index]);
        let mut buf = Vec::new();
        h.to_jsonl(&mut buf).unwrap();
        prop_assert_eq!(History::from_jsonl(&buf[..]).unwrap(), h);
    }

    #[test]
    fn realtime_lag_is_jepsens_computation_poll_by_poll((h, _, _) in histories()) {
        prop_assert_eq!(riptide_checker::checkers::realtime_lag::figure(&h), naive_realtime_lag(&h));
    }

    #[test]
    fn retried_reorders_count_against_an_idempotent_producer((mut h, _, _) in histories()) {
        let reordered = reorders_across_batches(&h, 5);
        for op in &mut h.ops {
            if let (5, Value::Client(c)) = (op.process, &mut op.value) {
                c.idempotent = true;
            }
        }
        let found = anomalies(&h);
        prop_assert!(found.iter().all(|a| *a == Anomaly::NonmonotonicSend), "{:?}", found);
        prop_assert_eq!(!found.is_empty(), reordered, "{:?}", found);
    }
}

/// Jepsen's `realtime-lag`, the obvious way (with riptide's forward seeks): every ok poll
/// measures every partition in its process's map. The checker's walk, which visits only the last poll of each run of polls with
/// the same offset seen, must give the same worst per partition.
fn naive_realtime_lag(h: &History) -> Vec<riptide_checker::PartitionLag> {
    use std::collections::BTreeMap;
    type Tp = (String, i32);
    /// (lag, poll op, poll invoke time, next offset, known since and by, measurements).
    type Worst = (u64, u64, u64, i64, Option<(u64, u64)>, usize);
    let pairs = h.pairs();
    // (completion time, index, partition, highest offset it shows).
    let mut events: Vec<(u64, u64, Tp, i64)> = Vec::new();
    for p in pairs.iter().filter(|p| p.outcome() == OpKind::Ok) {
        let c = p.last();
        let mut note = |tp: Tp, o: i64| events.push((c.time_ns, c.index, tp, o));
        match &c.value {
            Value::Send(s) => s
                .offset
                .into_iter()
                .for_each(|o| note((s.topic.clone(), s.partition), o)),
            Value::Poll(v) => v
                .records
                .iter()
                .for_each(|r| note((r.topic.clone(), r.partition), r.offset)),
            Value::FinalRead(f) => f
                .records
                .iter()
                .for_each(|r| note((f.topic.clone(), f.partition), r.offset)),
            _ => {}
        }
    }
    // Offset o of tp first known to exist: the earliest event showing o or above.
    let known_at = |tp: &Tp, o: i64| {
        events
            .iter()
            .filter(|e| &e.2 == tp && e.3 >= o)
            .map(|e| (e.0, e.1))
            .min()
    };
    let mut seen: BTreeMap<u64, BTreeMap<Tp, i64>> = BTreeMap::new();
    let mut worst: BTreeMap<Tp, Worst> = BTreeMap::new();
    for p in pairs.iter().filter(|p| p.outcome() == OpKind::Ok) {
        let process = p.invoke.process;
        match &p.last().value {
            Value::Assign(a) => {
                let before = seen.remove(&process).unwrap_or_default();
                let now = a.partitions.iter().map(|t| {
                    let tp = (t.topic.clone(), t.partition);
                    let o = before.get(&tp).copied().unwrap_or(-1);
                    (tp, o)
                });
                seen.insert(process, now.collect());
            }
            Value::Seek(s) => {
                // A forward seek counts what lies below it as seen; seeking back keeps it.
                let mine = seen.entry(process).or_default();
                let e = mine.entry((s.topic.clone(), s.partition)).or_insert(-1);
                *e = (*e).max(s.offset - 1);
            }
            Value::Poll(v) => {
                let mine = seen.entry(process).or_default();
                for r in &v.records {
                    let e = mine.entry((r.topic.clone(), r.partition)).or_insert(-1);
                    *e = (*e).max(r.offset);
                }
                for (tp, &max_seen) in mine.iter() {
                    let known = known_at(tp, max_seen + 1);
                    let lag = known.map_or(0, |k| p.invoke.time_ns.saturating_sub(k.0));
                    let m = (
                        lag,
                        p.last().index,
                        p.invoke.time_ns,
                        max_seen + 1,
                        known,
                        1,
                    );
                    match worst.get_mut(tp) {
                        Some(w) => {
                            w.5 += 1;
                            if (m.0, std::cmp::Reverse(m.1)) > (w.0, std::cmp::Reverse(w.1)) {
                                *w = (m.0, m.1, m.2, m.3, m.4, w.5);
                            }
                        }
                        None => {
                            worst.insert(tp.clone(), m);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let value_at = |tp: &Tp, o: i64| {
        h.ops
            .iter()
            .find_map(|op| match (&op.kind, &op.value) {
                (OpKind::Ok, Value::Send(s))
                    if (&s.topic, s.partition, s.offset) == (&tp.0, tp.1, Some(o)) =>
                {
                    Some(s.value.clone())
                }
                _ => None,
            })
            .or_else(|| {
                h.ops.iter().find_map(|op| match (&op.kind, &op.value) {
                    (OpKind::Ok, Value::Poll(v)) => v
                        .records
                        .iter()
                        .find(|r| (&r.topic, r.partition, r.offset) == (&tp.0, tp.1, o))
                        .map(|r| r.value.clone()),
                    (OpKind::Ok, Value::FinalRead(f))
                        if (&f.topic, f.partition) == (&tp.0, tp.1) =>
                    {
                        f.records
                            .iter()
                            .find(|r| r.offset == o)
                            .map(|r| r.value.clone())
                    }
                    _ => None,
                })
            })
    };
    worst
        .into_iter()
        .map(|(tp, (lag, op, time, next, known, polls))| {
            let lagging = lag > 0;
            riptide_checker::PartitionLag {
                value: lagging.then(|| value_at(&tp, next)).flatten(),
                topic: tp.0,
                partition: tp.1,
                lag_ns: lag,
                process: h
                    .ops
                    .iter()
                    .find(|o| o.index == op)
                    .map_or(0, |o| o.process),
                poll_op: op,
                poll_time_ns: time,
                offset: lagging.then_some(next),
                known_since_ns: known.filter(|_| lagging).map(|k| k.0),
                known_by_op: known.filter(|_| lagging).map(|k| k.1),
                polls,
            }
        })
        .collect()
}

/// The generator does what the properties rely on: batches outstanding together, completions
/// out of invoke order, and a retried batch of producer 5 landing after a later one.
#[test]
fn generated_histories_pipeline() {
    use prop::sample::Index;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    // Any Index picks the only outstanding batch, so one value does.
    let pick = any::<Index>()
        .new_tree(&mut TestRunner::deterministic())
        .unwrap()
        .current();
    let batch = |producer, outcome, retried| Action::Batch {
        producer,
        partition: 1,
        records: 2,
        outcome,
        retried,
    };
    let complete = Action::Complete {
        pick,
        reverse: true,
    };
    let actions = vec![
        batch(5, 0, true),
        batch(5, 0, false),
        batch(4, 0, false),
        complete.clone(),
        complete.clone(),
        complete,
    ];
    let h = build(&actions);
    h.validate().unwrap();
    assert!(
        reorders_across_batches(&h, 5),
        "producer 5's retried batch lands late"
    );
    let sends_of_5: Vec<_> = h
        .pairs()
        .into_iter()
        .filter(|p| p.invoke.process == 5 && matches!(p.invoke.value, Value::Send(_)))
        .collect();
    assert!(sends_of_5
        .windows(2)
        .any(|w| w[0].last().index > w[1].last().index));
    let report = check_all(&h, &CheckerConfig::default());
    assert!(report.findings.is_empty(), "{}", report.to_text());
    assert_eq!(report.clients.len(), 4);
}

/// The realtime-lag property is not about empty figures: generated consumers do fall behind.
#[test]
fn generated_consumers_lag_behind_sometimes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let lagging = (0..32)
        .map(|_| histories().new_tree(&mut runner).unwrap().current().0)
        .filter(|h| {
            riptide_checker::checkers::realtime_lag::figure(h)
                .iter()
                .any(|l| l.lag_ns > 0 && l.offset.is_some())
        })
        .count();
    assert!(lagging > 0, "{lagging} of 32");
}
