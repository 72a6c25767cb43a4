//! TinyBroker in riptide's seeded world: producers and consumers over simulated TCP, with
//! crashes, network partitions and object-store faults (latency, errors, writes whose reply is
//! lost) drawn from each seed. A failure names its seed; the same seed repeats it exactly.
//!
//! `OWN_BROKER_BUG=1 cargo test` plants the bug in the broker: the seeded test must then fail
//! (CI checks that it does).

use own_broker::TinyBroker;
use riptide_sim::{FaultMix, Scenario, Simulation};
use std::time::Duration;

/// Seeds each test runs (about 0.4 s each in a debug build). With the bug planted, seeds 7,
/// 10, 12 and 18 of these lose acknowledged records.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=20;

fn world(broker: TinyBroker) -> Simulation {
    let mut scenario = Scenario::named("baseline").expect("a preset");
    scenario.name = "own-broker".into();
    // TinyBroker has no idempotence (no InitProducerId): every producer is a plain one.
    scenario.workload.idempotent_producers = 0.0;
    Simulation::new(scenario)
        .brokers(broker)
        .cluster(1, 1)
        .clients(2, 2)
        .duration(Duration::from_secs(10))
        .faults(FaultMix {
            crashes: true,
            store: true,
            partitions: true,
            ..FaultMix::default()
        })
}

fn planted() -> bool {
    std::env::var_os("OWN_BROKER_BUG").is_some_and(|v| v != "0")
}

#[test]
fn seeded_runs_pass() {
    let world = world(TinyBroker {
        ack_before_write: planted(),
    });
    if let Some(failed) = world.first_failure(SEEDS).expect("the world runs") {
        panic!("seed {} failed:\n{}", failed.seed, failed.report.to_text());
    }
}

/// The harness is only worth something if it catches a broken broker.
#[test]
fn the_planted_bug_is_caught() {
    let world = world(TinyBroker {
        ack_before_write: true,
    });
    let failed = world.first_failure(SEEDS).expect("the world runs");
    let failed = failed.expect("acking before the write should lose records under these faults");
    assert!(
        !failed.report.findings.is_empty(),
        "{}",
        failed.report.to_text()
    );
}

/// Same seed, same run: the trace hash repeats in the same process.
#[test]
fn a_seed_repeats() {
    let world = world(TinyBroker::default()).seed(3);
    let (a, b) = (world.run().unwrap(), world.run().unwrap());
    assert_eq!(a.trace_hash, b.trace_hash);
    assert!(a.history.ops.len() > 100, "{} ops", a.history.ops.len());
}
