//! `riptide certify` and `riptide store-proxy`: argument parsing; the engine, proxies and
//! reports live in `riptide-certify`.

use crate::sim_cmd::{ANOMALY, PASS};
use crate::values::parse_duration;
use anyhow::Context;
use clap::Args;
use riptide_certify::hooks::{HookSet, Hooks};
use riptide_certify::store_proxy::{Mode, StoreProxy};
use riptide_certify::{engine, report};
use riptide_checker::figures::figures;
use riptide_checker::Verdict;
use riptide_workloads::mix::WorkloadMix;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CertifyArgs {
    /// The cluster under test: HOST:PORT of each broker, comma-separated. Give
    /// every broker for per-node faults; hooks are numbered in this order.
    #[arg(long, required = true, value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// Brokers not running at first (HOST:PORT, comma-separated) that scale-outs start with
    /// their start hook: `elastic` starts several at once. Hooks number them after the
    /// --bootstrap brokers.
    #[arg(long, value_delimiter = ',')]
    spare: Vec<String>,
    /// How long the workload runs (e.g. 60s, 2m, 90). Faults stop
    /// --recovery before the end.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Fixes the schedule of operations and faults (the target itself is
    /// not deterministic).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fault mix: baseline (none), network (proxy partitions, delays, dropped
    /// replies, cut connections), crashes (kill/restart and pause hooks, cuts),
    /// store (store-proxy faults: 500/503 SlowDown, latency, cut link, reply
    /// lost, late writes), transactions (transactional producers through
    /// kills, pauses, store faults and partitions), chaos (all, with one
    /// transactional producer) or elastic (--spare brokers started
    /// several at once, half the brokers killed for good, traffic spikes, every
    /// broker killed and started again in turn). Hook faults are skipped without
    /// hooks, store faults without a --store-proxy per node.
    #[arg(long, default_value = "chaos", value_parser = clap::builder::PossibleValuesParser::new(riptide_certify::SCENARIOS))]
    scenario: String,
    /// Directory for report.md, report.json, report.html and history.jsonl.
    #[arg(long, default_value = "certify-report")]
    out: PathBuf,
    #[command(flatten)]
    verdict: crate::values::VerdictArgs,
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
    /// Transactional producers, each with its own transactional id: every
    /// transaction writes to 1-3 partitions and commits or aborts as the seed
    /// says. With any, half the consumers and the final read are
    /// read_committed. Default: 3 for --scenario transactions, 1 for chaos,
    /// else 0. A target that does not serve transactions is a row of the
    /// report's compatibility table, not a failed run.
    #[arg(long, value_name = "N")]
    txn_producers: Option<usize>,
    /// The transactional producers' transaction.timeout.ms: the target aborts
    /// a transaction left open this long. Shorter than --final-read, so that a
    /// transaction a fault left open cannot hold read_committed readers back
    /// past the end.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    txn_timeout_ms: i32,
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
    /// The k-th node's link to its object store (repeatable, in bootstrap
    /// order): LISTEN=UPSTREAM starts an S3 fault proxy on LISTEN in front of
    /// UPSTREAM (http://HOST:PORT, the node's S3 endpoint pointed at LISTEN; or
    /// `forward`, the node's HTTP proxy pointed at LISTEN); HOST:PORT drives a
    /// proxy already running there (`riptide store-proxy`, for brokers that
    /// need their store before certify starts).
    #[arg(long = "store-proxy", value_name = "SPEC", value_parser = riptide_certify::StoreLink::parse)]
    store_proxy: Vec<riptide_certify::StoreLink>,
    /// Print the fault schedule this seed would apply (one JSON line per
    /// fault) and exit without contacting the cluster.
    #[arg(long)]
    plan: bool,
    #[command(flatten)]
    workload: crate::workload_args::WorkloadArgs,
    #[command(flatten)]
    security: SecurityArgs,
}

/// How certify reaches a cluster that requires TLS or SASL (a managed one). Its clients talk
/// plaintext to certify's proxy; the proxy speaks this to the brokers, logging in on every
/// connection it opens.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Security (the cluster's, as Kafka's client settings name them)")]
struct SecurityArgs {
    /// security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, default_value = "PLAINTEXT", value_parser = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], ignore_case = true)]
    security_protocol: String,
    /// sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. The user name and password come
    /// from RIPTIDE_SASL_USERNAME and RIPTIDE_SASL_PASSWORD, or --sasl-credentials: never from
    /// the command line, never in the report.
    #[arg(long, value_parser = clap::value_parser!(riptide_auth::Mechanism))]
    sasl_mechanism: Option<riptide_auth::Mechanism>,
    /// A TOML file with `username = "..."` and `password = "..."`.
    #[arg(long, value_name = "FILE")]
    sasl_credentials: Option<PathBuf>,
    /// CA certificates (PEM) to trust; the system's roots without it. Certificates are checked
    /// against each broker's advertised host name (also sent as SNI).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for clusters that ask for one; needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

impl SecurityArgs {
    fn security(&self) -> anyhow::Result<riptide_auth::Security> {
        let protocol = self.security_protocol.to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            _ => (false, false),
        };
        if !tls && (self.ca_file.is_some() || self.client_cert.is_some()) {
            anyhow::bail!("--ca-file and --client-cert need --security-protocol SSL or SASL_SSL");
        }
        if sasl != self.sasl_mechanism.is_some() {
            anyhow::bail!(if sasl {
                "--security-protocol SASL_* needs --sasl-mechanism"
            } else {
                "--sasl-mechanism needs --security-protocol SASL_PLAINTEXT or SASL_SSL"
            });
        }
        let mut security = riptide_auth::Security::default();
        if tls {
            security.tls = Some(
                riptide_auth::tls::ClientTls {
                    ca_file: self.ca_file.clone(),
                    client_cert: self.client_cert.clone().zip(self.client_key.clone()),
                }
                .config()?,
            );
        }
        if let Some(m) = self.sasl_mechanism {
            security.sasl = Some(riptide_auth::ClientSasl::load(
                m,
                self.sasl_credentials.as_deref(),
                |k| std::env::var(k).ok(),
            )?);
        }
        Ok(security)
    }
}

fn config(args: &CertifyArgs) -> anyhow::Result<engine::Config> {
    // Bad knobs are refused before anything contacts the cluster.
    let mut clients = WorkloadMix::default();
    args.workload
        .apply(&mut clients)
        .context("client workload")?;
    let hooks = Hooks::load(
        args.hooks.as_deref(),
        HookSet {
            kill: args.kill.clone(),
            start: args.start.clone(),
            pause: args.pause.clone(),
            resume: args.resume.clone(),
        },
    )?;
    Ok(engine::Config {
        bootstrap: args.bootstrap.clone(),
        spares: args.spare.clone(),
        duration: args.duration,
        seed: args.seed,
        scenario: args.scenario.clone(),
        allow: args.verdict.set(),
        max_realtime_lag_ns: args.verdict.max_realtime_lag_ns(),
        topic: args.topic.clone(),
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        producers: args.producers,
        consumers: args.consumers,
        group_consumers: args.group_consumers,
        txn_producers: args.txn_producers,
        txn_timeout_ms: args.txn_timeout_ms,
        idempotent: args.idempotent,
        send_interval_ms: args.send_interval_ms,
        request_timeout_ms: args.request_timeout_ms,
        recovery: args.recovery,
        final_read: args.final_read,
        proxy_host: args.proxy_host.clone(),
        hooks,
        store_links: args.store_proxy.clone(),
        security: args.security.security()?,
        clients,
        args_line: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

pub fn run(args: CertifyArgs) -> anyhow::Result<u8> {
    let config = config(&args)?;
    let (mix, can, skipped) = engine::plan(&config)?;
    if args.plan {
        for p in engine::schedule(&config, &mix, &can).faults {
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
    let mut cert = runtime.block_on(riptide_certify::certify(&config))?;
    // Bounds on the figures (`--slo`) judge the same history as the checkers (the engine
    // already applied `--allow`).
    cert.report = args.verdict.judge(cert.report, || figures(&cert.history));
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

#[derive(Args, Debug)]
pub struct StoreProxyArgs {
    /// LISTEN=UPSTREAM, one per proxy (e.g. 127.0.0.1:7001=http://127.0.0.1:5000, or
    /// 127.0.0.1:7001=forward for a broker that sends through its HTTP proxy setting).
    /// Each proxy forwards requests unchanged until `riptide certify --store-proxy LISTEN`
    /// drives its faults.
    #[arg(required = true, value_name = "LISTEN=UPSTREAM")]
    proxies: Vec<String>,
    /// Draws which requests a fault's rate hits.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs S3 fault proxies until SIGINT or SIGTERM.
pub fn store_proxy(args: StoreProxyArgs) -> anyhow::Result<u8> {
    let mut specs = Vec::new();
    for p in &args.proxies {
        let (listen, upstream) = p
            .split_once('=')
            .with_context(|| format!("'{p}' is not LISTEN=UPSTREAM"))?;
        let mode = Mode::parse(upstream).map_err(anyhow::Error::msg)?;
        specs.push((listen.to_string(), mode));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        for (k, (listen, mode)) in specs.into_iter().enumerate() {
            let seed = riptide_workloads::mix::derive(args.seed, &[10, k as u64]);
            let p = StoreProxy::start(&listen, mode, seed)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            println!("store proxy {} listening", p.local_addr());
        }
        crate::broker_cmd::wait_for_signal().await;
        anyhow::Ok(())
    })?;
    Ok(PASS)
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
}
