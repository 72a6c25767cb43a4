//! `cargo bench -p riptide-checker`: generates a deterministic, valid 1,000,000-op history shaped
//! like a `chaos` run, checks it with `check_all` and writes and reads it as JSON lines, and prints
//! how many history ops per second each gets through.
//!
//! `cargo bench -p riptide-checker -- --ops N` sizes the history; `-- --ops N --write FILE`
//! writes the history as JSON lines to FILE and stops (for `examples/check_file.rs`, which reads
//! and checks a file and reports its peak memory).
//!
//! `-- --check-only` stops after checking (to profile the checkers alone).
//!
//! The history comes from [`chaos_like`] (its module doc gives the mix and where it was
//! measured).

// A benchmark times the checker from outside any simulation, in real wall time.
#![allow(clippy::disallowed_methods)]

mod chaos_like;

use std::collections::BTreeMap;
use std::time::Instant;

use riptide_checker::history::F;
use riptide_checker::{check_all, CheckerConfig, History};

// The allocator `riptide` itself runs with (cli/src/main.rs), so that the figures are those of
// `riptide check`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_OPS: usize = 1_000_000;

fn mix(history: &History) -> String {
    let mut by_f: BTreeMap<F, usize> = BTreeMap::new();
    for op in &history.ops {
        *by_f.entry(op.f()).or_default() += 1;
    }
    let n = history.ops.len() as f64;
    let parts: Vec<String> = by_f
        .iter()
        .map(|(f, c)| format!("{} {:.1}%", f.as_str(), 100.0 * *c as f64 / n))
        .collect();
    parts.join(", ")
}

fn main() {
    // As `riptide` itself runs (cli/src/main.rs): without transparent huge pages.
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let target = arg("--ops")
        .map(|s| s.replace('_', "").parse::<usize>().expect("--ops N"))
        .unwrap_or(DEFAULT_OPS);

    let start = Instant::now();
    let history = chaos_like::generate(0x5eed_cafe, target);
    let ops = history.ops.len();
    println!(
        "generated {ops} ops in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        mix(&history)
    );

    if let Some(path) = arg("--write") {
        let file = std::fs::File::create(&path).expect("create the history file");
        if let Err(e) = history.to_jsonl(std::io::BufWriter::new(file)) {
            panic!("to_jsonl: {e}");
        }
        println!("wrote {path}");
        return;
    }

    let (report, check) = timed(|| check_all(&history, &CheckerConfig::default()));
    assert!(report.findings.is_empty(), "{}", report.to_text());
    println!("check_all: {ops} ops, {}", check.rates(ops, "checked"));
    if args.iter().any(|a| a == "--check-only") {
        return; // to profile the checkers alone
    }

    let (buf, write) = timed(|| {
        let mut buf = Vec::new();
        if let Err(e) = history.to_jsonl(&mut buf) {
            panic!("to_jsonl: {e}");
        }
        buf
    });
    let (back, read) = timed(|| match History::from_jsonl(&buf[..]) {
        Ok(h) => h,
        Err(e) => panic!("from_jsonl: {e}"),
    });
    assert_eq!(back.ops.len(), ops);
    println!("jsonl: {} MiB", buf.len() >> 20);
    println!("  write: {}", write.rates(ops, "written"));
    println!("  read:  {}", read.rates(ops, "read"));
    assert!(back == history, "the history read back differs");
}

/// How long a phase took: wall-clock seconds, and CPU seconds of this thread (user and system;
/// on a shared machine the wall clock also counts the time other processes had the core).
struct Took {
    wall: f64,
    cpu: f64,
    /// Pages the kernel handed this thread (minor faults): memory touched for the first time.
    faults: i64,
}

impl Took {
    fn rates(&self, ops: usize, what: &str) -> String {
        format!(
            "{:.3} s = {:.0} ops {what} per second ({:.3} s of CPU = {:.0} per CPU second; \
             {} MiB of fresh pages)",
            self.wall,
            ops as f64 / self.wall,
            self.cpu,
            ops as f64 / self.cpu,
            (self.faults * 4096) >> 20,
        )
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Took) {
    let (wall, cpu, faults) = (Instant::now(), thread_cpu_s(), minor_faults());
    let out = f();
    let took = Took {
        wall: wall.elapsed().as_secs_f64(),
        cpu: thread_cpu_s() - cpu,
        faults: minor_faults() - faults,
    };
    (out, took)
}

/// This thread's CPU time so far, in seconds.
fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// This thread's minor page faults so far (each one a page the kernel zeroed and mapped).
fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid for the call to fill in.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    u.ru_minflt
}
