//! One simulation run: build the world from the seed, run the workload, read
//! everything back, check it.

use crate::clock::{epoch, SimClock};
use crate::net::{SimConnector, SimListener};
use crate::scenario::Scenario;
use crate::store::{Latency, SimStore};
use crate::trace::{self, Trace};
use object_store::memory::InMemory;
use riptide_broker::env::Clock;
use riptide_broker::{Broker, BrokerConfig};
use riptide_checker::history::History;
use riptide_checker::{check_all, CheckerConfig, Report};
use riptide_workloads::generators::{self, WorkloadConfig};
use riptide_workloads::{Client, ClientConfig, Recorder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const BROKER_PORT: u16 = 9092;
/// Log events that go into the trace (and so into its hash).
const TRACE_FILTER: &str = "warn,turmoil=info,riptide_broker=info,riptide_sim=info";

pub struct RunOutcome {
    pub seed: u64,
    pub scenario: Scenario,
    pub history: History,
    pub report: Report,
    pub trace: String,
    pub trace_hash: String,
    pub sim_time: Duration,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.report.verdict == riptide_checker::Verdict::Pass
    }
}

/// A seed for one component, derived from the run's seed.
pub fn derive(seed: u64, parts: &[u64]) -> u64 {
    // SplitMix64 over the parts: cheap, stable, well mixed.
    let mut x = seed;
    for p in parts {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(*p);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

fn sim_now_ns() -> u64 {
    turmoil::sim_elapsed()
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Simulated time left until `at` (zero if past), as a tokio deadline.
fn deadline(at: Duration) -> tokio::time::Instant {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    tokio::time::Instant::now() + at.saturating_sub(now)
}

pub fn broker_name(i: usize) -> String {
    format!("broker-{i}")
}

/// Runs one seed of a scenario. `Err` is a harness failure (the world could
/// not be run), not a finding.
pub fn run(seed: u64, scenario: &Scenario) -> anyhow::Result<RunOutcome> {
    let trace = Trace::default();
    let _capture = trace.capture(TRACE_FILTER);
    tracing::info!(seed, scenario = %scenario.name, "run starts");

    let workload_end = scenario.duration();
    let settle = Duration::from_secs(2);
    let limit = workload_end + settle + Duration::from_secs(scenario.final_read_s + 30);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(epoch())
        .tick_duration(Duration::from_millis(scenario.tick_ms.max(1)))
        .simulation_duration(limit)
        .build();

    let region = Arc::new(InMemory::new());
    let latency = Latency {
        min_ms: scenario.store_latency_ms.0,
        max_ms: scenario.store_latency_ms.1,
    };
    let bootstrap: Vec<String> = (0..scenario.brokers)
        .map(|i| format!("{}:{BROKER_PORT}", broker_name(i)))
        .collect();

    for i in 0..scenario.brokers {
        let region = region.clone();
        let name = broker_name(i);
        let zone = format!("zone-{}", i % scenario.zones.max(1));
        let partitions = scenario.partitions;
        let starts = Arc::new(AtomicU64::new(0));
        sim.host(name.clone(), move || {
            let region = region.clone();
            let name = name.clone();
            let zone = zone.clone();
            let start = starts.fetch_add(1, Ordering::SeqCst);
            async move {
                let component = derive(seed, &[1, i as u64, start]);
                let store = Arc::new(SimStore::new(region, &name, latency, component));
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
                let mut cfg = BrokerConfig::new(i as i32 + 1, name.clone(), BROKER_PORT as i32);
                cfg.zone = zone;
                cfg.seed = derive(component, &[0]);
                cfg.default_partitions = partitions;
                let broker = Broker::start(cfg, store, Arc::new(SimClock))
                    .await
                    .map_err(|e| format!("{name} could not start: {e:#}"))?;
                broker.serve(SimListener(listener)).await;
                Ok(())
            }
        });
    }

    let recorder = Recorder::with_time(Arc::new(sim_now_ns));
    let workload = WorkloadConfig {
        topic: "riptide".into(),
        partitions: scenario.partitions,
        send_interval: Duration::from_millis(scenario.send_interval_ms),
        ..WorkloadConfig::default()
    };
    let client = |process: u64| {
        let config = ClientConfig {
            seed: derive(seed, &[2, process]),
            clock: Some(Arc::new(|| SimClock.now_ms())),
            ..ClientConfig::default()
        };
        Client::new(SimConnector, bootstrap.clone(), config)
    };

    let mut process = 0u64;
    for k in 0..scenario.producers {
        let (rec, cfg, mut c) = (recorder.clone(), workload.clone(), client(process));
        let p = process;
        sim.client(format!("producer-{k}"), async move {
            if let Err(e) = c.create_topic(&cfg.topic, cfg.partitions).await {
                tracing::warn!(error = %e, "create_topic failed; relying on auto-create");
            }
            generators::producer(
                &mut c,
                &rec,
                p,
                &cfg,
                derive(seed, &[3, p]),
                deadline(workload_end),
            )
            .await;
            Ok(())
        });
        process += 1;
    }
    for k in 0..scenario.consumers {
        let (rec, cfg, mut c) = (recorder.clone(), workload.clone(), client(process));
        let p = process;
        let mine: Vec<i32> = (0..scenario.partitions)
            .filter(|x| *x as usize % scenario.consumers == k)
            .collect();
        sim.client(format!("consumer-{k}"), async move {
            generators::consumer(&mut c, &rec, p, &cfg, &mine, deadline(workload_end)).await;
            Ok(())
        });
        process += 1;
    }
    {
        let (rec, cfg, mut c) = (recorder.clone(), workload.clone(), client(process));
        let p = process;
        let give_up = workload_end + settle + Duration::from_secs(scenario.final_read_s);
        sim.client("reader", async move {
            tokio::time::sleep_until(deadline(workload_end + settle)).await;
            generators::final_read(&mut c, &rec, p, &cfg, deadline(give_up)).await;
            Ok(())
        });
    }

    sim.run()
        .map_err(|e| anyhow::anyhow!("simulation failed: {e}"))?;
    let sim_time = sim.elapsed();
    tracing::info!(sim_time_s = sim_time.as_secs_f64(), "run ends");
    drop(sim);

    let history = recorder.history();
    let report = check_all(&history, &CheckerConfig::default());
    let mut jsonl = Vec::new();
    history.to_jsonl(&mut jsonl)?;
    let text = trace.text();
    let trace_hash = trace::hash(&[text.as_bytes(), &jsonl]);
    Ok(RunOutcome {
        seed,
        scenario: scenario.clone(),
        history,
        report,
        trace: text,
        trace_hash,
        sim_time,
    })
}
