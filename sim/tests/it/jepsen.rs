//! Whole simulated histories through Jepsen's format and back: the same history, the same
//! findings (a clean chaos run, and a planted bug with findings of many kinds).

use riptide_broker::bugs::Bug;
use riptide_checker::{check_all, jepsen, CheckerConfig};
use riptide_sim::{run, Scenario};

fn round_trip(scenario: &Scenario, seed: u64) -> usize {
    let o = run(seed, scenario).unwrap();
    let mut edn = Vec::new();
    jepsen::export(&o.history, &mut edn).unwrap();
    let back = jepsen::import(std::str::from_utf8(&edn).unwrap()).unwrap();
    assert!(back.skipped.is_empty());
    assert_eq!(back.history, o.history);
    let config = CheckerConfig {
        allow_duplicates_from_retries: !scenario.idempotent,
        ..CheckerConfig::default()
    };
    let again = check_all(&back.history, &config);
    assert_eq!(again.findings, o.report.findings);
    o.report.findings.len()
}

#[test]
fn a_chaos_run_survives_the_round_trip() {
    round_trip(&Scenario::named("chaos").unwrap(), 1);
}

#[test]
fn a_run_with_findings_survives_the_round_trip() {
    let mut s = Scenario::named("ownership").unwrap();
    s.bug = Some(Bug::NoFencing);
    assert!(round_trip(&s, 1) > 0, "the planted bug is found");
}
