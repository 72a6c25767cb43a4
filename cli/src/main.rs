//! `riptide`: the reference broker, and (soon) the simulator front end.

mod broker_cmd;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Broker(args) => broker_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("riptide: {e:#}");
            ExitCode::from(2)
        }
    }
}
