//! The certify engine: the simulator's workloads and checkers over real TCP against any
//! Kafka-compatible cluster, through the client proxy, the store proxies and the hooks, which
//! apply the seed's schedule of [`Fault`]s (the simulator's fault model).

use crate::client_proxy::{LinkFaults, Proxy, TXN_APIS};
use crate::hooks::{Action, HookRun, Hooks};
use crate::store_proxy::{Mode, StoreControl, StoreObserved, StoreProxy};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use riptide_checker::history::{FaultValue, History};
use riptide_checker::{check_all, CheckerConfig};
use riptide_faults::{Capabilities, Elastic, Fault, FaultMix, Planned, Schedule, Topology};
use riptide_wire::clock::SystemClock;
use riptide_workloads::client::txn::Txn;
use riptide_workloads::mix::{derive, WorkloadMix};
use riptide_workloads::roster::{Roster, RosterSpec};
use riptide_workloads::transactions::refuses_transactions;
use riptide_workloads::{Client, ClientConfig, Pace, Recorder, Spikes, TcpConnector};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Process id of the nemesis (faults and hooks) in the history.
const NEMESIS: u64 = 1000;

/// The certifiable scenarios: which fault kinds a certification draws from.
pub const SCENARIOS: [&str; 7] = [
    "baseline",
    "network",
    "crashes",
    "store",
    "transactions",
    "chaos",
    "elastic",
];

/// A named scenario's fault mix: `baseline` (none), `network` (the client proxy's partitions,
/// delays, dropped replies and cuts), `crashes` (kill/restart and pause hooks, cuts), `store` (the
/// store proxies' faults), `transactions` (crashes, pauses, store faults and partitions, the
/// simulator's `transactions` preset as far as certify can apply it), `chaos` (all of those) or
/// `elastic` (spares started several at once, half the nodes stopped for good, traffic spikes,
/// every node replaced in turn: the simulator's `elastic` preset as hook sequences). Kinds the
/// set-up cannot apply are skipped.
pub fn scenario(name: &str) -> Option<FaultMix> {
    let none = FaultMix {
        mean_gap_ms: 4000,
        max_duration_ms: 6000,
        ..FaultMix::default()
    };
    Some(match name {
        "baseline" => none,
        "network" => FaultMix {
            partitions: true,
            client_links: true,
            ..none
        },
        "crashes" => FaultMix {
            crashes: true,
            pauses: true,
            client_links: true,
            ..none
        },
        "store" => FaultMix {
            store: true,
            mean_gap_ms: 3000,
            ..none
        },
        "transactions" => FaultMix {
            crashes: true,
            pauses: true,
            store: true,
            partitions: true,
            mean_gap_ms: 3000,
            ..none
        },
        "chaos" => FaultMix {
            partitions: true,
            client_links: true,
            crashes: true,
            pauses: true,
            store: true,
            mean_gap_ms: 3000,
            ..none
        },
        "elastic" => FaultMix {
            elastic: Elastic::ALL.to_vec(),
            mean_gap_ms: 5000,
            ..none
        },
        _ => return None,
    })
}

/// How many transactional producers a scenario runs unless `--txn-producers` says: three in
/// `transactions`, one in `chaos` (as the simulator's presets), none elsewhere.
pub fn scenario_txn_producers(name: &str) -> usize {
    match name {
        "transactions" => 3,
        "chaos" => 1,
        _ => 0,
    }
}

/// A broker's link to its object store, through a store proxy.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreLink {
    /// Start a store proxy listening here, in front of this upstream.
    Start { listen: String, mode: Mode },
    /// Drive a store proxy already running there (`riptide store-proxy`).
    Attach { addr: String },
}

impl StoreLink {
    /// `LISTEN=UPSTREAM` (UPSTREAM: `http://HOST:PORT` or `forward`) or `HOST:PORT`.
    pub fn parse(s: &str) -> Result<StoreLink, String> {
        match s.split_once('=') {
            Some((listen, upstream)) => Ok(StoreLink::Start {
                listen: listen.to_string(),
                mode: Mode::parse(upstream)?,
            }),
            None if s.contains(':') => Ok(StoreLink::Attach {
                addr: s.to_string(),
            }),
            None => Err(format!(
                "'{s}': give LISTEN=UPSTREAM to start a store proxy, or HOST:PORT of a running one"
            )),
        }
    }
}

/// What a certification runs: the cluster, the workload, the faults.
#[derive(Clone, Debug)]
pub struct Config {
    /// HOST:PORT of each broker, in the order hooks and store links are numbered.
    pub bootstrap: Vec<String>,
    /// HOST:PORT of brokers not running at first that scale-outs start (their start hook),
    /// numbered for hooks after the bootstrap nodes.
    pub spares: Vec<String>,
    pub duration: Duration,
    pub seed: u64,
    /// One of [`SCENARIOS`].
    pub scenario: String,
    /// Anomaly kinds reported but not failing the verdict.
    pub allow: BTreeSet<riptide_checker::Anomaly>,
    /// Above this worst realtime lag (ns) a partition is a `realtime-lag` finding; without, the
    /// lag is only a figure of the report.
    pub max_realtime_lag_ns: Option<u64>,
    pub topic: Option<String>,
    pub partitions: i32,
    pub replication_factor: i16,
    pub producers: usize,
    pub consumers: usize,
    pub group_consumers: usize,
    /// Transactional producers; `None`: the scenario's number ([`scenario_txn_producers`]).
    pub txn_producers: Option<usize>,
    /// Their `transaction.timeout.ms`.
    pub txn_timeout_ms: i32,
    pub idempotent: bool,
    pub send_interval_ms: u64,
    pub request_timeout_ms: u64,
    pub recovery: Duration,
    pub final_read: Duration,
    pub proxy_host: String,
    pub hooks: Hooks,
    /// The k-th belongs to the k-th bootstrap node.
    pub store_links: Vec<StoreLink>,
    /// How the brokers are reached (TLS, SASL); the workload talks plaintext to the proxy.
    pub security: riptide_auth::Security,
    pub clients: WorkloadMix,
    /// The command line, for the report.
    pub args_line: String,
}

/// What the certification's world can do, and the scenario's kinds it cannot (with why).
pub fn capabilities(config: &Config, mix: &FaultMix) -> (Capabilities, Vec<String>) {
    let nodes = &config.bootstrap;
    let every_node: Vec<String> = nodes.iter().chain(&config.spares).cloned().collect();
    let can = Capabilities {
        broker_links: false,
        crashes: config.hooks.can(Action::Kill, Action::Start, nodes),
        pauses: config.hooks.can(Action::Pause, Action::Resume, nodes),
        store: !nodes.is_empty() && config.store_links.len() == nodes.len(),
        zones: false,
        // A node leaves by its kill hook and a spare joins by its start hook.
        scale: config.hooks.can(Action::Kill, Action::Start, &every_node),
        client_links: true,
        one_down_at_a_time: true,
    };
    let mut skipped = Vec::new();
    if mix.crashes && !can.crashes {
        skipped.push("kill/restart (no kill and start hooks for every node)".to_string());
    }
    if mix.pauses && !can.pauses {
        skipped.push("pause/resume (no pause and resume hooks for every node)".to_string());
    }
    if mix.store && !can.store {
        skipped.push("store faults (no --store-proxy for every node)".to_string());
    }
    let scales = mix.scale
        || mix
            .elastic
            .iter()
            .any(|e| matches!(e, Elastic::ScaleOutMany | Elastic::ScaleInHalf));
    if scales && !can.scale {
        skipped.push("scale events (no kill and start hooks for every node and spare)".to_string());
    }
    if mix.elastic.contains(&Elastic::Rolling) && !can.crashes {
        skipped.push("rolling replacement (no kill and start hooks for every node)".to_string());
    }
    (can, skipped)
}

/// The seed's fault schedule: from 2 s in until `recovery` before the end.
pub fn schedule(config: &Config, mix: &FaultMix, can: &Capabilities) -> Schedule {
    let fault_end_ms = config.duration.saturating_sub(config.recovery).as_millis() as u64;
    let topology = Topology {
        brokers: config.bootstrap.iter().map(|b| (b.clone(), 0)).collect(),
        zones: 1,
        clients: vec![CLIENTS.to_string()],
        spares: config.spares.iter().map(|s| (s.clone(), 0)).collect(),
        bootstrap: config.bootstrap.clone(),
        can: can.clone(),
    };
    Schedule::generate(
        derive(config.seed, &[4]),
        mix,
        &topology,
        2000,
        fault_end_ms,
    )
}

/// The clients' side of the schedule's partitions.
const CLIENTS: &str = "clients";

/// What the nemesis did, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppliedFault {
    pub at_ms: u64,
    pub phase: &'static str,
    /// The fault's index in the schedule.
    pub id: usize,
    pub fault: Fault,
    /// The node it acts on (index in bootstrap order) and its address.
    pub node: usize,
    pub node_addr: String,
    pub hook: Option<HookRun>,
    /// Store faults: the requests it acted on by then.
    pub hits: Option<u64>,
}

/// Everything the report is made from.
pub struct Certification {
    pub args_line: String,
    /// Kafka's security.protocol of the run (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    pub security_protocol: String,
    /// The SASL mechanism, if any. (No user name, no secret.)
    pub sasl_mechanism: Option<String>,
    pub bootstrap: Vec<String>,
    pub seed: u64,
    pub scenario: String,
    pub topic: String,
    pub duration: Duration,
    /// Transactional producers asked for (by the scenario or `--txn-producers`).
    pub txn_producers: usize,
    /// Why the target does not serve transactions, found before the workload started; then
    /// no transactional producer ran.
    pub txn_not_served: Option<NotServed>,
    pub mix: FaultMix,
    pub capabilities: Capabilities,
    pub skipped: Vec<String>,
    /// Things that make the result weaker than it looks (faults that could
    /// not reach a node, hooks that failed, replies the proxy could not rewrite).
    pub warnings: Vec<String>,
    pub schedule: Vec<Planned>,
    pub applied: Vec<AppliedFault>,
    pub history: History,
    pub report: riptide_checker::Report,
    pub observed: crate::client_proxy::Observed,
    /// What each node did to its object store, through its store proxy (bootstrap order).
    pub store: Vec<StoreObserved>,
    /// The coverage points certify can see (its clients, proxy and nemesis), and how often
    /// each was reached.
    pub coverage: riptide_coverage::Coverage,
    pub started_at: String,
    pub wall_time: Duration,
}

/// Checks a configuration before anything contacts the cluster: the scenario exists and leaves
/// time for faults, store links match the nodes. Returns the mix, what the world can do, and
/// the scenario's kinds it cannot.
pub fn plan(config: &Config) -> anyhow::Result<(FaultMix, Capabilities, Vec<String>)> {
    let Some(mix) = scenario(&config.scenario) else {
        bail!(
            "unknown certification scenario '{}' (known: {})",
            config.scenario,
            SCENARIOS.join(", ")
        );
    };
    if config.duration <= config.recovery + Duration::from_secs(5) && config.scenario != "baseline"
    {
        bail!(
            "--duration {:?} leaves no time for faults after --recovery {:?}",
            config.duration,
            config.recovery
        );
    }
    if config.txn_timeout_ms <= 0 {
        bail!(
            "--txn-timeout-ms {} must be positive",
            config.txn_timeout_ms
        );
    }
    if !config.store_links.is_empty() && config.store_links.len() != config.bootstrap.len() {
        bail!(
            "{} store proxies for {} bootstrap nodes: give one --store-proxy per node, in \
             bootstrap order (the k-th is the k-th node's link to its store)",
            config.store_links.len(),
            config.bootstrap.len()
        );
    }
    let (can, skipped) = capabilities(config, &mix);
    Ok((mix, can, skipped))
}

/// Why a target does not serve transactions.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum NotServed {
    /// APIs a transactional producer needs that a node does not advertise at a version
    /// riptide's client speaks.
    Missing(Vec<String>),
    /// InitProducerId with a transactional id was refused with this error, as Kafka clients
    /// take it: fatal for a transactional producer.
    Refused(String),
}

impl std::fmt::Display for NotServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotServed::Missing(apis) => write!(f, "{} missing", apis.join(", ")),
            NotServed::Refused(e) => {
                write!(f, "InitProducerId with a transactional id refused: {e}")
            }
        }
    }
}

/// Whether the target serves transactions, before any transactional producer starts: every
/// node heard from advertises what a transactional producer needs, and InitProducerId with a
/// transactional id of the run's own (`TOPIC-probe`, used by no producer) is not refused.
/// `None` when served, or when the probe could not tell (the run then shows what happens).
async fn transactions_served(
    proxy: &Proxy,
    client: &mut Client<TcpConnector>,
    topic: &str,
    timeout_ms: i32,
) -> Option<NotServed> {
    let missing = proxy.observed().missing(&TXN_APIS);
    if !missing.is_empty() {
        return Some(NotServed::Missing(
            missing.iter().map(|k| format!("{k:?}")).collect(),
        ));
    }
    let mut probe = Txn::new(&format!("{topic}-probe"), timeout_ms);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.init_transactions(&mut probe).await {
            Ok(()) => return None,
            Err(e) if refuses_transactions(&e) => {
                return Some(NotServed::Refused(match e.error() {
                    Some(code) => format!("{code:?}"),
                    None => e.to_string(),
                }))
            }
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!(error = %e, "could not tell whether the target serves transactions");
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn client_config(args: &Config, seed: u64) -> ClientConfig {
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

/// Runs a certification (on a tokio runtime with time and I/O) to its verdict.
pub async fn certify(args: &Config) -> anyhow::Result<Certification> {
    let (mix, can, skipped) = plan(args)?;
    let hooks = Arc::new(args.hooks.clone());
    let started_at = wall_clock();
    let wall = std::time::Instant::now();
    // Counts from before this run (none in a fresh process) are not this certification's.
    riptide_coverage::reset_process();
    // Pre-flight of the security settings: one login to each broker, for a clear error (a bad
    // certificate, a refused password) instead of a cluster that seems down.
    if args.security.tls.is_some() || args.security.sasl.is_some() {
        for node in &args.bootstrap {
            tokio::time::timeout(Duration::from_secs(30), args.security.connect(node))
                .await
                .map_err(|_| anyhow::anyhow!("no answer in 30 s"))
                .and_then(|r| r.map_err(anyhow::Error::from))
                .with_context(|| format!("could not log in to {node} ({:?})", args.security))?;
        }
    }
    let proxy = Proxy::start(
        &args.proxy_host,
        &args.bootstrap,
        derive(args.seed, &[9]),
        args.security.clone(),
    )
    .await
    .context("starting the proxy")?;
    let stores = store_controls(args).await?;
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
    // A target that does not advertise what a transactional producer needs is a result (the
    // compatibility table's `transactions` row), not a reason to give up: the run goes on
    // without transactional producers.
    let txn_requested = args
        .txn_producers
        .unwrap_or_else(|| scenario_txn_producers(&args.scenario));
    let txn_not_served = if txn_requested > 0 {
        transactions_served(&proxy, &mut setup, &topic, args.txn_timeout_ms).await
    } else {
        None
    };
    if let Some(why) = &txn_not_served {
        tracing::warn!(
            "the target does not serve transactions ({why}): running without transactional producers"
        );
    }
    let clients: WorkloadMix = args.clients.clone();
    let roster = Arc::new(Roster::draw(&RosterSpec {
        seed: args.seed,
        topic: topic.clone(),
        partitions: args.partitions,
        producers: args.producers,
        consumers: args.consumers,
        group_consumers: args.group_consumers,
        txn_producers: if txn_not_served.is_none() {
            txn_requested
        } else {
            0
        },
        txn_timeout_ms: args.txn_timeout_ms,
        group: format!("{topic}-group"),
        idempotent: args.idempotent,
        send_interval: Duration::from_millis(args.send_interval_ms),
        fetch_max_wait_ms: 200,
        mix: clients,
        retention: None,
    }));
    for t in &roster.topics {
        ensure_topic(&mut setup, &t.name, t.partitions).await?;
    }

    let recorder = Recorder::new(Arc::new(SystemClock::new()));
    let start = Instant::now();
    let workload_end = start + args.duration;
    let schedule = schedule(args, &mix, &can).faults;

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
        let world = RealWorld {
            proxy: proxy.clone(),
            stores: stores.clone(),
            hooks: hooks.clone(),
            nodes: args.bootstrap.iter().chain(&args.spares).cloned().collect(),
            pace: roster.pace.clone(),
        };
        let (rec, applied, schedule) = (recorder.clone(), applied.clone(), schedule.clone());
        tokio::spawn(async move { world.run(&rec, &schedule, start, &applied).await })
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
            heal_stores(&stores).await;
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
    let mut warnings = nemesis.await.context("nemesis task")?;
    // Whatever is still broken is healed before the final read.
    proxy.heal_all();
    heal_stores(&stores).await;
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
            max_realtime_lag_ns: args.max_realtime_lag_ns,
        },
    )
    .allowing(&args.allow);
    let coverage = riptide_coverage::process().only(certify_sees);
    let applied = applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let observed = proxy.observed();
    let mut store = Vec::new();
    for (k, s) in stores.iter().enumerate() {
        match s.observed().await {
            Ok(o) => store.push(o),
            Err(e) => {
                warnings.push(format!("store proxy of node {k} ({}): {e:#}", s.addr()));
                store.push(StoreObserved::default());
            }
        }
    }
    for (k, o) in store.iter().enumerate() {
        if o.wrote() && !o.wrote_conditionally() {
            warnings.push(format!(
                "node {k} never wrote to its store conditionally (no If-None-Match or If-Match): \
                 nothing then stops two brokers writing the same offsets"
            ));
        }
    }
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
        args_line: args.args_line.clone(),
        security_protocol: args.security.protocol().to_string(),
        sasl_mechanism: args.security.sasl.as_ref().map(|s| s.mechanism.to_string()),
        bootstrap: args.bootstrap.clone(),
        seed: args.seed,
        scenario: args.scenario.clone(),
        topic,
        duration: args.duration,
        txn_producers: txn_requested,
        txn_not_served,
        mix,
        capabilities: can,
        skipped,
        warnings,
        schedule,
        applied,
        history,
        report,
        observed,
        store,
        coverage,
        started_at,
        wall_time: wall.elapsed(),
    })
}

/// The coverage points a certification can reach: its clients', its proxy's and its nemesis's,
/// not a broker's (the target runs elsewhere) nor the simulator's.
fn certify_sees(p: &riptide_coverage::Point) -> bool {
    p.module.starts_with("riptide_workloads")
        || riptide_faults::certify_only(p)
        || riptide_faults::nemesis_point(p)
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
        .create_topic(topic, partitions, &[])
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

/// Starts or attaches to the store proxy of every node, and checks that each answers.
async fn store_controls(args: &Config) -> anyhow::Result<Vec<StoreControl>> {
    let mut out = Vec::new();
    for (k, link) in args.store_links.iter().enumerate() {
        let control = match link {
            StoreLink::Start { listen, mode } => {
                let seed = derive(args.seed, &[10, k as u64]);
                let p = StoreProxy::start(listen, mode.clone(), seed)
                    .await
                    .with_context(|| format!("starting the store proxy of node {k} on {listen}"))?;
                StoreControl::new(&p.local_addr().to_string())
            }
            StoreLink::Attach { addr } => StoreControl::new(addr),
        };
        control
            .ping()
            .await
            .with_context(|| format!("store proxy of node {k}"))?;
        control.set_faults(&[]).await?;
        out.push(control);
    }
    Ok(out)
}

async fn heal_stores(stores: &[StoreControl]) {
    for s in stores {
        if let Err(e) = s.set_faults(&[]).await {
            tracing::warn!(store = s.addr(), error = %e, "could not heal a store proxy");
        }
    }
}

/// Certification's world: the appliers of each fault kind (client proxy, store proxies, hooks).
struct RealWorld {
    proxy: Proxy,
    stores: Vec<StoreControl>,
    hooks: Arc<Hooks>,
    /// The bootstrap nodes, then the spares.
    nodes: Vec<String>,
    /// The producers' pace, which traffic spikes raise.
    pace: Pace,
}

/// The hook each node a fault names runs as it starts (`begin`) or heals: how certify scales,
/// replaces and crashes brokers.
fn hook_action(fault: &Fault, begin: bool) -> Option<Action> {
    match (fault, begin) {
        (Fault::Crash { .. } | Fault::Replace { .. }, true) => Some(Action::Kill),
        (Fault::Crash { .. } | Fault::Replace { .. }, false) => Some(Action::Start),
        (Fault::Pause { .. }, true) => Some(Action::Pause),
        (Fault::Pause { .. }, false) => Some(Action::Resume),
        (Fault::ScaleIn { .. } | Fault::ScaleInHalf { .. }, true) => Some(Action::Kill),
        (Fault::ScaleOut { .. } | Fault::ScaleOutMany { .. } | Fault::Spike { .. }, true) => {
            Some(Action::Start)
        }
        _ => None,
    }
}

impl RealWorld {
    /// The nodes a fault acts on, as (index, address).
    fn nodes_of(&self, f: &Fault) -> Vec<(usize, String)> {
        f.brokers()
            .into_iter()
            .filter_map(|b| {
                let i = self.nodes.iter().position(|n| n == b)?;
                Some((i, b.to_string()))
            })
            .collect()
    }

    /// Applies the schedule as time passes; returns what could not be applied.
    async fn run(
        &self,
        rec: &Recorder,
        schedule: &[Planned],
        start: Instant,
        applied: &Mutex<Vec<AppliedFault>>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut actions: Vec<(u64, bool, usize)> = Vec::new();
        for (id, p) in schedule.iter().enumerate() {
            actions.push((p.start_ms, true, id));
            if let Some(end) = p.end_ms {
                actions.push((end, false, id));
            }
        }
        // Heals before starts at the same instant.
        actions.sort_by_key(|&(t, begin, id)| (t, begin, id));
        let mut active: BTreeMap<usize, &Fault> = BTreeMap::new();
        let mut spikes = Spikes::new(self.pace.clone());
        for (at, begin, id) in actions {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            let p = &schedule[id];
            if begin {
                active.insert(id, &p.fault);
            } else {
                active.remove(&id);
            }
            let targets = self.nodes_of(&p.fault);
            for (_, addr) in &targets {
                let link = LinkFaults::combine(addr, active.values().copied());
                self.proxy.set_faults(addr, link);
            }
            let (node, addr) = targets.first().cloned().unwrap_or_default();
            let mut hits = None;
            if let (true, Some(store)) = (p.fault.is_store_fault(), self.stores.get(node)) {
                let on_node: Vec<(usize, Fault)> = active
                    .iter()
                    .filter(|(_, f)| f.is_store_fault() && f.brokers().contains(&addr.as_str()))
                    .map(|(i, f)| (*i, (*f).clone()))
                    .collect();
                if let Err(e) = store.set_faults(&on_node).await {
                    warnings.push(format!("store fault {id} on node {node}: {e:#}"));
                }
                if !begin {
                    let seen = store.observed().await.ok();
                    hits = seen.map(|o| o.hits.get(&id).copied().unwrap_or(0));
                }
            }
            if let (Fault::ConnectionsCut { .. }, true) = (&p.fault, begin) {
                self.proxy.cut(&addr);
            }
            if let Fault::Spike { factor, .. } = &p.fault {
                spikes.apply(id, *factor, begin);
            }
            // One hook per node the fault names (several for a scale event), in turn.
            let mut runs = Vec::new();
            if let Some(action) = hook_action(&p.fault, begin) {
                for (n, a) in &targets {
                    runs.push(self.hooks.run(action, *n, a).await);
                }
            }
            let hook = combine_runs(&runs);
            let phase = if begin { "start" } else { "heal" };
            if begin && rec.in_flight() > 0 {
                p.fault.began_with_ops_in_flight();
            }
            let now_ms = start.elapsed().as_millis() as u64;
            rec.event_at(
                start.elapsed().as_nanos() as u64,
                NEMESIS,
                fault_event(p, phase, node, &addr, hook.as_ref(), hits),
            );
            applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(AppliedFault {
                    at_ms: now_ms,
                    phase,
                    id,
                    fault: p.fault.clone(),
                    node,
                    node_addr: addr,
                    hook,
                    hits,
                });
        }
        spikes.clear();
        warnings
    }
}

/// The hook runs of one fault action as one: the first's action and node, ok when every one
/// was, each command and outcome listed.
fn combine_runs(runs: &[HookRun]) -> Option<HookRun> {
    let first = runs.first()?;
    if runs.len() == 1 {
        return Some(first.clone());
    }
    let join = |f: fn(&HookRun) -> String| runs.iter().map(f).collect::<Vec<_>>().join("; ");
    Some(HookRun {
        action: first.action,
        node: first.node,
        command: join(|r| format!("node {}: {}", r.node, r.command)),
        ok: runs.iter().all(|r| r.ok),
        outcome: join(|r| format!("node {}: {}", r.node, r.outcome)),
    })
}

/// A fault as a nemesis event: the schedule's fields, plus where and how it was applied.
fn fault_event(
    p: &Planned,
    phase: &str,
    node: usize,
    addr: &str,
    hook: Option<&HookRun>,
    hits: Option<u64>,
) -> FaultValue {
    let mut v = p.event(phase).with("node", node as u64).with("addr", addr);
    if let Some(h) = hook {
        v = v.with("hook_ok", h.ok).with("hook", h.outcome.clone());
    }
    if let Some(n) = hits {
        v = v.with("requests_hit", n);
    }
    v
}

/// Kill and pause faults still in force: started and never healed (an
/// interrupted run), or healed by a start or resume hook that failed.
fn outstanding(applied: &[AppliedFault]) -> Vec<AppliedFault> {
    let mut down: Vec<(AppliedFault, bool)> = Vec::new();
    for a in applied {
        if !matches!(
            a.fault,
            Fault::Crash { .. } | Fault::Pause { .. } | Fault::Replace { .. }
        ) {
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
        let node = a.node;
        let action = match a.fault {
            Fault::Crash { .. } | Fault::Replace { .. } => Action::Start,
            _ => Action::Resume,
        };
        let addr = nodes.get(node).cloned().unwrap_or_default();
        let run = hooks.run(action, node, &addr).await;
        let planned = Planned {
            start_ms: 0,
            end_ms: None,
            fault: a.fault.clone(),
        };
        rec.event_at(
            start.elapsed().as_nanos() as u64,
            NEMESIS,
            fault_event(&planned, "heal-retry", node, &addr, Some(&run), None),
        );
        applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(AppliedFault {
                at_ms: start.elapsed().as_millis() as u64,
                phase: "heal-retry",
                id: a.id,
                fault: a.fault.clone(),
                node,
                node_addr: addr,
                hook: Some(run),
                hits: None,
            });
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(phase: &'static str, node: usize, fault: Fault, h: Option<HookRun>) -> AppliedFault {
        AppliedFault {
            at_ms: 0,
            phase,
            id: 0,
            fault,
            node,
            node_addr: String::new(),
            hook: h,
            hits: None,
        }
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
        let b = |i: usize| format!("n{i}");
        let (k0, p1, c2) = (
            Fault::Crash { broker: b(0) },
            Fault::Pause { broker: b(1) },
            Fault::ConnectionsCut { broker: b(2) },
        );
        let list = vec![
            applied("start", 0, k0.clone(), Some(hook(true))),
            applied("start", 2, c2.clone(), None),
            applied("heal", 0, k0.clone(), Some(hook(false))),
            applied("start", 1, p1.clone(), Some(hook(true))),
        ];
        let o: Vec<Fault> = outstanding(&list).into_iter().map(|a| a.fault).collect();
        assert_eq!(o, vec![k0.clone(), p1.clone()]);
        let mut healed = list.clone();
        healed.push(applied("heal-retry", 0, k0, Some(hook(true))));
        healed.push(applied("heal", 1, p1, Some(hook(true))));
        assert!(outstanding(&healed).is_empty());
    }

    fn config(scenario: &str, hooks: bool, stores: usize) -> Config {
        let hooks = if hooks {
            let set = crate::hooks::HookSet {
                kill: Some("k".into()),
                start: Some("s".into()),
                pause: Some("p".into()),
                resume: Some("r".into()),
            };
            Hooks::load(None, set).unwrap()
        } else {
            Hooks::default()
        };
        Config {
            bootstrap: (0..3).map(|i| format!("127.0.0.1:{}", 9092 + i)).collect(),
            spares: vec![],
            duration: Duration::from_secs(60),
            seed: 3,
            scenario: scenario.into(),
            allow: BTreeSet::new(),
            max_realtime_lag_ns: None,
            topic: None,
            partitions: 4,
            replication_factor: -1,
            producers: 3,
            consumers: 2,
            group_consumers: 2,
            txn_producers: None,
            txn_timeout_ms: 10_000,
            idempotent: false,
            send_interval_ms: 20,
            request_timeout_ms: 5000,
            recovery: Duration::from_secs(15),
            final_read: Duration::from_secs(60),
            proxy_host: "127.0.0.1".into(),
            hooks,
            store_links: (0..stores)
                .map(|i| StoreLink::Attach {
                    addr: format!("127.0.0.1:{}", 7000 + i),
                })
                .collect(),
            clients: WorkloadMix::default(),
            security: Default::default(),
            args_line: String::new(),
        }
    }

    #[test]
    fn the_schedule_holds_only_what_the_set_up_can_apply() {
        let kinds = |c: &Config| {
            let (mix, can, skipped) = plan(c).unwrap();
            let s = schedule(c, &mix, &can);
            let k: BTreeSet<&str> = s.faults.iter().map(|p| p.fault.kind()).collect();
            (k, skipped)
        };
        let (all, skipped) = kinds(&config("chaos", true, 3));
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(
            all.contains("crash") && all.iter().any(|k| k.starts_with("store-")),
            "{all:?}"
        );
        let (bare, skipped) = kinds(&config("chaos", false, 0));
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(
            bare.iter()
                .all(|k| !k.starts_with("store-") && *k != "crash" && *k != "pause"),
            "{bare:?}"
        );
        let (store, _) = kinds(&config("store", false, 3));
        assert!(
            !store.is_empty() && store.iter().all(|k| k.starts_with("store-")),
            "{store:?}"
        );
        assert!(
            plan(&config("chaos", false, 2)).is_err(),
            "2 store links for 3 nodes"
        );
        assert!(plan(&config("nonsense", false, 0)).is_err());
    }
}
