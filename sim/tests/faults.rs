//! Each fault kind takes effect in the simulated world (seen in the trace),
//! and the run still satisfies every checker.

use riptide_faults::{Fault, Planned};
use riptide_sim::{run, Scenario};

fn with_faults(faults: Vec<Planned>) -> Scenario {
    Scenario {
        name: "test".into(),
        duration_s: 8,
        fixed_faults: Some(faults),
        ..Scenario::default()
    }
}

/// Trace lines logged by `host` at or after `from_s` simulated seconds.
fn lines_after<'a>(trace: &'a str, host: &str, from_s: f64) -> Vec<&'a str> {
    let tag = format!("node{{name=\"{host}\"}}");
    trace
        .lines()
        .filter(|l| l.contains(&tag))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.trim_end_matches('s').parse::<f64>().ok())
                .is_some_and(|t| t >= from_s)
        })
        .collect()
}

#[test]
fn a_crashed_broker_comes_back_with_empty_memory() {
    let o = run(
        3,
        &with_faults(vec![Planned {
            start_ms: 2000,
            end_ms: Some(5000),
            fault: Fault::Crash {
                broker: "broker-0".into(),
            },
        }]),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    let after = lines_after(&o.trace, "broker-0", 5.0);
    // A fresh process: it rejoins from scratch and must re-claim (fence) any
    // partition it serves instead of trusting what it had in memory.
    assert!(
        after.iter().any(|l| l.contains("membership changed")),
        "no rejoin after restart:\n{}",
        o.trace
    );
    assert!(
        after.iter().any(|l| l.contains("claimed partition")),
        "the restarted broker never re-claimed a partition:\n{}",
        o.trace
    );
}

#[test]
fn scale_in_removes_the_broker_from_the_cluster() {
    let o = run(
        5,
        &with_faults(vec![Planned {
            start_ms: 2000,
            end_ms: None,
            fault: Fault::ScaleIn {
                broker: "broker-2".into(),
            },
        }]),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    // Node ids are index + 1: broker-2 is node 3.
    let views: Vec<&str> = lines_after(&o.trace, "broker-0", 2.0)
        .into_iter()
        .filter(|l| l.contains("membership changed"))
        .collect();
    assert!(
        views.last().is_some_and(|l| l.contains("nodes=[1, 2]")),
        "broker-2 still in the view: {views:?}"
    );
}

#[test]
fn a_broker_cut_from_the_store_cannot_write_to_it() {
    let o = run(
        7,
        &with_faults(vec![Planned {
            start_ms: 1000,
            end_ms: Some(6000),
            fault: Fault::StoreCut {
                broker: "broker-1".into(),
            },
        }]),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    let during: Vec<&str> = lines_after(&o.trace, "broker-1", 1.0)
        .into_iter()
        .filter(|l| l.contains("heartbeat failed"))
        .collect();
    assert!(
        !during.is_empty(),
        "broker-1 kept writing heartbeats:\n{}",
        o.trace
    );
}

#[test]
fn scale_out_adds_a_broker() {
    let mut s = with_faults(vec![Planned {
        start_ms: 2000,
        end_ms: None,
        fault: Fault::ScaleOut {
            broker: "broker-3".into(),
        },
    }]);
    s.spare_brokers = 1;
    let o = run(9, &s).unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    let views: Vec<&str> = lines_after(&o.trace, "broker-0", 2.0)
        .into_iter()
        .filter(|l| l.contains("membership changed"))
        .collect();
    assert!(
        views.iter().any(|l| l.contains("nodes=[1, 2, 3, 4]")),
        "broker-3 never joined: {views:?}"
    );
}
