//! Command-line knobs for what the clients do, shared by `sim`/`sweep`/`repro` and `certify`.
//! Each one overrides the same field of the scenario's workload mix (`WorkloadMix`).

use clap::Args;
use riptide_workloads::mix::{Codec, Span, WorkloadMix};

/// Where these flags show in `--help`.
const HEADING: &str = "Client workload (a number pins a knob, A..=B draws it per process)";

#[derive(Args, Debug, Clone, Default)]
pub struct WorkloadArgs {
    /// The earlier client exactly: one record per request, one request at a time, whole batches
    /// read from where the last read stopped (for comparisons; the other knobs are ignored).
    #[arg(long, help_heading = HEADING)]
    pub legacy_client: bool,
    /// Topics written and read (drawn once per run).
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub topics: Option<Span>,
    /// How long a producer waits for more records before sending a batch that is not full.
    #[arg(long, help_heading = HEADING, value_name = "MS|A..=B")]
    pub linger_ms: Option<Span>,
    /// Most records in one batch.
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub batch_records: Option<Span>,
    /// Most bytes in one batch.
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub batch_bytes: Option<Span>,
    /// Most records the application hands over at once.
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub burst_records: Option<Span>,
    /// Records a producer makes per second on average.
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub records_per_second: Option<Span>,
    /// Produce requests outstanding per connection (1..=5).
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub max_in_flight: Option<Span>,
    /// Codecs producers pick from.
    #[arg(long, help_heading = HEADING, value_delimiter = ',', value_name = "none,gzip,snappy,lz4,zstd")]
    pub codecs: Option<Vec<Codec>>,
    /// How long a batch may take before the producer gives up on it.
    #[arg(long, help_heading = HEADING, value_name = "MS|A..=B")]
    pub delivery_timeout_ms: Option<Span>,
    /// How long each client process waits for one response (drawn per process, never above the
    /// scenario's or --request-timeout-ms).
    #[arg(long, help_heading = HEADING, value_name = "MS|A..=B")]
    pub client_timeout_ms: Option<Span>,
    /// Chance that a producer is idempotent.
    #[arg(long, help_heading = HEADING, value_name = "P")]
    pub idempotent_producers: Option<f64>,
    /// Chance that a producer keys its records.
    #[arg(long, help_heading = HEADING, value_name = "P")]
    pub keyed_producers: Option<f64>,
    /// Most records one poll hands to the application.
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub max_poll_records: Option<Span>,
    /// A consumer's per-partition fetch size in bytes (drawn log-uniformly).
    #[arg(long, help_heading = HEADING, value_name = "N|A..=B")]
    pub fetch_bytes: Option<Span>,
    /// Chance that a consumer fetches every partition of a broker in one request.
    #[arg(long, help_heading = HEADING, value_name = "P")]
    pub multi_partition_fetch: Option<f64>,
    /// Least time between two commits of a consumer.
    #[arg(long, help_heading = HEADING, value_name = "MS|A..=B")]
    pub commit_interval_ms: Option<Span>,
    /// Chance per poll of seeking back to re-read earlier offsets.
    #[arg(long, help_heading = HEADING, value_name = "P")]
    pub seek_back: Option<f64>,
    /// Chance per poll of restarting from the committed offsets.
    #[arg(long, help_heading = HEADING, value_name = "P")]
    pub restart: Option<f64>,
}

impl WorkloadArgs {
    /// Applies the knobs given to `mix` and checks the result.
    pub fn apply(&self, mix: &mut WorkloadMix) -> anyhow::Result<()> {
        if self.legacy_client {
            mix.legacy_client = true;
        }
        let spans = [
            (&self.topics, &mut mix.topics),
            (&self.linger_ms, &mut mix.linger_ms),
            (&self.batch_records, &mut mix.batch_records),
            (&self.batch_bytes, &mut mix.batch_bytes),
            (&self.burst_records, &mut mix.burst_records),
            (&self.records_per_second, &mut mix.records_per_second),
            (&self.max_in_flight, &mut mix.max_in_flight),
            (&self.delivery_timeout_ms, &mut mix.delivery_timeout_ms),
            (&self.max_poll_records, &mut mix.max_poll_records),
            (&self.fetch_bytes, &mut mix.fetch_partition_bytes),
            (&self.commit_interval_ms, &mut mix.commit_interval_ms),
        ];
        for (given, field) in spans {
            if let Some(v) = given {
                *field = *v;
            }
        }
        let chances = [
            (&self.idempotent_producers, &mut mix.idempotent_producers),
            (&self.keyed_producers, &mut mix.keyed_producers),
            (&self.multi_partition_fetch, &mut mix.multi_partition_fetch),
            (&self.seek_back, &mut mix.seek_back),
            (&self.restart, &mut mix.restart),
        ];
        for (given, field) in chances {
            if let Some(v) = given {
                *field = *v;
            }
        }
        if let Some(c) = &self.codecs {
            mix.codecs = c.clone();
        }
        if let Some(t) = self.client_timeout_ms {
            mix.request_timeout_ms = Some(t);
        }
        mix.validate().map_err(anyhow::Error::msg)
    }

    /// The flags given, as arguments that reproduce them.
    pub fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.legacy_client {
            out.push("--legacy-client".to_string());
        }
        let spans = [
            ("topics", self.topics),
            ("linger-ms", self.linger_ms),
            ("batch-records", self.batch_records),
            ("batch-bytes", self.batch_bytes),
            ("burst-records", self.burst_records),
            ("records-per-second", self.records_per_second),
            ("max-in-flight", self.max_in_flight),
            ("delivery-timeout-ms", self.delivery_timeout_ms),
            ("max-poll-records", self.max_poll_records),
            ("fetch-bytes", self.fetch_bytes),
            ("client-timeout-ms", self.client_timeout_ms),
            ("commit-interval-ms", self.commit_interval_ms),
        ];
        for (name, v) in spans {
            if let Some(v) = v {
                out.push(format!("--{name}"));
                out.push(v.to_string());
            }
        }
        let chances = [
            ("idempotent-producers", self.idempotent_producers),
            ("keyed-producers", self.keyed_producers),
            ("multi-partition-fetch", self.multi_partition_fetch),
            ("seek-back", self.seek_back),
            ("restart", self.restart),
        ];
        for (name, v) in chances {
            if let Some(v) = v {
                out.push(format!("--{name}"));
                out.push(v.to_string());
            }
        }
        if let Some(c) = &self.codecs {
            out.push("--codecs".to_string());
            out.push(c.iter().map(|c| c.name()).collect::<Vec<_>>().join(","));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        w: WorkloadArgs,
    }

    #[test]
    fn knobs_apply_and_reproduce() {
        let args = [
            "x",
            "--linger-ms",
            "5",
            "--max-in-flight",
            "2..=4",
            "--codecs",
            "lz4,zstd",
        ];
        let cli = Cli::parse_from(args);
        let mut mix = WorkloadMix::default();
        cli.w.apply(&mut mix).unwrap();
        assert_eq!(mix.linger_ms, Span::one(5));
        assert_eq!(mix.max_in_flight, Span::new(2, 4));
        assert_eq!(mix.codecs, vec![Codec::Lz4, Codec::Zstd]);
        let again = Cli::parse_from(std::iter::once("x".to_string()).chain(cli.w.flags()));
        let mut mix2 = WorkloadMix::default();
        again.w.apply(&mut mix2).unwrap();
        assert_eq!(mix, mix2);
        let bad = Cli::parse_from(["x", "--max-in-flight", "9"]);
        assert!(bad.w.apply(&mut WorkloadMix::default()).is_err());
        assert!(Cli::try_parse_from(["x", "--codecs", "brotli"]).is_err());
    }
}
