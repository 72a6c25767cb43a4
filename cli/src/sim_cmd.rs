//! `riptide sim`, `sweep`, `repro` and `check`: seeded simulations and their reports.

use crate::figures::{SeedFigures, WindowDistribution, WindowSample};
use crate::values::{self, Backend, Seeds, Shard};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use riptide_broker::bugs::Bug;
use riptide_checker::figures::{figures, Figures};
use riptide_checker::history::History;
use riptide_checker::{check_all, Anomaly, CheckerConfig, Severity};
use riptide_coverage::{Coverage, Tally};
use riptide_sim::scenario::Preset;
use riptide_sim::{RunOutcome, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exit codes a CI script can use.
pub const PASS: u8 = 0;
pub const ANOMALY: u8 = 1;
pub const HARNESS_ERROR: u8 = 2;

#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// Simulation backend: turmoil (ticks) or madsim (jumps to the next
    /// event). The ordinary build runs turmoil itself and hands madsim runs to
    /// the `--cfg madsim` build of riptide ($RIPTIDE_MADSIM_BIN, else
    /// target/madsim/release/riptide); default:
    /// this binary's own backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Named scenario.
    #[arg(long, default_value = "baseline", value_parser = values::scenario())]
    scenario: &'static Preset,
    /// A scenario file (JSON; fields left out keep their defaults), used
    /// instead of --scenario.
    #[arg(long)]
    scenario_file: Option<PathBuf>,
    /// Brokers at the start (overrides the scenario's).
    #[arg(long)]
    brokers: Option<usize>,
    /// Availability zones the brokers spread over.
    #[arg(long)]
    zones: Option<usize>,
    /// Partitions of each topic.
    #[arg(long)]
    partitions: Option<i32>,
    /// Producer processes.
    #[arg(long)]
    producers: Option<usize>,
    /// Consumer processes (outside any group).
    #[arg(long)]
    consumers: Option<usize>,
    /// Simulated seconds of workload.
    #[arg(long)]
    duration: Option<u64>,
    /// The reference broker's session timeout (ms): how long without a peer's heartbeat before
    /// it takes over the peer's partitions (default 3000). Shorter closes a crash's windows
    /// sooner and moves partitions away from brokers that were only slow.
    #[arg(long, value_name = "MS")]
    session_timeout_ms: Option<u64>,
    /// Plant a broker bug (see `riptide mutants`), to see the checkers catch it.
    #[arg(long, value_parser = values::bug())]
    bug: Option<Bug>,
    #[command(flatten)]
    pub workload: crate::workload_args::WorkloadArgs,
    #[command(flatten)]
    pub verdict: values::VerdictArgs,
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
            None => self.scenario.scenario(),
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
        if let Some(v) = self.session_timeout_ms {
            s.broker_session_timeout_ms = Some(v.max(1));
        }
        if let Some(b) = self.bug {
            s.bug = Some(b);
        }
        if let Some(ns) = self.verdict.max_realtime_lag_ns() {
            s.max_realtime_lag_ms = Some(ns.div_ceil(1_000_000));
        }
        self.workload.apply(&mut s.workload)?;
        Ok(s)
    }

    /// The arguments that reproduce this scenario: for children of a sweep
    /// (one element per argument, so a path with a space stays whole) and,
    /// quoted, for repro lines.
    fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        match &self.scenario_file {
            Some(path) => a.extend(["--scenario-file".into(), path.into()]),
            None => a.extend(["--scenario".into(), self.scenario.name.into()]),
        }
        // Runs on madsim say so; turmoil is the ordinary build's default.
        if self.backend.unwrap_or(Backend::own()) == Backend::Madsim {
            a.extend(["--backend".into(), "madsim".into()]);
        }
        let opts = [
            ("brokers", self.brokers.map(|v| v.to_string())),
            ("zones", self.zones.map(|v| v.to_string())),
            ("partitions", self.partitions.map(|v| v.to_string())),
            ("producers", self.producers.map(|v| v.to_string())),
            ("consumers", self.consumers.map(|v| v.to_string())),
            ("duration", self.duration.map(|v| v.to_string())),
            (
                "session-timeout-ms",
                self.session_timeout_ms.map(|v| v.to_string()),
            ),
            ("bug", self.bug.map(|b| b.name().to_string())),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                a.extend([format!("--{k}").into(), v.into()]);
            }
        }
        a.extend(self.workload.flags().into_iter().map(OsString::from));
        a.extend(self.verdict.flags());
        a
    }
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// The seed: everything the run does derives from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Where to write history.jsonl, report.txt, report.json, report.html and trace.log
    /// (default riptide-out/seed-SEED).
    #[arg(long)]
    out: Option<PathBuf>,
    /// madsim only: first run the seed twice under madsim's determinism check
    /// (every random draw of the second run must match the first's, and so
    /// must the trace hashes); nondeterminism exits 2.
    #[arg(long)]
    check_determinism: bool,
    /// Print one JSON object (verdict, trace hash, simulated time, anomaly
    /// counts, coverage, output directory, repro line) instead of the text report.
    #[arg(long)]
    json: bool,
    /// Do not count coverage points (the trace hash is the same either way).
    #[arg(long)]
    no_coverage: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Seeds to run, as A..B (B excluded) or A..=B.
    #[arg(long, default_value = "1..=100", value_parser = values::parse_seeds, value_name = "A..=B")]
    seeds: Seeds,
    /// Run only shard I of N (seeds whose position modulo N is I-1).
    #[arg(long, value_name = "I/N", value_parser = values::parse_shard)]
    shard: Option<Shard>,
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
    /// Do not count coverage points (no coverage table; trace hashes are the same either way).
    #[arg(long)]
    no_coverage: bool,
    /// Print one JSON object (seeds, failures with repro lines, the coverage tally) instead of
    /// the text summary.
    #[arg(long)]
    json: bool,
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
    /// A history: JSON lines (riptide's), or EDN with --import jepsen.
    file: PathBuf,
    /// The file's format: riptide's JSON lines, or Jepsen's Kafka workload history (EDN, one op
    /// map per line or several per line).
    #[arg(long = "import", value_enum, default_value = "jsonl")]
    import: HistoryFormat,
    /// Also write the history in this format: to --output, or else to stdout instead of the
    /// report (the exit code still gives the verdict).
    #[arg(long, value_enum)]
    export: Option<HistoryFormat>,
    /// Where --export writes.
    #[arg(long, requires = "export")]
    output: Option<PathBuf>,
    #[command(flatten)]
    verdict: values::VerdictArgs,
    /// Check only for this kind (repeatable): the report's findings, counts and verdict
    /// leave every other kind out.
    #[arg(long = "only", value_name = "KIND", value_parser = values::anomaly())]
    only: Vec<Anomaly>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn repro_line(seed: u64, scenario: &ScenarioArgs) -> String {
    let args: Vec<String> = scenario
        .args()
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            shlex::try_quote(&a).map_or_else(|_| a.to_string(), |q| q.into_owned())
        })
        .collect();
    format!("riptide sim --seed {seed} {}", args.join(" "))
}

/// What `riptide sim --json` prints: everything a parent (a sweep) or a
/// script needs, without parsing the text report.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimSummary {
    pub seed: u64,
    pub scenario: String,
    pub backend: String,
    pub passed: bool,
    pub trace_hash: String,
    pub determinism_checked: bool,
    pub operations: usize,
    pub sim_time_s: f64,
    pub wall_s: f64,
    /// Anomaly kind -> findings, only kinds found.
    pub anomalies: BTreeMap<String, usize>,
    /// The worst realtime lag over the run's partitions (ns; the report has each partition's).
    #[serde(default)]
    pub realtime_lag_ns: u64,
    /// Coverage point -> times reached, every point of the binary (all zero with
    /// `--no-coverage`).
    pub coverage: Coverage,
    /// Windows of unavailability and latencies (see `riptide_checker::figures`).
    #[serde(default)]
    pub figures: SeedFigures,
    pub output: PathBuf,
    /// The HTML report (timelines, findings, faults) in `output`.
    #[serde(default)]
    pub html: PathBuf,
    pub repro: String,
}

/// Writes every output of a run into `dir`; returns the HTML report's path.
fn write_outputs(
    dir: &Path,
    o: &RunOutcome,
    figures: &Figures,
    repro: &str,
) -> anyhow::Result<PathBuf> {
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
    std::fs::write(
        dir.join("coverage.json"),
        serde_json::to_string_pretty(&o.coverage)?,
    )?;
    std::fs::write(
        dir.join("invariants.json"),
        serde_json::to_string_pretty(&o.invariants)?,
    )?;
    // What the page draws, as data: ci/html_check.py counts the pictures against it.
    std::fs::write(
        dir.join("figures.json"),
        serde_json::to_string_pretty(figures)?,
    )?;
    let rows = [
        ("seed", o.seed.to_string()),
        ("scenario", o.scenario.name.clone()),
        ("backend", riptide_sim::backend::NAME.to_string()),
        ("trace hash", o.trace_hash.clone()),
        ("operations", o.history.ops.len().to_string()),
        ("simulated", format!("{:.1} s", o.sim_time.as_secs_f64())),
        ("repro", repro.to_string()),
    ];
    let html = dir.join("report.html");
    std::fs::write(
        &html,
        riptide_checker::html::sim_report(&o.history, &o.report, figures, rows),
    )?;
    Ok(html)
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
    riptide_coverage::set_enabled(!args.no_coverage);
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
    let (outcome, figures) = match run_seed(args.seed, &scenario, &args.scenario.verdict) {
        Ok((o, _)) if checked.as_ref().is_some_and(|h| *h != o.trace_hash) => {
            eprintln!(
                "riptide: NONDETERMINISM: seed {}: a third run's trace hash {} differs from the checked runs' {}",
                args.seed,
                o.trace_hash,
                checked.unwrap_or_default()
            );
            return Ok(HARNESS_ERROR);
        }
        Ok(run) => run,
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
    let html = write_outputs(
        &out,
        &outcome,
        &figures,
        &repro_line(args.seed, &args.scenario),
    )?;
    if args.json {
        let summary = SimSummary {
            seed: outcome.seed,
            scenario: scenario.name.clone(),
            backend: riptide_sim::backend::NAME.to_string(),
            passed: outcome.passed(),
            trace_hash: outcome.trace_hash.clone(),
            determinism_checked: checked.is_some(),
            operations: outcome.history.ops.len(),
            sim_time_s: outcome.sim_time.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            anomalies: found(&outcome).map(|(a, n)| (a.to_string(), n)).collect(),
            realtime_lag_ns: worst_lag(&outcome.report),
            coverage: outcome.coverage.clone(),
            figures: SeedFigures::of(&figures),
            output: out,
            html,
            repro: repro_line(args.seed, &args.scenario),
        };
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(if summary.passed { PASS } else { ANOMALY });
    }
    print!("{}", outcome.report.to_text());
    println!();
    print!("{}", crate::figures::run_text(&figures));
    println!();
    println!("seed        {}", outcome.seed);
    println!("scenario    {}", scenario.name);
    println!("backend     {}", riptide_sim::backend::NAME);
    println!("trace hash  {}", outcome.trace_hash);
    if checked.is_some() {
        println!("determinism checked: 3 runs, same random draws and trace hash");
    }
    println!("operations  {}", outcome.history.ops.len());
    if riptide_coverage::enabled() {
        print!("{}", outcome.coverage.to_text());
        print!("{}", outcome.invariants.to_text());
    }
    println!(
        "time        {:.1} s simulated in {:.1} s wall ({:.1}x)",
        outcome.sim_time.as_secs_f64(),
        wall.as_secs_f64(),
        outcome.sim_time.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    println!("output      {}", out.display());
    println!("html        {}", html.display());
    println!("repro       {}", repro_line(args.seed, &args.scenario));
    Ok(if outcome.passed() { PASS } else { ANOMALY })
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    let seeds: Vec<u64> = args
        .seeds
        .iter()
        .enumerate()
        .filter(|(k, _)| args.shard.is_none_or(|sh| sh.holds(*k)))
        .map(|(_, s)| s)
        .collect();
    let bar = progress_bar(seeds.len(), "seeds");
    let wall = Instant::now();
    riptide_coverage::set_enabled(!args.no_coverage);
    let mut child_args = args.scenario.args();
    if args.no_coverage {
        child_args.push("--no-coverage".into());
    }
    let runner = SeedRunner {
        in_child: args.jobs > 1 || args.check_determinism,
        check_determinism: args.check_determinism,
        scenario: scenario.clone(),
        verdict: args.scenario.verdict.clone(),
        args: child_args,
    };
    let results = parallel(
        &seeds,
        args.jobs,
        &bar,
        "failing",
        |&seed| (seed, runner.run(seed)),
        |(_, r)| !matches!(r, SeedResult::Pass(..)),
    );
    bar.finish_and_clear();
    let wall = wall.elapsed();
    let passed = results
        .iter()
        .filter(|(_, r)| matches!(r, SeedResult::Pass(..)))
        .count();
    let sim_time: Duration = results
        .iter()
        .filter_map(|(_, r)| match r {
            SeedResult::Pass(ran) => Some(ran.sim_time),
            _ => None,
        })
        .sum();
    let mut tally = Tally::new();
    for (seed, r) in &results {
        if let Some(ran) = r.ran() {
            tally.add(*seed, &ran.coverage);
        }
    }
    let seed_lags: Vec<(u64, u64)> = results
        .iter()
        .filter_map(|(seed, r)| r.ran().map(|ran| (*seed, ran.realtime_lag_ns)))
        .collect();
    let lag = LagDistribution::of(seed_lags.iter().copied());
    let mut window_samples: Vec<(u64, WindowSample)> = results
        .iter()
        .filter_map(|(seed, r)| r.ran().map(|ran| (*seed, ran)))
        .flat_map(|(seed, ran)| ran.figures.windows.iter().map(move |w| (seed, w.clone())))
        .collect();
    // In one order, whatever the shards: `merge` gives the same list.
    window_samples.sort();
    let windows = crate::figures::distributions(&window_samples);
    let mut failed = Vec::new();
    let mut failures = String::new();
    for (seed, r) in &results {
        let (line, failure) = match r {
            SeedResult::Pass(..) => continue,
            SeedResult::Fail(s, ..) => (
                format!("seed {seed}: anomalies: {s}"),
                SweepFailure::anomalies(*seed, s),
            ),
            SeedResult::Error(e) => (
                format!("seed {seed}: harness error: {e}"),
                SweepFailure::error(*seed, e),
            ),
        };
        let repro = repro_line(*seed, &args.scenario);
        failures.push_str(&format!("{line}\n  repro: {repro}\n"));
        failed.push(SweepFailure { repro, ..failure });
    }
    if let Some(path) = &args.hashes {
        let lines: String = results
            .iter()
            .map(|(seed, r)| match r.ran() {
                Some(ran) => format!("{seed} {}\n", ran.trace_hash),
                None => format!("{seed} error\n"),
            })
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    let any_error = results
        .iter()
        .any(|(_, r)| matches!(r, SeedResult::Error(_)));
    let code = match (failures.is_empty(), any_error) {
        (true, _) => PASS,
        (false, true) => HARNESS_ERROR,
        (false, false) => ANOMALY,
    };
    if !failures.is_empty() {
        std::fs::write(&args.failures, &failures)
            .with_context(|| format!("writing {}", args.failures.display()))?;
    }
    if args.json {
        let summary = SweepSummary {
            scenario: scenario.name.clone(),
            backend: riptide_sim::backend::NAME.to_string(),
            seed_range: Some(format!(
                "{}..={}",
                args.seeds.first,
                args.seeds.end.saturating_sub(1)
            )),
            shard: args.shard.map(|s| s.to_string()),
            seeds: results.len(),
            passed,
            failed: failed.len(),
            sim_time_s: sim_time.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            failures: failed,
            realtime_lag: lag,
            coverage: riptide_coverage::enabled().then_some(tally),
            windows,
            window_samples,
            seed_lags,
        };
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(code);
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
    if let Some(lag) = &lag {
        println!("{}", lag.to_text());
    }
    print!("{}", crate::figures::sweep_text(&windows));
    if riptide_coverage::enabled() {
        print!("{}", tally.to_text());
    }
    if failures.is_empty() {
        println!("verdict      PASS");
        return Ok(PASS);
    }
    print!("{failures}");
    println!("failing seeds written to {}", args.failures.display());
    Ok(code)
}

/// The worst realtime lag of each seed, as a distribution across seeds (nanoseconds).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct LagDistribution {
    seeds: usize,
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    /// The seed with the largest.
    max_seed: u64,
}

impl LagDistribution {
    fn of(lags: impl Iterator<Item = (u64, u64)>) -> Option<LagDistribution> {
        let mut lags: Vec<(u64, u64)> = lags.map(|(seed, lag)| (lag, seed)).collect();
        lags.sort_unstable();
        let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize].0;
        let &(max_ns, max_seed) = lags.last()?;
        Some(LagDistribution {
            seeds: lags.len(),
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            max_ns,
            max_seed,
        })
    }

    fn to_text(&self) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "realtime lag worst per seed: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (seed {})",
            ms(self.p50_ns),
            ms(self.p99_ns),
            ms(self.max_ns),
            self.max_seed
        )
    }
}

/// What `riptide sweep --json` prints (and `riptide merge` reads and prints).
#[derive(Debug, Serialize, Deserialize)]
struct SweepSummary {
    scenario: String,
    backend: String,
    /// The seeds of the whole sweep (`A..=B`), and this result's shard of them (`I/N`), so that
    /// `merge` can tell a missing or repeated shard. Absent from older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    seeds: usize,
    passed: usize,
    failed: usize,
    sim_time_s: f64,
    wall_s: f64,
    failures: Vec<SweepFailure>,
    /// Each seed's worst realtime lag, across seeds (absent when no seed ran).
    realtime_lag: Option<LagDistribution>,
    /// Per coverage point: seeds that reached it, hits, the first seed (absent with
    /// `--no-coverage`).
    coverage: Option<Tally>,
    /// Windows of unavailability across seeds, by `"{kind}/{fault}"`.
    #[serde(default)]
    windows: BTreeMap<String, WindowDistribution>,
    /// Every window of every seed: what `riptide merge` rebuilds `windows` from.
    #[serde(default)]
    window_samples: Vec<(u64, WindowSample)>,
    /// Each seed's worst realtime lag: what `riptide merge` rebuilds `realtime_lag` from.
    #[serde(default)]
    seed_lags: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct SweepFailure {
    seed: u64,
    /// "kind xN, ..." for a seed with findings.
    anomalies: Option<String>,
    /// What went wrong for a harness error.
    error: Option<String>,
    repro: String,
}

impl SweepFailure {
    fn anomalies(seed: u64, found: &str) -> Self {
        SweepFailure {
            seed,
            anomalies: Some(found.to_string()),
            error: None,
            repro: String::new(),
        }
    }

    fn error(seed: u64, e: &str) -> Self {
        SweepFailure {
            seed,
            anomalies: None,
            error: Some(e.to_string()),
            repro: String::new(),
        }
    }
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Sweep results to merge (`riptide sweep --shard I/N --json > shard-I.json`), at least one.
    #[arg(required = true, value_name = "SWEEP.json")]
    files: Vec<PathBuf>,
    /// Print the merged result as one JSON object (the shape `sweep --json` prints).
    #[arg(long)]
    json: bool,
}

/// `riptide merge`: the shards of one sweep (same scenario and backend) as one sweep's result:
/// counts and simulated time summed, failures (with their repro lines) in seed order, the
/// coverage tally merged, the window and lag distributions rebuilt from every seed's samples;
/// wall time is the longest shard's (they ran side by side). Exit codes as `sweep`.
pub fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    let mut shards = Vec::new();
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let shard: SweepSummary = serde_json::from_str(text.trim()).with_context(|| {
            format!("{}: not the JSON of `riptide sweep --json`", path.display())
        })?;
        shards.push((path, shard));
    }
    let (first_path, first) = &shards[0];
    for (path, s) in &shards[1..] {
        anyhow::ensure!(
            (s.scenario.as_str(), s.backend.as_str())
                == (first.scenario.as_str(), first.backend.as_str()),
            "{} is a sweep of {} on {}, {} of {} on {}: shards of one sweep only",
            path.display(),
            s.scenario,
            s.backend,
            first_path.display(),
            first.scenario,
            first.backend
        );
    }
    check_shards(&shards)?;
    let mut failures: Vec<SweepFailure> = Vec::new();
    let mut window_samples = Vec::new();
    let mut seed_lags = Vec::new();
    let mut coverage = Some(Tally::new());
    let (mut seeds, mut passed, mut failed, mut sim_time_s, mut wall_s) = (0, 0, 0, 0.0, 0.0f64);
    for (_, s) in &shards {
        seeds += s.seeds;
        passed += s.passed;
        failed += s.failed;
        sim_time_s += s.sim_time_s;
        wall_s = wall_s.max(s.wall_s);
        failures.extend(s.failures.iter().cloned());
        window_samples.extend(s.window_samples.iter().cloned());
        seed_lags.extend(s.seed_lags.iter().copied());
        coverage = match (coverage, &s.coverage) {
            (Some(mut t), Some(c)) => {
                t.merge(c);
                Some(t)
            }
            _ => None,
        };
    }
    failures.sort_by_key(|f| f.seed);
    window_samples.sort();
    seed_lags.sort_unstable();
    let merged = SweepSummary {
        scenario: first.scenario.clone(),
        backend: first.backend.clone(),
        seed_range: first.seed_range.clone(),
        shard: None,
        seeds,
        passed,
        failed,
        sim_time_s,
        wall_s,
        realtime_lag: LagDistribution::of(seed_lags.iter().copied()),
        windows: crate::figures::distributions(&window_samples),
        coverage,
        failures,
        window_samples,
        seed_lags,
    };
    let code = match (
        merged.failures.is_empty(),
        merged.failures.iter().any(|f| f.error.is_some()),
    ) {
        (true, _) => PASS,
        (false, true) => HARNESS_ERROR,
        (false, false) => ANOMALY,
    };
    if args.json {
        println!("{}", serde_json::to_string(&merged)?);
        return Ok(code);
    }
    println!("scenario     {}", merged.scenario);
    println!("backend      {}", merged.backend);
    println!("shards       {}", shards.len());
    println!(
        "seeds        {} run, {} passed, {} failed",
        merged.seeds, merged.passed, merged.failed
    );
    if let Some(lag) = &merged.realtime_lag {
        println!("{}", lag.to_text());
    }
    print!("{}", crate::figures::sweep_text(&merged.windows));
    if let Some(t) = &merged.coverage {
        print!("{}", t.to_text());
    }
    for f in &merged.failures {
        match (&f.anomalies, &f.error) {
            (Some(a), _) => println!("seed {}: anomalies: {a}", f.seed),
            (_, Some(e)) => println!("seed {}: harness error: {e}", f.seed),
            _ => println!("seed {}", f.seed),
        }
        println!("  repro: {}", f.repro);
    }
    println!(
        "verdict      {}",
        if code == PASS { "PASS" } else { "FAIL" }
    );
    Ok(code)
}

/// Refuses shards that do not make one sweep: different seed ranges, a shard given twice, or
/// (when every result says its shard) one missing. Results without those fields (older ones)
/// are merged as they are.
fn check_shards(shards: &[(&PathBuf, SweepSummary)]) -> anyhow::Result<()> {
    let (first_path, first) = &shards[0];
    let mut seen: BTreeMap<String, &PathBuf> = BTreeMap::new();
    let mut count = None;
    for (path, s) in shards {
        anyhow::ensure!(
            s.seed_range == first.seed_range,
            "{} is a sweep of seeds {}, {} of seeds {}: shards of one sweep only",
            path.display(),
            s.seed_range.as_deref().unwrap_or("?"),
            first_path.display(),
            first.seed_range.as_deref().unwrap_or("?"),
        );
        let Some(shard) = &s.shard else {
            // An unsharded result cannot be merged with anything else of the same seeds.
            anyhow::ensure!(
                shards.len() == 1 || s.seed_range.is_none(),
                "{} is the whole sweep (no --shard), not a shard of it",
                path.display()
            );
            continue;
        };
        if let Some(earlier) = seen.insert(shard.clone(), path) {
            anyhow::bail!(
                "shard {shard} given twice ({} and {}): its seeds would count twice",
                earlier.display(),
                path.display()
            );
        }
        let n = shard.split_once('/').map(|(_, n)| n.to_string());
        anyhow::ensure!(
            count.get_or_insert(n.clone()) == &n,
            "{} is shard {shard}, others are of another count: shards of one sweep only",
            path.display()
        );
    }
    if let Some(Some(n)) = count {
        let total: usize = n.parse().unwrap_or(0);
        let missing: Vec<String> = (1..=total)
            .map(|i| format!("{i}/{total}"))
            .filter(|s| !seen.contains_key(s))
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "shard(s) {} missing: a merge of part of a sweep is not the sweep",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Runs one seed here, computes its figures once, and judges its report: the kinds `--allow`
/// allows, the bounds `--slo` sets.
fn run_seed(
    seed: u64,
    scenario: &Scenario,
    verdict: &values::VerdictArgs,
) -> anyhow::Result<(RunOutcome, Figures)> {
    riptide_sim::run(seed, scenario).map(|o| {
        let figures = riptide_checker::figures::figures(&o.history);
        let report = verdict.judge(o.report, || figures.clone());
        (RunOutcome { report, ..o }, figures)
    })
}

/// The anomaly kinds a run found, with how many findings each.
fn found(o: &RunOutcome) -> impl Iterator<Item = (riptide_checker::Anomaly, usize)> + '_ {
    o.report
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(a, n)| (*a, *n))
}

/// "lost-write x1 [data-loss], duplicate x2 [contract]": worst class first.
fn summary<A: std::fmt::Display>(found: impl Iterator<Item = (A, usize)>) -> String {
    let mut found: Vec<(String, usize, Option<Severity>)> = found
        .map(|(a, n)| {
            let name = a.to_string();
            let class = Anomaly::from_name(&name).map(Anomaly::severity);
            (name, n, class)
        })
        .collect();
    found.sort_by_key(|(_, _, class)| std::cmp::Reverse(*class));
    found
        .iter()
        .map(|(a, n, class)| match class {
            Some(c) => format!("{a} x{n} [{c}]"),
            None => format!("{a} x{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One seed's result: a run that passed, a run with findings (their summary), or a harness
/// error.
enum SeedResult {
    Pass(Ran),
    Fail(String, Ran),
    Error(String),
}

/// What a sweep keeps of a seed that ran.
struct Ran {
    sim_time: Duration,
    trace_hash: String,
    coverage: Coverage,
    /// The worst realtime lag over its partitions (ns).
    realtime_lag_ns: u64,
    figures: SeedFigures,
}

impl SeedResult {
    fn of(run: anyhow::Result<(RunOutcome, Figures)>) -> SeedResult {
        match run {
            Ok((o, figures)) => {
                let passed = o.passed();
                let findings = summary(found(&o));
                let ran = Ran {
                    sim_time: o.sim_time,
                    realtime_lag_ns: worst_lag(&o.report),
                    figures: SeedFigures::of(&figures),
                    trace_hash: o.trace_hash,
                    coverage: o.coverage,
                };
                match passed {
                    true => SeedResult::Pass(ran),
                    false => SeedResult::Fail(findings, ran),
                }
            }
            Err(e) => SeedResult::Error(format!("{e:#}")),
        }
    }

    fn ran(&self) -> Option<&Ran> {
        match self {
            SeedResult::Pass(r) | SeedResult::Fail(_, r) => Some(r),
            SeedResult::Error(_) => None,
        }
    }
}

/// A run's worst realtime lag over all its partitions (0 without polls).
fn worst_lag(report: &riptide_checker::Report) -> u64 {
    report
        .realtime_lag
        .iter()
        .map(|l| l.lag_ns)
        .max()
        .unwrap_or(0)
}

/// How `sweep` and `mutants` run one seed: here, or as `riptide sim --json`
/// in a child process. Parallel seeds always run in children: simulations
/// running at the same time in one process are not independent (they share
/// tokio's process-wide task-id counter, which orders a crashed host's
/// teardown), and independence is what makes a seed reproducible. One after
/// another in one process they are (sim/tests/same_process.rs).
struct SeedRunner {
    in_child: bool,
    check_determinism: bool,
    /// What an in-process run simulates.
    scenario: Scenario,
    /// The kinds whose findings do not fail a seed.
    verdict: values::VerdictArgs,
    /// The same scenario as `riptide sim` arguments, for a child.
    args: Vec<OsString>,
}

impl SeedRunner {
    fn run(&self, seed: u64) -> SeedResult {
        if self.in_child {
            self.run_in_child(seed)
        } else {
            SeedResult::of(run_seed(seed, &self.scenario, &self.verdict))
        }
    }

    fn run_in_child(&self, seed: u64) -> SeedResult {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return SeedResult::Error(format!("cannot find my own binary: {e}")),
        };
        let out_dir =
            std::env::temp_dir().join(format!("riptide-sweep-{}-{seed}", std::process::id()));
        let output = std::process::Command::new(exe)
            .args(["sim", "--json", "--seed", &seed.to_string()])
            .args(&self.args)
            .args(self.check_determinism.then_some("--check-determinism"))
            .arg("--out")
            .arg(&out_dir)
            .output();
        let _ = std::fs::remove_dir_all(&out_dir);
        let output = match output {
            Ok(o) => o,
            Err(e) => return SeedResult::Error(format!("could not run a child: {e}")),
        };
        let stderr = || String::from_utf8_lossy(&output.stderr).trim().to_string();
        let code = output.status.code();
        if code != Some(PASS.into()) && code != Some(ANOMALY.into()) {
            // Exit 2 (or a signal): a harness error, said on stderr.
            return SeedResult::Error(stderr());
        }
        match serde_json::from_slice::<SimSummary>(&output.stdout) {
            Ok(s) => {
                let ran = Ran {
                    sim_time: Duration::from_secs_f64(s.sim_time_s),
                    trace_hash: s.trace_hash,
                    coverage: s.coverage,
                    realtime_lag_ns: s.realtime_lag_ns,
                    figures: s.figures,
                };
                match s.passed {
                    true => SeedResult::Pass(ran),
                    false => SeedResult::Fail(summary(s.anomalies.into_iter()), ran),
                }
            }
            Err(e) => SeedResult::Error(format!(
                "a child's summary did not parse ({e}); its stderr: {}",
                stderr()
            )),
        }
    }
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} {{bar:40}} {{pos}}/{{len}} {what}  {{elapsed_precise}} (eta {{eta}})  {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `work` on each item from `jobs` threads (each item stays on one
/// thread), ticking `bar` and counting the results `bad` calls `label`;
/// returns the results in the items' order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    bar: &ProgressBar,
    label: &str,
    work: impl Fn(&T) -> R + Sync,
    bad: impl Fn(&R) -> bool + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let bad_so_far = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(k) else { break };
                let r = work(item);
                if bad(&r) {
                    bad_so_far.fetch_add(1, Ordering::SeqCst);
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((k, r));
                bar.set_message(format!("{} {label}", bad_so_far.load(Ordering::SeqCst)));
                bar.inc(1);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(k, _)| *k);
    results.into_iter().map(|(_, r)| r).collect()
}

pub fn repro(args: ReproArgs) -> anyhow::Result<u8> {
    let scenario = args.scenario.build()?;
    if args.shrink {
        return shrink(args.seed, &scenario);
    }
    match run_seed(args.seed, &scenario, &args.scenario.verdict) {
        Ok((o, figures)) => {
            print!("{}", o.trace);
            println!();
            print!("{}", o.report.to_text());
            println!("trace hash  {}", o.trace_hash);
            let out = PathBuf::from(format!("riptide-out/seed-{}", args.seed));
            let html = write_outputs(&out, &o, &figures, &repro_line(args.seed, &args.scenario))?;
            println!("output      {}", out.display());
            println!("html        {}", html.display());
            Ok(if o.passed() { PASS } else { ANOMALY })
        }
        Err(e) => {
            eprintln!("riptide: harness error: {e:#}");
            Ok(HARNESS_ERROR)
        }
    }
}

/// How a history is written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    /// riptide's JSON lines (history.jsonl).
    Jsonl,
    /// Jepsen's Kafka workload: EDN :txn-shaped ops on integer keys, riptide's facts in
    /// :riptide/* keys.
    Jepsen,
}

fn read_history(path: &Path, format: HistoryFormat) -> anyhow::Result<History> {
    let reading = || format!("reading {}", path.display());
    match format {
        // Bytes read at once: the reader checks its strings' UTF-8 itself, and sizes the history
        // from the whole input.
        HistoryFormat::Jsonl => {
            History::from_jsonl(&std::fs::read(path).with_context(reading)?[..])
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        HistoryFormat::Jepsen => {
            let text = std::fs::read_to_string(path).with_context(reading)?;
            let imported = riptide_checker::jepsen::import(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            for (f, n) in &imported.skipped {
                eprintln!("riptide: skipped {n} op(s) with :f :{f} (no riptide equivalent)");
            }
            Ok(imported.history)
        }
    }
}

fn write_history(
    history: &History,
    format: HistoryFormat,
    to: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match format {
        HistoryFormat::Jsonl => history.to_jsonl(to)?,
        HistoryFormat::Jepsen => riptide_checker::jepsen::export(history, &mut { to })?,
    }
    Ok(())
}

pub fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let history = match read_history(&args.file, args.import) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("riptide: {e:#}");
            return Ok(HARNESS_ERROR);
        }
    };
    let config = CheckerConfig {
        max_realtime_lag_ns: args.verdict.max_realtime_lag_ns(),
        ..CheckerConfig::default()
    };
    let mut report = args
        .verdict
        .judge(check_all(&history, &config), || figures(&history));
    if !args.only.is_empty() {
        report = report.only(&args.only.iter().copied().collect());
    }
    let code = if report.verdict == riptide_checker::Verdict::Pass {
        PASS
    } else {
        ANOMALY
    };
    if let Some(format) = args.export {
        match &args.output {
            Some(path) => {
                let mut file = std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                );
                write_history(&history, format, &mut file)?;
                std::io::Write::flush(&mut file)?;
                eprintln!("wrote {}", path.display());
            }
            None => {
                write_history(&history, format, &mut std::io::stdout().lock())?;
                return Ok(code);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(code)
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
    /// Seeds run in parallel, each in a child process (as `sweep --jobs`).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only these bugs (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = values::bug())]
    only: Vec<Bug>,
    /// Simulation backend, as for `riptide sim`.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

struct MutantResult {
    bug: Bug,
    caught_at: Option<(u64, String)>,
    seeds_run: u64,
    wall: Duration,
}

/// Runs each planted bug in its scenario until a seed catches it. With
/// `--jobs N`, N seeds of one bug at a time, in children: the first seed (in
/// order) that catches it counts, whatever finished first.
pub fn mutants(args: MutantsArgs) -> anyhow::Result<u8> {
    let bugs: Vec<Bug> = if args.only.is_empty() {
        Bug::ALL.to_vec()
    } else {
        args.only.clone()
    };
    let jobs = args.jobs.max(1);
    let bar = progress_bar(bugs.len() * args.seeds as usize, "seeds");
    let mut results = Vec::new();
    for bug in bugs {
        let mut scenario = Scenario::named(bug.scenario()).context("a bug names a preset")?;
        scenario.bug = Some(bug);
        // A child is this very binary, so it runs this backend without being told.
        let runner = SeedRunner {
            in_child: jobs > 1,
            check_determinism: false,
            scenario,
            verdict: values::VerdictArgs::default(),
            args: ["--scenario", bug.scenario(), "--bug", bug.name()]
                .map(OsString::from)
                .into(),
        };
        bar.set_prefix(bug.name());
        let wall = Instant::now();
        let mut caught_at = None;
        let mut seeds_run = 0;
        let seeds: Vec<u64> = (1..=args.seeds).collect();
        for chunk in seeds.chunks(jobs) {
            let results = parallel(
                chunk,
                jobs,
                &bar,
                "caught",
                |&seed| (seed, runner.run(seed)),
                |(_, r)| matches!(r, SeedResult::Fail(..)),
            );
            seeds_run += chunk.len() as u64;
            caught_at = results.into_iter().find_map(|(seed, r)| match r {
                SeedResult::Fail(found, ..) => Some((seed, found)),
                _ => None,
            });
            if caught_at.is_some() {
                break;
            }
        }
        bar.inc(args.seeds - seeds_run);
        results.push(MutantResult {
            bug,
            caught_at,
            seeds_run,
            wall: wall.elapsed(),
        });
    }
    bar.finish_and_clear();
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
pub fn elsewhere(wanted: Option<Backend>) -> anyhow::Result<Option<PathBuf>> {
    match wanted {
        None => Ok(None),
        Some(w) if w == Backend::own() => Ok(None),
        Some(Backend::Madsim) => Ok(Some(madsim_bin()?)),
        Some(Backend::Turmoil) => anyhow::bail!(
            "this riptide is the madsim build ({}); run the ordinary build for --backend turmoil",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
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
