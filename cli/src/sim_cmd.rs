//! `riptide sim`, `sweep`, `repro` and `check`: seeded simulations and their reports.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use riptide_checker::history::History;
use riptide_checker::{check_all, CheckerConfig};
use riptide_sim::{RunOutcome, Scenario};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit codes a CI script can use.
pub const PASS: u8 = 0;
pub const ANOMALY: u8 = 1;
pub const HARNESS_ERROR: u8 = 2;

#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// Named scenario: baseline, partitions, crashes, object-store, zone-loss,
    /// scale or chaos (everything).
    #[arg(long, default_value = "baseline")]
    scenario: String,
    /// A scenario file (JSON; fields left out keep their defaults), used
    /// instead of --scenario.
    #[arg(long)]
    scenario_file: Option<PathBuf>,
    #[arg(long)]
    brokers: Option<usize>,
    #[arg(long)]
    zones: Option<usize>,
    #[arg(long)]
    partitions: Option<i32>,
    #[arg(long)]
    producers: Option<usize>,
    #[arg(long)]
    consumers: Option<usize>,
    /// Simulated seconds of workload.
    #[arg(long)]
    duration: Option<u64>,
}

impl ScenarioArgs {
    pub fn build(&self) -> anyhow::Result<Scenario> {
        let mut s = match &self.scenario_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Scenario::from_json(&text)
                    .with_context(|| format!("parsing scenario file {}", path.display()))?
            }
            None => Scenario::named(&self.scenario).with_context(|| {
                format!(
                    "unknown scenario '{}' (known: {})",
                    self.scenario,
                    Scenario::names().join(", ")
                )
            })?,
        };
        if let Some(v) = self.brokers {
            s.brokers = v.max(1);
        }
        if let Some(v) = self.zones {
            s.zones = v.max(1);
        }
        if let Some(v) = self.partitions {
            s.partitions = v.max(1);
        }
        if let Some(v) = self.producers {
            s.producers = v;
        }
        if let Some(v) = self.consumers {
            s.consumers = v;
        }
        if let Some(v) = self.duration {
            s.duration_s = v.max(1);
        }
        Ok(s)
    }

    /// The flags that reproduce this scenario, for repro lines.
    fn flags(&self) -> String {
        let mut f = match &self.scenario_file {
            Some(path) => format!("--scenario-file {}", path.display()),
            None => format!("--scenario {}", self.scenario),
        };
        let opts = [
            ("brokers", self.brokers.map(|v| v.to_string())),
            ("zones", self.zones.map(|v| v.to_string())),
            ("partitions", self.partitions.map(|v| v.to_string())),
            ("producers", self.producers.map(|v| v.to_string())),
            ("consumers", self.consumers.map(|v| v.to_string())),
            ("duration", self.duration.map(|v| v.to_string())),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                f.push_str(&format!(" --{k} {v}"));
            }
        }
        f
    }
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// The seed: everything the run does derives from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Where to write history.jsonl, report.txt, report.json and trace.log.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Seeds to run, as A..B (B excluded) or A..=B.
    #[arg(long, default_value = "1..=100")]
    seeds: String,
    /// Run only shard I of N (seeds whose position modulo N is I-1).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Seeds run in parallel (each simulation stays on one thread).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// File listing failing seeds with their repro commands.
    #[arg(long, default_value = "riptide-failures.txt")]
    failures: PathBuf,
    /// Also write "SEED TRACE-HASH" lines here (the determinism meta-test
    /// compares two such files from separate processes).
    #[arg(long)]
    hashes: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReproArgs {
    seed: u64,
    #[command(flatten)]
    scenario: ScenarioArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A history in JSON lines.
    file: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn repro_line(seed: u64, scenario: &ScenarioArgs) -> String {
    format!("riptide sim --seed {seed} {}", scenario.flags())
}

fn write_outputs(dir: &Path, o: &RunOutcome) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut jsonl = Vec::new();
    o.history.to_jsonl(&mut jsonl)?;
    std::fs::write(dir.join("history.jsonl"), jsonl)?;
    std::fs::write(dir.join("report.txt"), o.report.to_text())?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&o.report)?,
    )?;
    std::fs::write(dir.join("trace.log"), &o.trace)?;
    Ok(())
}

pub fn sim(args: SimArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    let wall = Instant::now();
    let outcome = match riptide_sim::run(args.seed, &scenario) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("riptide: harness error: {e:#}");
            eprintln!("repro: {}", repro_line(args.seed, &args.scenario));
            return Ok(HARNESS_ERROR);
        }
    };
    let wall = wall.elapsed();
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("riptide-out/seed-{}", args.seed)));
    write_outputs(&out, &outcome)?;
    print!("{}", outcome.report.to_text());
    println!();
    println!("seed        {}", outcome.seed);
    println!("scenario    {}", scenario.name);
    println!("trace hash  {}", outcome.trace_hash);
    println!("operations  {}", outcome.history.ops.len());
    println!(
        "time        {:.1} s simulated in {:.1} s wall ({:.1}x)",
        outcome.sim_time.as_secs_f64(),
        wall.as_secs_f64(),
        outcome.sim_time.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    println!("output      {}", out.display());
    println!("repro       {}", repro_line(args.seed, &args.scenario));
    Ok(if outcome.passed() { PASS } else { ANOMALY })
}

pub fn parse_seeds(spec: &str) -> anyhow::Result<Vec<u64>> {
    let bad = || format!("--seeds takes A..B or A..=B, not '{spec}'");
    if let Some((a, b)) = spec.split_once("..=") {
        let (a, b): (u64, u64) = (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
        return Ok((a..=b).collect());
    }
    let (a, b) = spec.split_once("..").with_context(bad)?;
    let (a, b): (u64, u64) = (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
    Ok((a..b).collect())
}

pub fn parse_shard(spec: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || format!("--shard takes I/N with 1 <= I <= N, not '{spec}'");
    let (i, n) = spec.split_once('/').with_context(bad)?;
    let (i, n): (usize, usize) = (i.parse().with_context(bad)?, n.parse().with_context(bad)?);
    anyhow::ensure!(n >= 1 && i >= 1 && i <= n, bad());
    Ok((i, n))
}

enum SeedResult {
    Pass(Duration, String),
    Fail(String, String),
    Error(String),
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    let mut seeds = parse_seeds(&args.seeds)?;
    if let Some(shard) = &args.shard {
        let (i, n) = parse_shard(shard)?;
        seeds = seeds
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, s)| s)
            .collect();
    }
    let bar = ProgressBar::new(seeds.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed_precise} (eta {eta})  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let wall = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::<(u64, SeedResult)>::new()));
    let seeds = Arc::new(seeds);
    // Each simulation runs entirely on the thread that started it.
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            let (next, results, seeds, bar, scenario) = (
                next.clone(),
                results.clone(),
                seeds.clone(),
                bar.clone(),
                scenario.clone(),
            );
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(k) else { break };
                let r = match riptide_sim::run(seed, &scenario) {
                    Ok(o) if o.passed() => SeedResult::Pass(o.sim_time, o.trace_hash),
                    Ok(o) => SeedResult::Fail(summary(&o), o.trace_hash),
                    Err(e) => SeedResult::Error(format!("{e:#}")),
                };
                let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                all.push((seed, r));
                let failed = all
                    .iter()
                    .filter(|(_, r)| !matches!(r, SeedResult::Pass(..)))
                    .count();
                bar.set_message(format!("{failed} failing"));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let wall = wall.elapsed();
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    results.sort_by_key(|(s, _)| *s);
    let passed = results
        .iter()
        .filter(|(_, r)| matches!(r, SeedResult::Pass(..)))
        .count();
    let sim_time: Duration = results
        .iter()
        .filter_map(|(_, r)| match r {
            SeedResult::Pass(t, _) => Some(*t),
            _ => None,
        })
        .sum();
    let mut failures = String::new();
    for (seed, r) in &results {
        let line = match r {
            SeedResult::Pass(..) => continue,
            SeedResult::Fail(s, _) => format!("seed {seed}: anomalies: {s}"),
            SeedResult::Error(e) => format!("seed {seed}: harness error: {e}"),
        };
        failures.push_str(&format!(
            "{line}\n  repro: {}\n",
            repro_line(*seed, &args.scenario)
        ));
    }
    if let Some(path) = &args.hashes {
        let lines: String = results
            .iter()
            .map(|(seed, r)| match r {
                SeedResult::Pass(_, h) | SeedResult::Fail(_, h) => format!("{seed} {h}\n"),
                SeedResult::Error(_) => format!("{seed} error\n"),
            })
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("scenario     {}", scenario.name);
    println!(
        "seeds        {} run, {} passed, {} failed",
        results.len(),
        passed,
        results.len() - passed
    );
    println!(
        "speed        {:.1} s simulated in {:.1} s wall: {:.1}x real time, {:.1} seeds/min",
        sim_time.as_secs_f64(),
        wall.as_secs_f64(),
        sim_time.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        results.len() as f64 * 60.0 / wall.as_secs_f64().max(1e-9)
    );
    if failures.is_empty() {
        println!("verdict      PASS");
        return Ok(PASS);
    }
    print!("{failures}");
    std::fs::write(&args.failures, &failures)
        .with_context(|| format!("writing {}", args.failures.display()))?;
    println!("failing seeds written to {}", args.failures.display());
    let any_error = results
        .iter()
        .any(|(_, r)| matches!(r, SeedResult::Error(_)));
    Ok(if any_error { HARNESS_ERROR } else { ANOMALY })
}

fn summary(o: &RunOutcome) -> String {
    o.report
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(a, n)| format!("{a} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn repro(args: ReproArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    match riptide_sim::run(args.seed, &scenario) {
        Ok(o) => {
            print!("{}", o.trace);
            println!();
            print!("{}", o.report.to_text());
            println!("trace hash  {}", o.trace_hash);
            Ok(if o.passed() { PASS } else { ANOMALY })
        }
        Err(e) => {
            eprintln!("riptide: harness error: {e:#}");
            Ok(HARNESS_ERROR)
        }
    }
}

pub fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let history = match History::from_jsonl(std::io::BufReader::new(file)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("riptide: {}: {e}", args.file.display());
            return Ok(HARNESS_ERROR);
        }
    };
    let report = check_all(&history, &CheckerConfig::default());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.verdict == riptide_checker::Verdict::Pass {
        PASS
    } else {
        ANOMALY
    })
}
