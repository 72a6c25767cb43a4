//! A broken invariant ends a simulated run as a finding of its own: the broker's `always!`
//! breaches become `invariant` events of the history, the `broken-invariant` checker reports
//! each (data-loss class) with the invariant's name, place and detail, and the verdict is FAIL.
//! A correct broker breaks none, and its run lists the invariants it checked.

use riptide_broker::bugs::Bug;
use riptide_checker::history::Value;
use riptide_checker::{Anomaly, Severity, Verdict};
use riptide_sim::{run, Scenario};

fn short(bug: Option<Bug>) -> Scenario {
    Scenario {
        name: "test".into(),
        duration_s: 6,
        final_read_s: 10,
        fixed_faults: Some(vec![]),
        bug,
        ..Scenario::default()
    }
}

#[test]
fn a_run_whose_broker_reports_a_high_watermark_past_its_log_fails_with_broken_invariant() {
    let o = run(3, &short(Some(Bug::HwmOffByOne))).unwrap();
    assert_eq!(o.report.verdict, Verdict::Fail);
    let broken: Vec<_> = o
        .report
        .findings
        .iter()
        .filter(|f| f.anomaly == Anomaly::BrokenInvariant)
        .collect();
    assert!(!broken.is_empty(), "{}", o.report.to_text());
    assert_eq!(Anomaly::BrokenInvariant.severity(), Severity::DataLoss);
    let fetch = broken
        .iter()
        .find(|f| f.topic == "broker/fetch.hwm_not_above_log_end")
        .unwrap_or_else(|| panic!("{broken:#?}"));
    assert!(
        fetch.explanation.contains("broken at broker/src/api.rs:")
            && fetch.explanation.contains("with the log ending at"),
        "{}",
        fetch.explanation
    );
    // Each breach is in the history as an event, and counted for the run.
    let events = o
        .history
        .ops
        .iter()
        .filter(|op| matches!(op.value, Value::Invariant(_)))
        .count();
    assert_eq!(
        events,
        2 * o.invariants.breaches.len(),
        "invoke and completion each"
    );
    assert!(o.invariants.counts["broker/fetch.hwm_not_above_log_end"].broken > 0);
    o.history.validate().unwrap();
}

#[test]
fn a_run_of_a_correct_broker_breaks_no_invariant_and_checks_them() {
    let o = run(3, &short(None)).unwrap();
    assert!(
        o.invariants.breaches.is_empty(),
        "{:#?}",
        o.invariants.breaches
    );
    assert!(
        !o.report
            .findings
            .iter()
            .any(|f| f.anomaly == Anomaly::BrokenInvariant),
        "{}",
        o.report.to_text()
    );
    for name in [
        "broker/log.offsets_contiguous",
        "broker/log.written_batches_match_header",
        "broker/log.acked_offsets_are_committed",
        "broker/fetch.hwm_not_above_log_end",
    ] {
        assert!(
            o.invariants.counts[name].checked > 0,
            "{name}:\n{}",
            o.invariants.to_text()
        );
    }
}
