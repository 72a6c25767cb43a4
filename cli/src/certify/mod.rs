//! `riptide certify`: the simulator's workloads and checkers over real TCP
//! against any Kafka-compatible cluster, through a fault-injecting proxy.

mod hooks;
mod report;

use crate::sim_cmd::{ANOMALY, PASS};
use anyhow::{bail, Context};
use clap::Args;
use hooks::{Action, HookRun, HookSet, Hooks};
use indicatif::{ProgressBar, ProgressStyle};
use riptide_checker::history::{FaultValue, History};
use riptide_checker::{check_all, CheckerConfig, Verdict};
use riptide_faults::certify::{self, CertMix, NodeFault, PlannedNodeFault};
use riptide_faults::proxy::{LinkFaults, Proxy};
use riptide_sim::run::derive;
use riptide_wire::clock::SystemClock;
use riptide_workloads::mix::WorkloadMix;
use riptide_workloads::roster::{Roster, RosterSpec};
use riptide_workloads::{Client, ClientConfig, Recorder, TcpConnector};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Process id of the nemesis (faults and hooks) in the history.
const NEMESIS: u64 = 1000;

#[derive(Args, Debug)]
pub struct CertifyArgs {
    /// The cluster under test: HOST:PORT of each broker, comma-separated. Give
    /// every broker for per-node faults; hooks are numbered in this order.
    #[arg(long, required = true, value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// How long the workload runs (e.g. 60s, 2m, 90). Faults stop
    /// --recovery before the end.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Fixes the schedule of operations and faults (the target itself is
    /// not deterministic).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fault mix: baseline (none), network (proxy partitions, delays, dropped
    /// replies, cut connections), crashes (kill/restart and pause hooks, cuts)
    /// or chaos (all). Hook faults are skipped when no hooks are given.
    #[arg(long, default_value = "chaos", value_parser = clap::builder::PossibleValuesParser::new(CertMix::NAMES))]
    scenario: String,
    /// Directory for report.md, report.json, report.html and history.jsonl.
    #[arg(long, default_value = "certify-report")]
    out: PathBuf,
    #[command(flatten)]
    allow: crate::values::AllowArgs,
    /// Topic to write (default: a fresh riptide-certify-* name). It must not
    /// hold earlier data.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Replication factor for the topic (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i16,
    #[arg(long, default_value_t = 3)]
    producers: usize,
    /// Consumers reading by assignment.
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// Consumer-group members (0: no groups).
    #[arg(long, default_value_t = 2)]
    group_consumers: usize,
    /// Use idempotent producers (then any duplicate is an anomaly).
    #[arg(long)]
    idempotent: bool,
    /// Mean pause between two sends of one producer, in ms.
    #[arg(long, default_value_t = 20)]
    send_interval_ms: u64,
    /// Client request timeout, in ms.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Time left at the end of the workload with no faults, so that the
    /// cluster can show it recovered (liveness).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    recovery: Duration,
    /// How long the final read of every partition may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    final_read: Duration,
    /// Host the proxy listens on; clients are told this host.
    #[arg(long, default_value = "127.0.0.1")]
    proxy_host: String,
    /// Hook file (TOML): kill/start/pause/resume templates and [[node]] entries.
    #[arg(long)]
    hooks: Option<PathBuf>,
    /// Command that kills node {node} ({addr}, {host}, {port} filled in).
    #[arg(long, value_name = "CMD")]
    kill: Option<String>,
    /// Command that starts node {node} again after a kill.
    #[arg(long, value_name = "CMD")]
    start: Option<String>,
    /// Command that pauses node {node} (e.g. kill -STOP).
    #[arg(long, value_name = "CMD")]
    pause: Option<String>,
    /// Command that resumes node {node}.
    #[arg(long, value_name = "CMD")]
    resume: Option<String>,
    /// Print the fault schedule this seed would apply (one JSON line per
    /// fault) and exit without contacting the cluster.
    #[arg(long)]
    plan: bool,
    #[command(flatten)]
    workload: crate::workload_args::WorkloadArgs,
}

/// `90` (seconds), `90s`, `2m`, `1500ms`, `1m 30s`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration: '{s}' ({e})"))
}

/// What the nemesis did, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppliedFault {
    pub at_ms: u64,
    pub phase: &'static str,
    pub fault: NodeFault,
    pub node_addr: String,
    pub hook: Option<HookRun>,
}

/// Everything the report is made from.
pub struct Certification {
    pub args_line: String,
    pub bootstrap: Vec<String>,
    pub seed: u64,
    pub scenario: String,
    pub topic: String,
    pub duration: Duration,
    pub mix: CertMix,
    pub skipped: Vec<String>,
    /// Things that make the result weaker than it looks (faults that could
    /// not reach a node, hooks that failed, replies the proxy could not rewrite).
    pub warnings: Vec<String>,
    pub schedule: Vec<PlannedNodeFault>,
    pub applied: Vec<AppliedFault>,
    pub history: History,
    pub report: riptide_checker::Report,
    pub observed: riptide_faults::proxy::Observed,
    /// The coverage points certify can see (its clients, proxy and nemesis), and how often
    /// each was reached.
    pub coverage: riptide_coverage::Coverage,
    pub started_at: String,
    pub wall_time: Duration,
}

pub fn run(args: CertifyArgs) -> anyhow::Result<u8> {
    // Bad knobs are refused before anything contacts the cluster.
    args.workload
        .apply(&mut WorkloadMix::default())
        .context("client workload")?;
    let Some(mut mix) = CertMix::named(&args.scenario) else {
        bail!(
            "unknown certification scenario '{}' (known: {})",
            args.scenario,
            CertMix::NAMES.join(", ")
        );
    };
    if args.duration <= args.recovery + Duration::from_secs(5) && mix != CertMix::none() {
        bail!(
            "--duration {:?} leaves no time for faults after --recovery {:?}",
            args.duration,
            args.recovery
        );
    }
    let hooks = Hooks::load(
        args.hooks.as_deref(),
        HookSet {
            kill: args.kill.clone(),
            start: args.start.clone(),
            pause: args.pause.clone(),
            resume: args.resume.clone(),
        },
    )?;
    let mut skipped = Vec::new();
    if mix.kills && !hooks.can(Action::Kill, Action::Start, &args.bootstrap) {
        mix.kills = false;
        skipped.push("kill/restart (no kill and start hooks for every node)".to_string());
    }
    if mix.pauses && !hooks.can(Action::Pause, Action::Resume, &args.bootstrap) {
        mix.pauses = false;
        skipped.push("pause/resume (no pause and resume hooks for every node)".to_string());
    }
    if args.plan {
        for p in schedule_for(&args, &mix) {
            println!("{}", serde_json::to_string(&p)?);
        }
        for s in &skipped {
            eprintln!("skipped: {s}");
        }
        return Ok(PASS);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let cert = runtime.block_on(certify(&args, mix, skipped, hooks))?;
    let paths = report::write_all(&args.out, &cert)?;
    println!("{}", report::summary_text(&cert));
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(match cert.report.verdict {
        Verdict::Pass => PASS,
        Verdict::Fail => ANOMALY,
    })
}

/// The seed's fault schedule: from 2 s in until --recovery before the end.
fn schedule_for(args: &CertifyArgs, mix: &CertMix) -> Vec<PlannedNodeFault> {
    let fault_end_ms = args.duration.saturating_sub(args.recovery).as_millis() as u64;
    certify::generate(
        derive(args.seed, &[4]),
        mix,
        args.bootstrap.len(),
        2000,
        fault_end_ms,
    )
}

fn client_config(args: &CertifyArgs, seed: u64) -> ClientConfig {
    let mut c = ClientConfig::workload(
        seed,
        args.idempotent,
        Duration::from_millis(args.request_timeout_ms),
    );
    c.replication_factor = args.replication_factor;
    c.connection.client_id = Some("riptide-certify".into());
    c
}

/// Wall-clock time for the report header only (never used by the run).
fn wall_clock() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

async fn certify(
    args: &CertifyArgs,
    mix: CertMix,
    skipped: Vec<String>,
    hooks: Hooks,
) -> anyhow::Result<Certification> {
    let hooks = Arc::new(hooks);
    let started_at = wall_clock();
    let wall = std::time::Instant::now();
    // Counts from before this run (none in a fresh process) are not this certification's.
    riptide_coverage::reset_process();
    let proxy = Proxy::start(&args.proxy_host, &args.bootstrap, derive(args.seed, &[9]))
        .await
        .context("starting the proxy")?;
    let bootstrap = proxy.bootstrap();
    let topic = args.topic.clone().unwrap_or_else(|| {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("riptide-certify-{}-{nonce}", args.seed)
    });

    // Pre-flight: reach the cluster and make the topic, or give up (exit 2).
    let mut setup = Client::new(
        TcpConnector,
        bootstrap.clone(),
        client_config(args, derive(args.seed, &[8])),
    );
    tokio::time::timeout(Duration::from_secs(30), setup.refresh_metadata(&[]))
        .await
        .map_err(|_| anyhow::anyhow!("no answer in 30 s"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "could not reach the cluster at {}",
                args.bootstrap.join(",")
            )
        })?;
    let mut clients = WorkloadMix::default();
    args.workload.apply(&mut clients)?;
    let roster = Arc::new(Roster::draw(&RosterSpec {
        seed: args.seed,
        topic: topic.clone(),
        partitions: args.partitions,
        producers: args.producers,
        consumers: args.consumers,
        group_consumers: args.group_consumers,
        group: format!("{topic}-group"),
        idempotent: args.idempotent,
        send_interval: Duration::from_millis(args.send_interval_ms),
        fetch_max_wait_ms: 200,
        mix: clients,
    }));
    for t in &roster.topics {
        ensure_topic(&mut setup, &t.name, t.partitions).await?;
    }

    let recorder = Recorder::new(Arc::new(SystemClock::new()));
    let start = Instant::now();
    let workload_end = start + args.duration;
    let schedule = schedule_for(args, &mix);

    let mut workers = tokio::task::JoinSet::new();
    let new_client = |p: u64| {
        Client::new(
            TcpConnector,
            bootstrap.clone(),
            client_config(args, derive(args.seed, &[2, p])),
        )
    };
    for (k, proc) in roster.processes.iter().enumerate() {
        let (rec, roster, mut c) = (recorder.clone(), roster.clone(), new_client(proc.process));
        workers.spawn(async move {
            let p = &roster.processes[k];
            roster.run(p, &mut c, &rec, workload_end).await;
        });
    }

    let applied = Arc::new(Mutex::new(Vec::new()));
    let nemesis = {
        let (proxy, rec, applied) = (proxy.clone(), recorder.clone(), applied.clone());
        let nodes = args.bootstrap.clone();
        let schedule = schedule.clone();
        let hooks = hooks.clone();
        tokio::spawn(async move {
            run_nemesis(&proxy, &hooks, &rec, &nodes, &schedule, start, &applied).await;
        })
    };

    let bar = progress_bar(args.duration + args.final_read);
    let ticker = {
        let (bar, rec, applied) = (bar.clone(), recorder.clone(), applied.clone());
        // On a terminal a bar; in CI logs a line every 10 s.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let total = (args.duration + args.final_read).as_secs();
        tokio::spawn(async move {
            let mut ticks = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                ticks += 1;
                bar.set_position(start.elapsed().as_secs());
                let faults = applied.lock().unwrap_or_else(|e| e.into_inner()).len();
                let msg = format!("{} ops, {faults} fault events", rec.len());
                if !tty && ticks.is_multiple_of(40) {
                    eprintln!("certify: {}/{total} s, {msg}", start.elapsed().as_secs());
                }
                bar.set_message(msg);
            }
        })
    };

    // Workers stop at the workload's end; a cluster that never answers makes
    // them stop at the latest one request timeout (plus retries) later.
    let grace = Duration::from_secs(120);
    let drained = tokio::select! {
        d = tokio::time::timeout_at(workload_end + grace, async {
            while workers.join_next().await.is_some() {}
        }) => d,
        _ = tokio::signal::ctrl_c() => {
            // Leave the cluster as it was found: nothing partitioned, paused or killed.
            nemesis.abort();
            workers.abort_all();
            ticker.abort();
            bar.finish_and_clear();
            proxy.heal_all();
            let healed = heal_hooks(&hooks, &args.bootstrap, &applied, start, &recorder).await;
            bail!("interrupted; {healed} node(s) started or resumed again");
        }
    };
    if drained.is_err() {
        tracing::warn!(
            "workers still running {}s after the workload ended; stopping them",
            grace.as_secs()
        );
        workers.abort_all();
    }
    nemesis.await.context("nemesis task")?;
    // Whatever is still broken is healed before the final read.
    proxy.heal_all();
    heal_hooks(&hooks, &args.bootstrap, &applied, start, &recorder).await;
    bar.set_message("final read".to_string());
    let mut reader = new_client(roster.reader);
    roster
        .final_read(&mut reader, &recorder, Instant::now() + args.final_read)
        .await;
    ticker.abort();
    bar.finish_and_clear();

    let history = recorder.history();
    let report = check_all(
        &history,
        &CheckerConfig {
            allow_duplicates_from_retries: !args.idempotent,
            // A real cluster may take seconds to notice a dead node.
            liveness_grace_ns: Duration::from_secs(8).as_nanos() as u64,
        },
    )
    .allowing(&args.allow.set());
    let coverage = riptide_coverage::process().only(certify_sees);
    let applied = applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let observed = proxy.observed();
    let mut warnings = Vec::new();
    for n in observed
        .nodes
        .iter()
        .filter(|n| n.index < args.bootstrap.len())
    {
        if n.node_id.is_none() {
            warnings.push(format!(
                "node {} ({}) was never named in a Metadata reply: if clients reached that broker \
under another address, faults set on this one did not reach them",
                n.index, n.upstream
            ));
        }
    }
    let failed_hooks = applied
        .iter()
        .filter(|a| a.hook.as_ref().is_some_and(|h| !h.ok))
        .count();
    if failed_hooks > 0 {
        warnings.push(format!(
            "{failed_hooks} hook run(s) failed (see Faults): those faults may not have happened"
        ));
    }
    if observed.rewrite_failures > 0 {
        warnings.push(format!(
            "{} address-bearing replies could not be rewritten: some clients may have bypassed the proxy",
            observed.rewrite_failures
        ));
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Certification {
        args_line: std::env::args().collect::<Vec<_>>().join(" "),
        bootstrap: args.bootstrap.clone(),
        seed: args.seed,
        scenario: args.scenario.clone(),
        topic,
        duration: args.duration,
        mix,
        skipped,
        warnings,
        schedule,
        applied,
        history,
        report,
        observed,
        coverage,
        started_at,
        wall_time: wall.elapsed(),
    })
}

/// The coverage points a certification can reach: its clients', its proxy's and its nemesis's,
/// not a broker's (the target runs elsewhere) nor the simulator's.
fn certify_sees(p: &riptide_coverage::Point) -> bool {
    p.module.starts_with("riptide_workloads") || riptide_faults::certify_only(p)
}

fn progress_bar(total: Duration) -> ProgressBar {
    let bar = ProgressBar::new(total.as_secs());
    bar.set_style(
        ProgressStyle::with_template("certify [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Creates the topic (or accepts that it exists) and waits until every
/// partition has a leader.
async fn ensure_topic(
    client: &mut Client<TcpConnector>,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    client
        .create_topic(topic, partitions)
        .await
        .with_context(|| format!("could not create topic {topic}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = client.refresh_metadata(&[topic]).await;
        if (0..partitions).all(|p| client.cached_leader(topic, p).is_some()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} has partitions without a leader after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn fault_event(f: &NodeFault, phase: &str, addr: &str, hook: Option<&HookRun>) -> FaultValue {
    let mut v = FaultValue::new(f.kind())
        .with("phase", phase)
        .with("node", f.node() as u64)
        .with("addr", addr);
    match f {
        NodeFault::Delay { ms, .. } => v = v.with("ms", *ms),
        NodeFault::DropReplies { rate, .. } => v = v.with("rate", *rate),
        _ => {}
    }
    if let Some(h) = hook {
        v = v.with("hook_ok", h.ok).with("hook", h.outcome.clone());
    }
    v
}

/// The proxy faults of one node: everything active on it, combined.
fn link_faults(active: &BTreeMap<usize, &PlannedNodeFault>, node: usize) -> LinkFaults {
    let mut l = LinkFaults::default();
    for p in active.values().filter(|p| p.fault.node() == node) {
        match p.fault {
            NodeFault::Partition { .. } => l.partitioned = true,
            NodeFault::Delay { ms, .. } => l.delay_ms += ms,
            NodeFault::DropReplies { rate, .. } => l.drop_reply_rate = l.drop_reply_rate.max(rate),
            NodeFault::Cut { .. } => l.refuse = true,
            NodeFault::Kill { .. } | NodeFault::Pause { .. } => {}
        }
    }
    l
}

async fn run_nemesis(
    proxy: &Proxy,
    hooks: &Hooks,
    rec: &Recorder,
    nodes: &[String],
    schedule: &[PlannedNodeFault],
    start: Instant,
    applied: &Mutex<Vec<AppliedFault>>,
) {
    let mut actions: Vec<(u64, bool, usize)> = Vec::new();
    for (id, p) in schedule.iter().enumerate() {
        actions.push((p.start_ms, true, id));
        actions.push((p.end_ms, false, id));
    }
    // Heals before starts at the same instant.
    actions.sort_by_key(|&(t, begin, id)| (t, begin, id));
    let mut active: BTreeMap<usize, &PlannedNodeFault> = BTreeMap::new();
    for (at, begin, id) in actions {
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        let p = &schedule[id];
        let node = p.fault.node();
        let addr = nodes.get(node).cloned().unwrap_or_default();
        if begin {
            active.insert(id, p);
        } else {
            active.remove(&id);
        }
        proxy.set_faults(&addr, link_faults(&active, node));
        let hook = match (&p.fault, begin) {
            (NodeFault::Cut { .. }, true) => {
                proxy.cut(&addr);
                None
            }
            (NodeFault::Kill { .. }, true) => Some(hooks.run(Action::Kill, node, &addr).await),
            (NodeFault::Kill { .. }, false) => Some(hooks.run(Action::Start, node, &addr).await),
            (NodeFault::Pause { .. }, true) => Some(hooks.run(Action::Pause, node, &addr).await),
            (NodeFault::Pause { .. }, false) => Some(hooks.run(Action::Resume, node, &addr).await),
            _ => None,
        };
        let phase = if begin { "start" } else { "heal" };
        if begin && rec.in_flight() > 0 {
            p.fault.began_with_ops_in_flight();
        }
        let now_ms = start.elapsed().as_millis() as u64;
        rec.event_at(
            start.elapsed().as_nanos() as u64,
            NEMESIS,
            fault_event(&p.fault, phase, &addr, hook.as_ref()),
        );
        applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(AppliedFault {
                at_ms: now_ms,
                phase,
                fault: p.fault.clone(),
                node_addr: addr,
                hook,
            });
    }
}

/// Kill and pause faults still in force: started and never healed (an
/// interrupted run), or healed by a start or resume hook that failed.
fn outstanding(applied: &[AppliedFault]) -> Vec<AppliedFault> {
    let mut down: Vec<(AppliedFault, bool)> = Vec::new();
    for a in applied {
        if !matches!(a.fault, NodeFault::Kill { .. } | NodeFault::Pause { .. }) {
            continue;
        }
        let still_down = a.phase == "start" || a.hook.as_ref().is_some_and(|h| !h.ok);
        match down.iter_mut().find(|(d, _)| d.fault == a.fault) {
            Some(entry) => entry.1 = still_down,
            None => down.push((a.clone(), still_down)),
        }
    }
    down.into_iter()
        .filter(|(_, d)| *d)
        .map(|(a, _)| a)
        .collect()
}

/// Runs the start or resume hook of every node a kill or pause left down
/// (once more if it failed before), records it, and says how many it tried.
async fn heal_hooks(
    hooks: &Hooks,
    nodes: &[String],
    applied: &Mutex<Vec<AppliedFault>>,
    start: Instant,
    rec: &Recorder,
) -> usize {
    let failed = outstanding(&applied.lock().unwrap_or_else(|e| e.into_inner()));
    let count = failed.len();
    for a in failed {
        let node = a.fault.node();
        let action = match a.fault {
            NodeFault::Kill { .. } => Action::Start,
            _ => Action::Resume,
        };
        let addr = nodes.get(node).cloned().unwrap_or_default();
        let run = hooks.run(action, node, &addr).await;
        rec.event_at(
            start.elapsed().as_nanos() as u64,
            NEMESIS,
            fault_event(&a.fault, "heal-retry", &addr, Some(&run)),
        );
        applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(AppliedFault {
                at_ms: start.elapsed().as_millis() as u64,
                phase: "heal-retry",
                fault: a.fault.clone(),
                node_addr: addr,
                hook: Some(run),
            });
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn outstanding_kills_and_pauses_are_the_ones_not_healed() {
        let hook = |ok| HookRun {
            action: Action::Start,
            node: 0,
            command: "x".into(),
            ok,
            outcome: String::new(),
        };
        let at = |phase, fault: NodeFault, h: Option<HookRun>| AppliedFault {
            at_ms: 0,
            phase,
            fault,
            node_addr: String::new(),
            hook: h,
        };
        let (k0, p1, c2) = (
            NodeFault::Kill { node: 0 },
            NodeFault::Pause { node: 1 },
            NodeFault::Cut { node: 2 },
        );
        let applied = vec![
            at("start", k0.clone(), Some(hook(true))),
            at("start", c2.clone(), None),
            at("heal", k0.clone(), Some(hook(false))),
            at("start", p1.clone(), Some(hook(true))),
        ];
        let o: Vec<NodeFault> = outstanding(&applied).into_iter().map(|a| a.fault).collect();
        assert_eq!(o, vec![k0.clone(), p1.clone()]);
        let mut healed = applied.clone();
        healed.push(at("heal-retry", k0, Some(hook(true))));
        healed.push(at("heal", p1, Some(hook(true))));
        assert!(outstanding(&healed).is_empty());
    }

    #[test]
    fn overlapping_faults_on_one_node_combine() {
        let a = PlannedNodeFault {
            start_ms: 0,
            end_ms: 10,
            fault: NodeFault::Delay { node: 1, ms: 50 },
        };
        let b = PlannedNodeFault {
            start_ms: 0,
            end_ms: 10,
            fault: NodeFault::DropReplies { node: 1, rate: 0.2 },
        };
        let c = PlannedNodeFault {
            start_ms: 0,
            end_ms: 10,
            fault: NodeFault::Partition { node: 0 },
        };
        let active: BTreeMap<usize, &PlannedNodeFault> = [(0, &a), (1, &b), (2, &c)].into();
        let l = link_faults(&active, 1);
        assert_eq!(
            (l.delay_ms, l.drop_reply_rate, l.partitioned),
            (50, 0.2, false)
        );
        assert!(link_faults(&active, 0).partitioned);
    }
}
