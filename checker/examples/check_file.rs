//! Reads a JSON-lines history, checks it, and prints how long each took and the process's peak
//! resident memory (Linux's `VmHWM`): the peak-memory half of the checker benchmark.
//!
//! ```text
//! cargo bench -p riptide-checker -- --ops 10000000 --write /tmp/h10m.jsonl
//! cargo run --release -p riptide-checker --example check_file -- /tmp/h10m.jsonl
//! ```
//!
//! `--whole` reads the file into memory first and parses it from there, as `riptide check` does;
//! by default it is streamed through a `BufReader`. `--report` prints the report's text and
//! JSON, and `--echo FILE` writes the history as read back to FILE (to compare two builds).

// It times a run from outside any simulation, in real wall time.
#![allow(clippy::disallowed_methods)]

use std::io::BufReader;
use std::time::Instant;

use riptide_checker::{check_all, CheckerConfig, History};

/// Peak resident set size so far, in KiB (None where /proc does not say).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let echo = args
        .iter()
        .position(|a| a == "--echo")
        .and_then(|i| args.get(i + 1));
    let Some(path) = args
        .iter()
        .enumerate()
        .find(|&(i, a)| !a.starts_with("--") && (i == 0 || args[i - 1] != "--echo"))
        .map(|(_, a)| a)
    else {
        eprintln!("usage: check_file [--whole] [--report] [--echo OUT] HISTORY.jsonl");
        std::process::exit(2);
    };
    let start = Instant::now();
    let read = if flag("--whole") {
        std::fs::read(path).map(|bytes| History::from_jsonl(&bytes[..]))
    } else {
        std::fs::File::open(path).map(|f| History::from_jsonl(BufReader::new(f)))
    };
    let history = match read {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let read_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let report = check_all(&history, &CheckerConfig::default());
    let check_s = start.elapsed().as_secs_f64();
    if let Some(out) = echo {
        let file = std::fs::File::create(out).expect("create the echo file");
        history
            .to_jsonl(std::io::BufWriter::new(file))
            .expect("write the echo file");
    }
    if flag("--report") {
        print!("{}", report.to_text());
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report JSON")
        );
    }
    let ops = history.ops.len() as f64;
    println!(
        "{path}: {} ops, read {read_s:.2} s ({:.0} ops/s), check {check_s:.2} s ({:.0} ops/s), {} finding(s), peak RSS {} MiB",
        history.ops.len(),
        ops / read_s,
        ops / check_s,
        report.findings.len(),
        peak_rss_kib().map_or("?".to_owned(), |k| (k / 1024).to_string()),
    );
}
