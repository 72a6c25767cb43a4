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
    /// Simulation backend: turmoil (ticks) or madsim (jumps to the next
    /// event). The ordinary build runs turmoil itself and hands madsim runs to
    /// the `--cfg madsim` build of riptide (see `riptide_madsim_bin`); default:
    /// this binary's own backend.
    #[arg(long, value_name = "turmoil|madsim")]
    pub backend: Option<String>,
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
    /// Plant a broker bug (see `riptide mutants`), to see the checkers catch it.
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    #[command(flatten)]
    pub workload: crate::workload_args::WorkloadArgs,
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
        if let Some(b) = &self.bug {
            b.parse::<riptide_broker::bugs::Bug>()
                .map_err(anyhow::Error::msg)?;
            s.bug = Some(b.clone());
        }
        self.workload.apply(&mut s.workload)?;
        Ok(s)
    }

    /// The flags that reproduce this scenario, for repro lines.
    fn flags(&self) -> String {
        let mut f = match &self.scenario_file {
            Some(path) => format!("--scenario-file {}", path.display()),
            None => format!("--scenario {}", self.scenario),
        };
        // Runs on madsim say so; turmoil is the ordinary build's default.
        if self
            .backend
            .as_deref()
            .unwrap_or(riptide_sim::backend::NAME)
            == "madsim"
        {
            f.push_str(" --backend madsim");
        }
        let opts = [
            ("brokers", self.brokers.map(|v| v.to_string())),
            ("zones", self.zones.map(|v| v.to_string())),
            ("partitions", self.partitions.map(|v| v.to_string())),
            ("producers", self.producers.map(|v| v.to_string())),
            ("consumers", self.consumers.map(|v| v.to_string())),
            ("duration", self.duration.map(|v| v.to_string())),
            ("bug", self.bug.clone()),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                f.push_str(&format!(" --{k} {v}"));
            }
        }
        for arg in self.workload.flags() {
            f.push(' ');
            f.push_str(&arg);
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
    pub scenario: ScenarioArgs,
    /// Where to write history.jsonl, report.txt, report.json and trace.log.
    #[arg(long)]
    out: Option<PathBuf>,
    /// madsim only: first run the seed twice under madsim's determinism check
    /// (every random draw of the second run must match the first's, and so
    /// must the trace hashes); nondeterminism exits 2.
    #[arg(long)]
    check_determinism: bool,
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
    pub scenario: ScenarioArgs,
    /// File listing failing seeds with their repro commands.
    #[arg(long, default_value = "riptide-failures.txt")]
    failures: PathBuf,
    /// Also write "SEED TRACE-HASH" lines here (the determinism meta-test
    /// compares two such files from separate processes).
    #[arg(long)]
    hashes: Option<PathBuf>,
    /// madsim only: check each seed with madsim's determinism check (see
    /// `riptide sim --check-determinism`).
    #[arg(long)]
    check_determinism: bool,
}

#[derive(Args, Debug)]
pub struct ReproArgs {
    seed: u64,
    /// Drop faults, clients and workload time while the run still fails, and
    /// print the smallest failing schedule.
    #[arg(long)]
    shrink: bool,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
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

/// madsim's determinism check of one seed: the trace hash both runs gave.
#[cfg(madsim)]
fn determinism_check(seed: u64, scenario: &Scenario) -> anyhow::Result<String> {
    riptide_sim::backend::check_determinism(seed, scenario)
}

#[cfg(not(madsim))]
fn determinism_check(_seed: u64, _scenario: &Scenario) -> anyhow::Result<String> {
    anyhow::bail!(
        "--check-determinism is madsim's check (add --backend madsim); on turmoil, \
         compare `sweep --hashes` of two processes (ci/determinism.sh)"
    )
}

pub fn sim(args: SimArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    let wall = Instant::now();
    let checked = if args.check_determinism {
        match determinism_check(args.seed, &scenario) {
            Ok(hash) => Some(hash),
            Err(e) => {
                eprintln!("riptide: NONDETERMINISM: {e:#}");
                eprintln!(
                    "repro: {} --check-determinism",
                    repro_line(args.seed, &args.scenario)
                );
                return Ok(HARNESS_ERROR);
            }
        }
    } else {
        None
    };
    let outcome = match riptide_sim::run(args.seed, &scenario) {
        Ok(o) if checked.as_ref().is_some_and(|h| *h != o.trace_hash) => {
            eprintln!(
                "riptide: NONDETERMINISM: seed {}: a third run's trace hash {} differs from the checked runs' {}",
                args.seed,
                o.trace_hash,
                checked.unwrap_or_default()
            );
            return Ok(HARNESS_ERROR);
        }
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
    println!("backend     {}", riptide_sim::backend::NAME);
    println!("trace hash  {}", outcome.trace_hash);
    if checked.is_some() {
        println!("determinism checked: 3 runs, same random draws and trace hash");
    }
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
    // Parallel seeds run in child processes: simulations sharing a process
    // are not independent (process-wide state in the runtime stack leaks
    // between them), and independence is what makes a seed reproducible.
    let jobs = args.jobs.max(1);
    let flags = args.scenario.flags();
    let check = args.check_determinism;
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            let (next, results, seeds, bar, scenario) = (
                next.clone(),
                results.clone(),
                seeds.clone(),
                bar.clone(),
                scenario.clone(),
            );
            let flags = flags.clone();
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(k) else { break };
                let r = if jobs > 1 || check {
                    run_in_child(seed, &flags, check)
                } else {
                    match riptide_sim::run(seed, &scenario) {
                        Ok(o) if o.passed() => SeedResult::Pass(o.sim_time, o.trace_hash),
                        Ok(o) => SeedResult::Fail(summary(&o), o.trace_hash),
                        Err(e) => SeedResult::Error(format!("{e:#}")),
                    }
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
    println!("backend      {}", riptide_sim::backend::NAME);
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
    if args.shrink {
        return shrink(args.seed, &scenario);
    }
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

fn shrink(seed: u64, scenario: &Scenario) -> anyhow::Result<u8> {
    eprintln!(
        "shrinking seed {seed} ({}): every candidate is a full run...",
        scenario.name
    );
    let shrunk = match riptide_sim::shrink::shrink(seed, scenario) {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("seed {seed} passes: nothing to shrink");
            return Ok(PASS);
        }
        Err(e) => {
            eprintln!("riptide: harness error: {e:#}");
            return Ok(HARNESS_ERROR);
        }
    };
    let s = &shrunk.scenario;
    let faults = s.fixed_faults.clone().unwrap_or_default();
    print!("{}", shrunk.outcome.report.to_text());
    println!();
    println!(
        "shrunk in {} runs: {} fault(s) -> {}, {} producer(s), {} consumer(s), {} s of workload",
        shrunk.runs,
        shrunk.faults_before,
        faults.len(),
        s.producers,
        s.consumers,
        s.duration_s
    );
    for f in &faults {
        let end = f
            .end_ms
            .map(|e| format!("{e} ms"))
            .unwrap_or_else(|| "never".into());
        println!(
            "  {:>6} ms .. {:>8}  {}",
            f.start_ms,
            end,
            serde_json::to_string(&f.fault)?
        );
    }
    let dir = PathBuf::from(format!("riptide-out/seed-{seed}"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("shrunk-scenario.json");
    std::fs::write(&file, serde_json::to_string_pretty(s)?)?;
    println!("scenario    {}", file.display());
    println!(
        "repro       riptide sim --seed {seed} --scenario-file {}",
        file.display()
    );
    Ok(ANOMALY)
}

#[derive(Args, Debug)]
pub struct MutantsArgs {
    /// Seeds tried per planted bug before it counts as escaped.
    #[arg(long, default_value_t = 50)]
    seeds: u64,
    /// Bugs checked in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only these bugs (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Simulation backend, as for `riptide sim`.
    #[arg(long, value_name = "turmoil|madsim")]
    pub backend: Option<String>,
}

struct MutantResult {
    bug: riptide_broker::bugs::Bug,
    caught_at: Option<(u64, String)>,
    seeds_run: u64,
    wall: Duration,
}

/// Runs each planted bug in its scenario until a seed catches it.
pub fn mutants(args: MutantsArgs) -> anyhow::Result<u8> {
    use riptide_broker::bugs::Bug;
    let bugs: Vec<Bug> = if args.only.is_empty() {
        Bug::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|n| n.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    let bar = ProgressBar::new(bugs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} bugs  {elapsed_precise}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&bug) = bugs.get(k) else { break };
                let mut scenario =
                    Scenario::named(bug.scenario()).expect("a bug names a known scenario");
                scenario.bug = Some(bug.name().to_string());
                let wall = Instant::now();
                let mut caught_at = None;
                let mut seeds_run = 0;
                for seed in 1..=args.seeds {
                    seeds_run += 1;
                    match riptide_sim::run(seed, &scenario) {
                        Ok(o) if !o.passed() => {
                            caught_at = Some((seed, summary(&o)));
                            break;
                        }
                        _ => {}
                    }
                }
                bar.set_message(format!("{bug} done"));
                bar.inc(1);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(MutantResult {
                        bug,
                        caught_at,
                        seeds_run,
                        wall: wall.elapsed(),
                    });
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.bug);
    println!("backend: {}\n", riptide_sim::backend::NAME);
    println!("| bug | scenario | caught | seeds to detection | wall time | findings |");
    println!("|---|---|---|---|---|---|");
    let mut escaped = 0;
    for r in &results {
        let (caught, seed, findings) = match &r.caught_at {
            Some((seed, f)) => ("yes", seed.to_string(), f.clone()),
            None => {
                escaped += 1;
                ("**no**", format!("> {}", r.seeds_run), String::new())
            }
        };
        println!(
            "| `{}` | {} | {caught} | {seed} | {:.1} s | {findings} |",
            r.bug,
            r.bug.scenario(),
            r.wall.as_secs_f64()
        );
    }
    if escaped > 0 {
        println!("\n{escaped} planted bug(s) escaped {} seeds", args.seeds);
        return Ok(ANOMALY);
    }
    println!("\nevery planted bug was caught");
    Ok(PASS)
}

/// Where a run on `wanted` must go: `None` if this binary runs that backend
/// itself, or the `--cfg madsim` build of riptide to hand the command to.
pub fn elsewhere(wanted: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    let own = riptide_sim::backend::NAME;
    let wanted = match wanted {
        None => return Ok(None),
        Some(w) if w == own => return Ok(None),
        Some(w) => w,
    };
    match wanted {
        "madsim" => Ok(Some(madsim_bin()?)),
        "turmoil" => anyhow::bail!(
            "this riptide is the madsim build ({}); run the ordinary build for --backend turmoil",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        other => anyhow::bail!("unknown backend '{other}' (known: turmoil, madsim)"),
    }
}

/// The `--cfg madsim` build of riptide: `$RIPTIDE_MADSIM_BIN`, else
/// `target/madsim/release/riptide` next to this binary's target directory or
/// under the current directory.
fn madsim_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("RIPTIDE_MADSIM_BIN") {
        let p = PathBuf::from(p);
        anyhow::ensure!(
            p.is_file(),
            "RIPTIDE_MADSIM_BIN={} does not exist",
            p.display()
        );
        return Ok(p);
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/riptide -> target/madsim/release/riptide
        if let Some(target) = exe.parent().and_then(Path::parent) {
            candidates.push(target.join("madsim/release/riptide"));
        }
    }
    candidates.push(PathBuf::from("target/madsim/release/riptide"));
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        "the madsim backend needs the --cfg madsim build of riptide; build it with\n  \
         RUSTFLAGS=\"--cfg madsim --cfg tokio_unstable\" cargo build --release --target-dir target/madsim -p riptide-cli\n\
         (or point RIPTIDE_MADSIM_BIN at it)"
    })
}

/// Runs this very command line on `bin` and returns its exit code.
pub fn hand_over(bin: &Path) -> anyhow::Result<u8> {
    let status = std::process::Command::new(bin)
        .args(std::env::args_os().skip(1))
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(HARNESS_ERROR))
}

/// Runs one seed as `riptide sim` in a child process and reads its verdict.
fn run_in_child(seed: u64, flags: &str, check_determinism: bool) -> SeedResult {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return SeedResult::Error(format!("cannot find my own binary: {e}")),
    };
    let out_dir = std::env::temp_dir().join(format!("riptide-sweep-{}-{seed}", std::process::id()));
    let output = std::process::Command::new(exe)
        .args(["sim", "--seed", &seed.to_string()])
        .args(flags.split_whitespace())
        .args(check_determinism.then_some("--check-determinism"))
        .arg("--out")
        .arg(&out_dir)
        .output();
    let _ = std::fs::remove_dir_all(&out_dir);
    let output = match output {
        Ok(o) => o,
        Err(e) => return SeedResult::Error(format!("could not run a child: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|r| r.trim().to_string()))
            .unwrap_or_default()
    };
    let hash = field("trace hash");
    let sim_time = field("time")
        .split_whitespace()
        .next()
        .and_then(|t| t.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or_default();
    match output.status.code() {
        Some(0) => SeedResult::Pass(sim_time, hash),
        Some(1) => {
            // The report's count table: "  anomaly   n" rows with n > 0.
            let names: Vec<&str> = riptide_checker::Anomaly::ALL
                .iter()
                .map(|a| a.as_str())
                .collect();
            let found: Vec<String> = stdout
                .lines()
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    let (a, n) = (parts.next()?, parts.next()?.parse::<usize>().ok()?);
                    (names.contains(&a) && parts.next().is_none() && n > 0)
                        .then(|| format!("{a} x{n}"))
                })
                .collect();
            SeedResult::Fail(found.join(", "), hash)
        }
        _ => SeedResult::Error(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    }
}
