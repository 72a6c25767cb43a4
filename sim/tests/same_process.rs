//! Determinism inside one process: the same seed run twice in the same process
//! (and on the same thread) must give the same trace hash and reach the same
//! coverage points, whatever ran before it. Nothing process-wide may leak from one simulation into the next.
//! The same file runs on turmoil and, built with `--cfg madsim`, on madsim.

use riptide_sim::{run, RunOutcome, Scenario};

/// Where two runs of one seed part: the first differing trace line, or the
/// note that the histories differ.
fn first_difference(a: &RunOutcome, b: &RunOutcome) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.trace.lines().collect(), b.trace.lines().collect());
    match la.iter().zip(&lb).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first difference at trace line {}:\n  first run:  {}\n  second run: {}\n  (line before: {})",
            i + 1,
            la[i],
            lb[i],
            if i > 0 { la[i - 1] } else { "-" }
        ),
        None if la.len() != lb.len() => format!(
            "one trace is a prefix of the other ({} vs {} lines)",
            la.len(),
            lb.len()
        ),
        None => "the traces agree: the histories differ".into(),
    }
}

#[test]
fn the_same_seed_twice_in_one_process_hashes_the_same() {
    let mut first = Vec::new();
    let mut failures = Vec::new();
    // Round one: every (scenario, seed) once; round two: all of them again,
    // so each second run follows many other simulations in this process.
    for round in 0..2 {
        for name in ["chaos", "ownership", "groups"] {
            let scenario = Scenario::named(name).expect("a preset");
            for seed in 1..=3u64 {
                let o = run(seed, &scenario).expect("the run completes");
                if round == 0 {
                    first.push(o);
                    continue;
                }
                let a = first
                    .iter()
                    .find(|a| a.seed == seed && a.scenario.name == name)
                    .expect("round one ran it");
                if a.trace_hash != o.trace_hash {
                    failures.push(format!(
                        "{name} seed {seed}: {} then {}\n{}",
                        &a.trace_hash[..16],
                        &o.trace_hash[..16],
                        first_difference(a, &o)
                    ));
                } else if a.coverage != o.coverage {
                    failures.push(format!(
                        "{name} seed {seed}: same trace, but different coverage counts"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "runs of the same seed in one process differ:\n{}",
        failures.join("\n")
    );
}
