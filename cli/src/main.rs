//! `riptide`: the reference broker and the simulator's front end.

#[cfg_attr(madsim, allow(dead_code))]
mod broker_cmd;
#[cfg(not(madsim))]
mod certify;
/// Certification serves real TCP: not in the simulation-only build.
#[cfg(madsim)]
mod certify {
    #[derive(clap::Args, Debug)]
    pub struct CertifyArgs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _args: Vec<String>,
    }

    pub fn run(_: CertifyArgs) -> anyhow::Result<u8> {
        anyhow::bail!(
            "this is the madsim (simulation-only) build of riptide: run the ordinary build to certify a cluster"
        )
    }

    #[derive(clap::Args, Debug)]
    pub struct StoreProxyArgs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _args: Vec<String>,
    }

    pub fn store_proxy(_: StoreProxyArgs) -> anyhow::Result<u8> {
        anyhow::bail!(
            "this is the madsim (simulation-only) build of riptide: run the ordinary build for the store proxy"
        )
    }
}
mod figures;
mod sim_cmd;
mod values;
mod workload_args;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "riptide",
    version,
    about = "Deterministic-simulation testing for Kafka-compatible streaming systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reference stateless broker: Kafka protocol in front, every
    /// durable byte in object storage. Brokers pointed at the same store form
    /// one cluster.
    Broker(broker_cmd::BrokerArgs),
    /// Run one seeded simulation of a cluster of reference brokers under a
    /// workload, then check the history. Exit 0 pass, 1 anomalies, 2 harness error.
    Sim(sim_cmd::SimArgs),
    /// Run many seeds (optionally one shard of them) and list the failing ones.
    Sweep(sim_cmd::SweepArgs),
    /// Re-run one seed and print its full trace and report; its history, reports (text, JSON,
    /// HTML), trace, coverage and invariants go to riptide-out/seed-N/.
    Repro(sim_cmd::ReproArgs),
    /// Run every checker on a recorded history (JSON lines).
    Check(sim_cmd::CheckArgs),
    /// Merge the JSON results of a sweep's shards (`sweep --shard I/N --json`, from one
    /// machine or many) into one sweep's result: counts, failures with repro lines, coverage,
    /// window and lag distributions. Exit 0 pass, 1 anomalies, 2 harness error.
    Merge(sim_cmd::MergeArgs),
    /// Run each planted broker bug in its scenario until a seed catches it;
    /// exit 1 if any escapes.
    Mutants(sim_cmd::MutantsArgs),
    /// Certify a real Kafka-compatible cluster: run the workloads over TCP
    /// through a fault-injecting proxy (plus optional kill/pause hooks), check
    /// the history, write Markdown, JSON and HTML reports. Exit 0 pass, 1
    /// anomalies, 2 could not run.
    Certify(Box<certify::CertifyArgs>),
    /// Run S3 fault proxies on their own (LISTEN=UPSTREAM each), for brokers that need their
    /// object store before `certify` starts; `certify --store-proxy LISTEN` then drives their
    /// faults. They forward requests unchanged until then.
    StoreProxy(certify::StoreProxyArgs),
    /// Print a user's salted SCRAM-SHA-256/512 credentials as TOML, for `riptide broker
    /// --sasl-users FILE` (append them to it). The password is read from RIPTIDE_SASL_PASSWORD
    /// or standard input, never from the command line. SASL/PLAIN logins are checked against
    /// the same credentials.
    SaslUser(broker_cmd::SaslUserArgs),
}

/// Asks Linux for no transparent huge pages. mimalloc asks for them on its large regions, and
/// where the kernel compacts memory to find one (`defrag` at its default, `madvise`) the first
/// touch of a region costs more than the huge pages save: `riptide check` of a 1M-op history took
/// a quarter longer with them, and simulations ran no faster (README, "Checker speed").
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

// A simulation allocates and frees on every message, record and op; mimalloc spends about half
// the time the system allocator does there (see the README's speed figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    // The madsim build's process-wide subscriber is the simulation's trace.
    #[cfg(madsim)]
    riptide_sim::trace::install_global(riptide_sim::run::TRACE_FILTER);
    #[cfg(not(madsim))]
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let backend = match &cli.command {
        Command::Sim(a) => a.scenario.backend,
        Command::Sweep(a) => a.scenario.backend,
        Command::Repro(a) => a.scenario.backend,
        Command::Mutants(a) => a.backend,
        _ => None,
    };
    match sim_cmd::elsewhere(backend) {
        Ok(None) => {}
        Ok(Some(bin)) => {
            return match sim_cmd::hand_over(&bin) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("riptide: {e:#}");
                    ExitCode::from(sim_cmd::HARNESS_ERROR)
                }
            }
        }
        Err(e) => {
            eprintln!("riptide: {e:#}");
            return ExitCode::from(sim_cmd::HARNESS_ERROR);
        }
    }
    let result = match cli.command {
        #[cfg(not(madsim))]
        Command::Broker(args) => broker_cmd::run(args).map(|()| sim_cmd::PASS),
        #[cfg(madsim)]
        Command::Broker(_) => Err(anyhow::anyhow!(
            "this is the madsim (simulation-only) build of riptide: run the ordinary build to serve real traffic"
        )),
        Command::Sim(args) => sim_cmd::sim(args),
        Command::Sweep(args) => sim_cmd::sweep(args),
        Command::Repro(args) => sim_cmd::repro(args),
        Command::Check(args) => sim_cmd::check(args),
        Command::Merge(args) => sim_cmd::merge(args),
        Command::Mutants(args) => sim_cmd::mutants(args),
        Command::Certify(args) => certify::run(*args),
        Command::StoreProxy(args) => certify::store_proxy(args),
        Command::SaslUser(args) => broker_cmd::sasl_user(args).map(|()| sim_cmd::PASS),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("riptide: {e:#}");
            ExitCode::from(sim_cmd::HARNESS_ERROR)
        }
    }
}
