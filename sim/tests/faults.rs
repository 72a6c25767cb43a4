//! Each fault kind takes effect in the simulated world (seen in the trace),
//! and the run still satisfies every checker.

use riptide_faults::{Fault, Planned};
use riptide_sim::{run, Scenario};

fn with_faults(faults: Vec<Planned>) -> Scenario {
    with_faults_for(8, faults)
}

fn with_faults_for(duration_s: u64, faults: Vec<Planned>) -> Scenario {
    Scenario {
        name: "test".into(),
        duration_s,
        fixed_faults: Some(faults),
        ..Scenario::default()
    }
}

/// Trace lines logged by `host` at or after `from_s` simulated seconds.
/// (The host's span is `node{name="broker-0"}` on turmoil and
/// `node{id=3 name="broker-0"}` on madsim.)
fn lines_after<'a>(trace: &'a str, host: &str, from_s: f64) -> Vec<&'a str> {
    let tag = format!("name=\"{host}\"}}");
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

/// The cluster views `host` logged at or after `from_s`.
fn views_after<'a>(trace: &'a str, host: &str, from_s: f64) -> Vec<&'a str> {
    lines_after(trace, host, from_s)
        .into_iter()
        .filter(|l| l.contains("membership changed"))
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
    let views = views_after(&o.trace, "broker-0", 2.0);
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
    let views = views_after(&o.trace, "broker-0", 2.0);
    assert!(
        views.iter().any(|l| l.contains("nodes=[1, 2, 3, 4]")),
        "broker-3 never joined: {views:?}"
    );
}

use riptide_checker::history::{OpKind, Value};

/// Sends completed `ok` inside `[from_s, to_s)`.
fn oks_between(o: &riptide_sim::RunOutcome, from_s: f64, to_s: f64) -> usize {
    o.history
        .ops
        .iter()
        .filter(|op| op.kind == OpKind::Ok && matches!(op.value, Value::Send(_)))
        .filter(|op| {
            let t = op.time_ns as f64 / 1e9;
            t >= from_s && t < to_s
        })
        .count()
}

fn all_clients_from_all_brokers(oneway: bool) -> Fault {
    let brokers: Vec<String> = (0..3).map(|i| format!("broker-{i}")).collect();
    let clients: Vec<String> = [
        "producer-0",
        "producer-1",
        "producer-2",
        "consumer-0",
        "consumer-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if oneway {
        // Requests arrive; replies are lost.
        Fault::PartitionOneway {
            from: brokers,
            to: clients,
        }
    } else {
        Fault::Partition {
            a: brokers,
            b: clients,
        }
    }
}

#[test]
fn a_partition_stops_acknowledgements_until_it_heals() {
    // Requests caught by the partition hang until the client's timeout, so
    // the workload runs on well past the heal.
    let o = run(
        11,
        &with_faults_for(
            20,
            vec![Planned {
                start_ms: 2000,
                end_ms: Some(5000),
                fault: all_clients_from_all_brokers(false),
            }],
        ),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    assert!(
        oks_between(&o, 0.0, 2.0) > 10,
        "the workload ran before the partition"
    );
    assert_eq!(
        oks_between(&o, 2.1, 5.0),
        0,
        "a send was acknowledged across the partition"
    );
    assert!(
        oks_between(&o, 5.0, 60.0) > 0,
        "nothing was acknowledged after the heal"
    );
}

#[test]
fn a_one_way_partition_applies_writes_whose_replies_are_lost() {
    // turmoil drops what crosses a partition. madsim's TCP is reliable: it
    // holds what a clogged link carries and delivers it after the heal, as
    // retransmission would; there, a reply is lost to the client only when
    // the partition outlasts the client's request timeout (10 s).
    let (end_ms, duration_s) = if cfg!(madsim) {
        (14_000, 20)
    } else {
        (5000, 8)
    };
    let o = run(
        13,
        &with_faults_for(
            duration_s,
            vec![Planned {
                start_ms: 2000,
                end_ms: Some(end_ms),
                fault: all_clients_from_all_brokers(true),
            }],
        ),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    assert_eq!(
        oks_between(&o, 2.1, 5.0),
        0,
        "a reply crossed the one-way partition"
    );
    // Some send whose outcome the client could not know was applied anyway.
    let read: std::collections::BTreeSet<&str> = o
        .history
        .ops
        .iter()
        .filter_map(|op| match &op.value {
            Value::FinalRead(f) if op.kind == OpKind::Ok => Some(f),
            _ => None,
        })
        .flat_map(|f| f.records.iter().map(|r| r.value.as_str()))
        .collect();
    let applied_unknown = o
        .history
        .ops
        .iter()
        .filter(|op| op.kind == OpKind::Info)
        .filter(|op| matches!(&op.value, Value::Send(s) if read.contains(s.value.as_str())))
        .count();
    assert!(
        applied_unknown > 0,
        "no info send was applied:\n{}",
        o.report.to_text()
    );
}

#[test]
fn a_paused_broker_goes_silent_is_dropped_and_rejoins() {
    let o = run(
        17,
        &with_faults(vec![Planned {
            start_ms: 2000,
            end_ms: Some(7000),
            fault: Fault::Pause {
                broker: "broker-0".into(),
            },
        }]),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    // Its heartbeats stopped: the others dropped it and took over.
    let others_took_over = ["broker-1", "broker-2"].iter().any(|b| {
        lines_after(&o.trace, b, 2.0)
            .iter()
            .any(|l| l.contains("membership changed nodes=[2, 3]"))
    });
    assert!(others_took_over, "nobody noticed the pause:\n{}", o.trace);
    let paused_silent = lines_after(&o.trace, "broker-0", 2.1).iter().all(|l| {
        l.split_whitespace()
            .next()
            .and_then(|t| t.trim_end_matches('s').parse::<f64>().ok())
            .is_some_and(|t| t >= 7.0)
    });
    assert!(paused_silent, "broker-0 logged while paused:\n{}", o.trace);
    let rejoined = lines_after(&o.trace, "broker-1", 7.0)
        .iter()
        .any(|l| l.contains("membership changed nodes=[1, 2, 3]"));
    assert!(
        rejoined,
        "broker-0 never rejoined after the pause:\n{}",
        o.trace
    );
}

#[test]
fn an_isolated_zone_cannot_reach_the_store_and_the_rest_serves() {
    let o = run(
        19,
        &with_faults_for(
            20,
            vec![Planned {
                start_ms: 2000,
                end_ms: Some(15000),
                fault: Fault::ZoneIsolate {
                    zone: 0,
                    brokers: vec!["broker-0".into()],
                    others: [
                        "broker-1",
                        "broker-2",
                        "producer-0",
                        "producer-1",
                        "producer-2",
                        "consumer-0",
                        "consumer-1",
                        "reader",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                },
            }],
        ),
    )
    .unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    assert!(
        lines_after(&o.trace, "broker-0", 2.0)
            .iter()
            .any(|l| l.contains("heartbeat failed")),
        "broker-0 still reached the store:\n{}",
        o.trace
    );
    // Once its partitions moved (session timeout) and clients gave up on it
    // (request timeout), the rest of the cluster serves while it is cut off.
    assert!(
        oks_between(&o, 5.5, 15.0) > 0,
        "the other zones stopped serving"
    );
}

/// Sends invoked inside `[from_s, to_s)`.
fn sends_between(o: &riptide_sim::RunOutcome, from_s: f64, to_s: f64) -> usize {
    o.history
        .ops
        .iter()
        .filter(|op| op.kind == OpKind::Invoke && matches!(op.value, Value::Send(_)))
        .filter(|op| (from_s..to_s).contains(&(op.time_ns as f64 / 1e9)))
        .count()
}

#[test]
fn several_brokers_join_at_once_and_half_leave_at_once() {
    let names = |r: std::ops::Range<usize>| r.map(|i| format!("broker-{i}")).collect::<Vec<_>>();
    let mut s = with_faults_for(
        10,
        vec![
            Planned {
                start_ms: 2000,
                end_ms: None,
                fault: Fault::ScaleOutMany {
                    brokers: names(3..6),
                },
            },
            Planned {
                start_ms: 5000,
                end_ms: None,
                fault: Fault::ScaleInHalf {
                    brokers: names(1..4),
                },
            },
        ],
    );
    s.spare_brokers = 3;
    let o = run(11, &s).unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    let views = views_after(&o.trace, "broker-0", 2.0);
    assert!(
        views.iter().any(|l| l.contains("nodes=[1, 2, 3, 4, 5, 6]")),
        "three never joined: {views:?}"
    );
    assert!(
        views.last().is_some_and(|l| l.contains("nodes=[1, 5, 6]")),
        "half did not leave: {views:?}"
    );
}

#[test]
fn a_spike_speeds_producers_up_until_it_heals_and_its_brokers_join() {
    let mut s = with_faults_for(
        12,
        vec![Planned {
            start_ms: 4000,
            end_ms: Some(7000),
            fault: Fault::Spike {
                factor: 5,
                brokers: vec!["broker-3".into()],
            },
        }],
    );
    s.spare_brokers = 1;
    let o = run(13, &s).unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    let (before, during, after) = (
        sends_between(&o, 1.0, 4.0),
        sends_between(&o, 4.0, 7.0),
        sends_between(&o, 8.0, 11.0),
    );
    assert!(
        during > 2 * before && during > 2 * after,
        "sends per 3 s: {before} before, {during} during, {after} after"
    );
    assert!(
        views_after(&o.trace, "broker-0", 4.0)
            .iter()
            .any(|l| l.contains("nodes=[1, 2, 3, 4]")),
        "broker-3 never joined"
    );
}

#[test]
fn a_rolling_replacement_starts_each_broker_afresh_in_turn() {
    let faults = (0..3)
        .map(|i| Planned {
            start_ms: 2000 + 2000 * i,
            end_ms: Some(2800 + 2000 * i),
            fault: Fault::Replace {
                broker: format!("broker-{i}"),
            },
        })
        .collect();
    let o = run(15, &with_faults_for(12, faults)).unwrap();
    assert!(o.passed(), "{}", o.report.to_text());
    for i in 0..3u64 {
        // A fresh process after its step: it joins again and claims partitions anew.
        let back = 2.8 + 2.0 * i as f64;
        let after = lines_after(&o.trace, &format!("broker-{i}"), back);
        assert!(
            after.iter().any(|l| l.contains("claimed partition")),
            "broker-{i} never served again after its replacement"
        );
    }
}
