//! `riptide`: the reference broker and the simulator's front end.

mod broker_cmd;
mod certify;
mod sim_cmd;

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
    /// Re-run one seed and print its full trace and report.
    Repro(sim_cmd::ReproArgs),
    /// Run every checker on a recorded history (JSON lines).
    Check(sim_cmd::CheckArgs),
    /// Run each planted broker bug in its scenario until a seed catches it;
    /// exit 1 if any escapes.
    Mutants(sim_cmd::MutantsArgs),
    /// Certify a real Kafka-compatible cluster: run the workloads over TCP
    /// through a fault-injecting proxy (plus optional kill/pause hooks), check
    /// the history, write Markdown, JSON and HTML reports. Exit 0 pass, 1
    /// anomalies, 2 could not run.
    Certify(certify::CertifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Broker(args) => broker_cmd::run(args).map(|()| sim_cmd::PASS),
        Command::Sim(args) => sim_cmd::sim(args),
        Command::Sweep(args) => sim_cmd::sweep(args),
        Command::Repro(args) => sim_cmd::repro(args),
        Command::Check(args) => sim_cmd::check(args),
        Command::Mutants(args) => sim_cmd::mutants(args),
        Command::Certify(args) => certify::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("riptide: {e:#}");
            ExitCode::from(sim_cmd::HARNESS_ERROR)
        }
    }
}
