//! Snapshot tests of the report text and JSON, and of the JSON-lines history format.

use riptide_checker::history::*;
use riptide_checker::{check_all, CheckerConfig, History, Verdict};

const T: &str = "orders";

fn send(b: &mut HistoryBuilder, process: u64, partition: i32, value: &str, offset: i64) {
    let s = SendValue::new(T, partition, value);
    b.call(process, s.clone(), OpKind::Ok, s.acked(offset));
    b.advance(1_000_000);
}

fn poll(b: &mut HistoryBuilder, process: u64, partition: i32, records: &[(i64, &str)], hwm: i64) {
    let mut v = PollValue::default().hwm(T, partition, hwm);
    for (o, val) in records {
        v = v.record(T, partition, *o, val);
    }
    b.call(process, PollValue::default(), OpKind::Ok, v);
    b.advance(1_000_000);
}

fn final_read(b: &mut HistoryBuilder, partition: i32, records: &[(i64, &str)], hwm: i64) {
    let mut v = FinalReadValue::new(T, partition);
    v.hwm = Some(hwm);
    v.records = records
        .iter()
        .map(|(o, val)| OffsetValue {
            offset: *o,
            value: (*val).to_owned(),
        })
        .collect();
    b.call(100, FinalReadValue::new(T, partition), OpKind::Ok, v);
}

/// A small run with faults, a lost write, a replay mismatch, a poll skip and a missing final read.
fn faulty() -> History {
    let mut b = HistoryBuilder::new();
    let assign = AssignValue {
        partitions: vec![TopicPartition::new(T, 0)],
    };
    b.call(10, assign.clone(), OpKind::Ok, assign);
    send(&mut b, 1, 0, "a", 0);
    send(&mut b, 2, 0, "b", 1);
    b.push(
        OpKind::Info,
        1000,
        FaultValue::new("crash").with("broker", 2),
    );
    b.advance(500_000_000);
    send(&mut b, 1, 0, "c", 2);
    send(&mut b, 2, 0, "d", 3);
    poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 4);
    poll(&mut b, 10, 0, &[(3, "d")], 4);
    poll(&mut b, 11, 0, &[(2, "c")], 4);
    // A fault recorded as invoke + ok is listed once, by its completion.
    let restart = FaultValue::new("restart").with("broker", 2);
    b.call(1000, restart.clone(), OpKind::Ok, restart);
    b.advance(1_500_000_000);
    let s = SendValue::new(T, 1, "x");
    b.call(3, s.clone(), OpKind::Info, s);
    final_read(&mut b, 0, &[(0, "a"), (1, "B"), (3, "d")], 4);
    b.build()
}

fn clean() -> History {
    let mut b = HistoryBuilder::new();
    send(&mut b, 1, 0, "a", 0);
    send(&mut b, 2, 0, "b", 1);
    poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
    final_read(&mut b, 0, &[(0, "a"), (1, "b")], 2);
    b.build()
}

/// A pipelined producer and a consumer that describe themselves, with profiles and counters.
fn described() -> History {
    let mut b = HistoryBuilder::new();
    let describe = |b: &mut HistoryBuilder, process: u64, v: ClientValue| {
        let i = b.invoke(process, v.clone());
        b.complete(process, i, OpKind::Ok, v);
    };
    let mut producer = ClientValue {
        role: "producer".into(),
        name: "producer-1".into(),
        idempotent: true,
        max_in_flight: 5,
        ..ClientValue::default()
    };
    producer.profile.insert("linger_ms".into(), 12.into());
    producer.profile.insert("batch_records".into(), 40.into());
    producer.profile.insert("codec".into(), "lz4".into());
    describe(&mut b, 3, producer.clone());
    let mut consumer = ClientValue {
        role: "consumer".into(),
        name: "consumer-0".into(),
        ..ClientValue::default()
    };
    consumer.profile.insert("max_poll_records".into(), 8.into());
    describe(&mut b, 10, consumer.clone());
    let invokes: Vec<u64> = ["a", "b"]
        .iter()
        .map(|v| {
            let mut s = SendValue::new(T, 0, *v);
            s.batch = Some(1);
            b.invoke(3, s)
        })
        .collect();
    for (o, (i, v)) in invokes.iter().zip(["a", "b"]).enumerate().rev() {
        let mut s = SendValue::new(T, 0, v).acked(o as i64);
        s.request = Some(1);
        s.attempts = Some(2);
        b.complete(3, *i, OpKind::Ok, s);
    }
    b.advance(1_000_000);
    poll(&mut b, 10, 0, &[(0, "a"), (1, "b")], 2);
    final_read(&mut b, 0, &[(0, "a"), (1, "b")], 2);
    producer.counters = Some(ClientCounters {
        batches: 1,
        records: 2,
        max_records_per_batch: 2,
        requests: 2,
        max_partitions_per_request: 1,
        max_topics_per_request: 1,
        max_requests_in_flight: 1,
        retried_batches: 1,
        ..ClientCounters::default()
    });
    describe(&mut b, 3, producer);
    consumer.counters = Some(ClientCounters {
        fetches: 3,
        fetches_inside_batch: 1,
        ..ClientCounters::default()
    });
    describe(&mut b, 10, consumer);
    b.build()
}

#[test]
fn faulty_report_text() {
    let report = check_all(&faulty(), &CheckerConfig::default());
    assert_eq!(report.verdict, Verdict::Fail);
    insta::assert_snapshot!(report.to_text());
}

#[test]
fn faulty_report_json() {
    let report = check_all(&faulty(), &CheckerConfig::default());
    insta::assert_json_snapshot!(report);
    let text = serde_json::to_string(&report).unwrap();
    let back: riptide_checker::Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
}

#[test]
fn clean_report_text() {
    let report = check_all(&clean(), &CheckerConfig::default());
    assert_eq!(report.verdict, Verdict::Pass);
    insta::assert_snapshot!(report.to_text());
}

#[test]
fn described_clients_report_text() {
    let h = described();
    h.validate().unwrap();
    let report = check_all(&h, &CheckerConfig::default());
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.to_text());
    insta::assert_snapshot!(report.to_text());
}

#[test]
fn history_jsonl_format() {
    let h = faulty();
    let mut buf = Vec::new();
    h.to_jsonl(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    insta::assert_snapshot!(text);
    let back = History::from_jsonl(text.as_bytes()).unwrap();
    assert_eq!(back, h);
    h.validate().unwrap();
}
