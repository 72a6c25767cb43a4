//! Coverage points in a whole run: the list comes from the code (a point in dead code is listed
//! and never reached), counts are per run and deterministic, and collecting them leaves the
//! trace hash alone.

use riptide_faults::{Fault, Planned};
use riptide_sim::{run, Scenario};

/// Never called: its point must still be listed, as never reached.
#[allow(dead_code)]
fn dead_code() {
    riptide_coverage::reached!("test.dead_code", "a point in code nothing calls");
}

fn crash_scenario() -> Scenario {
    Scenario {
        name: "test".into(),
        duration_s: 8,
        fixed_faults: Some(vec![Planned {
            start_ms: 2000,
            end_ms: Some(4000),
            fault: Fault::Crash {
                broker: "broker-0".into(),
            },
        }]),
        ..Scenario::default()
    }
}

#[test]
fn a_run_reports_what_it_reached_and_collection_does_not_change_it() {
    let scenario = crash_scenario();
    let a = run(5, &scenario).unwrap();
    let c = &a.coverage;
    assert_eq!(
        c.hits.get("coverage/test.dead_code"),
        Some(&0),
        "dead code is listed"
    );
    assert!(c.unreached().any(|k| k == "coverage/test.dead_code"));
    // The broker claimed partitions and the producers' batches were appended.
    assert!(c.hits["broker/log.claimed"] > 0, "{}", c.to_text());
    assert!(
        c.hits["broker/log.compressed_batch_appended"] > 0
            || c.hits["workloads/producer.pipelined"] > 0
    );
    // Points of every component that runs in the simulator are listed.
    for component in ["broker/", "workloads/", "faults/"] {
        assert!(
            c.hits.keys().any(|k| k.starts_with(component)),
            "{component}"
        );
    }

    // Counts belong to the run: a second run in this process starts from zero again, so it
    // cannot have more than twice the first's claims. (Runs sharing a process are not
    // bit-identical: process-wide state in the runtime stack leaks between them, which is why
    // sweeps run seeds in children. ci/determinism.sh compares hashes across processes, with
    // coverage on and off.)
    let b = run(5, &scenario).unwrap();
    assert_eq!(a.coverage.hits.len(), b.coverage.hits.len());
    assert!(b.coverage.hits["broker/log.claimed"] < 2 * a.coverage.hits["broker/log.claimed"]);

    // Off, nothing is counted.
    riptide_coverage::set_enabled(false);
    let off = run(5, &scenario);
    riptide_coverage::set_enabled(true);
    let off = off.unwrap();
    assert_eq!(off.coverage.reached().count(), 0);
    assert_eq!(off.coverage.hits.len(), a.coverage.hits.len());
}

#[test]
fn point_names_are_unique_across_the_crates() {
    let mut seen = std::collections::BTreeMap::new();
    for p in riptide_coverage::points() {
        if let Some((file, line)) = seen.insert(p.key(), (p.file, p.line)) {
            panic!(
                "{} is placed twice: {}:{} and {file}:{line}",
                p.key(),
                p.file,
                p.line
            );
        }
        assert!(!p.what.is_empty(), "{} says what it marks", p.key());
    }
    // The issue asks for at least 30 points in broker, client and nemesis.
    assert!(seen.len() >= 30, "{} points", seen.len());
}
