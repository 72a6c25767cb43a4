//! `cargo bench -p riptide-checker`: checks a deterministic 1,000,000-op valid history and prints
//! how many ops per second `check_all` gets through (plus JSON-lines write/read rates).

// A benchmark times the checker from outside any simulation, in real wall time.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use riptide_checker::history::*;
use riptide_checker::{check_all, CheckerConfig, History};

const TARGET_OPS: usize = 1_000_000;
const PARTITIONS: usize = 16;
const PRODUCERS: u64 = 8;
const CONSUMERS: u64 = 4;
const TOPIC: &str = "bench";

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
}

fn generate(seed: u64) -> History {
    let mut rng = Rng(seed);
    let mut b = HistoryBuilder::new();
    let mut logs: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS];
    let mut pos = vec![[0usize; PARTITIONS]; CONSUMERS as usize];
    let mut ops = 0;
    let mut n = 0u64;
    while ops + 2 * PARTITIONS < TARGET_OPS {
        b.advance(10_000);
        let p = rng.below(PARTITIONS as u64) as usize;
        if rng.below(2) == 0 {
            let producer = 1 + rng.below(PRODUCERS);
            n += 1;
            let s = SendValue::new(TOPIC, p as i32, format!("p{producer}-{n}"));
            b.invoke(producer, s.clone());
            match rng.below(20) {
                0 => {
                    logs[p].push(s.value.clone());
                    b.info(producer, s);
                }
                1 => {
                    b.fail(producer, s);
                }
                _ => {
                    logs[p].push(s.value.clone());
                    let offset = logs[p].len() as i64 - 1;
                    b.ok(producer, s.acked(offset));
                }
            }
        } else {
            let c = rng.below(CONSUMERS);
            let at = &mut pos[c as usize][p];
            let end = (*at + rng.below(8) as usize).min(logs[p].len());
            let mut v = PollValue::default()
                .fetch_offset(TOPIC, p as i32, *at as i64)
                .hwm(TOPIC, p as i32, logs[p].len() as i64);
            for (o, val) in logs[p].iter().enumerate().take(end).skip(*at) {
                v = v.record(TOPIC, p as i32, o as i64, val);
            }
            *at = end;
            b.call(100 + c, PollValue::default(), OpKind::Ok, v);
        }
        ops += 2;
    }
    for (p, log) in logs.iter().enumerate() {
        b.call(
            200,
            FinalReadValue::new(TOPIC, p as i32),
            OpKind::Ok,
            FinalReadValue::new(TOPIC, p as i32).contiguous(log),
        );
    }
    b.build()
}

fn main() {
    let history = generate(0x5eed_cafe);
    let ops = history.ops.len();

    let start = Instant::now();
    let report = check_all(&history, &CheckerConfig::default());
    let secs = start.elapsed().as_secs_f64();
    assert!(report.findings.is_empty(), "{}", report.to_text());
    println!(
        "check_all: {ops} ops in {secs:.3} s = {:.0} ops checked per second",
        ops as f64 / secs
    );

    let start = Instant::now();
    let mut buf = Vec::new();
    if let Err(e) = history.to_jsonl(&mut buf) {
        panic!("to_jsonl: {e}");
    }
    let write = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let back = match History::from_jsonl(&buf[..]) {
        Ok(h) => h,
        Err(e) => panic!("from_jsonl: {e}"),
    };
    let read = start.elapsed().as_secs_f64();
    assert_eq!(back.ops.len(), ops);
    println!(
        "jsonl: {} MiB, write {:.0} ops/s, read {:.0} ops/s",
        buf.len() >> 20,
        ops as f64 / write,
        ops as f64 / read
    );
}
