//! Property tests: generated valid histories have no findings, and targeted mutations of them
//! are flagged by the right checker.

use proptest::prelude::*;
use riptide_checker::history::*;
use riptide_checker::{check_all, Anomaly, CheckerConfig, History};

const T: &str = "t";
const PARTITIONS: usize = 3;
const CONSUMERS: u64 = 2;

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
        1 => (cons, part).prop_map(|(consumer, partition)| Action::ListOffsets { consumer, partition }),
        1 => Just(Action::Fault),
    ]
}

/// Plays the actions against a correct log and records what the clients saw.
fn build(actions: &[Action]) -> History {
    let mut b = HistoryBuilder::new();
    let mut logs: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS];
    let mut pos = vec![[0usize; PARTITIONS]; CONSUMERS as usize];
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
        }
    }
    // After the last fault, a live cluster acknowledges every producer again.
    for producer in 1u64..4 {
        b.advance(1_000);
        let s = SendValue::new(T, 0, format!("healed-{producer}"));
        logs[0].push(s.value.clone());
        b.invoke(producer, s.clone());
        b.ok(producer, s.acked(logs[0].len() as i64 - 1));
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
}
