//! Replays every seed in `corpus/regressions.json` and checks its verdict.

use riptide_sim::{run, Scenario};
use serde::Deserialize;

#[derive(Deserialize)]
struct Entry {
    seed: u64,
    scenario: String,
    #[serde(default)]
    bug: Option<riptide_broker::bugs::Bug>,
    expect: String,
    note: String,
    /// Run with the earlier client (`WorkloadMix::legacy_client`).
    #[serde(default)]
    legacy_client: bool,
}

#[test]
fn every_regression_seed_has_its_expected_verdict() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/regressions.json");
    let entries: Vec<Entry> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("corpus readable"))
            .expect("corpus parses");
    assert!(!entries.is_empty());
    for e in entries {
        let mut scenario = Scenario::named(&e.scenario).expect("known scenario");
        scenario.bug = e.bug;
        scenario.workload.legacy_client = e.legacy_client;
        let o = run(e.seed, &scenario).expect("the run completes");
        let verdict = if o.passed() { "pass" } else { "fail" };
        assert_eq!(
            verdict,
            e.expect,
            "seed {} ({}): {}\n{}",
            e.seed,
            e.scenario,
            e.note,
            o.report.to_text()
        );
    }
}
